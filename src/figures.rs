//! The figures camwatch gives per checkpoint, in one table: what each is called, how a
//! sample's value comes from its figures, its unit and scale, and which way is better.
//! The UI's charts, the comparing view and `camwatch report`, `camwatch history`'s
//! table, `camwatch check`'s rules and the TensorBoard export all read it, so they name
//! and compute the same thing the same way.

use crate::cam::metrics::Metric;
use crate::cam::{Method, Sample};
use crate::monitor::CheckpointReport;
use crate::monitor::timeline::SampleFigures;

/// Which way a figure should go as training goes well.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// What the samples (or the run) must have for a figure to exist.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Needs {
    Nothing,
    /// Object boxes in `labels.csv`.
    Boxes,
    /// Labels in `labels.csv`.
    Labels,
    /// This faithfulness metric, measured after the maps (`--metrics`).
    Metric(Metric),
    /// The sanity checks, measured after the maps.
    Sanity,
}

/// A per-sample figure at a checkpoint; a run's value is the mean over its samples that
/// have one.
pub struct Figure {
    /// Its name in files and tags (`box_energy`).
    pub key: &'static str,
    /// Its name for people (`mean box energy`: the run's value).
    pub name: &'static str,
    /// A short name for narrow places (the UI's chart gutter).
    pub short: &'static str,
    /// What a value means: its unit and range.
    pub unit: &'static str,
    /// The top of its scale (the bottom is 0).
    pub max: f32,
    pub better: Better,
    pub needs: Needs,
    /// A sample's value, from its figures, the method and its label (if any).
    pub value: fn(&SampleFigures, Method, Option<usize>) -> Option<f32>,
}

/// Every figure, in the order the UI charts them.
pub static FIGURES: [Figure; 10] = [
    Figure {
        key: "target_prob",
        name: "mean p(target)",
        short: "p(target)",
        unit: "probability of the class the map explains, 0..1",
        max: 1.0,
        better: Better::Higher,
        needs: Needs::Nothing,
        value: |f, _, _| Some(f.target_prob),
    },
    Figure {
        key: "box_energy",
        name: "mean box energy",
        short: "box energy",
        unit: "share of the map inside the object box, 0..1",
        max: 1.0,
        better: Better::Higher,
        needs: Needs::Boxes,
        value: |f, m, _| f.box_energy.as_ref()?.get(m.name()).copied(),
    },
    Figure {
        key: "pointing_hits",
        name: "pointing hits",
        short: "pointing",
        unit: "share of samples whose map's maximum is inside the box, 0..1",
        max: 1.0,
        better: Better::Higher,
        needs: Needs::Boxes,
        value: |f, m, _| {
            Some(f32::from(u8::from(
                *f.pointing_hit.as_ref()?.get(m.name())?,
            )))
        },
    },
    Figure {
        key: "samples_right",
        name: "samples right",
        short: "right",
        unit: "share of labelled samples predicted right, 0..1",
        max: 1.0,
        better: Better::Higher,
        needs: Needs::Labels,
        value: |f, _, label| Some(f32::from(u8::from(f.predicted == label?))),
    },
    Figure {
        key: "drift",
        name: "drift",
        short: "drift",
        // 1 − correlation: 0 (the same map) to 2 (its negative).
        unit: "1 - correlation with the previous checkpoint's map, 0..2",
        max: 2.0,
        better: Better::Lower,
        needs: Needs::Nothing,
        value: |f, m, _| Some(f.drift.as_ref()?.get(m.name())?.one_minus_corr),
    },
    Figure {
        key: "insertion_auc",
        name: "insertion AUC",
        short: "insertion",
        unit: "area under p(target) as the map's pixels are inserted, 0..1",
        max: 1.0,
        better: Better::Higher,
        needs: Needs::Metric(Metric::Insertion),
        value: |f, m, _| f.metrics.as_ref()?.get(m.name())?.insertion_auc,
    },
    Figure {
        key: "deletion_auc",
        name: "deletion AUC",
        short: "deletion",
        unit: "area under p(target) as the map's pixels are deleted, 0..1",
        max: 1.0,
        better: Better::Lower,
        needs: Needs::Metric(Metric::Deletion),
        value: |f, m, _| f.metrics.as_ref()?.get(m.name())?.deletion_auc,
    },
    Figure {
        key: "road_combined",
        name: "ROAD combined",
        short: "ROAD",
        unit: "ROAD's least- minus most-relevant-first score change, -1..1",
        max: 1.0,
        better: Better::Higher,
        needs: Needs::Metric(Metric::Road),
        value: |f, m, _| f.metrics.as_ref()?.get(m.name())?.road_combined,
    },
    Figure {
        key: "confidence_change",
        name: "confidence change",
        short: "conf.",
        unit: "p(target) of the image times its map minus of the image, -1..1",
        max: 1.0,
        better: Better::Higher,
        needs: Needs::Metric(Metric::Confidence),
        value: |f, m, _| f.metrics.as_ref()?.get(m.name())?.confidence_change,
    },
    Figure {
        key: "sanity_flags",
        name: "sanity flags",
        short: "flags",
        unit: "1 when a sanity check flags the map (ignores the class, like an untrained network's), 0..1",
        max: 1.0,
        better: Better::Lower,
        needs: Needs::Sanity,
        value: |f, m, _| {
            let flags = f.sanity.as_ref()?.get(m.name())?.flags();
            Some(f32::from(u8::from(!flags.is_empty())))
        },
    },
];

/// The figures runs are compared by (the comparing view, `camwatch report`), in order.
pub const COMPARED: [&Figure; 4] = [
    by_key("box_energy"),
    by_key("pointing_hits"),
    by_key("samples_right"),
    by_key("target_prob"),
];

/// The figures the UI charts under the timeline, in order.
pub const CHARTED: [&Figure; 7] = [
    by_key("target_prob"),
    by_key("box_energy"),
    by_key("pointing_hits"),
    by_key("samples_right"),
    by_key("drift"),
    by_key("insertion_auc"),
    by_key("deletion_auc"),
];

/// The figure named `key` (at compile time: a wrong key does not build).
pub const fn by_key(key: &str) -> &'static Figure {
    let mut i = 0;
    while i < FIGURES.len() {
        if same(FIGURES[i].key, key) {
            return &FIGURES[i];
        }
        i += 1;
    }
    panic!("no figure of that key")
}

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

impl Figure {
    /// The mean over `checkpoint`'s samples that have the figure, each with its label
    /// from `samples` (the set, in its order).
    pub fn at(
        &self,
        checkpoint: &CheckpointReport,
        method: Method,
        samples: &[Sample],
    ) -> Option<f32> {
        self.mean(checkpoint, method, |i, name| {
            // The samples come in the set's order: look further only if not.
            samples
                .get(i)
                .filter(|s| s.name == name)
                .or_else(|| samples.iter().find(|s| s.name == name))
                .and_then(|s| s.label)
        })
    }

    /// [`Figure::at`], with each sample's label found by `label(index, name)`.
    pub fn mean(
        &self,
        checkpoint: &CheckpointReport,
        method: Method,
        label: impl Fn(usize, &str) -> Option<usize>,
    ) -> Option<f32> {
        let values: Vec<f32> = checkpoint
            .samples
            .iter()
            .enumerate()
            .filter_map(|(i, f)| (self.value)(f, method, label(i, &f.name)))
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f32>() / values.len() as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_the_subsets_come_from_the_table() {
        for (i, a) in FIGURES.iter().enumerate() {
            assert!(FIGURES[i + 1..].iter().all(|b| b.key != a.key), "{}", a.key);
        }
        assert_eq!(by_key("drift").name, "drift");
        assert!(
            CHARTED
                .iter()
                .chain(&COMPARED)
                .all(|f| { FIGURES.iter().any(|g| std::ptr::eq(*f, g)) })
        );
    }
}
