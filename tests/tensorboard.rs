//! camwatch's TensorBoard event files, read by TensorBoard itself: its
//! EventAccumulator (`tools/read_tensorboard.py`), `tensorboard --logdir` over HTTP (its
//! Rust data server) while `watch --tensorboard` appends, and its Images dashboard in
//! headless Chromium.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::watch::{Watch, demo_checkpoint, history_json, root, run_dir};
use serde_json::Value;

fn camwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_camwatch"))
        .args(args)
        .output()
        .expect("camwatch runs")
}

fn python() -> PathBuf {
    root().join(".venv/bin/python")
}

/// What TensorBoard's EventAccumulator reads from `logdir`.
fn read_logdir(logdir: &Path) -> Value {
    let out = Command::new(python())
        .arg(root().join("tools/read_tensorboard.py"))
        .arg(logdir)
        .output()
        .expect("the reference venv (scripts/setup --reference) has tensorboard");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A run with the demo's first `epochs` checkpoints, watched once with the trust
/// figures `metrics`: its folder, with its history.
fn watched_run(name: &str, epochs: u32, metrics: &str) -> PathBuf {
    let dir = run_dir(name).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for epoch in 1..=epochs {
        std::fs::write(
            dir.join(format!("epoch_{epoch}.pdparams")),
            demo_checkpoint(epoch),
        )
        .unwrap();
    }
    let watch = Watch::start(&dir, &["--metrics", metrics]);
    let lines = watch.take(epochs as usize);
    assert!(lines.iter().all(|l| l["status"] == "ok"), "{lines:?}");
    // The trust figures follow the maps: wait until the history has them all.
    let asked: Vec<&str> = metrics.split(',').filter(|m| *m != "none").collect();
    let deadline = Instant::now() + Duration::from_secs(240);
    while !asked.is_empty() {
        let history = history_json(&dir, &[]);
        let whole = history["checkpoints"].as_array().unwrap().iter().all(|c| {
            c["samples"].as_array().unwrap().iter().all(|s| {
                let figures = &s["metrics"]["gradcam"];
                asked.iter().all(|m| {
                    let key = if *m == "confidence" {
                        "confidence_change".to_string()
                    } else {
                        format!("{m}_auc")
                    };
                    figures[key.as_str()].is_number()
                })
            })
        });
        if whole {
            break;
        }
        assert!(Instant::now() < deadline, "trust figures never completed");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(watch.interrupt().success());
    dir
}

fn samples_dir() -> String {
    root().join("samples").to_string_lossy().into_owned()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * b.abs().max(1.0)
}

#[test]
fn an_export_reads_back_in_tensorboard_as_the_history_has_it() {
    let run = watched_run("tb-export", 3, "confidence,deletion,insertion");
    let logdir = run.parent().unwrap().join("logs");
    let samples = samples_dir();
    let args = [
        "export",
        run.to_str().unwrap(),
        "--samples",
        &samples,
        "--tensorboard",
        logdir.to_str().unwrap(),
        "--image-size",
        "96",
    ];
    let out = camwatch(&args);
    assert!(out.status.success(), "{out:?}");
    let read = read_logdir(&logdir);
    let history = history_json(&run, &[]);
    let checkpoints = history["checkpoints"].as_array().unwrap();
    assert_eq!(checkpoints.len(), 3);

    // Run means and per sample, steps = epochs, values = `history --json`'s.
    let scalars = read["scalars"].as_object().unwrap();
    let steps = |tag: &str| -> Vec<(u64, f64)> {
        scalars[tag]
            .as_array()
            .unwrap_or_else(|| panic!("no {tag}"))
            .iter()
            .map(|r| (r[0].as_u64().unwrap(), r[1].as_f64().unwrap()))
            .collect()
    };
    let per_sample = |figure: &dyn Fn(&Value) -> Option<f64>| -> BTreeMap<(String, u64), f64> {
        let mut values = BTreeMap::new();
        for checkpoint in checkpoints {
            let epoch = checkpoint["epoch"].as_u64().unwrap();
            for sample in checkpoint["samples"].as_array().unwrap() {
                if let Some(v) = figure(sample) {
                    values.insert((sample["name"].as_str().unwrap().to_string(), epoch), v);
                }
            }
        }
        values
    };
    type Getter = Box<dyn Fn(&Value) -> Option<f64>>;
    let figures: Vec<(&str, Getter)> = vec![
        ("target_prob", Box::new(|s| s["target_prob"].as_f64())),
        (
            "box_energy",
            Box::new(|s| s["box_energy"]["gradcam"].as_f64()),
        ),
        (
            "pointing_hits",
            Box::new(|s| s["pointing_hit"]["gradcam"].as_bool().map(f64::from)),
        ),
        (
            "drift",
            Box::new(|s| s["drift"]["gradcam"]["one_minus_corr"].as_f64()),
        ),
        (
            "deletion_auc",
            Box::new(|s| s["metrics"]["gradcam"]["deletion_auc"].as_f64()),
        ),
        (
            "insertion_auc",
            Box::new(|s| s["metrics"]["gradcam"]["insertion_auc"].as_f64()),
        ),
        (
            "confidence_change",
            Box::new(|s| s["metrics"]["gradcam"]["confidence_change"].as_f64()),
        ),
    ];
    for (figure, get) in &figures {
        let expected = per_sample(get.as_ref());
        assert!(!expected.is_empty(), "{figure}: nothing in the history");
        for ((sample, epoch), value) in &expected {
            let tag = format!("camwatch/gradcam/{figure}/{sample}");
            let got = steps(&tag);
            let at = got.iter().find(|(s, _)| s == epoch);
            let (_, v) = at.unwrap_or_else(|| panic!("{tag}: no step {epoch} in {got:?}"));
            assert!(close(*v, *value), "{tag} at {epoch}: {v} vs {value}");
        }
        // The run's mean at each epoch, over the samples that have it.
        let tag = format!("camwatch/gradcam/{figure}");
        let means = steps(&tag);
        let epochs: Vec<u64> = means.iter().map(|(s, _)| *s).collect();
        let wanted: Vec<u64> = expected
            .keys()
            .map(|(_, e)| *e)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(epochs, wanted, "{tag}");
        for (epoch, mean) in means {
            let values: Vec<f64> = expected
                .iter()
                .filter(|((_, e), _)| *e == epoch)
                .map(|(_, v)| *v)
                .collect();
            let want = values.iter().sum::<f64>() / values.len() as f64;
            assert!(close(mean, want), "{tag} at {epoch}: {mean} vs {want}");
        }
    }
    // Samples right: labels from labels.csv.
    assert_eq!(steps("camwatch/gradcam/samples_right").len(), 3);
    // Methods not computed export nothing.
    assert!(!scalars.keys().any(|t| t.starts_with("camwatch/scorecam")));
    let described = read["descriptions"]["camwatch/gradcam/deletion_auc"]
        .as_str()
        .unwrap();
    assert!(described.contains("lower is better"), "{described}");

    // Images: an overlay per sample and epoch, and the grid, decoding at their size.
    let images = read["images"].as_object().unwrap();
    assert_eq!(images.len(), 12 + 1, "{:?}", images.keys());
    for (tag, rows) in images {
        let rows = rows.as_array().unwrap();
        let steps: Vec<u64> = rows.iter().map(|r| r[0].as_u64().unwrap()).collect();
        assert_eq!(steps, [1, 2, 3], "{tag}");
        for row in rows {
            let (w, h, dw, dh) = (
                row[1].as_u64(),
                row[2].as_u64(),
                row[3].as_u64(),
                row[4].as_u64(),
            );
            assert_eq!((w, h), (dw, dh), "{tag}: stated and decoded sizes");
            if tag.ends_with("/grid") {
                assert_eq!((w, h), (Some(4 * 96), Some(3 * 96)), "{tag}");
            } else {
                assert_eq!(w.max(h), Some(96), "{tag}");
            }
        }
    }

    // Run again: nothing new, nothing twice.
    let again = camwatch(&args);
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stdout).contains(": 0 value(s)"),
        "{again:?}"
    );
    let reread = read_logdir(&logdir);
    assert_eq!(reread["scalars"], read["scalars"]);
}

/// Checkpoints found together are computed newest first, and their drift is revised as
/// the older ones arrive: the live writer still writes every epoch, in order, with the
/// drift each has in the end.
/// Also in time: the files are dated against their epochs (epoch 1's the newest), as a
/// copied or checked-out run may be, and the wall times still increase with the epoch,
/// as Aim's importer needs (it drops a value whose wall time does not).
#[test]
fn a_burst_computed_newest_first_is_written_in_training_order() {
    let dir = run_dir("tb-burst");
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let now = std::time::SystemTime::now();
    let dated = |epoch: u64| now - Duration::from_secs(60 * epoch);
    for epoch in 1..=3 {
        let path = run.join(format!("epoch_{epoch}.pdparams"));
        std::fs::write(&path, demo_checkpoint(epoch as u32)).unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(dated(epoch)).unwrap();
    }
    let logdir = dir.join("logs");
    let flags = [
        "--tensorboard",
        logdir.to_str().unwrap(),
        "--image-size",
        "32",
    ];
    let watch = Watch::start(&run, &flags);
    let order: Vec<u64> = watch
        .take(3)
        .iter()
        .map(|l| l["epoch"].as_u64().unwrap())
        .collect();
    // Ended at once: what is held is written on the way out.
    assert!(watch.interrupt().success());
    let read = read_logdir(&logdir);
    let steps = |tag: &str| -> Vec<u64> {
        read["scalars"][tag]
            .as_array()
            .unwrap_or_else(|| panic!("no {tag} (computed in the order {order:?})"))
            .iter()
            .map(|r| r[0].as_u64().unwrap())
            .collect()
    };
    assert_eq!(steps("camwatch/gradcam/box_energy"), [1, 2, 3], "{order:?}");
    let walls: Vec<f64> = read["scalars"]["camwatch/gradcam/box_energy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[2].as_f64().unwrap())
        .collect();
    assert!(walls.windows(2).all(|w| w[1] > w[0]), "{walls:?}");
    let first = dated(1).duration_since(std::time::UNIX_EPOCH).unwrap();
    assert!((walls[0] - first.as_secs_f64()).abs() < 1e-3, "{walls:?}");
    assert_eq!(steps("camwatch/gradcam/drift"), [2, 3], "{order:?}");
    let history = history_json(&run, &[]);
    for (checkpoint, row) in history["checkpoints"].as_array().unwrap()[1..].iter().zip(
        read["scalars"]["camwatch/gradcam/drift/00_disc"]
            .as_array()
            .unwrap(),
    ) {
        let want = checkpoint["samples"][0]["drift"]["gradcam"]["one_minus_corr"]
            .as_f64()
            .unwrap();
        assert!(close(row[1].as_f64().unwrap(), want), "{row} vs {want}");
    }
}

/// Several runs: one subfolder each, named as the comparing view names them, so that
/// TensorBoard overlays them as runs.
#[test]
fn several_runs_export_into_a_subfolder_each() {
    let (a, b) = (
        watched_run("tb-two-plain", 2, "none"),
        watched_run("tb-two-shortcut", 1, "none"),
    );
    let logdir = a.parent().unwrap().join("logs");
    let samples = samples_dir();
    let out = camwatch(&[
        "export",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--samples",
        &samples,
        "--tensorboard",
        logdir.to_str().unwrap(),
        "--image-size",
        "32",
    ]);
    assert!(out.status.success(), "{out:?}");
    for (run, epochs) in [("tb-two-plain", 2), ("tb-two-shortcut", 1)] {
        let read = read_logdir(&logdir.join(run));
        let steps = read["scalars"]["camwatch/gradcam/box_energy"]
            .as_array()
            .unwrap_or_else(|| panic!("{run}: {read}"))
            .len();
        assert_eq!(steps, epochs, "{run}");
    }
}

#[test]
fn a_restarted_watcher_appends_without_repeats_and_leaves_other_files_alone() {
    let dir = run_dir("tb-watch");
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let logdir = dir.join("logs");
    std::fs::create_dir_all(&logdir).unwrap();
    // The trainer's own event file and a torn foreign one: never touched.
    let trainer = logdir.join("events.out.tfevents.1700000000.trainer");
    let foreign = logdir.join("events.out.tfevents.1700000001.broken");
    std::fs::write(&trainer, tfrecord_of_nothing()).unwrap();
    std::fs::write(&foreign, b"\x05\x00\x00\x00garbage").unwrap();
    let before = (
        std::fs::read(&trainer).unwrap(),
        std::fs::read(&foreign).unwrap(),
    );

    std::fs::write(run.join("epoch_1.pdparams"), demo_checkpoint(1)).unwrap();
    let port = free_port();
    let tensorboard = TensorBoard::start(&logdir, port);
    let tb = logdir.to_str().unwrap();
    let flags = ["--tensorboard", tb, "--image-size", "64"];
    let watch = Watch::start(&run, &flags);
    assert_eq!(watch.next()["epoch"], 1);
    tensorboard.wait_for_step("camwatch/gradcam/box_energy", 1);
    // A new checkpoint while TensorBoard serves the folder.
    std::fs::write(run.join("epoch_2.pdparams"), demo_checkpoint(2)).unwrap();
    assert_eq!(watch.next()["epoch"], 2);
    tensorboard.wait_for_step("camwatch/gradcam/box_energy", 2);
    assert!(watch.interrupt().success());

    // TensorBoard stopped meanwhile; camwatch restarted with one more checkpoint: the
    // history is replayed, only epoch 3 is new; TensorBoard started again reads it all.
    drop(tensorboard);
    std::fs::write(run.join("epoch_3.pdparams"), demo_checkpoint(3)).unwrap();
    let watch = Watch::start(&run, &flags);
    let mut epochs: Vec<u64> = watch
        .take(3)
        .iter()
        .map(|l| l["epoch"].as_u64().unwrap())
        .collect();
    epochs.sort();
    assert_eq!(epochs, [1, 2, 3]);
    let tensorboard = TensorBoard::start(&logdir, free_port());
    tensorboard.wait_for_step("camwatch/gradcam/box_energy", 3);
    assert!(watch.interrupt().success());

    let read = read_logdir(&logdir);
    for (tag, rows) in read["scalars"].as_object().unwrap() {
        let steps: Vec<u64> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[0].as_u64().unwrap())
            .collect();
        // Drift is since the previous checkpoint: none at the first.
        let first = if tag.contains("/drift") { 2 } else { 1 };
        assert_eq!(
            steps,
            (first..=3).collect::<Vec<_>>(),
            "{tag}: each step once, in order"
        );
    }
    let images = read["images"].as_object().unwrap();
    assert!(images.contains_key("cam/gradcam/grid"));
    for (tag, rows) in images {
        assert_eq!(rows.as_array().unwrap().len(), 3, "{tag}");
    }
    let after = (
        std::fs::read(&trainer).unwrap(),
        std::fs::read(&foreign).unwrap(),
    );
    assert_eq!(before, after, "other programs' files are left alone");

    // TensorBoard's Images dashboard, as a person sees it.
    tensorboard.screenshot(&dir.join("images-dashboard.png"));
}

/// A full disk ends the export with one line naming the file, and what is on the disk
/// reads back whole (no torn record). Needs a small tmpfs: root, and mount allowed.
#[test]
fn a_full_disk_ends_the_export_with_one_line_and_no_torn_record() {
    let run = watched_run("tb-full", 2, "none");
    let mount = run.parent().unwrap().join("small");
    std::fs::create_dir_all(&mount).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=400k", "tmpfs"])
        .arg(&mount)
        .status();
    if !mounted.is_ok_and(|s| s.success()) {
        eprintln!("skipped: a small tmpfs could not be mounted (needs root)");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&mount);
    let samples = samples_dir();
    let out = camwatch(&[
        "export",
        run.to_str().unwrap(),
        "--samples",
        &samples,
        "--tensorboard",
        mount.to_str().unwrap(),
        "--image-size",
        "64",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("No space left on device") && stderr.contains("tfevents"),
        "{stderr}"
    );
    // Whole records only: TensorBoard reads every one, and camwatch's own reader finds
    // the file whole.
    let read = read_logdir(&mount);
    let epochs = &read["scalars"]["camwatch/gradcam/box_energy"];
    assert_eq!(epochs[0][0], 1, "the first epoch fits: {read}");
    let log = camwatch::tensorboard::EventLog::open(&mount).unwrap();
    assert!(log.unreadable.is_empty(), "{:?}", log.unreadable);
}

/// A file of one TFRecord holding an empty record (what a trainer's writer might leave).
fn tfrecord_of_nothing() -> Vec<u8> {
    // length 0, its masked CRC, no data, the masked CRC of nothing.
    let mask = |crc: u32| crc.rotate_right(15).wrapping_add(0xa282_ead8);
    let mut out = 0u64.to_le_bytes().to_vec();
    out.extend(mask(crc32c_of(&0u64.to_le_bytes())).to_le_bytes());
    out.extend(mask(0).to_le_bytes());
    out
}

/// CRC-32C, bit by bit (the test's own, not the writer's).
fn crc32c_of(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `tensorboard --logdir` on loopback, stopped when dropped.
struct TensorBoard {
    child: Child,
    port: u16,
}

impl TensorBoard {
    fn start(logdir: &Path, port: u16) -> TensorBoard {
        let child = Command::new(root().join(".venv/bin/tensorboard"))
            .arg("--logdir")
            .arg(logdir)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--reload_interval", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tensorboard (scripts/setup --reference installs it)");
        TensorBoard { child, port }
    }

    fn get(&self, path: &str) -> Option<Value> {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "5"])
            .arg(format!("http://127.0.0.1:{}{path}", self.port))
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Waits until TensorBoard serves `tag` (of the folder's run `.`) up to `step`.
    fn wait_for_step(&self, tag: &str, step: u64) {
        let start = Instant::now();
        loop {
            let path = format!("/data/plugin/scalars/scalars?run=.&tag={tag}");
            let served = self.get(&path);
            let steps: Vec<u64> = served
                .as_ref()
                .and_then(Value::as_array)
                .map(|rows| rows.iter().filter_map(|r| r[1].as_u64()).collect())
                .unwrap_or_default();
            if steps.last() == Some(&step) {
                assert_eq!(steps, (1..=step).collect::<Vec<_>>(), "{tag}");
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "TensorBoard never served {tag} at step {step}: {served:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The Images dashboard in headless Chromium, as a PNG at `to`.
    fn screenshot(&self, to: &Path) {
        let profile = tempfile::tempdir().unwrap();
        let out = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--window-size=1400,1000",
                "--virtual-time-budget=15000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--screenshot={}", to.display()))
            .arg(format!(
                "http://127.0.0.1:{}/?darkMode=false#images",
                self.port
            ))
            .output()
            .expect("chromium (scripts/test installs it)");
        assert!(to.exists(), "no screenshot: {out:?}");
        let image = image::open(to).unwrap().to_rgb8();
        // The dashboard's overlays: the jet colour map's reds and blues, not only the
        // page's greys.
        let coloured = image
            .pixels()
            .filter(|p| {
                let [r, g, b] = p.0.map(i32::from);
                (r - b).abs() > 80 && (r.max(b) - g) > 40
            })
            .count();
        assert!(
            coloured > 500,
            "no overlay on the Images dashboard ({coloured} px)"
        );
    }
}

impl Drop for TensorBoard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
