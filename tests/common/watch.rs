//! A `camwatch watch --headless` process driven by a test, and what its output says.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One JSON line. Paths that are not UTF-8 carry lone surrogates (`\udcff`), which
/// serde_json refuses: they are read as U+FFFD here (tests that need the bytes read
/// the raw line).
pub fn parse_line(line: &str) -> serde_json::Result<Value> {
    serde_json::from_str(line).or_else(|_| {
        let mut fixed = String::with_capacity(line.len());
        let mut rest = line;
        while let Some(at) = rest.find("\\udc") {
            fixed.push_str(&rest[..at]);
            fixed.push_str("\\ufffd");
            rest = &rest[(at + 6).min(rest.len())..];
        }
        fixed.push_str(rest);
        serde_json::from_str(&fixed)
    })
}

pub const WAIT: Duration = Duration::from_secs(60);

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn demo_checkpoint(epoch: u32) -> Vec<u8> {
    std::fs::read(root().join(format!("checkpoints/epoch_{epoch}.pdparams"))).unwrap()
}

pub fn run_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `camwatch watch --headless` process on the demo samples, read line by line.
pub struct Watch {
    pub child: Child,
    pub lines: Receiver<Value>,
    pub stderr: Arc<Mutex<String>>,
}

impl Watch {
    pub fn start(dir: &Path, extra: &[&str]) -> Watch {
        Watch::start_with_env(dir, extra, &[])
    }

    /// [`Watch::start`] with environment variables set for camwatch.
    pub fn start_with_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Watch {
        let mut command = Watch::command(dir, extra);
        command.envs(env.iter().copied());
        Watch::spawn(command)
    }

    /// The command [`Watch::start`] runs, to be changed before [`Watch::spawn`].
    pub fn command(dir: &Path, extra: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_camwatch"));
        command
            .arg("watch")
            .arg(dir)
            .args(["--headless", "--device", "cpu"])
            .args(if extra.contains(&"--settle") {
                &[][..]
            } else {
                &["--settle", "0.2"][..]
            })
            // Trust figures add `metrics` lines between checkpoints: only the tests
            // about them ask for them.
            .args(if extra.contains(&"--metrics") {
                &[][..]
            } else {
                &["--metrics", "none"][..]
            })
            .arg("--samples")
            .arg(root().join("samples"))
            .args(extra);
        command
    }

    /// Runs `command` (a `camwatch watch --headless`), reading its lines.
    pub fn spawn(mut command: Command) -> Watch {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("camwatch starts");
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap();
                let value: Value = parse_line(&line)
                    .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Watch {
            child,
            lines,
            stderr,
        }
    }

    pub fn next(&self) -> Value {
        match self.lines.recv_timeout(WAIT) {
            Ok(v) => v,
            Err(e) => panic!(
                "no checkpoint line ({e:?}); stderr:\n{}",
                self.stderr.lock().unwrap()
            ),
        }
    }

    /// The next `n` lines.
    pub fn take(&self, n: usize) -> Vec<Value> {
        (0..n).map(|_| self.next()).collect()
    }

    pub fn expect_quiet(&self, period: Duration) {
        match self.lines.recv_timeout(period) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(v) => panic!("unexpected line: {v}"),
            Err(e) => panic!("camwatch ended: {e:?}; {}", self.stderr.lock().unwrap()),
        }
    }

    pub fn signal(mut self, signal: &str) -> ExitStatus {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < WAIT, "camwatch did not stop on {signal}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn interrupt(self) -> ExitStatus {
        self.signal("-INT")
    }
}

pub fn history_json(dir: &Path, extra: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_camwatch"))
        .arg("history")
        .arg(dir)
        .arg("--json")
        .arg("--samples")
        .arg(root().join("samples"))
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Each checkpoint of `history --json`'s dump as (file name, status).
pub fn statuses(dump: &Value) -> Vec<(String, String)> {
    dump["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (file_name(c), str_of(c, "status").to_string()))
        .collect()
}

pub fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("no {key} in {v}"))
}

pub fn file_name(v: &Value) -> String {
    Path::new(str_of(v, "path"))
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}
