//! `camwatch watch --headless` against the ways checkpoints really appear: written slowly,
//! cut short, renamed into place, hard-linked, rewritten, deleted, garbage; a kill -9 in
//! the middle of writing the history; restarts; and real trainers (PaddlePaddle, timm).

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::watch::{
    Watch, demo_checkpoint, file_name, history_json, root, run_dir, statuses, str_of,
};

use serde_json::Value;

/// Writes `data` to `path` in `pieces`, pausing between them, as a slow disk would.
fn write_slowly(path: &Path, data: &[u8], pieces: usize, pause: Duration) {
    let mut file = std::fs::File::create(path).unwrap();
    for chunk in data.chunks(data.len().div_ceil(pieces)) {
        file.write_all(chunk).unwrap();
        file.flush().unwrap();
        std::thread::sleep(pause);
    }
}

fn assert_ok_with_maps(v: &Value) {
    assert_eq!(str_of(v, "status"), "ok", "{v}");
    let samples = v["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 12);
    for s in samples {
        assert_eq!(s["maps"]["gradcam"]["height"], 7, "{s}");
        assert!(s["box_energy"]["gradcam"].is_number());
        assert!(s["target_prob"].as_f64().unwrap() > 0.0);
    }
}

/// A file its writer has closed, or renamed into place, is read at once: not after
/// `--settle`, which stays for polling and network file systems.
#[test]
fn a_closed_checkpoint_is_read_without_the_settling_time() {
    let dir = run_dir("watch-closed");
    let watch = Watch::start(&dir, &["--settle", "60"]);
    let started = Instant::now();
    while !watch.stderr.lock().unwrap().contains("watching") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "camwatch did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The file-system watch is set up right after that line.
    std::thread::sleep(Duration::from_secs(2));
    let written = Instant::now();
    std::fs::write(dir.join("epoch_1.pdparams"), demo_checkpoint(1)).unwrap();
    assert_ok_with_maps(&watch.next());
    let renamed = Instant::now();
    std::fs::write(dir.join("epoch_2.tmp"), demo_checkpoint(2)).unwrap();
    std::fs::rename(dir.join("epoch_2.tmp"), dir.join("epoch_2.pdparams")).unwrap();
    let line = watch.next();
    assert_eq!(line["epoch"], 2);
    let (first, second) = (renamed - written, renamed.elapsed());
    assert!(
        first < Duration::from_secs(20) && second < Duration::from_secs(20),
        "{first:?} and {second:?}: waited for --settle 60"
    );
    assert!(watch.interrupt().success());
}

#[test]
fn follows_checkpoints_once_and_restarts_from_history() {
    let dir = run_dir("watch-follow");
    let watch = Watch::start(&dir, &[]);
    for epoch in 1..=3 {
        std::fs::write(
            dir.join(format!("epoch_{epoch}.pdparams")),
            demo_checkpoint(epoch),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    let lines = watch.take(3);
    let epochs: BTreeSet<u64> = lines.iter().map(|v| v["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, BTreeSet::from([1, 2, 3]));
    for v in &lines {
        assert_eq!(str_of(v, "event"), "checkpoint");
        assert_eq!(str_of(v, "source"), "computed");
        assert_eq!(str_of(v, "precision"), "fp32");
        assert!(v["ms"].as_f64().unwrap() > 0.0);
        assert_ok_with_maps(v);
    }
    watch.expect_quiet(Duration::from_secs(2));
    assert!(watch.interrupt().success(), "SIGINT ends it with status 0");

    // A restart reports the whole history at once, in order, without computing.
    let start = Instant::now();
    let watch = Watch::start(&dir, &[]);
    let lines = watch.take(3);
    let restart = start.elapsed();
    assert!(restart < Duration::from_secs(10), "{restart:?}");
    let epochs: Vec<u64> = lines.iter().map(|v| v["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, [1, 2, 3]);
    for (i, v) in lines.iter().enumerate() {
        assert_eq!(str_of(v, "source"), "history");
        assert_ok_with_maps(v);
        let drift = &v["samples"][0]["drift"];
        if i == 0 {
            assert!(drift.is_null());
        } else {
            let d = drift["gradcam"]["one_minus_corr"].as_f64().unwrap();
            let iou = drift["gradcam"]["top20_iou"].as_f64().unwrap();
            assert!(
                (0.0..=2.0).contains(&d) && (0.0..=1.0).contains(&iou),
                "{drift}"
            );
        }
    }
    watch.expect_quiet(Duration::from_secs(1));
    assert!(
        watch.signal("-TERM").success(),
        "SIGTERM ends it with status 0"
    );

    let dump = history_json(&dir, &[]);
    let checkpoints = dump["checkpoints"].as_array().unwrap();
    let epochs: Vec<u64> = checkpoints
        .iter()
        .map(|c| c["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, [1, 2, 3]);
    assert_eq!(dump["precision"], "fp32");
    // bf16 rows are kept apart: none were computed, so none are read.
    let bf16 = history_json(&dir, &["--precision", "bf16", "--device", "cpu"]);
    assert_eq!(bf16["precision"], "bf16");
    for c in bf16["checkpoints"].as_array().unwrap() {
        assert_eq!(c["samples"].as_array().map(Vec::len), Some(0), "{c}");
    }
    for c in checkpoints {
        assert_eq!(c["hash"].as_str().unwrap().len(), 64);
        assert!(c["time"].as_str().unwrap().ends_with('Z'));
        assert_ok_with_maps(c);
    }
}

#[test]
fn slow_cut_short_garbage_and_foreign_files() {
    let dir = run_dir("watch-faults");
    let watch = Watch::start(&dir, &["--give-up", "2"]);

    // Written in five pieces with pauses longer than the settling time: read only whole.
    write_slowly(
        &dir.join("epoch_4.pdparams"),
        &demo_checkpoint(4),
        5,
        Duration::from_millis(400),
    );
    let v = watch.next();
    assert_eq!(file_name(&v), "epoch_4.pdparams");
    assert_ok_with_maps(&v);

    // Cut short and never finished: reported once it has stood still for --give-up.
    let whole = demo_checkpoint(5);
    std::fs::write(dir.join("epoch_5.pdparams"), &whole[..whole.len() * 3 / 5]).unwrap();
    let v = watch.next();
    assert_eq!(file_name(&v), "epoch_5.pdparams");
    assert_eq!(str_of(&v, "status"), "error");
    let error = str_of(&v, "error");
    assert!(
        error.contains("epoch_5.pdparams") && error.contains("STOP"),
        "{error}"
    );
    assert!(!error.contains('\n'));

    // Random bytes and another network (a MobileNetV3): errors, and it goes on.
    std::fs::write(
        dir.join("noise.pdparams"),
        b"this is not a checkpoint\n".repeat(40),
    )
    .unwrap();
    let v = watch.next();
    assert_eq!(str_of(&v, "status"), "error");
    assert!(str_of(&v, "error").contains("noise.pdparams"));
    std::fs::copy(
        common::fixtures().join("mobilenet.pth"),
        dir.join("mobilenet.pth"),
    )
    .unwrap();
    let v = watch.next();
    assert_eq!(str_of(&v, "status"), "error");
    assert!(str_of(&v, "error").contains("mobilenet.pth"), "{v}");

    // The cut file completed: retried, and recorded.
    std::fs::write(dir.join("epoch_5.pdparams"), &whole).unwrap();
    let v = watch.next();
    assert_eq!(file_name(&v), "epoch_5.pdparams");
    assert_ok_with_maps(&v);
    watch.expect_quiet(Duration::from_secs(3));
    assert!(watch.interrupt().success());

    let dump = history_json(&dir, &[]);
    let statuses = statuses(&dump);
    for expected in [
        ("epoch_4.pdparams", "ok"),
        ("epoch_5.pdparams", "ok"),
        ("epoch_5.pdparams", "error"),
        ("noise.pdparams", "error"),
        ("mobilenet.pth", "error"),
    ] {
        let expected = (expected.0.to_string(), expected.1.to_string());
        assert!(statuses.contains(&expected), "{expected:?} in {statuses:?}");
    }
}

#[test]
fn renamed_linked_rewritten_and_deleted_files() {
    let dir = run_dir("watch-names");
    let watch = Watch::start(&dir, &[]);

    // timm: written as tmp.*, renamed into place, hard-linked under the epoch's name.
    write_slowly(
        &dir.join("tmp.pdparams"),
        &demo_checkpoint(1),
        3,
        Duration::from_millis(300),
    );
    std::fs::rename(dir.join("tmp.pdparams"), dir.join("last.pdparams")).unwrap();
    let v = watch.next();
    assert_eq!(file_name(&v), "last.pdparams");
    assert_eq!(str_of(&v, "source"), "computed");
    let hash = str_of(&v, "hash").to_string();
    std::fs::hard_link(dir.join("last.pdparams"), dir.join("checkpoint-1.pdparams")).unwrap();
    let v = watch.next();
    assert_eq!(file_name(&v), "checkpoint-1.pdparams");
    assert_eq!(v["epoch"], 1);
    assert_eq!(str_of(&v, "hash"), hash);
    assert_eq!(
        str_of(&v, "source"),
        "history",
        "same content, not computed again"
    );

    // latest.pdparams rewritten in place every epoch: each content recorded.
    let mut hashes = BTreeSet::from([hash]);
    for epoch in [2, 3] {
        std::fs::write(dir.join("latest.pdparams"), demo_checkpoint(epoch)).unwrap();
        let v = watch.next();
        assert_eq!(file_name(&v), "latest.pdparams");
        assert_eq!(str_of(&v, "source"), "computed");
        assert!(hashes.insert(str_of(&v, "hash").to_string()));
    }

    // Deleted files leave the history alone.
    std::fs::remove_file(dir.join("last.pdparams")).unwrap();
    std::fs::remove_file(dir.join("checkpoint-1.pdparams")).unwrap();
    watch.expect_quiet(Duration::from_secs(2));
    assert!(watch.interrupt().success());
    let dump = history_json(&dir, &[]);
    let recorded: BTreeSet<String> = dump["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| str_of(c, "hash").to_string())
        .collect();
    assert_eq!(recorded, hashes);
    let first = &dump["checkpoints"][0];
    assert_eq!(first["epoch"], 1, "{first}");
    assert_ok_with_maps(first);
}

#[test]
fn kill_9_at_any_moment_loses_nothing() {
    let dir = run_dir("watch-kill");
    for epoch in 1..=12 {
        std::fs::write(
            dir.join(format!("epoch_{epoch}.pdparams")),
            demo_checkpoint(epoch),
        )
        .unwrap();
    }
    // Killed at moments spread over start-up, computing and writing the history.
    for round in 0..6u64 {
        let watch = Watch::start(&dir, &[]);
        std::thread::sleep(Duration::from_millis(300 + 170 * round));
        let status = watch.signal("-KILL");
        assert!(!status.success());
    }
    let watch = Watch::start(&dir, &[]);
    let mut seen = Vec::new();
    while seen.len() < 12 {
        let v = watch.next();
        assert_ok_with_maps(&v);
        seen.push(v["epoch"].as_u64().unwrap());
    }
    seen.sort();
    assert_eq!(
        seen,
        (1..=12).collect::<Vec<_>>(),
        "each epoch exactly once"
    );
    watch.expect_quiet(Duration::from_secs(2));
    assert!(watch.interrupt().success());

    common::assert_history_intact(&dir.join(".camwatch/history.sqlite"));
    let db = rusqlite::Connection::open(dir.join(".camwatch/history.sqlite")).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT COUNT(*) FROM checkpoints"), 12);
    assert_eq!(count("SELECT COUNT(*) FROM predictions"), 12 * 12);
    assert_eq!(count("SELECT COUNT(*) FROM maps"), 12 * 12);
}

#[test]
fn a_new_method_computes_only_what_is_missing() {
    let dir = run_dir("watch-methods");
    for epoch in [1, 2] {
        std::fs::write(
            dir.join(format!("epoch_{epoch}.pdparams")),
            demo_checkpoint(epoch),
        )
        .unwrap();
    }
    let watch = Watch::start(&dir, &[]);
    watch.take(2);
    assert!(watch.interrupt().success());

    // Mark the stored Grad-CAM maps: if they were computed again, the mark would go.
    let db_path = dir.join(".camwatch/history.sqlite");
    let db = rusqlite::Connection::open(&db_path).unwrap();
    let marked = db
        .execute(
            "UPDATE maps SET map = zeroblob(length(map)) WHERE method = 'gradcam'",
            [],
        )
        .unwrap();
    assert_eq!(marked, 24);
    drop(db);

    let watch = Watch::start(&dir, &["--method", "gradcam,eigencam"]);
    for v in watch.take(2) {
        assert_eq!(str_of(&v, "source"), "computed");
        for s in v["samples"].as_array().unwrap() {
            assert_eq!(s["maps"]["eigencam"]["width"], 7);
            assert_eq!(s["maps"]["gradcam"]["width"], 7);
        }
    }
    assert!(watch.interrupt().success());
    let db = rusqlite::Connection::open(&db_path).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT COUNT(*) FROM maps WHERE method = 'gradcam' AND map = zeroblob(196)"),
        24,
        "Grad-CAM maps were not computed again"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM maps WHERE method = 'eigencam'"),
        24
    );

    // Everything there: all from the history.
    let watch = Watch::start(&dir, &["--method", "eigencam"]);
    for v in watch.take(2) {
        assert_eq!(str_of(&v, "source"), "history");
    }
    assert!(watch.interrupt().success());
}

#[test]
fn an_impossible_setting_is_not_held_against_the_file() {
    let dir = run_dir("watch-setting");
    std::fs::write(dir.join("epoch_1.pdparams"), demo_checkpoint(1)).unwrap();
    let watch = Watch::start(&dir, &["--target", "9"]);
    let v = watch.next();
    assert_eq!(str_of(&v, "status"), "error");
    assert!(
        str_of(&v, "error").contains("class 9 does not exist"),
        "{v}"
    );
    assert!(watch.interrupt().success());
    // The file is fine: with a target it has, it is computed, not an error from history.
    let watch = Watch::start(&dir, &[]);
    let v = watch.next();
    assert_eq!(str_of(&v, "source"), "computed");
    assert_ok_with_maps(&v);
    assert!(watch.interrupt().success());
}

/// The venv scripts/setup made (with --reference: PaddlePaddle, timm).
fn python() -> PathBuf {
    let python = root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: run scripts/test (it sets up the reference frameworks)",
        python.display()
    );
    python
}

/// Runs a trainer writing into `dir` while camwatch follows, and returns the history.
fn follow_trainer(name: &str, trainer: &[&str], epochs: u64) -> Value {
    let dir = run_dir(name);
    let checkpoints = dir.join("checkpoints");
    std::fs::create_dir_all(&checkpoints).unwrap();
    let watch = Watch::start(&checkpoints, &[]);
    let status = Command::new(python())
        .arg(root().join("tools").join(trainer[0]))
        .arg(&checkpoints)
        .args(&trainer[1..])
        .status()
        .unwrap();
    assert!(status.success(), "{trainer:?} failed");
    let mut epochs_seen = BTreeSet::new();
    while epochs_seen.len() < epochs as usize {
        let v = watch.next();
        assert_ok_with_maps(&v);
        if let Some(e) = v["epoch"].as_u64() {
            epochs_seen.insert(e);
        }
    }
    // Other names of the same contents (timm's last and model_best) may still follow.
    while let Ok(v) = watch.lines.recv_timeout(Duration::from_secs(3)) {
        assert_ok_with_maps(&v);
        assert_eq!(str_of(&v, "source"), "history", "not computed twice: {v}");
    }
    assert!(watch.interrupt().success());
    history_json(&checkpoints, &[])
}

fn assert_epochs_in_order(dump: &Value, epochs: u64) {
    let checkpoints = dump["checkpoints"].as_array().unwrap();
    let numbered: Vec<u64> = checkpoints
        .iter()
        .filter_map(|c| c["epoch"].as_u64())
        .collect();
    assert_eq!(numbered, (1..=epochs).collect::<Vec<_>>(), "{dump}");
    for c in checkpoints {
        assert_ok_with_maps(c);
    }
}

#[test]
fn follows_a_paddle_training_run() {
    let samples = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("paddle-trainer-samples");
    let dump = follow_trainer(
        "watch-paddle",
        &[
            "train_demo.py",
            samples.to_str().unwrap(),
            "--epochs",
            "3",
            "--train-images",
            "64",
        ],
        3,
    );
    assert_epochs_in_order(&dump, 3);
    assert_eq!(dump["checkpoints"].as_array().unwrap().len(), 3);
}

#[test]
fn follows_a_timm_training_run() {
    let dump = follow_trainer(
        "watch-timm",
        &["train_timm.py", "--epochs", "3", "--train-images", "64"],
        3,
    );
    // last.pth.tar and model_best.pth.tar are other names of numbered contents.
    assert_epochs_in_order(&dump, 3);
    for c in dump["checkpoints"].as_array().unwrap() {
        let names: Vec<String> = c["paths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().rsplit('/').next().unwrap().to_string())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with("tmp")), "{names:?}");
    }
}

/// Every CAM method, ScoreCAM's hundreds of forward passes per image included, on
/// 64×64 inputs: seconds per checkpoint on two busy cores, so that the signals land
/// while it computes and the last run completes within the test's patience.
const SIGNALLED_RUN: [&str; 4] = [
    "--method",
    "cam,gradcam,hirescam,gradcam++,xgradcam,layercam,eigencam,scorecam",
    "--input-size",
    "64",
];

/// SIGTERM and SIGINT at many moments from start-up to checkpoints being computed
/// (the sample set read, the history replayed, the network loaded, every method's
/// passes under way): the worker stops
/// at its next forward pass and is joined, so the process ends with status 0 (no
/// libtorch torn down under a running pass), and the history stays whole; a last run
/// then completes every epoch exactly once.
#[test]
fn signals_while_computing_end_cleanly() {
    let dir = run_dir("watch-signals");
    for epoch in 1..=3 {
        std::fs::write(
            dir.join(format!("epoch_{epoch}.pdparams")),
            demo_checkpoint(epoch),
        )
        .unwrap();
    }
    let history = dir.join(".camwatch/history.sqlite");
    let moments = [0, 100, 250, 500, 800, 1200, 1800, 2600, 3600, 5000];
    for (i, ms) in moments.into_iter().enumerate() {
        let watch = Watch::start(&dir, &SIGNALLED_RUN);
        // From the moment camwatch runs: before that, libtorch's own start-up (half a
        // second here, before `main`) ends on a signal as any program does.
        let started = Instant::now();
        while !watch.stderr.lock().unwrap().contains("watching") {
            assert!(started.elapsed() < Duration::from_secs(30), "never started");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(ms));
        let signal = if i % 2 == 0 { "-TERM" } else { "-INT" };
        let stderr = watch.stderr.clone();
        let status = watch.signal(signal);
        assert!(
            status.success(),
            "{signal} after {ms} ms: {status:?}; stderr:\n{}",
            stderr.lock().unwrap()
        );
        if history.exists() {
            common::assert_history_intact(&history);
        }
    }
    let watch = Watch::start(&dir, &SIGNALLED_RUN);
    let mut epochs: Vec<u64> = watch
        .take(3)
        .iter()
        .map(|v| {
            assert_eq!(str_of(v, "status"), "ok", "{v}");
            assert!(
                v["samples"][0]["maps"]["scorecam"]["height"].is_number(),
                "{v}"
            );
            v["epoch"].as_u64().unwrap()
        })
        .collect();
    epochs.sort();
    assert_eq!(epochs, [1, 2, 3]);
    assert!(watch.interrupt().success());
    let db = rusqlite::Connection::open(&history).unwrap();
    let count: i64 = db
        .query_row("SELECT COUNT(*) FROM checkpoints", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 3, "each epoch recorded once");
}

/// A history in a folder above the run (`watch /x/run --history /x/h.sqlite`): only
/// camwatch's own files are skipped, so a checkpoint renamed into the run is read at
/// once, not at the 30-s rescan (where every event under `/x` was ignored before).
#[test]
fn a_history_above_the_run_still_follows_in_seconds() {
    let top = run_dir("watch-history-above");
    let run = top.join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("epoch_1.pdparams"), demo_checkpoint(1)).unwrap();
    let history = top.join("h.sqlite");
    let watch = Watch::start(&run, &["--history", history.to_str().unwrap()]);
    assert_eq!(watch.next()["epoch"], 1);
    assert!(history.exists());
    let partial = run.join(".epoch_2.partial");
    std::fs::write(&partial, demo_checkpoint(2)).unwrap();
    let renamed = Instant::now();
    std::fs::rename(&partial, run.join("epoch_2.pdparams")).unwrap();
    assert_eq!(watch.next()["epoch"], 2);
    let took = renamed.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "rename to maps took {took:?}"
    );
    assert!(watch.interrupt().success());
}

/// `--gpu-memory keep` (nothing handed back between checkpoints) computes the same
/// maps; a word other than keep or release is refused in one line.
#[test]
fn memory_kept_between_checkpoints_gives_the_same_maps() {
    let dir = run_dir("watch-gpu-memory");
    for epoch in 1..=2 {
        std::fs::write(
            dir.join(format!("epoch_{epoch}.pdparams")),
            demo_checkpoint(epoch),
        )
        .unwrap();
    }
    let watch = Watch::start(&dir, &["--gpu-memory", "keep"]);
    let lines = watch.take(2);
    assert!(watch.interrupt().success());
    // Computed again from scratch, memory handed back as by default.
    std::fs::remove_dir_all(dir.join(".camwatch")).unwrap();
    let watch = Watch::start(&dir, &[]);
    let released = watch.take(2);
    assert!(watch.interrupt().success());
    let energy = |lines: &[Value]| -> Vec<(u64, f64)> {
        let mut out: Vec<(u64, f64)> = lines
            .iter()
            .map(|l| {
                let e = l["samples"][0]["box_energy"]["gradcam"].as_f64().unwrap();
                (l["epoch"].as_u64().unwrap(), e)
            })
            .collect();
        out.sort_by_key(|(epoch, _)| *epoch);
        out
    };
    assert_eq!(energy(&lines), energy(&released));

    let refused = Command::new(env!("CARGO_BIN_EXE_camwatch"))
        .args(["watch", "--headless", "--gpu-memory", "sometimes"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("expected keep or release"), "{stderr}");
}

/// `timeout` signals its child and then the child's process group: the same SIGTERM
/// twice at once is one request to stop, which ends with status 0 (it used to be taken
/// for a second signal: status 1, and no word of why).
#[test]
fn the_same_signal_twice_at_once_stops_cleanly() {
    let dir = run_dir("watch-signal-twice");
    std::fs::write(dir.join("epoch_1.pdparams"), demo_checkpoint(1)).unwrap();
    let watch = Watch::start(&dir, &SIGNALLED_RUN);
    let started = Instant::now();
    while !watch.stderr.lock().unwrap().contains("watching") {
        assert!(started.elapsed() < Duration::from_secs(30), "never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(500));
    let pid = watch.child.id().to_string();
    let twice = Command::new("sh")
        .args(["-c", "kill -TERM \"$1\"; kill -TERM \"$1\"", "sh", &pid])
        .status()
        .unwrap();
    assert!(twice.success());
    let stderr = watch.stderr.clone();
    let mut child = watch.child;
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "{status:?}; stderr:\n{}",
        stderr.lock().unwrap()
    );
}

#[test]
fn trust_figures_follow_the_maps_and_never_hold_them_up() {
    let dir = run_dir("watch-trust");
    std::fs::write(dir.join("epoch_1.pdparams"), demo_checkpoint(1)).unwrap();
    let watch = Watch::start(&dir, &["--metrics", "all"]);
    let first = watch.next();
    assert_eq!(
        (str_of(&first, "event"), &first["epoch"]),
        ("checkpoint", &1.into())
    );
    assert!(
        first["samples"][0].get("metrics").is_none(),
        "maps come first"
    );
    // Epoch 1's 12 samples take seconds to measure; epoch 2 arrives meanwhile and its
    // maps come before any of them.
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(dir.join("epoch_2.pdparams"), demo_checkpoint(2)).unwrap();
    let second = watch.next();
    assert_eq!(
        (str_of(&second, "event"), &second["epoch"]),
        ("checkpoint", &2.into()),
        "a checkpoint waited for metrics"
    );
    // Then the figures, newest first, each line with every sample measured so far.
    let mut measured = Vec::new();
    while measured.len() < 2 {
        let line = watch.next();
        assert_eq!(str_of(&line, "event"), "metrics", "{line}");
        assert_eq!(str_of(&line, "source"), "measured");
        let samples = line["samples"].as_array().unwrap();
        if samples.iter().all(|s| s.get("metrics").is_some()) {
            for s in samples {
                let m = &s["metrics"]["gradcam"];
                for key in [
                    "confidence_change",
                    "deletion_auc",
                    "insertion_auc",
                    "road_combined",
                ] {
                    assert!(m[key].is_f64(), "{key} in {m}");
                }
                assert!(s["sanity"]["gradcam"]["class_corr"].is_f64());
            }
            assert!(line["events"].is_array());
            measured.push(line["epoch"].as_u64().unwrap());
        }
    }
    assert_eq!(measured, [2, 1]);
    assert!(watch.interrupt().success());
    // The history keeps them: a restart reads them back and has nothing to measure.
    let dump = history_json(&dir, &[]);
    for checkpoint in dump["checkpoints"].as_array().unwrap() {
        for s in checkpoint["samples"].as_array().unwrap() {
            assert!(s["metrics"]["gradcam"]["road_combined"].is_f64(), "{s}");
        }
    }
    let again = Watch::start(&dir, &["--metrics", "all"]);
    let lines = again.take(2);
    assert!(lines.iter().all(|l| str_of(l, "source") == "history"));
    again.expect_quiet(Duration::from_secs(3));
    assert!(again.interrupt().success());
}

/// A run of the demo's `epochs`, recorded by `camwatch watch`.
fn record(name: &str, epochs: &[u32]) -> PathBuf {
    let dir = run_dir(name);
    for &e in epochs {
        std::fs::write(dir.join(format!("epoch_{e}.pdparams")), demo_checkpoint(e)).unwrap();
    }
    let watch = Watch::start(&dir, &[]);
    watch.take(epochs.len());
    assert!(watch.interrupt().success());
    dir
}

#[test]
fn history_compares_runs_by_epoch() {
    // Run A: the demo's first two epochs, attention still on the background; run B:
    // epochs 8 to 10, on the objects from epoch 8.
    let a = record("compare-a", &[1, 2]);
    let b = record("compare-b", &[8, 9, 10]);
    let dump = history_json(&a, &[b.to_str().unwrap()]);
    let runs = dump["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(str_of(&runs[0], "path"), a.to_str().unwrap());
    assert_eq!(runs[0]["first_on_object"], Value::Null);
    assert_eq!(runs[1]["first_on_object"], 8);
    let epochs = |run: &Value| -> Vec<u64> {
        run["checkpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["epoch"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(
        (epochs(&runs[0]), epochs(&runs[1])),
        (vec![1, 2], vec![8, 9, 10])
    );
    // A run without a history is named, not created.
    let empty = run_dir("compare-empty");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_camwatch"))
        .args(["history", "--json", "--samples"])
        .arg(root().join("samples"))
        .arg(&a)
        .arg(&empty)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no history yet"));
    assert!(!empty.join(".camwatch").exists());
}

/// The demo samples' settings as `watch` records them by default.
fn gradcam_settings(samples: &camwatch::cam::SampleSet) -> camwatch::render::CamSettings {
    use camwatch::cam::{CamRequest, Layer, Method, Target};
    camwatch::render::CamSettings {
        request: CamRequest {
            methods: vec![Method::GradCam],
            layer: Layer::LAST,
            target: Target::Predicted,
            batch: 8,
            cancel: Default::default(),
        },
        normalize: samples.defaults.normalize.unwrap(),
        input_size: samples.defaults.input_size.unwrap(),
        precision: camwatch::precision::Precision::Fp32,
    }
}

#[test]
fn a_history_read_again_gives_what_a_whole_read_gives() {
    use camwatch::cam::SampleSet;
    use camwatch::cam::metrics::Faithfulness;
    use camwatch::monitor::history::History;
    use camwatch::monitor::{self, HistoryReader};
    use camwatch::render::SampleTrust;

    let dir = record("reader", &[2, 5, 9]);
    let samples = SampleSet::load(&root().join("samples")).unwrap();
    let settings = gradcam_settings(&samples);
    let file = monitor::history_file(&dir, None);
    let mut history = History::open(&file, &dir).unwrap();
    let whole =
        |history: &History| monitor::read_history(history, &samples, &settings, 16).unwrap();
    let mut reader = HistoryReader::default();
    let mut again = |history: &History| reader.read(history, &samples, &settings, 16).unwrap();
    let first = again(&history);
    assert_eq!(first.len(), 3);
    assert_eq!(first, whole(&history));
    assert_eq!(again(&history), first);

    // Epoch 5's trust figures arrive: its report changes, the others do not.
    let keys = monitor::sample_keys(&samples, settings.request.target);
    let setting = monitor::setting(&settings, 16);
    let epoch_5 = history
        .checkpoints()
        .unwrap()
        .into_iter()
        .find(|r| r.epoch == Some(5))
        .unwrap();
    let mut trust = SampleTrust::default();
    trust.metrics.insert(
        settings.request.methods[0],
        Faithfulness {
            deletion_auc: Some(0.25),
            ..Default::default()
        },
    );
    history
        .record_trust(&epoch_5.hash, &setting, &[(keys[0].clone(), trust)])
        .unwrap();
    let second = again(&history);
    assert_eq!(second, whole(&history));
    assert_ne!(second[1], first[1]);
    assert_eq!((&second[0], &second[2]), (&first[0], &first[2]));

    // Epoch 5's first map recomputed (as after damage): epoch 9's drift, measured
    // against it, changes too.
    let mut stored = history.results(&epoch_5.hash, &setting, &keys).unwrap();
    let map = &mut stored[0].maps[0];
    map.map.values.reverse();
    if let Some((_, energy, _)) = &mut map.on_object {
        *energy = 1.0 - *energy;
    }
    history
        .record(
            &epoch_5,
            &setting,
            &[(keys[0].clone(), stored.swap_remove(0))],
        )
        .unwrap();
    let third = again(&history);
    assert_eq!(third, whole(&history));
    assert_ne!(third[1], second[1]);
    assert_ne!(third[2], second[2]);
    assert_eq!(third[0], second[0]);
}

#[test]
fn the_difference_map_is_the_difference_of_the_stored_maps() {
    use camwatch::cam::{Colormap, Layer, Method, SampleSet, Target};
    use camwatch::monitor;
    use camwatch::monitor::history::History;
    use camwatch::monitor::maps::{MapId, MapReader};
    use camwatch::tui::{Painter, Picture, RunMap};

    // Epoch 2 (attention still on the background) against epoch 9 (on the objects).
    let dirs = [record("difference-a", &[2]), record("difference-b", &[9])];
    let samples = SampleSet::load(&root().join("samples")).unwrap();
    let settings = gradcam_settings(&samples);
    let history = |dir: &Path| History::open(&monitor::history_file(dir, None), dir).unwrap();
    let hash = |dir: &Path| history(dir).checkpoints().unwrap()[0].hash.clone();
    let keys = monitor::sample_keys(&samples, Target::Predicted);
    let setting = monitor::setting(&settings, 16);
    let readers = dirs
        .iter()
        .map(|d| {
            MapReader::new(
                &samples,
                monitor::history_file(d, None),
                d.clone(),
                settings.clone(),
            )
        })
        .collect();
    let mut painter = Painter::new(samples.clone(), readers, Colormap::Jet);
    for sample in [0, 5, 11] {
        // The maps as stored, min–max scaled here.
        let stored: Vec<Vec<f32>> = dirs
            .iter()
            .map(|d| {
                let results = history(d).results(&hash(d), &setting, &keys).unwrap();
                let map = &results[sample].maps[0].map;
                let (lo, hi) = map
                    .values
                    .iter()
                    .fold((f32::MAX, f32::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
                map.values.iter().map(|v| (v - lo) / (hi - lo)).collect()
            })
            .collect();
        let run_map = |run: usize| RunMap {
            run,
            map: MapId {
                sample,
                hash: hash(&dirs[run]),
                method: Method::GradCam,
                layer: Layer::LAST,
                target: Target::Predicted,
            },
        };
        let image = painter
            .paint(&Picture::Difference(run_map(0), run_map(1)))
            .expect("both maps are stored");
        let (width, height) = image.dimensions();
        let side = (stored[0].len() as f64).sqrt() as u32;
        let mut largest = 0f32;
        for (cell, (a, b)) in stored[0].iter().zip(&stored[1]).enumerate() {
            // At the centre of each map cell, the colour says b − a: white 0, red
            // (214, 39, 40) +1, blue (31, 119, 180) −1.
            let (cx, cy) = (cell as u32 % side, cell as u32 / side);
            let pixel = image.get_pixel(
                (2 * cx + 1) * width / (2 * side),
                (2 * cy + 1) * height / (2 * side),
            );
            let [r, g, bl] = pixel.0.map(f32::from);
            let shown = if r >= bl {
                (255.0 - g) / 216.0
            } else {
                -(255.0 - g) / 136.0
            };
            assert!(
                (shown - (b - a)).abs() < 0.06,
                "sample {sample}, cell {cell}: drawn {shown:.3}, stored b − a = {:.3}",
                b - a
            );
            largest = largest.max((b - a).abs());
        }
        assert!(largest > 0.3, "the two epochs' maps differ");
    }
}

#[test]
fn several_runs_are_followed_at_once() {
    let a = run_dir("several-a");
    let b = run_dir("several-b");
    std::fs::write(a.join("epoch_1.pdparams"), demo_checkpoint(1)).unwrap();
    std::fs::write(b.join("epoch_8.pdparams"), demo_checkpoint(8)).unwrap();
    let watch = Watch::start(&a, &[b.to_str().unwrap()]);
    let mut seen = BTreeSet::new();
    for line in watch.take(2) {
        assert_ok_with_maps(&line);
        seen.insert((
            str_of(&line, "run").to_string(),
            line["epoch"].as_u64().unwrap(),
        ));
    }
    // Each run has its own history and worker: a new file in B is B's.
    std::fs::write(b.join("epoch_9.pdparams"), demo_checkpoint(9)).unwrap();
    let line = watch.next();
    assert_eq!(str_of(&line, "run"), b.to_str().unwrap());
    seen.insert((
        b.to_str().unwrap().to_string(),
        line["epoch"].as_u64().unwrap(),
    ));
    assert!(watch.interrupt().success());
    let expected: BTreeSet<(String, u64)> = [
        (a.to_str().unwrap().to_string(), 1),
        (b.to_str().unwrap().to_string(), 8),
        (b.to_str().unwrap().to_string(), 9),
    ]
    .into();
    assert_eq!(seen, expected);
    assert!(
        a.join(".camwatch/history.sqlite").exists() && b.join(".camwatch/history.sqlite").exists()
    );
    // One run alone: no "run" key.
    let single = Watch::start(&a, &[]);
    assert!(single.next().get("run").is_none());
    assert!(single.interrupt().success());
}

#[test]
fn report_holds_the_numbers_of_the_history() {
    let a = record("report-a", &[1, 2, 3]);
    let b = record("report-b", &[2, 3, 9]);
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-out");
    let status = Command::new(env!("CARGO_BIN_EXE_camwatch"))
        .args(["report", "--samples"])
        .arg(root().join("samples"))
        .arg(&a)
        .arg(&b)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    // The figures decode, at the sizes the layout gives them.
    let charts = image::open(out.join("charts.png")).unwrap();
    assert_eq!((charts.width(), charts.height()), (900, 1040));
    let grid = image::open(out.join("samples.png")).unwrap();
    assert_eq!(grid.width(), 3 * 166, "two runs and their difference");
    assert_eq!(grid.height(), 12 * 184, "one row per sample");
    // Every number of figures.csv is the history's mean over the samples.
    let dump = history_json(&a, &[b.to_str().unwrap()]);
    let csv = std::fs::read_to_string(out.join("figures.csv")).unwrap();
    let mut checked = 0;
    for line in csv.lines().skip(1) {
        let [run, epoch, figure, value]: [&str; 4] =
            line.split(',').collect::<Vec<_>>().try_into().unwrap();
        if figure != "mean box energy" {
            continue;
        }
        let index = usize::from(run == "report-b");
        let checkpoint = dump["runs"][index]["checkpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["epoch"].as_u64().unwrap().to_string() == epoch)
            .unwrap();
        let energies: Vec<f64> = checkpoint["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["box_energy"]["gradcam"].as_f64().unwrap())
            .collect();
        let mean = energies.iter().sum::<f64>() / energies.len() as f64;
        let value: f64 = value.parse().unwrap();
        assert!((value - mean).abs() < 1e-5, "{line}: history says {mean}");
        checked += 1;
    }
    assert_eq!(checked, 6);
    // The grid is at the last epoch both runs have; the table says when each run got
    // onto the object.
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("report-a at epoch 3, report-b at epoch 3"),
        "{md}"
    );
    assert!(md.contains("![charts](charts.png)") && md.contains("![samples](samples.png)"));
    let first = |i: usize| match &dump["runs"][i]["first_on_object"] {
        Value::Null => "never".to_string(),
        v => v.to_string(),
    };
    assert!(
        md.contains(&format!("| report-a | 3 | {} |", first(0))),
        "{md}"
    );
    assert!(
        md.contains(&format!("| report-b | 3 | {} |", first(1))),
        "{md}"
    );
}

/// Runs compared need not share an architecture, a framework or a file format: the
/// demo's PaddlePaddle run beside a timm Res2Net-vd of another depth and width written
/// as safetensors and as a torch pickle, each read for what it is, aligned by epoch.
#[test]
fn runs_of_other_architectures_and_formats_are_compared() {
    let a = run_dir("mixed-paddle");
    let b = run_dir("mixed-timm");
    for e in [1, 2] {
        std::fs::write(a.join(format!("epoch_{e}.pdparams")), demo_checkpoint(e)).unwrap();
    }
    let fixtures = common::fixtures();
    std::fs::copy(
        fixtures.join("timm_small.safetensors"),
        b.join("epoch_1.safetensors"),
    )
    .unwrap();
    std::fs::copy(fixtures.join("timm_small.pth"), b.join("epoch_2.pth")).unwrap();
    let watch = Watch::start(&a, &[b.to_str().unwrap()]);
    let mut seen = BTreeSet::new();
    for line in watch.take(4) {
        assert_ok_with_maps(&line);
        let run = str_of(&line, "run").to_string();
        let variant = line["arch"]["variant"].as_str().unwrap().to_string();
        seen.insert((
            run,
            line["epoch"].as_u64().unwrap(),
            str_of(&line, "format").to_string(),
            variant,
        ));
    }
    assert!(watch.interrupt().success());
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let expected: BTreeSet<_> = [
        (a, 1, "pdparams", "paddle"),
        (a, 2, "pdparams", "paddle"),
        (b, 1, "safetensors", "timm"),
        (b, 2, "torch", "timm"),
    ]
    .into_iter()
    .map(|(r, e, f, v)| (r.to_string(), e, f.to_string(), v.to_string()))
    .collect();
    assert_eq!(seen, expected);
    let dump = history_json(Path::new(a), &[b]);
    let runs = dump["runs"].as_array().unwrap();
    for run in runs {
        let epochs: Vec<u64> = run["checkpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["epoch"].as_u64().unwrap())
            .collect();
        assert_eq!(epochs, [1, 2], "{}", run["path"]);
    }
}

/// The GPU running out of memory (the training job beside camwatch took it) is not the
/// checkpoint's fault: nothing is recorded against the file, which is tried again after
/// a wait, or computed on the CPU at once with --cpu-fallback. (The out-of-memory error
/// is simulated: CAMWATCH_FAKE_GPU_OOM makes the next computations fail as libtorch's
/// would.)
#[test]
fn out_of_gpu_memory_waits_and_tries_again_or_falls_back_to_the_cpu() {
    for fallback in [false, true] {
        let dir = run_dir(&format!("gpu-oom-{fallback}"));
        let extra: &[&str] = if fallback { &["--cpu-fallback"] } else { &[] };
        let watch = Watch::start_with_env(&dir, extra, &[("CAMWATCH_FAKE_GPU_OOM", "2")]);
        let start = Instant::now();
        std::fs::write(dir.join("epoch_1.pdparams"), demo_checkpoint(1)).unwrap();
        let line = watch.next();
        assert_ok_with_maps(&line);
        let waited = start.elapsed();
        // Written before the line; read by another thread: give it a moment.
        let said = |text: &str| {
            let until = Instant::now() + Duration::from_secs(5);
            while Instant::now() < until && !watch.stderr.lock().unwrap().contains(text) {
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        said(if fallback { "on the CPU" } else { "in 4 s" });
        let stderr = watch.stderr.lock().unwrap().clone();
        if fallback {
            assert!(
                stderr.contains("computed on the CPU (--cpu-fallback)"),
                "{stderr}"
            );
            assert_eq!(stderr.matches("ran out of memory").count(), 1, "{stderr}");
        } else {
            // Two failures: waits of 2 s and 4 s before the third try.
            assert!(stderr.contains("trying again in 2 s"), "{stderr}");
            assert!(stderr.contains("trying again in 4 s"), "{stderr}");
            assert!(waited >= Duration::from_secs(6), "{waited:?}");
        }
        assert!(watch.interrupt().success());
        // Nothing was recorded against the file: it has its maps, and no error.
        let dump = history_json(&dir, &[]);
        let checkpoints = dump["checkpoints"].as_array().unwrap();
        assert_eq!(checkpoints.len(), 1);
        assert_eq!(str_of(&checkpoints[0], "status"), "ok");
    }
}

/// A run folder shared by nodes (NFS): one camwatch publishes what it computes
/// (`--publish`), another only looks (`--compute never`), each with its own history: the
/// viewer shows nothing until the results are published, then shows them, computing
/// nothing.
#[test]
fn a_viewer_of_a_shared_folder_waits_for_published_results() {
    let top = run_dir("watch-published-folder");
    let dir = top.join("run");
    std::fs::create_dir_all(&dir).unwrap();
    for epoch in [1, 2] {
        std::fs::write(
            dir.join(format!("epoch_{epoch}.pdparams")),
            demo_checkpoint(epoch),
        )
        .unwrap();
    }
    let history = |name: &str| top.join(name).display().to_string();
    let viewer_history = history("viewer.sqlite");
    let viewer = Watch::start(&dir, &["--compute", "never", "--history", &viewer_history]);
    viewer.expect_quiet(Duration::from_secs(3));

    let writer_history = history("writer.sqlite");
    let writer = Watch::start(&dir, &["--publish", "--history", &writer_history]);
    let computed = writer.take(2);
    assert!(computed.iter().all(|v| str_of(v, "source") == "computed"));
    let shown = viewer.take(2);
    for v in &shown {
        assert_eq!(str_of(v, "source"), "published", "{v}");
        let object = dir.join(".camwatch/results").display().to_string();
        assert!(str_of(v, "published").starts_with(&object), "{v}");
        assert_ok_with_maps(v);
    }
    // The same figures as computed, sample by sample (drift aside: it depends on
    // which neighbour was there when the line was written).
    let figures = |lines: &[Value], epoch: u64| -> Vec<[Value; 3]> {
        let line = lines.iter().find(|v| v["epoch"] == epoch).unwrap();
        line["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                [
                    s["logits"].clone(),
                    s["box_energy"].clone(),
                    s["maps"].clone(),
                ]
            })
            .collect()
    };
    for epoch in [1, 2] {
        assert_eq!(figures(&shown, epoch), figures(&computed, epoch));
    }
    // The same weights under another name (`best` a copy of an epoch): computed once,
    // published under that name too.
    std::fs::write(dir.join("best.pdparams"), demo_checkpoint(2)).unwrap();
    assert_eq!(str_of(&writer.next(), "source"), "history");
    let best = viewer.next();
    assert_eq!(file_name(&best), "best.pdparams");
    // The viewer knows these weights already (taken from epoch 2's results).
    assert_eq!(str_of(&best, "source"), "history");
    assert!(
        str_of(&best, "published").contains("epoch_2.pdparams."),
        "{best}"
    );
    // (Published by the writer after its line: waited for.)
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let published: Vec<String> = walk_names(&dir.join(".camwatch/results"));
        if published.iter().any(|n| n.starts_with("best.pdparams.")) {
            break;
        }
        assert!(Instant::now() < deadline, "{published:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(writer.interrupt().success());
    assert!(viewer.interrupt().success());
    // `check` judges the published results without computing them.
    let check = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_camwatch"))
            .arg("check")
            .arg(&dir)
            .args(["--epoch", "2", "--compute", "never", "--device", "cpu"])
            .arg("--samples")
            .arg(root().join("samples"))
            .args(extra)
            .output()
            .unwrap()
    };
    let checked = check(&["--min-box-energy", "0"]);
    let said = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{checked:?}");
    assert!(said.contains(", published: "), "{said}");
    assert!(said.contains("/epoch_2.pdparams."), "{said}");
    // A rule that needs a trust figure nobody published: not there, and never computed.
    let refused = check(&["--max-deletion-auc", "1"]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("no results published beside the run"),
        "{said}"
    );
    // `history` finds them too, though the run folder holds no history.
    let dump = history_json(&dir, &[]);
    // (`best` is a name of epoch 2's content.)
    assert_eq!(statuses(&dump).len(), 2);
    for c in dump["checkpoints"].as_array().unwrap() {
        assert!(
            str_of(c, "published").contains("/.camwatch/results/"),
            "{c}"
        );
    }

    // Another setting's viewer finds nothing published for it, and waits.
    let other = Watch::start(
        &dir,
        &[
            "--compute",
            "never",
            "--method",
            "layercam",
            "--history",
            &history("other.sqlite"),
        ],
    );
    other.expect_quiet(Duration::from_secs(3));
    assert!(other.interrupt().success());
}

/// The names of the files under `dir`, at any depth.
fn walk_names(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().is_dir() {
            names.extend(walk_names(&entry.path()));
        } else {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names
}
