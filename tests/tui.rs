//! The real binary in a real terminal (tmux) on a copy of the demo: keys in, screen out,
//! snapshot files written, and the terminal given back on quit.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const SOCKET: &str = "camwatch-tests";

fn tmux(args: &[&str]) -> Output {
    Command::new("tmux")
        .args(["-L", SOCKET])
        .args(args)
        .output()
        .expect("tmux runs (apt-get install tmux)")
}

struct Session(String);

impl Session {
    fn screen(&self) -> String {
        String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &self.0]).stdout).into_owned()
    }

    fn keys(&self, keys: &str) {
        assert!(tmux(&["send-keys", "-t", &self.0, keys]).status.success());
    }

    /// Waits until the screen satisfies `test`; fails with the screen after a minute.
    /// The screen once `test` holds of it. Everything a test checks of one screen goes
    /// into `test`: tmux may be captured in the middle of a frame (its top rows new, the
    /// rest still the last frame's), so a screen whose header is right may not be yet.
    fn wait_for(&self, what: &str, test: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if test(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "waited for {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        tmux(&["kill-session", "-t", &self.0]);
    }
}

fn header(screen: &str) -> &str {
    screen.lines().next().unwrap_or("")
}

/// The demo's first four epochs in a fresh folder, and camwatch's UI on it in tmux.
fn start(name: &str) -> (Session, PathBuf) {
    start_with(name, "")
}

/// [`start`] with more flags for `camwatch watch`.
fn start_with(name: &str, flags: &str) -> (Session, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = common::demo_epochs(name, 4);
    let run = work.join("checkpoints");
    let snapshots = work.join("snapshots");
    let command = format!(
        "{} watch {} --samples {} --protocol halfblocks --device cpu --snapshots {} {flags}; \
         echo camwatch-exit=$?; sleep 120",
        env!("CARGO_BIN_EXE_camwatch"),
        run.display(),
        root.join("samples").display(),
        snapshots.display()
    );
    (open(name, &command, (100, 30)), snapshots)
}

/// `command` in a new tmux session of `size` columns and rows.
fn open(name: &str, command: &str, (columns, rows): (u16, u16)) -> Session {
    let session = format!("{name}-{}", std::process::id());
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        &columns.to_string(),
        "-y",
        &rows.to_string(),
        command,
    ]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    Session(session)
}

fn assert_terminal_restored(session: &Session) {
    session.wait_for("camwatch to exit with 0", |s| s.contains("camwatch-exit=0"));
    let alternate = tmux(&["display", "-p", "-t", &session.0, "#{alternate_on}"]);
    assert_eq!(String::from_utf8_lossy(&alternate.stdout).trim(), "0");
}

#[test]
fn keys_move_the_screen_and_quit_restores_the_terminal() {
    let (session, snapshots) = start("tui-keys");
    session.wait_for("the latest epoch, the first sample and its charts", |s| {
        header(s).contains("epoch 4 [4/4] ● follow")
            && header(s).contains("sample 1/12 00_disc")
            && s.contains("epochs (4)")
            && s.contains("p(target)")
    });

    session.keys("l");
    session.wait_for("the next sample", |s| {
        header(s).contains("sample 2/12 01_square")
    });
    session.keys("j");
    session.wait_for("the previous epoch", |s| {
        header(s).contains("epoch 3 [3/4]")
    });
    session.keys("Home");
    session.wait_for("the first epoch", |s| header(s).contains("epoch 1 [1/4]"));
    session.keys("f");
    session.wait_for("following again", |s| {
        header(s).contains("epoch 4 [4/4] ● follow")
    });

    session.keys("?");
    session.wait_for("the help", |s| {
        s.contains("Keys") && s.contains("animated GIF")
    });
    session.keys("?");
    session.wait_for("the help gone", |s| !s.contains("animated GIF"));

    session.keys("s");
    session.wait_for("the snapshot written", |s| s.contains("wrote"));
    let mut written: Vec<PathBuf> = std::fs::read_dir(&snapshots)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    written.sort();
    assert_eq!(written.len(), 3, "{written:?}");
    for file in &written {
        let image = image::open(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(image.width() >= 224, "{}", file.display());
    }
    let strip = written
        .iter()
        .find(|p| p.to_string_lossy().contains("timeline"));
    let strip = image::open(strip.expect("a timeline strip")).unwrap();
    assert!(strip.width() >= 4 * strip.height(), "one frame per epoch");

    session.keys("q");
    assert_terminal_restored(&session);
}

/// A `kill` (or the SSH connection going: SIGHUP) ends it as `q` does.
#[test]
fn sigterm_restores_the_terminal() {
    let (session, _) = start("tui-sigterm");
    session.wait_for("the latest epoch", |s| header(s).contains("epoch 4 [4/4]"));
    signal(&session, "-TERM");
    assert_terminal_restored(&session);
}

/// Sends `signal` to the camwatch under the session's shell.
fn signal(session: &Session, signal: &str) {
    let pane = tmux(&["display", "-p", "-t", &session.0, "#{pane_pid}"]);
    let shell = String::from_utf8_lossy(&pane.stdout).trim().to_string();
    let killed = Command::new("pkill")
        .args([signal, "-P", &shell, "camwatch"])
        .status()
        .unwrap();
    assert!(killed.success(), "camwatch found under the pane's shell");
}

/// `q`, SIGTERM and SIGINT while every method, ScoreCAM's forward pass per feature
/// channel included, is being computed: the worker stops at its next pass and is joined before the process
/// exits, with status 0, the terminal restored and the history intact.
#[test]
fn quitting_while_scorecam_computes_is_clean() {
    for (i, how) in ["q", "-TERM", "-INT", "q", "-TERM", "-INT"]
        .iter()
        .enumerate()
    {
        let (session, snapshots) = start_with(
            &format!("tui-stop-{i}"),
            "--method cam,gradcam,hirescam,gradcam++,xgradcam,layercam,eigencam,scorecam",
        );
        session.wait_for("a checkpoint being computed", |s| s.contains("computing"));
        std::thread::sleep(Duration::from_millis(250 * i as u64));
        match *how {
            "q" => session.keys("q"),
            other => signal(&session, other),
        }
        assert_terminal_restored(&session);
        let history = snapshots.with_file_name("checkpoints/.camwatch/history.sqlite");
        common::assert_history_intact(&history);
    }
}

/// Two training jobs, each with its own `camwatch watch --headless` writing its run's
/// history; a comparing UI opened on both follows those histories read-only (nothing
/// computed twice) while they grow, one cursor across the runs by epoch.
#[test]
fn the_comparing_ui_follows_two_watchers_as_they_write() {
    use common::watch::{Watch, demo_checkpoint, run_dir};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let runs = [run_dir("compare-ui-plain"), run_dir("compare-ui-other")];
    let write = |run: usize, epoch: u32| {
        std::fs::write(
            runs[run].join(format!("epoch_{epoch}.pdparams")),
            demo_checkpoint(epoch),
        )
        .unwrap();
    };
    // Run 0 has epochs 1 and 2; run 1 epochs 2 and, later, 4: a gap and another length.
    write(0, 1);
    write(0, 2);
    write(1, 2);
    let watchers: Vec<Watch> = runs.iter().map(|r| Watch::start(r, &[])).collect();
    watchers[0].take(2);
    watchers[1].take(1);

    let snapshots = runs[0].with_file_name("compare-ui-snapshots");
    let command = format!(
        "{} watch {} {} --samples {} --protocol halfblocks --device cpu --metrics none \
         --snapshots {}; echo camwatch-exit=$?; sleep 120",
        env!("CARGO_BIN_EXE_camwatch"),
        runs[0].display(),
        runs[1].display(),
        root.join("samples").display(),
        snapshots.display()
    );
    let session = open("compare-ui", &command, (120, 40));
    // Each run's history arrives on its own: wait for both.
    // Captions go without the run's name where it would not fit (the legend names
    // the runs).
    // Both runs followed, not computed: "(read-only)" twice.
    session.wait_for(
        "both runs at epoch 2, followed, and their difference",
        |s| {
            header(s).contains("⇆ 2/2 runs")
                && header(s).contains("epoch 2 [2/2] ● follow")
                && s.contains("[1] p 0.")
                && s.contains("[2] p 0.")
                && s.contains("[2] − [1]")
                && s.matches("(read-only)").count() == 2
        },
    );

    // The watchers write on; the UI follows.
    write(0, 3);
    write(1, 4);
    watchers[0].take(1);
    watchers[1].take(1);
    session.wait_for("epochs 3 and 4 from the watchers", |s| {
        header(s).contains("epoch 4 [4/4] ● follow") && s.contains("no epoch 4 in this run")
    });
    session.keys("j");
    session.wait_for("epoch 3, in the first run only", |s| {
        header(s).contains("epoch 3 [3/4]")
            && s.contains("[1] p 0.")
            && s.contains("no epoch 3 in [2]")
    });
    session.keys("j");
    session.wait_for("epoch 2, in both", |s| header(s).contains("epoch 2 [2/4]"));
    session.keys("2");
    session.wait_for("run 2 hidden", |s| {
        header(s).contains("⇆ 1/2 runs") && s.contains("[2] compare-ui-other hidden")
    });
    session.keys("2");
    session.wait_for("run 2 back", |s| header(s).contains("⇆ 2/2 runs"));

    // A snapshot: the sample, both overlays and the difference, side by side.
    session.keys("s");
    session.wait_for("the snapshot written", |s| s.contains("wrote"));
    let written: Vec<PathBuf> = std::fs::read_dir(&snapshots)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    assert!(
        written[0].to_string_lossy().contains(".compare.")
            && written[0].to_string_lossy().ends_with(".e2.png"),
        "{written:?}"
    );
    let image = image::open(&written[0]).unwrap();
    assert_eq!(image.width(), 4 * image.height(), "four tiles");

    // The first run's watcher stops: the UI takes the run over and computes it.
    let mut watchers = watchers.into_iter();
    assert!(watchers.next().unwrap().interrupt().success());
    session.wait_for("the UI writing the first run", |s| {
        s.matches("(read-only)").count() == 1
            && !s.contains("[1] compare-ui-plain on object from 8 (read-only)")
    });
    write(0, 5);
    session.keys("End");
    session.wait_for("epoch 5, computed by the UI", |s| {
        header(s).contains("epoch 5 [5/5] ● follow") && s.contains("[1] p 0.")
    });

    session.keys("q");
    assert_terminal_restored(&session);
    // The other watcher went on undisturbed.
    assert!(watchers.next().unwrap().interrupt().success());
}

/// `watch SWEEP --runs` in the UI: a run that starts later joins, and the screen turns
/// into the comparing one.
#[test]
fn a_sweeps_run_that_starts_later_joins_the_comparing_view() {
    use common::watch::{demo_checkpoint, run_dir};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sweep = run_dir("sweep-ui");
    std::fs::create_dir_all(sweep.join("lr0.1")).unwrap();
    std::fs::write(sweep.join("lr0.1/epoch_1.pdparams"), demo_checkpoint(1)).unwrap();
    let command = format!(
        "{} watch {} --runs --poll 1 --samples {} --protocol halfblocks --device cpu \
         --metrics none; echo camwatch-exit=$?; sleep 120",
        env!("CARGO_BIN_EXE_camwatch"),
        sweep.display(),
        root.join("samples").display(),
    );
    let session = open("sweep-ui", &command, (120, 40));
    session.wait_for("the first run's epoch", |s| {
        header(s).contains("epoch 1 [1/1]")
    });
    std::fs::create_dir_all(sweep.join("lr0.01")).unwrap();
    std::fs::write(sweep.join("lr0.01/epoch_2.pdparams"), demo_checkpoint(2)).unwrap();
    session.wait_for("the second run, compared", |s| {
        header(s).contains("⇆ 2/2 runs")
            && s.contains("[2] p 0.")
            && s.contains("lr0.1")
            && s.contains("lr0.01")
    });
    session.keys("q");
    session.wait_for("camwatch's exit", |s| s.contains("camwatch-exit=0"));
}

/// A sweep whose runs were computed elsewhere (`--publish`), looked at with `--compute
/// never`: the comparing view shows both runs' published results, computing nothing.
#[test]
fn the_comparing_view_shows_a_published_sweep() {
    use common::watch::{Watch, demo_checkpoint, run_dir};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = run_dir("published-sweep-ui");
    let sweep = work.join("sweep");
    for (run, epochs) in [("lr0.1", 1..=2), ("lr0.01", 1..=2)] {
        let dir = sweep.join(run);
        std::fs::create_dir_all(&dir).unwrap();
        for epoch in epochs {
            std::fs::write(
                dir.join(format!("epoch_{epoch}.pdparams")),
                demo_checkpoint(epoch),
            )
            .unwrap();
        }
        // The node that trained it: its history is its own, the results beside the run.
        let history = work.join(format!("{run}.sqlite"));
        let writer = Watch::start(&dir, &["--publish", "--history", history.to_str().unwrap()]);
        writer.take(2);
        assert!(writer.interrupt().success());
    }
    let command = format!(
        "{} watch {} --runs --compute never --samples {} --protocol halfblocks --device cpu \
         --metrics none; echo camwatch-exit=$?; sleep 120",
        env!("CARGO_BIN_EXE_camwatch"),
        sweep.display(),
        root.join("samples").display(),
    );
    let session = open("published-sweep-ui", &command, (120, 40));
    session.wait_for("both runs' published epochs, compared", |s| {
        header(s).contains("⇆ 2/2 runs")
            && header(s).contains("epoch 2")
            && s.contains("[2] p 0.")
            && s.contains("lr0.1")
            && s.contains("lr0.01")
    });
    session.keys("q");
    session.wait_for("camwatch's exit", |s| s.contains("camwatch-exit=0"));
}
