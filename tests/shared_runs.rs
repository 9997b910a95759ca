//! camwatch on runs this user may only read, as on a shared GPU machine: user A's
//! camwatch watches A's run and user B follows it (headless and in the UI); B watches an
//! archived run it may not write, and its history goes to B's cache folder.
//!
//! Two real Unix users, made with `useradd`: this needs root. Root itself ignores file
//! permissions, so the test only means something run as the two users; without root
//! (or without `useradd`) it says that it skipped and passes.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::watch::{Watch, demo_checkpoint, file_name, root, str_of};
use serde_json::Value;

#[derive(Clone)]
struct User {
    name: &'static str,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

impl User {
    /// The user `name` (made if missing), with a fresh home of its own in `work`.
    fn make(name: &'static str, work: &Path) -> Option<User> {
        // One useradd at a time: two at once (this file's tests run in parallel) can
        // lose one's entry or give a name two uids, and the test then met a writer
        // whose uid had no name.
        static USERADD: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = USERADD.lock().unwrap_or_else(|e| e.into_inner());
        let exists = Command::new("id").arg("-u").arg(name).output().ok()?;
        if !exists.status.success() {
            let made = Command::new("useradd")
                .args(["--no-create-home", "--shell", "/bin/sh", name])
                .status()
                .ok()?;
            if !made.success() {
                return None;
            }
        }
        let id = |flag: &str| -> Option<u32> {
            let out = Command::new("id").arg(flag).arg(name).output().ok()?;
            String::from_utf8_lossy(&out.stdout).trim().parse().ok()
        };
        let home = work.join(format!("home-{name}"));
        std::fs::create_dir_all(&home).ok()?;
        let user = User {
            name,
            uid: id("-u")?,
            gid: id("-g")?,
            home,
        };
        user.own(&user.home);
        std::fs::set_permissions(&user.home, std::fs::Permissions::from_mode(0o700)).ok()?;
        Some(user)
    }

    /// `program` run as this user, in its home, with only its own environment.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .uid(self.uid)
            .gid(self.gid)
            .current_dir(&self.home)
            .env_clear()
            .env("HOME", &self.home)
            .env("USER", self.name)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        command
    }

    fn camwatch(&self, args: &[&str]) -> Output {
        self.command(env!("CARGO_BIN_EXE_camwatch"))
            .args(args)
            .output()
            .expect("camwatch runs")
    }

    /// `camwatch watch --headless` as this user.
    fn watch(&self, dir: &Path) -> Watch {
        self.watch_with(dir, &[])
    }

    /// [`User::watch`] with more arguments.
    fn watch_with(&self, dir: &Path, extra: &[&str]) -> Watch {
        let plain = Watch::command(dir, extra);
        let mut command = self.command(plain.get_program());
        command.args(plain.get_args());
        Watch::spawn(command)
    }

    /// Gives `path` (and what is under it) to this user.
    fn own(&self, path: &Path) {
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", self.uid, self.gid))
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Whether this user can run camwatch from where the build put it (every folder
    /// above the binary and libtorch must let others in).
    fn can_run_camwatch(&self) -> bool {
        self.camwatch(&["--version"]).status.success()
    }
}

/// A, B and a work folder every user may enter; `None` (said) where users cannot be made.
fn two_users(name: &str) -> Option<(User, User, PathBuf)> {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: making a second user needs root");
        return None;
    }
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (Some(a), Some(b)) = (
        User::make("camwatch-a", &work),
        User::make("camwatch-b", &work),
    ) else {
        eprintln!("skipped: useradd could not make the test users");
        return None;
    };
    assert!(
        b.can_run_camwatch(),
        "another user cannot run {}: a folder above it or libtorch is closed to others",
        env!("CARGO_BIN_EXE_camwatch")
    );
    Some((a, b, work))
}

/// A run folder owned by `owner` (755: others read, only the owner writes) holding the
/// demo's first `epochs` checkpoints.
fn run_of(owner: Option<&User>, dir: &Path, epochs: u32) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    if let Some(owner) = owner {
        owner.own(dir);
    }
    for epoch in 1..=epochs {
        add_epoch(owner, dir, epoch);
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir.to_path_buf()
}

/// Epoch `epoch` renamed into `dir`, as its owner's trainer would write it.
fn add_epoch(owner: Option<&User>, dir: &Path, epoch: u32) {
    let partial = dir.join(format!(".epoch_{epoch}.partial"));
    std::fs::write(&partial, demo_checkpoint(epoch)).unwrap();
    if let Some(owner) = owner {
        owner.own(&partial);
    }
    std::fs::rename(&partial, dir.join(format!("epoch_{epoch}.pdparams"))).unwrap();
}

fn epochs(lines: &[Value]) -> Vec<u64> {
    let mut epochs: Vec<u64> = lines.iter().map(|l| l["epoch"].as_u64().unwrap()).collect();
    epochs.sort_unstable();
    epochs
}

fn sources(lines: &[Value]) -> Vec<&str> {
    lines.iter().map(|l| str_of(l, "source")).collect()
}

fn wait_for(what: &str, mut test: impl FnMut() -> Option<String>) {
    let start = Instant::now();
    loop {
        let Some(last) = test() else { return };
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "waited for {what}; last seen:\n{last}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_teammate_follows_a_run_another_user_watches() {
    let Some((a, b, work)) = two_users("shared-follow") else {
        return;
    };
    let run = run_of(Some(&a), &work.join("run-of-a"), 2);
    let writer = a.watch(&run);
    assert_eq!(epochs(&writer.take(2)), [1, 2]);

    // B may read the run, not write it: it follows A's history.
    let follower = b.watch(&run);
    let replayed = follower.take(2);
    assert_eq!(epochs(&replayed), [1, 2]);
    assert_eq!(sources(&replayed), ["history", "history"]);
    wait_for("B to say whose history it follows", || {
        let stderr = follower.stderr.lock().unwrap().clone();
        let said = stderr.contains("following its history read-only")
            && stderr.contains(&format!("of {}", a.name));
        (!said).then_some(stderr)
    });

    // B's UI, in tmux run as B, says so in its status line.
    let socket = "camwatch-shared";
    let tmux = |args: &[&str]| b.command("tmux").args(["-L", socket]).args(args).output();
    let ui = format!(
        "{} watch {} --samples {} --protocol halfblocks --device cpu --metrics none",
        env!("CARGO_BIN_EXE_camwatch"),
        run.display(),
        root().join("samples").display()
    );
    let started = tmux(&["new-session", "-d", "-s", "b", "-x", "160", "-y", "40", &ui])
        .expect("tmux runs (apt-get install tmux)");
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let screen = || {
        let out = tmux(&["capture-pane", "-p", "-t", "b"]).unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_for("B's UI to show A's run read-only", || {
        let screen = screen();
        let shown = screen.contains("read-only") && screen.contains(a.name);
        (!shown).then_some(screen)
    });

    // A's next checkpoint reaches B, headless and in the UI.
    add_epoch(Some(&a), &run, 3);
    assert_eq!(writer.next()["epoch"], 3);
    let line = follower.next();
    assert_eq!(
        (line["epoch"].as_u64(), str_of(&line, "source")),
        (Some(3), "history")
    );
    wait_for("B's UI to reach epoch 3", || {
        let screen = screen();
        (!screen.contains("epoch 3 [3/3]")).then_some(screen)
    });
    let _ = tmux(&["kill-server"]);
    assert!(follower.interrupt().success());
    assert!(writer.interrupt().success());

    // A's camwatch gone, B watching again computes nothing A computed: its own history,
    // in its cache folder, starts as a copy of A's.
    let again = b.watch(&run);
    let lines = again.take(3);
    assert_eq!(epochs(&lines), [1, 2, 3]);
    assert_eq!(sources(&lines), ["history"; 3]);
    let stderr = again.stderr.lock().unwrap().clone();
    assert!(stderr.contains("may not be written here"), "{stderr}");
    assert!(
        stderr.contains("starting from the one in the run folder"),
        "{stderr}"
    );
    assert!(again.interrupt().success());
}

#[test]
fn a_folder_this_user_may_not_write_keeps_its_history_in_the_cache() {
    let Some((_, b, work)) = two_users("shared-archive") else {
        return;
    };
    // Root's: B may only read it.
    let archive = run_of(None, &work.join("archive/run"), 2);
    let first = b.watch(&archive);
    let lines = first.take(2);
    assert_eq!(epochs(&lines), [1, 2]);
    assert_eq!(sources(&lines), ["computed", "computed"]);
    let stderr = first.stderr.lock().unwrap().clone();
    assert!(stderr.contains("may not be written here"), "{stderr}");
    assert!(first.interrupt().success());
    assert!(
        !archive.join(".camwatch").exists(),
        "nothing written into the run"
    );

    let cache = b.home.join(".cache/camwatch/runs");
    let kept: Vec<PathBuf> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path().join("history.sqlite"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].exists());
    assert!(stderr.contains(&kept[0].display().to_string()), "{stderr}");

    // The second start reuses it; `history` finds it without flags. Asked to publish
    // beside a run it may not write, it says so once and goes on.
    let second = b.watch_with(&archive, &["--publish"]);
    let lines = second.take(2);
    assert_eq!(sources(&lines), ["history", "history"]);
    second.expect_quiet(Duration::from_secs(2));
    let stderr = second.stderr.lock().unwrap().clone();
    let refused: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("results are kept here only"))
        .collect();
    assert_eq!(refused.len(), 1, "{stderr}");
    assert!(refused[0].contains("may not be written"), "{stderr}");
    assert!(second.interrupt().success());
    assert!(!archive.join(".camwatch").exists());
    let samples = root().join("samples");
    let history = b.camwatch(&[
        "history",
        archive.to_str().unwrap(),
        "--json",
        "--samples",
        samples.to_str().unwrap(),
    ]);
    assert!(history.status.success(), "{history:?}");
    let history: Value = serde_json::from_slice(&history.stdout).unwrap();
    let names: Vec<String> = history["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(file_name)
        .collect();
    assert_eq!(names, ["epoch_1.pdparams", "epoch_2.pdparams"]);
}
