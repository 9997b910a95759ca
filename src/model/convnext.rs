//! ConvNeXt V1 and V2 as timm defines them (`timm/models/convnext.py`): a patchify stem
//! (a 4×4 convolution with stride 4, then LayerNorm over channels), four stages of
//! blocks (7×7 depthwise convolution → LayerNorm → Linear ×4 → GELU → (V2: Global
//! Response Normalisation) → Linear → (V1: layer scale `gamma`) → + shortcut), each stage
//! after the first opened by LayerNorm and a 2×2 convolution with stride 2; then global
//! average pooling, LayerNorm and the classifier (`head.norm`, `head.fc`), or LayerNorm
//! before the pooling (`norm_pre`, timm's `head_norm_first`).
//!
//! Members: `convnext_{atto,femto,pico,nano,tiny,small,base,large,xlarge}` and
//! `convnextv2_{atto,femto,pico,nano,tiny,base,large,huge}`, and any other depths and
//! widths of the same layout.
//!
//! Taps: the four stages' outputs `stages.0` … `stages.3`; the last, `stages.3`, is
//! pytorch-grad-cam's documented `model.stages[-1]`. The head's LayerNorm lies between it
//! and the classifier, so no pooled linear classifier follows a tap.
//!
//! Everything is read off the file: depths (blocks per stage), widths, the MLP's hidden
//! width, kernel sizes, V2's GRN and V1's layer scale (tensors present or not), the
//! small members' `conv_mlp` (fc1/fc2 stored as 1×1 convolutions `[out, in, 1, 1]`, the
//! others as Linear `[out, in]`: the same computation, run channels-last with a Linear),
//! and where the head's LayerNorm is. LayerNorm epsilon is timm's 1e-6 everywhere.

use std::any::Any;
use std::sync::Arc;

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::gelu;
use burn::tensor::{DType, Device, Tensor};

use super::layers::{
    Act, ConvAct, ConvSpec, LayerNorm, Padding, Stored, cast, cast_first, channels_last, conv,
    in_dtype_of, linear,
};
use super::{
    Arch, ArchSpec, Backbone, Hints, Init, Names, Network, Params, Source, Tapped, Variant,
    prefix_of,
};
use crate::checkpoint::{LoadError, Weights};

/// timm's LayerNorm2d and LayerNorm epsilon in ConvNeXt.
const LN_EPSILON: f64 = 1e-6;
/// GlobalResponseNorm's epsilon.
const GRN_EPSILON: f64 = 1e-6;

/// Every architectural decision of a ConvNeXt, as read off a checkpoint.
#[derive(Clone, Debug)]
pub struct Config {
    /// The prefix of every tensor name (`module.`, or none).
    pub prefix: String,
    /// Blocks per stage.
    pub depths: Vec<usize>,
    /// Channels per stage.
    pub dims: Vec<usize>,
    /// The MLP's hidden width per stage (4 × dims in every timm member).
    pub hidden: Vec<usize>,
    /// The stem's patch size (kernel and stride).
    pub stem_patch: usize,
    /// The depthwise convolution's kernel.
    pub kernel: usize,
    /// ConvNeXt V2's Global Response Normalisation in the MLP.
    pub grn: bool,
    /// V1's per-channel layer scale `gamma`.
    pub layer_scale: bool,
    /// fc1/fc2 stored as 1×1 convolutions (atto … nano).
    pub conv_mlp: bool,
    /// LayerNorm before the pooling (`norm_pre`), not after (`head.norm`).
    pub head_norm_first: bool,
    pub classes: usize,
    /// Trainable parameters, as timm counts them.
    pub parameters: usize,
}

/// A ConvNeXt checkpoint's architecture, when its names are this family's.
pub fn detect(weights: &Weights, _hints: &Hints) -> Option<Result<Arch, LoadError>> {
    let prefix = prefix_of(weights, "stages.0.blocks.0.conv_dw.weight")?;
    let names = Names::new(weights, &prefix);
    if !names.has("stem.0.weight") {
        return None;
    }
    // A tensor outside the layout: a ConvNeXt variant this file does not compute (an
    // overlapping stem, RMSNorm, …).
    if let Some(name) = weights
        .tensors
        .keys()
        .filter_map(|k| k.strip_prefix(prefix.as_str()))
        .find(|k| !known(k))
    {
        return Some(Err(LoadError::NotSupported(format!(
            "a ConvNeXt with tensor {:?}, which camwatch's ConvNeXt does not have",
            format!("{prefix}{name}")
        ))));
    }
    Some(read(&names).map(|config| Arc::new(config) as Arch))
}

/// Whether `name` (without the prefix) is one of the tensors a ConvNeXt of this file has.
fn known(name: &str) -> bool {
    const TOP: &[&str] = &[
        "stem.0.weight",
        "stem.0.bias",
        "stem.1.weight",
        "stem.1.bias",
        "norm_pre.weight",
        "norm_pre.bias",
        "head.norm.weight",
        "head.norm.bias",
        "head.fc.weight",
        "head.fc.bias",
    ];
    const STAGE: &[&str] = &[
        "downsample.0.weight",
        "downsample.0.bias",
        "downsample.1.weight",
        "downsample.1.bias",
    ];
    const BLOCK: &[&str] = &[
        "conv_dw.weight",
        "conv_dw.bias",
        "norm.weight",
        "norm.bias",
        "mlp.fc1.weight",
        "mlp.fc1.bias",
        "mlp.grn.weight",
        "mlp.grn.bias",
        "mlp.fc2.weight",
        "mlp.fc2.bias",
        "gamma",
    ];
    let indexed = |rest: &str| -> Option<(usize, String)> {
        let (index, rest) = rest.split_once('.')?;
        Some((index.parse().ok()?, rest.to_string()))
    };
    if TOP.contains(&name) {
        return true;
    }
    let Some((_, rest)) = name.strip_prefix("stages.").and_then(indexed) else {
        return false;
    };
    if STAGE.contains(&rest.as_str()) {
        return true;
    }
    rest.strip_prefix("blocks.")
        .and_then(indexed)
        .is_some_and(|(_, rest)| BLOCK.contains(&rest.as_str()))
}

/// A tensor whose shape does not fit the layout.
fn misfit(names: &Names, name: &str, expected: &str) -> LoadError {
    let shape = names.shape(name).unwrap_or(&[]);
    LoadError::Tensor {
        name: format!("{}{name}", names.prefix()),
        message: format!("has shape {shape:?}, a ConvNeXt's is {expected}"),
    }
}

fn read(names: &Names) -> Result<Config, LoadError> {
    let stem = names.shape("stem.0.weight")?;
    let &[dim0, 3, patch, patch_w] = stem else {
        return Err(misfit(names, "stem.0.weight", "[C, 3, p, p]"));
    };
    if patch != patch_w || patch == 0 {
        return Err(misfit(names, "stem.0.weight", "[C, 3, p, p]"));
    }
    names.shape("stem.1.weight")?;
    let stages = names.count(|s| format!("stages.{s}.blocks.0.conv_dw.weight"));
    let mut depths = Vec::with_capacity(stages);
    let mut dims = Vec::with_capacity(stages);
    let mut hidden = Vec::with_capacity(stages);
    let block0 = "stages.0.blocks.0";
    let conv_mlp = names.shape(&format!("{block0}.mlp.fc1.weight"))?.len() == 4;
    let grn = names.has(&format!("{block0}.mlp.grn.weight"));
    let layer_scale = names.has(&format!("{block0}.gamma"));
    let dw = names.shape(&format!("{block0}.conv_dw.weight"))?;
    let kernel = dw.get(2).copied().unwrap_or(0);
    if kernel.is_multiple_of(2) {
        return Err(misfit(
            names,
            &format!("{block0}.conv_dw.weight"),
            "[C, 1, k, k], k odd",
        ));
    }
    for s in 0..stages {
        let stage = format!("stages.{s}");
        let dim = names.dim(&format!("{stage}.blocks.0.conv_dw.weight"), 0)?;
        let fc1 = format!("{stage}.blocks.0.mlp.fc1.weight");
        let width = names.dim(&fc1, 0)?;
        let expected_fc1: Vec<usize> = if conv_mlp {
            vec![width, dim, 1, 1]
        } else {
            vec![width, dim]
        };
        if names.shape(&fc1)? != expected_fc1.as_slice() {
            return Err(misfit(names, &fc1, &format!("{expected_fc1:?}")));
        }
        let previous = if s == 0 { dim0 } else { dims[s - 1] };
        if s == 0 {
            if dim != dim0 {
                return Err(misfit(names, "stem.0.weight", &format!("[{dim}, 3, p, p]")));
            }
        } else {
            let ds = format!("{stage}.downsample.1.weight");
            let fits =
                matches!(names.shape(&ds)?, &[out, inp, 2, 2] if out == dim && inp == previous);
            if !fits {
                return Err(misfit(names, &ds, &format!("[{dim}, {previous}, 2, 2]")));
            }
        }
        depths.push(names.count(|b| format!("{stage}.blocks.{b}.conv_dw.weight")));
        dims.push(dim);
        hidden.push(width);
    }
    let features = *dims.last().unwrap_or(&dim0);
    let head_norm_first = !names.has("head.norm.weight") && names.has("norm_pre.weight");
    let classes = names.dim("head.fc.weight", 0)?;
    if names.shape("head.fc.weight")? != [classes, features] {
        return Err(misfit(
            names,
            "head.fc.weight",
            &format!("[classes, {features}]"),
        ));
    }
    Ok(Config {
        prefix: names.prefix().to_string(),
        depths,
        dims,
        hidden,
        stem_patch: patch,
        kernel,
        grn,
        layer_scale,
        conv_mlp,
        head_norm_first,
        classes,
        parameters: names.parameters(),
    })
}

/// timm's names by depths, widths and GRN.
const MEMBERS: &[(&str, [usize; 4], usize)] = &[
    ("atto", [2, 2, 6, 2], 40),
    ("femto", [2, 2, 6, 2], 48),
    ("pico", [2, 2, 6, 2], 64),
    ("nano", [2, 2, 8, 2], 80),
    ("tiny", [3, 3, 9, 3], 96),
    ("small", [3, 3, 27, 3], 96),
    ("base", [3, 3, 27, 3], 128),
    ("large", [3, 3, 27, 3], 192),
    ("xlarge", [3, 3, 27, 3], 256),
    ("huge", [3, 3, 27, 3], 352),
];

impl Config {
    fn standard(&self) -> bool {
        self.stem_patch == 4
            && self.kernel == 7
            && self.dims.len() == 4
            && self.dims.iter().zip(&self.hidden).all(|(d, h)| *h == 4 * d)
            && self.layer_scale != self.grn
    }

    fn member(&self) -> Option<&'static str> {
        if !self.standard() {
            return None;
        }
        let d0 = self.dims[0];
        if self.dims != [d0, 2 * d0, 4 * d0, 8 * d0] {
            return None;
        }
        let (name, ..) = MEMBERS
            .iter()
            .find(|(_, depths, width)| self.depths == depths && *width == d0)?;
        let exists = match *name {
            "small" | "xlarge" => !self.grn,
            "huge" => self.grn,
            _ => true,
        };
        exists.then_some(*name)
    }
}

impl ArchSpec for Config {
    fn family(&self) -> &'static str {
        "convnext"
    }

    fn variant(&self) -> Variant {
        Variant::Timm
    }

    fn name(&self) -> String {
        let family = if self.grn { "convnextv2" } else { "convnext" };
        match self.member() {
            Some(member) => format!("{family}_{member}"),
            None => format!("{family}{:?}x{:?}", self.depths, self.dims),
        }
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn parameter_count(&self) -> usize {
        self.parameters
    }

    fn taps(&self) -> Vec<String> {
        (0..self.depths.len())
            .map(|s| format!("stages.{s}"))
            .collect()
    }

    fn pooled_classifier(&self) -> bool {
        false
    }

    fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        let value = serde_json::json!({
            "depths": self.depths,
            "dims": self.dims,
            "grn": self.grn,
            "layer_scale": self.layer_scale,
            "conv_mlp": self.conv_mlp,
        });
        match value {
            serde_json::Value::Object(map) => map,
            _ => Default::default(),
        }
    }

    fn describe(&self) -> Vec<(&'static str, String)> {
        let mut block = format!(
            "{k}×{k} depthwise, LayerNorm, MLP ×{} with GELU",
            self.hidden
                .first()
                .zip(self.dims.first())
                .map_or(0, |(h, d)| h / d.max(&1)),
            k = self.kernel
        );
        if self.grn {
            block.push_str(" and GRN (V2)");
        }
        if self.layer_scale {
            block.push_str(", layer scale");
        }
        vec![
            ("depths", format!("{:?}", self.depths)),
            ("widths", format!("{:?}", self.dims)),
            ("block", block),
            (
                "stem",
                format!(
                    "{p}×{p} convolution stride {p}, LayerNorm",
                    p = self.stem_patch
                ),
            ),
            (
                "head",
                if self.head_norm_first {
                    "LayerNorm, average pool, linear".into()
                } else {
                    "average pool, LayerNorm, linear".into()
                },
            ),
        ]
    }

    fn build(&self, source: Source, device: &Device) -> Result<Network, LoadError> {
        let p = Params::new(source, &self.prefix, device);
        let network = ConvNeXt::read(self, &p)?;
        p.finish()?;
        Ok(Network::ConvNeXt(network))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Patchify: `[B, 3, H, W]` → `[B, C₀, H/4, W/4]`, then LayerNorm over channels.
#[derive(Module, Debug)]
pub struct Stem {
    pub conv: ConvAct,
    pub norm: LayerNorm,
}

/// LayerNorm over channels, then a 2×2 convolution stride 2: `[B, C, h, w]` →
/// `[B, C', h/2, w/2]`.
#[derive(Module, Debug)]
pub struct Downsample {
    pub norm: LayerNorm,
    pub conv: ConvAct,
}

/// Global Response Normalisation (V2), over `[B, h, w, C]`:
/// `x + β + γ · x · ‖x‖₂,hw / (mean_c ‖x‖₂,hw + ε)`.
#[derive(Module, Debug)]
pub struct Grn {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
}

#[derive(Module, Debug)]
pub struct Block {
    /// 7×7 depthwise, with bias.
    pub conv_dw: ConvAct,
    pub norm: LayerNorm,
    /// C → 4C
    pub fc1: Linear,
    pub grn: Option<Grn>,
    /// 4C → C
    pub fc2: Linear,
    /// Layer scale `[C]` (V1).
    pub gamma: Option<Param<Tensor<1>>>,
}

#[derive(Module, Debug)]
pub struct Stage {
    pub downsample: Option<Downsample>,
    pub blocks: Vec<Block>,
}

#[derive(Module, Debug)]
pub struct Head {
    /// LayerNorm over the last stage's channels before pooling (`norm_pre`).
    pub norm_pre: Option<LayerNorm>,
    /// LayerNorm of the pooled vector (`head.norm`).
    pub norm: Option<LayerNorm>,
    pub fc: Linear,
}

#[derive(Module, Debug)]
pub struct ConvNeXt {
    pub stem: Stem,
    pub stages: Vec<Stage>,
    pub head: Head,
}

impl ConvNeXt {
    fn read(c: &Config, p: &Params) -> Result<Self, LoadError> {
        let dim0 = c.dims.first().copied().unwrap_or(0);
        let stem = Stem {
            conv: conv(
                &p.pp("stem").pp(0),
                ConvSpec::new(3, dim0, c.stem_patch, c.stem_patch),
                true,
                Padding::Valid,
                Act::Identity,
            )?,
            norm: LayerNorm::read(&p.pp("stem").pp(1), dim0, LN_EPSILON)?,
        };
        let mlp = if c.conv_mlp {
            Stored::OutIn1x1
        } else {
            Stored::OutIn
        };
        let mut stages = Vec::with_capacity(c.depths.len());
        for (s, (&depth, &dim)) in c.depths.iter().zip(&c.dims).enumerate() {
            let sp = p.pp("stages").pp(s);
            let downsample = if s == 0 {
                None
            } else {
                let dp = sp.pp("downsample");
                let previous = c.dims[s - 1];
                Some(Downsample {
                    norm: LayerNorm::read(&dp.pp(0), previous, LN_EPSILON)?,
                    conv: conv(
                        &dp.pp(1),
                        ConvSpec::new(previous, dim, 2, 2),
                        true,
                        Padding::Valid,
                        Act::Identity,
                    )?,
                })
            };
            let hidden = c.hidden[s];
            let blocks = (0..depth)
                .map(|b| -> Result<Block, LoadError> {
                    let bp = sp.pp("blocks").pp(b);
                    let mp = bp.pp("mlp");
                    Ok(Block {
                        conv_dw: conv(
                            &bp.pp("conv_dw"),
                            ConvSpec::depthwise(dim, c.kernel, 1),
                            true,
                            Padding::Symmetric,
                            Act::Identity,
                        )?,
                        norm: LayerNorm::read(&bp.pp("norm"), dim, LN_EPSILON)?,
                        fc1: linear(&mp.pp("fc1"), dim, hidden, mlp, true)?,
                        grn: if c.grn {
                            let gp = mp.pp("grn");
                            Some(Grn {
                                weight: Param::from_tensor(gp.tensor(
                                    "weight",
                                    [hidden],
                                    Init::Zeros,
                                )?),
                                bias: Param::from_tensor(gp.tensor(
                                    "bias",
                                    [hidden],
                                    Init::Zeros,
                                )?),
                            })
                        } else {
                            None
                        },
                        fc2: linear(&mp.pp("fc2"), hidden, dim, mlp, true)?,
                        gamma: if c.layer_scale {
                            Some(Param::from_tensor(bp.tensor("gamma", [dim], Init::Ones)?))
                        } else {
                            None
                        },
                    })
                })
                .collect::<Result<Vec<_>, LoadError>>()?;
            stages.push(Stage { downsample, blocks });
        }
        let features = c.dims.last().copied().unwrap_or(dim0);
        let head = Head {
            norm_pre: if c.head_norm_first {
                Some(LayerNorm::read(&p.pp("norm_pre"), features, LN_EPSILON)?)
            } else {
                None
            },
            norm: if c.head_norm_first {
                None
            } else {
                Some(LayerNorm::read(
                    &p.pp("head").pp("norm"),
                    features,
                    LN_EPSILON,
                )?)
            },
            fc: linear(
                &p.pp("head").pp("fc"),
                features,
                c.classes,
                Stored::OutIn,
                true,
            )?,
        };
        Ok(ConvNeXt { stem, stages, head })
    }

    /// `[B, 3, H, W]` → `[B, C₀, H/4, W/4]`
    fn forward_stem(&self, images: Tensor<4>) -> Tensor<4> {
        let x = channels_last(in_dtype_of(images, &self.stem.conv.conv.weight));
        self.stem.norm.forward_channels(self.stem.conv.forward(x))
    }

    /// The head: `[B, C, h, w]` → `[B, classes]`.
    fn forward_head(&self, x: Tensor<4>) -> Tensor<2> {
        let head = &self.head;
        let x = match &head.norm_pre {
            Some(norm) => norm.forward_channels(x),
            None => x,
        };
        let [batch, channels, _, _] = x.dims();
        let pooled = x.mean_dims(&[2, 3]).reshape([batch, channels]);
        let pooled = match &head.norm {
            Some(norm) => norm.forward(pooled),
            None => pooled,
        };
        head.fc.forward(in_dtype_of(pooled, &head.fc.weight))
    }
}

impl Stage {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = match &self.downsample {
            Some(ds) => ds.conv.forward(ds.norm.forward_channels(x)),
            None => match self.blocks.first() {
                Some(block) => in_dtype_of(x, &block.conv_dw.conv.weight),
                None => x,
            },
        };
        self.blocks.iter().fold(x, |x, block| block.forward(x))
    }
}

impl Block {
    /// `[B, C, h, w]` → `[B, C, h, w]`
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = x.clone();
        let x = self.conv_dw.forward(x).permute([0, 2, 3, 1]); // [B, h, w, C]
        let x = self.norm.forward(x);
        let x = gelu(self.fc1.forward(x)); // [B, h, w, 4C]
        let x = match &self.grn {
            Some(grn) => grn.forward(x),
            None => x,
        };
        let x = self.fc2.forward(x); // [B, h, w, C]
        let x = match &self.gamma {
            Some(gamma) => {
                let channels = gamma.dims()[0];
                x * gamma.val().reshape([1, 1, 1, channels])
            }
            None => x,
        };
        x.permute([0, 3, 1, 2]) + shortcut
    }
}

impl Grn {
    /// `[B, h, w, C]` → `[B, h, w, C]`
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let channels = self.weight.dims()[0];
        let norm = (x.clone() * x.clone()).sum_dims(&[1, 2]).sqrt(); // [B, 1, 1, C]
        let scale = norm.clone() / norm.mean_dim(3).add_scalar(GRN_EPSILON);
        let weight = self.weight.val().reshape([1, 1, 1, channels]);
        let bias = self.bias.val().reshape([1, 1, 1, channels]);
        x.clone() + (bias + weight * (x * scale))
    }
}

impl Backbone for ConvNeXt {
    fn tap_names(&self) -> Vec<String> {
        (0..self.stages.len())
            .map(|s| format!("stages.{s}"))
            .collect()
    }

    fn forward_to(&self, tap: usize, images: Tensor<4>) -> Tapped {
        let x = self.stages[..=tap]
            .iter()
            .fold(self.forward_stem(images), |x, stage| stage.forward(x));
        Tapped::map(x)
    }

    fn forward_from(&self, tap: usize, tapped: Tapped) -> Tensor<2> {
        let x = self.stages[tap + 1..]
            .iter()
            .fold(tapped.activation.spatial(), |x, stage| stage.forward(x));
        self.forward_head(x)
    }

    fn pooled_classifier(&self, _tap: usize) -> Option<&Linear> {
        None
    }

    fn cast_through(mut self, tap: usize, dtype: DType) -> Self {
        self.stem = cast(self.stem, dtype);
        self.stages = cast_first(self.stages, tap + 1, dtype);
        self
    }

    fn dtype(&self) -> DType {
        self.stem.conv.conv.weight.val().dtype()
    }
}
