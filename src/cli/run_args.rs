//! The flags `watch` and `history` share: which run, which samples, where its history is.

use std::path::PathBuf;

use clap::Args;

use camwatch::cam::{SampleSet, Target};
use camwatch::device::SelectedDevice;
use camwatch::render::CamSettings;
use camwatch::store::mirror::{self, MirrorConfig, MirrorEvent};
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
    #[command(flatten)]
    pub cam: CamOptions,
}

pub use camwatch::runs::{StoreRun, resolve_stores};

impl RunArgs {
    /// The sample set and what to compute for it on `device`, checked against each
    /// other.
    pub fn load(&self, device: &SelectedDevice) -> CliResult<(SampleSet, CamSettings)> {
        let set = SampleSet::load(&self.samples)?;
        let settings = self.cam.resolve(&set, device);
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

/// The store run of `url` (`s3://bucket/run/`) as the mirror fetches it.
fn mirror_config(url: StoreUrl, cache: Option<&std::path::Path>) -> CliResult<MirrorConfig> {
    let folder = url.cache_folder(cache);
    std::fs::create_dir_all(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
    Ok(MirrorConfig {
        store: url.open()?,
        // `check` and `render` fetch what they need and remove nothing.
        recorded: None,
        dir: folder,
        poll: std::time::Duration::ZERO,
        cache_limit: u64::MAX,
        results: None,
    })
}

fn say(event: MirrorEvent) {
    if let MirrorEvent::Warning(text) = event {
        eprintln!("camwatch: {}", camwatch::paths::for_terminal(&text));
    }
}

/// A checkpoint given as a file or as a store object's URL (fetched into the cache).
pub fn local_checkpoint(
    arg: &std::path::Path,
    cache: Option<&std::path::Path>,
) -> CliResult<PathBuf> {
    let Some(text) = arg.to_str().filter(|t| t.contains("://")) else {
        return Ok(arg.to_path_buf());
    };
    let (parent, key) = text
        .rsplit_once('/')
        .filter(|(_, key)| !key.is_empty())
        .ok_or_else(|| format!("{text}: the URL of an object, not of a prefix"))?;
    match Location::parse(std::path::Path::new(&format!("{parent}/")))? {
        Location::Folder(folder) => Ok(folder.join(key)),
        Location::Store(url) => Ok(mirror::fetch(
            mirror_config(url, cache)?,
            key,
            Box::new(say),
        )?),
    }
}

/// A run given as a folder or a store URL (listed and fetched once, now, into the cache).
pub fn synced_folder(arg: &std::path::Path, cache: Option<&std::path::Path>) -> CliResult<PathBuf> {
    match Location::parse(arg)? {
        Location::Folder(folder) => Ok(folder),
        Location::Store(url) => {
            let config = mirror_config(url, cache)?;
            let folder = config.dir.clone();
            mirror::sync(config, Box::new(say))?;
            Ok(folder)
        }
    }
}
