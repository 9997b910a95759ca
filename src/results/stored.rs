//! What camwatch stores of a checkpoint's results, wherever they are kept: in a run's
//! history ([`crate::monitor::history`]) and in the objects published beside the run.

use std::path::PathBuf;

use crate::cam::metrics::Metric;
use crate::cam::trust::Sanity;
use crate::cam::{Map, Method, SampleMaps};
use crate::render::SampleTrust;
use crate::scan::Fingerprint;

/// Whether a checkpoint gave maps; `"ok"` and `"error"` in JSON and in the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One file at one content.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointRow {
    /// As seen by the watcher (the watched folder joined with the stored relative path).
    pub path: PathBuf,
    pub hash: String,
    pub fingerprint: Fingerprint,
    pub epoch: Option<u64>,
    pub status: Status,
    pub error: Option<String>,
    pub format: Option<String>,
    /// `ArchSummary` as JSON.
    pub arch: Option<String>,
    /// The published object its results were taken from; `None`: computed here.
    pub origin: Option<String>,
}

/// What a sample's maps depend on besides the weights: the preprocessing
/// (`imagenet@224`), the layer and the target mode; and the steps of deletion and
/// insertion, which their figures depend on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Setting {
    pub prep: String,
    pub layer: String,
    pub target: String,
    pub steps: usize,
}

/// A sample's results under one setting.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoredSample {
    pub prediction: Option<Prediction>,
    pub maps: Vec<StoredMap>,
    /// Its maps' trust figures, as far as they were computed.
    pub trust: SampleTrust,
}

impl StoredSample {
    /// The prediction and the maps of `methods` (those stored), as the engine gave them;
    /// `None` without a prediction.
    pub fn sample_maps(&self, methods: &[Method]) -> Option<SampleMaps> {
        let prediction = self.prediction.as_ref()?;
        let maps = methods
            .iter()
            .filter_map(|&m| Some((m, self.maps.iter().find(|s| s.method == m)?.map.clone())))
            .collect();
        Some(SampleMaps {
            logits: prediction.logits.clone(),
            probs: prediction.probs.clone(),
            predicted: prediction.predicted,
            target: self.maps.first().map_or(prediction.predicted, |m| m.class),
            maps,
            signed: Vec::new(),
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    pub logits: Vec<f32>,
    pub probs: Vec<f32>,
    pub predicted: usize,
}

impl Prediction {
    /// One logit and one probability per class, and a predicted class among them.
    pub fn is_whole(&self) -> bool {
        !self.probs.is_empty()
            && self.logits.len() == self.probs.len()
            && self.predicted < self.probs.len()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct StoredMap {
    pub method: Method,
    /// The class the map explains.
    pub class: usize,
    pub map: Map,
    /// The box the figures were measured against (`x0,y0,x1,y1`), and the figures.
    pub on_object: Option<(String, f32, bool)>,
}

/// The trust table's rows of one sample: (method, figure, steps, value).
pub fn trust_rows(trust: &SampleTrust, steps: usize) -> Vec<(Method, &'static str, usize, f32)> {
    let mut rows = Vec::new();
    for (&method, f) in &trust.metrics {
        for metric in Metric::ALL {
            let steps = match metric {
                Metric::Deletion | Metric::Insertion => steps,
                _ => 0,
            };
            // SQLite has no NaN: a figure that is not a number is not stored.
            if let Some(v) = f.get(metric).filter(|v| v.is_finite()) {
                rows.push((method, metric.key(), steps, v));
            }
        }
    }
    for (&method, s) in &trust.sanity {
        for (figure, value) in [("class_corr", s.class_corr), ("random_corr", s.random_corr)] {
            if let Some(v) = value.filter(|v| v.is_finite()) {
                rows.push((method, figure, 0, v));
            }
        }
    }
    rows
}

/// Puts a stored figure back in its place; figures this camwatch does not know are
/// left in the file, unread.
pub fn set_figure(trust: &mut SampleTrust, method: Method, figure: &str, value: f32) {
    fn sanity(trust: &mut SampleTrust, method: Method) -> &mut Sanity {
        trust.sanity.entry(method).or_default()
    }
    match figure {
        "class_corr" => sanity(trust, method).class_corr = Some(value),
        "random_corr" => sanity(trust, method).random_corr = Some(value),
        _ => {
            if let Some(metric) = Metric::from_key(figure) {
                trust.metrics.entry(method).or_default().set(metric, value);
            }
        }
    }
}
