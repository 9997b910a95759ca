//! A checkpoint and a sample set → maps, overlays and `summary.json`: the work behind
//! `camwatch render`, kept free of the command line so the monitor can share it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use image::RgbImage;
use serde::Serialize;

use crate::cam::image_ops::{self, Blend};
use crate::cam::metrics::{ConfidenceSummary, Faithfulness, MetricSettings};
use crate::cam::trust::{self, Sanity};
use crate::cam::{
    self, CamError, CamRequest, Colormap, Layer, Map, Method, Normalize, Sample, SampleMaps,
    SampleSet, Timings, measures, npy,
};
use crate::model::{Arch, Network, Source};
use crate::precision::Precision;

/// What to compute and how to prepare the images for it.
#[derive(Clone, Debug)]
pub struct CamSettings {
    pub request: CamRequest,
    pub normalize: Normalize,
    pub input_size: usize,
    /// The forward pass's; results of different precisions are kept apart.
    pub precision: Precision,
}

/// Runs `request` over the whole sample set, `batch` images per forward pass.
pub fn compute_all(
    model: &Network,
    set: &SampleSet,
    request: &CamRequest,
    normalize: Normalize,
    input_size: usize,
    device: &Device,
) -> Result<(Vec<SampleMaps>, Timings), RenderError> {
    let samples: Vec<&Sample> = set.samples.iter().collect();
    let settings = CamSettings {
        request: request.clone(),
        normalize,
        input_size,
        precision: Precision::of(model),
    };
    compute_samples(model, &samples, &set.dir, &settings, device, &mut |_| {})
}

/// Runs the settings' request over some samples of the set in `dir`, telling
/// `progress` how many samples are done after each batch.
pub fn compute_samples(
    model: &Network,
    samples: &[&Sample],
    dir: &Path,
    settings: &CamSettings,
    device: &Device,
    progress: &mut dyn FnMut(usize),
) -> Result<(Vec<SampleMaps>, Timings), RenderError> {
    let request = &settings.request;
    let mut timings = Timings::default();
    let mut results = Vec::with_capacity(samples.len());
    for chunk in samples.chunks(request.batch.max(1)) {
        let images: Vec<&RgbImage> = chunk.iter().map(|s| &s.image).collect();
        let labels: Vec<Option<usize>> = chunk.iter().map(|s| s.label).collect();
        let input = image_ops::to_input(&images, settings.input_size, settings.normalize, device);
        let maps =
            cam::compute(model, input, &labels, request, &mut timings).map_err(|e| match e {
                CamError::NoLabel(i) => RenderError::NoLabel {
                    labels: dir.join("labels.csv"),
                    sample: chunk[i].file.clone(),
                },
                other => RenderError::Cam(other),
            })?;
        results.extend(maps);
        progress(results.len());
    }
    Ok((results, timings))
}

/// A sample's trust figures, per method: how faithful its map is, and the sanity
/// correlations (empty where not asked for).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SampleTrust {
    pub metrics: BTreeMap<Method, Faithfulness>,
    pub sanity: BTreeMap<Method, Sanity>,
}

/// The trust figures of `results` (the maps of `samples`, in order), `batch` images at a
/// time. `random` is the untrained network the sanity check compares with (see
/// [`untrained_like`]).
pub fn compute_trust(
    model: &Network,
    random: Option<&trust::Untrained>,
    samples: &[&Sample],
    results: &[SampleMaps],
    settings: &CamSettings,
    metrics: &MetricSettings,
    device: &Device,
) -> Result<Vec<SampleTrust>, RenderError> {
    let request = &settings.request;
    let mut out = Vec::with_capacity(results.len());
    let batch = request.batch.max(1);
    for (chunk, maps) in samples.chunks(batch).zip(results.chunks(batch)) {
        let images: Vec<&RgbImage> = chunk.iter().map(|s| &s.image).collect();
        let input = image_ops::to_input(&images, settings.input_size, settings.normalize, device);
        let seeds: Vec<u64> = chunk.iter().map(|s| seed_of(&s.digest)).collect();
        let faithful = if metrics.metrics.is_empty() {
            vec![BTreeMap::new(); chunk.len()]
        } else {
            trust::faithfulness(model, &input, maps, metrics, request, &seeds)?
        };
        let sanity = if metrics.sanity {
            let keys: Vec<&str> = chunk.iter().map(|s| s.digest.as_str()).collect();
            trust::sanity(model, random, &input, maps, &keys, request)?
        } else {
            vec![BTreeMap::new(); chunk.len()]
        };
        out.extend(
            faithful
                .into_iter()
                .zip(sanity)
                .map(|(metrics, sanity)| SampleTrust { metrics, sanity }),
        );
    }
    Ok(out)
}

/// Average Drop and Increase in Confidence of `method`'s maps over the samples that
/// have a confidence change.
pub fn confidence_summary(
    method: Method,
    results: &[SampleMaps],
    trust: &[SampleTrust],
) -> Option<ConfidenceSummary> {
    ConfidenceSummary::of(results.iter().zip(trust).filter_map(|(r, t)| {
        let change = t.metrics.get(&method)?.confidence_change?;
        Some((r.probs[r.target], change))
    }))
}

/// The untrained network the model-randomisation check compares with: `config`'s
/// architecture, seeded, in `model`'s precision.
pub fn untrained_like(
    config: &Arch,
    model: &Network,
    layer: Layer,
    device: &Device,
) -> Result<trust::Untrained, crate::checkpoint::LoadError> {
    let random = config.build(Source::Seeded(trust::RANDOM_SEED), device)?;
    let random = crate::precision::cast(random, Precision::of(model), layer);
    Ok(trust::Untrained::new(random))
}

/// ROAD's noise seed for a sample: from its content, so the same image gets the same
/// noise in every run.
fn seed_of(digest: &str) -> u64 {
    u64::from_str_radix(digest.get(..16).unwrap_or(""), 16).unwrap_or(0)
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Cam(#[from] CamError),
    #[error("--target label: {} has no label for {}", labels.display(), sample.display())]
    NoLabel { labels: PathBuf, sample: PathBuf },
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Encode {
        path: PathBuf,
        source: image::ImageError,
    },
}

/// A map as it is shown: min–max scaled to [0, 1], bilinear to `(width, height)`.
pub fn display_map(map: &Map, (width, height): (u32, u32)) -> Vec<f32> {
    image_ops::resize_bilinear(
        &image_ops::min_max(&map.values),
        (map.height, map.width),
        (height as usize, width as usize),
    )
}

/// A map drawn over its image.
pub struct Drawn {
    /// The map as shown: [0, 1], at the image's size.
    pub shown: Vec<f32>,
    pub heat: RgbImage,
    pub overlay: RgbImage,
}

pub fn draw(image: &RgbImage, map: &Map, style: &OverlayStyle) -> Drawn {
    let size = image.dimensions();
    let shown = display_map(map, size);
    let heat = image_ops::heatmap(&shown, size, style.colormap);
    let overlay = image_ops::overlay(image, &heat, &shown, style.blend);
    Drawn {
        shown,
        heat,
        overlay,
    }
}

/// For a sample with an object box: the share of the shown map inside the box, and
/// whether its maximum is inside (the pointing game).
pub fn on_object(shown: &[f32], sample: &Sample) -> Option<(f32, bool)> {
    let bbox = sample.bbox.as_ref()?;
    let width = sample.image.width() as usize;
    Some((
        measures::box_energy(shown, width, bbox),
        measures::pointing_hit(shown, width, bbox),
    ))
}

/// How the overlays are drawn.
#[derive(Clone, Copy, Debug)]
pub struct OverlayStyle {
    pub colormap: Colormap,
    pub blend: Blend,
    /// Also write `<stem>.<method>.side.png`: image | heatmap | overlay.
    pub side_by_side: bool,
}

/// Per-sample figures of `summary.json` (and of the history, later).
#[derive(Clone, Debug, Serialize)]
pub struct SampleSummary {
    pub name: String,
    #[serde(serialize_with = "crate::paths::serialize")]
    pub file: PathBuf,
    pub logits: Vec<f32>,
    pub probs: Vec<f32>,
    pub predicted: usize,
    pub target: usize,
    /// Method → file name of its overlay in the output folder.
    pub maps: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub box_energy: Option<BTreeMap<String, f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointing_hit: Option<BTreeMap<String, bool>>,
    /// Method → faithfulness figures, when metrics were computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<BTreeMap<String, Faithfulness>>,
    /// Method → sanity correlations, when the sanity checks ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sanity: Option<BTreeMap<String, Sanity>>,
}

impl SampleSummary {
    /// Adds a sample's trust figures.
    pub fn with_trust(mut self, trust: &SampleTrust) -> Self {
        self.metrics = by_name(&trust.metrics);
        self.sanity = by_name(&trust.sanity);
        self
    }
}

/// Keyed by method name, as the JSON has it; `None` when empty.
pub fn by_name<T: Copy>(figures: &BTreeMap<Method, T>) -> Option<BTreeMap<String, T>> {
    (!figures.is_empty()).then(|| figures.iter().map(|(k, v)| (k.to_string(), *v)).collect())
}

/// Writes `<stem>.<method>.npy` and `.png` (and `.side.png`) for every sample and
/// method into `out`, and returns the samples' summaries.
pub fn write_outputs(
    out: &Path,
    set: &SampleSet,
    results: &[SampleMaps],
    style: &OverlayStyle,
) -> Result<Vec<SampleSummary>, RenderError> {
    std::fs::create_dir_all(out).map_err(|source| RenderError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    let mut summaries = Vec::with_capacity(results.len());
    for (sample, result) in set.samples.iter().zip(results) {
        let mut maps = BTreeMap::new();
        let mut energy = BTreeMap::new();
        let mut hits = BTreeMap::new();
        for (method, map) in &result.maps {
            let stem = format!("{}.{}", sample.name, method);
            let npy_path = out.join(format!("{stem}.npy"));
            write_atomically(
                &npy_path,
                &npy::encode_f32(&map.values, &[map.height, map.width]),
            )?;

            let drawn = draw(&sample.image, map, style);
            let png = format!("{stem}.png");
            save(&drawn.overlay, &out.join(&png))?;
            if style.side_by_side {
                let side = image_ops::side_by_side(&[&sample.image, &drawn.heat, &drawn.overlay]);
                save(&side, &out.join(format!("{stem}.side.png")))?;
            }
            maps.insert(method.to_string(), png);
            if let Some((share, hit)) = on_object(&drawn.shown, sample) {
                energy.insert(method.to_string(), share);
                hits.insert(method.to_string(), hit);
            }
        }
        let has_box = sample.bbox.is_some();
        summaries.push(SampleSummary {
            name: sample.name.clone(),
            file: sample.file.clone(),
            logits: result.logits.clone(),
            probs: result.probs.clone(),
            predicted: result.predicted,
            target: result.target,
            maps,
            box_energy: has_box.then_some(energy),
            pointing_hit: has_box.then_some(hits),
            metrics: None,
            sanity: None,
        });
    }
    Ok(summaries)
}

fn save(image: &RgbImage, path: &Path) -> Result<(), RenderError> {
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|source| RenderError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
    write_atomically(path, &png)
}

/// Writes `bytes` to `path` through a temporary file beside it and a rename: a reader,
/// or a kill midway, sees the old file or the new one, never part of one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RenderError> {
    use std::io::Write;
    let wrap = |source| RenderError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".camwatch-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(wrap)?;
    file.write_all(bytes).map_err(wrap)?;
    file.persist(path).map_err(|e| wrap(e.error))?;
    Ok(())
}

/// The files a summary's samples name in the output folder: each method's overlay and
/// map, and its side-by-side image if `side_by_side`. Names that are not plain file
/// names (a summary written by somebody else may say anything) are left out.
pub fn output_files(samples: &[(String, Vec<String>)], side_by_side: bool) -> Vec<String> {
    let extensions: &[&str] = if side_by_side {
        &["png", "npy", "side.png"]
    } else {
        &["png", "npy"]
    };
    let plain = |n: &String| !n.is_empty() && !n.contains('/') && n != "." && n != "..";
    samples
        .iter()
        .filter(|(name, _)| plain(name))
        .flat_map(|(name, methods)| {
            methods.iter().filter(|m| plain(m)).flat_map(move |m| {
                extensions
                    .iter()
                    .map(move |ext| format!("{name}.{m}.{ext}"))
            })
        })
        .collect()
}

/// The architecture as `summary.json`, `info --json` and the history report it: what
/// every family has, then the family's own fields (a ResNet's depths, block and stem).
#[derive(Clone, Debug, Serialize)]
pub struct ArchSummary {
    pub family: String,
    pub name: String,
    pub variant: String,
    pub classes: usize,
    /// The layers maps can be taken on, in forward order: the last is `--layer last`.
    pub taps: Vec<String>,
    /// Whether global pooling and one linear layer are all that follow the last tap
    /// (where `cam` applies).
    pub pooled_classifier: bool,
    /// The input size the network only works at (a ViT's), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_size: Option<usize>,
    #[serde(flatten)]
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl ArchSummary {
    pub fn of(arch: &Arch) -> Self {
        ArchSummary {
            family: arch.family().to_string(),
            name: arch.name(),
            variant: arch.variant().to_string(),
            classes: arch.classes(),
            taps: arch.taps(),
            pooled_classifier: arch.pooled_classifier(),
            input_size: arch.input_size(),
            details: arch.details(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct TimingsMs {
    pub load: f64,
    pub forward: f64,
    pub cam: f64,
    /// From opening the checkpoint to having every map (writing excluded).
    pub total: f64,
    /// The trust figures, after the maps (not in `total`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    #[serde(serialize_with = "crate::paths::serialize")]
    pub checkpoint: PathBuf,
    pub format: String,
    pub arch: ArchSummary,
    pub device: String,
    pub methods: Vec<Method>,
    pub layer: String,
    pub target: String,
    pub normalize: Normalize,
    pub input_size: usize,
    pub precision: Precision,
    pub timings_ms: TimingsMs,
    /// Method → Average Drop and Increase in Confidence over the samples, when the
    /// confidence metric was computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<BTreeMap<String, ConfidenceSummary>>,
    pub samples: Vec<SampleSummary>,
}
