//! The hostile corpus (`tools/make_hostile.py`: deep nesting, memory amplification,
//! super-linear parsing, views past their data, FIFOs, devices, sparse files, odd
//! names) through `info`, `render` and `watch`: a one-line error or success, never a
//! crash (status 101, 134, 139), never a hang, bounded memory and parse time.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use camwatch::checkpoint::{self, complete};
use common::watch::{Watch, demo_checkpoint, root, str_of};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
struct Entry {
    /// The name for people (U+FFFD where it is not UTF-8).
    file: String,
    /// The name's bytes, in hex.
    hex: String,
    attack: String,
    /// "error", "ok" or "any".
    expect: String,
    /// fifo, device, folder (not regular files), sparse, escape, bytes (odd names).
    special: Option<String>,
}

impl Entry {
    fn path(&self, dir: &Path) -> PathBuf {
        let bytes = (0..self.hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&self.hex[i..i + 2], 16).unwrap())
            .collect();
        dir.join(OsString::from_vec(bytes))
    }

    fn is_regular(&self) -> bool {
        !matches!(self.special.as_deref(), Some("fifo" | "device" | "folder"))
    }
}

/// Generates the corpus into `dir` (wiped first) and returns its manifest.
fn generate(dir: &Path) -> Vec<Entry> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let python = root().join(".venv/bin/python");
    let status = Command::new(&python)
        .arg(root().join("tools/make_hostile.py"))
        .arg(dir)
        .status()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup --reference)", python.display()));
    assert!(status.success(), "make_hostile.py failed");
    let text = std::fs::read_to_string(dir.join("hostile.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The corpus, generated once per test process.
fn corpus() -> &'static (PathBuf, Vec<Entry>) {
    static CORPUS: OnceLock<(PathBuf, Vec<Entry>)> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hostile-corpus");
        let entries = generate(&dir);
        (dir, entries)
    })
}

/// What one run of the binary did.
struct Outcome {
    code: Option<i32>,
    signal: Option<i32>,
    stderr: String,
    /// Peak resident memory, KiB.
    max_rss_kib: i64,
    elapsed: Duration,
}

/// Runs `command`, killing it after `limit`; measures its peak memory with wait4.
// The child is reaped by wait4, which std does not know about.
#[allow(clippy::zombie_processes)]
fn run_bounded(command: &mut Command, limit: Duration) -> Outcome {
    let start = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("camwatch starts");
    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = pipe.read_to_end(&mut text);
        text
    });
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain POSIX calls on our own child; rusage is a C struct of integers.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let done = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if done == pid {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            panic!("{command:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let exit = std::process::ExitStatus::from_raw(status);
    Outcome {
        code: exit.code(),
        signal: exit.signal(),
        stderr: String::from_utf8_lossy(&reader.join().unwrap()).into_owned(),
        max_rss_kib: usage.ru_maxrss,
        elapsed: start.elapsed(),
    }
}

/// The checks every command's answer to a hostile file must pass.
fn assert_answer(entry: &Entry, outcome: &Outcome, what: &str) {
    let context = format!(
        "{what} {:?} ({}): {}",
        entry.file, entry.attack, outcome.stderr
    );
    assert_eq!(outcome.signal, None, "killed by a signal: {context}");
    assert!(
        outcome.stderr.bytes().all(|b| b != 0x1b),
        "raw escape on stderr: {context}"
    );
    assert!(!outcome.stderr.contains("panicked"), "{context}");
    let code = outcome.code.unwrap();
    match entry.expect.as_str() {
        "ok" => assert_eq!(code, 0, "{context}"),
        "error" => assert_eq!(code, 1, "{context}"),
        _ => assert!(code == 0 || code == 1, "{context}"),
    }
    if code == 1 {
        assert_eq!(
            outcome.stderr.trim_end().lines().count(),
            1,
            "not one line: {context}"
        );
    }
}

const GIB_IN_KIB: i64 = 1 << 20;

#[test]
fn info_answers_every_hostile_file_in_bounded_memory() {
    let (dir, entries) = corpus();
    let info = |path: &Path| {
        run_bounded(
            Command::new(env!("CARGO_BIN_EXE_camwatch"))
                .args(["info", "--device", "cpu"])
                .arg(path),
            Duration::from_secs(30),
        )
    };
    // The idle process: libtorch loaded, a file refused at once.
    let idle = info(&dir.join("empty.pdparams")).max_rss_kib;
    let mut peaks = BTreeMap::new();
    for entry in entries {
        let outcome = info(&entry.path(dir));
        assert_answer(entry, &outcome, "info");
        // The process starts libtorch (half a second here); parsing is timed below.
        assert!(
            outcome.elapsed < Duration::from_secs(10),
            "{:?}: {:?}",
            entry.file,
            outcome.elapsed
        );
        if outcome.code == Some(1) && entry.special.as_deref() != Some("escape") {
            assert!(
                outcome.stderr.contains(&entry.file),
                "the file is not named: {}",
                outcome.stderr
            );
        }
        if entry.special.as_deref() == Some("escape") {
            assert!(
                outcome.stderr.contains("\\x1b]0;owned\\x07"),
                "{}",
                outcome.stderr
            );
        }
        assert!(
            outcome.max_rss_kib - idle < GIB_IN_KIB,
            "{:?}: {} MiB above the idle process",
            entry.file,
            (outcome.max_rss_kib - idle) / 1024
        );
        peaks.insert(entry.file.clone(), (outcome.max_rss_kib - idle) / 1024);
    }
    eprintln!("peak MiB above idle ({} MiB): {peaks:?}", idle / 1024);
}

#[test]
fn every_hostile_file_parses_within_a_second() {
    let (dir, entries) = corpus();
    let mut slowest = (Duration::ZERO, String::new());
    for entry in entries.iter().filter(|e| e.is_regular()) {
        let path = entry.path(dir);
        let start = Instant::now();
        let complete = checkpoint::with_file(&path, complete::is_complete);
        let checked = start.elapsed();
        let start = Instant::now();
        if let Ok((_, weights)) = checkpoint::read(&path) {
            let _ = camwatch::model::infer(&weights, &Default::default());
        }
        let parsed = start.elapsed();
        assert!(
            checked < Duration::from_secs(1) && parsed < Duration::from_secs(1),
            "{:?} ({}): completeness check {checked:?}, parse {parsed:?}; complete: {}",
            entry.file,
            entry.attack,
            complete.is_ok()
        );
        slowest = slowest.max((checked.max(parsed), entry.file.clone()));
    }
    eprintln!("slowest: {slowest:?}");
}

#[test]
fn render_answers_every_hostile_file() {
    let (dir, entries) = corpus();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hostile-render");
    let _ = std::fs::remove_dir_all(&out);
    for (i, entry) in entries.iter().enumerate() {
        let outcome = run_bounded(
            Command::new(env!("CARGO_BIN_EXE_camwatch"))
                .args(["render", "--device", "cpu", "--checkpoint"])
                .arg(entry.path(dir))
                .arg("--samples")
                .arg(root().join("samples"))
                .arg("--out")
                .arg(out.join(i.to_string())),
            Duration::from_secs(60),
        );
        assert_answer(entry, &outcome, "render");
        // A failed render writes nothing: no summary, which marks a complete folder.
        if outcome.code == Some(1) {
            assert!(!out.join(i.to_string()).join("summary.json").exists());
        }
    }
}

/// A FIFO at `path`, made with mkfifo.
fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn watch_survives_a_folder_of_hostile_files() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hostile-watch");
    let entries = generate(&dir);
    for epoch in 1..=3 {
        std::fs::write(
            dir.join(format!("epoch_{epoch}.pdparams")),
            demo_checkpoint(epoch),
        )
        .unwrap();
    }
    let watch = Watch::start(&dir, &["--give-up", "2"]);

    // Every regular file named like a checkpoint gets one line.
    let mut expected: BTreeMap<String, String> = entries
        .iter()
        .filter(|e| e.is_regular())
        .map(|e| (e.file.clone(), e.expect.clone()))
        .collect();
    for epoch in 1..=3 {
        expected.insert(format!("epoch_{epoch}.pdparams"), "ok".into());
    }
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    while seen.len() < expected.len() {
        assert!(
            Instant::now() < deadline,
            "lines for {seen:?} of {expected:?}"
        );
        let line = watch.next();
        let path = str_of(&line, "path").to_string();
        let name = Path::new(&path)
            .strip_prefix(&dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // Non-UTF-8 names arrive as lone surrogates, read back as U+FFFD like `file`.
        let key = expected
            .keys()
            .find(|k| **k == name)
            .cloned()
            .unwrap_or_else(|| panic!("a line for an unexpected file: {line}"));
        assert!(seen.insert(key, line).is_none(), "reported twice: {path}");
    }
    for (name, line) in &seen {
        let status = str_of(line, "status");
        match expected[name].as_str() {
            "ok" => assert_eq!(status, "ok", "{name}: {line}"),
            "error" => {
                assert_eq!(status, "error", "{name}: {line}");
                assert_eq!(str_of(line, "error").lines().count(), 1, "{line}");
            }
            _ => {}
        }
    }

    // Names that are not UTF-8 reach JSON as lone surrogates, from the history too.
    let history = Command::new(env!("CARGO_BIN_EXE_camwatch"))
        .arg("history")
        .arg(&dir)
        .arg("--json")
        .arg("--samples")
        .arg(root().join("samples"))
        .output()
        .unwrap();
    assert!(history.status.success());
    let text = String::from_utf8(history.stdout).expect("valid UTF-8 JSON");
    assert!(text.contains(r"epoch_90-\udcff\udcfe.pdparams"), "{text}");
    assert!(text.contains(r"run-\udcfe/epoch_91.pdparams"), "{text}");

    // Files swapped under the watcher: a checkpoint replaced by a FIFO and by a link to
    // /dev/zero right after it was written, a checkpoint renamed over a hostile one.
    for (epoch, swap) in [(4, "fifo"), (5, "zero"), (6, "rename")] {
        let path = dir.join(format!("epoch_{epoch}.pdparams"));
        std::fs::write(&path, demo_checkpoint(epoch)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let other = dir.join(format!("swap-{epoch}"));
        match swap {
            "fifo" => mkfifo(&other),
            "zero" => std::os::unix::fs::symlink("/dev/zero", &other).unwrap(),
            _ => std::fs::write(&other, b"\x80\x02}garbage").unwrap(),
        }
        std::fs::rename(&other, &path).unwrap();
    }
    // What follows them is still computed.
    std::fs::write(dir.join("epoch_7.pdparams"), demo_checkpoint(7)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "epoch 7 never reported");
        let line = watch.next();
        if line["epoch"] == 7 {
            assert_eq!(str_of(&line, "status"), "ok", "{line}");
            break;
        }
    }
    let status = watch.signal("-TERM");
    assert!(status.success(), "SIGTERM: {status:?}");
}
