//! A checkpoint loaded (checked to be the content the scanner hashed) and the maps the
//! history lacks computed, on the worker's device.

use std::fmt;
use std::path::Path;

use super::{Computed, Failure, Missing, Parsed, Worker, content_hash};
use crate::cam::{CamError, Method, Sample};
use crate::checkpoint::{self, LoadError};
use crate::device::SelectedDevice;
use crate::loader::{self, LoadedModel};
use crate::model::Arch;
use crate::monitor::history::{Prediction, StoredMap, StoredSample};
use crate::monitor::timeline;
use crate::render::{self, ArchSummary, CamSettings, RenderError};

impl Worker {
    /// The network in the settings' precision.
    fn cast(&self, mut loaded: LoadedModel) -> LoadedModel {
        let (precision, layer) = (self.settings.precision, self.settings.request.layer);
        loaded.model = crate::precision::cast(loaded.model, precision, layer);
        loaded
    }

    /// Loads the checkpoint in the settings' precision; `None` when the file no longer
    /// holds the content the scanner hashed (or cannot be opened as it was queued).
    pub(super) fn load(
        &self,
        path: &Path,
        hash: &str,
        device: &SelectedDevice,
    ) -> Result<Option<LoadedModel>, Failure> {
        let loaded = checkpoint::with_file(path, |data| {
            if content_hash(data) != hash {
                return Ok(None);
            }
            loader::from_bytes(path, data, &device.device, &self.hints)
                .map(|loaded| Some(self.cast(loaded)))
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

    /// Builds the network from the checkpoint's tensors when they are at hand, else
    /// loads it (checking it is still the content of `hash`), and computes the missing
    /// maps.
    pub(super) fn compute(
        &self,
        path: &Path,
        hash: &str,
        parsed: Option<Parsed>,
        missing: &Missing,
        device: &SelectedDevice,
    ) -> Result<Computed, Failure> {
        let loaded = match parsed {
            Some(parsed) => {
                let (format, weights) = parsed.map_err(Failure::Content)?;
                let loaded =
                    loader::from_weights(path, format, weights, &device.device, &self.hints)
                        .map_err(|e| Failure::Content(e.to_string()))?;
                self.cast(loaded)
            }
            None => match self.load(path, hash, device)? {
                Some(loaded) => loaded,
                None => return Ok(Computed::Changed),
            },
        };
        let architecture = Architecture::of(&loaded.config);
        if let Some(run) = self
            .architecture
            .as_ref()
            .filter(|run| **run != architecture)
        {
            return Err(Failure::Content(format!(
                "{}: {architecture}, but this run's checkpoints are {run}: the network \
                 changed mid-run, and its maps are not mixed with theirs (watch it as a \
                 run of its own)",
                path.display()
            )));
        }
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

/// What makes a run's maps comparable from one checkpoint to the next: the network and
/// its classes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Architecture {
    name: String,
    variant: String,
    classes: u64,
}

impl Architecture {
    pub fn of(config: &Arch) -> Self {
        Architecture {
            name: config.name(),
            variant: config.variant().to_string(),
            classes: config.classes() as u64,
        }
    }

    /// From the `ArchSummary` JSON a history stores (any version of it).
    pub fn from_json(json: &str) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_str(json).ok()?;
        Some(Architecture {
            name: value["name"].as_str()?.to_string(),
            variant: value["variant"].as_str()?.to_string(),
            classes: value["classes"].as_u64()?,
        })
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {} classes)",
            self.name, self.variant, self.classes
        )
    }
}
