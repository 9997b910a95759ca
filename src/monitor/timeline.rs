//! The history as a person reads it: one entry per distinct checkpoint content, in
//! training order, and per sample across entries the figures that say where the network
//! looks: target probability, predicted class and its changes, box energy, pointing hit,
//! and how far attention moved since the previous entry.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::CheckpointReport;
use super::history::{CheckpointRow, Status, StoredMap, StoredSample};
use crate::cam::image_ops;
use crate::cam::metrics::Faithfulness;
use crate::cam::trust::Sanity;
use crate::cam::{Map, Method, Sample, measures};
use crate::render;

/// One checkpoint content, under every name it was seen with.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub hash: String,
    /// The name that gives the epoch, else the most recent name.
    pub path: PathBuf,
    pub paths: Vec<PathBuf>,
    pub epoch: Option<u64>,
    /// When the content was first written (the earliest mtime of its names).
    pub mtime_ns: i64,
    pub status: Status,
    pub error: Option<String>,
    pub format: Option<String>,
    pub arch: Option<String>,
    /// The published object its results were taken from ([`CheckpointRow::origin`]).
    pub origin: Option<String>,
}

/// Groups rows by content and puts them in training order: by the epoch in the name;
/// a content whose names give no epoch (`latest`, `last`, `best`) goes after the
/// numbered checkpoints written before it, by time.
pub fn order(rows: &[CheckpointRow]) -> Vec<Entry> {
    let mut by_hash: BTreeMap<&str, Vec<&CheckpointRow>> = BTreeMap::new();
    for row in rows {
        by_hash.entry(&row.hash).or_default().push(row);
    }
    let mut entries: Vec<Entry> = by_hash
        .into_values()
        .map(|rows| {
            let last = rows[rows.len() - 1];
            let numbered = rows
                .iter()
                .filter(|r| r.epoch.is_some())
                .min_by_key(|r| r.epoch);
            let primary = numbered.copied().unwrap_or(last);
            Entry {
                hash: last.hash.clone(),
                path: primary.path.clone(),
                paths: rows.iter().map(|r| r.path.clone()).collect(),
                epoch: primary.epoch,
                mtime_ns: rows
                    .iter()
                    .map(|r| r.fingerprint.mtime_ns)
                    .min()
                    .unwrap_or(0),
                status: last.status,
                error: last.error.clone(),
                format: last.format.clone(),
                arch: last.arch.clone(),
                origin: rows.iter().rev().find_map(|r| r.origin.clone()),
            }
        })
        .collect();
    sort_in_training_order(&mut entries, |e| (e.epoch, e.mtime_ns, e.path.as_path()));
    entries
}

/// Sorts by the epoch in the name; an item without one (`latest`, `last`, `best`) goes
/// after the numbered items written before it, by time. `key` gives epoch, mtime and
/// path (the last tie-break).
pub fn sort_in_training_order<T>(
    items: &mut [T],
    key: impl Fn(&T) -> (Option<u64>, i64, &std::path::Path),
) {
    let numbered: Vec<(u64, i64)> = items
        .iter()
        .filter_map(|item| {
            let (epoch, mtime, _) = key(item);
            Some((epoch?, mtime))
        })
        .collect();
    let order = |item: &T| {
        let (epoch, mtime, path) = key(item);
        let place = match epoch {
            Some(epoch) => (Some(epoch), 0),
            None => {
                let after = numbered
                    .iter()
                    .filter(|(_, t)| *t <= mtime)
                    .map(|(n, _)| *n)
                    .max();
                (after, 1)
            }
        };
        (place, mtime, path.to_path_buf())
    };
    items.sort_by_cached_key(order);
}

/// How far a sample's attention moved between two consecutive checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Drift {
    /// 1 − Pearson correlation of the two maps (0: same pattern, 2: inverted).
    pub one_minus_corr: f32,
    /// Intersection over union of the two maps' top-20% regions.
    pub top20_iou: f32,
}

/// Maps are compared on this grid, whatever their resolution, as they are shown:
/// min–max scaled and resized bilinearly.
const DRIFT_GRID: usize = 56;
const TOP_SHARE: f32 = 0.2;

pub fn drift(previous: &Map, current: &Map) -> Drift {
    let grid = |m: &Map| {
        image_ops::resize_bilinear(
            &image_ops::min_max(&m.values),
            (m.height, m.width),
            (DRIFT_GRID, DRIFT_GRID),
        )
    };
    let (a, b) = (grid(previous), grid(current));
    Drift {
        one_minus_corr: 1.0 - measures::pearson(&a, &b),
        top20_iou: measures::top_region_iou(&a, &b, TOP_SHARE),
    }
}

/// The box as stored beside its figures, `x0,y0,x1,y1`.
pub fn box_key(sample: &Sample) -> Option<String> {
    sample
        .bbox
        .map(|b| format!("{},{},{},{}", b[0], b[1], b[2], b[3]))
}

/// Box energy and pointing hit of `map` shown over `sample`, with the box they refer to.
pub fn measure_on_object(map: &Map, sample: &Sample) -> Option<(String, f32, bool)> {
    let key = box_key(sample)?;
    let shown = render::display_map(map, sample.image.dimensions());
    let (energy, hit) = render::on_object(&shown, sample)?;
    Some((key, energy, hit))
}

/// The size of a stored map.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MapShape {
    pub height: usize,
    pub width: usize,
}

/// One sample at one checkpoint: the figures of `summary.json` plus their change since
/// the previous checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SampleFigures {
    pub name: String,
    #[serde(serialize_with = "crate::paths::serialize")]
    pub file: PathBuf,
    pub logits: Vec<f32>,
    pub probs: Vec<f32>,
    pub predicted: usize,
    /// The class the maps explain.
    pub target: usize,
    /// The probability of that class.
    pub target_prob: f32,
    /// Whether the predicted class differs from the previous checkpoint's (absent for
    /// the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted_changed: Option<bool>,
    pub maps: BTreeMap<String, MapShape>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub box_energy: Option<BTreeMap<String, f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointing_hit: Option<BTreeMap<String, bool>>,
    /// Per method, since the previous checkpoint; null for the first.
    pub drift: Option<BTreeMap<String, Drift>>,
    /// Per method, the faithfulness figures, once measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<BTreeMap<String, Faithfulness>>,
    /// Per method, the sanity correlations, once measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sanity: Option<BTreeMap<String, Sanity>>,
}

/// Something notable at a checkpoint, for one sample: what the UI marks on its
/// timeline and `n` jumps to.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub sample: String,
    pub kind: EventKind,
    /// The method whose map it concerns (none for a prediction flip).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// In words, with the figures: `box energy 0.62 → 0.31`.
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Attention left the object: the pointing game lost, or box energy fell by
    /// [`LEFT_OBJECT_DROP`] or more.
    LeftObject,
    /// The map changed sharply: correlation with the previous map at most
    /// 1 − [`DRIFT_SPIKE`].
    DriftSpike,
    /// The predicted class changed.
    PredictionFlip,
    /// A sanity check flags the map (see `cam::trust`).
    SanityFlag,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::LeftObject => "left the object",
            EventKind::DriftSpike => "drift spike",
            EventKind::PredictionFlip => "prediction flip",
            EventKind::SanityFlag => "sanity flag",
        }
    }
}

pub const LEFT_OBJECT_DROP: f32 = 0.2;
pub const DRIFT_SPIKE: f32 = 1.0;

/// The events of one sample at a checkpoint, from its figures and the previous
/// checkpoint's stored results.
fn events_of(figures: &SampleFigures, before: Option<&StoredSample>, out: &mut Vec<Event>) {
    let mut push = |kind, method: Option<&str>, detail: String| {
        out.push(Event {
            sample: figures.name.clone(),
            kind,
            method: method.map(str::to_string),
            detail,
        })
    };
    if figures.predicted_changed == Some(true)
        && let Some(old) = before.and_then(|b| b.prediction.as_ref())
    {
        push(
            EventKind::PredictionFlip,
            None,
            format!("class {} → {}", old.predicted, figures.predicted),
        );
    }
    for (name, &energy) in figures.box_energy.iter().flatten() {
        let hit = figures.pointing_hit.as_ref().and_then(|h| h.get(name));
        let method = name.parse::<Method>().ok();
        let old = method
            .and_then(|m| find(before?, m))
            .and_then(|m| m.on_object.as_ref());
        if let (Some((_, old_energy, old_hit)), Some(&hit)) = (old, hit)
            && ((*old_hit && !hit) || old_energy - energy >= LEFT_OBJECT_DROP)
        {
            push(
                EventKind::LeftObject,
                Some(name),
                format!("box energy {old_energy:.2} → {energy:.2}"),
            );
        }
    }
    for (name, drift) in figures.drift.iter().flatten() {
        if drift.one_minus_corr >= DRIFT_SPIKE {
            push(
                EventKind::DriftSpike,
                Some(name),
                format!(
                    "correlation {:.2} with the previous map",
                    1.0 - drift.one_minus_corr
                ),
            );
        }
    }
    for (name, sanity) in figures.sanity.iter().flatten() {
        let flags = sanity.flags();
        if !flags.is_empty() {
            push(EventKind::SanityFlag, Some(name), flags.join(", "));
        }
    }
}

/// The figures of every sample with a stored prediction, in `methods`' order, and their
/// events. `previous` holds the previous checkpoint's results for the same samples, when
/// there is one.
fn figures(
    samples: &[&Sample],
    current: &[StoredSample],
    previous: Option<&[StoredSample]>,
    methods: &[Method],
) -> (Vec<SampleFigures>, Vec<Event>) {
    let mut out = Vec::with_capacity(samples.len());
    let mut events = Vec::new();
    for (i, (sample, stored)) in samples.iter().zip(current).enumerate() {
        let Some(prediction) = &stored.prediction else {
            continue;
        };
        let before = previous.and_then(|p| p.get(i));
        let shown: Vec<&StoredMap> = methods.iter().filter_map(|&m| find(stored, m)).collect();
        let target = shown.first().map_or(prediction.predicted, |m| m.class);
        let mut maps = BTreeMap::new();
        let mut energy = BTreeMap::new();
        let mut hits = BTreeMap::new();
        let mut drifts = BTreeMap::new();
        for m in &shown {
            let name = m.method.name().to_string();
            maps.insert(
                name.clone(),
                MapShape {
                    height: m.map.height,
                    width: m.map.width,
                },
            );
            // Figures measured against another box (labels.csv changed) are measured again.
            let on_object = match (&m.on_object, box_key(sample)) {
                (Some((stored_box, e, h)), Some(current_box)) if *stored_box == current_box => {
                    Some((*e, *h))
                }
                _ => measure_on_object(&m.map, sample).map(|(_, e, h)| (e, h)),
            };
            if let Some((e, h)) = on_object {
                energy.insert(name.clone(), e);
                hits.insert(name.clone(), h);
            }
            if let Some(old) = before.and_then(|b| find(b, m.method)) {
                drifts.insert(name, drift(&old.map, &m.map));
            }
        }
        let has_box = sample.bbox.is_some();
        let previous_prediction = before.and_then(|b| b.prediction.as_ref());
        out.push(SampleFigures {
            name: sample.name.clone(),
            file: sample.file.clone(),
            logits: prediction.logits.clone(),
            probs: prediction.probs.clone(),
            predicted: prediction.predicted,
            target,
            target_prob: prediction.probs.get(target).copied().unwrap_or(f32::NAN),
            predicted_changed: previous_prediction.map(|p| p.predicted != prediction.predicted),
            maps,
            box_energy: has_box.then_some(energy),
            pointing_hit: has_box.then_some(hits),
            drift: previous_prediction.map(|_| drifts),
            metrics: render::by_name(&only(&stored.trust.metrics, methods)),
            sanity: render::by_name(&only(&stored.trust.sanity, methods)),
        });
        if let Some(figures) = out.last() {
            events_of(figures, before, &mut events);
        }
    }
    (out, events)
}

/// The figures of results just computed, with no checkpoint before them (what `camwatch
/// check` judges): as the history would report them.
pub fn sample_figures(
    samples: &[&Sample],
    results: &[StoredSample],
    methods: &[Method],
) -> Vec<SampleFigures> {
    figures(samples, results, None, methods).0
}

/// Share of a checkpoint's samples (with boxes) whose map must point inside the box for
/// attention to count as on the object.
pub const ON_OBJECT_SHARE: f32 = 0.75;

/// The first epoch from which attention stays on the object: `method`'s pointing-game
/// hits are at least [`ON_OBJECT_SHARE`] of the samples with boxes at that checkpoint and
/// at every later one (checkpoints in training order; unreadable ones and checkpoints
/// without box figures do not count). `None` if the run never gets there, or has no
/// epoch numbers to name it.
pub fn first_on_object(checkpoints: &[CheckpointReport], method: Method) -> Option<u64> {
    let mut first = None;
    for c in checkpoints.iter().filter(|c| c.status == Status::Ok) {
        let hits: Vec<bool> = c
            .samples
            .iter()
            .filter_map(|s| s.pointing_hit.as_ref()?.get(method.name()).copied())
            .collect();
        if hits.is_empty() {
            continue;
        }
        let share = hits.iter().filter(|&&h| h).count() as f32 / hits.len() as f32;
        if share >= ON_OBJECT_SHARE {
            first = first.or(Some(c.epoch));
        } else {
            first = None;
        }
    }
    first.flatten()
}

/// Entries reported one after another in training order, each sample's figures
/// measured against the last entry before it that has maps.
pub struct Walk<'a> {
    samples: Vec<&'a Sample>,
    methods: &'a [Method],
    previous: Option<Vec<StoredSample>>,
}

impl<'a> Walk<'a> {
    pub fn new(samples: &'a [Sample], methods: &'a [Method]) -> Self {
        Walk {
            samples: samples.iter().collect(),
            methods,
            previous: None,
        }
    }

    /// Continues after an entry whose results are `previous` (`None`: there is none).
    pub fn after(mut self, previous: Option<Vec<StoredSample>>) -> Self {
        self.previous = previous;
        self
    }

    pub fn report(&mut self, entry: &Entry, stored: Vec<StoredSample>) -> CheckpointReport {
        let report = report_after(
            &self.samples,
            self.methods,
            entry,
            &stored,
            self.previous.as_deref(),
        );
        if entry.status == Status::Ok {
            self.previous = Some(stored);
        }
        report
    }
}

/// An entry's report from its results and those of the last entry before it that has
/// maps (`previous`): what [`Walk`] does at each step.
pub fn report_after(
    samples: &[&Sample],
    methods: &[Method],
    entry: &Entry,
    stored: &[StoredSample],
    previous: Option<&[StoredSample]>,
) -> CheckpointReport {
    let (figures, events) = figures(samples, stored, previous, methods);
    let mut report = CheckpointReport::new(entry, figures);
    report.events = events;
    report
}

/// The figures of `methods` only.
fn only<T: Copy>(figures: &BTreeMap<Method, T>, methods: &[Method]) -> BTreeMap<Method, T> {
    figures
        .iter()
        .filter(|(m, _)| methods.contains(m))
        .map(|(m, v)| (*m, *v))
        .collect()
}

fn find(stored: &StoredSample, method: Method) -> Option<&StoredMap> {
    stored.maps.iter().find(|m| m.method == method)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::scan::Fingerprint;

    fn row(path: &str, hash: &str, epoch: Option<u64>, mtime_ns: i64) -> CheckpointRow {
        CheckpointRow {
            path: PathBuf::from(path),
            hash: hash.into(),
            fingerprint: Fingerprint { size: 1, mtime_ns },
            epoch,
            status: Status::Ok,
            error: None,
            format: None,
            arch: None,
            origin: None,
        }
    }

    #[test]
    fn training_order() {
        // PaddleClas: epoch_N and latest (same content) each epoch, best_model now and then;
        // files recorded out of order (the newest first, as the worker takes them).
        let rows = [
            row("epoch_2.pdparams", "b", Some(2), 20),
            row("latest.pdparams", "b", None, 21),
            row("epoch_10.pdparams", "j", Some(10), 100),
            row("epoch_1.pdparams", "a", Some(1), 10),
            row("best_model.pdparams", "x", None, 15),
            row("latest.pdparams", "a", None, 11),
        ];
        let entries = order(&rows);
        let names: Vec<(&str, Option<u64>)> = entries
            .iter()
            .map(|e| (e.path.to_str().unwrap(), e.epoch))
            .collect();
        assert_eq!(
            names,
            [
                ("epoch_1.pdparams", Some(1)),
                ("best_model.pdparams", None),
                ("epoch_2.pdparams", Some(2)),
                ("epoch_10.pdparams", Some(10)),
            ]
        );
        assert_eq!(entries[2].paths.len(), 2);
        assert_eq!(entries[2].mtime_ns, 20);
        // timm: only last.pth.tar, rewritten each epoch: by time.
        let rows = [
            row("last.pth.tar", "2", None, 2),
            row("last.pth.tar", "1", None, 1),
        ];
        let hashes: Vec<String> = order(&rows).into_iter().map(|e| e.hash).collect();
        assert_eq!(hashes, ["1", "2"]);
    }

    #[test]
    fn events_say_what_changed() {
        use crate::cam::trust::Sanity;
        use crate::monitor::history::Prediction;
        let before = StoredSample {
            prediction: Some(Prediction {
                logits: vec![0.0, 1.0],
                probs: vec![0.3, 0.7],
                predicted: 1,
            }),
            maps: vec![StoredMap {
                method: Method::GradCam,
                class: 1,
                map: Map {
                    height: 1,
                    width: 1,
                    values: vec![1.0],
                },
                on_object: Some(("0,0,1,1".into(), 0.7, true)),
            }],
            trust: Default::default(),
        };
        fn gradcam<T>(v: T) -> BTreeMap<String, T> {
            BTreeMap::from([("gradcam".to_string(), v)])
        }
        let now = SampleFigures {
            name: "a".into(),
            file: PathBuf::new(),
            logits: vec![1.0, 0.0],
            probs: vec![0.7, 0.3],
            predicted: 0,
            target: 0,
            target_prob: 0.7,
            predicted_changed: Some(true),
            maps: BTreeMap::new(),
            box_energy: Some(gradcam(0.6)),
            pointing_hit: Some(gradcam(false)),
            drift: Some(gradcam(Drift {
                one_minus_corr: 1.2,
                top20_iou: 0.0,
            })),
            metrics: None,
            sanity: Some(gradcam(Sanity {
                class_corr: Some(0.95),
                random_corr: Some(0.1),
            })),
        };
        let mut events = Vec::new();
        events_of(&now, Some(&before), &mut events);
        let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                EventKind::PredictionFlip,
                EventKind::LeftObject,
                EventKind::DriftSpike,
                EventKind::SanityFlag
            ]
        );
        assert_eq!(events[0].detail, "class 1 → 0");
        assert_eq!(events[1].detail, "box energy 0.70 → 0.60");
        assert_eq!(events[3].detail, "ignores the class");
        // Steady attention, the same prediction, sane maps: nothing to say.
        let calm = SampleFigures {
            predicted_changed: Some(false),
            pointing_hit: Some(gradcam(true)),
            drift: Some(gradcam(Drift {
                one_minus_corr: 0.1,
                top20_iou: 0.9,
            })),
            sanity: None,
            ..now
        };
        let mut events = Vec::new();
        events_of(&calm, Some(&before), &mut events);
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn attention_is_on_the_object_from_when_it_stays_there() {
        let checkpoint = |epoch: u64, hits: &[bool]| {
            let entry = order(&[row("e", &epoch.to_string(), Some(epoch), epoch as i64)]).remove(0);
            let samples = hits
                .iter()
                .map(|&h| SampleFigures {
                    name: String::new(),
                    file: PathBuf::new(),
                    logits: vec![],
                    probs: vec![],
                    predicted: 0,
                    target: 0,
                    target_prob: 0.0,
                    predicted_changed: None,
                    maps: BTreeMap::new(),
                    box_energy: None,
                    pointing_hit: Some(BTreeMap::from([("gradcam".to_string(), h)])),
                    drift: None,
                    metrics: None,
                    sanity: None,
                })
                .collect();
            CheckpointReport::new(&entry, samples)
        };
        let (on, off) = ([true, true, true, false], [true, false, true, false]);
        let run = [
            checkpoint(1, &on),
            checkpoint(2, &off),
            checkpoint(3, &on),
            checkpoint(5, &[true; 4]),
        ];
        assert_eq!(first_on_object(&run, Method::GradCam), Some(3));
        assert_eq!(first_on_object(&run[..2], Method::GradCam), None);
        assert_eq!(first_on_object(&run, Method::EigenCam), None);
    }

    #[test]
    fn drift_of_moving_attention() {
        let map = |peak: usize| Map {
            height: 4,
            width: 4,
            values: (0..16).map(|i| if i == peak { 1.0 } else { 0.0 }).collect(),
        };
        let same = drift(&map(5), &map(5));
        assert!(same.one_minus_corr.abs() < 1e-5);
        assert_eq!(same.top20_iou, 1.0);
        let moved = drift(&map(0), &map(15));
        assert!(moved.one_minus_corr > 1.0, "{moved:?}");
        assert_eq!(moved.top20_iou, 0.0);
    }
}
