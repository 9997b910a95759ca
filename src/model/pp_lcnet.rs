//! PP-LCNet (PaddleClas 2.6.0, `legendary_models/pp_lcnet.py`): a light CPU network of
//! depthwise-separable blocks, members `PPLCNet_x0_25` … `PPLCNet_x2_5` by width scale.
//!
//! `conv1` (3×3 s2, hard-swish) → five stages `blocks2` … `blocks6` of
//! `DepthwiseSeparable` blocks (`dw_conv` depthwise k×k, optional `se`, `pw_conv` 1×1;
//! every convolution with BatchNorm and hard-swish) → global average pool → `last_conv`
//! (1×1, no bias) → hard-swish → dropout → `fc`.
//!
//! Taps: `blocks2` … `blocks6`; the last, `blocks6`, is the last feature map before the
//! pooling. No pooled linear classifier follows it (a 1×1 convolution and an activation
//! come between), unless the file was trained without `last_conv` (`use_last_conv=False`).
//!
//! Read off the file: channels, kernel sizes, blocks per stage, squeeze-excitation, the
//! presence of `last_conv`. Not in the file, taken from PaddleClas's defaults: the strides
//! (`stride_list` = `[2, 2, 2, 2, 2]`: every stage but `blocks2` opens with stride 2), the
//! activation (hard-swish), the dropout (0.2, `downscale_in_infer`: ×0.8 at inference).
//!
//! This file also holds what the PaddleClas light families share ([`conv_bn_layer`],
//! [`make_divisible`], [`Head`]).

use std::any::Any;
use std::sync::Arc;

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{DType, Device, Tensor};

use super::layers::{
    self, Act, BnNames, ConvAct, ConvSpec, Padding, SqueezeExcite, Stored, cast, cast_first,
    channels_last, in_dtype_of,
};
use super::{
    Arch, ArchSpec, Backbone, Hints, Names, Network, Params, Source, Tapped, Variant, prefix_of,
};
use crate::checkpoint::{LoadError, Weights};

/// PaddlePaddle's BatchNorm (`nn.BatchNorm` and `nn.BatchNorm2D` alike): `_mean`,
/// `_variance`, ε = 1e-5.
pub(super) const PADDLE_BN: (BnNames, f64) = (BnNames::Paddle, 1e-5);

/// `nn.Hardsigmoid()`'s default slope in PaddlePaddle (not quite 1/6).
const PADDLE_HARD_SIGMOID: Act = Act::HardSigmoid { slope: 0.1666667 };

/// PaddleClas's `ConvBNLayer`/`ConvBNAct` at `p`: `p.conv` (no bias), `p.bn` folded in,
/// padding `(k − 1) / 2`, then `act`.
pub(super) fn conv_bn_layer(p: &Params, spec: ConvSpec, act: Act) -> Result<ConvAct, LoadError> {
    layers::conv_bn(
        &p.pp("conv"),
        &p.pp("bn"),
        spec,
        PADDLE_BN,
        Padding::Symmetric,
        act,
    )
}

/// PaddleClas's `make_divisible(v)` (divisor 8): `v` rounded to a multiple of 8, at
/// least 8, never more than 10 % below `v`.
pub(super) fn make_divisible(v: f64) -> usize {
    let rounded = (((v + 4.0) as usize) / 8 * 8).max(8);
    if (rounded as f64) < 0.9 * v {
        rounded + 8
    } else {
        rounded
    }
}

/// An error about tensor `name` under `names`'s prefix.
pub(super) fn bad(names: &Names, name: &str, message: String) -> LoadError {
    LoadError::Tensor {
        name: format!("{}{name}", names.prefix()),
        message,
    }
}

/// The shape of `name`, checked to have `rank` dimensions.
pub(super) fn shape_of<'a>(
    names: &Names<'a>,
    name: &str,
    rank: usize,
) -> Result<&'a [usize], LoadError> {
    let shape = names.shape(name)?;
    if shape.len() != rank {
        return Err(bad(
            names,
            name,
            format!("has shape {shape:?}, expected {rank} dimensions"),
        ));
    }
    Ok(shape)
}

/// The output channels of a `[out, in/groups, k, k]` convolution at `name`, checked
/// against the input channels, groups and kernel expected there (`None`: any kernel).
pub(super) fn conv_out(
    names: &Names,
    name: &str,
    channels_in: usize,
    depthwise: bool,
    kernel: Option<usize>,
) -> Result<(usize, usize), LoadError> {
    let shape = shape_of(names, name, 4)?;
    let per_group = if depthwise { 1 } else { channels_in };
    let k = shape[2];
    let fits = shape[1] == per_group
        && shape[3] == k
        && k % 2 == 1
        && kernel.is_none_or(|want| want == k)
        && (!depthwise || shape[0] == channels_in);
    if !fits {
        let what = if depthwise { "depthwise " } else { "" };
        return Err(bad(
            names,
            name,
            format!(
                "has shape {shape:?}, expected a {what}convolution of {channels_in} input channels{}",
                kernel.map(|k| format!(", {k}×{k}")).unwrap_or_default()
            ),
        ));
    }
    Ok((shape[0], k))
}

/// The channels a squeeze-excitation at `p` (`conv1` → `conv2`, 1×1 with bias) of
/// `channels` reduces to, or `None` where it has none.
pub(super) fn se_channels(
    names: &Names,
    p: &str,
    channels: usize,
) -> Result<Option<usize>, LoadError> {
    let name = format!("{p}.conv1.weight");
    if !names.has(&name) {
        return Ok(None);
    }
    let (reduced, _) = conv_out(names, &name, channels, false, Some(1))?;
    conv_out(names, &format!("{p}.conv2.weight"), reduced, false, Some(1))?;
    Ok(Some(reduced))
}

/// The classifier head after the last tap: global average pool → `last_conv` (1×1, no
/// bias) → activation → dropout (`downscale_in_infer`: × (1 − p) at inference) → `fc`;
/// or, without `last_conv`, global average pool → `fc`.
#[derive(Module, Debug)]
pub struct Head {
    /// `[expand, features, 1, 1]`, applied to the pooled vector.
    pub last_conv: Option<Linear>,
    #[module(skip)]
    pub act: Act,
    /// `1 − p` of the dropout.
    #[module(skip)]
    pub keep: f64,
    /// Paddle's Linear, `[in, classes]`.
    pub fc: Linear,
}

/// The shape of a [`Head`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeadSpec {
    pub features: usize,
    /// `last_conv`'s output channels (`class_expand`), if it has one.
    pub expand: Option<usize>,
    pub classes: usize,
    pub act: Act,
    pub dropout: f64,
}

impl HeadSpec {
    /// `last_conv` and `fc` as the file has them, after `features` channels.
    pub fn read(
        names: &Names,
        features: usize,
        act: Act,
        dropout: f64,
    ) -> Result<HeadSpec, LoadError> {
        let expand = if names.has("last_conv.weight") {
            Some(conv_out(names, "last_conv.weight", features, false, Some(1))?.0)
        } else {
            None
        };
        let fc = shape_of(names, "fc.weight", 2)?;
        let fc_in = expand.unwrap_or(features);
        if fc[0] != fc_in {
            return Err(bad(
                names,
                "fc.weight",
                format!("has shape {fc:?}, expected [{fc_in}, classes] (Paddle's Linear)"),
            ));
        }
        Ok(HeadSpec {
            features,
            expand,
            classes: fc[1],
            act,
            dropout,
        })
    }

    pub fn build(&self, p: &Params) -> Result<Head, LoadError> {
        let last_conv = match self.expand {
            Some(expand) => Some(layers::linear(
                &p.pp("last_conv"),
                self.features,
                expand,
                Stored::OutIn1x1,
                false,
            )?),
            None => None,
        };
        let fc_in = self.expand.unwrap_or(self.features);
        Ok(Head {
            last_conv,
            act: self.act,
            keep: 1.0 - self.dropout,
            fc: layers::linear(&p.pp("fc"), fc_in, self.classes, Stored::InOut, true)?,
        })
    }
}

impl Head {
    /// `[B, C, h, w]` → `[B, classes]`
    pub fn forward(&self, features: Tensor<4>) -> Tensor<2> {
        let [batch, channels, _, _] = features.dims();
        let pooled = features.mean_dims(&[2, 3]).reshape([batch, channels]);
        let x = match &self.last_conv {
            Some(conv) => {
                let x = self
                    .act
                    .apply(conv.forward(in_dtype_of(pooled, &conv.weight)));
                if self.keep == 1.0 {
                    x
                } else {
                    x.mul_scalar(self.keep as f32)
                }
            }
            None => pooled,
        };
        self.fc.forward(in_dtype_of(x, &self.fc.weight))
    }

    /// The classifier, when nothing but it follows the pooling.
    pub fn pooled_classifier(&self) -> Option<&Linear> {
        self.last_conv.is_none().then_some(&self.fc)
    }
}

/// The standard widths: (name suffix, scale).
const SCALES: [(&str, f64); 8] = [
    ("0_25", 0.25),
    ("0_35", 0.35),
    ("0_5", 0.5),
    ("0_75", 0.75),
    ("1_0", 1.0),
    ("1_5", 1.5),
    ("2_0", 2.0),
    ("2_5", 2.5),
];

/// PaddleClas's `NET_CONFIG` at scale 1: per stage, per block `(kernel, in, out, se)`.
const NET_CONFIG: [&[(usize, usize, usize, bool)]; 5] = [
    &[(3, 16, 32, false)],
    &[(3, 32, 64, false), (3, 64, 64, false)],
    &[(3, 64, 128, false), (3, 128, 128, false)],
    &[
        (3, 128, 256, false),
        (5, 256, 256, false),
        (5, 256, 256, false),
        (5, 256, 256, false),
        (5, 256, 256, false),
        (5, 256, 256, false),
    ],
    &[(5, 256, 512, true), (5, 512, 512, true)],
];

/// The stem's channels at scale 1.
const STEM: usize = 16;
const CLASS_EXPAND: usize = 1280;
const DROPOUT: f64 = 0.2;

/// One `DepthwiseSeparable` block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockSpec {
    pub channels_in: usize,
    pub channels_out: usize,
    pub kernel: usize,
    pub stride: usize,
    /// The squeeze-excitation's reduced channels (`channels_in / 4`), if it has one.
    pub se: Option<usize>,
}

/// A PP-LCNet, as read off a checkpoint.
#[derive(Clone, Debug)]
pub struct Config {
    /// Before every name: `""`, `model.`, …
    pub prefix: String,
    /// `conv1`'s output channels.
    pub stem: usize,
    /// `blocks2` … `blocks6`.
    pub stages: Vec<Vec<BlockSpec>>,
    pub head: HeadSpec,
    /// The standard scale whose channels these are (`1_0`), if any.
    pub scale: Option<&'static str>,
    pub parameters: usize,
}

/// A PP-LCNet checkpoint's architecture, when its names are PP-LCNet's.
pub fn detect(weights: &Weights, _: &Hints) -> Option<Result<Arch, LoadError>> {
    let prefix = prefix_of(weights, "blocks2.0.dw_conv.conv.weight")?;
    let names = Names::new(weights, &prefix);
    if !names.has("conv1.conv.weight") || !names.has("blocks6.0.pw_conv.conv.weight") {
        return None;
    }
    Some(Config::read(&names).map(|config| Arc::new(config) as Arch))
}

impl Config {
    fn read(names: &Names) -> Result<Config, LoadError> {
        let (stem, _) = conv_out(names, "conv1.conv.weight", 3, false, Some(3))?;
        let mut channels = stem;
        let mut stages = Vec::with_capacity(5);
        for stage in 0..5 {
            let at = |block: usize| format!("blocks{}.{block}", stage + 2);
            let count = names.count(|block| format!("{}.dw_conv.conv.weight", at(block)));
            if count == 0 {
                return Err(LoadError::Missing {
                    names: vec![format!("{}{}.dw_conv.conv.weight", names.prefix(), at(0))],
                });
            }
            let mut blocks = Vec::with_capacity(count);
            for block in 0..count {
                let p = at(block);
                let (_, kernel) = conv_out(
                    names,
                    &format!("{p}.dw_conv.conv.weight"),
                    channels,
                    true,
                    None,
                )?;
                let se = se_channels(names, &format!("{p}.se"), channels)?;
                let (out, _) = conv_out(
                    names,
                    &format!("{p}.pw_conv.conv.weight"),
                    channels,
                    false,
                    Some(1),
                )?;
                blocks.push(BlockSpec {
                    channels_in: channels,
                    channels_out: out,
                    kernel,
                    stride: if block == 0 && stage > 0 { 2 } else { 1 },
                    se,
                });
                channels = out;
            }
            stages.push(blocks);
        }
        let head = HeadSpec::read(names, channels, Act::HardSwish, DROPOUT)?;
        let mut config = Config {
            prefix: names.prefix().to_string(),
            stem,
            stages,
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
        let blocks_fit = self.stages.len() == NET_CONFIG.len()
            && self
                .stages
                .iter()
                .zip(NET_CONFIG)
                .all(|(blocks, standard)| {
                    blocks.len() == standard.len()
                        && blocks.iter().zip(standard).all(|(b, &(k, i, o, se))| {
                            b.kernel == k
                                && b.channels_in == width(i)
                                && b.channels_out == width(o)
                                && b.se == se.then(|| width(i) / 4)
                        })
                });
        blocks_fit && self.stem == width(STEM) && self.head.expand == Some(CLASS_EXPAND)
    }
}

impl ArchSpec for Config {
    fn family(&self) -> &'static str {
        "pplcnet"
    }

    fn variant(&self) -> Variant {
        Variant::Paddle
    }

    fn name(&self) -> String {
        match self.scale {
            Some(scale) => format!("PPLCNet_x{scale}"),
            None => "PPLCNet".into(),
        }
    }

    fn classes(&self) -> usize {
        self.head.classes
    }

    fn parameter_count(&self) -> usize {
        self.parameters
    }

    fn taps(&self) -> Vec<String> {
        tap_names(self.stages.len())
    }

    fn pooled_classifier(&self) -> bool {
        self.head.expand.is_none()
    }

    fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        map.insert(
            "scale".into(),
            self.scale.map(|s| s.replace('_', ".")).into(),
        );
        map.insert(
            "depths".into(),
            self.stages.iter().map(Vec::len).collect::<Vec<_>>().into(),
        );
        map.insert(
            "channels".into(),
            self.stages
                .iter()
                .filter_map(|blocks| blocks.last().map(|b| b.channels_out))
                .collect::<Vec<_>>()
                .into(),
        );
        map.insert("last_conv".into(), self.head.expand.into());
        map
    }

    fn describe(&self) -> Vec<(&'static str, String)> {
        let channels: Vec<usize> = self
            .stages
            .iter()
            .filter_map(|blocks| blocks.last().map(|b| b.channels_out))
            .collect();
        let depths: Vec<usize> = self.stages.iter().map(Vec::len).collect();
        vec![
            (
                "scale",
                self.scale
                    .map(|s| s.replace('_', "."))
                    .unwrap_or_else(|| "not a standard one".into()),
            ),
            ("stem", format!("3×3 convolution, {} channels", self.stem)),
            ("depths", format!("{depths:?}")),
            ("channels", format!("{channels:?}")),
            (
                "head",
                match self.head.expand {
                    Some(expand) => format!(
                        "pool, 1×1 convolution to {expand}, hard-swish, dropout {}, linear",
                        self.head.dropout
                    ),
                    None => "pool, linear".into(),
                },
            ),
        ]
    }

    fn build(&self, source: Source, device: &Device) -> Result<Network, LoadError> {
        let p = Params::new(source, &self.prefix, device);
        let network = PpLcNet::build(self, &p)?;
        p.finish()?;
        Ok(Network::PpLcNet(network))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn tap_names(stages: usize) -> Vec<String> {
    (0..stages).map(|s| format!("blocks{}", s + 2)).collect()
}

/// `dw_conv` (depthwise k×k, stride s) → `se` → `pw_conv` (1×1), all with hard-swish.
#[derive(Module, Debug)]
pub struct DepthwiseSeparable {
    pub dw_conv: ConvAct,
    pub se: Option<SqueezeExcite>,
    pub pw_conv: ConvAct,
}

impl DepthwiseSeparable {
    fn build(spec: &BlockSpec, p: &Params) -> Result<Self, LoadError> {
        let c = spec.channels_in;
        let dw_conv = conv_bn_layer(
            &p.pp("dw_conv"),
            ConvSpec::depthwise(c, spec.kernel, spec.stride),
            Act::HardSwish,
        )?;
        let se = match spec.se {
            Some(reduced) => Some(SqueezeExcite::read(
                &p.pp("se"),
                ["conv1", "conv2"],
                c,
                reduced,
                Act::Relu,
                PADDLE_HARD_SIGMOID,
            )?),
            None => None,
        };
        let pw_conv = conv_bn_layer(
            &p.pp("pw_conv"),
            ConvSpec::new(c, spec.channels_out, 1, 1),
            Act::HardSwish,
        )?;
        Ok(DepthwiseSeparable {
            dw_conv,
            se,
            pw_conv,
        })
    }

    /// `[B, in, H, W]` → `[B, out, H/s, W/s]`
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.dw_conv.forward(x);
        let x = match &self.se {
            Some(se) => se.forward(x),
            None => x,
        };
        self.pw_conv.forward(x)
    }
}

/// One of `blocks2` … `blocks6`.
#[derive(Module, Debug)]
pub struct Stage {
    pub blocks: Vec<DepthwiseSeparable>,
}

impl Stage {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = in_dtype_of(x, &self.blocks[0].dw_conv.conv.weight);
        self.blocks.iter().fold(x, |x, block| block.forward(x))
    }
}

/// PP-LCNet: `conv1` → `blocks2` … `blocks6` → head.
#[derive(Module, Debug)]
pub struct PpLcNet {
    /// 3 → stem, 3×3 s2, hard-swish: `[B, stem, H/2, W/2]`.
    pub conv1: ConvAct,
    /// Strides 1, 2, 2, 2, 2: `blocks6` is `[B, C, H/32, W/32]`.
    pub stages: Vec<Stage>,
    pub head: Head,
}

impl PpLcNet {
    fn build(config: &Config, p: &Params) -> Result<Self, LoadError> {
        let conv1 = conv_bn_layer(
            &p.pp("conv1"),
            ConvSpec::new(3, config.stem, 3, 2),
            Act::HardSwish,
        )?;
        let stages = config
            .stages
            .iter()
            .enumerate()
            .map(|(s, blocks)| {
                let p = p.pp(format!("blocks{}", s + 2));
                let blocks = blocks
                    .iter()
                    .enumerate()
                    .map(|(b, spec)| DepthwiseSeparable::build(spec, &p.pp(b)))
                    .collect::<Result<_, _>>()?;
                Ok(Stage { blocks })
            })
            .collect::<Result<_, LoadError>>()?;
        let head = config.head.build(p)?;
        Ok(PpLcNet {
            conv1,
            stages,
            head,
        })
    }

    fn stem(&self, images: Tensor<4>) -> Tensor<4> {
        let images = channels_last(in_dtype_of(images, &self.conv1.conv.weight));
        self.conv1.forward(images)
    }
}

impl Backbone for PpLcNet {
    fn tap_names(&self) -> Vec<String> {
        tap_names(self.stages.len())
    }

    fn forward_to(&self, tap: usize, images: Tensor<4>) -> Tapped {
        let x = self.stages[..=tap]
            .iter()
            .fold(self.stem(images), |x, stage| stage.forward(x));
        Tapped::map(x)
    }

    fn forward_from(&self, tap: usize, tapped: Tapped) -> Tensor<2> {
        let x = self.stages[tap + 1..]
            .iter()
            .fold(tapped.activation.spatial(), |x, stage| stage.forward(x));
        self.head.forward(x)
    }

    fn pooled_classifier(&self, tap: usize) -> Option<&Linear> {
        if tap + 1 == self.stages.len() {
            self.head.pooled_classifier()
        } else {
            None
        }
    }

    fn cast_through(mut self, tap: usize, dtype: DType) -> Self {
        self.conv1 = cast(self.conv1, dtype);
        self.stages = cast_first(self.stages, tap + 1, dtype);
        self
    }

    fn dtype(&self) -> DType {
        self.conv1.conv.weight.val().dtype()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_divisible_is_paddleclas() {
        assert_eq!(make_divisible(16.0 * 0.25), 8);
        assert_eq!(make_divisible(16.0 * 0.35), 8);
        assert_eq!(make_divisible(512.0 * 0.35), 176);
        assert_eq!(make_divisible(960.0 * 0.35), 336);
        assert_eq!(make_divisible(72.0 * 0.35), 24);
        assert_eq!(make_divisible(16.0 * 1.25), 24);
    }
}
