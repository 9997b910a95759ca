//! The flags `watch` and `history` share: which run, which samples, where its history is.

use std::path::PathBuf;

use clap::Args;

use camwatch::cam::{SampleSet, Target};
use camwatch::device::SelectedDevice;
use camwatch::monitor::place::{self, HistoryPlace, Purpose};
use camwatch::render::CamSettings;
use camwatch::store::{Location, StoreUrl};

use super::CliResult;
use super::cam_args::CamOptions;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The folder the training run writes its checkpoints to (subfolders included), or
    /// its prefix in an object store: s3://bucket/run/ (endpoint and credentials from
    /// AWS_*), gs://, az://, abfs://, https://.
    #[arg(default_value = "checkpoints")]
    pub dir: PathBuf,
    /// Sample images, with optional labels.csv, classes.txt and camwatch.toml.
    #[arg(long, default_value = "samples")]
    pub samples: PathBuf,
    /// The history database, or a folder for it [default: DIR/.camwatch/history.sqlite,
    /// or the user's cache folder where DIR may not be written]
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Where runs kept in object storage are mirrored, with their histories
    /// [default: the user's cache folder, camwatch/stores]
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    #[command(flatten)]
    pub cam: CamOptions,
}

/// A run given as a store URL: where it is, and its local folder (mirror and history).
#[derive(Clone, Debug)]
pub struct StoreRun {
    pub url: StoreUrl,
    pub folder: PathBuf,
}

impl StoreRun {
    /// `path` (a file of the local folder) as the URL of its object.
    pub fn url_of(&self, path: &std::path::Path) -> Option<String> {
        let key = path.strip_prefix(&self.folder).ok()?.to_str()?;
        Some(self.url.join(key))
    }

    /// `path`'s key under the run's prefix.
    pub fn key_of<'a>(&self, path: &'a std::path::Path) -> Option<&'a str> {
        path.strip_prefix(&self.folder).ok()?.to_str()
    }
}

/// Replaces every run given as a store URL (`dir` and `more`) by its local folder under
/// `cache`, which is made when `create`; the URLs, run by run (`None` for folders).
pub fn resolve_stores(
    dir: &mut PathBuf,
    more: &mut [PathBuf],
    cache: Option<&std::path::Path>,
    create: bool,
) -> CliResult<Vec<Option<StoreRun>>> {
    std::iter::once(dir)
        .chain(more.iter_mut())
        .map(|dir| match Location::parse(dir)? {
            Location::Folder(folder) => {
                *dir = folder;
                Ok(None)
            }
            Location::Store(url) => {
                let folder = url.cache_folder(cache);
                if create {
                    std::fs::create_dir_all(&folder)
                        .map_err(|e| format!("{}: {e}", folder.display()))?;
                }
                dir.clone_from(&folder);
                Ok(Some(StoreRun { url, folder }))
            }
        })
        .collect()
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
