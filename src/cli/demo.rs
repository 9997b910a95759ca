//! `camwatch demo`: the shipped run replayed into a fresh folder one epoch at a time
//! (or, with `--train`, the real trainer writing it), with the terminal UI following;
//! with `--compare`, the shipped pair (the plain run and the shortcut run) side by side.

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
    /// The run to replay [default: the shipped one, checkpoints/ in camwatch's folder].
    #[arg(long)]
    pub checkpoints: Option<PathBuf>,
    /// Replay the shipped pair side by side: the run in --checkpoints and the one
    /// trained on data with a shortcut (--shortcut-checkpoints), compared by epoch.
    #[arg(long, conflicts_with = "train")]
    pub compare: bool,
    /// The shortcut run of the pair (with --compare) [default: the shipped one,
    /// checkpoints-shortcut/ in camwatch's folder].
    #[arg(long)]
    pub shortcut_checkpoints: Option<PathBuf>,
    /// The sample set [default: the shipped one, samples/ in camwatch's folder].
    #[arg(long)]
    pub samples: Option<PathBuf>,
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

fn follow(args: &DemoArgs, folder: &Path) -> CliResult {
    let mut trainer = None;
    let or_shipped = |given: &Option<PathBuf>, name: &str, flag: &str| match given {
        Some(path) => Ok(path.clone()),
        None => shipped(name, &format!("pass --{flag} DIR")),
    };
    // Each run in a folder named for it: the UI and the JSON lines name runs by folder.
    let pair = if args.compare {
        vec![
            (
                or_shipped(&args.checkpoints, "checkpoints", "checkpoints")?,
                folder.join("plain"),
            ),
            (
                or_shipped(
                    &args.shortcut_checkpoints,
                    "checkpoints-shortcut",
                    "shortcut-checkpoints",
                )?,
                folder.join("shortcut"),
            ),
        ]
    } else {
        vec![(
            or_shipped(&args.checkpoints, "checkpoints", "checkpoints")?,
            folder.to_path_buf(),
        )]
    };
    let samples = or_shipped(&args.samples, "samples", "samples")?;
    let epochs = if args.train {
        trainer = Some(start_trainer(folder, args.epochs)?);
        args.epochs
    } else {
        let delay = Duration::from_secs_f64(args.delay.max(0.0));
        let mut count = 0;
        for (shipped, run) in &pair {
            let shipped = shipped_epochs(shipped)?;
            count += shipped.len();
            std::fs::create_dir_all(run).map_err(|e| format!("{}: {e}", run.display()))?;
            let run = run.clone();
            std::thread::spawn(move || replay(&shipped, &run, delay));
        }
        count
    };
    let mut watch = WatchArgs::defaults();
    watch.run.dir.clone_from(&pair[0].1);
    watch.more = pair[1..].iter().map(|(_, run)| run.clone()).collect();
    watch.run.samples = samples;
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

/// `name` (checkpoints/, samples/, tools/ …) as shipped in camwatch's folder: the
/// checkout the running binary was built in (found from the binary, so that a link to
/// it on PATH works from any folder, then from where it was compiled), else the current
/// folder. `otherwise` ends the error: what the user can do.
fn shipped(name: &str, otherwise: &str) -> CliResult<PathBuf> {
    let exe = std::env::current_exe().ok();
    let checkouts = exe
        .iter()
        .flat_map(|exe| exe.ancestors().skip(1).take(4))
        .map(Path::to_path_buf)
        .chain([
            PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            PathBuf::from("."),
        ]);
    for checkout in checkouts {
        let path = checkout.join(name);
        if checkout.join("Cargo.toml").is_file() && path.is_dir() {
            return Ok(path);
        }
    }
    Err(format!(
        "{name}: not in camwatch's checkout beside {} nor in this folder: {otherwise}",
        exe.as_deref().unwrap_or(Path::new("camwatch")).display(),
    )
    .into())
}

/// The shipped checkpoints, in epoch order.
fn shipped_epochs(dir: &Path) -> CliResult<Vec<PathBuf>> {
    let mut files: Vec<(u64, PathBuf)> = scan::scan(dir, &dir.join(".camwatch"))
        .into_iter()
        .filter_map(|p| Some((epoch_of(&p)?, p)))
        .collect();
    if files.is_empty() {
        return Err(format!(
            "{}: no epoch_N checkpoints to replay (pass --checkpoints DIR)",
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
    let tools = shipped(
        "tools",
        "--train runs tools/train_demo.py of camwatch's checkout",
    )?;
    let script = tools.join("train_demo.py");
    let venv = tools.join("../.venv/bin/python");
    let python = if venv.exists() {
        venv.as_path()
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
