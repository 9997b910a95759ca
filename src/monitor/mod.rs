//! Following a training run: the scanner finds checkpoint files and waits until each is
//! complete, one worker turns them into maps (newest first) and records them in the
//! on-disk history, and everything that happens arrives as [`MonitorEvent`]s on one
//! channel, for the headless printer or the terminal UI.
//!
//! ```text
//! notify / rescans ─▶ Scanner (readiness) ─▶ Queue (newest first) ─▶ Worker ─▶ History
//!                                                                       └──▶ events
//! ```
//!
//! One camwatch writes a run's history ([`lock`]); another one started on the same run
//! follows the history read-only, with the same events.

pub mod epoch;
mod follower;
pub mod history;
pub mod lock;
pub mod maps;
pub mod place;
pub mod published;
pub mod queue;
pub mod readiness;
mod scanner;
pub mod timeline;
mod worker;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cam::engine::Cancel;
use crate::cam::metrics::MetricSettings;
use crate::cam::{SampleSet, Target};
use crate::device::SelectedDevice;
use crate::render::CamSettings;
use history::{History, HistoryError, Setting, Status};
use readiness::{Timing, Tracker};
use timeline::{Entry, SampleFigures};

pub use worker::content_hash;

pub use crate::scan;
pub use crate::scan::{HISTORY_DIR, HISTORY_FILE};

pub use place::history_file;

/// Everything the monitor needs, resolved by the caller.
#[derive(Clone)]
pub struct MonitorConfig {
    pub dir: PathBuf,
    pub history: PathBuf,
    pub samples: SampleSet,
    pub settings: CamSettings,
    pub device: SelectedDevice,
    /// Poll every so often instead of waiting for file-system events.
    pub poll: Option<Duration>,
    pub timing: Timing,
    /// The trust figures computed after each checkpoint's maps.
    pub metrics: MetricSettings,
    /// When the GPU runs out of memory, compute that checkpoint on the CPU rather than
    /// wait for memory and try again.
    pub cpu_fallback: bool,
    /// Whether the memory of a checkpoint's computation is handed back after it.
    pub memory: crate::device::MemoryUse,
    /// When the run is kept in an object store: `dir` is its local mirror, kept up to
    /// date by this monitor (while it writes the history).
    pub mirror: Option<crate::store::mirror::MirrorConfig>,
    /// What the user said of the network (`--arch`), for what checkpoints cannot tell.
    pub hints: crate::model::Hints,
    /// Publish each checkpoint's results beside the run (`--publish`).
    pub publish: bool,
    /// When published results are taken instead of computing (`--compute`).
    pub compute: crate::results::Compute,
}

/// Where a report's maps came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Computed,
    History,
    /// Results another camwatch published beside the run (`--publish`).
    Published,
    /// Trust figures computed for maps already reported.
    Measured,
}

/// One checkpoint content as the history holds it, with its samples' figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckpointReport {
    #[serde(serialize_with = "crate::paths::serialize")]
    pub path: PathBuf,
    /// Every name this content was seen under.
    #[serde(serialize_with = "crate::paths::serialize_all")]
    pub paths: Vec<PathBuf>,
    pub epoch: Option<u64>,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub hash: String,
    /// When the file was written (its modification time), RFC 3339.
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<serde_json::Value>,
    pub samples: Vec<SampleFigures>,
    /// The published object its results were taken from (`watch --compute auto|never`);
    /// absent when computed by this camwatch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    /// The notable changes since the previous checkpoint, sample by sample.
    pub events: Vec<timeline::Event>,
    /// The file's mtime in nanoseconds, which places an unnumbered checkpoint in
    /// training order.
    #[serde(skip)]
    pub mtime_ns: i64,
}

impl CheckpointReport {
    pub fn new(entry: &Entry, samples: Vec<SampleFigures>) -> Self {
        let time = std::time::UNIX_EPOCH + Duration::from_nanos(entry.mtime_ns.max(0) as u64);
        CheckpointReport {
            path: entry.path.clone(),
            paths: entry.paths.clone(),
            epoch: entry.epoch,
            status: entry.status,
            error: entry.error.clone(),
            hash: entry.hash.clone(),
            time: humantime::format_rfc3339_millis(time).to_string(),
            format: entry.format.clone(),
            arch: entry
                .arch
                .as_deref()
                .and_then(|a| serde_json::from_str(a).ok()),
            samples,
            published: entry.origin.clone(),
            events: Vec::new(),
            mtime_ns: entry.mtime_ns,
        }
    }
}

/// What the monitor tells its user, in order, on one channel.
#[derive(Clone, Debug)]
pub enum MonitorEvent {
    /// A checkpoint handled (or, at start, read back from the history).
    Checkpoint {
        report: Box<CheckpointReport>,
        source: Source,
        /// Time from taking the job to having the report.
        ms: f64,
    },
    /// New figures for a checkpoint already reported: an earlier one was computed after
    /// it, so its drift now has the right neighbour. (Not a new checkpoint: `watch
    /// --headless` prints nothing for it; `history` always has the final figures.)
    Revised(Box<CheckpointReport>),
    /// New trust figures for a checkpoint already reported (a batch of its samples
    /// measured; `watch --headless` prints them as an `"event": "metrics"` line).
    Measured(Box<CheckpointReport>),
    /// The stored history has been reported; what follows is live.
    Replayed { checkpoints: usize },
    /// Another camwatch writes the run's history: this monitor only follows it,
    /// computing nothing (first event, when so). `None`: nobody writes it now, and this
    /// user may not (another user's run, its camwatch stopped).
    Following { writer: Option<lock::Holder> },
    /// The camwatch that wrote the followed history stopped: nothing more will come
    /// unless a new monitor (which then writes) takes its place.
    WriterGone,
    /// The worker is computing a checkpoint: `done` of `total` samples, with `queued`
    /// more checkpoints waiting.
    Working {
        path: PathBuf,
        queued: usize,
        done: usize,
        total: usize,
    },
    /// A large checkpoint object being downloaded from the run's store.
    Downloading { url: String, done: u64, total: u64 },
    /// Something went wrong that is no checkpoint's fault (the history could not be
    /// written, the watcher failed, the store cannot be reached); the monitor goes on.
    Warning(String),
}

impl MonitorEvent {
    /// The checkpoint a [`MonitorEvent::Checkpoint`], [`MonitorEvent::Revised`] or
    /// [`MonitorEvent::Measured`] reports, as it now stands.
    pub fn report(&self) -> Option<&CheckpointReport> {
        match self {
            MonitorEvent::Checkpoint { report, .. }
            | MonitorEvent::Revised(report)
            | MonitorEvent::Measured(report) => Some(report),
            _ => None,
        }
    }
}

/// To the scanner thread.
#[derive(Debug)]
pub enum ScanMessage {
    /// Something happened to these paths (created, written, renamed, deleted).
    Paths(Vec<PathBuf>),
    /// These files were closed after writing, or renamed into place: their writer is
    /// done with them, so they are read without waiting for `--settle`.
    Written(Vec<PathBuf>),
    Rescan,
    /// Look at this file again from scratch.
    Recheck(PathBuf),
    /// The worker took a job: read, hash and parse the next one while it computes.
    PrepareNext,
    Stop,
}

/// The key a sample's results are stored under: its image's content, and its label when
/// the maps explain the label (a changed label changes the maps).
pub fn sample_keys(set: &SampleSet, target: Target) -> Vec<String> {
    set.samples
        .iter()
        .map(|s| match (target, s.label) {
            (Target::Label, Some(label)) => format!("{}:label={label}", s.digest),
            _ => s.digest.clone(),
        })
        .collect()
}

/// What the history keys results by, besides weights and sample.
pub fn setting(settings: &CamSettings, steps: usize) -> Setting {
    // fp32 rows keep the key they had before precisions existed.
    let precision = match settings.precision {
        crate::precision::Precision::Fp32 => String::new(),
        other => format!("@{other}"),
    };
    Setting {
        prep: format!("{}@{}{precision}", settings.normalize, settings.input_size),
        layer: settings.request.layer.history_key().to_string(),
        target: settings.request.target.to_string(),
        steps,
    }
}

/// The whole stored history for a sample set and settings, in training order.
pub fn read_history(
    history: &History,
    samples: &SampleSet,
    settings: &CamSettings,
    steps: usize,
) -> Result<Vec<CheckpointReport>, MonitorError> {
    HistoryReader::default().read(history, samples, settings, steps)
}

/// Reads a history again and again (as a follower does at each of the writer's
/// commits), doing again only what changed: the results of checkpoints whose marks
/// changed, and the reports of those and of the checkpoints after them. Read whole,
/// 120 checkpoints × 64 samples take about a second, most of it the drift between
/// neighbours, and a writer measuring trust figures commits several times a second.
#[derive(Default)]
pub struct HistoryReader {
    /// By content hash, as of the last read.
    read: HashMap<String, Read>,
}

struct Read {
    marks: history::Marks,
    stored: Vec<history::StoredSample>,
    /// What its report was made from besides `stored`: the entry, and the previous
    /// checkpoint with maps (hash and marks).
    entry: Entry,
    previous: Option<(String, history::Marks)>,
    report: CheckpointReport,
}

impl HistoryReader {
    /// [`read_history`], from what changed since the last call.
    pub fn read(
        &mut self,
        history: &History,
        samples: &SampleSet,
        settings: &CamSettings,
        steps: usize,
    ) -> Result<Vec<CheckpointReport>, MonitorError> {
        let keys = sample_keys(samples, settings.request.target);
        let setting = setting(settings, steps);
        let shown: Vec<&crate::cam::Sample> = samples.samples.iter().collect();
        let methods = &settings.request.methods;
        // Marks first: what is committed after them is read now and again next time.
        let marks = history.marks(&setting)?;
        let mut read: HashMap<String, Read> = HashMap::new();
        let mut reports = Vec::new();
        let mut previous: Option<String> = None;
        for entry in timeline::order(&history.checkpoints()?) {
            let entry_marks = marks.get(&entry.hash).copied().unwrap_or_default();
            let previous_key = previous.as_ref().map(|h| (h.clone(), read[h].marks));
            let known = self.read.remove(&entry.hash);
            let (stored, report) = match known {
                Some(k)
                    if k.marks == entry_marks && k.entry == entry && k.previous == previous_key =>
                {
                    (k.stored, k.report)
                }
                known => {
                    let stored = match known {
                        Some(k) if k.marks == entry_marks => k.stored,
                        _ => history.results(&entry.hash, &setting, &keys)?,
                    };
                    let before = previous.as_ref().map(|h| read[h].stored.as_slice());
                    let report = timeline::report_after(&shown, methods, &entry, &stored, before);
                    (stored, report)
                }
            };
            reports.push(report.clone());
            if entry.status == Status::Ok {
                previous = Some(entry.hash.clone());
            }
            read.insert(
                entry.hash.clone(),
                Read {
                    marks: entry_marks,
                    stored,
                    entry,
                    previous: previous_key,
                    report,
                },
            );
        }
        self.read = read;
        Ok(reports)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("{}: not a folder", .0.display())]
    NotAFolder(PathBuf),
    #[error("{}: cannot lock the run's history ({source})", path.display())]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The folder inside the watched one that holds camwatch's own files, never scanned:
/// the history's folder when it lies inside the watched folder, else `.camwatch` (a
/// history beside or above the run, `--history /x/h.sqlite` for `/x/run`, makes no
/// folder of the run camwatch's: the whole run would be skipped).
fn own_folder(dir: &Path, history: &Path) -> PathBuf {
    let inside = history.parent().and_then(|parent| {
        let dir = std::fs::canonicalize(dir).ok()?;
        let parent = std::fs::canonicalize(parent).ok()?;
        let relative = parent.strip_prefix(&dir).ok()?;
        (!relative.as_os_str().is_empty()).then(|| relative.to_path_buf())
    });
    match inside {
        Some(relative) => dir.join(relative),
        None => dir.join(HISTORY_DIR),
    }
}

/// The worker's publishing, for a monitor that writes the history: `None` when results
/// are neither published nor read (`--compute always` without `--publish`), or the
/// run's results folder cannot be used (said).
fn publishing(config: &MonitorConfig, events: &Sender<MonitorEvent>) -> Option<worker::Publishing> {
    use crate::results::{self, Compute, PublishedSetting, Shelf};
    if config.compute == Compute::Always && !config.publish {
        return None;
    }
    let setting = setting(&config.settings, config.metrics.steps);
    let methods = &config.settings.request.methods;
    let folder = results::setting_folder(&setting, methods);
    let shelf = match &config.mirror {
        Some(mirror) => Shelf::store(&mirror.store, &folder),
        None => match Shelf::folder(&config.dir, &folder) {
            Ok(shelf) => shelf,
            Err(e) => {
                let _ = events.send(MonitorEvent::Warning(format!(
                    "{e}: published results are neither read nor written"
                )));
                return None;
            }
        },
    };
    Some(worker::Publishing::new(
        shelf,
        config.publish,
        config.compute,
        PublishedSetting::new(&setting, methods),
        config.dir.clone(),
    ))
}

/// A running monitor: the threads behind its events. Stopped (and its threads joined)
/// by [`Monitor::stop`] or when dropped.
pub struct Monitor {
    cancel: Cancel,
    queue: Arc<queue::Queue<worker::Job>>,
    scanner_messages: Sender<ScanMessage>,
    scanner: Option<JoinHandle<()>>,
    worker: Option<JoinHandle<()>>,
    /// Kept alive for as long as events should arrive.
    _watcher: Option<notify::RecommendedWatcher>,
    /// Held while this monitor writes the run's history; `None` when it follows.
    _lock: Option<Arc<lock::RunLock>>,
    /// Keeps a store run's folder up to date (stopped before the worker).
    mirror: Option<crate::store::mirror::Mirror>,
}

impl Monitor {
    /// Opens the history and starts the scanner and the worker, or, when another
    /// camwatch writes this run's history, a follower of it. The stored history is
    /// reported first, then live checkpoints, on the returned channel.
    pub fn start(
        mut config: MonitorConfig,
    ) -> Result<(Monitor, Receiver<MonitorEvent>), MonitorError> {
        if !config.dir.is_dir() {
            return Err(MonitorError::NotAFolder(config.dir));
        }
        History::make_folder(&config.history)?;
        let lock = match lock::claim(&config.history) {
            Ok(lock::Claim::Writer(lock)) => lock,
            Ok(lock::Claim::Held(holder)) => {
                let history = History::open_read_only(&config.history, &config.dir)?;
                return Ok(Monitor::follow(config, history, Some(holder)));
            }
            // Another user's run whose camwatch stopped: what it wrote is still shown.
            Err(e) if lock::is_not_ours(&e) && config.history.exists() => {
                let history = History::open_read_only(&config.history, &config.dir)?;
                return Ok(Monitor::follow(config, history, None));
            }
            Err(source) => {
                return Err(MonitorError::Lock {
                    path: lock::lock_file(&config.history),
                    source,
                });
            }
        };
        let history = History::open(&config.history, &config.dir)?;
        let sample_keys = sample_keys(&config.samples, config.settings.request.target);
        // Files recorded at their current size and mtime are not read again.
        let mut known = HashMap::new();
        for row in history.checkpoints()? {
            known.insert(row.path, row.fingerprint);
        }
        let now = Instant::now();
        let mut tracker = Tracker::new(config.timing);
        for (path, fingerprint) in known {
            tracker.known(path, fingerprint, now);
        }

        let (event_tx, events) = mpsc::channel();
        let (scan_tx, scan_rx) = mpsc::channel();
        let queue = Arc::new(queue::Queue::default());
        let cancel = Cancel::default();
        config.settings.request.cancel = cancel.clone();

        let watcher = match config.poll {
            Some(_) => None,
            None => match scanner::watch_events(&config.dir, scan_tx.clone()) {
                Ok(w) => Some(w),
                Err(e) => {
                    let _ = event_tx.send(MonitorEvent::Warning(format!(
                        "{}: file-system events unavailable ({e}); polling every 2 s",
                        config.dir.display()
                    )));
                    None
                }
            },
        };
        let rescan_every = match (config.poll, &watcher) {
            (Some(poll), _) => poll,
            (None, Some(_)) => Duration::from_secs(30),
            (None, None) => Duration::from_secs(2),
        };
        let scanner = scanner::Scanner {
            dir: config.dir.clone(),
            skip: own_folder(&config.dir, &config.history),
            tracker,
            queue: Arc::clone(&queue),
            messages: scan_rx,
            rescan_every,
        };
        let mut publishing = publishing(&config, &event_tx);
        if let Some(mirror) = config.mirror.as_mut() {
            let (file, dir) = (config.history.clone(), config.dir.clone());
            mirror.recorded = Some(crate::store::mirror::Recorded(Arc::new(move || {
                let history = History::open_read_only(&file, &dir).ok()?;
                let rows = history.checkpoints().ok()?;
                Some(rows.into_iter().map(|r| r.path).collect())
            })));
        }
        if let (Some(mirror), Some(p)) = (config.mirror.as_mut(), &publishing)
            && p.compute != crate::results::Compute::Always
        {
            mirror.results = Some(crate::store::mirror::MirrorResults {
                shelf: p.shelf.clone(),
                compute: p.compute,
                setting: p.setting.clone(),
                sample_keys: sample_keys.clone(),
                methods: config.settings.request.methods.clone(),
            });
        }
        let mirror = config.mirror.clone().map(|mirror| {
            let events = event_tx.clone();
            let (queue, dir) = (Arc::clone(&queue), config.dir.clone());
            crate::store::mirror::Mirror::start(
                mirror,
                Box::new(move |event| {
                    let _ = events.send(match event {
                        crate::store::mirror::MirrorEvent::Warning(text) => {
                            MonitorEvent::Warning(text)
                        }
                        crate::store::mirror::MirrorEvent::Progress { url, done, total } => {
                            MonitorEvent::Downloading { url, done, total }
                        }
                        crate::store::mirror::MirrorEvent::Published {
                            key,
                            size,
                            modified_ns,
                            delivered,
                        } => {
                            let path = dir.join(&key);
                            let fingerprint = scan::Fingerprint {
                                size,
                                mtime_ns: modified_ns,
                            };
                            let job = worker::delivered_job(path.clone(), fingerprint, *delivered);
                            queue.push(path, modified_ns, false, job);
                            return;
                        }
                    });
                }),
            )
        });
        // A store run's checkpoints are known by their ETags, which the mirror keeps.
        if let (Some(p), Some(mirror)) = (publishing.as_mut(), &mirror) {
            p.objects = Some(Arc::clone(&mirror.objects));
        }
        let measure_batch = config.settings.request.batch;
        let worker = worker::Worker {
            history,
            setting: setting(&config.settings, config.metrics.steps),
            samples: config.samples,
            sample_keys,
            settings: config.settings,
            device: config.device,
            queue: Arc::clone(&queue),
            events: event_tx,
            scanner: scan_tx.clone(),
            cancel: cancel.clone(),
            metrics: config.metrics,
            pending: Vec::new(),
            random: None,
            warm: None,
            architecture: None,
            measure_batch,
            gpu: worker::GpuMemory::new(config.cpu_fallback),
            memory: config.memory,
            hints: config.hints,
            publishing,
        };
        let worker = std::thread::Builder::new()
            .name("camwatch-worker".into())
            .spawn(move || worker.run())
            .ok();
        let scanner = std::thread::Builder::new()
            .name("camwatch-scanner".into())
            .spawn(move || scanner.run())
            .ok();
        let monitor = Monitor {
            cancel,
            queue,
            scanner_messages: scan_tx,
            scanner,
            worker,
            _watcher: watcher,
            _lock: Some(lock),
            mirror,
        };
        Ok((monitor, events))
    }

    /// A monitor that only follows the history another camwatch writes.
    fn follow(
        config: MonitorConfig,
        history: History,
        writer: Option<lock::Holder>,
    ) -> (Monitor, Receiver<MonitorEvent>) {
        let followed = writer.is_some();
        let (event_tx, events) = mpsc::channel();
        let _ = event_tx.send(MonitorEvent::Following { writer });
        let cancel = Cancel::default();
        let follower = follower::Follower {
            history,
            samples: config.samples,
            settings: config.settings,
            steps: config.metrics.steps,
            events: event_tx,
            cancel: cancel.clone(),
            writer: followed,
        };
        let worker = std::thread::Builder::new()
            .name("camwatch-follower".into())
            .spawn(move || follower.run())
            .ok();
        let (scanner_messages, _) = mpsc::channel();
        let monitor = Monitor {
            cancel,
            queue: Arc::new(queue::Queue::default()),
            scanner_messages,
            scanner: None,
            worker,
            _watcher: None,
            _lock: None,
            mirror: None,
        };
        (monitor, events)
    }

    /// Checkpoints waiting for the worker.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Stops both threads and waits for them. A checkpoint being computed stops at its
    /// next safe point (between forward passes) and is not recorded (its transaction
    /// never starts), so the history stays whole; nothing of the network is torn down
    /// under a running pass, and the process can exit safely afterwards.
    pub fn stop(mut self) {
        self.shut_down();
    }

    /// The ETags of a store run's objects, by key.
    pub fn objects(&self) -> Option<Arc<crate::store::mirror::Objects>> {
        self.mirror.as_ref().map(|m| Arc::clone(&m.objects))
    }

    fn shut_down(&mut self) {
        // The mirror first: no download lands while the rest stops.
        self.mirror = None;
        self.cancel.cancel();
        self.queue.close();
        let _ = self.scanner_messages.send(ScanMessage::Stop);
        if let Some(scanner) = self.scanner.take() {
            let _ = scanner.join();
        }
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.shut_down();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_history_folder_inside_the_run_is_skipped() {
        let top = tempfile::tempdir().unwrap();
        let run = top.path().join("run");
        std::fs::create_dir_all(run.join("kept/deeper")).unwrap();
        // Above the run (issue: every event under it was skipped), and beside it.
        assert_eq!(
            own_folder(&run, &top.path().join("h.sqlite")),
            run.join(HISTORY_DIR)
        );
        assert_eq!(
            own_folder(&run, &top.path().join("other/h.sqlite")),
            run.join(HISTORY_DIR)
        );
        assert_eq!(
            own_folder(&run, &run.join("h.sqlite")),
            run.join(HISTORY_DIR)
        );
        assert_eq!(
            own_folder(&run, &run.join("kept/deeper/h.sqlite")),
            run.join("kept/deeper")
        );
        assert_eq!(
            own_folder(&run, &history_file(&run, None)),
            run.join(HISTORY_DIR)
        );
    }
}
