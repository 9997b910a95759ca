//! `camwatch export RUN… --tensorboard DIR`: the stored histories as TensorBoard event
//! files (see `camwatch::tensorboard`), one subfolder per run when there are several,
//! named as the comparing view names the runs. Run again, it adds only what is new.

use std::path::{Path, PathBuf};

use clap::Args;

use camwatch::cam::Method;
use camwatch::compare;
use camwatch::monitor;
use camwatch::paths;
use camwatch::precision::{Precision, PrecisionChoice};
use camwatch::tensorboard::{EventLog, ImageOptions, RunExport};

use super::CliResult;
use super::history::read_runs;
use super::run_args::RunArgs;

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// More runs, each into its own subfolder.
    #[arg(value_name = "RUN")]
    pub more: Vec<PathBuf>,
    /// The TensorBoard log folder to write event files into (`tensorboard --logdir`).
    #[arg(long, value_name = "DIR")]
    pub tensorboard: PathBuf,
    #[command(flatten)]
    pub images: ImageArgs,
}

/// How exported images are drawn (`export` and `watch --tensorboard`).
#[derive(Args, Debug, Clone)]
pub struct ImageArgs {
    /// The longest side of each exported overlay, and the side of a grid's tiles, in
    /// pixels.
    #[arg(long, value_name = "PIXELS", default_value_t = 224,
          value_parser = clap::value_parser!(u32).range(16..=2048))]
    pub image_size: u32,
}

/// The log folder of each of `dirs` under `root`: `root` itself for one run, else a
/// subfolder named as the comparing view names the run.
pub fn run_folders(root: &Path, dirs: &[&Path]) -> Vec<PathBuf> {
    if dirs.len() == 1 {
        return vec![root.to_path_buf()];
    }
    compare::run_names(dirs)
        .into_iter()
        .map(|name| root.join(name.replace(['/', '\\'], "_")))
        .collect()
}

pub fn run(args: ExportArgs) -> CliResult {
    let (shared, runs) = read_runs(&args.run, &args.more)?;
    let dirs: Vec<&Path> = runs.iter().map(|r| r.dir.as_path()).collect();
    let images = ImageOptions {
        size: args.images.image_size,
        style: args.run.cam.style(false),
    };
    // Every method and precision stored, each under its own tags, unless asked for.
    let mut settings = shared.settings.clone();
    if args.run.cam.methods.is_empty() {
        settings.request.methods = Method::ALL.to_vec();
    }
    let precisions = match args.run.cam.precision {
        Some(PrecisionChoice::Fp32) => vec![Precision::Fp32],
        Some(PrecisionChoice::Bf16) => vec![Precision::Bf16],
        _ => vec![Precision::Fp32, Precision::Bf16],
    };
    for (run, folder) in runs.iter().zip(run_folders(&args.tensorboard, &dirs)) {
        let log = EventLog::open(&folder)?;
        for name in &log.unreadable {
            eprintln!(
                "camwatch: {}: not whole (a crash while writing?): what it holds stays",
                paths::for_terminal(&folder.join(name).display().to_string())
            );
        }
        let mut export = RunExport::new(
            log,
            (run.dir.clone(), run.file.clone()),
            shared.samples.clone(),
            shared.steps,
            images.clone(),
        );
        let (mut values, mut steps) = (0, 0);
        for &precision in &precisions {
            settings.precision = precision;
            let reports =
                monitor::read_history(&run.history, &shared.samples, &settings, shared.steps)?;
            for report in &reports {
                let written = export.checkpoint(report, &settings)?;
                values += written;
                steps += usize::from(written > 0);
            }
        }
        println!(
            "camwatch export: {} -> {}: {values} value(s) at {steps} checkpoint(s)",
            paths::for_terminal(&run.dir.display().to_string()),
            paths::for_terminal(&folder.display().to_string()),
        );
    }
    Ok(())
}
