//! Turning a batch of images into class activation maps: one forward pass up to the
//! target layer, the gradient of the target score there (exact and free at the last
//! stage, by autodiff from the layer only at earlier ones), then every method.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use burn::tensor::activation::{relu, softmax};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{DType, Int, Tensor, TensorData};

use super::eigen;
use super::options::{Layer, Method, Target};
use crate::model::Network;

/// What to compute for every image of a batch.
#[derive(Clone, Debug)]
pub struct CamRequest {
    pub methods: Vec<Method>,
    pub layer: Layer,
    pub target: Target,
    /// Images per masked forward pass of ScoreCAM.
    pub batch: usize,
    /// Asked between forward passes whether to stop (a signal, `q`, a new setting).
    pub cancel: Cancel,
}

/// A request to stop long work at its next safe point, shared between threads: the
/// network is never torn down under a running forward pass.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Cancelled)` once cancelled: `?` at each safe point.
    pub fn check(&self) -> Result<(), CamError> {
        if self.is_cancelled() {
            Err(CamError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// A map at the feature map's resolution, after the method's ReLU, before any scaling.
#[derive(Clone, Debug, PartialEq)]
pub struct Map {
    pub height: usize,
    pub width: usize,
    pub values: Vec<f32>,
}

impl Map {
    /// Whether `values` holds exactly `height × width` values (a map read back from
    /// somewhere else may not).
    pub fn is_whole(&self) -> bool {
        self.height > 0
            && self.width > 0
            && self.height.checked_mul(self.width) == Some(self.values.len())
    }
}

/// One image's outcome.
#[derive(Clone, Debug)]
pub struct SampleMaps {
    pub logits: Vec<f32>,
    pub probs: Vec<f32>,
    pub predicted: usize,
    /// The class the maps explain.
    pub target: usize,
    pub maps: Vec<(Method, Map)>,
    /// The same maps before their final ReLU, where the pass that made them kept them
    /// (the sanity checks compare these); empty for maps read back from history.
    pub signed: Vec<(Method, Map)>,
}

/// Time spent, accumulated over batches.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    /// The network's forward pass (and, before stage 4, the pass from the layer to the
    /// score that autodiff records).
    pub forward: Duration,
    /// Gradients and the methods.
    pub cam: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum CamError {
    #[error("method `{method}` uses the classifier's weights and needs --layer last (got {layer})")]
    NeedsLastLayer { method: Method, layer: Layer },
    #[error(
        "method `{method}` uses the classifier's weights and needs global pooling and one \
         linear layer right after the last layer ({tap}); {network} has more between them"
    )]
    NoPooledClassifier {
        method: Method,
        tap: String,
        network: String,
    },
    #[error("--target label: sample {0} has no label in labels.csv")]
    NoLabel(usize),
    #[error("target class {class} does not exist: the network has {classes} classes")]
    NoSuchClass { class: usize, classes: usize },
    #[error("the network has no layer {layer}: its layers are {}", taps.join(", "))]
    NoSuchLayer { layer: Layer, taps: Vec<String> },
    #[error("stopped")]
    Cancelled,
}

/// Computes `request` for a batch `[B, 3, H, W]`; `labels[b]` is image b's label, if any.
pub fn compute(
    model: &Network,
    input: Tensor<4>,
    labels: &[Option<usize>],
    request: &CamRequest,
    timings: &mut Timings,
) -> Result<Vec<SampleMaps>, CamError> {
    compute_maps(model, input, labels, request, timings, true)
}

/// As [`compute`], without each method's final ReLU: where the map counts against the
/// class too. The sanity checks compare these, since a ReLU'd map is often all zero for
/// an untrained network or an unlikely class, and all-zero maps cannot be compared.
pub fn compute_signed(
    model: &Network,
    input: Tensor<4>,
    request: &CamRequest,
) -> Result<Vec<SampleMaps>, CamError> {
    compute_maps(model, input, &[], request, &mut Timings::default(), false)
}

/// The index of `layer` among `model`'s taps.
pub fn tap_of(model: &Network, layer: Layer) -> Result<usize, CamError> {
    model
        .tap_index(layer.tap_name())
        .ok_or_else(|| CamError::NoSuchLayer {
            layer,
            taps: model.tap_names(),
        })
}

fn compute_maps(
    model: &Network,
    input: Tensor<4>,
    labels: &[Option<usize>],
    request: &CamRequest,
    timings: &mut Timings,
    rectify: bool,
) -> Result<Vec<SampleMaps>, CamError> {
    let tap = tap_of(model, request.layer)?;
    if let Some(&method) = request.methods.iter().find(|m| !m.supports(request.layer)) {
        return Err(CamError::NeedsLastLayer {
            method,
            layer: request.layer,
        });
    }
    let classifier = model.pooled_classifier(tap);
    if let Some(&method) = request.methods.iter().find(|m| m.info().last_stage_only)
        && classifier.is_none()
    {
        return Err(CamError::NoPooledClassifier {
            method,
            tap: model.tap_names()[tap].clone(),
            network: model.family_name().to_string(),
        });
    }
    request.cancel.check()?;
    let start = Instant::now();
    // The layers up to the tap run in their weights' precision (see `precision::cast`);
    // the maps are made in fp32.
    let tapped = model.forward_to(tap, input.clone());
    let [batch, channels, height, width] = tapped.activation.dims();
    let device = input.device();
    // Where a pooled linear classifier follows the tap, ∂score/∂A is exact without a
    // backward pass; elsewhere the gradient flows back through the later layers: they
    // are recorded from a fresh leaf, so autodiff covers only the tap-to-score path.
    let autodiff = classifier.is_none() && request.methods.iter().any(|m| m.needs_gradient());
    let tapped = if autodiff { tapped.into_leaf() } else { tapped };
    let logits_tracked = model.forward_from(tap, tapped.clone());
    let logits_values = to_vec(logits_tracked.clone().detach().without_autodiff());
    timings.forward += start.elapsed();

    let start = Instant::now();
    let classes = logits_values.len() / batch;
    let mut results = Vec::with_capacity(batch);
    for b in 0..batch {
        let logits = logits_values[b * classes..(b + 1) * classes].to_vec();
        let predicted = argmax(&logits);
        let target = match request.target {
            Target::Predicted => predicted,
            Target::Label => labels
                .get(b)
                .copied()
                .flatten()
                .ok_or(CamError::NoLabel(b))?,
            Target::Class(c) => c,
        };
        if target >= classes {
            return Err(CamError::NoSuchClass {
                class: target,
                classes,
            });
        }
        results.push(SampleMaps {
            probs: softmax_vec(&logits),
            logits,
            predicted,
            target,
            maps: Vec::new(),
            signed: Vec::new(),
        });
    }
    let targets: Vec<i64> = results.iter().map(|r| r.target as i64).collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [batch]), &device);

    // The classifier's weights for each image's target class: [B, K, 1, 1].
    let class_weights = || {
        let weight = classifier.map(|fc| fc.weight.val().cast(DType::F32)); // [K, classes]
        weight.map(|w| {
            w.select(1, targets.clone())
                .transpose()
                .reshape([batch, channels, 1, 1])
        })
    };
    let gradient = if autodiff {
        let one_hot: Tensor<2> = targets.clone().one_hot(classes).float();
        let score = (logits_tracked * one_hot).sum();
        let grads = score.backward();
        tapped.activation.grad(&grads).map(|g| g.cast(DType::F32))
    } else {
        None
    };
    // After global average pooling and one linear layer, ∂score/∂A = W[:, c] / (h·w).
    let gradient = move || -> Tensor<4> {
        match (&gradient, class_weights()) {
            (Some(g), _) => g.clone(),
            (None, Some(w)) => w
                .div_scalar((height * width) as f32)
                .expand([batch, channels, height, width]),
            // Never asked for: without a pooled classifier, a method that needs the
            // gradient made autodiff record the pass.
            (None, None) => Tensor::zeros([batch, channels, height, width], &device),
        }
    };
    let a = tapped
        .activation
        .spatial()
        .detach()
        .without_autodiff()
        .cast(DType::F32);
    let weighted_sum = |weights: Tensor<4>| (weights * a.clone()).sum_dim(1);
    let spatial_sum = |t: Tensor<4>| t.sum_dims(&[2, 3]);

    for &method in &request.methods {
        let map: Tensor<4> = match method {
            Method::Cam => {
                weighted_sum(class_weights().ok_or_else(|| CamError::NoPooledClassifier {
                    method,
                    tap: model.tap_names()[tap].clone(),
                    network: model.family_name().to_string(),
                })?)
            }
            Method::GradCam => weighted_sum(gradient().mean_dims(&[2, 3])),
            Method::HiResCam => (gradient() * a.clone()).sum_dim(1),
            Method::GradCamPlusPlus => {
                let g = gradient();
                let g2 = g.clone() * g.clone();
                let g3 = g2.clone() * g.clone();
                let alpha = g2.clone()
                    / (g2.mul_scalar(2.0) + spatial_sum(a.clone()) * g3).add_scalar(1e-6);
                let alpha = alpha.mask_fill(g.clone().equal_elem(0.0), 0.0);
                weighted_sum(spatial_sum(relu(g) * alpha))
            }
            Method::XGradCam => {
                let weights =
                    spatial_sum(gradient() * a.clone() / spatial_sum(a.clone()).add_scalar(1e-7));
                weighted_sum(weights)
            }
            Method::LayerCam => (relu(gradient()) * a.clone()).sum_dim(1),
            Method::EigenCam => eigen_cam(&a),
            Method::ScoreCam => score_cam(model, &input, &a, &results, request)?,
        };
        let values = to_vec(map);
        let plane = height * width;
        for (b, result) in results.iter_mut().enumerate() {
            let map = Map {
                height,
                width,
                values: values[b * plane..(b + 1) * plane].to_vec(),
            };
            if rectify {
                let rectified = map
                    .values
                    .iter()
                    .map(|&v| if v < 0.0 { 0.0 } else { v })
                    .collect();
                result.signed.push((method, map.clone()));
                result.maps.push((
                    method,
                    Map {
                        values: rectified,
                        ..map
                    },
                ));
            } else {
                result.maps.push((method, map));
            }
        }
    }
    timings.cam += start.elapsed();
    Ok(results)
}

fn eigen_cam(a: &Tensor<4>) -> Tensor<4> {
    let [batch, channels, height, width] = a.dims();
    let values = to_vec(a.clone());
    let per_sample = channels * height * width;
    let maps: Vec<f32> = values
        .chunks(per_sample)
        .flat_map(|sample| eigen::first_component(sample, channels, height * width))
        .collect();
    Tensor::from_data(
        TensorData::new(maps, [batch, 1, height, width]),
        &a.device(),
    )
}

/// ScoreCAM: for each image, each channel (upsampled to the input with aligned corners,
/// scaled to [0, 1]) masks the input; the target scores of the masked images, softmaxed
/// over channels, weight the channels.
fn score_cam(
    model: &Network,
    input: &Tensor<4>,
    a: &Tensor<4>,
    results: &[SampleMaps],
    request: &CamRequest,
) -> Result<Tensor<4>, CamError> {
    let gpu = crate::device::is_cuda_device(&a.device());
    let mut chunk = match SCORE_BATCH.load(Ordering::Relaxed) {
        found if gpu && found > 0 => found,
        _ => request.batch.max(1),
    };
    let [batch, channels, height, width] = a.dims();
    let [_, _, input_h, input_w] = input.dims();
    let mut maps = Vec::with_capacity(batch);
    for (b, result) in results.iter().enumerate() {
        let activation = a.clone().narrow(0, b, 1); // [1, K, h, w]
        let upsampled = interpolate(
            activation.clone(),
            InterpolateOptions::new(InterpolateMode::Bilinear)
                .with_align_corners(true)
                .with_output_size([input_h, input_w]),
        )
        .reshape([channels, input_h * input_w]);
        let min = upsampled.clone().min_dim(1);
        let max = upsampled.clone().max_dim(1);
        let masks = ((upsampled - min.clone()) / (max - min).add_scalar(1e-8))
            .reshape([channels, 1, input_h, input_w]);
        let image = input.clone().narrow(0, b, 1); // [1, 3, H, W]
        let mut scores = Vec::with_capacity(channels);
        while scores.len() < channels {
            // Thousands of forward passes: the one method that must stop midway.
            request.cancel.check()?;
            let (start, n) = (scores.len(), chunk.min(channels - scores.len()));
            let pass = crate::isolate::isolated(|| {
                fake_out_of_memory(n);
                let masked = image.clone() * masks.clone().narrow(0, start, n); // [n, 3, H, W]
                to_vec(model.logits(masked))
            });
            match pass {
                Ok(logits) => {
                    let classes = logits.len() / n;
                    scores.extend((0..n).map(|i| logits[i * classes + result.target]));
                    if gpu
                        && n == chunk
                        && chunk < channels
                        && crate::device::gpu_free_fraction().is_some_and(|f| f > GPU_KEPT_FREE)
                    {
                        chunk *= 2;
                    }
                }
                // The device ran out of memory: the same channels again, half as many
                // at a time.
                Err(message) if crate::device::out_of_gpu_memory(&message) && chunk > 1 => {
                    crate::device::empty_cuda_cache();
                    chunk /= 2;
                }
                // Anything else goes on as the panic it was (isolate names it again).
                Err(message) => {
                    let message = message.trim_start_matches("internal error: ").to_string();
                    std::panic::resume_unwind(Box::new(message))
                }
            }
        }
        let weights = softmax(
            Tensor::<1>::from_data(TensorData::new(scores, [channels]), &a.device()),
            0,
        )
        .reshape([1, channels, 1, 1]);
        maps.push((weights * activation).sum_dim(1)); // [1, 1, h, w]
    }
    if gpu {
        SCORE_BATCH.store(chunk, Ordering::Relaxed);
    }
    Ok(Tensor::cat(maps, 0).reshape([batch, 1, height, width]))
}

/// Masked images per ScoreCAM forward pass on the GPU, found by the passes themselves
/// and kept for the next checkpoints (0: not yet; the request's batch). Each whole pass
/// doubles it while a quarter of the GPU's memory stays free for the training job beside
/// camwatch. On any device, a pass that runs out of memory is made again with half as
/// many (the CPU keeps the request's batch: more images per pass gain it nothing).
static SCORE_BATCH: AtomicUsize = AtomicUsize::new(0);

/// The share of a GPU's memory ScoreCAM's batches leave free.
const GPU_KEPT_FREE: f64 = 0.25;

/// Test hook: a ScoreCAM pass of more than `CAMWATCH_FAKE_SCORECAM_MEMORY` images fails
/// as if the GPU ran out of memory, so that the backing off can be exercised on a
/// machine without one.
fn fake_out_of_memory(images: usize) {
    static LIMIT: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    let limit = LIMIT.get_or_init(|| {
        std::env::var("CAMWATCH_FAKE_SCORECAM_MEMORY")
            .ok()
            .and_then(|n| n.parse().ok())
    });
    if limit.is_some_and(|limit| images > limit) {
        panic!("CUDA out of memory (CAMWATCH_FAKE_SCORECAM_MEMORY: {images} images in one pass)");
    }
}

pub(crate) fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    // After `convert::<f32>` the data is f32, so reading it as f32 cannot fail.
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default()
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 { (i, x) } else { best }
        })
        .0
}

fn softmax_vec(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f64> = logits.iter().map(|&l| ((l - max) as f64).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|e| (e / sum) as f32).collect()
}
