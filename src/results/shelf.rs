//! Where one setting's results are published: `RUN/.camwatch/results/<setting>/`, in the
//! run's object store or its folder. Both are reached through `object_store`, so that
//! create-if-absent is the store's own: `If-None-Match: *` in S3 and Azure, a hard link
//! from a staged file in a folder (atomic on NFS too).

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::store::OpenStore;

/// What came of publishing an object.
#[derive(Debug, PartialEq, Eq)]
pub enum Put {
    Created,
    /// Another camwatch published it first.
    Exists,
    /// This user may not write there (said once; local results go on).
    Refused(String),
    /// Anything else (the store unreachable): tried again with the next result.
    Failed(String),
}

/// One setting's results folder in a run.
#[derive(Clone, Debug)]
pub struct Shelf {
    store: Arc<dyn ObjectStore>,
    /// `<run prefix>/.camwatch/results/<setting>`.
    folder: StorePath,
    /// The folder as a user names it: a URL, or a path.
    place: String,
    /// The setting folder's name.
    setting: String,
    /// A run folder's own path: what is read there must be a regular file (a FIFO would
    /// block the read forever).
    local: Option<std::path::PathBuf>,
}

impl Shelf {
    /// The shelf of a run folder.
    pub fn folder(run: &std::path::Path, setting: &str) -> Result<Shelf, String> {
        let store = object_store::local::LocalFileSystem::new_with_prefix(run)
            .map_err(|e| format!("{}: {e}", run.display()))?;
        let place = run.join(super::RESULTS_DIR).join(setting);
        Ok(Shelf {
            store: Arc::new(store),
            folder: StorePath::from(format!("{}/{setting}", super::RESULTS_DIR)),
            place: place.display().to_string(),
            setting: setting.to_string(),
            local: Some(run.to_path_buf()),
        })
    }

    /// The shelf of a store run.
    pub fn store(open: &OpenStore, setting: &str) -> Shelf {
        let folder = format!("{}/{}/{setting}", open.prefix.as_ref(), super::RESULTS_DIR);
        Shelf {
            store: Arc::clone(&open.store),
            folder: StorePath::from(folder.trim_start_matches('/')),
            place: open.url.join(&format!("{}/{setting}", super::RESULTS_DIR)),
            setting: setting.to_string(),
            local: None,
        }
    }

    /// The folder as a user names it: a URL, or a path.
    pub fn place(&self) -> &str {
        &self.place
    }

    /// The setting folder's name ([`super::setting_folder`]).
    pub fn setting(&self) -> &str {
        &self.setting
    }

    /// `name`'s location in the store.
    pub fn location(&self, name: &str) -> StorePath {
        StorePath::from(format!("{}/{name}", self.folder.as_ref()))
    }

    /// `name` as the user finds it (a URL or a path), for messages.
    pub fn describe(&self, name: &str) -> String {
        format!("{}/{name}", self.place)
    }

    /// `location` (from a listing of the run) as a name in this shelf, when it is in it.
    pub fn name_of(&self, location: &StorePath) -> Option<String> {
        let parts: Vec<String> = location
            .prefix_match(&self.folder)?
            .map(|p| p.as_ref().to_string())
            .collect();
        (!parts.is_empty()).then(|| parts.join("/"))
    }

    /// Publishes `bytes` as `name` unless it exists.
    pub async fn put_new_async(&self, name: &str, bytes: Vec<u8>) -> Put {
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let put = self
            .store
            .put_opts(&self.location(name), PutPayload::from(bytes), options)
            .await;
        match put {
            Ok(_) => Put::Created,
            Err(object_store::Error::AlreadyExists { .. }) => Put::Exists,
            Err(e) if refused(&e) => Put::Refused(format!(
                "{}: may not be written ({})",
                self.place,
                first_line(&e)
            )),
            Err(e) => Put::Failed(format!("{}: {}", self.describe(name), first_line(&e))),
        }
    }

    /// [`Shelf::put_new_async`], from a thread without a runtime.
    pub fn put_new(&self, name: &str, bytes: Vec<u8>) -> Put {
        match runtime() {
            Ok(runtime) => runtime.block_on(self.put_new_async(name, bytes)),
            Err(e) => Put::Failed(format!("{}: {e}", self.place)),
        }
    }

    /// The object `name`: `None` when there is none; an error (one line, naming it) when
    /// it cannot be read or is larger than a result may be.
    pub async fn get_async(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        let location = self.location(name);
        let what = || self.describe(name);
        if let Some(run) = &self.local
            && let Ok(meta) = std::fs::symlink_metadata(run.join(location.as_ref()))
            && !meta.is_file()
        {
            return Err(format!("{}: not a regular file", what()));
        }
        let got = match self.store.get(&location).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(format!("{}: {}", what(), first_line(&e))),
        };
        if got.meta.size > super::MAX_OBJECT_BYTES {
            return Err(format!(
                "{}: {}, more than a result may be",
                what(),
                crate::untrusted::human_bytes(got.meta.size)
            ));
        }
        let bytes = got
            .bytes()
            .await
            .map_err(|e| format!("{}: {}", what(), first_line(&e)))?;
        Ok(Some(bytes.to_vec()))
    }

    /// The object `name` read and checked by `decode` (`Published::decode`,
    /// `PublishedTrust::decode`): `None` when there is none; an error naming it when it
    /// cannot be read or does not check.
    pub async fn read_async<T>(
        &self,
        name: &str,
        decode: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        match self.get_async(name).await? {
            Some(bytes) => decode(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: {e}", self.describe(name))),
            None => Ok(None),
        }
    }

    /// [`Shelf::read_async`], from a thread without a runtime.
    pub fn read<T>(
        &self,
        name: &str,
        decode: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        runtime()
            .map_err(|e| format!("{}: {e}", self.place))?
            .block_on(self.read_async(name, decode))
    }

    /// Every object on the shelf (for a run folder, whose listing is not the mirror's).
    pub async fn list_async(&self) -> Result<Vec<ObjectMeta>, String> {
        self.store
            .list(Some(&self.folder))
            .try_collect()
            .await
            .map_err(|e| format!("{}: {}", self.place, first_line(&e)))
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Whether the store said this user may not write there.
fn refused(error: &object_store::Error) -> bool {
    if matches!(
        error,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
    ) {
        return true;
    }
    let text = error.to_string();
    [
        "Permission denied",
        "Read-only file system",
        "403",
        "AccessDenied",
    ]
    .iter()
    .any(|s| text.contains(s))
}

fn first_line(error: &object_store::Error) -> String {
    error
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_shelf_creates_once() {
        let run = tempfile::tempdir().unwrap();
        let shelf = Shelf::folder(run.path(), "set-1").unwrap();
        assert_eq!(shelf.read("a.h1.json", |b| Ok(b.to_vec())).unwrap(), None);
        assert_eq!(shelf.put_new("a.h1.json", b"first".to_vec()), Put::Created);
        assert_eq!(shelf.put_new("a.h1.json", b"second".to_vec()), Put::Exists);
        let read = shelf.read("a.h1.json", |b| Ok(b.to_vec())).unwrap();
        assert_eq!(read.unwrap(), b"first");
        let file = run.path().join(".camwatch/results/set-1/a.h1.json");
        assert_eq!(std::fs::read(file).unwrap(), b"first");
        // Nothing staged is left behind.
        let names: Vec<_> = std::fs::read_dir(run.path().join(".camwatch/results/set-1"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");

        // A FIFO (or a link, a folder) in its place is refused at once, never opened.
        let fifo = run.path().join(".camwatch/results/set-1/b.h2.json");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()));
        let refused = shelf.read("b.h2.json", |b| Ok(b.to_vec())).unwrap_err();
        assert!(
            refused.ends_with("b.h2.json: not a regular file"),
            "{refused}"
        );
    }
}
