//! The GPU running out of memory (the training job beside camwatch may hold it all):
//! not the checkpoint's fault, so nothing is recorded; it is tried again later with a
//! growing wait, or computed on the CPU when the user allowed that (`--cpu-fallback`).

use std::path::Path;
use std::time::{Duration, Instant};

use super::{Computed, Failure, Job, Missing, Parsed, Worker};
use crate::device::{self, SelectedDevice};
use crate::monitor::scan::Fingerprint;

#[derive(Default)]
pub struct GpuMemory {
    /// `--cpu-fallback`: compute such a checkpoint on the CPU at once.
    pub cpu_fallback: bool,
    /// The CPU device of the fallback, made on first use.
    pub(super) cpu: Option<SelectedDevice>,
    /// Checkpoints waiting to be tried again, and when.
    pub(super) retries: Vec<(Instant, Job)>,
    /// Tries so far, by content hash: the wait doubles each time.
    pub(super) attempts: std::collections::HashMap<String, u32>,
    /// Test hook: the next so many computations fail as if the GPU ran out of memory
    /// (`CAMWATCH_FAKE_GPU_OOM=N`, read at start), so the handling above can be
    /// exercised on a machine without a GPU.
    pub(super) fake: u32,
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

impl Worker {
    /// Queues again the checkpoints whose wait for GPU memory is over (unless their
    /// file changed meanwhile: the scanner queues the new content itself).
    pub(super) fn requeue_due(&mut self) {
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

    /// The GPU ran out of memory computing `job`: `Err` when it is to be tried again
    /// later (it waits in `gpu.retries`), else what the CPU computed, with the job.
    pub(super) fn out_of_gpu_memory(
        &mut self,
        job: Job,
        hash: &str,
        missing: &Missing,
    ) -> Result<(Result<Computed, Failure>, Job), ()> {
        device::release_cached_memory(&self.device);
        if !self.gpu.cpu_fallback {
            let attempt = self.gpu.attempts.entry(hash.to_string()).or_default();
            *attempt += 1;
            let wait = GpuMemory::wait(*attempt);
            self.warn(format!(
                "{}: the GPU ran out of memory (the training job may need it all): \
                 trying again in {} s (--cpu-fallback computes it on the CPU instead)",
                job.path.display(),
                wait.as_secs()
            ));
            let retry = Job {
                failure: None,
                ..job
            };
            self.gpu.retries.push((Instant::now() + wait, retry));
            return Err(());
        }
        self.warn(format!(
            "{}: the GPU ran out of memory: computed on the CPU (--cpu-fallback)",
            job.path.display()
        ));
        let computed = self.compute_isolated(&job.path, hash, None, missing, true);
        Ok((computed, job))
    }

    /// [`Worker::compute`] on the worker's device (or the CPU, for the fallback), with
    /// whatever goes wrong staying with this one file: a panic (a bug reached by some
    /// input) becomes its error; the GPU running out of memory is told apart.
    pub(super) fn compute_isolated(
        &mut self,
        path: &Path,
        hash: &str,
        parsed: Option<Parsed>,
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
        let computed =
            crate::isolate::isolated(|| self.compute(path, hash, parsed, missing, &device))
                .unwrap_or_else(|panic| {
                    Err(Failure::Content(format!("{}: {panic}", path.display())))
                });
        match computed {
            Err(Failure::Content(m) | Failure::Setting(m)) if device::out_of_gpu_memory(&m) => {
                Err(Failure::GpuMemory(m))
            }
            other => other,
        }
    }
}
