//! The `camwatch` command line.

mod cam_args;
mod check;
mod demo;
mod export;
mod history;
mod info;
mod render;
mod report;
mod run_args;
mod show;
mod signals;
mod watch;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use camwatch::device::DeviceChoice;

#[derive(Parser, Debug)]
#[command(
    name = "camwatch",
    version,
    about = "Watch where a convolutional network looks while it trains",
    long_about = "Watch where a convolutional network looks while it trains.\n\n\
        Without a command, camwatch is `camwatch watch` and takes its arguments: \
        the terminal UI on checkpoints/ and samples/.",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Without a command: `watch`'s arguments.
    #[command(flatten)]
    pub watch: watch::WatchArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Describe a weight file: format, architecture, parameter count, load time.
    Info {
        /// A .pdparams, .pt/.pth/.pth.tar/.ckpt or .safetensors file.
        file: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Where to load it: auto, cpu, cuda[:N] or flex.
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
        /// The network's name where the file does not say what its tensors cannot tell
        /// (timm's `tf_efficientnet_b0`: TensorFlow padding and BatchNorm epsilon).
        #[arg(long, value_name = "NAME")]
        arch: Option<String>,
    },
    /// Compute class activation maps for a sample set; write maps, overlays, summary.json.
    Render(render::RenderArgs),
    /// Print one image's overlay in the terminal.
    Show(show::ShowArgs),
    /// Follow a training run in the terminal UI (or --headless): every checkpoint's maps,
    /// recorded in the run's history.
    Watch(watch::WatchArgs),
    /// The shipped demo run, replayed one epoch at a time (or trained with --train),
    /// in the terminal UI.
    Demo(demo::DemoArgs),
    /// Print a run's recorded history: per checkpoint and sample, predictions, box
    /// figures and attention drift.
    History(history::HistoryArgs),
    /// Check one checkpoint against rules (box energy, pointing, accuracy, faithfulness,
    /// sanity): one line per rule, exit status non-zero when any fails.
    Check(check::CheckArgs),
    /// Compare runs' histories by epoch: charts, the samples side by side with the
    /// difference of two runs' maps, and a report.md.
    Report(report::ReportArgs),
    /// Write runs' histories as TensorBoard event files (scalars per figure and method,
    /// overlays per sample), for TensorBoard, W&B and Aim.
    Export(export::ExportArgs),
}

pub type CliResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

pub fn run(cli: Cli) -> CliResult {
    let command = cli.command.unwrap_or(Command::Watch(cli.watch));
    // A command that prints and ends (`camwatch history | head`) ends quietly when its
    // reader goes, as Unix tools do; Rust ignores SIGPIPE, and `println!` would panic
    // instead. `watch` and `demo` keep it ignored: they see the closed pipe as a write
    // error and stop cleanly, the history whole.
    if !matches!(command, Command::Watch(_) | Command::Demo(_)) {
        // SAFETY: signal(2) with the default action, a process-wide setting; no handler.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match command {
        Command::Info {
            file,
            json,
            device,
            arch,
        } => info::run(&file, json, device, arch),
        Command::Render(args) => render::run(args),
        Command::Show(args) => show::run(args),
        Command::Watch(args) => watch::run(args),
        Command::History(args) => history::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Check(args) => check::run(args),
        Command::Report(args) => report::run(args),
        Command::Export(args) => export::run(args),
    }
}
