//! Published results taken into a history at once, for the commands that read runs
//! (`history`, `report`, `export`): what other camwatches published beside the run is
//! shown as if computed here, without a network and without downloading a checkpoint.
//! (`watch` takes them as they come: the mirror and the worker.)

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use super::history::{History, HistoryError, Setting};
use crate::results::{Expected, Kind, Published, PublishedSetting, PublishedTrust, Shelf};

/// How long a reader waits for the store: a run whose store is down is read from its
/// history alone.
const PATIENCE: Duration = Duration::from_secs(15);

/// What an import did: checkpoints taken, and the objects refused (one line each).
#[derive(Debug, Default)]
pub struct Imported {
    pub checkpoints: usize,
    pub refused: Vec<String>,
    /// Why nothing could be read (the store unreachable).
    pub unread: Option<String>,
}

/// The history a reader reads: `local` (the run's own, if it has one) with every
/// checkpoint's results published on `shelf` for `setting` that it lacks, with their
/// trust figures. When something is published, that is a copy in memory (a reader
/// writes nothing, and never takes the run's history from the camwatch that writes it);
/// otherwise, or when the shelf cannot be read (said in [`Imported::unread`]), `local`
/// itself. `keys`: the samples' keys, whose results are copied.
pub fn reading_history(
    local: Option<History>,
    dir: &Path,
    shelf: &Shelf,
    setting: &Setting,
    published: &PublishedSetting,
    keys: &[String],
) -> (Option<History>, Imported) {
    let mut imported = Imported::default();
    let copy = (|| -> Result<Option<History>, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let listed = runtime.block_on(patiently(shelf, shelf.list_async()))?;
        let names: HashSet<String> = listed
            .iter()
            .filter_map(|o| shelf.name_of(&o.location))
            .collect();
        if !names
            .iter()
            .any(|n| matches!(crate::results::parse_name(n), Some((_, _, Kind::Results))))
        {
            return Ok(None);
        }
        let mut copy = History::in_memory(dir).map_err(|e| e.to_string())?;
        if let Some(local) = &local {
            copy_setting(local, &mut copy, setting, keys).map_err(|e| e.to_string())?;
        }
        let import = import(&mut copy, dir, shelf, &names, setting, published);
        imported = runtime.block_on(patiently(shelf, import))?;
        Ok(Some(copy))
    })();
    match copy {
        Ok(Some(copy)) => (Some(copy), imported),
        Ok(None) => (local, imported),
        Err(e) => {
            imported.unread = Some(e);
            (local, imported)
        }
    }
}

/// `what`, or an error naming the shelf when the store has not answered in [`PATIENCE`].
async fn patiently<T>(
    shelf: &Shelf,
    what: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(PATIENCE, what)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "{}: no answer in {} s",
                shelf.place(),
                PATIENCE.as_secs()
            ))
        })
}

/// Every checkpoint of `from`, with its results under `setting` for `keys`, into `to`.
fn copy_setting(
    from: &History,
    to: &mut History,
    setting: &Setting,
    keys: &[String],
) -> Result<(), HistoryError> {
    for row in from.checkpoints()? {
        let stored = from.results(&row.hash, setting, keys)?;
        let keyed: Vec<_> = keys.iter().cloned().zip(stored).collect();
        to.record(&row, setting, &keyed)?;
    }
    Ok(())
}

/// Records into `history` (of the run in `dir`) the published results among `names`
/// whose checkpoint it does not hold yet.
async fn import(
    history: &mut History,
    dir: &Path,
    shelf: &Shelf,
    names: &HashSet<String>,
    setting: &Setting,
    published: &PublishedSetting,
) -> Result<Imported, String> {
    let known: HashSet<String> = history
        .checkpoints()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|r| r.hash)
        .collect();
    let mut imported = Imported::default();
    let mut sorted: Vec<&String> = names.iter().collect();
    sorted.sort();
    for name in sorted {
        let Some((key, identity, Kind::Results)) = crate::results::parse_name(name) else {
            continue;
        };
        let expected = Expected {
            key,
            identity,
            setting: published,
        };
        let results = shelf
            .read_async(name, |bytes| Published::decode(bytes, &expected))
            .await;
        let results = match results {
            Ok(Some(results)) => results,
            Ok(None) => continue,
            Err(e) => {
                imported.refused.push(e);
                continue;
            }
        };
        if known.contains(&results.checkpoint.hash) {
            continue;
        }
        let row = results.row(dir.join(key), shelf.describe(name));
        history
            .record(&row, setting, &results.stored())
            .map_err(|e| e.to_string())?;
        let trust_name = crate::results::trust_name(key, identity);
        if names.contains(&trust_name) {
            let trust = shelf.read_async(&trust_name, |bytes| {
                PublishedTrust::decode(bytes, &expected).and_then(|t| match t.hash == row.hash {
                    true => Ok(t),
                    false => Err("holds other weights' figures".into()),
                })
            });
            match trust.await {
                Ok(Some(trust)) => history
                    .record_trust(&row.hash, setting, &trust.figures())
                    .map_err(|e| e.to_string())?,
                Ok(None) => {}
                Err(e) => imported.refused.push(e),
            }
        }
        imported.checkpoints += 1;
    }
    Ok(imported)
}
