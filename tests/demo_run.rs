//! The shipped demo run (checkpoints/, samples/, made by tools/train_demo.py): as it
//! trains, Grad-CAM's attention moves onto the object.

mod common;

use std::path::Path;

use camwatch::cam::{CamRequest, Layer, Method, Normalize, SampleSet, Target};
use camwatch::device::{DeviceChoice, select};
use camwatch::loader;
use camwatch::render::{self, display_map};

/// Mean share of the map inside the box, and pointing-game hits, over the samples.
fn attention_on_object(epoch: u32) -> (f32, usize) {
    let figures = figures_of("checkpoints", epoch);
    (figures.energy, figures.hits)
}

/// One shipped epoch on the held-out samples.
struct Figures {
    /// Mean share of Grad-CAM inside the box.
    energy: f32,
    /// Pointing-game hits.
    hits: usize,
    /// Samples classified right.
    right: usize,
}

fn figures_of(run: &str, epoch: u32) -> Figures {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let device = select(DeviceChoice::Cpu).unwrap().device;
    let loaded =
        loader::load(&root.join(format!("{run}/epoch_{epoch}.pdparams")), &device).unwrap();
    let set = SampleSet::load(&root.join("samples")).unwrap();
    assert_eq!(set.defaults.normalize, Some(Normalize::Imagenet));
    let request = CamRequest {
        methods: vec![Method::GradCam],
        layer: Layer::LAST,
        target: Target::Predicted,
        batch: 16,
        cancel: Default::default(),
    };
    let (results, _) = render::compute_all(
        &loaded.model,
        &set,
        &request,
        Normalize::Imagenet,
        224,
        &device,
    )
    .unwrap();
    let (mut energy, mut hits, mut right) = (0.0, 0, 0);
    for (sample, result) in set.samples.iter().zip(&results) {
        let shown = display_map(&result.maps[0].1, sample.image.dimensions());
        let (share, hit) = render::on_object(&shown, sample).expect("every demo sample has a box");
        energy += share;
        hits += usize::from(hit);
        right += usize::from(sample.label == Some(result.predicted));
    }
    Figures {
        energy: energy / set.samples.len() as f32,
        hits,
        right,
    }
}

/// The shipped run's last epoch.
fn last_epoch(run: &str) -> u32 {
    common::last_shipped_epoch(run) as u32
}

#[test]
fn attention_moves_onto_the_object_as_training_goes_on() {
    let last = last_epoch("checkpoints");
    let (first_energy, first_hits) = attention_on_object(1);
    let (last_energy, last_hits) = attention_on_object(last);
    eprintln!(
        "epoch 1: energy {first_energy:.3}, {first_hits} hits; epoch {last}: energy {last_energy:.3}, {last_hits} hits"
    );
    assert!(
        last_energy > first_energy + 0.25,
        "box energy {first_energy} → {last_energy}"
    );
    assert!(
        last_hits >= first_hits + 4,
        "pointing hits {first_hits} → {last_hits}"
    );
}

/// `camwatch demo ARGS` from the repository's folder, which must succeed.
fn demo(args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_camwatch"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("demo")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `camwatch demo --headless`: the shipped epochs replayed into a temporary folder and
/// followed, each reported once with its maps; the folder is gone afterwards.
#[test]
fn demo_replays_the_shipped_run() {
    let out = demo(&["--headless", "--delay", "0.2"]);
    // Checkpoint lines; `metrics` lines follow them as the trust figures arrive.
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["event"] == "checkpoint")
        .collect();
    let mut epochs: Vec<u64> = lines.iter().map(|l| l["epoch"].as_u64().unwrap()).collect();
    epochs.sort();
    assert_eq!(epochs, common::shipped_epochs("checkpoints"));
    for line in &lines {
        assert_eq!(line["status"], "ok");
        assert_eq!(line["samples"].as_array().unwrap().len(), 12);
        let run = Path::new(line["path"].as_str().unwrap()).parent().unwrap();
        assert!(!run.exists(), "{} left behind", run.display());
    }
}

/// `camwatch demo --compare --headless`: both shipped runs replayed side by side, each
/// line naming its run.
#[test]
fn demo_compare_replays_the_shipped_pair() {
    let out = demo(&["--compare", "--headless", "--delay", "0.1"]);
    let mut epochs = std::collections::BTreeMap::<String, Vec<u64>>::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let line: serde_json::Value = serde_json::from_str(line).unwrap();
        if line["event"] == "checkpoint" {
            let run = Path::new(line["run"].as_str().unwrap());
            let name = run.file_name().unwrap().to_string_lossy().into_owned();
            epochs
                .entry(name)
                .or_default()
                .push(line["epoch"].as_u64().unwrap());
        }
    }
    for list in epochs.values_mut() {
        list.sort_unstable();
    }
    assert_eq!(epochs["plain"], common::shipped_epochs("checkpoints"));
    assert_eq!(
        epochs["shortcut"],
        common::shipped_epochs("checkpoints-shortcut")
    );
}

/// The shipped pair: the same network trained on the same shapes, once with a shortcut
/// (each class's training backgrounds tinted). From the epoch the plain run's attention
/// reaches the objects, the shortcut run's stays off them, and it fails the held-out
/// samples the plain run gets right.
#[test]
fn the_shortcut_run_looks_at_the_background() {
    let epochs = last_epoch("checkpoints-shortcut");
    assert!(epochs >= 8, "checkpoints-shortcut/ holds {epochs} epochs");
    let on_object = (1..=epochs)
        .find(|&e| figures_of("checkpoints", e).hits >= 9)
        .expect("the plain run reaches the objects");
    for epoch in on_object..=epochs {
        let (plain, shortcut) = (
            figures_of("checkpoints", epoch),
            figures_of("checkpoints-shortcut", epoch),
        );
        eprintln!(
            "epoch {epoch}: energy {:.2} vs {:.2}, hits {} vs {}, right {} vs {}",
            plain.energy, shortcut.energy, plain.hits, shortcut.hits, plain.right, shortcut.right
        );
        assert!(shortcut.energy < plain.energy, "epoch {epoch}: box energy");
        assert!(shortcut.hits < plain.hits, "epoch {epoch}: pointing hits");
        assert!(
            shortcut.right < plain.right,
            "epoch {epoch}: held-out accuracy"
        );
    }
}
