//! Where a run's history lives.
//!
//! - `--history PATH`: there, always.
//! - In the run folder, `RUN/.camwatch/history.sqlite`, when camwatch may write there:
//!   the history travels with the run, and every camwatch on the run finds it.
//! - In the run folder too when another camwatch (another user's, say) writes it there:
//!   this one follows it read-only ([`super::lock`]).
//! - Otherwise (an archived run, a read-only mount, a teammate's finished run) in the
//!   user's cache folder, `~/.cache/camwatch/runs/<name>-<key>/history.sqlite`, keyed
//!   by the run's canonical path so that two runs never share one. A cache history
//!   made for a run that already has a history in its folder starts as a copy of it.
//!
//! Commands that only read (`history`, `report`, `export`, the stored maps) look in the
//! same places and create nothing.

use std::path::{Path, PathBuf};

use super::history::{History, HistoryError};
use super::{HISTORY_DIR, HISTORY_FILE, lock};

/// Why the history is where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaceKind {
    /// `--history`.
    Given,
    /// `RUN/.camwatch/`.
    InRun,
    /// The user's cache folder: the run folder may not be written.
    Cache,
}

/// A run's history database and why it is there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryPlace {
    pub file: PathBuf,
    pub kind: PlaceKind,
}

/// What the history is wanted for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Watching: written, or followed while another camwatch writes it.
    Watch,
    /// Reading what is stored.
    Read,
}

/// The history database for a run in `dir`: `PATH` itself when it names a file (or ends
/// in `.sqlite`), else `PATH/history.sqlite`; without `--history`,
/// `dir/.camwatch/history.sqlite`.
pub fn history_file(dir: &Path, given: Option<&Path>) -> PathBuf {
    match given {
        Some(p) if p.is_file() || p.extension().is_some_and(|e| e == "sqlite") => p.into(),
        Some(p) => p.join(HISTORY_FILE),
        None => dir.join(HISTORY_DIR).join(HISTORY_FILE),
    }
}

/// Where the history of the run in `dir` is, by the rules above.
pub fn locate(dir: &Path, given: Option<&Path>, purpose: Purpose) -> HistoryPlace {
    let in_run = history_file(dir, given);
    if given.is_some() {
        return HistoryPlace {
            file: in_run,
            kind: PlaceKind::Given,
        };
    }
    let here = |kind| HistoryPlace {
        file: in_run.clone(),
        kind,
    };
    if may_write(&in_run) || lock::holder(&in_run).is_some() {
        return here(PlaceKind::InRun);
    }
    let Some(cached) = cache_file(dir) else {
        return here(PlaceKind::InRun);
    };
    // A reader takes what exists: the cache's own history first (this user computed
    // it), else the one in the run folder.
    if purpose == Purpose::Read && !cached.exists() && in_run.exists() {
        return here(PlaceKind::InRun);
    }
    HistoryPlace {
        file: cached,
        kind: PlaceKind::Cache,
    }
}

/// Makes the place ready for watching: a new cache history starts as a copy of the
/// run folder's, if it has one. Returns what to tell the user, once, at start.
pub fn prepare(dir: &Path, place: &HistoryPlace) -> Result<Option<String>, HistoryError> {
    if place.kind != PlaceKind::Cache {
        return Ok(None);
    }
    let in_run = history_file(dir, None);
    let mut copied = "";
    if !place.file.exists() && in_run.exists() {
        History::open_read_only(&in_run, dir)?.copy_to(&place.file)?;
        copied = ", starting from the one in the run folder";
    }
    Ok(Some(format!(
        "{} may not be written here: its history is kept in {}{copied}",
        dir.display(),
        place.file.display()
    )))
}

/// Whether this user may create or write the history `file` (and its folder): the
/// folder, or the first existing one above it, is writable, and so are the file and
/// SQLite's files beside it where they exist. (Asked of the kernel: a read-only mount
/// says no even to root.)
fn may_write(file: &Path) -> bool {
    let Some(folder) = file.parent() else {
        return false;
    };
    let existing = folder.ancestors().find(|f| f.exists());
    let Some(existing) = existing else {
        return false;
    };
    let beside = ["", "-wal", "-shm"].map(|suffix| {
        let mut name = file.as_os_str().to_os_string();
        name.push(suffix);
        PathBuf::from(name)
    });
    accessible(existing, libc::W_OK | libc::X_OK)
        && beside
            .iter()
            .all(|f| !f.exists() || accessible(f, libc::W_OK))
}

fn accessible(path: &Path, mode: libc::c_int) -> bool {
    let Ok(path) = std::ffi::CString::new(crate::paths::bytes(path)) else {
        return false;
    };
    // SAFETY: a NUL-terminated path that outlives the call.
    unsafe { libc::access(path.as_ptr(), mode) == 0 }
}

/// The cache folder's history for the run in `dir`, named after the run's folder (for a
/// person looking) and keyed by its canonical path; `None` when there is no cache
/// folder (no home).
pub fn cache_file(dir: &Path) -> Option<PathBuf> {
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let key = blake3::hash(crate::paths::bytes(&canonical)).to_hex();
    let name: String = canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let folder = format!("{}-{}", name.trim_start_matches('.'), &key[..16]);
    Some(
        dirs::cache_dir()?
            .join("camwatch")
            .join("runs")
            .join(folder)
            .join(HISTORY_FILE),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_history_is_used_as_given() {
        let dir = tempfile::tempdir().unwrap();
        let given = dir.path().join("h.sqlite");
        let place = locate(Path::new("/nowhere/run"), Some(&given), Purpose::Watch);
        assert_eq!(place.kind, PlaceKind::Given);
        assert_eq!(place.file, given);
        let folder = locate(Path::new("run"), Some(dir.path()), Purpose::Read);
        assert_eq!(folder.file, dir.path().join(HISTORY_FILE));
    }

    #[test]
    fn a_writable_run_keeps_its_history_inside() {
        let dir = tempfile::tempdir().unwrap();
        let place = locate(dir.path(), None, Purpose::Watch);
        assert_eq!(place.kind, PlaceKind::InRun);
        assert_eq!(place.file, dir.path().join(".camwatch/history.sqlite"));
    }

    #[test]
    fn two_runs_never_share_a_cache_history() {
        let a = cache_file(Path::new("/archive/a/run")).unwrap();
        let b = cache_file(Path::new("/archive/b/run")).unwrap();
        assert_ne!(a, b);
        let folder = a.parent().unwrap().file_name().unwrap().to_string_lossy();
        assert!(folder.starts_with("run-"), "{folder}");
        assert_eq!(a, cache_file(Path::new("/archive/a/run")).unwrap());
    }
}
