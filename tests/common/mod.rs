//! Shared by the integration tests: the generated fixtures and tensor comparison.

#![allow(dead_code)]

pub mod watch;

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use camwatch::cam::measures::pearson;
use camwatch::checkpoint::{self, WeightTensor};
use camwatch::device::{DeviceChoice, select};

/// A fresh folder `name` for a test, with the demo run's first `epochs` checkpoints in
/// its `checkpoints/`; returns the folder.
pub fn demo_epochs(name: &str, epochs: u32) -> PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&work);
    let run = work.join("checkpoints");
    std::fs::create_dir_all(&run).unwrap();
    for epoch in 1..=epochs {
        let name = format!("epoch_{epoch}.pdparams");
        std::fs::copy(root.join("checkpoints").join(&name), run.join(&name)).unwrap();
    }
    work
}

/// The epochs of the checkpoints in the shipped run `run` (`checkpoints`,
/// `checkpoints-shortcut`), by the number camwatch reads from each name, sorted: what a
/// user or camwatch put beside them (a history, other files) does not count.
pub fn shipped_epochs(run: &str) -> Vec<u64> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(run);
    let skip = dir.join(camwatch::monitor::HISTORY_DIR);
    let mut epochs: Vec<u64> = camwatch::monitor::scan::scan(&dir, &skip)
        .iter()
        .filter_map(|path| camwatch::monitor::epoch::epoch_of(path))
        .collect();
    epochs.sort_unstable();
    epochs.dedup();
    epochs
}

/// The last epoch of the shipped run `run`.
pub fn last_shipped_epoch(run: &str) -> u64 {
    *shipped_epochs(run)
        .last()
        .expect("the shipped run has epochs")
}

/// Where `tools/make_fixtures.py` wrote the checkpoints and their references
/// (`scripts/test` runs it when they are missing).
pub fn fixtures() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/generated");
    assert!(
        dir.join("manifest.json").exists(),
        "no fixtures in {}: run scripts/test, or tools/make_fixtures.py {0}",
        dir.display()
    );
    dir
}

#[derive(serde::Deserialize)]
pub struct Fixture {
    pub file: String,
    pub reference: String,
    pub arch: Arch,
    /// Relative tolerance, when the file stores less than float32.
    pub tolerance: Option<f32>,
}

#[derive(serde::Deserialize)]
pub struct Arch {
    pub variant: String,
    pub depths: Vec<usize>,
    pub width: usize,
    pub scales: usize,
    pub classes: usize,
    pub stem_width: usize,
    pub base_channels: usize,
}

pub fn manifest() -> Vec<Fixture> {
    let text = std::fs::read_to_string(fixtures().join("manifest.json")).expect("manifest");
    serde_json::from_str(&text).expect("manifest.json parses")
}

/// The tensors of a `.ref.safetensors` file: `input`, `logits`, `stage1`…`stage4`.
pub fn reference(name: &str) -> std::collections::BTreeMap<String, WeightTensor> {
    read_tensors(&fixtures().join(name))
}

/// Every tensor of a reference file.
pub fn read_tensors(path: &Path) -> std::collections::BTreeMap<String, WeightTensor> {
    let (_, weights) = checkpoint::read(path)
        .unwrap_or_else(|e| panic!("{}: reference reads: {e}", path.display()));
    weights.tensors
}

/// A set of fixtures in `name/` below [`fixtures`], with its `manifest.json`, made by
/// `tool`.
pub fn fixture_set(name: &str, tool: &str) -> PathBuf {
    let dir = fixtures().join(name);
    assert!(
        dir.join("manifest.json").exists(),
        "no {name} fixtures in {}: run scripts/test, or {tool} {0}",
        dir.display()
    );
    dir
}

/// The entries of a fixture set's `manifest.json`.
pub fn set_manifest<T: serde::de::DeserializeOwned>(set: &Path) -> Vec<T> {
    let text = std::fs::read_to_string(set.join("manifest.json")).expect("manifest");
    serde_json::from_str(&text).expect("manifest.json parses")
}

/// libtorch on the CPU.
pub fn cpu() -> Device {
    select(DeviceChoice::Cpu).expect("libtorch CPU").device
}

/// `actual` correlates with `expected` at least `bound` (Pearson), and says how much.
pub fn assert_correlated(name: &str, actual: &[f32], expected: &[f32], bound: f32) {
    let r = pearson(actual, expected);
    eprintln!("{name}: correlation {r:.7}");
    assert!(r >= bound, "{name}: correlation {r} < {bound}");
}

pub fn to_tensor<const D: usize>(t: &WeightTensor, device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(t.values.clone(), t.shape.clone()), device)
}

pub fn values<const D: usize>(t: Tensor<D>) -> (Vec<usize>, Vec<f32>) {
    let data = t.into_data();
    let shape = data.shape().to_vec();
    (shape, data.try_to_vec::<f32>().expect("f32 data"))
}

/// max |a − b| / max |b|: the error relative to the reference's scale.
pub fn relative_error(actual: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(actual.len(), expected.len(), "lengths differ");
    let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    let diff = actual
        .iter()
        .zip(expected)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    diff / scale
}

/// `PRAGMA integrity_check` of a history database says ok.
pub fn assert_history_intact(path: &std::path::Path) {
    let db = rusqlite::Connection::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "{}", path.display());
}
