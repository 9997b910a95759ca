//! The one worker: takes checkpoints from the queue (newest first), turns each into maps
//! for the sample set (only what the history does not hold yet), records them, and
//! reports. The history is its own: nothing else writes to it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use super::history::{
    CheckpointRow, History, HistoryError, Prediction, Setting, Status, StoredMap, StoredSample,
};
use super::queue::Queue;
use super::scan::Fingerprint;
use super::timeline::{self, Entry};
use super::{CheckpointReport, MonitorEvent, ScanMessage, Source};
use crate::cam::engine::Cancel;
use crate::cam::metrics::MetricSettings;
use crate::cam::{CamError, CamRequest, Method, Sample, SampleMaps, SampleSet};
use crate::checkpoint::{self, LoadError};
use crate::device::{self, SelectedDevice};
use crate::loader::{self, LoadedModel};
use crate::model::Res2Net;
use crate::render::{self, ArchSummary, CamSettings, RenderError, SampleTrust};

/// A checkpoint file the scanner found complete (or gave up on), at the content it read.
#[derive(Debug)]
pub struct Job {
    pub path: PathBuf,
    pub fingerprint: Fingerprint,
    pub hash: String,
    pub epoch: Option<u64>,
    /// Why the file cannot be used, when the scanner already knows.
    pub failure: Option<String>,
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
    /// The untrained network of the sanity check, for the architecture (as JSON) it
    /// was built for.
    pub random: Option<(String, Res2Net)>,
    /// The network of the checkpoint whose maps were computed last (by content hash),
    /// kept for its trust figures, which come next unless a newer checkpoint does: they
    /// start at once instead of after loading it again.
    pub warm: Option<(String, LoadedModel)>,
    /// Images per forward pass when measuring trust figures: as many as take about
    /// [`GIVE_WAY_WITHIN`] (from the last maps' forward pass), so that a new checkpoint
    /// waits no longer than that for its maps. The settings' batch until then.
    pub measure_batch: usize,
    pub gpu: GpuMemory,
}

/// How long measuring trust figures may keep a new checkpoint waiting: the time of one
/// of its forward passes. (A round of ROAD's solves, one per thread, takes about 0.1 s
/// for a 224×224 image on this project's 2-core CPU.)
const GIVE_WAY_WITHIN: Duration = Duration::from_millis(100);

/// The batch whose forward pass takes about [`GIVE_WAY_WITHIN`] at `per_image`, at most
/// `batch`.
fn measure_batch(per_image: Duration, batch: usize) -> usize {
    let fits = GIVE_WAY_WITHIN.as_secs_f64() / per_image.as_secs_f64().max(1e-6);
    (fits as usize).clamp(1, batch.max(1))
}

/// What the worker does when the GPU runs out of memory (the training job beside it
/// may hold it): the checkpoint is not the cause, so nothing is recorded; it is tried
/// again later, or computed on the CPU when the user allowed that.
#[derive(Default)]
pub struct GpuMemory {
    /// `--cpu-fallback`: compute such a checkpoint on the CPU at once.
    pub cpu_fallback: bool,
    /// The CPU device of the fallback, made on first use.
    cpu: Option<SelectedDevice>,
    /// Checkpoints waiting to be tried again, and when.
    retries: Vec<(Instant, Job)>,
    /// Tries so far, by content hash: the wait doubles each time.
    attempts: std::collections::HashMap<String, u32>,
    /// Test hook: the next so many computations fail as if the GPU ran out of memory
    /// (`CAMWATCH_FAKE_GPU_OOM=N`, read at start), so the handling above can be
    /// exercised on a machine without a GPU.
    fake: u32,
}

impl GpuMemory {
    pub fn new(cpu_fallback: bool) -> GpuMemory {
        GpuMemory {
            cpu_fallback,
            fake: std::env::var("CAMWATCH_FAKE_GPU_OOM")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            ..GpuMemory::default()
        }
    }

    /// How long to wait before try `attempt` (1, 2, …): 2 s, doubling, at most a minute.
    fn wait(attempt: u32) -> Duration {
        Duration::from_secs(2u64 << attempt.saturating_sub(1).min(5)).min(Duration::from_secs(60))
    }
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

impl Worker {
    pub fn run(mut self) {
        if let Err(e) = self.replay() {
            self.warn(e.to_string());
        }
        while !self.cancel.is_cancelled() {
            self.requeue_due();
            // Maps first: trust figures only when no checkpoint is waiting.
            let wait = if self.pending.is_empty() {
                Duration::from_millis(250)
            } else {
                Duration::ZERO
            };
            let Some(job) = self.queue.pop(wait) else {
                if let Some(next) = self.next_pending() {
                    match crate::isolate::isolated(|| self.measure(next)) {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => self.warn(e.to_string()),
                        Err(panic) => self.warn(panic),
                    }
                    device::release_cached_memory(&self.device);
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
            device::release_cached_memory(&self.device);
        }
    }

    /// Queues again the checkpoints whose wait for GPU memory is over (unless their
    /// file changed meanwhile: the scanner queues the new content itself).
    fn requeue_due(&mut self) {
        let now = Instant::now();
        let (due, later) = std::mem::take(&mut self.gpu.retries)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.gpu.retries = later;
        for (_, job) in due {
            if Fingerprint::of(&job.path) == Some(job.fingerprint) {
                let (path, mtime) = (job.path.clone(), job.fingerprint.mtime_ns);
                self.queue.push(path, mtime, false, job);
            }
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
        let rows = self.history.checkpoints()?;
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
                            hash: row.hash.clone(),
                            epoch: row.epoch,
                            failure: None,
                        },
                    );
                    continue;
                }
            }
            if entry.status == Status::Ok
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

    fn handle(&mut self, job: Job) -> Result<(), HistoryError> {
        let start = Instant::now();
        // Another checkpoint's turn: its network is not kept beside this one's.
        self.warm = None;
        let mut row = CheckpointRow {
            path: job.path.clone(),
            hash: job.hash.clone(),
            fingerprint: job.fingerprint,
            epoch: job.epoch,
            status: Status::Ok,
            error: None,
            format: None,
            arch: None,
        };
        if let Some(failure) = job.failure {
            row.status = Status::Error;
            row.error = Some(failure);
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
        let missing = self.missing(&stored);
        if missing.is_empty() {
            if let Some(seen) = same_content {
                row.format.clone_from(&seen.format);
                row.arch.clone_from(&seen.arch);
            }
            return self.finish_quietly_if(known_here, row, Source::History, start);
        }
        self.working(&row.path, 0, missing.len());
        let mut computed = self.compute_isolated(&job.path, &job.hash, &missing, false);
        // (A CPU fallback's network is not on the worker's device, nor is its speed.)
        let on_device = computed.is_ok();
        if matches!(computed, Err(Failure::GpuMemory(_))) {
            device::release_cached_memory(&self.device);
            if !self.gpu.cpu_fallback {
                let attempt = self.gpu.attempts.entry(job.hash.clone()).or_default();
                *attempt += 1;
                let wait = GpuMemory::wait(*attempt);
                self.warn(format!(
                    "{}: the GPU ran out of memory (the training job may need it all): \
                     trying again in {} s (--cpu-fallback computes it on the CPU instead)",
                    job.path.display(),
                    wait.as_secs()
                ));
                let retry = Job {
                    path: job.path,
                    fingerprint: job.fingerprint,
                    hash: job.hash,
                    epoch: job.epoch,
                    failure: None,
                };
                self.gpu.retries.push((Instant::now() + wait, retry));
                return Ok(());
            }
            self.warn(format!(
                "{}: the GPU ran out of memory: computed on the CPU (--cpu-fallback)",
                job.path.display()
            ));
            computed = self.compute_isolated(&job.path, &job.hash, &missing, true);
        }
        self.gpu.attempts.remove(&job.hash);
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
                row.arch = Some(arch);
                if !self.metrics.is_off() {
                    if on_device {
                        self.warm = Some((row.hash.clone(), *loaded));
                        self.measure_batch =
                            measure_batch(forward_per_image, self.settings.request.batch);
                    }
                    self.pending.push(Pending {
                        path: row.path.clone(),
                        hash: row.hash.clone(),
                        fingerprint: row.fingerprint,
                        epoch: row.epoch,
                    });
                }
                self.finish(row, &results, Source::Computed, start)
            }
            Err(Failure::Content(message) | Failure::GpuMemory(message)) => {
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

    /// [`Worker::compute`] on the worker's device (or the CPU, for the fallback), with
    /// whatever goes wrong staying with this one file: a panic (a bug reached by some
    /// input) becomes its error; the GPU running out of memory is told apart.
    fn compute_isolated(
        &mut self,
        path: &Path,
        hash: &str,
        missing: &Missing,
        on_cpu: bool,
    ) -> Result<Computed, Failure> {
        if !on_cpu && self.gpu.fake > 0 {
            self.gpu.fake -= 1;
            return Err(Failure::GpuMemory(format!(
                "{}: CUDA out of memory (CAMWATCH_FAKE_GPU_OOM)",
                path.display()
            )));
        }
        let device = match (on_cpu, &self.gpu.cpu) {
            (false, _) => self.device.clone(),
            (true, Some(cpu)) => cpu.clone(),
            (true, None) => {
                let cpu = device::select(device::DeviceChoice::Cpu)
                    .map_err(|e| Failure::Setting(format!("{}: {e}", path.display())))?;
                self.gpu.cpu = Some(cpu.clone());
                cpu
            }
        };
        let computed = crate::isolate::isolated(|| self.compute(path, hash, missing, &device))
            .unwrap_or_else(|panic| Err(Failure::Content(format!("{}: {panic}", path.display()))));
        match computed {
            Err(Failure::Content(m) | Failure::Setting(m)) if device::out_of_gpu_memory(&m) => {
                Err(Failure::GpuMemory(m))
            }
            other => other,
        }
    }

    /// Loads the checkpoint in the settings' precision; `None` when the file no longer
    /// holds the content the scanner hashed (or cannot be opened as it was queued).
    fn load(
        &self,
        path: &Path,
        hash: &str,
        device: &SelectedDevice,
    ) -> Result<Option<LoadedModel>, Failure> {
        let loaded = checkpoint::with_file(path, |data| {
            if content_hash(data) != hash {
                return Ok(None);
            }
            loader::from_bytes(path, data, &device.device).map(|mut loaded| {
                let (precision, layer) = (self.settings.precision, self.settings.request.layer);
                loaded.model = crate::precision::cast(loaded.model, precision, layer);
                Some(loaded)
            })
        })
        .and_then(|r| r);
        let loaded = match loaded {
            // The file cannot be opened or read as it was queued (replaced by a FIFO,
            // a link to a device, removed): not its content's fault, which the scanner
            // read and hashed; it looks again.
            Err(e) if matches!(e.source, LoadError::Io(_)) => None,
            other => other.map_err(|e| Failure::Content(e.to_string()))?,
        };
        Ok(loaded)
    }

    /// Loads the checkpoint (checking it is still the content the scanner hashed) and
    /// computes the missing maps.
    fn compute(
        &self,
        path: &Path,
        hash: &str,
        missing: &Missing,
        device: &SelectedDevice,
    ) -> Result<Computed, Failure> {
        let Some(loaded) = self.load(path, hash, device)? else {
            return Ok(Computed::Changed);
        };
        let mut methods: Vec<Method> = Vec::new();
        for (_, need) in missing {
            for m in need {
                if !methods.contains(m) {
                    methods.push(*m);
                }
            }
        }
        let settings = CamSettings {
            request: crate::cam::CamRequest {
                methods,
                ..self.settings.request.clone()
            },
            ..self.settings.clone()
        };
        let samples: Vec<&Sample> = missing
            .iter()
            .map(|(i, _)| &self.samples.samples[*i])
            .collect();
        let (maps, timings) = render::compute_samples(
            &loaded.model,
            &samples,
            &self.samples.dir,
            &settings,
            &device.device,
            &mut |done| self.working(path, done, samples.len()),
        )
        .map_err(|e| match e {
            RenderError::Cam(CamError::Cancelled) => Failure::Cancelled,
            e => Failure::Setting(format!("{}: {e}", path.display())),
        })?;
        let results = missing
            .iter()
            .zip(maps)
            .map(|((i, _), result)| {
                let sample = &self.samples.samples[*i];
                let maps = result
                    .maps
                    .into_iter()
                    .map(|(method, map)| StoredMap {
                        method,
                        class: result.target,
                        on_object: timeline::measure_on_object(&map, sample),
                        map,
                    })
                    .collect();
                let stored = StoredSample {
                    prediction: Some(Prediction {
                        logits: result.logits,
                        probs: result.probs,
                        predicted: result.predicted,
                    }),
                    maps,
                    trust: Default::default(),
                };
                (self.sample_keys[*i].clone(), stored)
            })
            .collect();
        let arch = serde_json::to_string(&ArchSummary::of(&loaded.config)).unwrap_or_default();
        Ok(Computed::Done {
            format: loaded.format.to_string(),
            arch,
            results,
            loaded: Box::new(loaded),
            forward_per_image: timings.forward / samples.len().max(1) as u32,
        })
    }
}

impl Worker {
    /// The pending checkpoint to measure next: the newest in training order.
    fn next_pending(&mut self) -> Option<Pending> {
        let newest = (0..self.pending.len()).max_by_key(|&i| {
            let p = &self.pending[i];
            (p.epoch, p.fingerprint.mtime_ns)
        })?;
        Some(self.pending.swap_remove(newest))
    }

    /// The samples (by index) whose maps lack some trust figure asked for.
    fn untrusted(&self, stored: &[StoredSample]) -> Vec<usize> {
        let metrics = &self.metrics;
        if metrics.is_off() {
            return Vec::new();
        }
        stored
            .iter()
            .enumerate()
            .filter(|(_, s)| s.prediction.is_some())
            .filter(|(_, s)| {
                self.settings.request.methods.iter().any(|method| {
                    let faithful = s.trust.metrics.get(method);
                    let lacks_metric = metrics
                        .metrics
                        .iter()
                        .any(|&m| faithful.and_then(|f| f.get(m)).is_none());
                    let lacks_sanity = metrics.sanity
                        && s.trust
                            .sanity
                            .get(method)
                            .is_none_or(|s| s.class_corr.is_none() || s.random_corr.is_none());
                    s.maps.iter().any(|m| m.method == *method) && (lacks_metric || lacks_sanity)
                })
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Computes the trust figures a checkpoint lacks, a batch of samples at a time, each
    /// batch recorded as it is done. A checkpoint arriving meanwhile interrupts it: the
    /// rest waits in `pending` again.
    fn measure(&mut self, pending: Pending) -> Result<(), HistoryError> {
        let stored = self.stored(&pending.hash)?;
        let todo = self.untrusted(&stored);
        if todo.is_empty() || Fingerprint::of(&pending.path) != Some(pending.fingerprint) {
            return Ok(());
        }
        let interrupt = Cancel::default();
        self.queue.interrupt_on_push(interrupt.clone());
        let loaded = match self.warm.take() {
            Some((hash, loaded)) if hash == pending.hash => loaded,
            _ => match self.load(&pending.path, &pending.hash, &self.device) {
                Ok(Some(loaded)) => loaded,
                // Changed or unreadable since: the scanner sees to it.
                Ok(None) | Err(_) => return Ok(()),
            },
        };
        let arch = serde_json::to_string(&ArchSummary::of(&loaded.config)).unwrap_or_default();
        let building_random =
            self.metrics.sanity && self.random.as_ref().is_none_or(|(a, _)| *a != arch);
        if building_random && !interrupt.is_cancelled() {
            let random = render::untrained_like(
                &loaded.config,
                &loaded.model,
                self.settings.request.layer,
                &self.device.device,
            );
            self.random = Some((arch, random));
        }
        let batch = self.measure_batch.max(1);
        let settings = CamSettings {
            request: CamRequest {
                cancel: interrupt.clone(),
                batch,
                ..self.settings.request.clone()
            },
            ..self.settings.clone()
        };
        let row = CheckpointRow {
            path: pending.path.clone(),
            hash: pending.hash.clone(),
            fingerprint: pending.fingerprint,
            epoch: pending.epoch,
            status: Status::Ok,
            error: None,
            format: None,
            arch: None,
        };
        for chunk in todo.chunks(batch) {
            if interrupt.is_cancelled() || self.cancel.is_cancelled() {
                break;
            }
            let samples: Vec<&Sample> = chunk.iter().map(|&i| &self.samples.samples[i]).collect();
            let results: Vec<SampleMaps> = chunk
                .iter()
                .filter_map(|&i| as_sample_maps(&stored[i], &settings.request.methods))
                .collect();
            if results.len() != chunk.len() {
                continue;
            }
            let random = self.random.as_ref().map(|(_, r)| r);
            let trust = match render::compute_trust(
                &loaded.model,
                random,
                &samples,
                &results,
                &settings,
                &self.metrics,
                &self.device.device,
            ) {
                Ok(trust) => trust,
                Err(RenderError::Cam(CamError::Cancelled)) => break,
                Err(e) => {
                    self.warn(format!("{}: trust figures: {e}", pending.path.display()));
                    return Ok(());
                }
            };
            let keyed: Vec<(String, SampleTrust)> = chunk
                .iter()
                .map(|&i| self.sample_keys[i].clone())
                .zip(trust)
                .collect();
            self.history
                .record_trust(&pending.hash, &self.setting, &keyed)?;
            self.report(&row, Source::Measured, Instant::now())?;
        }
        // Interrupted by a new checkpoint: the rest later. (Not after a full pass: what
        // it could not measure, it would not measure next time either.)
        if interrupt.is_cancelled() && !self.cancel.is_cancelled() {
            self.pending.push(pending);
        }
        Ok(())
    }
}

/// A sample's stored prediction and maps, as the engine gave them.
fn as_sample_maps(stored: &StoredSample, methods: &[Method]) -> Option<SampleMaps> {
    let prediction = stored.prediction.as_ref()?;
    let maps: Vec<(Method, crate::cam::Map)> = methods
        .iter()
        .filter_map(|&m| {
            let found = stored.maps.iter().find(|s| s.method == m)?;
            Some((m, found.map.clone()))
        })
        .collect();
    let target = stored
        .maps
        .first()
        .map_or(prediction.predicted, |m| m.class);
    Some(SampleMaps {
        logits: prediction.logits.clone(),
        probs: prediction.probs.clone(),
        predicted: prediction.predicted,
        target,
        maps,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measuring_batches_take_about_the_give_way_time() {
        // Res2Net50 in bf16 on a 2-core CPU (~25 ms an image), a GPU, a very slow device.
        assert_eq!(measure_batch(Duration::from_millis(25), 16), 4);
        assert_eq!(measure_batch(Duration::from_micros(500), 16), 16);
        assert_eq!(measure_batch(Duration::from_secs(3), 16), 1);
        assert_eq!(measure_batch(Duration::ZERO, 16), 16);
        assert_eq!(measure_batch(Duration::from_millis(50), 0), 1);
    }
}
