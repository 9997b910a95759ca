//! Which files in a run's directory are checkpoints, and what they look like on disk:
//! what the monitor, a store's mirror and a sweep's discovery all go by (a leaf: it
//! depends on nothing of camwatch's).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// camwatch's own folder inside a run (the history, a store run's downloads, published
/// results), never scanned for checkpoints — unless the history lives elsewhere
/// ([`crate::monitor::place`]).
pub const HISTORY_DIR: &str = ".camwatch";
pub const HISTORY_FILE: &str = "history.sqlite";

/// Extensions of the weight files camwatch reads, longest first (`.pth.tar` before
/// `.tar`-less `.pth`); optimiser and trainer state such as `.pdopt` and `.pdstates`
/// are left alone. The epoch rules strip the same list.
pub const EXTENSIONS: [&str; 7] = [
    ".safetensors",
    ".pdparams",
    ".pth.tar",
    ".ckpt",
    ".pth",
    ".bin",
    ".pt",
];

/// `name` without its checkpoint extension (any case), if it has one.
pub fn strip_extension(name: &str) -> Option<&str> {
    EXTENSIONS.iter().find_map(|ext| {
        let cut = name.len().checked_sub(ext.len())?;
        (name.is_char_boundary(cut) && name[cut..].eq_ignore_ascii_case(ext)).then(|| &name[..cut])
    })
}

/// Whether `path` names a weight file worth reading. Temporary files that a trainer
/// renames into place when complete (timm's `tmp.pth.tar`, editors' and rsync's dot
/// files) are not: the final name follows.
pub fn is_checkpoint_name(path: &Path) -> bool {
    // Names need not be UTF-8: only the ASCII start and extension matter.
    let Some(name) = path.file_name() else {
        return false;
    };
    let name = name.to_string_lossy();
    let lower = name.to_ascii_lowercase();
    !lower.starts_with('.') && !lower.starts_with("tmp") && strip_extension(&name).is_some()
}

/// What a file looks like from outside: when it changes, it is being written again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
}

impl Fingerprint {
    pub fn of(path: &Path) -> Option<Fingerprint> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() {
            return None;
        }
        Some(Fingerprint {
            size: meta.len(),
            mtime_ns: meta.modified().ok().map_or(0, nanos_since_epoch),
        })
    }
}

pub fn nanos_since_epoch(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos().min(i64::MAX as u128) as i64,
        Err(e) => -(e.duration().as_nanos().min(i64::MAX as u128) as i64),
    }
}

/// Every checkpoint under `dir`, subfolders included (older PaddleClas writes
/// `<epoch>/ppcls.pdparams`), except inside `skip` (camwatch's own history) and hidden
/// folders. Unreadable folders are passed over: the next scan tries again.
pub fn scan(dir: &Path, skip: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if kind.is_dir() {
                if !hidden && path != skip {
                    stack.push(path);
                }
            } else if is_checkpoint_name(&path) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_names() {
        for name in [
            "epoch_3.pdparams",
            "3/ppcls.pdparams",
            "last.pth.tar",
            "checkpoint-7.pth.tar",
            "epoch=2-step=40.ckpt",
            "model.safetensors",
            "net_e4.PTH",
        ] {
            assert!(is_checkpoint_name(Path::new(name)), "{name}");
        }
        for name in [
            "epoch_3.pdopt",
            "epoch_3.pdstates",
            "tmp.pth.tar",
            ".epoch_3.pdparams.swp",
            ".epoch_3.pdparams",
            "notes.txt",
            "labels.csv",
        ] {
            assert!(!is_checkpoint_name(Path::new(name)), "{name}");
        }
    }

    #[test]
    fn scans_subfolders_but_not_the_history() {
        let dir = std::env::temp_dir().join(format!("camwatch-scan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for file in [
            "epoch_1.pdparams",
            "2/ppcls.pdparams",
            ".camwatch/x.pdparams",
            "history/y.pth",
            "epoch_1.pdopt",
        ] {
            let path = dir.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"x").unwrap();
        }
        let found = scan(&dir, &dir.join("history"));
        assert_eq!(
            found,
            vec![dir.join("2/ppcls.pdparams"), dir.join("epoch_1.pdparams")]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
