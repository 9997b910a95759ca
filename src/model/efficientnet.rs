//! timm's EfficientNet (`timm/models/efficientnet.py`) and MobileNetV3
//! (`timm/models/mobilenetv3.py`), two families built by the same block builder
//! (`_efficientnet_builder.py`, `_efficientnet_blocks.py`): a 3×3 stride-2 stem
//! (`conv_stem`, `bn1` with its activation), stages of blocks `blocks.{stage}.{block}`,
//! then a head.
//!
//! Blocks: depthwise-separable (`conv_dw`, `bn1` + act, optional `se`, `conv_pw`, `bn2`
//! without act), inverted residual (`conv_pw`, `bn1` + act, `conv_dw`, `bn2` + act,
//! optional `se`, `conv_pwl`, `bn3` without act) and conv-BN-act (`conv`, `bn1` + act);
//! the first two add their input where the stride is 1 and the channels stay the same.
//! Squeeze-excitation: `se.conv_reduce` → act → `se.conv_expand` → gate.
//!
//! - EfficientNet (`efficientnet_b0` … `b7`, and `b8`, `l2`): seven stages, SiLU
//!   everywhere, SE with SiLU and a sigmoid gate; head `conv_head` (1×1, no bias) + `bn2`
//!   with SiLU → global average pool → `classifier`. Taps `blocks.0` … `blocks.6` and
//!   `bn2`, the last (pytorch-grad-cam's documented `model.bn2`), directly followed by
//!   the pooled classifier.
//! - MobileNetV3 (`mobilenetv3_large_{075,100}`, `mobilenetv3_small_{050,075,100}`):
//!   seven stages (large) or six (small), the last one conv-BN-act 1×1; ReLU in the first
//!   stages, hard-swish after (and in the stem); SE with ReLU and a hard-sigmoid gate
//!   (`relu6(x + 3) / 6`); head global average pool → `conv_head` (1×1 with bias) →
//!   hard-swish → `classifier`. Taps `blocks.0` … `blocks.N`; the last, the final
//!   conv-BN-act stage, is pytorch-grad-cam's `model.blocks[-1]`.
//!
//! Read off the file: channels, kernel sizes, blocks per stage, block types and where SE
//! is. Not in the file, taken from the architecture definitions once the layout is
//! recognised: each stage's stride (only its first block strides) and activation. Not in
//! the file at all: the `tf_` members' TensorFlow "same" padding and BatchNorm epsilon
//! 1e-3 (else 1e-5), decided by the model name a checkpoint carries (timm's `arch`) or
//! `--arch`: a name starting with `tf_`. Without one, the PyTorch-native member is read.
//! The member's name is found by comparing the layout with timm's channel and depth
//! scaling of each member; other widths and depths get a descriptive name. MobileNetV3
//! "minimal" members (no SE, ReLU only) are refused: nothing in the file confirms their
//! activations.

use std::any::Any;
use std::sync::Arc;

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{DType, Device, Tensor};

use super::layers::{
    Act, BnNames, ConvAct, ConvSpec, Padding, SqueezeExcite, Stored, cast, cast_first,
    channels_last, conv_bn, in_dtype_of, linear, pool_and_classify,
};
use super::{
    Arch, ArchSpec, Backbone, Hints, Names, Network, Params, Source, Tapped, Variant, prefix_of,
};
use crate::checkpoint::{LoadError, Weights};

/// PyTorch's BatchNorm epsilon, and TensorFlow's (timm's `BN_EPS_TF_DEFAULT`).
const BN_EPSILON: f64 = 1e-5;
const BN_EPSILON_TF: f64 = 1e-3;

/// Which network of the two families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    EfficientNet,
    MobileNetV3Large,
    MobileNetV3Small,
}

impl Kind {
    fn family(self) -> &'static str {
        match self {
            Kind::EfficientNet => "efficientnet",
            Kind::MobileNetV3Large | Kind::MobileNetV3Small => "mobilenetv3",
        }
    }

    fn base_name(self) -> &'static str {
        match self {
            Kind::EfficientNet => "efficientnet",
            Kind::MobileNetV3Large => "mobilenetv3_large",
            Kind::MobileNetV3Small => "mobilenetv3_small",
        }
    }

    /// The stem's and the head's activation (timm's `act_layer`).
    fn act(self) -> Act {
        match self {
            Kind::EfficientNet => Act::Silu,
            _ => Act::HardSwish,
        }
    }

    /// Squeeze-excitation's activation and gate.
    fn se_acts(self) -> (Act, Act) {
        match self {
            Kind::EfficientNet => (Act::Silu, Act::Sigmoid),
            _ => (Act::Relu, Act::TORCH_HARD_SIGMOID),
        }
    }

    /// The architecture definition (timm's `arch_def`).
    fn definition(self) -> &'static [&'static [Def]] {
        match self {
            Kind::EfficientNet => EFFICIENTNET,
            Kind::MobileNetV3Large => MOBILENETV3_LARGE,
            Kind::MobileNetV3Small => MOBILENETV3_SMALL,
        }
    }
}

/// A block type of timm's builder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// `ds`: depthwise 3×3 → (SE) → pointwise.
    DepthwiseSeparable,
    /// `ir`: pointwise expansion → depthwise → (SE) → pointwise projection.
    InvertedResidual,
    /// `cn`: one convolution with BatchNorm and activation.
    ConvBnAct,
}

impl BlockKind {
    fn code(self) -> &'static str {
        match self {
            BlockKind::DepthwiseSeparable => "ds",
            BlockKind::InvertedResidual => "ir",
            BlockKind::ConvBnAct => "cn",
        }
    }
}

/// One block definition string of timm's `arch_def`, e.g. `ir_r2_k3_s2_e6_c24_se0.25`
/// (`repeats` blocks; EfficientNet's are scaled by the depth multiplier).
#[derive(Clone, Copy, Debug)]
struct Def {
    kind: BlockKind,
    repeats: usize,
    kernel: usize,
    stride: usize,
    expansion: f64,
    channels: usize,
    se: bool,
    /// `nre`: ReLU instead of the network's activation.
    relu: bool,
}

const fn def(kind: BlockKind, repeats: usize, kernel: usize, stride: usize) -> Def {
    Def {
        kind,
        repeats,
        kernel,
        stride,
        expansion: 1.0,
        channels: 0,
        se: false,
        relu: false,
    }
}

const fn ds(r: usize, k: usize, s: usize, c: usize, se: bool, relu: bool) -> Def {
    Def {
        channels: c,
        se,
        relu,
        ..def(BlockKind::DepthwiseSeparable, r, k, s)
    }
}

const fn ir(r: usize, k: usize, s: usize, e: f64, c: usize, se: bool, relu: bool) -> Def {
    Def {
        expansion: e,
        channels: c,
        se,
        relu,
        ..def(BlockKind::InvertedResidual, r, k, s)
    }
}

const fn cn(c: usize) -> Def {
    Def {
        channels: c,
        ..def(BlockKind::ConvBnAct, 1, 1, 1)
    }
}

/// `_gen_efficientnet`: SE 0.25 everywhere.
const EFFICIENTNET: &[&[Def]] = &[
    &[ds(1, 3, 1, 16, true, false)],
    &[ir(2, 3, 2, 6.0, 24, true, false)],
    &[ir(2, 5, 2, 6.0, 40, true, false)],
    &[ir(3, 3, 2, 6.0, 80, true, false)],
    &[ir(3, 5, 1, 6.0, 112, true, false)],
    &[ir(4, 5, 2, 6.0, 192, true, false)],
    &[ir(1, 3, 1, 6.0, 320, true, false)],
];

/// `_gen_mobilenet_v3`, large.
const MOBILENETV3_LARGE: &[&[Def]] = &[
    &[ds(1, 3, 1, 16, false, true)],
    &[
        ir(1, 3, 2, 4.0, 24, false, true),
        ir(1, 3, 1, 3.0, 24, false, true),
    ],
    &[ir(3, 5, 2, 3.0, 40, true, true)],
    &[
        ir(1, 3, 2, 6.0, 80, false, false),
        ir(1, 3, 1, 2.5, 80, false, false),
        ir(2, 3, 1, 2.3, 80, false, false),
    ],
    &[ir(2, 3, 1, 6.0, 112, true, false)],
    &[ir(3, 5, 2, 6.0, 160, true, false)],
    &[cn(960)],
];

/// `_gen_mobilenet_v3`, small.
const MOBILENETV3_SMALL: &[&[Def]] = &[
    &[ds(1, 3, 2, 16, true, true)],
    &[
        ir(1, 3, 2, 4.5, 24, false, true),
        ir(1, 3, 1, 3.67, 24, false, true),
    ],
    &[
        ir(1, 5, 2, 4.0, 40, true, false),
        ir(2, 5, 1, 6.0, 40, true, false),
    ],
    &[ir(2, 5, 1, 3.0, 48, true, false)],
    &[ir(3, 5, 2, 6.0, 96, true, false)],
    &[cn(576)],
];

/// EfficientNet members: (name, width multiplier, depth multiplier).
const EFFICIENTNET_MEMBERS: &[(&str, f64, f64)] = &[
    ("efficientnet_b0", 1.0, 1.0),
    ("efficientnet_b1", 1.0, 1.1),
    ("efficientnet_b2", 1.1, 1.2),
    ("efficientnet_b3", 1.2, 1.4),
    ("efficientnet_b4", 1.4, 1.8),
    ("efficientnet_b5", 1.6, 2.2),
    ("efficientnet_b6", 1.8, 2.6),
    ("efficientnet_b7", 2.0, 3.1),
    ("efficientnet_b8", 2.2, 3.6),
    ("efficientnet_l2", 4.3, 5.3),
];

/// MobileNetV3 channel multipliers: (name suffix, multiplier).
const MOBILENETV3_WIDTHS: &[(&str, f64)] = &[("050", 0.5), ("075", 0.75), ("100", 1.0)];

/// Python's `round`: halves to even.
fn round_half_even(x: f64) -> usize {
    let r = x.round();
    let r = if (x - x.trunc()).abs() == 0.5 {
        2.0 * (x / 2.0).round()
    } else {
        r
    };
    r.max(0.0) as usize
}

/// timm's `make_divisible(v, 8)`.
fn make_divisible(v: f64) -> usize {
    const DIVISOR: usize = 8;
    let mut new = DIVISOR.max(((v + DIVISOR as f64 / 2.0).floor() as usize) / DIVISOR * DIVISOR);
    if (new as f64) < 0.9 * v {
        new += DIVISOR;
    }
    new
}

/// timm's `round_channels(channels, multiplier)`.
fn round_channels(channels: usize, multiplier: f64) -> usize {
    make_divisible(channels as f64 * multiplier)
}

/// One block, as read off the file and completed by the architecture definition.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockConfig {
    pub kind: BlockKind,
    pub channels_in: usize,
    /// The depthwise convolution's channels: expanded (inverted residual), the input's
    /// (depthwise-separable) or the output's (conv-BN-act).
    pub mid: usize,
    pub channels_out: usize,
    pub kernel: usize,
    pub stride: usize,
    /// Squeeze-excitation's reduced channels.
    pub se: Option<usize>,
    pub act: Act,
}

impl BlockConfig {
    fn residual(&self) -> bool {
        self.kind != BlockKind::ConvBnAct
            && self.stride == 1
            && self.channels_in == self.channels_out
    }
}

/// Every architectural decision of a timm EfficientNet or MobileNetV3.
#[derive(Clone, Debug)]
pub struct Config {
    pub kind: Kind,
    /// timm's name (`efficientnet_b0`, `tf_mobilenetv3_large_075`) or a description.
    pub name: String,
    /// The prefix of every tensor name (`module.`, or none).
    pub prefix: String,
    /// TensorFlow "same" padding and BatchNorm epsilon 1e-3 (the `tf_` members).
    pub tf_same: bool,
    pub stem: usize,
    pub stages: Vec<Vec<BlockConfig>>,
    /// `conv_head`'s output channels.
    pub head: usize,
    pub classes: usize,
    /// Trainable parameters, counted in the file.
    pub parameters: usize,
}

impl Config {
    fn epsilon(&self) -> f64 {
        if self.tf_same {
            BN_EPSILON_TF
        } else {
            BN_EPSILON
        }
    }

    /// timm's `create_conv2d` padding: "same" is static (symmetric) where the stride is 1
    /// and the kernel odd, dynamic (TensorFlow's) otherwise.
    fn padding(&self, stride: usize) -> Padding {
        if self.tf_same && stride > 1 {
            Padding::TfSame
        } else {
            Padding::Symmetric
        }
    }

    fn depths(&self) -> Vec<usize> {
        self.stages.iter().map(Vec::len).collect()
    }

    fn last_channels(&self) -> usize {
        self.stages
            .last()
            .and_then(|s| s.last())
            .map_or(self.stem, |b| b.channels_out)
    }

    /// Every tensor of the network, with its shape, in the order of timm's state dict.
    fn tensors(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let bn = |out: &mut Vec<(String, Vec<usize>)>, name: &str, c: usize| {
            for field in ["weight", "bias", "running_mean", "running_var"] {
                out.push((format!("{name}.{field}"), vec![c]));
            }
        };
        out.push(("conv_stem.weight".into(), vec![self.stem, 3, 3, 3]));
        bn(&mut out, "bn1", self.stem);
        for (s, stage) in self.stages.iter().enumerate() {
            for (b, block) in stage.iter().enumerate() {
                let p = format!("blocks.{s}.{b}");
                let (i, m, o, k) = (
                    block.channels_in,
                    block.mid,
                    block.channels_out,
                    block.kernel,
                );
                let se = |out: &mut Vec<(String, Vec<usize>)>| {
                    if let Some(r) = block.se {
                        out.push((format!("{p}.se.conv_reduce.weight"), vec![r, m, 1, 1]));
                        out.push((format!("{p}.se.conv_reduce.bias"), vec![r]));
                        out.push((format!("{p}.se.conv_expand.weight"), vec![m, r, 1, 1]));
                        out.push((format!("{p}.se.conv_expand.bias"), vec![m]));
                    }
                };
                match block.kind {
                    BlockKind::DepthwiseSeparable => {
                        out.push((format!("{p}.conv_dw.weight"), vec![m, 1, k, k]));
                        bn(&mut out, &format!("{p}.bn1"), m);
                        se(&mut out);
                        out.push((format!("{p}.conv_pw.weight"), vec![o, m, 1, 1]));
                        bn(&mut out, &format!("{p}.bn2"), o);
                    }
                    BlockKind::InvertedResidual => {
                        out.push((format!("{p}.conv_pw.weight"), vec![m, i, 1, 1]));
                        bn(&mut out, &format!("{p}.bn1"), m);
                        out.push((format!("{p}.conv_dw.weight"), vec![m, 1, k, k]));
                        bn(&mut out, &format!("{p}.bn2"), m);
                        se(&mut out);
                        out.push((format!("{p}.conv_pwl.weight"), vec![o, m, 1, 1]));
                        bn(&mut out, &format!("{p}.bn3"), o);
                    }
                    BlockKind::ConvBnAct => {
                        out.push((format!("{p}.conv.weight"), vec![o, i, k, k]));
                        bn(&mut out, &format!("{p}.bn1"), o);
                    }
                }
            }
        }
        let last = self.last_channels();
        out.push(("conv_head.weight".into(), vec![self.head, last, 1, 1]));
        if self.kind == Kind::EfficientNet {
            bn(&mut out, "bn2", self.head);
        } else {
            out.push(("conv_head.bias".into(), vec![self.head]));
        }
        out.push(("classifier.weight".into(), vec![self.classes, self.head]));
        out.push(("classifier.bias".into(), vec![self.classes]));
        out
    }
}

/// timm's layout of a member: stem, blocks and head channels for a width multiplier
/// and (EfficientNet) a depth multiplier.
fn generate(kind: Kind, width: f64, depth: f64) -> (usize, Vec<Vec<BlockConfig>>, usize) {
    let (se_act_relu, net_act) = (Act::Relu, kind.act());
    let stem = match kind {
        Kind::EfficientNet => round_channels(32, width),
        // `fix_stem` below 0.75.
        _ if width < 0.75 => 16,
        _ => round_channels(16, width),
    };
    let head = match kind {
        Kind::EfficientNet => round_channels(1280, width),
        Kind::MobileNetV3Large => 1280,
        Kind::MobileNetV3Small => 1024,
    };
    let mut channels = stem;
    let mut stages = Vec::new();
    for defs in kind.definition() {
        let mut blocks = Vec::new();
        for d in *defs {
            let repeats = if kind == Kind::EfficientNet {
                (d.repeats as f64 * depth).ceil() as usize
            } else {
                d.repeats
            };
            for _ in 0..repeats {
                let stride = if blocks.is_empty() { d.stride } else { 1 };
                let channels_out = round_channels(d.channels, width);
                let mid = match d.kind {
                    BlockKind::DepthwiseSeparable => channels,
                    BlockKind::InvertedResidual => make_divisible(channels as f64 * d.expansion),
                    BlockKind::ConvBnAct => channels_out,
                };
                let se = d.se.then(|| match kind {
                    // The ratio of the block's input: 0.25 / expansion of `mid`.
                    Kind::EfficientNet => round_half_even(mid as f64 * (0.25 / d.expansion)),
                    // `se_from_exp`, rounded by `round_channels`.
                    _ => make_divisible(mid as f64 * 0.25),
                });
                blocks.push(BlockConfig {
                    kind: d.kind,
                    channels_in: channels,
                    mid,
                    channels_out,
                    kernel: d.kernel,
                    stride,
                    se,
                    act: if d.relu { se_act_relu } else { net_act },
                });
                channels = channels_out;
            }
        }
        stages.push(blocks);
    }
    (stem, stages, head)
}

/// A block as the file has it: type, channels, kernel and whether it has SE.
struct ReadBlock {
    path: String,
    kind: BlockKind,
    mid: usize,
    channels_out: usize,
    kernel: usize,
    se: Option<usize>,
}

/// An EfficientNet or a MobileNetV3 of timm's, when the file has timm's `conv_stem`.
pub fn detect(weights: &Weights, hints: &Hints) -> Option<Result<Arch, LoadError>> {
    let prefix = prefix_of(weights, "conv_stem.weight")?;
    let names = Names::new(weights, &prefix);
    if !names.has("blocks.0.0.conv_dw.weight") && !names.has("blocks.0.0.conv.weight") {
        return None;
    }
    Some(read(weights, &names, hints).map(|config| Arc::new(config) as Arch))
}

fn unsupported(what: String) -> LoadError {
    LoadError::NotSupported(what)
}

fn read_block(names: &Names, path: String) -> Result<Option<ReadBlock>, LoadError> {
    let has = |n: &str| names.has(&format!("{path}.{n}"));
    let dim = |n: &str, axis| names.dim(&format!("{path}.{n}"), axis);
    let (kind, mid, channels_out, kernel) = if has("conv_pwl.weight") {
        let mid = dim("conv_pw.weight", 0)?;
        (
            BlockKind::InvertedResidual,
            mid,
            dim("conv_pwl.weight", 0)?,
            dim("conv_dw.weight", 2)?,
        )
    } else if has("conv_dw.weight") {
        (
            BlockKind::DepthwiseSeparable,
            dim("conv_dw.weight", 0)?,
            dim("conv_pw.weight", 0)?,
            dim("conv_dw.weight", 2)?,
        )
    } else if has("conv.weight") {
        let out = dim("conv.weight", 0)?;
        (BlockKind::ConvBnAct, out, out, dim("conv.weight", 2)?)
    } else {
        return Ok(None);
    };
    let se = if has("se.conv_reduce.weight") {
        Some(dim("se.conv_reduce.weight", 0)?)
    } else {
        None
    };
    Ok(Some(ReadBlock {
        path,
        kind,
        mid,
        channels_out,
        kernel,
        se,
    }))
}

/// The blocks of each stage, as long as `blocks.{s}.0` exists.
fn read_stages(names: &Names) -> Result<Vec<Vec<ReadBlock>>, LoadError> {
    let mut stages = Vec::new();
    loop {
        let s = stages.len();
        let mut blocks = Vec::new();
        while let Some(block) = read_block(names, format!("blocks.{s}.{}", blocks.len()))? {
            blocks.push(block);
        }
        if blocks.is_empty() {
            return Ok(stages);
        }
        stages.push(blocks);
    }
}

/// Where the blocks read differ from a definition: the first block that does not fit,
/// and how.
fn mismatch(kind: Kind, stages: &[Vec<ReadBlock>]) -> Option<String> {
    let defs = kind.definition();
    if stages.len() != defs.len() {
        return Some(format!(
            "{} block stages where {} has {}",
            stages.len(),
            kind.base_name(),
            defs.len()
        ));
    }
    for (blocks, defs) in stages.iter().zip(defs) {
        let expected: Vec<&Def> = if kind == Kind::EfficientNet {
            // Any depth: the stage's one definition repeated.
            blocks.iter().map(|_| &defs[0]).collect()
        } else {
            defs.iter()
                .flat_map(|d| std::iter::repeat_n(d, d.repeats))
                .collect()
        };
        if blocks.len() != expected.len() {
            let path = blocks[0].path.rsplit_once('.').map_or("", |p| p.0);
            return Some(format!(
                "{path} has {} blocks where {} has {}",
                blocks.len(),
                kind.base_name(),
                expected.len()
            ));
        }
        for (block, d) in blocks.iter().zip(expected) {
            let why = if block.kind != d.kind {
                format!(
                    "a {} block where {} has {}",
                    block.kind.code(),
                    kind.base_name(),
                    d.kind.code()
                )
            } else if block.kernel != d.kernel {
                format!(
                    "kernel {} where {} has {}",
                    block.kernel,
                    kind.base_name(),
                    d.kernel
                )
            } else if block.se.is_some() != d.se {
                format!(
                    "{} squeeze-excitation where {} has {}",
                    if block.se.is_some() { "a" } else { "no" },
                    kind.base_name(),
                    if d.se { "one" } else { "none" }
                )
            } else {
                continue;
            };
            return Some(format!("{}: {why}", block.path));
        }
    }
    None
}

/// The MobileNetV3 "minimal" layouts: no SE, 3×3 kernels, the same stage lengths.
fn is_minimal(stages: &[Vec<ReadBlock>]) -> bool {
    let large = [1, 2, 3, 4, 2, 3, 1];
    let small = [1, 2, 3, 2, 3, 1];
    let depths: Vec<usize> = stages.iter().map(Vec::len).collect();
    (depths == large || depths == small)
        && stages
            .iter()
            .flatten()
            .all(|b| b.se.is_none() && (b.kernel == 3 || b.kind == BlockKind::ConvBnAct))
}

fn read(weights: &Weights, names: &Names, hints: &Hints) -> Result<Config, LoadError> {
    let stages = read_stages(names)?;
    let efficientnet = names.has("bn2.running_mean");
    let kind = if efficientnet {
        Kind::EfficientNet
    } else if names.has("conv_head.bias") {
        match stages.len() {
            6 => Kind::MobileNetV3Small,
            _ => Kind::MobileNetV3Large,
        }
    } else {
        return Err(unsupported(format!(
            "a network of timm's EfficientNet builder ({}conv_stem.weight) that is neither \
             an EfficientNet (no {0}bn2.running_mean) nor a MobileNetV3 (no {0}conv_head.bias)",
            names.prefix()
        )));
    };
    if let Some(why) = mismatch(kind, &stages) {
        if kind != Kind::EfficientNet && is_minimal(&stages) {
            return Err(unsupported(format!(
                "a timm MobileNetV3 \"minimal\" (no squeeze-excitation, 3×3 kernels): its \
                 activations cannot be told from the file ({}{why})",
                names.prefix()
            )));
        }
        return Err(unsupported(format!(
            "a network of timm's EfficientNet builder that is neither an EfficientNet B0–B7 \
             nor a MobileNetV3 large or small: {}{why}",
            names.prefix()
        )));
    }
    let stem = names.dim("conv_stem.weight", 0)?;
    let head = names.dim("conv_head.weight", 0)?;
    let classes = names.dim("classifier.weight", 0)?;
    let (se_relu, net_act) = (Act::Relu, kind.act());
    let mut channels = stem;
    let mut configs = Vec::with_capacity(stages.len());
    for (blocks, defs) in stages.iter().zip(kind.definition()) {
        let mut stage = Vec::with_capacity(blocks.len());
        // The definition each block comes from, as in `mismatch`.
        let expected: Vec<&Def> = if kind == Kind::EfficientNet {
            blocks.iter().map(|_| &defs[0]).collect()
        } else {
            defs.iter()
                .flat_map(|d| std::iter::repeat_n(d, d.repeats))
                .collect()
        };
        for (b, (block, d)) in blocks.iter().zip(expected).enumerate() {
            stage.push(BlockConfig {
                kind: block.kind,
                channels_in: channels,
                mid: block.mid,
                channels_out: block.channels_out,
                kernel: block.kernel,
                stride: if b == 0 { d.stride } else { 1 },
                se: block.se,
                act: if d.relu { se_relu } else { net_act },
            });
            if kind == Kind::EfficientNet
                && block.kind == BlockKind::InvertedResidual
                && block.mid != 6 * channels
            {
                return Err(unsupported(format!(
                    "{}{}: expansion {} → {} where EfficientNet's is 6",
                    names.prefix(),
                    block.path,
                    channels,
                    block.mid
                )));
            }
            channels = block.channels_out;
        }
        configs.push(stage);
    }
    let tf_same = hints
        .name
        .as_deref()
        .is_some_and(|n| n.trim().starts_with("tf_"));
    let mut config = Config {
        kind,
        name: String::new(),
        prefix: names.prefix().to_string(),
        tf_same,
        stem,
        stages: configs,
        head,
        classes,
        parameters: 0,
    };
    check_tensors(weights, &config)?;
    // The network's own tensors but BatchNorm statistics: `num_batches_tracked`, where a
    // file has it, is no parameter.
    config.parameters = config
        .tensors()
        .iter()
        .filter(|(name, _)| !name.ends_with("running_mean") && !name.ends_with("running_var"))
        .map(|(_, shape)| shape.iter().product::<usize>())
        .sum();
    config.name = member_name(&config);
    Ok(config)
}

/// Every tensor of the layout in the file with its shape, and no other under the prefix.
fn check_tensors(weights: &Weights, config: &Config) -> Result<(), LoadError> {
    let expected = config.tensors();
    for (name, shape) in &expected {
        let full = format!("{}{name}", config.prefix);
        match weights.tensors.get(&full) {
            None => return Err(LoadError::Missing { names: vec![full] }),
            Some(t) if &t.shape != shape => {
                return Err(LoadError::Shape {
                    name: full,
                    expected: shape.clone(),
                    found: t.shape.clone(),
                });
            }
            Some(_) => {}
        }
    }
    let known: std::collections::HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    let extra = weights.tensors.keys().find(|k| {
        k.strip_prefix(config.prefix.as_str())
            .is_some_and(|n| !n.ends_with("num_batches_tracked") && !known.contains(n))
    });
    match extra {
        Some(name) => Err(unsupported(format!(
            "tensor {name:?} is not part of a timm {} (another network of timm's \
             EfficientNet builder?)",
            match config.kind {
                Kind::EfficientNet => "EfficientNet",
                _ => "MobileNetV3",
            }
        ))),
        None => Ok(()),
    }
}

/// timm's name, where the layout is one of its members', else a description.
fn member_name(config: &Config) -> String {
    let matches = |width: f64, depth: f64| {
        let (stem, stages, head) = generate(config.kind, width, depth);
        stem == config.stem && stages == config.stages && head == config.head
    };
    let found = match config.kind {
        Kind::EfficientNet => EFFICIENTNET_MEMBERS
            .iter()
            .find(|(_, w, d)| matches(*w, *d))
            .map(|(name, _, _)| name.to_string()),
        kind => MOBILENETV3_WIDTHS
            .iter()
            .find(|(_, w)| matches(*w, 1.0))
            .map(|(suffix, _)| format!("{}_{suffix}", kind.base_name())),
    };
    match found {
        Some(name) if config.tf_same => format!("tf_{name}"),
        Some(name) => name,
        None => format!(
            "{} (blocks {:?}, stem {}, head {}{})",
            config.kind.base_name(),
            config.depths(),
            config.stem,
            config.head,
            if config.tf_same { ", tf_" } else { "" }
        ),
    }
}

impl ArchSpec for Config {
    fn family(&self) -> &'static str {
        self.kind.family()
    }

    fn variant(&self) -> Variant {
        Variant::Timm
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn parameter_count(&self) -> usize {
        self.parameters
    }

    fn taps(&self) -> Vec<String> {
        tap_names(self.stages.len(), self.kind == Kind::EfficientNet)
    }

    fn pooled_classifier(&self) -> bool {
        self.kind == Kind::EfficientNet
    }

    fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        let value = serde_json::json!({
            "depths": self.depths(),
            "stem_channels": self.stem,
            "head_channels": self.head,
            "tf_same": self.tf_same,
        });
        match value {
            serde_json::Value::Object(map) => map,
            _ => Default::default(),
        }
    }

    fn describe(&self) -> Vec<(&'static str, String)> {
        let widths: Vec<usize> = self
            .stages
            .iter()
            .filter_map(|s| s.last().map(|b| b.channels_out))
            .collect();
        vec![
            ("depths", format!("{:?}", self.depths())),
            ("widths", format!("{widths:?}")),
            (
                "stem",
                format!(
                    "3×3 stride 2, {} channels, {:?}",
                    self.stem,
                    self.kind.act()
                ),
            ),
            (
                "head",
                match self.kind {
                    Kind::EfficientNet => format!("1×1 to {}, BatchNorm, SiLU, pool", self.head),
                    _ => format!("pool, 1×1 to {} with bias, hard-swish", self.head),
                },
            ),
            (
                "padding",
                if self.tf_same {
                    "TensorFlow \"same\", BatchNorm ε 1e-3 (tf_)".into()
                } else {
                    "symmetric, BatchNorm ε 1e-5".into()
                },
            ),
        ]
    }

    fn build(&self, source: Source, device: &Device) -> Result<Network, LoadError> {
        Ok(Network::EfficientNet(EfficientNet::build(
            self, source, device,
        )?))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn tap_names(stages: usize, bn2: bool) -> Vec<String> {
    let mut taps: Vec<String> = (0..stages).map(|s| format!("blocks.{s}")).collect();
    if bn2 {
        taps.push("bn2".into());
    }
    taps
}

/// A block: `[B, in, H, W]` → `[B, out, H/stride, W/stride]`.
#[derive(Module, Debug)]
pub struct Block {
    /// Inverted residual: 1×1 `in → mid` (`conv_pw`, `bn1`) with the activation.
    pub expand: Option<ConvAct>,
    /// k×k depthwise on `mid` channels, strided, with the activation.
    pub depthwise: Option<ConvAct>,
    pub se: Option<SqueezeExcite>,
    /// 1×1 `mid → out` without activation; conv-BN-act: the block's one convolution.
    pub project: ConvAct,
    #[module(skip)]
    pub residual: bool,
}

impl Block {
    fn build(c: &Config, p: &Params, b: &BlockConfig) -> Result<Self, LoadError> {
        let norm = (BnNames::Torch, c.epsilon());
        let (i, m, o, k, s) = (b.channels_in, b.mid, b.channels_out, b.kernel, b.stride);
        let depthwise = |bn: &str| {
            conv_bn(
                &p.pp("conv_dw"),
                &p.pp(bn),
                ConvSpec::depthwise(m, k, s),
                norm,
                c.padding(s),
                b.act,
            )
        };
        let se = |p: &Params| match b.se {
            Some(reduced) => {
                let (act, gate) = c.kind.se_acts();
                SqueezeExcite::read(
                    &p.pp("se"),
                    ["conv_reduce", "conv_expand"],
                    m,
                    reduced,
                    act,
                    gate,
                )
                .map(Some)
            }
            None => Ok(None),
        };
        let pointwise = |conv: &str, bn: &str, i, o, act| {
            conv_bn(
                &p.pp(conv),
                &p.pp(bn),
                ConvSpec::new(i, o, 1, 1),
                norm,
                Padding::Symmetric,
                act,
            )
        };
        let (expand, depthwise, se, project) = match b.kind {
            BlockKind::DepthwiseSeparable => {
                let dw = depthwise("bn1")?;
                let se = se(p)?;
                (
                    None,
                    Some(dw),
                    se,
                    pointwise("conv_pw", "bn2", m, o, Act::Identity)?,
                )
            }
            BlockKind::InvertedResidual => {
                let pw = pointwise("conv_pw", "bn1", i, m, b.act)?;
                let dw = depthwise("bn2")?;
                let se = se(p)?;
                (
                    Some(pw),
                    Some(dw),
                    se,
                    pointwise("conv_pwl", "bn3", m, o, Act::Identity)?,
                )
            }
            BlockKind::ConvBnAct => {
                let conv = conv_bn(
                    &p.pp("conv"),
                    &p.pp("bn1"),
                    ConvSpec::new(i, o, k, s),
                    norm,
                    c.padding(s),
                    b.act,
                )?;
                (None, None, None, conv)
            }
        };
        Ok(Block {
            expand,
            depthwise,
            se,
            project,
            residual: b.residual(),
        })
    }

    fn first(&self) -> &ConvAct {
        self.expand
            .as_ref()
            .or(self.depthwise.as_ref())
            .unwrap_or(&self.project)
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = x.clone();
        if let Some(expand) = &self.expand {
            y = expand.forward(y); // [B, mid, H, W]
        }
        if let Some(depthwise) = &self.depthwise {
            y = depthwise.forward(y); // [B, mid, H/s, W/s]
        }
        if let Some(se) = &self.se {
            y = se.forward(y);
        }
        let y = self.project.forward(y); // [B, out, H/s, W/s]
        if self.residual { y + x } else { y }
    }
}

/// One stage `blocks.{s}`: its first block strides.
#[derive(Module, Debug)]
pub struct Stage {
    pub blocks: Vec<Block>,
}

impl Stage {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = in_dtype_of(x, &self.blocks[0].first().conv.weight);
        self.blocks.iter().fold(x, |x, block| block.forward(x))
    }
}

/// A timm EfficientNet or MobileNetV3.
#[derive(Module, Debug)]
pub struct EfficientNet {
    /// `conv_stem` 3×3 stride 2 `3 → stem` with `bn1` and the activation.
    pub stem: ConvAct,
    pub stages: Vec<Stage>,
    /// EfficientNet: `conv_head` 1×1 `last → head` with `bn2` and SiLU (tap `bn2`).
    pub conv_head: Option<ConvAct>,
    /// MobileNetV3: `conv_head` 1×1 with bias on the pooled features, then hard-swish.
    pub pooled_head: Option<Linear>,
    pub classifier: Linear,
    #[module(skip)]
    pub head_act: Act,
}

impl EfficientNet {
    fn build(c: &Config, source: Source, device: &Device) -> Result<Self, LoadError> {
        let p = Params::new(source, &c.prefix, device);
        let norm = (BnNames::Torch, c.epsilon());
        let stem = conv_bn(
            &p.pp("conv_stem"),
            &p.pp("bn1"),
            ConvSpec::new(3, c.stem, 3, 2),
            norm,
            c.padding(2),
            c.kind.act(),
        )?;
        let blocks = p.pp("blocks");
        let stages = c
            .stages
            .iter()
            .enumerate()
            .map(|(s, stage)| {
                let blocks = stage
                    .iter()
                    .enumerate()
                    .map(|(b, block)| Block::build(c, &blocks.pp(s).pp(b), block))
                    .collect::<Result<_, _>>()?;
                Ok(Stage { blocks })
            })
            .collect::<Result<_, LoadError>>()?;
        let last = c.last_channels();
        let (conv_head, pooled_head) = match c.kind {
            Kind::EfficientNet => {
                let head = conv_bn(
                    &p.pp("conv_head"),
                    &p.pp("bn2"),
                    ConvSpec::new(last, c.head, 1, 1),
                    norm,
                    Padding::Symmetric,
                    Act::Silu,
                )?;
                (Some(head), None)
            }
            _ => {
                let head = linear(&p.pp("conv_head"), last, c.head, Stored::OutIn1x1, true)?;
                (None, Some(head))
            }
        };
        let classifier = linear(&p.pp("classifier"), c.head, c.classes, Stored::OutIn, true)?;
        p.finish()?;
        Ok(EfficientNet {
            stem,
            stages,
            conv_head,
            pooled_head,
            classifier,
            head_act: c.kind.act(),
        })
    }

    /// `[B, 3, H, W]` → `[B, stem, H/2, W/2]`
    fn forward_stem(&self, images: Tensor<4>) -> Tensor<4> {
        let images = channels_last(in_dtype_of(images, &self.stem.conv.weight));
        self.stem.forward(images)
    }

    /// `[B, last, h, w]` → `[B, head, h, w]` (EfficientNet's `conv_head` + `bn2`).
    fn forward_conv_head(&self, x: Tensor<4>) -> Tensor<4> {
        match &self.conv_head {
            Some(head) => head.forward(in_dtype_of(x, &head.conv.weight)),
            None => x,
        }
    }

    /// Global average pool, (MobileNetV3: `conv_head` and hard-swish), classifier.
    fn forward_head(&self, x: Tensor<4>) -> Tensor<2> {
        let Some(head) = &self.pooled_head else {
            return pool_and_classify(x, &self.classifier);
        };
        let [batch, channels, _, _] = x.dims();
        let pooled = x.mean_dims(&[2, 3]).reshape([batch, channels]);
        let hidden = self
            .head_act
            .apply(head.forward(in_dtype_of(pooled, &head.weight)));
        self.classifier
            .forward(in_dtype_of(hidden, &self.classifier.weight))
    }
}

impl Backbone for EfficientNet {
    fn tap_names(&self) -> Vec<String> {
        tap_names(self.stages.len(), self.conv_head.is_some())
    }

    fn forward_to(&self, tap: usize, images: Tensor<4>) -> Tapped {
        let stages = self.stages.len();
        let x = self.stages[..=tap.min(stages - 1)]
            .iter()
            .fold(self.forward_stem(images), |x, stage| stage.forward(x));
        let x = if tap >= stages {
            self.forward_conv_head(x)
        } else {
            x
        };
        Tapped::map(x)
    }

    fn forward_from(&self, tap: usize, tapped: Tapped) -> Tensor<2> {
        let stages = self.stages.len();
        let x = tapped.activation.spatial();
        if tap >= stages {
            return self.forward_head(x);
        }
        let x = self.stages[tap + 1..]
            .iter()
            .fold(x, |x, stage| stage.forward(x));
        self.forward_head(self.forward_conv_head(x))
    }

    fn pooled_classifier(&self, tap: usize) -> Option<&Linear> {
        (self.conv_head.is_some() && tap == self.stages.len()).then_some(&self.classifier)
    }

    fn cast_through(mut self, tap: usize, dtype: DType) -> Self {
        self.stem = cast(self.stem, dtype);
        self.stages = cast_first(self.stages, tap + 1, dtype);
        if tap >= self.stages.len() {
            self.conv_head = self.conv_head.map(|head| cast(head, dtype));
        }
        self
    }

    fn dtype(&self) -> DType {
        self.stem.conv.weight.val().dtype()
    }
}
