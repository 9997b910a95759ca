//! The one worker: takes checkpoints from the queue (newest first), turns each into maps
//! for the sample set (only what the history does not hold yet), records them, and
//! reports; when no checkpoint waits, it measures their trust figures. The history is
//! its own: nothing else writes to it.
//!
//! - `mod.rs`: the loop, the history and the reports;
//! - [`compute`]: a checkpoint loaded and its missing maps computed;
//! - [`measure`]: the trust figures, a batch at a time, giving way to new checkpoints;
//! - [`gpu`]: the GPU running out of memory (retries with backoff, or the CPU);
//! - [`publish`]: results published beside the run, written and read.

mod compute;
mod gpu;
mod measure;
mod publish;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use super::history::{CheckpointRow, History, HistoryError, Setting, Status, StoredSample};
use super::queue::Queue;
use super::scan::Fingerprint;
use super::timeline::{self, Entry};
use super::{CheckpointReport, MonitorEvent, ScanMessage, Source};
use crate::cam::engine::Cancel;
use crate::cam::metrics::MetricSettings;
use crate::cam::{Method, SampleSet};
use crate::checkpoint::{self, CheckpointError, Format, Weights};
use crate::device::{self, MemoryUse, SelectedDevice};
use crate::loader::LoadedModel;
use crate::render::CamSettings;

pub use compute::Architecture;
pub use gpu::GpuMemory;
pub use publish::{Publishing, delivered_job};

/// A checkpoint file the scanner found complete (or gave up on), at the content it read.
#[derive(Debug)]
pub struct Job {
    pub path: PathBuf,
    pub fingerprint: Fingerprint,
    pub content: Content,
    pub epoch: Option<u64>,
    /// Why the file cannot be used, when the scanner already knows.
    pub failure: Option<String>,
}

/// How far a job's content is known when it is queued.
#[derive(Debug)]
pub enum Content {
    /// By its hash (a content recorded before, a failure, a job queued again): read again
    /// from the file only when needed, and checked against the hash.
    Hashed(String),
    /// Read, hashed and parsed by the scanner while the worker was busy with another.
    Prepared(Box<Prepared>),
    /// Found whole by the scanner: the worker reads, hashes and parses it.
    Unread,
    /// Results another camwatch published for it, found by the mirror: recorded as they
    /// are, the checkpoint never downloaded.
    Published(Box<crate::results::Delivered>),
}

/// A checkpoint's bytes made ready for the network.
pub struct Prepared {
    pub hash: String,
    pub parsed: Parsed,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parsed = self
            .parsed
            .as_ref()
            .map(|(format, weights)| format!("{format} with {} tensors", weights.tensors.len()));
        f.debug_struct("Prepared")
            .field("hash", &self.hash)
            .field("parsed", &parsed)
            .finish()
    }
}

impl Prepared {
    /// Reads the file at `path` and prepares it, if it still holds what the scanner found
    /// whole (`fingerprint`: its size and mtime unchanged after the read); `None` when it
    /// changed or can no longer be read.
    pub fn read(path: &Path, fingerprint: Fingerprint) -> Option<Prepared> {
        let prepared = checkpoint::with_file(path, |data| Prepared::of(path, data)).ok()?;
        (Fingerprint::of(path) == Some(fingerprint)).then_some(prepared)
    }

    /// Hashes `data` on a thread of its own while parsing it on this one, where camwatch
    /// may use more than one core (`--threads`): the hash (the content's identity in the
    /// history) does not delay the network.
    pub fn of(path: &Path, data: &[u8]) -> Prepared {
        let parse = || match crate::isolate::isolated(|| checkpoint::parse(data)) {
            Ok(Ok(parsed)) => Ok(parsed),
            Ok(Err(e)) => Err(CheckpointError::new(path, e).to_string()),
            Err(panic) => Err(format!("{}: {panic}", path.display())),
        };
        if crate::device::thread_limit() < 2 {
            return Prepared {
                hash: content_hash(data),
                parsed: parse(),
            };
        }
        std::thread::scope(|scope| {
            let hash = scope.spawn(|| content_hash(data));
            let parsed = parse();
            Prepared {
                hash: hash.join().expect("hashing does not panic"),
                parsed,
            }
        })
    }
}

pub struct Worker {
    pub history: History,
    pub samples: SampleSet,
    /// Per sample, the key its results are stored under.
    pub sample_keys: Vec<String>,
    pub settings: CamSettings,
    pub setting: Setting,
    pub device: SelectedDevice,
    pub queue: Arc<Queue<Job>>,
    pub events: Sender<MonitorEvent>,
    pub scanner: Sender<ScanMessage>,
    /// Set when the monitor stops: the loop ends, and a computation under way stops
    /// at its next forward pass (the settings' request carries the same token).
    pub cancel: Cancel,
    /// The trust figures to compute once a checkpoint's maps are recorded.
    pub metrics: MetricSettings,
    /// Checkpoints whose maps are recorded but whose trust figures are not (all) yet:
    /// measured when no checkpoint waits for its maps, the newest first.
    pub pending: Vec<Pending>,
    /// The untrained network of the sanity check and its maps, for the architecture (as
    /// JSON) it was built for.
    pub random: Option<(String, crate::cam::trust::Untrained)>,
    /// The network of the checkpoint whose maps were computed last (by content hash),
    /// kept for its trust figures, which come next unless a newer checkpoint does: they
    /// start at once instead of after loading it again.
    pub warm: Option<(String, LoadedModel)>,
    /// The run's network: that of the first checkpoint recorded with maps. A checkpoint
    /// of another (a folder where the model changed mid-way) is reported, and its maps
    /// are not mixed into the run's.
    pub architecture: Option<Architecture>,
    /// Images per forward pass when measuring trust figures: as many as take about
    /// `measure::GIVE_WAY_WITHIN` (from the last maps' forward pass), so that a new checkpoint
    /// waits no longer than that for its maps. The settings' batch until then.
    pub measure_batch: usize,
    pub gpu: GpuMemory,
    /// Whether memory is handed back after each checkpoint (`--gpu-memory`).
    pub memory: MemoryUse,
    /// What the user said of the network (`--arch`).
    pub hints: crate::model::Hints,
    /// Results published beside the run, read and (`--publish`) written.
    pub publishing: Option<Publishing>,
}

/// A checkpoint waiting for its trust figures.
#[derive(Clone, Debug)]
pub struct Pending {
    pub path: PathBuf,
    pub hash: String,
    pub fingerprint: Fingerprint,
    pub epoch: Option<u64>,
}

/// What a job's checkpoint needs: per sample (by index), the methods not yet stored.
type Missing = Vec<(usize, Vec<Method>)>;

/// A checkpoint's format and tensors, or the one-line error naming its file.
type Parsed = Result<(Format, Weights), String>;

impl Worker {
    pub fn run(mut self) {
        if let Err(e) = self.replay() {
            self.warn(e.to_string());
        }
        while !self.cancel.is_cancelled() {
            self.requeue_due();
            self.recheck_awaited();
            // Maps first: trust figures only when no checkpoint is waiting.
            let wait = if self.pending.is_empty() {
                Duration::from_millis(250)
            } else {
                Duration::ZERO
            };
            let job = self.queue.pop(wait);
            if job.is_some() && !self.queue.is_empty() {
                let _ = self.scanner.send(ScanMessage::PrepareNext);
            }
            let Some(job) = job else {
                if let Some(next) = self.next_pending() {
                    match crate::isolate::isolated(|| self.measure(next)) {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => self.warn(e.to_string()),
                        Err(panic) => self.warn(panic),
                    }
                    self.done_with_memory();
                }
                continue;
            };
            match crate::isolate::isolated(|| self.handle(job)) {
                Ok(Ok(())) => {}
                // The history could not be written (disk full, database locked for
                // long): say so and go on; the file is looked at again when it changes.
                Ok(Err(e)) => self.warn(e.to_string()),
                Err(panic) => self.warn(panic),
            }
            self.done_with_memory();
        }
    }

    /// After a checkpoint's maps or a batch of trust figures: the memory they used is
    /// handed back to the training job, unless `--gpu-memory keep`.
    fn done_with_memory(&self) {
        if self.memory == MemoryUse::Release {
            device::release_cached_memory(&self.device);
        }
    }

    fn working(&self, path: &Path, done: usize, total: usize) {
        let _ = self.events.send(MonitorEvent::Working {
            path: path.to_path_buf(),
            queued: self.queue.len(),
            done,
            total,
        });
    }

    fn warn(&self, message: String) {
        let _ = self.events.send(MonitorEvent::Warning(message));
    }

    /// Reports the whole stored history at once, in training order, and queues what the
    /// current sample set and methods still need from files that are still there.
    fn replay(&mut self) -> Result<(), HistoryError> {
        self.list_shelf();
        let rows = self.history.checkpoints()?;
        self.architecture = rows
            .iter()
            .filter(|r| r.status == Status::Ok)
            .find_map(|r| r.arch.as_deref().and_then(Architecture::from_json));
        let entries = timeline::order(&rows);
        let mut walk = timeline::Walk::new(&self.samples.samples, &self.settings.request.methods);
        let mut reported = 0;
        for entry in &entries {
            let start = Instant::now();
            let stored = self.stored(&entry.hash)?;
            if entry.status == Status::Ok && !self.missing(&stored).is_empty() {
                // Computed again (only what is missing) if one of its files is unchanged.
                if let Some(row) = rows.iter().rev().find(|r| {
                    r.hash == entry.hash && Fingerprint::of(&r.path) == Some(r.fingerprint)
                }) {
                    self.queue.push(
                        row.path.clone(),
                        row.fingerprint.mtime_ns,
                        false,
                        Job {
                            path: row.path.clone(),
                            fingerprint: row.fingerprint,
                            content: Content::Hashed(row.hash.clone()),
                            epoch: row.epoch,
                            failure: None,
                        },
                    );
                    continue;
                }
            }
            if entry.status == Status::Ok
                && !self.computes_nothing()
                && !self.untrusted(&stored).is_empty()
                && let Some(row) = rows.iter().rev().find(|r| {
                    r.hash == entry.hash && Fingerprint::of(&r.path) == Some(r.fingerprint)
                })
            {
                self.pending.push(Pending {
                    path: row.path.clone(),
                    hash: row.hash.clone(),
                    fingerprint: row.fingerprint,
                    epoch: row.epoch,
                });
            }
            let report = walk.report(entry, stored);
            reported += 1;
            self.send(report, Source::History, start);
        }
        let _ = self.events.send(MonitorEvent::Replayed {
            checkpoints: reported,
        });
        // What was computed before `--publish`, or while the run could not be written:
        // under every name whose file still holds that content (a store run's identity
        // is its object's current ETag).
        if !self.publishes() {
            return Ok(());
        }
        for row in &rows {
            if Fingerprint::of(&row.path) == Some(row.fingerprint) {
                self.publish_results(row)?;
                self.publish_trust(&row.path, &row.hash)?;
            }
        }
        Ok(())
    }

    fn send(&self, report: CheckpointReport, source: Source, start: Instant) {
        let _ = self.events.send(MonitorEvent::Checkpoint {
            report: Box::new(report),
            source,
            ms: start.elapsed().as_secs_f64() * 1e3,
        });
    }

    fn stored(&self, hash: &str) -> Result<Vec<StoredSample>, HistoryError> {
        self.history.results(hash, &self.setting, &self.sample_keys)
    }

    fn missing(&self, stored: &[StoredSample]) -> Missing {
        stored
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let methods: Vec<Method> = self
                    .settings
                    .request
                    .methods
                    .iter()
                    .copied()
                    .filter(|m| s.prediction.is_none() || !s.maps.iter().any(|x| x.method == *m))
                    .collect();
                (!methods.is_empty()).then_some((i, methods))
            })
            .collect()
    }

    fn handle(&mut self, mut job: Job) -> Result<(), HistoryError> {
        let start = Instant::now();
        // Another checkpoint's turn: its network is not kept beside this one's.
        self.warm = None;
        let (hash, mut parsed) = match std::mem::replace(&mut job.content, Content::Unread) {
            Content::Published(delivered) => {
                return self.import(&job.path, job.fingerprint, *delivered, start);
            }
            Content::Hashed(hash) => (hash, None),
            Content::Prepared(prepared) => (prepared.hash, Some(prepared.parsed)),
            Content::Unread => match Prepared::read(&job.path, job.fingerprint) {
                Some(prepared) => (prepared.hash, Some(prepared.parsed)),
                None => {
                    // Changed or gone since the scanner found it whole: it looks again.
                    let _ = self.scanner.send(ScanMessage::Recheck(job.path));
                    return Ok(());
                }
            },
        };
        // Known by its hash from now on (a job queued again is read again).
        job.content = Content::Hashed(hash.clone());
        let mut row = CheckpointRow {
            path: job.path.clone(),
            hash,
            fingerprint: job.fingerprint,
            epoch: job.epoch,
            status: Status::Ok,
            error: None,
            format: None,
            arch: None,
            origin: None,
        };
        if let Some(failure) = job.failure {
            row.status = Status::Error;
            row.error = Some(failure);
            // Not published: what the scanner saw (a file cut short, unreadable) may
            // be this machine's alone.
            return self.finish(row, &[], Source::Computed, start);
        }
        let rows = self.history.checkpoints()?;
        let known_here = rows
            .iter()
            .any(|r| r.path == row.path && r.hash == row.hash);
        let same_content = rows.iter().rev().find(|r| r.hash == row.hash);
        if let Some(seen) = same_content.filter(|r| r.status == Status::Error) {
            // The same bytes failed before (under this or another name): same error.
            row.status = Status::Error;
            row.error = seen
                .error
                .as_ref()
                .map(|e| rename_in(e, &seen.path, &row.path));
            let source = Source::History;
            return self.finish_quietly_if(known_here, row, source, start);
        }
        let stored = self.stored(&row.hash)?;
        let mut missing = self.missing(&stored);
        if missing.is_empty() {
            if let Some(seen) = same_content {
                row.format.clone_from(&seen.format);
                row.arch.clone_from(&seen.arch);
            }
            self.finish_quietly_if(known_here, row.clone(), Source::History, start)?;
            // Readers look results up by name: the same weights under this name too
            // (`best.pth` a copy of an epoch).
            self.publish_results(&row)?;
            return self.publish_trust(&row.path, &row.hash);
        }
        // Published beside the run: taken rather than computed, as far as it goes.
        if let Some(delivered) = self.fetch_published(&row.path, &row.hash) {
            self.import(&row.path, row.fingerprint, delivered, start)?;
            missing = self.missing(&self.stored(&row.hash)?);
            if missing.is_empty() {
                return Ok(());
            }
        }
        if self.computes_nothing() {
            self.await_publication(job);
            return Ok(());
        }
        self.working(&row.path, 0, missing.len());
        let mut computed =
            self.compute_isolated(&job.path, &row.hash, parsed.take(), &missing, false);
        // (A CPU fallback's network is not on the worker's device, nor is its speed.)
        let on_device = computed.is_ok();
        if matches!(computed, Err(Failure::GpuMemory(_))) {
            match self.out_of_gpu_memory(job, &row.hash, &missing) {
                // Tried again later: nothing more now.
                Err(()) => return Ok(()),
                Ok((again, back)) => (computed, job) = (again, back),
            }
        }
        self.gpu.attempts.remove(&row.hash);
        match computed {
            // Stopping: nothing recorded, the file is computed at the next start.
            Err(Failure::Cancelled) => Ok(()),
            Ok(Computed::Changed) => {
                // Rewritten since the scanner read it: the scanner looks again.
                let _ = self.scanner.send(ScanMessage::Recheck(job.path));
                Ok(())
            }
            Ok(Computed::Done {
                format,
                arch,
                results,
                loaded,
                forward_per_image,
            }) => {
                row.format = Some(format);
                if self.architecture.is_none() {
                    self.architecture = Architecture::from_json(&arch);
                }
                row.arch = Some(arch);
                if !self.metrics.is_off() {
                    if on_device {
                        self.warm = Some((row.hash.clone(), *loaded));
                        self.measure_batch =
                            measure::measure_batch(forward_per_image, self.settings.request.batch);
                    }
                    self.pending.push(Pending {
                        path: row.path.clone(),
                        hash: row.hash.clone(),
                        fingerprint: row.fingerprint,
                        epoch: row.epoch,
                    });
                }
                self.finish(row.clone(), &results, Source::Computed, start)?;
                self.publish_results(&row)
            }
            Err(Failure::Content(message)) => {
                row.status = Status::Error;
                row.error = Some(message);
                self.finish(row.clone(), &[], Source::Computed, start)?;
                // The same bytes fail anywhere: nobody else need find out again.
                self.publish_results(&row)
            }
            Err(Failure::GpuMemory(message)) => {
                row.status = Status::Error;
                row.error = Some(message);
                self.finish(row, &[], Source::Computed, start)
            }
            Err(Failure::Setting(message)) => {
                // Not the file's fault (a class index out of range, say): reported but
                // not recorded, so that other settings compute it.
                let entry = Entry {
                    hash: row.hash,
                    path: row.path.clone(),
                    paths: vec![row.path],
                    epoch: row.epoch,
                    mtime_ns: row.fingerprint.mtime_ns,
                    status: Status::Error,
                    error: Some(message),
                    format: None,
                    arch: None,
                    origin: None,
                };
                self.send(
                    CheckpointReport::new(&entry, Vec::new()),
                    Source::Computed,
                    start,
                );
                Ok(())
            }
        }
    }

    /// Records a file whose content is already in the history; reported unless the
    /// same file at the same content was recorded before (a touched or re-read file).
    fn finish_quietly_if(
        &mut self,
        known_here: bool,
        row: CheckpointRow,
        source: Source,
        start: Instant,
    ) -> Result<(), HistoryError> {
        if known_here {
            return self.history.record(&row, &self.setting, &[]);
        }
        self.finish(row, &[], source, start)
    }

    fn finish(
        &mut self,
        row: CheckpointRow,
        results: &[(String, StoredSample)],
        source: Source,
        start: Instant,
    ) -> Result<(), HistoryError> {
        self.history.record(&row, &self.setting, results)?;
        self.report(&row, source, start)
    }

    /// Reports `row`'s content as the history now holds it, and the next checkpoint's
    /// figures when they changed with it.
    fn report(
        &self,
        row: &CheckpointRow,
        source: Source,
        start: Instant,
    ) -> Result<(), HistoryError> {
        let rows = self.history.checkpoints()?;
        let entries = timeline::order(&rows);
        let Some(at) = entries.iter().position(|e| e.hash == row.hash) else {
            return Ok(());
        };
        // Reported under the name just seen, with the epoch of the content.
        let mut entry = entries[at].clone();
        entry.path = row.path.clone();
        entry.status = row.status;
        entry.error = row.error.clone();
        let previous = match entries[..at].iter().rev().find(|e| e.status == Status::Ok) {
            Some(p) => Some(self.stored(&p.hash)?),
            None => None,
        };
        let methods = &self.settings.request.methods;
        let mut walk = timeline::Walk::new(&self.samples.samples, methods).after(previous);
        let report = walk.report(&entry, self.stored(&row.hash)?);
        match source {
            Source::Measured => {
                let _ = self.events.send(MonitorEvent::Measured(Box::new(report)));
                return Ok(());
            }
            _ => self.send(report, source, start),
        }
        // Computed after a later checkpoint (newest first): that one's drift was
        // measured against an older neighbour, or none. Tell the UI its new figures.
        if row.status == Status::Ok
            && let Some(next) = entries[at + 1..].iter().find(|e| e.status == Status::Ok)
        {
            let report = walk.report(next, self.stored(&next.hash)?);
            let _ = self.events.send(MonitorEvent::Revised(Box::new(report)));
        }
        Ok(())
    }
}

/// Why a checkpoint gave no maps.
enum Failure {
    /// The file: unreadable, foreign, mismatched. Recorded: the same bytes fail again.
    Content(String),
    /// The settings (a layer or class the network does not have).
    Setting(String),
    /// The monitor is stopping.
    Cancelled,
    /// The GPU ran out of memory: not the file's fault.
    GpuMemory(String),
}

enum Computed {
    Done {
        format: String,
        arch: String,
        results: Vec<(String, StoredSample)>,
        loaded: Box<LoadedModel>,
        forward_per_image: Duration,
    },
    /// The file no longer holds the content that was queued.
    Changed,
}

/// The BLAKE3 hash of a file's bytes, in hex: the identity of a checkpoint's content.
pub fn content_hash(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

/// An error recorded for one name, told for another name of the same bytes.
fn rename_in(error: &str, from: &Path, to: &Path) -> String {
    error.replace(&from.display().to_string(), &to.display().to_string())
}
