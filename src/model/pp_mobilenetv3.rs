//! MobileNetV3 as PaddleClas 2.6.0 defines it (`legendary_models/mobilenet_v3.py`):
//! members `MobileNetV3_{large,small}_x{0_35,0_5,0_75,1_0,1_25}`, family `mobilenetv3`
//! (with timm's, which `efficientnet.rs` reads), variant `paddle`.
//!
//! `conv` (3×3 s2, hard-swish) → `blocks.{i}` `ResidualUnit`s (`expand_conv` 1×1 →
//! `bottleneck_conv` depthwise k×k → optional `mid_se` (`conv1` → ReLU → `conv2` →
//! hard-sigmoid of slope 0.2) → `linear_conv` 1×1 without activation; the input added
//! where the stride is 1 and the channels stay) → `last_second_conv` (1×1, hard-swish) →
//! global average pool → `last_conv` (1×1, no bias) → hard-swish → dropout → `fc`.
//!
//! Taps: `blocks.0` … `blocks.{N−1}` and `last_second_conv`, the last (the feature map
//! before the pooling). A 1×1 convolution and an activation come between the pooling
//! and `fc`: no pooled linear classifier (unless trained without `last_conv`).
//!
//! Read off the file: every channel count, kernel size and squeeze-excitation, and
//! whether it is the large (15 blocks) or the small (11 blocks) network. Not in the
//! file, taken from PaddleClas's `NET_CONFIG` for that size: each block's stride and
//! activation (ReLU or hard-swish); and the dropout (0.2, `downscale_in_infer`: ×0.8 at
//! inference).

use std::any::Any;
use std::sync::Arc;

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{DType, Device, Tensor};

use super::layers::{
    Act, ConvAct, ConvSpec, SqueezeExcite, cast, cast_first, channels_last, in_dtype_of,
};
use super::pp_lcnet::{Head, HeadSpec, conv_bn_layer, conv_out, make_divisible, se_channels};
use super::{
    Arch, ArchSpec, Backbone, Hints, Names, Network, Params, Source, Tapped, Variant, prefix_of,
};
use crate::checkpoint::{LoadError, Weights};

/// PaddleClas's `NET_CONFIG` row: kernel, expanded channels, output channels,
/// squeeze-excitation, hard-swish (else ReLU), stride.
type Row = (usize, usize, usize, bool, bool, usize);

const LARGE: [Row; 15] = [
    (3, 16, 16, false, false, 1),
    (3, 64, 24, false, false, 2),
    (3, 72, 24, false, false, 1),
    (5, 72, 40, true, false, 2),
    (5, 120, 40, true, false, 1),
    (5, 120, 40, true, false, 1),
    (3, 240, 80, false, true, 2),
    (3, 200, 80, false, true, 1),
    (3, 184, 80, false, true, 1),
    (3, 184, 80, false, true, 1),
    (3, 480, 112, true, true, 1),
    (3, 672, 112, true, true, 1),
    (5, 672, 160, true, true, 2),
    (5, 960, 160, true, true, 1),
    (5, 960, 160, true, true, 1),
];

const SMALL: [Row; 11] = [
    (3, 16, 16, true, false, 2),
    (3, 72, 24, false, false, 2),
    (3, 88, 24, false, false, 1),
    (5, 96, 40, true, true, 2),
    (5, 240, 40, true, true, 1),
    (5, 240, 40, true, true, 1),
    (5, 120, 48, true, true, 1),
    (5, 144, 48, true, true, 1),
    (5, 288, 96, true, true, 2),
    (5, 576, 96, true, true, 1),
    (5, 576, 96, true, true, 1),
];

const STEM: usize = 16;
const CLASS_EXPAND: usize = 1280;
const DROPOUT: f64 = 0.2;
/// PaddleClas's own `Hardsigmoid(slope=0.2, offset=0.5)` in the squeeze-excitation.
const SE_GATE: Act = Act::HardSigmoid { slope: 0.2 };

const SCALES: [(&str, f64); 5] = [
    ("0_35", 0.35),
    ("0_5", 0.5),
    ("0_75", 0.75),
    ("1_0", 1.0),
    ("1_25", 1.25),
];

/// Large or small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    Large,
    Small,
}

impl Size {
    fn rows(self) -> &'static [Row] {
        match self {
            Size::Large => &LARGE,
            Size::Small => &SMALL,
        }
    }

    /// `class_squeeze`: `last_second_conv`'s channels at scale 1.
    fn squeeze(self) -> usize {
        match self {
            Size::Large => 960,
            Size::Small => 576,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Size::Large => "large",
            Size::Small => "small",
        }
    }
}

/// One `ResidualUnit`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockSpec {
    pub channels_in: usize,
    /// `expand_conv`'s output, the depthwise convolution's channels.
    pub expanded: usize,
    pub channels_out: usize,
    pub kernel: usize,
    pub stride: usize,
    pub act: Act,
    /// The squeeze-excitation's reduced channels (`expanded / 4`), if it has one.
    pub se: Option<usize>,
}

impl BlockSpec {
    fn residual(&self) -> bool {
        self.stride == 1 && self.channels_in == self.channels_out
    }
}

/// A PaddleClas MobileNetV3, as read off a checkpoint.
#[derive(Clone, Debug)]
pub struct Config {
    pub prefix: String,
    pub size: Size,
    /// `conv`'s output channels.
    pub stem: usize,
    pub blocks: Vec<BlockSpec>,
    /// `last_second_conv`'s output channels.
    pub squeeze: usize,
    pub head: HeadSpec,
    pub scale: Option<&'static str>,
    pub parameters: usize,
}

/// A PaddleClas MobileNetV3 checkpoint's architecture, when its names are its.
pub fn detect(weights: &Weights, _: &Hints) -> Option<Result<Arch, LoadError>> {
    let prefix = prefix_of(weights, "last_second_conv.conv.weight")?;
    let names = Names::new(weights, &prefix);
    if !names.has("conv.conv.weight") || !names.has("blocks.0.expand_conv.conv.weight") {
        return None;
    }
    Some(Config::read(&names).map(|config| Arc::new(config) as Arch))
}

impl Config {
    fn read(names: &Names) -> Result<Config, LoadError> {
        let (stem, _) = conv_out(names, "conv.conv.weight", 3, false, Some(3))?;
        let count = names.count(|i| format!("blocks.{i}.expand_conv.conv.weight"));
        let size = match count {
            15 => Size::Large,
            11 => Size::Small,
            n => {
                return Err(LoadError::NotSupported(format!(
                    "a PaddleClas MobileNetV3 of {n} blocks ({}blocks.*): the large one has 15, the small one 11",
                    names.prefix()
                )));
            }
        };
        let mut channels = stem;
        let mut blocks = Vec::with_capacity(count);
        for (i, &(_, _, _, _, hard_swish, stride)) in size.rows().iter().enumerate() {
            let p = format!("blocks.{i}");
            let (expanded, _) = conv_out(
                names,
                &format!("{p}.expand_conv.conv.weight"),
                channels,
                false,
                Some(1),
            )?;
            let (_, kernel) = conv_out(
                names,
                &format!("{p}.bottleneck_conv.conv.weight"),
                expanded,
                true,
                None,
            )?;
            let se = se_channels(names, &format!("{p}.mid_se"), expanded)?;
            let (out, _) = conv_out(
                names,
                &format!("{p}.linear_conv.conv.weight"),
                expanded,
                false,
                Some(1),
            )?;
            blocks.push(BlockSpec {
                channels_in: channels,
                expanded,
                channels_out: out,
                kernel,
                stride,
                act: if hard_swish {
                    Act::HardSwish
                } else {
                    Act::Relu
                },
                se,
            });
            channels = out;
        }
        let (squeeze, _) = conv_out(
            names,
            "last_second_conv.conv.weight",
            channels,
            false,
            Some(1),
        )?;
        let head = HeadSpec::read(names, squeeze, Act::HardSwish, DROPOUT)?;
        let mut config = Config {
            prefix: names.prefix().to_string(),
            size,
            stem,
            blocks,
            squeeze,
            head,
            scale: None,
            parameters: names.parameters(),
        };
        config.scale = SCALES
            .iter()
            .find(|(_, scale)| config.is_scaled(*scale))
            .map(|(name, _)| *name);
        Ok(config)
    }

    /// Whether this is PaddleClas's network at `scale`.
    fn is_scaled(&self, scale: f64) -> bool {
        let width = |c: usize| make_divisible(c as f64 * scale);
        let blocks_fit =
            self.blocks
                .iter()
                .zip(self.size.rows())
                .all(|(b, &(k, exp, c, se, _, _))| {
                    b.kernel == k
                        && b.expanded == width(exp)
                        && b.channels_out == width(c)
                        && b.se == se.then(|| width(exp) / 4)
                });
        blocks_fit
            && self.stem == width(STEM)
            && self.squeeze == width(self.size.squeeze())
            && self.head.expand == Some(CLASS_EXPAND)
    }

    fn block_count(&self) -> usize {
        self.blocks.len()
    }
}

fn tap_names(blocks: usize) -> Vec<String> {
    (0..blocks)
        .map(|i| format!("blocks.{i}"))
        .chain(std::iter::once("last_second_conv".to_string()))
        .collect()
}

impl ArchSpec for Config {
    fn family(&self) -> &'static str {
        "mobilenetv3"
    }

    fn variant(&self) -> Variant {
        Variant::Paddle
    }

    fn name(&self) -> String {
        let size = self.size.name();
        match self.scale {
            Some(scale) => format!("MobileNetV3_{size}_x{scale}"),
            None => format!("MobileNetV3_{size}"),
        }
    }

    fn classes(&self) -> usize {
        self.head.classes
    }

    fn parameter_count(&self) -> usize {
        self.parameters
    }

    fn taps(&self) -> Vec<String> {
        tap_names(self.block_count())
    }

    fn pooled_classifier(&self) -> bool {
        self.head.expand.is_none()
    }

    fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        map.insert("size".into(), self.size.name().into());
        map.insert(
            "scale".into(),
            self.scale.map(|s| s.replace('_', ".")).into(),
        );
        map.insert("blocks".into(), self.blocks.len().into());
        map.insert(
            "channels".into(),
            self.blocks
                .iter()
                .map(|b| b.channels_out)
                .collect::<Vec<_>>()
                .into(),
        );
        map.insert("last_second_conv".into(), self.squeeze.into());
        map.insert("last_conv".into(), self.head.expand.into());
        map
    }

    fn describe(&self) -> Vec<(&'static str, String)> {
        let se = self.blocks.iter().filter(|b| b.se.is_some()).count();
        vec![
            ("size", self.size.name().into()),
            (
                "scale",
                self.scale
                    .map(|s| s.replace('_', "."))
                    .unwrap_or_else(|| "not a standard one".into()),
            ),
            ("stem", format!("3×3 convolution, {} channels", self.stem)),
            (
                "blocks",
                format!(
                    "{} inverted residuals ({se} with squeeze-excitation), {} → {} channels",
                    self.blocks.len(),
                    self.stem,
                    self.blocks.last().map_or(self.stem, |b| b.channels_out)
                ),
            ),
            (
                "head",
                match self.head.expand {
                    Some(expand) => format!(
                        "1×1 convolution to {}, pool, 1×1 convolution to {expand}, hard-swish, dropout {}, linear",
                        self.squeeze, self.head.dropout
                    ),
                    None => format!("1×1 convolution to {}, pool, linear", self.squeeze),
                },
            ),
        ]
    }

    fn build(&self, source: Source, device: &Device) -> Result<Network, LoadError> {
        let p = Params::new(source, &self.prefix, device);
        let network = PpMobileNetV3::build(self, &p)?;
        p.finish()?;
        Ok(Network::PpMobileNetV3(network))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `expand_conv` 1×1 → `bottleneck_conv` depthwise k×k stride s → `mid_se` →
/// `linear_conv` 1×1 (no activation), plus the input where the shapes stay.
#[derive(Module, Debug)]
pub struct ResidualUnit {
    pub expand_conv: ConvAct,
    pub bottleneck_conv: ConvAct,
    pub mid_se: Option<SqueezeExcite>,
    pub linear_conv: ConvAct,
    #[module(skip)]
    pub residual: bool,
}

impl ResidualUnit {
    fn build(spec: &BlockSpec, p: &Params) -> Result<Self, LoadError> {
        let expand_conv = conv_bn_layer(
            &p.pp("expand_conv"),
            ConvSpec::new(spec.channels_in, spec.expanded, 1, 1),
            spec.act,
        )?;
        let bottleneck_conv = conv_bn_layer(
            &p.pp("bottleneck_conv"),
            ConvSpec::depthwise(spec.expanded, spec.kernel, spec.stride),
            spec.act,
        )?;
        let mid_se = match spec.se {
            Some(reduced) => Some(SqueezeExcite::read(
                &p.pp("mid_se"),
                ["conv1", "conv2"],
                spec.expanded,
                reduced,
                Act::Relu,
                SE_GATE,
            )?),
            None => None,
        };
        let linear_conv = conv_bn_layer(
            &p.pp("linear_conv"),
            ConvSpec::new(spec.expanded, spec.channels_out, 1, 1),
            Act::Identity,
        )?;
        Ok(ResidualUnit {
            expand_conv,
            bottleneck_conv,
            mid_se,
            linear_conv,
            residual: spec.residual(),
        })
    }

    /// `[B, in, H, W]` → `[B, out, H/s, W/s]`
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = in_dtype_of(x, &self.expand_conv.conv.weight);
        let y = self
            .bottleneck_conv
            .forward(self.expand_conv.forward(x.clone()));
        let y = match &self.mid_se {
            Some(se) => se.forward(y),
            None => y,
        };
        let y = self.linear_conv.forward(y);
        if self.residual { x + y } else { y }
    }
}

/// MobileNetV3 (PaddleClas): `conv` → `blocks` → `last_second_conv` → head.
#[derive(Module, Debug)]
pub struct PpMobileNetV3 {
    /// 3 → stem, 3×3 s2, hard-swish: `[B, stem, H/2, W/2]`.
    pub conv: ConvAct,
    /// Down to `[B, C, H/32, W/32]`.
    pub blocks: Vec<ResidualUnit>,
    /// 1×1, hard-swish: `[B, squeeze, H/32, W/32]`.
    pub last_second_conv: ConvAct,
    pub head: Head,
}

impl PpMobileNetV3 {
    fn build(config: &Config, p: &Params) -> Result<Self, LoadError> {
        let conv = conv_bn_layer(
            &p.pp("conv"),
            ConvSpec::new(3, config.stem, 3, 2),
            Act::HardSwish,
        )?;
        let blocks = config
            .blocks
            .iter()
            .enumerate()
            .map(|(i, spec)| ResidualUnit::build(spec, &p.pp("blocks").pp(i)))
            .collect::<Result<_, _>>()?;
        let features = config.blocks.last().map_or(config.stem, |b| b.channels_out);
        let last_second_conv = conv_bn_layer(
            &p.pp("last_second_conv"),
            ConvSpec::new(features, config.squeeze, 1, 1),
            Act::HardSwish,
        )?;
        let head = config.head.build(p)?;
        Ok(PpMobileNetV3 {
            conv,
            blocks,
            last_second_conv,
            head,
        })
    }

    /// Unit `unit` of the taps' sequence: a block, or `last_second_conv` after them.
    fn unit(&self, unit: usize, x: Tensor<4>) -> Tensor<4> {
        match self.blocks.get(unit) {
            Some(block) => block.forward(x),
            None => self
                .last_second_conv
                .forward(in_dtype_of(x, &self.last_second_conv.conv.weight)),
        }
    }
}

impl Backbone for PpMobileNetV3 {
    fn tap_names(&self) -> Vec<String> {
        tap_names(self.blocks.len())
    }

    fn forward_to(&self, tap: usize, images: Tensor<4>) -> Tapped {
        let images = channels_last(in_dtype_of(images, &self.conv.conv.weight));
        let x = (0..=tap).fold(self.conv.forward(images), |x, unit| self.unit(unit, x));
        Tapped::map(x)
    }

    fn forward_from(&self, tap: usize, tapped: Tapped) -> Tensor<2> {
        let x = (tap + 1..=self.blocks.len())
            .fold(tapped.activation.spatial(), |x, unit| self.unit(unit, x));
        self.head.forward(x)
    }

    fn pooled_classifier(&self, tap: usize) -> Option<&Linear> {
        if tap == self.blocks.len() {
            self.head.pooled_classifier()
        } else {
            None
        }
    }

    fn cast_through(mut self, tap: usize, dtype: DType) -> Self {
        self.conv = cast(self.conv, dtype);
        self.blocks = cast_first(self.blocks, tap + 1, dtype);
        if tap >= self.blocks.len() {
            self.last_second_conv = cast(self.last_second_conv, dtype);
        }
        self
    }

    fn dtype(&self) -> DType {
        self.conv.conv.weight.val().dtype()
    }
}
