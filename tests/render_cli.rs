//! `camwatch render` and `camwatch show` as scripts use them: the files design.md
//! promises, camwatch.toml defaults under flags, clear errors.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::fixtures;

fn camwatch<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_camwatch"))
        .args(args)
        .output()
        .expect("camwatch runs")
}

/// `camwatch render` of the small timm fixture on `samples` into `out`, on the CPU.
fn render_args(samples: &Path, out: &Path) -> Vec<String> {
    let checkpoint = fixtures().join("timm_small.pth");
    [
        "render",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--samples",
        samples.to_str().unwrap(),
    ]
    .into_iter()
    .chain(["--out", out.to_str().unwrap(), "--device", "cpu"])
    .map(str::to_string)
    .collect()
}

/// Two fixture images, one of them resized to 120×80, with boxes and a camwatch.toml.
fn sample_dir(name: &str, toml: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let source = fixtures().join("cam_samples");
    std::fs::copy(source.join("sample0.png"), dir.join("a.png")).unwrap();
    let wide = image::open(source.join("sample1.png"))
        .unwrap()
        .resize_exact(120, 80, image::imageops::FilterType::Triangle);
    wide.save(dir.join("b.jpg")).unwrap();
    std::fs::write(
        dir.join("labels.csv"),
        "file,label,x0,y0,x1,y1\na.png,1,10,20,100,120\nb.jpg,class2,,,,\n",
    )
    .unwrap();
    std::fs::write(dir.join("classes.txt"), "c0\nc1\nclass2\nc3\nc4\nc5\n").unwrap();
    std::fs::write(dir.join("camwatch.toml"), toml).unwrap();
    dir
}

fn npy_shape(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = String::from_utf8_lossy(&bytes[10..10 + len]).to_string();
    let start = header.find("'shape': (").unwrap() + 10;
    header[start..start + header[start..].find(')').unwrap()].to_string()
}

#[test]
fn render_writes_maps_overlays_and_summary() {
    let samples = sample_dir(
        "render_samples",
        "methods = [\"gradcam\", \"eigencam\"]\nlayer = \"stage3\"\ninput_size = 64\n",
    );
    let out = samples.with_file_name("render_out");
    let _ = std::fs::remove_dir_all(&out);
    let mut args = render_args(&samples, &out);
    args.push("--side-by-side".into());
    let output = camwatch(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    for (stem, size) in [("a", (224, 224)), ("b", (120, 80))] {
        for method in ["gradcam", "eigencam"] {
            // stage 3 of a 64×64 input: 64 / 16 = 4.
            assert_eq!(npy_shape(&out.join(format!("{stem}.{method}.npy"))), "4, 4");
            let png = image::open(out.join(format!("{stem}.{method}.png"))).unwrap();
            assert_eq!((png.width(), png.height()), size, "{stem}.{method}.png");
            let side = image::open(out.join(format!("{stem}.{method}.side.png"))).unwrap();
            assert_eq!(side.width(), 3 * size.0);
        }
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["format"], "torch");
    assert_eq!(summary["arch"]["variant"], "timm");
    assert_eq!(summary["arch"]["depth"], serde_json::json!([2, 1, 3, 1]));
    assert_eq!(summary["arch"]["scales"], 4);
    assert_eq!(summary["layer"], "stage3");
    let timings = &summary["timings_ms"];
    for key in ["load", "forward", "cam", "total"] {
        assert!(timings[key].as_f64().unwrap() > 0.0, "timings_ms.{key}");
    }
    assert!(timings["total"].as_f64() >= timings["load"].as_f64());
    let samples = summary["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 2);
    let a = &samples[0];
    assert_eq!(a["name"], "a");
    assert_eq!(a["maps"]["gradcam"], "a.gradcam.png");
    assert_eq!(a["logits"].as_array().unwrap().len(), 6);
    let probs: f64 = a["probs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap())
        .sum();
    assert!((probs - 1.0).abs() < 1e-4);
    let energy = a["box_energy"]["gradcam"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&energy));
    assert!(a["pointing_hit"]["eigencam"].is_boolean());
    // b has a label but no box: no box figures.
    assert!(samples[1].get("box_energy").is_none());
}

#[test]
fn flags_override_camwatch_toml_and_errors_are_one_line() {
    let samples = sample_dir(
        "override_samples",
        "methods = [\"gradcam\"]\nlayer = \"stage3\"\ninput_size = 64\n",
    );
    let out = samples.with_file_name("override_out");
    let base = render_args(&samples, &out);
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter()
            .cloned()
            .chain(extra.iter().map(|e| e.to_string()))
            .collect()
    };
    // `cam` needs the last layer; the file says stage3.
    let output = camwatch(&with(&["--method", "cam"]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("needs --layer last") && stderr.lines().count() == 1,
        "{stderr}"
    );
    let output = camwatch(&with(&[
        "--method", "cam", "--layer", "stage4", "--target", "label",
    ]));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["samples"][0]["target"], 1);
    assert_eq!(
        summary["samples"][1]["target"], 2,
        "label given by class name"
    );

    std::fs::write(samples.join("camwatch.toml"), "normalise = \"none\"\n").unwrap();
    let output = camwatch(&base);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success()
            && stderr.contains("camwatch.toml")
            && stderr.contains("normalise"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

#[test]
fn show_prints_an_overlay() {
    let image = fixtures().join("cam_samples_64/sample0.png");
    let checkpoint = fixtures().join("timm_small.pth");
    let output = camwatch(&[
        "show",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--input-size",
        "64",
        "--device",
        "cpu",
        "--width",
        "20",
        image.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("sample0 · gradcam · stage4 · target class"),
        "{stdout}"
    );
    assert!(stdout.contains("\x1b["), "no colour blocks printed");
    // Not a terminal: halfblocks with cells of 1:2, so a square image is 20 columns by
    // 10 rows.
    let rows: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 10, "{stdout}");
    for row in rows {
        // One background colour a cell.
        assert_eq!(row.matches("\x1b[48;2;").count(), 20, "{row:?}");
    }
}

fn npy_values(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    bytes[10 + len..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// `--precision bf16` runs the forward pass in bf16, says so in summary.json, and
/// gives maps that correlate with fp32's.
#[test]
fn bf16_renders_like_fp32_and_says_so() {
    let samples = sample_dir("precision", "");
    let mut maps = Vec::new();
    for precision in ["fp32", "bf16"] {
        let out = samples
            .parent()
            .unwrap()
            .join(format!("precision-{precision}"));
        let mut args = render_args(&samples, &out);
        args.extend(["--precision".to_string(), precision.to_string()]);
        let output = camwatch(&args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        assert_eq!(summary["precision"], precision);
        maps.push(npy_values(&out.join("a.gradcam.npy")));
    }
    let r = camwatch::cam::measures::pearson(&maps[0], &maps[1]);
    assert!(r > 0.99, "correlation {r}");
}

/// ScoreCAM's masked passes that run out of device memory are made again with half as
/// many images (here a test hook fails every pass of more than 8 on the CPU): the maps
/// are those of 8 images per pass from the start.
#[test]
fn scorecam_backs_off_when_memory_runs_out() {
    let samples = sample_dir("scorecam-memory", "");
    let mut maps = Vec::new();
    for (batch, limit) in [("8", None), ("64", Some("8"))] {
        let out = samples
            .parent()
            .unwrap()
            .join(format!("scorecam-memory-{batch}"));
        let mut args = render_args(&samples, &out);
        args.extend(
            [
                "--method",
                "scorecam",
                "--metrics",
                "none",
                "--batch",
                batch,
            ]
            .map(String::from),
        );
        let mut command = Command::new(env!("CARGO_BIN_EXE_camwatch"));
        command.args(&args);
        if let Some(limit) = limit {
            command.env("CAMWATCH_FAKE_SCORECAM_MEMORY", limit);
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "--batch {batch}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        maps.push(npy_values(&out.join("a.scorecam.npy")));
    }
    let r = camwatch::cam::measures::pearson(&maps[0], &maps[1]);
    assert!(r > 0.99999, "correlation {r}");
}

/// Bare `camwatch` is `watch` and takes its flags.
#[test]
fn bare_camwatch_takes_the_ui_flags() {
    let help = camwatch(&["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--protocol", "--headless", "--overlay", "--snapshots"] {
        assert!(help.contains(flag), "{flag} in\n{help}");
    }
    let wrong = camwatch(&["--protocol", "pictures"]);
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        !wrong.status.success()
            && stderr.contains("expected auto, kitty, sixel, iterm2 or halfblocks"),
        "{stderr}"
    );
    // A flag of the UI, without a terminal: the UI's own refusal, not clap's.
    let ui = camwatch(&[
        "--protocol",
        "halfblocks",
        "--samples",
        "samples",
        "checkpoints",
    ]);
    let stderr = String::from_utf8_lossy(&ui.stderr);
    assert!(stderr.contains("stdout is not a terminal"), "{stderr}");
}

/// Each overlay style draws differently; `--image-weight` implies gradcam.
#[test]
fn overlay_styles_differ() {
    let samples = sample_dir("styles", "");
    let mut pixels = Vec::new();
    for style in [
        &["--overlay", "alpha"][..],
        &["--overlay", "writeup"],
        &["--image-weight", "0.3"],
    ] {
        let out = samples
            .parent()
            .unwrap()
            .join(format!("styles-{}", style[1]));
        let mut args = render_args(&samples, &out);
        args.extend(style.iter().map(|s| s.to_string()));
        let output = camwatch(&args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let png = out.join("a.gradcam.png");
        pixels.push(image::open(png).unwrap().to_rgb8().into_raw());
    }
    assert!(pixels[0] != pixels[1] && pixels[1] != pixels[2] && pixels[0] != pixels[2]);
}

/// A failed render's single stderr line.
fn render_error(samples: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = render_args(samples, out);
    args.extend(extra.iter().map(|s| s.to_string()));
    let output = camwatch(&args);
    let stderr = String::from_utf8_lossy(&output.stderr)
        .trim_end()
        .to_string();
    assert!(!output.status.success(), "succeeded: {args:?}");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// Sample sets that used to be accepted and then crash, overwrite or mislead.
#[test]
fn bad_sample_sets_are_refused_with_one_line() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bad-samples-out");

    let dir = sample_dir("bad-samples-stem", "");
    std::fs::copy(dir.join("a.png"), dir.join("a.jpg")).unwrap();
    let error = render_error(&dir, &out, &[]);
    assert!(
        error.contains("a.png") && error.contains("same name"),
        "{error}"
    );

    let dir = sample_dir("bad-samples-box", "");
    std::fs::write(
        dir.join("labels.csv"),
        "file,label,x0,y0,x1,y1\na.png,1,NaN,0,10,10\n",
    )
    .unwrap();
    let error = render_error(&dir, &out, &[]);
    assert!(
        error.contains("labels.csv") && error.contains("finite"),
        "{error}"
    );

    let dir = sample_dir("bad-samples-jpeg", "");
    let jpeg = std::fs::read(dir.join("b.jpg")).unwrap();
    std::fs::write(dir.join("b.jpg"), &jpeg[..jpeg.len() * 2 / 3]).unwrap();
    let error = render_error(&dir, &out, &[]);
    assert!(
        error.contains("b.jpg") && error.contains("truncated JPEG"),
        "{error}"
    );

    let dir = sample_dir("bad-samples-size", "input_size = 0\n");
    let error = render_error(&dir, &out, &[]);
    assert!(
        error.contains("camwatch.toml") && error.contains("32..=2048"),
        "{error}"
    );
    let dir = sample_dir("bad-samples-flag", "");
    let mut args = render_args(&dir, &out);
    args.extend(["--input-size".into(), "60000".into()]);
    let output = camwatch(&args);
    assert_eq!(output.status.code(), Some(2), "clap refuses it");
    assert!(String::from_utf8_lossy(&output.stderr).contains("outside 32..=2048"));

    let dir = sample_dir("bad-samples-fifo", "");
    let status = Command::new("mkfifo")
        .arg(dir.join("c.png"))
        .status()
        .unwrap();
    assert!(status.success());
    let error = render_error(&dir, &out, &[]);
    assert!(error.contains("c.png") && error.contains("FIFO"), "{error}");
}

/// Rendering over an earlier render: the old summary goes first, the new one comes
/// last, and what the old run wrote that this one does not is removed.
#[test]
fn render_over_an_earlier_render_leaves_no_stale_outputs() {
    let dir = sample_dir("render-over", "");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("render-over-out");
    let _ = std::fs::remove_dir_all(&out);
    let mut first = render_args(&dir, &out);
    first.extend([
        "--method".into(),
        "gradcam,eigencam".into(),
        "--side-by-side".into(),
    ]);
    assert!(camwatch(&first).status.success());
    assert!(out.join("a.eigencam.side.png").exists());
    std::fs::write(out.join("notes.txt"), "mine").unwrap();

    let mut second = render_args(&dir, &out);
    second.extend(["--method".into(), "gradcam".into()]);
    assert!(camwatch(&second).status.success());
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "a.gradcam.npy",
            "a.gradcam.png",
            "b.gradcam.npy",
            "b.gradcam.png",
            "notes.txt",
            "summary.json"
        ],
        "stale outputs of the first run (eigencam, side-by-side) removed, nothing else"
    );
}
