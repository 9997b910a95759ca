//! `camwatch export RUN… --tensorboard DIR`: the stored histories as TensorBoard event
//! files (see `camwatch::tensorboard`), one subfolder per run when there are several,
//! named as the comparing view names the runs. Run again, it adds only what is new.

use std::path::{Path, PathBuf};

use clap::Args;

use camwatch::cam::{Method, SampleSet};
use camwatch::compare;
use camwatch::monitor;
use camwatch::paths;
use camwatch::precision::{Precision, PrecisionChoice};
use camwatch::tensorboard::{EventLog, ImageOptions, RunExport};

use super::CliResult;
use super::cam_args::CamOptions;
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

impl ImageArgs {
    /// The images as drawn with the overlay style of `cam`.
    pub fn options(&self, cam: &CamOptions) -> ImageOptions {
        ImageOptions {
            size: self.image_size,
            style: cam.style(false),
        }
    }
}

/// The export of each run, given as (run folder, history file), into its log folder
/// under `root` ([`run_folders`]), that folder's own event files read back first (one
/// of them not whole is said, and what it holds stays).
pub fn run_exports(
    root: &Path,
    runs: &[(PathBuf, PathBuf)],
    samples: &SampleSet,
    steps: usize,
    images: &ImageOptions,
) -> CliResult<Vec<(PathBuf, RunExport)>> {
    let dirs: Vec<&Path> = runs.iter().map(|(dir, _)| dir.as_path()).collect();
    let mut exports = Vec::with_capacity(runs.len());
    for ((dir, history), folder) in runs.iter().zip(run_folders(root, &dirs)) {
        let log = EventLog::open(&folder)?;
        for name in &log.unreadable {
            eprintln!(
                "camwatch: {}: not whole (a crash while writing?): what it holds stays",
                paths::for_terminal(&folder.join(name).display().to_string())
            );
        }
        let export = RunExport::new(
            log,
            (dir.clone(), history.clone()),
            samples.clone(),
            steps,
            images.clone(),
        );
        exports.push((folder, export));
    }
    Ok(exports)
}

pub fn run(args: ExportArgs) -> CliResult {
    let (shared, runs) = read_runs(&args.run, &args.more)?;
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
    let locations: Vec<(PathBuf, PathBuf)> = runs
        .iter()
        .map(|r| (r.dir.clone(), r.file.clone()))
        .collect();
    let exports = run_exports(
        &args.tensorboard,
        &locations,
        &shared.samples,
        shared.steps,
        &args.images.options(&args.run.cam),
    )?;
    for (run, (folder, mut export)) in runs.iter().zip(exports) {
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
        let name = match &run.store {
            Some(store) => store.url.to_string(),
            None => run.dir.display().to_string(),
        };
        println!(
            "camwatch export: {} -> {}: {values} value(s) at {steps} checkpoint(s)",
            paths::for_terminal(&name),
            paths::for_terminal(&folder.display().to_string()),
        );
    }
    Ok(())
}
