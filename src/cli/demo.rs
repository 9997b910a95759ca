//! `camwatch demo`: the shipped run replayed into a fresh folder one epoch at a time
//! (or, with `--train`, the real trainer writing it), with the terminal UI following.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use clap::Args;

use camwatch::monitor::epoch::epoch_of;
use camwatch::monitor::scan;
use camwatch::tui::ProtocolChoice;

use super::CliResult;
use super::watch::{self, WatchArgs};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// The shipped run to replay.
    #[arg(long, default_value = "checkpoints")]
    pub checkpoints: PathBuf,
    /// The sample set.
    #[arg(long, default_value = "samples")]
    pub samples: PathBuf,
    /// Seconds between two epochs of the replay.
    #[arg(long, value_name = "SECONDS", default_value = "2")]
    pub delay: f64,
    /// Train for real next to the monitor (tools/train_demo.py, PaddlePaddle) instead
    /// of replaying the shipped epochs.
    #[arg(long)]
    pub train: bool,
    /// Epochs to train with --train.
    #[arg(long, default_value_t = 16)]
    pub epochs: usize,
    /// JSON lines instead of the UI; ends after the last epoch.
    #[arg(long)]
    pub headless: bool,
    /// Terminal graphics: auto, kitty, sixel, iterm2, halfblocks.
    #[arg(long, default_value = "auto")]
    pub protocol: ProtocolChoice,
    /// Where snapshots and animations go.
    #[arg(long, default_value = "snapshots")]
    pub snapshots: PathBuf,
}

pub fn run(args: DemoArgs) -> CliResult {
    // Created exclusively under an unpredictable name, readable by this user only: a
    // folder somebody else made in /tmp beforehand is never used.
    let run = tempfile::Builder::new()
        .prefix("camwatch-demo-")
        .tempdir()
        .map_err(|e| format!("{}: {e}", std::env::temp_dir().display()))?;
    let result = follow(&args, run.path());
    // Removed only after the monitor and the replay stopped writing into it.
    drop(run);
    result
}

fn follow(args: &DemoArgs, run: &Path) -> CliResult {
    let mut trainer = None;
    let epochs = if args.train {
        trainer = Some(start_trainer(run, args.epochs)?);
        args.epochs
    } else {
        let shipped = shipped_epochs(&args.checkpoints)?;
        let count = shipped.len();
        let (delay, run) = (
            Duration::from_secs_f64(args.delay.max(0.0)),
            run.to_path_buf(),
        );
        std::thread::spawn(move || replay(&shipped, &run, delay));
        count
    };
    let mut watch = WatchArgs::defaults();
    watch.run.dir = run.to_path_buf();
    watch.run.samples.clone_from(&args.samples);
    watch.headless = args.headless;
    watch.protocol = args.protocol;
    watch.snapshots.clone_from(&args.snapshots);
    let result = watch::run_until(watch, args.headless.then_some(epochs));
    if let Some(mut child) = trainer {
        let _ = child.kill();
        let _ = child.wait();
    }
    result
}

/// The shipped checkpoints, in epoch order.
fn shipped_epochs(dir: &Path) -> CliResult<Vec<PathBuf>> {
    let mut files: Vec<(u64, PathBuf)> = scan::scan(dir, &dir.join(".camwatch"))
        .into_iter()
        .filter_map(|p| Some((epoch_of(&p)?, p)))
        .collect();
    if files.is_empty() {
        return Err(format!(
            "{}: no epoch_N checkpoints to replay (run from the camwatch folder, or pass --checkpoints)",
            dir.display()
        )
        .into());
    }
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// Copies the checkpoints into `run` one by one, as a trainer would write them.
fn replay(files: &[PathBuf], run: &Path, delay: Duration) {
    for (i, file) in files.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(delay);
        }
        let Some(name) = file.file_name() else {
            continue;
        };
        if std::fs::copy(file, run.join(name)).is_err() {
            return;
        }
    }
}

fn start_trainer(run: &Path, epochs: usize) -> CliResult<Child> {
    let script = Path::new("tools/train_demo.py");
    if !script.exists() {
        return Err("--train runs tools/train_demo.py: run from the camwatch folder".into());
    }
    let venv = Path::new(".venv/bin/python");
    let python = if venv.exists() {
        venv
    } else {
        Path::new("python3")
    };
    let check = Command::new(python).args(["-c", "import paddle"]).output();
    if !check.is_ok_and(|o| o.status.success()) {
        return Err(format!(
            "--train needs PaddlePaddle for {}: scripts/setup --reference installs it",
            python.display()
        )
        .into());
    }
    // The trainer's own sample set goes beside the checkpoints (the shipped one is the
    // same images: both come from the same seed).
    Command::new(python)
        .arg(script)
        .arg(run)
        .arg(run.join(".samples"))
        .args(["--epochs", &epochs.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", python.display()).into())
}
