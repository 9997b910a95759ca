//! Whether a checkpoint's maps can be trusted: the faithfulness metrics of
//! [`metrics`](super::metrics) run through the network in batches, and two sanity checks
//! (Adebayo et al. 2018):
//!
//! - **class sensitivity**: the correlation of the map for the target with the map for
//!   the least probable class. A map that does not change with the class explains the
//!   image, not the decision (EigenCAM never does: it has no class);
//! - **model randomisation**: the absolute correlation with the map an untrained network
//!   of the same architecture (seeded, so always the same one) gives for the same class.
//!   A map that an untrained network draws too shows the architecture, not what was
//!   learnt.
//!
//! Both are Pearson correlations of the maps before their final ReLU, at the feature
//! map's resolution: after the ReLU, an untrained network's map or an unlikely class's is
//! often all zero, and nothing can be read from comparing with nothing.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use burn::tensor::activation::softmax;
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::engine::{self, CamError, CamRequest, Map, SampleMaps, to_vec};
use super::metrics::{self, Faithfulness, MetricSettings};
use super::options::{Layer, Method, Target};
use super::{image_ops, measures};
use crate::model::Network;

/// A map whose correlation with the map for another class is at least this ignores the
/// class.
pub const CLASS_CORR_FLAG: f32 = 0.9;
/// A map whose correlation with an untrained network's is at least this looks like
/// one.
pub const RANDOM_CORR_FLAG: f32 = 0.7;
/// The untrained network's seed.
pub const RANDOM_SEED: u64 = 0x05EE_DCA3;

/// The two sanity correlations of one map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sanity {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub class_corr: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub random_corr: Option<f32>,
}

impl Sanity {
    /// What is wrong, if anything: `"ignores the class"`, `"like an untrained network's"`.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut flags = Vec::new();
        if self.class_corr.is_some_and(|c| c >= CLASS_CORR_FLAG) {
            flags.push("ignores the class");
        }
        if self.random_corr.is_some_and(|c| c >= RANDOM_CORR_FLAG) {
            flags.push("like an untrained network's");
        }
        flags
    }
}

/// Per image of a batch and method, the faithfulness figures of its map. `input` is the
/// batch the maps were computed from; `seeds[b]` seeds image b's ROAD noise.
pub fn faithfulness(
    model: &Network,
    input: &Tensor<4>,
    results: &[SampleMaps],
    settings: &MetricSettings,
    request: &CamRequest,
    seeds: &[u64],
) -> Result<Vec<BTreeMap<Method, Faithfulness>>, CamError> {
    let [_, channels, height, width] = input.dims();
    let values = to_vec(input.clone());
    let per_image = channels * height * width;
    let scorer = Scorer::new(model, request, [channels, height, width], input.device());
    // ROAD's imputations as batched tensors on a GPU, on the CPU's threads otherwise.
    let solver = super::road::Solver::for_device(&scorer.device);
    let mut out = Vec::with_capacity(results.len());
    for (b, result) in results.iter().enumerate() {
        let mut figures = BTreeMap::new();
        for (method, map) in &result.maps {
            let shown = image_ops::resize_bilinear(
                &image_ops::min_max(&map.values),
                (map.height, map.width),
                (height, width),
            );
            let image = metrics::Image {
                input: &values[b * per_image..(b + 1) * per_image],
                height,
                width,
                shown: &shown,
                probability: result.probs[result.target],
                seed: seeds.get(b).copied().unwrap_or(0) ^ ((*method as u64) << 56),
            };
            let mut score = |inputs| scorer.probabilities(inputs, result.target);
            figures.insert(
                *method,
                metrics::evaluate_with(&image, settings, &solver, &mut score)?,
            );
        }
        out.push(figures);
    }
    Ok(out)
}

/// Target probabilities of perturbed inputs, by batched forward passes.
pub struct Scorer<'a> {
    model: &'a Network,
    /// Its batch size and cancel token.
    request: &'a CamRequest,
    /// Of one input: `[3, H, W]`.
    dims: [usize; 3],
    device: Device,
    /// Every class's probability for the all-zero input, once asked for: deletion's
    /// last step and insertion's first, the same for every image and method.
    zero: std::cell::OnceCell<Vec<f32>>,
}

impl<'a> Scorer<'a> {
    pub fn new(
        model: &'a Network,
        request: &'a CamRequest,
        dims: [usize; 3],
        device: Device,
    ) -> Self {
        Scorer {
            model,
            request,
            dims,
            device,
            zero: Default::default(),
        }
    }

    /// The softmax probability of `target` for each input (`3 × H × W` values each).
    pub fn probabilities(
        &self,
        inputs: Vec<Vec<f32>>,
        target: usize,
    ) -> Result<Vec<f32>, CamError> {
        let is_zero = |input: &[f32]| input.iter().all(|&v| v == 0.0);
        let (zero, others): (Vec<usize>, Vec<usize>) =
            (0..inputs.len()).partition(|&i| is_zero(&inputs[i]));
        if !zero.is_empty() && self.zero.get().is_none() {
            let all = self.softmax(&[&inputs[zero[0]][..]])?;
            let _ = self.zero.set(all);
        }
        let scored = self.softmax(&others.iter().map(|&i| &inputs[i][..]).collect::<Vec<_>>())?;
        let classes = scored.len() / others.len().max(1);
        let mut probabilities = vec![0.0; inputs.len()];
        for i in zero {
            probabilities[i] = self.zero.get().map_or(0.0, |p| p[target]);
        }
        for (k, i) in others.into_iter().enumerate() {
            probabilities[i] = scored[k * classes + target];
        }
        Ok(probabilities)
    }

    /// Every class's softmax probability for each input, in batches: `[n × classes]`.
    fn softmax(&self, inputs: &[&[f32]]) -> Result<Vec<f32>, CamError> {
        let [channels, height, width] = self.dims;
        let mut out = Vec::new();
        for chunk in inputs.chunks(self.request.batch.max(1)) {
            self.request.cancel.check()?;
            let n = chunk.len();
            let x = Tensor::<4>::from_data(
                TensorData::new(chunk.concat(), [n, channels, height, width]),
                &self.device,
            );
            let logits = self.model.logits(x).cast(DType::F32);
            out.extend(to_vec(softmax(logits, 1)));
        }
        Ok(out)
    }
}

/// The untrained network the model-randomisation check compares with (see
/// [`RANDOM_SEED`]), and the maps it gave. They depend on the image, the class and the
/// settings, not on the checkpoint: over a run's checkpoints each is computed once.
pub struct Untrained {
    pub network: Network,
    maps: RefCell<HashMap<UntrainedKey, Map>>,
}

/// Which map of the untrained network: an image (its key), a class, a method, a layer
/// and the input's size.
type UntrainedKey = (String, usize, Method, Layer, [usize; 2]);

impl Untrained {
    pub fn new(network: Network) -> Untrained {
        Untrained {
            network,
            maps: Default::default(),
        }
    }

    /// Per image, the untrained network's maps for its target class: those kept from
    /// earlier checkpoints, the rest computed. `keys[b]` names image b.
    fn maps(
        &self,
        input: &Tensor<4>,
        results: &[SampleMaps],
        keys: &[&str],
        request: &CamRequest,
    ) -> Result<Vec<Option<MethodMaps>>, CamError> {
        let [_, _, height, width] = input.dims();
        let key = |b: usize, method: Method| {
            let image = keys.get(b).copied().unwrap_or_default().to_string();
            (
                image,
                results[b].target,
                method,
                request.layer,
                [height, width],
            )
        };
        // Image b's maps, if every method's is kept.
        let kept = |b: usize| {
            let maps = self.maps.borrow();
            request
                .methods
                .iter()
                .map(|&m| Some((m, maps.get(&key(b, m))?.clone())))
                .collect::<Option<MethodMaps>>()
        };
        let mut out: Vec<Option<MethodMaps>> = (0..results.len()).map(kept).collect();
        let missing = |b: usize, r: &SampleMaps| out[b].is_none().then_some(r.target);
        let computed = signed_maps(&self.network, input, results, request, missing)?;
        let mut maps = self.maps.borrow_mut();
        for (b, computed) in computed.into_iter().enumerate() {
            if let Some(computed) = computed {
                if !keys.is_empty() {
                    for (method, map) in &computed {
                        maps.insert(key(b, *method), map.clone());
                    }
                }
                out[b] = Some(computed);
            }
        }
        Ok(out)
    }
}

/// Per image and method, the two sanity correlations; `random` is the untrained network
/// of the same architecture, when model randomisation is wanted, and `keys[b]` names
/// image b for its maps (empty: none kept).
pub fn sanity(
    model: &Network,
    random: Option<&Untrained>,
    input: &Tensor<4>,
    results: &[SampleMaps],
    keys: &[&str],
    request: &CamRequest,
) -> Result<Vec<BTreeMap<Method, Sanity>>, CamError> {
    let target = |_, r: &SampleMaps| Some(r.target);
    // The maps' own pass kept them before their ReLU, unless they come from history.
    let kept = results.iter().all(|r| {
        request
            .methods
            .iter()
            .all(|m| r.signed.iter().any(|(s, _)| s == m))
    });
    let own = if kept {
        results.iter().map(|r| Some(r.signed.clone())).collect()
    } else {
        signed_maps(model, input, results, request, target)?
    };
    let other = signed_maps(model, input, results, request, |_, r| other_class(r))?;
    let random = match random {
        Some(random) => random.maps(input, results, keys, request)?,
        None => vec![None; results.len()],
    };
    let mut out = Vec::with_capacity(results.len());
    for ((own, other), random) in own.into_iter().zip(other).zip(random) {
        let mut figures = BTreeMap::new();
        for (method, map) in own.iter().flatten() {
            let with = |maps: &Option<MethodMaps>| {
                maps.iter()
                    .flatten()
                    .find(|(m, _)| m == method)
                    .map(|(_, other)| correlation(map, other))
            };
            figures.insert(
                *method,
                Sanity {
                    class_corr: with(&other),
                    // An untrained network's classifier has a random sign: a map it
                    // draws inverted shows the same architecture.
                    random_corr: with(&random).map(f32::abs),
                },
            );
        }
        out.push(figures);
    }
    Ok(out)
}

/// The class whose map the target's is compared with: the least probable one, the class
/// the network is surest the image is not.
pub fn other_class(result: &SampleMaps) -> Option<usize> {
    (0..result.probs.len())
        .filter(|&c| c != result.target)
        .min_by(|&a, &b| result.probs[a].total_cmp(&result.probs[b]))
}

/// One image's maps, one per method.
type MethodMaps = Vec<(Method, Map)>;

/// Per image, `model`'s maps before their ReLU for the class `class_of` (its index and
/// outcome) gives it, if any; images that ask for the same class share a batch.
fn signed_maps(
    model: &Network,
    input: &Tensor<4>,
    results: &[SampleMaps],
    request: &CamRequest,
    class_of: impl Fn(usize, &SampleMaps) -> Option<usize>,
) -> Result<Vec<Option<MethodMaps>>, CamError> {
    let mut out = vec![None; results.len()];
    let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (b, result) in results.iter().enumerate() {
        if let Some(class) = class_of(b, result) {
            by_class.entry(class).or_default().push(b);
        }
    }
    let device = input.device();
    for (class, images) in by_class {
        for chunk in images.chunks(request.batch.max(1)) {
            let indices = Tensor::<1, Int>::from_data(
                TensorData::new(
                    chunk.iter().map(|&b| b as i64).collect::<Vec<_>>(),
                    [chunk.len()],
                ),
                &device,
            );
            let for_class = CamRequest {
                target: Target::Class(class),
                ..request.clone()
            };
            let maps = engine::compute_signed(model, input.clone().select(0, indices), &for_class)?;
            for (&b, result) in chunk.iter().zip(maps) {
                out[b] = Some(result.maps);
            }
        }
    }
    Ok(out)
}

fn correlation(a: &Map, b: &Map) -> f32 {
    if (a.height, a.width) == (b.height, b.width) {
        measures::pearson(&a.values, &b.values)
    } else {
        0.0
    }
}
