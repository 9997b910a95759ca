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
    /// Another process does.
    Held(Holder),
}

/// The camwatch that writes a run's history, as far as it can be known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holder {
    /// Its process id, from the lock file.
    pub pid: Option<u32>,
    /// Its user's name (of the process, else of the lock file).
    pub user: Option<String>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("camwatch")?;
        match (&self.pid, &self.user) {
            (Some(pid), Some(user)) => write!(f, " {pid} of {user}"),
            (Some(pid), None) => write!(f, " {pid}"),
            (None, Some(user)) => write!(f, " of {user}"),
            (None, None) => Ok(()),
        }
    }
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
    // Asked first through a descriptor anyone who may read the run can open: a
    // teammate's camwatch finds the writer without the right to write the lock.
    if let Some(holder) = holder(history) {
        return Ok(Claim::Held(holder));
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(Claim::Held(describe(&mut file))),
        Err(TryLockError::Error(e)) => return Err(e),
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    let lock = Arc::new(RunLock(file));
    held.push((path, Arc::downgrade(&lock)));
    Ok(Claim::Writer(lock))
}

/// The camwatch that holds the run's lock, if another process does (a follower asks,
/// to notice its writer gone). The lock file is opened for reading only, and locking a
/// fresh handle and letting go at once disturbs nobody.
pub fn holder(history: &Path) -> Option<Holder> {
    let mut file = File::open(lock_file(history)).ok()?;
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            None
        }
        Err(TryLockError::WouldBlock) => Some(describe(&mut file)),
        // A file system without locks: nobody can be seen holding it.
        Err(TryLockError::Error(_)) => None,
    }
}

/// Whether claiming failed because this user may not write where the history is (a
/// teammate's run, a read-only mount).
pub fn is_not_ours(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
    )
}

/// Whether another process holds the run's lock.
pub fn held_elsewhere(history: &Path) -> bool {
    holder(history).is_some()
}

/// Who holds the lock whose file is `file`: the process id written in it, and the user
/// running that process (else the file's owner).
fn describe(file: &mut File) -> Holder {
    let mut text = String::new();
    // Bounded: a process id is a few bytes, whatever else the file holds.
    let _ = file.rewind();
    let _ = file.take(32).read_to_string(&mut text);
    let pid: Option<u32> = text.trim().parse().ok();
    let uid = pid
        .and_then(|pid| std::fs::metadata(format!("/proc/{pid}")).ok())
        .or_else(|| file.metadata().ok())
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    Holder {
        pid,
        user: uid.and_then(user_name),
    }
}

/// The login name of `uid`, from the password database.
fn user_name(uid: u32) -> Option<String> {
    let mut buffer = vec![0 as libc::c_char; 4096];
    // SAFETY: passwd is plain data (integers and pointers); all zeroes is a valid value,
    // which getpwuid_r overwrites.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer points into memory that outlives the call, and the buffer's
    // length is its own; `found` is either null or `&entry`.
    let status = unsafe {
        libc::getpwuid_r(
            uid,
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if status != 0 || found.is_null() || entry.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r filled `pw_name` with a NUL-terminated string inside `buffer`.
    let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
    Some(name.to_string_lossy().into_owned())
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
        let holder = holder(&history).unwrap();
        assert_eq!(holder.pid, Some(std::process::id()));
        assert!(
            holder.user.is_some(),
            "the user running this test has a name"
        );
        drop((first, second));
        assert!(!held_elsewhere(&history), "released with the last holder");
        assert!(other.try_lock().is_ok());
    }
}
