//! Every kind of bad weight file gives a one-line error that names the file and the
//! problem, and a non-zero exit status; none panics.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use camwatch::checkpoint;
use common::fixtures;

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bad_input");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Runs `camwatch info FILE`; returns its single stderr line.
fn info_error(path: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_camwatch"))
        .args(["info", "--device", "cpu"])
        .arg(path)
        .output()
        .expect("camwatch runs");
    let stderr = String::from_utf8_lossy(&output.stderr)
        .trim_end()
        .to_string();
    assert!(
        !output.status.success(),
        "{}: exit status 0",
        path.display()
    );
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains(&path.display().to_string()),
        "the message does not name the file: {stderr}"
    );
    stderr
}

fn truncated_copy(source: &str, fraction: f64) -> PathBuf {
    let data = std::fs::read(fixtures().join(source)).unwrap();
    let path = scratch(&format!("truncated-{source}"));
    std::fs::write(&path, &data[..(data.len() as f64 * fraction) as usize]).unwrap();
    path
}

#[test]
fn truncated_files() {
    let e = info_error(&truncated_copy("paddle_small.p4.pdparams", 0.6));
    assert!(e.contains("ends") && e.contains("truncated"), "{e}");
    let e = info_error(&truncated_copy("timm_small.pth", 0.6));
    assert!(e.contains("end-of-central-directory"), "{e}");
    let e = info_error(&truncated_copy("timm_small.safetensors", 0.6));
    assert!(e.contains("truncated"), "{e}");
}

#[test]
fn files_that_are_not_checkpoints() {
    let random = scratch("random.pdparams");
    // Deterministic noise that starts like no known format.
    let bytes: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 1)
        .collect();
    std::fs::write(&random, bytes).unwrap();
    let e = info_error(&random);
    assert!(e.contains("not a checkpoint"), "{e}");

    let empty = scratch("empty.pth");
    std::fs::write(&empty, b"").unwrap();
    assert!(info_error(&empty).contains("empty file"));

    let text = scratch("notes.safetensors");
    std::fs::write(&text, "epoch 3: loss 0.12\n").unwrap();
    assert!(info_error(&text).contains("not a checkpoint"));

    let e = info_error(&scratch("does-not-exist.pdparams"));
    assert!(e.contains("cannot read"), "{e}");
}

#[test]
fn a_family_camwatch_does_not_read_is_named() {
    let e = info_error(&fixtures().join("networks/unsupported/regnetx_002.pth"));
    assert!(e.contains("a RegNet"), "{e}");
    assert!(e.contains("s1.b1.conv1"), "names the tensor that told: {e}");
    assert!(e.contains("ConvNeXt"), "says what camwatch reads: {e}");
}

#[test]
fn shape_mismatch_names_the_tensor_and_both_shapes() {
    let e = info_error(&fixtures().join("bad_shape.pdparams"));
    assert!(e.contains("\"bb_2_3.conv2._conv.weight\""), "{e}");
    assert!(
        e.contains("[1024, 208, 3, 3]") && e.contains("[1024, 416, 1, 1]"),
        "{e}"
    );
}

#[test]
fn missing_tensors_are_all_counted() {
    let e = info_error(&fixtures().join("bad_missing.pdparams"));
    assert!(e.contains("2 tensor(s) missing"), "{e}");
    assert!(
        e.contains("bb_1_0.res3a_branch2b_2._batch_norm._variance"),
        "{e}"
    );
}

/// Cutting a file anywhere gives an error, never a panic or a silently partial result.
#[test]
fn every_prefix_of_a_checkpoint_is_rejected() {
    for name in [
        "paddle_small.p2.pdparams",
        "paddle_small.p4.pdparams",
        "timm_small.pth",
        "timm_small.safetensors",
    ] {
        let data = std::fs::read(fixtures().join(name)).unwrap();
        let full = checkpoint::parse(&data).expect("the whole file reads");
        assert!(checkpoint::complete::is_complete(&data), "{name}: complete");
        let step = (data.len() / 400).max(1);
        for end in (0..data.len()).step_by(step) {
            assert!(
                !checkpoint::complete::is_complete(&data[..end]),
                "{name}: a prefix of {end} bytes looks complete"
            );
            if let Ok((_, partial)) = checkpoint::parse(&data[..end]) {
                // A safetensors or pickle prefix can only parse if nothing was lost.
                assert_eq!(
                    partial.tensors, full.1.tensors,
                    "{name}: a prefix of {end} bytes parsed to different tensors"
                );
            }
        }
    }
}
