//! Whether a map explains the network, not just whether it sits on the object: what
//! happens to the target probability when the input is changed where the map points.
//!
//! Every metric here takes the preprocessed input of one image (`3 × H × W`), the map as
//! shown (min–max scaled, bilinear to `H × W`) and the target probability of the
//! unchanged input, builds perturbed inputs, and asks `score` for their target
//! probabilities (softmax). The forward passes are the caller's, so it batches them.
//!
//! - **confidence change** (pytorch-grad-cam's `CamMultImageConfidenceChange`):
//!   p(input · map) − p(input);
//! - **deletion / insertion AUC** (Petsiuk et al. 2018): pixels ordered by the map,
//!   highest first (ties by index); for i = 0…n the first ⌈i/n · H·W⌉ pixels (all
//!   channels) are set to 0 (deletion) or restored into an all-zero input (insertion);
//!   the area under p_i by the trapezoid rule over i/n. Low deletion and high insertion
//!   mean the map found what the network uses;
//! - **ROAD combined** (Rong et al. 2022, pytorch-grad-cam's `ROADCombined`): the mean
//!   over percentiles 10…90 of (p after removing the least relevant pixels − p after
//!   removing the most relevant), halved; removed pixels are filled by noisy linear
//!   imputation from their neighbours, so the network never sees a hole's edges.

use serde::{Deserialize, Serialize};

use super::road::{self, Solver};
use crate::rng::Normal;

/// One faithfulness metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Metric {
    Confidence,
    Deletion,
    Insertion,
    Road,
}

/// A metric's names and cost: the one table `--metrics`, the history, the JSON and the
/// UI read.
pub struct MetricInfo {
    pub metric: Metric,
    /// As `--metrics` takes it.
    pub name: &'static str,
    /// As `summary.json`, the JSON lines and the history store it.
    pub key: &'static str,
    /// As the UI writes it, where space is short.
    pub short: &'static str,
    pub about: &'static str,
}

/// In the order of [`Metric`]'s variants.
const METRICS: [MetricInfo; 4] = [
    MetricInfo {
        metric: Metric::Confidence,
        name: "confidence",
        short: "conf",
        key: "confidence_change",
        about: "p(input × map) − p(input): 1 forward pass",
    },
    MetricInfo {
        metric: Metric::Deletion,
        name: "deletion",
        short: "del",
        key: "deletion_auc",
        about: "area under p while the most relevant pixels are zeroed: n forward passes",
    },
    MetricInfo {
        metric: Metric::Insertion,
        name: "insertion",
        short: "ins",
        key: "insertion_auc",
        about: "area under p while the most relevant pixels are restored: n forward passes",
    },
    MetricInfo {
        metric: Metric::Road,
        name: "road",
        short: "road",
        key: "road_combined",
        about: "ROAD combined, 9 percentiles with noisy linear imputation: 18 forward passes",
    },
];

impl Metric {
    pub const ALL: [Metric; 4] = [
        Metric::Confidence,
        Metric::Deletion,
        Metric::Insertion,
        Metric::Road,
    ];

    pub fn info(self) -> &'static MetricInfo {
        &METRICS[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    pub fn key(self) -> &'static str {
        self.info().key
    }

    /// The metric stored under `key`, if this camwatch knows it.
    pub fn from_key(key: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.key() == key)
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
                format!(
                    "unknown metric {s:?}: expected all, none or a list of {}, {SANITY}",
                    names.join(", ")
                )
            })
    }
}

/// What to measure, and how finely.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricSettings {
    pub metrics: Vec<Metric>,
    /// Also the sanity checks (`trust.rs`): `sanity` in `--metrics`.
    pub sanity: bool,
    /// `n` of deletion and insertion.
    pub steps: usize,
    /// Standard deviation of the noise ROAD's imputation adds (pytorch-grad-cam: 0.01);
    /// drawn from a generator seeded per image, so results repeat.
    pub road_noise: f32,
}

pub const DEFAULT_STEPS: usize = 16;
/// `--metrics`' name for the sanity checks.
pub const SANITY: &str = "sanity";
pub const ROAD_PERCENTILES: [f32; 9] = [10., 20., 30., 40., 50., 60., 70., 80., 90.];
pub const ROAD_NOISE: f32 = 0.01;

impl Default for MetricSettings {
    fn default() -> Self {
        MetricSettings {
            metrics: Metric::ALL.to_vec(),
            sanity: true,
            steps: DEFAULT_STEPS,
            road_noise: ROAD_NOISE,
        }
    }
}

impl MetricSettings {
    /// Parses `--metrics`: `all`, `none`, or a comma-separated list of metric names and
    /// `sanity`; the steps and noise are the defaults'.
    pub fn parse(s: &str) -> Result<MetricSettings, String> {
        let (metrics, sanity) = match s.trim() {
            "all" => (Metric::ALL.to_vec(), true),
            "none" | "" => (Vec::new(), false),
            list => {
                let names: Vec<&str> = list.split(',').map(str::trim).collect();
                let mut metrics: Vec<Metric> = names
                    .iter()
                    .filter(|&&n| n != SANITY)
                    .map(|m| m.parse())
                    .collect::<Result<_, _>>()?;
                metrics.sort();
                metrics.dedup();
                (metrics, names.contains(&SANITY))
            }
        };
        Ok(MetricSettings {
            metrics,
            sanity,
            ..MetricSettings::default()
        })
    }

    /// Nothing to compute.
    pub fn is_off(&self) -> bool {
        self.metrics.is_empty() && !self.sanity
    }
}

/// The figures of one map; a metric not asked for is `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Faithfulness {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub confidence_change: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub deletion_auc: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub insertion_auc: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub road_combined: Option<f32>,
}

impl Faithfulness {
    pub fn get(&self, metric: Metric) -> Option<f32> {
        match metric {
            Metric::Confidence => self.confidence_change,
            Metric::Deletion => self.deletion_auc,
            Metric::Insertion => self.insertion_auc,
            Metric::Road => self.road_combined,
        }
    }

    pub fn set(&mut self, metric: Metric, value: f32) {
        let slot = match metric {
            Metric::Confidence => &mut self.confidence_change,
            Metric::Deletion => &mut self.deletion_auc,
            Metric::Insertion => &mut self.insertion_auc,
            Metric::Road => &mut self.road_combined,
        };
        *slot = Some(value);
    }
}

/// Over a set of images, what multiplying each by its map does to the target
/// probability (Chattopadhay et al. 2018), in percent.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfidenceSummary {
    /// Mean of max(0, p − p') / p: how much confidence the map alone loses.
    pub average_drop: f32,
    /// Share of images with p' > p: the map alone is more convincing than the image.
    pub increase_in_confidence: f32,
}

impl ConfidenceSummary {
    /// From each image's (p, p' − p); `None` for no images.
    pub fn of(pairs: impl IntoIterator<Item = (f32, f32)>) -> Option<ConfidenceSummary> {
        let (mut drop, mut increased, mut n) = (0f64, 0usize, 0usize);
        for (p, change) in pairs {
            drop += if p > 0.0 {
                (-change).max(0.0) as f64 / p as f64
            } else {
                0.0
            };
            increased += usize::from(change > 0.0);
            n += 1;
        }
        (n > 0).then(|| ConfidenceSummary {
            average_drop: (100.0 * drop / n as f64) as f32,
            increase_in_confidence: (100.0 * increased as f64 / n as f64) as f32,
        })
    }
}

/// One image, ready to be perturbed.
pub struct Image<'a> {
    /// Preprocessed, `3 × H × W`, channels first.
    pub input: &'a [f32],
    pub height: usize,
    pub width: usize,
    /// The map as shown: `H × W`, in [0, 1].
    pub shown: &'a [f32],
    /// The target probability of the unchanged input.
    pub probability: f32,
    /// Seeds ROAD's noise.
    pub seed: u64,
}

/// Measures `image` with every metric of `settings`, ROAD's imputations solved on the
/// CPU's threads. `score` gets perturbed copies of the input and returns their target
/// probabilities, in order. It is called once per metric (for ROAD after its 18
/// imputations are solved): a caller that stops between calls waits for at most one
/// metric's forward passes, or ROAD's solves.
pub fn evaluate<E>(
    image: &Image,
    settings: &MetricSettings,
    score: &mut dyn FnMut(Vec<Vec<f32>>) -> Result<Vec<f32>, E>,
) -> Result<Faithfulness, E> {
    evaluate_with(image, settings, &Solver::Threads, score)
}

/// [`evaluate`], ROAD's imputations solved by `solver`.
pub fn evaluate_with<E>(
    image: &Image,
    settings: &MetricSettings,
    solver: &Solver,
    score: &mut dyn FnMut(Vec<Vec<f32>>) -> Result<Vec<f32>, E>,
) -> Result<Faithfulness, E> {
    let p0 = image.probability;
    let steps = settings.steps;
    let order = relevance_order(image.shown);
    let mut out = Faithfulness::default();
    for &metric in &settings.metrics {
        let value = match metric {
            Metric::Confidence => {
                let p = score(vec![multiply(image)])?;
                p.first().copied().unwrap_or(p0) - p0
            }
            // Deletion's step 0 and insertion's step n are the unchanged input.
            Metric::Deletion => {
                let mut p = vec![p0];
                p.extend(score(
                    (1..=steps)
                        .map(|i| delete(image, &order, i, steps))
                        .collect(),
                )?);
                trapezoid(&p)
            }
            Metric::Insertion => {
                let mut p = score(
                    (0..steps)
                        .map(|i| insert(image, &order, i, steps))
                        .collect(),
                )?;
                p.push(p0);
                trapezoid(&p)
            }
            Metric::Road => {
                // Most relevant first at the nine percentiles, then least relevant.
                let p = score(road_inputs(image, settings.road_noise, solver))?;
                let mean = |p: &[f32]| p.iter().map(|&x| x as f64).sum::<f64>() / p.len() as f64;
                let (most, least) = p.split_at(ROAD_PERCENTILES.len());
                ((mean(least) - mean(most)) / 2.0) as f32
            }
        };
        out.set(metric, value);
    }
    Ok(out)
}

/// ROAD's 18 imputed images: the pixels at and above each of [`ROAD_PERCENTILES`] of
/// the map imputed (most relevant first), then those at and above each of its inverse
/// (least relevant first). The solves are independent: they run batched on the
/// solver's device, or on the threads camwatch may use (`--threads`), the largest
/// first, each with its own noise seed, so the result depends on neither.
fn road_inputs(image: &Image, noise: f32, solver: &Solver) -> Vec<Vec<f32>> {
    let inverted: Vec<f32> = image.shown.iter().map(|v| 1.0 - v).collect();
    let n = ROAD_PERCENTILES.len();
    let thresholds = |map: &[f32]| {
        let mut sorted = map.to_vec();
        sorted.sort_by(f32::total_cmp);
        ROAD_PERCENTILES.map(|p| percentile_of_sorted(&sorted, p))
    };
    let thresholds = [thresholds(image.shown), thresholds(&inverted)];
    let maps = [image.shown, &inverted[..]];
    // Kept: below the percentile; the rest is imputed.
    let keep = |k: usize| -> Vec<bool> {
        let threshold = thresholds[k / n][k % n];
        maps[k / n].iter().map(|&v| v < threshold).collect()
    };
    let normal = |k: usize| Normal::new(image.seed ^ (k as u64).wrapping_mul(0x9E37_79B9));
    let masks = 2 * n;
    if let Solver::Batched(device) = solver {
        let keeps: Vec<Vec<bool>> = (0..masks).map(keep).collect();
        let mut normals: Vec<Normal> = (0..masks).map(normal).collect();
        if let Some(images) = road::impute_batch(image, &keeps, noise, &mut normals, device) {
            return images;
        }
    }
    // The lower percentiles impute more pixels: those first, each thread taking the
    // next mask when it is done, so that the threads finish together.
    let largest_first: Vec<usize> = (0..n).flat_map(|i| [i, n + i]).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        while let Some(&k) =
            largest_first.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
        {
            done.push((k, road::impute(image, &keep(k), noise, &mut normal(k))));
        }
        done
    };
    let threads = crate::device::thread_limit().clamp(1, masks);
    let mut images: Vec<(usize, Vec<f32>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(work)).collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    images.sort_by_key(|(k, _)| *k);
    images.into_iter().map(|(_, image)| image).collect()
}

fn multiply(image: &Image) -> Vec<f32> {
    let plane = image.height * image.width;
    image
        .input
        .iter()
        .enumerate()
        .map(|(i, &x)| x * image.shown[i % plane])
        .collect()
}

/// Pixel indices, highest map value first, ties by index.
fn relevance_order(shown: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..shown.len()).collect();
    order.sort_by(|&a, &b| shown[b].total_cmp(&shown[a]).then(a.cmp(&b)));
    order
}

/// How many pixels step `i` of `n` changes: ⌈i/n · pixels⌉.
fn changed(i: usize, n: usize, pixels: usize) -> usize {
    (i * pixels).div_ceil(n.max(1)).min(pixels)
}

fn delete(image: &Image, order: &[usize], i: usize, n: usize) -> Vec<f32> {
    let plane = image.height * image.width;
    let mut out = image.input.to_vec();
    for &pixel in &order[..changed(i, n, plane)] {
        for c in 0..3 {
            out[c * plane + pixel] = 0.0;
        }
    }
    out
}

fn insert(image: &Image, order: &[usize], i: usize, n: usize) -> Vec<f32> {
    let plane = image.height * image.width;
    let mut out = vec![0.0; image.input.len()];
    for &pixel in &order[..changed(i, n, plane)] {
        for c in 0..3 {
            out[c * plane + pixel] = image.input[c * plane + pixel];
        }
    }
    out
}

/// The area under `p` over [0, 1], `p` sampled at i/n for i = 0…n.
fn trapezoid(p: &[f32]) -> f32 {
    let n = p.len().saturating_sub(1).max(1) as f64;
    let sum: f64 = p
        .windows(2)
        .map(|w| (w[0] as f64 + w[1] as f64) / 2.0)
        .sum();
    (sum / n) as f32
}

/// NumPy's default (linear) percentile.
#[cfg(test)]
fn percentile(values: &[f32], p: f32) -> f32 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f32::total_cmp);
    percentile_of_sorted(&sorted, p)
}

/// [`percentile`] of values sorted in ascending order.
fn percentile_of_sorted(sorted: &[f32], p: f32) -> f32 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return 0.0;
    };
    let position = p as f64 / 100.0 * last as f64;
    let lo = position.floor() as usize;
    let hi = (lo + 1).min(last);
    let t = position - lo as f64;
    let (a, b) = (sorted[lo] as f64, sorted[hi] as f64);
    // NumPy's lerp: from the nearer end, so that t = 0 and t = 1 are exact.
    let value = if t >= 0.5 {
        b - (b - a) * (1.0 - t)
    } else {
        a + (b - a) * t
    };
    value as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image<'a>(input: &'a [f32], shown: &'a [f32], side: usize) -> Image<'a> {
        Image {
            input,
            height: side,
            width: side,
            shown,
            probability: 0.5,
            seed: 1,
        }
    }

    #[test]
    fn steps_change_the_most_relevant_pixels_first() {
        let shown = [0.1, 0.9, 0.5, 0.9];
        assert_eq!(relevance_order(&shown), [1, 3, 2, 0]);
        let input: Vec<f32> = (1..=12).map(|v| v as f32).collect();
        let img = image(&input, &shown, 2);
        let order = relevance_order(&shown);
        // ⌈1/4 · 4⌉ = 1 pixel, in all three channels.
        let d = delete(&img, &order, 1, 4);
        assert_eq!(d, [1., 0., 3., 4., 5., 0., 7., 8., 9., 0., 11., 12.]);
        let i = insert(&img, &order, 2, 4);
        assert_eq!(i, [0., 2., 0., 4., 0., 6., 0., 8., 0., 10., 0., 12.]);
        assert_eq!(changed(3, 16, 10), 2);
        assert_eq!(changed(16, 16, 10), 10);
    }

    #[test]
    fn the_areas_follow_the_trapezoid_rule() {
        assert!((trapezoid(&[1.0, 0.0]) - 0.5).abs() < 1e-7);
        assert!((trapezoid(&[1.0, 1.0, 0.0]) - 0.75).abs() < 1e-7);
        // A scorer that answers 1 for the unchanged input and 0 for everything else.
        let input = vec![1.0f32; 3 * 16];
        let shown: Vec<f32> = (0..16).map(|v| v as f32 / 15.0).collect();
        let img = Image {
            probability: 1.0,
            ..image(&input, &shown, 4)
        };
        let settings = MetricSettings {
            metrics: vec![Metric::Deletion, Metric::Insertion, Metric::Confidence],
            sanity: false,
            steps: 4,
            road_noise: 0.0,
        };
        let mut calls = Vec::new();
        let result = evaluate(&img, &settings, &mut |inputs: Vec<Vec<f32>>| {
            calls.push(inputs.len());
            Ok::<_, ()>(
                inputs
                    .iter()
                    .map(|x| if x == &input { 1.0 } else { 0.0 })
                    .collect(),
            )
        })
        .unwrap();
        assert_eq!(calls, [4, 4, 1], "one batched call per metric");
        assert_eq!(result.deletion_auc, Some(0.125));
        assert_eq!(result.insertion_auc, Some(0.125));
        assert_eq!(result.confidence_change, Some(-1.0));
        assert_eq!(result.road_combined, None);
    }

    #[test]
    fn confidence_over_images() {
        let s = ConfidenceSummary::of([(0.5, -0.25), (0.8, 0.1)]).unwrap();
        assert!((s.average_drop - 25.0).abs() < 1e-4);
        assert!((s.increase_in_confidence - 50.0).abs() < 1e-4);
        assert_eq!(ConfidenceSummary::of([]), None);
    }

    #[test]
    fn percentiles_are_numpys() {
        let v = [3.0, 1.0, 4.0, 1.0, 5.0];
        assert_eq!(percentile(&v, 50.0), 3.0);
        assert!((percentile(&v, 10.0) - 1.0).abs() < 1e-7);
        assert!((percentile(&v, 90.0) - 4.6).abs() < 1e-6);
    }

    use super::road::impute;

    #[test]
    fn imputation_solves_the_neighbour_mean() {
        // A linear ramp is its own neighbour mean inside the image: imputing the middle
        // of a ramp gives the ramp back.
        let side = 9;
        let plane = side * side;
        let input: Vec<f32> = (0..3 * plane)
            .map(|i| ((i % plane) % side) as f32 * 0.5 + (i / plane) as f32)
            .collect();
        let shown = vec![0.0; plane];
        let keep: Vec<bool> = (0..plane)
            .map(|i| {
                let (y, x) = (i / side, i % side);
                !(2..7).contains(&y) || !(2..7).contains(&x)
            })
            .collect();
        let img = image(&input, &shown, side);
        let out = impute(&img, &keep, 0.0, &mut Normal::new(0));
        for (a, b) in out.iter().zip(&input) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        // Noise is seeded: the same seed, the same image.
        let noisy = impute(&img, &keep, 0.01, &mut Normal::new(7));
        assert_eq!(noisy, impute(&img, &keep, 0.01, &mut Normal::new(7)));
        assert_ne!(noisy, out);
    }

    #[test]
    fn lists_parse() {
        let all = MetricSettings::parse("all").unwrap();
        assert_eq!(
            (all.metrics.as_slice(), all.sanity),
            (&Metric::ALL[..], true)
        );
        assert!(MetricSettings::parse("none").unwrap().is_off());
        let some = MetricSettings::parse("road, deletion,sanity").unwrap();
        assert_eq!(some.metrics, [Metric::Deletion, Metric::Road]);
        assert!(some.sanity);
        assert!(!MetricSettings::parse("road").unwrap().sanity);
        assert!(MetricSettings::parse("roads").is_err());
        for m in Metric::ALL {
            assert_eq!(m.info().metric, m);
            assert_eq!(Metric::from_key(m.key()), Some(m));
        }
    }
}
