//! The `.pdparams` layouts in the fuzz seed corpus (fuzz/make_seeds.py, and
//! fuzz/make_numpy1_seeds.py for NumPy 1 `numpy.core` pickles): protocols 2 to
//! 5, split arrays, Tensors nested under `model`, Fortran order, big-endian, float16/float64 and
//! integer arrays, each read to the values NumPy holds.

use std::collections::BTreeMap;
use std::path::PathBuf;

use camwatch::checkpoint::pdparams;

#[derive(serde::Deserialize)]
struct Expected {
    shape: Vec<usize>,
    values: Vec<f32>,
}

fn seeds() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds")
}

#[test]
fn every_seed_reads_to_numpy_values() {
    let expected: BTreeMap<String, Expected> =
        serde_json::from_str(&std::fs::read_to_string(seeds().join("expected.json")).unwrap())
            .unwrap();
    let mut files = 0;
    for entry in std::fs::read_dir(seeds()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "pdparams") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let weights = pdparams::read(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!weights.tensors.is_empty(), "{name}: no tensors");
        for (key, tensor) in &weights.tensors {
            let want = &expected[key];
            assert_eq!(tensor.shape, want.shape, "{name}: {key}");
            assert_eq!(tensor.values, want.values, "{name}: {key}");
        }
        if name.starts_with("numpy") {
            assert_eq!(weights.skipped, ["i"], "{name}: the int64 array is skipped");
            assert_eq!(weights.tensors.len(), 2, "{name}");
        } else {
            assert_eq!(weights.tensors.len(), 4, "{name}");
        }
        files += 1;
    }
    assert_eq!(files, 9);
}

/// Inputs the fuzzer found problems with (tests/fuzz_cases/), kept after the fix: each
/// reads or is rejected without a panic. `self-reference-leak` memoises a dict and
/// stores it inside itself; it leaked until `Pickle` learned to break such cycles
/// (checked by the pickle module's own tests).
#[test]
fn fuzz_findings_stay_fixed() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_cases");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let _ = pdparams::read(&data);
        let _ = camwatch::checkpoint::parse(&data);
        count += 1;
    }
    assert!(count > 0);
}
