//! The networks camwatch reads, as Burn modules, one family per file: each reads its
//! architecture off a checkpoint's tensor names and shapes ([`Family::detect`]), builds
//! itself from the weights found by name path ([`Params`]) and runs forward to and from
//! its *taps*, the feature maps CAMs are taken on.
//!
//! | family | file | members |
//! |---|---|---|
//! | `resnet` | `resnet/` | ResNet, ResNet-vd, ResNeXt, SE-ResNeXt, Res2Net (PaddleClas, timm) |
//! | `convnext` | `convnext.rs` | ConvNeXt V1 and V2 (timm) |
//! | `efficientnet` | `efficientnet.rs` | EfficientNet B0–B7, `tf_` included (timm) |
//! | `mobilenetv3` | `efficientnet.rs` | MobileNetV3 large and small, `tf_` included (timm) |
//! | `vit` | `vit.rs` | ViT and DeiT, distilled and with registers (timm) |
//! | `mobilenetv3` | `pp_mobilenetv3.rs` | MobileNetV3 large and small (PaddleClas) |
//! | `pplcnet` | `pp_lcnet.rs` | PP-LCNet x0.25 … x2.5 (PaddleClas) |
//! | `pphgnet` | `pp_hgnet.rs` | PP-HGNet tiny, small, base (PaddleClas) |
//!
//! Adding a family: a file with its configuration (an [`ArchSpec`]), its network (a
//! [`Backbone`]), a variant of [`Network`] and its detector in [`FAMILIES`].

mod convnext;
mod efficientnet;
pub mod layers;
mod params;
mod pp_hgnet;
mod pp_lcnet;
mod pp_mobilenetv3;
pub mod resnet;
mod vit;

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{LoadError, Weights};
pub use params::{Init, Names, Params};

/// The framework whose definition of a network camwatch reproduces: the same network
/// often exists in both, with other names and sometimes other computations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// PaddleClas (`ResNet50_vd`, `PPLCNet_x1_0`, …).
    Paddle,
    /// timm (`resnet50d`, `convnext_tiny`, …).
    Timm,
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Variant::Paddle => "paddle",
            Variant::Timm => "timm",
        })
    }
}

/// What a tap gives: a feature map, or a transformer's tokens.
#[derive(Clone, Debug)]
pub enum Activation {
    /// `[B, C, h, w]`
    Map(Tensor<4>),
    /// `[B, prefix + h·w, C]`: `prefix` tokens (class, distillation, registers) before the
    /// patches, row by row on a `grid` of `[h, w]`.
    Tokens {
        tokens: Tensor<3>,
        prefix: usize,
        grid: [usize; 2],
    },
}

impl Activation {
    /// As a feature map `[B, C, h, w]`: a transformer's patch tokens laid on their grid,
    /// the prefix tokens left out.
    pub fn spatial(&self) -> Tensor<4> {
        match self {
            Activation::Map(map) => map.clone(),
            Activation::Tokens {
                tokens,
                prefix,
                grid: [h, w],
            } => {
                let [batch, _, channels] = tokens.dims();
                tokens
                    .clone()
                    .narrow(1, *prefix, h * w)
                    .swap_dims(1, 2)
                    .reshape([batch, channels, *h, *w])
            }
        }
    }

    /// The same values as a leaf of a new autodiff graph, whose gradient is asked for.
    pub fn into_leaf(self) -> Activation {
        match self {
            Activation::Map(map) => Activation::Map(map.autodiff().require_grad()),
            Activation::Tokens {
                tokens,
                prefix,
                grid,
            } => Activation::Tokens {
                tokens: tokens.autodiff().require_grad(),
                prefix,
                grid,
            },
        }
    }

    /// The gradient of a leaf ([`Activation::into_leaf`]), laid out as
    /// [`Activation::spatial`].
    pub fn grad(&self, grads: &burn::tensor::Gradients) -> Option<Tensor<4>> {
        let grad = match self {
            Activation::Map(map) => Activation::Map(map.grad(grads)?),
            Activation::Tokens {
                tokens,
                prefix,
                grid,
            } => Activation::Tokens {
                tokens: tokens.grad(grads)?,
                prefix: *prefix,
                grid: *grid,
            },
        };
        Some(grad.spatial())
    }

    pub fn dims(&self) -> [usize; 4] {
        self.spatial().dims()
    }
}

/// What a forward pass up to a tap hands to the rest of the pass.
#[derive(Clone, Debug)]
pub struct Tapped {
    pub activation: Activation,
    /// What the rest of the pass needs besides: a transformer block's input, whose
    /// residual connection passes by the tapped normalisation.
    pub carry: Option<Tensor<3>>,
}

impl Tapped {
    pub fn map(map: Tensor<4>) -> Self {
        Tapped {
            activation: Activation::Map(map),
            carry: None,
        }
    }

    /// The tapped activation as a new autodiff leaf, the rest carried into the same graph
    /// as constants.
    pub fn into_leaf(self) -> Tapped {
        Tapped {
            activation: self.activation.into_leaf(),
            carry: self.carry.map(|c| c.autodiff()),
        }
    }
}

/// A network of one family, as the CAM engine runs it.
pub trait Backbone {
    /// The taps' names, in forward order: the last is `--layer last`, the last spatial
    /// feature map before global pooling.
    fn tap_names(&self) -> Vec<String>;
    /// Images `[B, 3, H, W]` → what tap `tap` gives.
    fn forward_to(&self, tap: usize, images: Tensor<4>) -> Tapped;
    /// The rest of the pass, from tap `tap` to the logits `[B, classes]`.
    fn forward_from(&self, tap: usize, tapped: Tapped) -> Tensor<2>;
    /// The classifier, when global average pooling and this one linear layer are all
    /// that follow tap `tap` (where ∂score/∂A is exact without a backward pass, and
    /// `cam` applies).
    fn pooled_classifier(&self, tap: usize) -> Option<&Linear>;
    /// The layers up to and including tap `tap` in `dtype`, the rest as they are: the
    /// gradient flowing back to the tap stays as exact as fp32's.
    fn cast_through(self, tap: usize, dtype: DType) -> Self
    where
        Self: Sized;
    /// The precision of the first layer.
    fn dtype(&self) -> DType;
}

/// Every family's network: one type for the CAM engine, the monitor and the UI.
#[derive(Module, Debug)]
pub enum Network {
    ResNet(resnet::ResNet),
    PpMobileNetV3(pp_mobilenetv3::PpMobileNetV3),
    PpLcNet(pp_lcnet::PpLcNet),
    PpHgNet(pp_hgnet::PpHgNet),
    ConvNeXt(convnext::ConvNeXt),
    EfficientNet(efficientnet::EfficientNet),
    Vit(vit::Vit),
}

/// Runs `$body` with `$net` bound to the family's network, by reference.
macro_rules! each_family {
    ($self:expr, $net:ident => $body:expr) => {
        match $self {
            Network::ResNet($net) => $body,
            Network::PpMobileNetV3($net) => $body,
            Network::PpLcNet($net) => $body,
            Network::PpHgNet($net) => $body,
            Network::ConvNeXt($net) => $body,
            Network::EfficientNet($net) => $body,
            Network::Vit($net) => $body,
        }
    };
}

impl Network {
    pub fn tap_names(&self) -> Vec<String> {
        each_family!(self, n => n.tap_names())
    }

    /// The family, for messages: `ResNet`, `ConvNeXt`, …
    pub fn family_name(&self) -> &'static str {
        match self {
            Network::ResNet(_) => "a ResNet",
            Network::PpMobileNetV3(_) => "a MobileNetV3",
            Network::PpLcNet(_) => "a PP-LCNet",
            Network::PpHgNet(_) => "a PP-HGNet",
            Network::ConvNeXt(_) => "a ConvNeXt",
            Network::EfficientNet(_) => "an EfficientNet or MobileNetV3",
            Network::Vit(_) => "a Vision Transformer",
        }
    }

    /// The index of the tap named `name`, or of the last tap for `None`.
    pub fn tap_index(&self, name: Option<&str>) -> Option<usize> {
        let names = self.tap_names();
        match name {
            None => names.len().checked_sub(1),
            Some(name) => names.iter().position(|n| n == name),
        }
    }

    pub fn forward_to(&self, tap: usize, images: Tensor<4>) -> Tapped {
        each_family!(self, n => n.forward_to(tap, images))
    }

    pub fn forward_from(&self, tap: usize, tapped: Tapped) -> Tensor<2> {
        each_family!(self, n => n.forward_from(tap, tapped))
    }

    pub fn pooled_classifier(&self, tap: usize) -> Option<&Linear> {
        each_family!(self, n => n.pooled_classifier(tap))
    }

    pub fn dtype(&self) -> DType {
        each_family!(self, n => n.dtype())
    }

    /// The logits `[B, classes]` of images `[B, 3, H, W]`.
    pub fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        let last = self.tap_names().len() - 1;
        self.forward_from(last, self.forward_to(last, images))
    }

    /// The logits and every tap's output as a feature map (for tests and comparisons:
    /// each tap costs a pass of its own).
    pub fn forward_taps(&self, images: Tensor<4>) -> (Tensor<2>, Vec<Tensor<4>>) {
        let taps = (0..self.tap_names().len())
            .map(|tap| self.forward_to(tap, images.clone()).activation.spatial())
            .collect();
        (self.logits(images), taps)
    }

    /// See [`Backbone::cast_through`].
    pub fn cast_through(self, tap: usize, dtype: DType) -> Network {
        match self {
            Network::ResNet(n) => Network::ResNet(n.cast_through(tap, dtype)),
            Network::PpMobileNetV3(n) => Network::PpMobileNetV3(n.cast_through(tap, dtype)),
            Network::PpLcNet(n) => Network::PpLcNet(n.cast_through(tap, dtype)),
            Network::PpHgNet(n) => Network::PpHgNet(n.cast_through(tap, dtype)),
            Network::ConvNeXt(n) => Network::ConvNeXt(n.cast_through(tap, dtype)),
            Network::EfficientNet(n) => Network::EfficientNet(n.cast_through(tap, dtype)),
            Network::Vit(n) => Network::Vit(n.cast_through(tap, dtype)),
        }
    }
}

/// Where a network's weights come from.
pub enum Source {
    /// A checkpoint's tensors, taken by name and checked against the shapes the network
    /// needs.
    Checkpoint(Weights),
    /// Random weights that are the same for the same seed everywhere: the untrained
    /// network of the model-randomisation sanity check.
    Seeded(u64),
}

/// A network's architecture, as read off a checkpoint: everything needed to build it
/// again, and to say what it is.
pub trait ArchSpec: fmt::Debug + Send + Sync + Any {
    /// `resnet`, `convnext`, … (`summary.json`'s `arch.family`).
    fn family(&self) -> &'static str;
    fn variant(&self) -> Variant;
    /// The framework's name for it (`Res2Net50_vd_26w_4s`, `convnext_tiny`).
    fn name(&self) -> String;
    fn classes(&self) -> usize;
    /// Trainable parameters, as the framework counts them.
    fn parameter_count(&self) -> usize;
    fn taps(&self) -> Vec<String>;
    /// Whether global average pooling and one linear layer are all that follow the last
    /// tap.
    fn pooled_classifier(&self) -> bool;
    /// The input size the network was made for, where it only works at one (a ViT's
    /// position embedding).
    fn input_size(&self) -> Option<usize> {
        None
    }
    /// The family's own fields of `summary.json`'s `arch`.
    fn details(&self) -> serde_json::Map<String, serde_json::Value>;
    /// Lines of `camwatch info`: (label, value).
    fn describe(&self) -> Vec<(&'static str, String)>;
    fn build(&self, source: Source, device: &Device) -> Result<Network, LoadError>;
    fn as_any(&self) -> &dyn Any;
}

/// A shared architecture.
pub type Arch = Arc<dyn ArchSpec>;

/// What a checkpoint may say of its network besides its tensors, or the user for it
/// (`--arch`): a framework's model name such as timm's `tf_efficientnet_b0`, for what
/// names and shapes cannot tell (TensorFlow's "same" padding and BatchNorm epsilon).
#[derive(Clone, Debug, Default)]
pub struct Hints {
    pub name: Option<String>,
}

/// A family's detector: `None` when the names are not the family's, else its reading
/// of them (or why they do not fit).
pub type Detector = fn(&Weights, &Hints) -> Option<Result<Arch, LoadError>>;

/// The families, in the order they are tried.
pub const FAMILIES: &[(&str, Detector)] = &[
    ("ResNet, ResNeXt, Res2Net", resnet::detect),
    ("ConvNeXt V1, V2 (timm)", convnext::detect),
    ("EfficientNet, MobileNetV3 (timm)", efficientnet::detect),
    ("ViT, DeiT (timm)", vit::detect),
    ("MobileNetV3 (PaddleClas)", pp_mobilenetv3::detect),
    ("PP-LCNet", pp_lcnet::detect),
    ("PP-HGNet", pp_hgnet::detect),
];

/// Families camwatch does not read, by a tensor only they have: named in the error, so
/// that a user knows it is the network, not the file.
const NOT_READ: &[(&str, &str)] = &[
    ("relative_position_bias_table", "a Swin Transformer"),
    ("relative_position_index", "a Swin Transformer"),
    ("denseblock1", "a DenseNet"),
    ("s1.b1.conv1", "a RegNet"),
    ("features.0.weight", "a VGG or AlexNet"),
    ("transformer.", "a MobileViT"),
    ("Mixed_5b", "an Inception network"),
    ("rel_pos_bias", "a BEiT"),
];

/// Reads the architecture off the names and shapes of a file's tensors.
pub fn infer(weights: &Weights, hints: &Hints) -> Result<Arch, LoadError> {
    for (_, detect) in FAMILIES {
        if let Some(found) = detect(weights, hints) {
            return found;
        }
    }
    for (marker, what) in NOT_READ {
        if let Some(name) = weights.tensors.keys().find(|k| k.contains(marker)) {
            return Err(LoadError::NotSupported(format!(
                "it is {what} (tensor {name:?}); camwatch reads {}",
                family_list()
            )));
        }
    }
    let first: Vec<&String> = weights.tensors.keys().take(3).collect();
    Err(LoadError::NotSupported(format!(
        "no family's layout fits its {} tensors (first: {first:?}); camwatch reads {}",
        weights.tensors.len(),
        family_list()
    )))
}

fn family_list() -> String {
    let names: Vec<&str> = FAMILIES.iter().map(|(name, _)| *name).collect();
    names.join("; ")
}

/// The prefix before `suffix` in the shortest tensor name that ends with it at a name
/// boundary (`module.`, `model.`, or none).
pub fn prefix_of(weights: &Weights, suffix: &str) -> Option<String> {
    weights
        .tensors
        .keys()
        .filter_map(|k| k.strip_suffix(suffix))
        .filter(|p| p.is_empty() || p.ends_with('.'))
        .min_by_key(|p| p.len())
        .map(str::to_string)
}

/// Trainable parameters among the tensors under `prefix`: all but BatchNorm's running
/// statistics (integer tensors, such as `num_batches_tracked`, are not read at all).
pub fn count_parameters(weights: &Weights, prefix: &str) -> usize {
    const BUFFERS: [&str; 4] = ["running_mean", "running_var", "_mean", "_variance"];
    weights
        .tensors
        .iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .filter(|(name, _)| !BUFFERS.iter().any(|b| name.ends_with(b)))
        .map(|(_, t)| t.numel())
        .sum()
}
