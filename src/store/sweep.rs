//! The runs of a sweep (`watch ROOT --runs`): each direct subfolder of a folder, or
//! sub-prefix of a store prefix, that holds a checkpoint is a run. Asked again every
//! poll, so that runs that start later join.

use std::path::{Path, PathBuf};

use futures::StreamExt;

use super::{Location, OpenStore};
use crate::scan::{is_checkpoint_name, scan};

/// Objects looked at per sub-prefix before it is taken for a run without a checkpoint.
const LOOK_AT: usize = 1000;

/// The runs under `root`, sorted: folders as paths, store runs as their URLs.
pub fn runs(root: &Location) -> Result<Vec<PathBuf>, String> {
    match root {
        Location::Folder(dir) => Ok(folder_runs(dir)),
        Location::Store(url) => {
            let open = url.open().map_err(|e| e.to_string())?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("{url}: cannot start the store client ({e})"))?;
            runtime.block_on(store_runs(&open))
        }
    }
}

fn folder_runs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut runs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|sub| !scan(sub, &sub.join(crate::scan::HISTORY_DIR)).is_empty())
        .collect();
    runs.sort();
    runs
}

async fn store_runs(open: &OpenStore) -> Result<Vec<PathBuf>, String> {
    let listed = open
        .store
        .list_with_delimiter(Some(&open.prefix))
        .await
        .map_err(|e| open.explain(None, &e))?;
    let mut runs = Vec::new();
    for prefix in listed.common_prefixes {
        let Some(name) = prefix.filename().map(str::to_string) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let holds_a_checkpoint = open
            .store
            .list(Some(&prefix))
            .take(LOOK_AT)
            .any(|meta| {
                futures::future::ready(
                    meta.is_ok_and(|m| is_checkpoint_name(Path::new(m.location.as_ref()))),
                )
            })
            .await;
        if holds_a_checkpoint {
            runs.push(PathBuf::from(open.url.join(&format!("{name}/"))));
        }
    }
    runs.sort();
    Ok(runs)
}
