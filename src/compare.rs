//! Runs side by side, aligned by epoch: the figures compared per run, the epochs of
//! several runs on one axis, and the signed difference of two runs' maps. What both the
//! comparing UI and `camwatch report` read, so they show the same numbers.

use std::path::Path;

use image::{Rgb, RgbImage};

use crate::cam::Map;
use crate::monitor::CheckpointReport;
use crate::monitor::history::Status;
use crate::render;

/// One run, as its history holds it.
pub struct Run {
    /// How the figures name it (see [`run_names`]).
    pub name: String,
    pub first_on_object: Option<u64>,
    pub checkpoints: Vec<CheckpointReport>,
}

/// The figures runs are compared by, in order (from the one table of figures).
pub use crate::figures::COMPARED as FIGURES;

/// The checkpoints with maps and an epoch number (only those can be aligned), each with
/// its epoch, in training order.
pub fn epochs(checkpoints: &[CheckpointReport]) -> Vec<(u64, &CheckpointReport)> {
    checkpoints
        .iter()
        .filter(|c| c.status == Status::Ok)
        .filter_map(|c| Some((c.epoch?, c)))
        .collect()
}

/// A run's checkpoint of `epoch`, if it has maps (the last one, if the same epoch was
/// written twice).
pub fn at_epoch(checkpoints: &[CheckpointReport], epoch: u64) -> Option<&CheckpointReport> {
    checkpoints
        .iter()
        .rev()
        .find(|c| c.status == Status::Ok && c.epoch == Some(epoch))
}

/// Every epoch some run has, in order: runs are aligned by epoch number, not by time
/// or position (a run with gaps, or shorter, simply has no checkpoint at some of them).
pub fn axis<'a>(runs: impl IntoIterator<Item = &'a [CheckpointReport]>) -> Vec<u64> {
    let mut all: Vec<u64> = runs
        .into_iter()
        .flat_map(|r| epochs(r).into_iter().map(|(e, _)| e))
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// How figures name runs: each folder's name (its parent's when it is only
/// `checkpoints`), with more of the path where two would read the same.
pub fn run_names(dirs: &[&Path]) -> Vec<String> {
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let short = |dir: &Path| match name(dir).as_deref() {
        Some("checkpoints") | None => dir
            .parent()
            .and_then(name)
            .unwrap_or_else(|| dir.display().to_string()),
        Some(n) => n.to_string(),
    };
    let names: Vec<String> = dirs.iter().map(|d| short(d)).collect();
    names
        .iter()
        .zip(dirs)
        .map(|(n, dir)| {
            if names.iter().filter(|m| *m == n).count() > 1 {
                dir.display().to_string()
            } else {
                n.clone()
            }
        })
        .collect()
}

/// The colours runs are drawn in, the same in the report and the UI (matplotlib's
/// first eight).
pub const PALETTE: [[u8; 3]; 8] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
];

/// The signed difference `b − a` of two maps as they are shown (each min–max scaled and
/// resized to `size`, see [`render::display_map`]): in [−1, 1], positive where `b`
/// looks more.
pub fn signed_difference(a: &Map, b: &Map, size: (u32, u32)) -> Vec<f32> {
    let (a, b) = (render::display_map(a, size), render::display_map(b, size));
    a.iter().zip(&b).map(|(a, b)| b - a).collect()
}

/// A signed difference drawn blue (−1: only `a` looks there) through white (0) to red
/// (+1: only `b`).
pub fn difference_image(difference: &[f32], (width, height): (u32, u32)) -> RgbImage {
    let mut out = RgbImage::new(width, height);
    for (pixel, d) in out.pixels_mut().zip(difference) {
        let d = d.clamp(-1.0, 1.0);
        let fade = |c: u8| (255.0 * (1.0 - d.abs()) + f32::from(c) * d.abs()) as u8;
        let [r, g, b] = if d >= 0.0 { PALETTE[3] } else { PALETTE[0] };
        *pixel = Rgb([fade(r), fade(g), fade(b)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cam::{Method, Sample};
    use crate::monitor::timeline::{MapShape, SampleFigures};
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    fn checkpoint(epoch: Option<u64>, status: Status, hits: &[bool]) -> CheckpointReport {
        CheckpointReport {
            path: PathBuf::from(format!("run/e{epoch:?}.pdparams")),
            paths: vec![],
            epoch,
            status,
            error: None,
            hash: format!("h{epoch:?}"),
            time: String::new(),
            format: None,
            arch: None,
            published: None,
            samples: hits
                .iter()
                .enumerate()
                .map(|(i, hit)| SampleFigures {
                    name: format!("s{i}"),
                    file: PathBuf::new(),
                    logits: vec![],
                    probs: vec![0.5, 0.5],
                    predicted: 0,
                    target: 0,
                    target_prob: 0.5,
                    predicted_changed: None,
                    maps: BTreeMap::from([(
                        "gradcam".into(),
                        MapShape {
                            height: 2,
                            width: 2,
                        },
                    )]),
                    box_energy: Some(BTreeMap::from([(
                        "gradcam".into(),
                        if *hit { 0.8 } else { 0.2 },
                    )])),
                    pointing_hit: Some(BTreeMap::from([("gradcam".into(), *hit)])),
                    drift: None,
                    metrics: None,
                    sanity: None,
                })
                .collect(),
            events: vec![],
            mtime_ns: 0,
        }
    }

    #[test]
    fn runs_are_aligned_by_epoch_with_gaps_and_different_lengths() {
        let ok = |e| checkpoint(Some(e), Status::Ok, &[true]);
        // a: 1 2 3 5 (4 missing), an unreadable 6; b: 2 4 6 8 10, and one without an epoch.
        let a = vec![
            ok(1),
            ok(2),
            ok(3),
            ok(5),
            checkpoint(Some(6), Status::Error, &[]),
        ];
        let b = vec![
            ok(2),
            ok(4),
            ok(6),
            ok(8),
            ok(10),
            checkpoint(None, Status::Ok, &[true]),
        ];
        let axis = axis([a.as_slice(), b.as_slice()]);
        assert_eq!(axis, [1, 2, 3, 4, 5, 6, 8, 10]);
        let row = |run: &[CheckpointReport]| -> Vec<Option<u64>> {
            axis.iter()
                .map(|&e| at_epoch(run, e).and_then(|c| c.epoch))
                .collect()
        };
        let n = None;
        assert_eq!(
            row(&a),
            [Some(1), Some(2), Some(3), n, Some(5), n, n, n],
            "the unreadable epoch 6 is a gap"
        );
        assert_eq!(
            row(&b),
            [n, Some(2), n, Some(4), n, Some(6), Some(8), Some(10)]
        );
    }

    #[test]
    fn figures_are_means_over_the_samples_that_have_them() {
        let c = checkpoint(Some(1), Status::Ok, &[true, false, true, true]);
        let samples: Vec<Sample> = Vec::new();
        let at = |i: usize| FIGURES[i].at(&c, Method::GradCam, &samples);
        assert!((at(0).unwrap() - (0.8 * 3.0 + 0.2) / 4.0).abs() < 1e-6);
        assert_eq!(at(1), Some(0.75));
        assert_eq!(at(2), None, "no sample has a label");
        assert_eq!(at(3), Some(0.5));
        assert_eq!(FIGURES[0].at(&c, Method::EigenCam, &samples), None);
    }

    #[test]
    fn names_say_which_run_and_differ() {
        let dirs = [
            Path::new("/x/plain/checkpoints"),
            Path::new("/x/shortcut"),
            Path::new("/y/shortcut"),
        ];
        assert_eq!(run_names(&dirs), ["plain", "/x/shortcut", "/y/shortcut"]);
    }

    #[test]
    fn the_difference_is_the_second_map_minus_the_first_as_shown() {
        let a = Map {
            height: 1,
            width: 2,
            values: vec![0.0, 2.0],
        };
        let b = Map {
            height: 1,
            width: 2,
            values: vec![5.0, 3.0],
        };
        // Min–max scaled: a = [0, 1], b = [1, 0].
        assert_eq!(signed_difference(&a, &b, (2, 1)), [1.0, -1.0]);
        let d = difference_image(&[1.0, -1.0, 0.0, 0.5], (2, 2));
        assert_eq!(d.get_pixel(0, 0).0, PALETTE[3], "b − a = 1: full red");
        assert_eq!(d.get_pixel(1, 0).0, PALETTE[0], "b − a = −1: full blue");
        assert_eq!(d.get_pixel(0, 1).0, [255, 255, 255], "equal: white");
        assert_eq!(d.get_pixel(1, 1).0, [234, 147, 147], "half way to red");
    }
}
