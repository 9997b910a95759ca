//! Trust figures, measured when no checkpoint waits for its maps, the newest checkpoint
//! first, in batches small enough that a new checkpoint waits at most about one
//! forward pass.

use std::time::{Duration, Instant};

use super::{Pending, Worker};
use crate::cam::engine::Cancel;
use crate::cam::{CamError, CamRequest, Sample, SampleMaps};
use crate::monitor::Source;
use crate::monitor::history::{CheckpointRow, HistoryError, Status, StoredSample};
use crate::monitor::scan::Fingerprint;
use crate::render::{self, ArchSummary, CamSettings, RenderError, SampleTrust};

/// How long measuring trust figures may keep a new checkpoint waiting: the time of one
/// of its forward passes. (A round of ROAD's solves, one per thread, takes about 0.1 s
/// for a 224×224 image on this project's 2-core CPU.)
const GIVE_WAY_WITHIN: Duration = Duration::from_millis(100);

/// The batch whose forward pass takes about [`GIVE_WAY_WITHIN`] at `per_image`, at most
/// `batch`.
pub(super) fn measure_batch(per_image: Duration, batch: usize) -> usize {
    let fits = GIVE_WAY_WITHIN.as_secs_f64() / per_image.as_secs_f64().max(1e-6);
    (fits as usize).clamp(1, batch.max(1))
}

impl Worker {
    /// The pending checkpoint to measure next: the newest in training order.
    pub(super) fn next_pending(&mut self) -> Option<Pending> {
        let newest = (0..self.pending.len()).max_by_key(|&i| {
            let p = &self.pending[i];
            (p.epoch, p.fingerprint.mtime_ns)
        })?;
        Some(self.pending.swap_remove(newest))
    }

    /// The samples (by index) whose maps lack some trust figure asked for.
    pub(super) fn untrusted(&self, stored: &[StoredSample]) -> Vec<usize> {
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
    pub(super) fn measure(&mut self, pending: Pending) -> Result<(), HistoryError> {
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
            // A seeded network reads no file: it builds, or nothing is measured.
            let Ok(random) = render::untrained_like(
                &loaded.config,
                &loaded.model,
                self.settings.request.layer,
                &self.device.device,
            ) else {
                return Ok(());
            };
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
            origin: None,
        };
        for chunk in todo.chunks(batch) {
            if interrupt.is_cancelled() || self.cancel.is_cancelled() {
                break;
            }
            let samples: Vec<&Sample> = chunk.iter().map(|&i| &self.samples.samples[i]).collect();
            let results: Vec<SampleMaps> = chunk
                .iter()
                .filter_map(|&i| stored[i].sample_maps(&settings.request.methods))
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
            return Ok(());
        }
        if !self.publishes() {
            return Ok(());
        }
        // Under every name of these weights whose file still holds them.
        for row in self.history.checkpoints()? {
            if row.hash == pending.hash && Fingerprint::of(&row.path) == Some(row.fingerprint) {
                self.publish_trust(&row.path, &row.hash)?;
            }
        }
        Ok(())
    }
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
