//! Results published beside the run ([`crate::results`]): the worker publishes what it
//! computed and measured (`--publish`), and takes what another camwatch published
//! instead of computing it (`--compute auto`), or waits for it (`--compute never`).
//! A store run's published results mostly arrive from the mirror, which sees them in
//! its listing without downloading the checkpoint ([`Content::Published`]); a folder
//! run's are looked up here, by the content hash the scanner read.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Content, Job, Worker};
use crate::monitor::Source;
use crate::monitor::history::{CheckpointRow, HistoryError, Status};
use crate::monitor::scan::Fingerprint;
use crate::results::{
    Compute, Delivered, Expected, Identity, Published, PublishedSetting, PublishedTrust, Put, Shelf,
};
use crate::store::mirror::Objects;

/// How long a checkpoint without published results waits before it is looked up again
/// (`--compute never`), at first and at most.
const AWAIT_FIRST: Duration = Duration::from_secs(2);
const AWAIT_MOST: Duration = Duration::from_secs(30);

/// The worker's side of publishing.
pub struct Publishing {
    pub shelf: Shelf,
    /// Whether this camwatch publishes (`--publish`, and the run may be written).
    pub publish: bool,
    pub compute: Compute,
    pub setting: PublishedSetting,
    /// The run's folder (a store run's mirror): keys are paths under it.
    root: PathBuf,
    /// A store run's ETags (its objects' identity), from the mirror.
    pub objects: Option<Arc<Objects>>,
    /// Objects found unusable, said once.
    rejected: HashSet<String>,
    /// Checkpoints waiting for their results to be published (`--compute never`), with
    /// when to look again; and how long each waited last.
    awaiting: Vec<(Instant, Job)>,
    waits: std::collections::HashMap<PathBuf, Duration>,
    /// What is on the shelf, listed once at start (nothing published twice).
    listed: Option<HashSet<String>>,
}

impl Publishing {
    /// Publishing for the run in `root` (a store run's ETags are given once its mirror
    /// runs: [`Publishing::objects`]).
    pub fn new(
        shelf: Shelf,
        publish: bool,
        compute: Compute,
        setting: PublishedSetting,
        root: PathBuf,
    ) -> Publishing {
        Publishing {
            shelf,
            publish,
            compute,
            setting,
            root,
            objects: None,
            rejected: HashSet::new(),
            awaiting: Vec::new(),
            waits: Default::default(),
            listed: None,
        }
    }

    /// The checkpoint at `path`'s key under the run and its identity, when known.
    fn names(&self, path: &Path, hash: &str) -> Option<(String, String)> {
        let key = path.strip_prefix(&self.root).ok()?.to_str()?.to_string();
        let identity = match &self.objects {
            Some(objects) => Identity::ETag(&objects.etag(&key)?).name(),
            None => Identity::Hash(hash).name(),
        };
        Some((key, identity))
    }
}

impl Worker {
    /// Publishes `row`'s results as the history holds them, once they are whole (every
    /// sample and method), or its error.
    pub(super) fn publish_results(&mut self, row: &CheckpointRow) -> Result<(), HistoryError> {
        let Some(p) = self.publishing.as_ref().filter(|p| p.publish) else {
            return Ok(());
        };
        let Some((key, identity)) = p.names(&row.path, &row.hash) else {
            return Ok(());
        };
        let name = crate::results::results_name(&key, &identity);
        if p.listed.as_ref().is_some_and(|l| l.contains(&name)) {
            return Ok(());
        }
        let stored = self.stored(&row.hash)?;
        if row.status == Status::Ok && !self.missing(&stored).is_empty() {
            return Ok(());
        }
        let keyed: Vec<_> = self.sample_keys.iter().cloned().zip(stored).collect();
        let keyed = if row.status == Status::Ok {
            keyed
        } else {
            Vec::new()
        };
        let published = Published::new(row, &key, &identity, p.setting.clone(), &keyed);
        self.put(name, published.to_bytes());
        Ok(())
    }

    /// Publishes the trust figures of the checkpoint `hash` at `path`, once every one
    /// asked for is measured.
    pub(super) fn publish_trust(&mut self, path: &Path, hash: &str) -> Result<(), HistoryError> {
        let Some(p) = self.publishing.as_ref().filter(|p| p.publish) else {
            return Ok(());
        };
        if self.metrics.is_off() {
            return Ok(());
        }
        let Some((key, identity)) = p.names(path, hash) else {
            return Ok(());
        };
        let name = crate::results::trust_name(&key, &identity);
        if p.listed.as_ref().is_some_and(|l| l.contains(&name)) {
            return Ok(());
        }
        let stored = self.stored(hash)?;
        if stored.iter().all(|s| s.prediction.is_none()) || !self.untrusted(&stored).is_empty() {
            return Ok(());
        }
        let keyed: Vec<_> = self
            .sample_keys
            .iter()
            .cloned()
            .zip(stored.into_iter().map(|s| s.trust))
            .collect();
        let trust = PublishedTrust::new(p.setting.clone(), &key, &identity, hash, &keyed);
        self.put(name, trust.to_bytes());
        Ok(())
    }

    fn put(&mut self, name: String, bytes: Vec<u8>) {
        let Some(p) = self.publishing.as_mut() else {
            return;
        };
        match p.shelf.put_new(&name, bytes) {
            Put::Created | Put::Exists => {
                if let Some(listed) = p.listed.as_mut() {
                    listed.insert(name);
                }
            }
            Put::Refused(message) => {
                // Said once: the results stay in this camwatch's history.
                p.publish = false;
                self.warn(format!("{message}: results are kept here only"));
            }
            Put::Failed(message) => self.warn(format!("{message}: not published")),
        }
    }

    /// What is on the shelf now, so that a restart publishes only what is missing.
    pub(super) fn list_shelf(&mut self) {
        let Some(p) = self.publishing.as_mut().filter(|p| p.publish) else {
            return;
        };
        let listed = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|runtime| runtime.block_on(p.shelf.list_async()));
        p.listed = match listed {
            Ok(objects) => Some(
                objects
                    .iter()
                    .filter_map(|o| p.shelf.name_of(&o.location))
                    .collect(),
            ),
            Err(_) => None,
        };
    }

    /// The results (and trust figures) published for the checkpoint `hash` at `path`,
    /// checked; an unusable object is said once and not used.
    pub(super) fn fetch_published(&mut self, path: &Path, hash: &str) -> Option<Delivered> {
        let p = self.publishing.as_ref()?;
        if p.compute == Compute::Always {
            return None;
        }
        let (key, identity) = p.names(path, hash)?;
        let expected = Expected {
            key: &key,
            identity: &identity,
            setting: &p.setting,
        };
        let name = crate::results::results_name(&key, &identity);
        let origin = p.shelf.describe(&name);
        let results = p.shelf.read(&name, |bytes| {
            Published::decode(bytes, &expected).and_then(|r| match r.checkpoint.hash == hash {
                true => Ok(r),
                false => Err("holds results for other weights of that name".into()),
            })
        });
        let results = match results {
            Ok(Some(results)) => results,
            Ok(None) => return None,
            Err(e) => {
                self.reject(e);
                return None;
            }
        };
        // Trust figures are published after the results: looked for only beside them.
        let trust_name = crate::results::trust_name(&key, &identity);
        let trust = p.shelf.read(&trust_name, |bytes| {
            PublishedTrust::decode(bytes, &expected)
        });
        let trust = trust.unwrap_or_else(|e| {
            self.reject(e);
            None
        });
        Some(Delivered {
            results: Some(results),
            trust,
            origin,
        })
    }

    /// Says once that a published object is not used, and why.
    fn reject(&mut self, message: String) {
        let Some(p) = self.publishing.as_mut() else {
            return;
        };
        if p.rejected.insert(message.clone()) {
            self.warn(format!("{message}: ignored"));
        }
    }

    /// Records what was published for the checkpoint at `path` and reports it: new
    /// results as a checkpoint, trust figures alone as measured ones.
    pub(super) fn import(
        &mut self,
        path: &Path,
        fingerprint: Fingerprint,
        delivered: Delivered,
        start: Instant,
    ) -> Result<(), HistoryError> {
        let rows = self.history.checkpoints()?;
        let trust_for = |hash: &str| delivered.trust.as_ref().filter(|t| t.hash == hash);
        match &delivered.results {
            Some(results) => {
                let mut row = results.row(path.to_path_buf(), delivered.origin.clone());
                row.fingerprint = fingerprint;
                let known_here = rows
                    .iter()
                    .any(|r| r.path == row.path && r.hash == row.hash);
                let had = self.missing(&self.stored(&row.hash)?).is_empty();
                self.history
                    .record(&row, &self.setting, &results.stored())?;
                if let Some(trust) = trust_for(&row.hash) {
                    self.history
                        .record_trust(&row.hash, &self.setting, &trust.figures())?;
                }
                if known_here && had {
                    return Ok(());
                }
                self.report(&row, Source::Published, start)
            }
            None => {
                let Some(trust) = &delivered.trust else {
                    return Ok(());
                };
                let Some(row) = rows.iter().rev().find(|r| r.hash == trust.hash).cloned() else {
                    return Ok(());
                };
                self.history
                    .record_trust(&trust.hash, &self.setting, &trust.figures())?;
                self.report(&row, Source::Measured, start)
            }
        }
    }

    /// A checkpoint whose results are not published yet, under `--compute never`: it is
    /// looked up again later, less and less often.
    pub(super) fn await_publication(&mut self, job: Job) {
        let Some(p) = self.publishing.as_mut() else {
            return;
        };
        let waited = p.waits.get(&job.path).copied().unwrap_or_default();
        let wait = (waited * 2).clamp(AWAIT_FIRST, AWAIT_MOST);
        p.waits.insert(job.path.clone(), wait);
        p.awaiting.push((Instant::now() + wait, job));
    }

    /// Queues again the awaited checkpoints whose time has come (and whose file is
    /// unchanged).
    pub(super) fn recheck_awaited(&mut self) {
        let Some(p) = self.publishing.as_mut() else {
            return;
        };
        let now = Instant::now();
        let (due, later) = std::mem::take(&mut p.awaiting)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        p.awaiting = later;
        for (_, job) in due {
            if Fingerprint::of(&job.path) == Some(job.fingerprint) {
                let (path, mtime) = (job.path.clone(), job.fingerprint.mtime_ns);
                self.queue.push(path, mtime, false, job);
            }
        }
    }

    /// Whether this worker publishes (`--publish`, and the run may be written).
    pub(super) fn publishes(&self) -> bool {
        self.publishing.as_ref().is_some_and(|p| p.publish)
    }

    /// Whether this worker computes nothing (`--compute never`).
    pub(super) fn computes_nothing(&self) -> bool {
        self.publishing
            .as_ref()
            .is_some_and(|p| p.compute == Compute::Never)
    }
}

/// A job for results the mirror found published.
pub fn delivered_job(path: PathBuf, fingerprint: Fingerprint, delivered: Delivered) -> Job {
    Job {
        epoch: crate::monitor::epoch::epoch_of(&path),
        path,
        fingerprint,
        content: Content::Published(Box::new(delivered)),
        failure: None,
    }
}
