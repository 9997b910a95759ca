//! One writer per run. The camwatch that watches a run holds an exclusive lock on
//! `<history>.lock` (with its process id inside); another camwatch opened on the same
//! run (a comparing UI next to the watcher of each training job, say) finds it held
//! and follows the history read-only instead of computing the same maps again. The
//! lock goes with its process, however that ends (`kill -9` included).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

/// The lock of a run's history, held for as long as any clone lives (closing the file
/// releases it; the file itself stays, as removing it could race with the next writer).
#[derive(Debug)]
pub struct RunLock(#[allow(dead_code)] File);

/// What claiming a run gave.
#[derive(Debug)]
pub enum Claim {
    /// This process writes the run's history.
    Writer(Arc<RunLock>),
    /// Another process does: its id, if it wrote one.
    Held { pid: Option<u32> },
}

/// Locks held in this process, by lock file: a monitor replaced by a new one (new
/// settings in the UI) shares its lock with the new one while it winds down.
static HELD: Mutex<Vec<(PathBuf, Weak<RunLock>)>> = Mutex::new(Vec::new());

/// The lock file of a history database.
pub fn lock_file(history: &Path) -> PathBuf {
    let mut name = history
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".lock");
    history.with_file_name(name)
}

/// Claims the run whose history is `history` (its folder must exist).
pub fn claim(history: &Path) -> std::io::Result<Claim> {
    let path = lock_file(history);
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    held.retain(|(_, lock)| lock.strong_count() > 0);
    if let Some(lock) = held
        .iter()
        .find(|(p, _)| *p == path)
        .and_then(|(_, lock)| lock.upgrade())
    {
        return Ok(Claim::Writer(lock));
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            // Bounded: a process id is a few bytes, whatever else the file holds.
            let _ = (&mut file).take(32).read_to_string(&mut text);
            return Ok(Claim::Held {
                pid: text.trim().parse().ok(),
            });
        }
        Err(TryLockError::Error(e)) => return Err(e),
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    let lock = Arc::new(RunLock(file));
    held.push((path, Arc::downgrade(&lock)));
    Ok(Claim::Writer(lock))
}

/// Whether some process still holds the run's lock (a follower asks, to notice its
/// writer gone). Locking a fresh handle and letting go at once disturbs nobody.
pub fn held_elsewhere(history: &Path) -> bool {
    let Ok(file) = File::open(lock_file(history)) else {
        return false;
    };
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_writer_per_run_shared_within_a_process() {
        let dir = tempfile::tempdir().unwrap();
        let history = dir.path().join("history.sqlite");
        let Claim::Writer(first) = claim(&history).unwrap() else {
            panic!("the first claim writes");
        };
        let Claim::Writer(second) = claim(&history).unwrap() else {
            panic!("the same process shares its lock");
        };
        assert!(Arc::ptr_eq(&first, &second));
        let written = std::fs::read_to_string(lock_file(&history)).unwrap();
        assert_eq!(written, std::process::id().to_string());
        // Another open file description (as another process would have) is refused.
        let other = File::open(lock_file(&history)).unwrap();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        assert!(held_elsewhere(&history));
        drop((first, second));
        assert!(!held_elsewhere(&history), "released with the last holder");
        assert!(other.try_lock().is_ok());
    }
}
