//! The flags `watch` and `history` share: which run, which samples, where its history is.

use std::path::PathBuf;

use clap::Args;

use camwatch::cam::{SampleSet, Target};
use camwatch::device::SelectedDevice;
use camwatch::monitor::place::{self, HistoryPlace, Purpose};
use camwatch::render::CamSettings;

use super::CliResult;
use super::cam_args::CamOptions;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The folder the training run writes its checkpoints to (subfolders included).
    #[arg(default_value = "checkpoints")]
    pub dir: PathBuf,
    /// Sample images, with optional labels.csv, classes.txt and camwatch.toml.
    #[arg(long, default_value = "samples")]
    pub samples: PathBuf,
    /// The history database, or a folder for it [default: DIR/.camwatch/history.sqlite,
    /// or the user's cache folder where DIR may not be written]
    #[arg(long)]
    pub history: Option<PathBuf>,
    #[command(flatten)]
    pub cam: CamOptions,
}

impl RunArgs {
    /// Where this run's history is, for `purpose`.
    pub fn history_place(&self, purpose: Purpose) -> HistoryPlace {
        place::locate(&self.dir, self.history.as_deref(), purpose)
    }

    /// The sample set and what to compute for it on `device`, checked against each
    /// other.
    pub fn load(&self, device: &SelectedDevice) -> CliResult<(SampleSet, CamSettings)> {
        let set = SampleSet::load(&self.samples)?;
        let settings = self.cam.resolve(&set.defaults, device);
        if settings.request.target == Target::Label
            && let Some(s) = set.samples.iter().find(|s| s.label.is_none())
        {
            return Err(format!(
                "--target label: {} has no label for {}",
                set.dir.join("labels.csv").display(),
                s.file.display()
            )
            .into());
        }
        Ok((set, settings))
    }
}
