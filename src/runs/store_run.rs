//! A run given as a store URL: where it is, and its local folder.

use std::path::{Path, PathBuf};

use crate::monitor::CheckpointReport;
use crate::store::{Location, StoreUrl};

/// A run given as a store URL: where it is, and its local folder (mirror and history).
#[derive(Clone, Debug)]
pub struct StoreRun {
    pub url: StoreUrl,
    pub folder: PathBuf,
}

impl StoreRun {
    /// `path` (a file of the local folder) as the URL of its object.
    pub fn url_of(&self, path: &Path) -> Option<String> {
        let key = path.strip_prefix(&self.folder).ok()?.to_str()?;
        Some(self.url.join(key))
    }

    /// `path`'s key under the run's prefix.
    pub fn key_of<'a>(&self, path: &'a Path) -> Option<&'a str> {
        path.strip_prefix(&self.folder).ok()?.to_str()
    }

    /// The report with its files named by their objects' URLs.
    pub fn name_by_url(&self, report: &mut CheckpointReport) {
        report.path = self.url_or_path(&report.path);
        report.paths = report.paths.iter().map(|p| self.url_or_path(p)).collect();
    }

    fn url_or_path(&self, path: &Path) -> PathBuf {
        self.url_of(path)
            .map_or_else(|| path.to_path_buf(), PathBuf::from)
    }
}

/// Replaces every run given as a store URL (`dir` and `more`) by its local folder under
/// `cache`, which is made when `create`; the URLs, run by run (`None` for folders).
pub fn resolve_stores(
    dir: &mut PathBuf,
    more: &mut [PathBuf],
    cache: Option<&Path>,
    create: bool,
) -> Result<Vec<Option<StoreRun>>, String> {
    std::iter::once(dir)
        .chain(more.iter_mut())
        .map(
            |dir| match Location::parse(dir).map_err(|e| e.to_string())? {
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
            },
        )
        .collect()
}
