//! PP-HGNet (PaddleClas 2.6.0, `legendary_models/pp_hgnet.py`): a GPU-friendly network
//! of "HG blocks" that concatenate the outputs of a chain of 3×3 convolutions; members
//! `PPHGNet_tiny`, `PPHGNet_small`, `PPHGNet_base`.
//!
//! `stem.{0,1,2}` (3×3 convolutions with BatchNorm and ReLU, the first of stride 2) →
//! max pool 3×3 s2 → four `stages.{i}`: `downsample` (depthwise 3×3 s2, BatchNorm, no
//! activation; none in stage 0) → `blocks.{j}` HG blocks (`layers.{l}` 3×3 convolutions
//! with ReLU one after the other, the block's input and every layer's output
//! concatenated, `aggregation_conv` 1×1 with ReLU, `att` effective squeeze-excitation:
//! average pool → 1×1 convolution with bias → sigmoid → product; the input added in
//! every block but a stage's first) → global average pool → `last_conv` (1×1, no bias) →
//! ReLU → dropout → `fc`.
//!
//! Taps: `stages.0` … `stages.3`; the last, `stages.3`, is the feature map before the
//! pooling. A 1×1 convolution and an activation come between the pooling and `fc`: no
//! pooled linear classifier (unless trained without `last_conv`).
//!
//! Read off the file: every channel count, stem depth, layers per block, blocks per
//! stage, which stages downsample, the presence of `last_conv`. Not in the file: the
//! dropout, 0.2 (`downscale_in_infer`: ×0.8 at inference) where the shapes are
//! PPHGNet_base's, 0 otherwise, as PaddleClas's constructors set it.

use std::any::Any;
use std::sync::Arc;

use burn::module::Module;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, PaddingConfig2d};
use burn::tensor::{DType, Device, Tensor};

use super::layers::{
    self, Act, ConvAct, ConvSpec, SqueezeExcite, Stored, cast, cast_first, channels_last,
    in_dtype_of,
};
use super::pp_lcnet::{Head, HeadSpec, conv_bn_layer, conv_out};
use super::{
    Arch, ArchSpec, Backbone, Hints, Names, Network, Params, Source, Tapped, Variant, prefix_of,
};
use crate::checkpoint::{LoadError, Weights};

/// One `HG_Stage`: in, mid, out channels, blocks, downsample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageSpec {
    pub channels_in: usize,
    pub mid: usize,
    pub channels_out: usize,
    pub blocks: usize,
    pub downsample: bool,
}

/// A PaddleClas member: name, stem channels, stages, layers per block, dropout.
struct Member {
    name: &'static str,
    stem: [usize; 3],
    stages: [(usize, usize, usize, usize, bool); 4],
    layers: usize,
    dropout: f64,
}

const MEMBERS: [Member; 3] = [
    Member {
        name: "tiny",
        stem: [48, 48, 96],
        stages: [
            (96, 96, 224, 1, false),
            (224, 128, 448, 1, true),
            (448, 160, 512, 2, true),
            (512, 192, 768, 1, true),
        ],
        layers: 5,
        dropout: 0.0,
    },
    Member {
        name: "small",
        stem: [64, 64, 128],
        stages: [
            (128, 128, 256, 1, false),
            (256, 160, 512, 1, true),
            (512, 192, 768, 2, true),
            (768, 224, 1024, 1, true),
        ],
        layers: 6,
        dropout: 0.0,
    },
    Member {
        name: "base",
        stem: [96, 96, 160],
        stages: [
            (160, 192, 320, 1, false),
            (320, 224, 640, 2, true),
            (640, 256, 960, 3, true),
            (960, 288, 1280, 2, true),
        ],
        layers: 7,
        dropout: 0.2,
    },
];

const CLASS_EXPAND: usize = 2048;

/// A PP-HGNet, as read off a checkpoint.
#[derive(Clone, Debug)]
pub struct Config {
    pub prefix: String,
    /// Output channels of `stem.0`, `stem.1`, …
    pub stem: Vec<usize>,
    pub stages: Vec<StageSpec>,
    /// 3×3 convolutions per HG block (`layer_num`).
    pub layers: usize,
    pub head: HeadSpec,
    /// `tiny`, `small`, `base`, where the shapes are that member's.
    pub member: Option<&'static str>,
    pub parameters: usize,
}

/// A PP-HGNet checkpoint's architecture, when its names are PP-HGNet's.
pub fn detect(weights: &Weights, _: &Hints) -> Option<Result<Arch, LoadError>> {
    let prefix = prefix_of(weights, "stages.0.blocks.0.aggregation_conv.conv.weight")?;
    let names = Names::new(weights, &prefix);
    if !names.has("stem.0.conv.weight") || !names.has("stages.0.blocks.0.att.conv.weight") {
        return None;
    }
    Some(Config::read(&names).map(|config| Arc::new(config) as Arch))
}

impl Config {
    fn read(names: &Names) -> Result<Config, LoadError> {
        let stem_count = names.count(|i| format!("stem.{i}.conv.weight"));
        let mut channels = 3;
        let mut stem = Vec::with_capacity(stem_count);
        for i in 0..stem_count {
            let (out, _) = conv_out(
                names,
                &format!("stem.{i}.conv.weight"),
                channels,
                false,
                Some(3),
            )?;
            stem.push(out);
            channels = out;
        }
        let stage_count =
            names.count(|s| format!("stages.{s}.blocks.0.aggregation_conv.conv.weight"));
        let layers = names.count(|l| format!("stages.0.blocks.0.layers.{l}.conv.weight"));
        if layers == 0 {
            return Err(LoadError::Missing {
                names: vec![format!(
                    "{}stages.0.blocks.0.layers.0.conv.weight",
                    names.prefix()
                )],
            });
        }
        let mut stages = Vec::with_capacity(stage_count);
        for s in 0..stage_count {
            let at = |name: &str| format!("stages.{s}.{name}");
            let downsample = names.has(&at("downsample.conv.weight"));
            if downsample {
                conv_out(
                    names,
                    &at("downsample.conv.weight"),
                    channels,
                    true,
                    Some(3),
                )?;
            }
            let blocks = names.count(|b| at(&format!("blocks.{b}.aggregation_conv.conv.weight")));
            let channels_in = channels;
            let mut mid = 0;
            for b in 0..blocks {
                let block = |name: &str| at(&format!("blocks.{b}.{name}"));
                let mut input = channels;
                for l in 0..layers {
                    let (out, _) = conv_out(
                        names,
                        &block(&format!("layers.{l}.conv.weight")),
                        input,
                        false,
                        Some(3),
                    )?;
                    if (b > 0 || l > 0) && out != mid {
                        return Err(super::pp_lcnet::bad(
                            names,
                            &block(&format!("layers.{l}.conv.weight")),
                            format!("has {out} output channels, the block's others {mid}"),
                        ));
                    }
                    mid = out;
                    input = out;
                }
                let extra = block(&format!("layers.{layers}.conv.weight"));
                if names.has(&extra) {
                    return Err(super::pp_lcnet::bad(
                        names,
                        &extra,
                        format!("is one layer more than stage 0's blocks have ({layers})"),
                    ));
                }
                let (out, _) = conv_out(
                    names,
                    &block("aggregation_conv.conv.weight"),
                    channels + layers * mid,
                    false,
                    Some(1),
                )?;
                conv_out(names, &block("att.conv.weight"), out, false, Some(1))?;
                channels = out;
            }
            stages.push(StageSpec {
                channels_in,
                mid,
                channels_out: channels,
                blocks,
                downsample,
            });
        }
        let mut config = Config {
            prefix: names.prefix().to_string(),
            stem,
            stages,
            layers,
            head: HeadSpec::read(names, channels, Act::Relu, 0.0)?,
            member: None,
            parameters: names.parameters(),
        };
        config.check()?;
        if let Some(member) = MEMBERS.iter().find(|m| config.is(m)) {
            config.member = Some(member.name);
            config.head.dropout = member.dropout;
        }
        Ok(config)
    }

    /// Whether these are the shapes of PaddleClas's `member`.
    fn is(&self, member: &Member) -> bool {
        self.stem[..] == member.stem[..]
            && self.layers == member.layers
            && self.stages.len() == member.stages.len()
            && self
                .stages
                .iter()
                .zip(&member.stages)
                .all(|(s, m)| (s.channels_in, s.mid, s.channels_out, s.blocks, s.downsample) == *m)
            && self.head.expand == Some(CLASS_EXPAND)
    }

    fn check(&self) -> Result<(), LoadError> {
        if self.stem.is_empty() || self.stages.is_empty() {
            return Err(LoadError::NotSupported(format!(
                "a PP-HGNet of {} stem convolutions and {} stages",
                self.stem.len(),
                self.stages.len()
            )));
        }
        Ok(())
    }
}

fn tap_names(stages: usize) -> Vec<String> {
    (0..stages).map(|s| format!("stages.{s}")).collect()
}

impl ArchSpec for Config {
    fn family(&self) -> &'static str {
        "pphgnet"
    }

    fn variant(&self) -> Variant {
        Variant::Paddle
    }

    fn name(&self) -> String {
        match self.member {
            Some(member) => format!("PPHGNet_{member}"),
            None => "PPHGNet".into(),
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
        map.insert("stem".into(), self.stem.clone().into());
        map.insert(
            "depths".into(),
            self.stages
                .iter()
                .map(|s| s.blocks)
                .collect::<Vec<_>>()
                .into(),
        );
        map.insert(
            "channels".into(),
            self.stages
                .iter()
                .map(|s| s.channels_out)
                .collect::<Vec<_>>()
                .into(),
        );
        map.insert(
            "mid_channels".into(),
            self.stages.iter().map(|s| s.mid).collect::<Vec<_>>().into(),
        );
        map.insert("layers".into(), self.layers.into());
        map.insert("last_conv".into(), self.head.expand.into());
        map
    }

    fn describe(&self) -> Vec<(&'static str, String)> {
        let list = |f: fn(&StageSpec) -> usize| {
            format!("{:?}", self.stages.iter().map(f).collect::<Vec<_>>())
        };
        vec![
            (
                "stem",
                format!("3×3 convolutions of {:?} channels, max pool", self.stem),
            ),
            ("depths", list(|s| s.blocks)),
            ("channels", list(|s| s.channels_out)),
            (
                "block",
                format!(
                    "{} 3×3 convolutions of {} channels, concatenated, 1×1, effective squeeze-excitation",
                    self.layers,
                    list(|s| s.mid)
                ),
            ),
            (
                "head",
                match self.head.expand {
                    Some(expand) => format!(
                        "pool, 1×1 convolution to {expand}, ReLU, dropout {}, linear",
                        self.head.dropout
                    ),
                    None => "pool, linear".into(),
                },
            ),
        ]
    }

    fn build(&self, source: Source, device: &Device) -> Result<Network, LoadError> {
        let p = Params::new(source, &self.prefix, device);
        let network = PpHgNet::build(self, &p)?;
        p.finish()?;
        Ok(Network::PpHgNet(network))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `HG_Block`: a chain of 3×3 convolutions, the input and every output concatenated,
/// a 1×1 aggregation, the effective squeeze-excitation, the input added after a stage's
/// first block.
#[derive(Module, Debug)]
pub struct HgBlock {
    /// in → mid, then mid → mid: each `[B, mid, H, W]`.
    pub layers: Vec<ConvAct>,
    /// in + layers·mid → out, ReLU.
    pub aggregation_conv: ConvAct,
    /// avg pool → 1×1 (out → out, bias) → sigmoid → product.
    pub att: SqueezeExcite,
    #[module(skip)]
    pub identity: bool,
}

impl HgBlock {
    fn build(
        p: &Params,
        channels_in: usize,
        spec: &StageSpec,
        layer_count: usize,
        identity: bool,
    ) -> Result<Self, LoadError> {
        let mut layers = Vec::with_capacity(layer_count);
        for l in 0..layer_count {
            let input = if l == 0 { channels_in } else { spec.mid };
            layers.push(conv_bn_layer(
                &p.pp("layers").pp(l),
                ConvSpec::new(input, spec.mid, 3, 1),
                Act::Relu,
            )?);
        }
        let out = spec.channels_out;
        let aggregation_conv = conv_bn_layer(
            &p.pp("aggregation_conv"),
            ConvSpec::new(channels_in + layer_count * spec.mid, out, 1, 1),
            Act::Relu,
        )?;
        let att = SqueezeExcite {
            reduce: None,
            expand: layers::linear(&p.pp("att").pp("conv"), out, out, Stored::OutIn1x1, true)?,
            act: Act::Identity,
            gate: Act::Sigmoid,
        };
        Ok(HgBlock {
            layers,
            aggregation_conv,
            att,
            identity,
        })
    }

    /// `[B, in, H, W]` → `[B, out, H, W]`
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut outputs = Vec::with_capacity(self.layers.len() + 1);
        outputs.push(x.clone());
        let mut y = x.clone();
        for layer in &self.layers {
            y = layer.forward(y);
            outputs.push(y.clone());
        }
        let y = self
            .att
            .forward(self.aggregation_conv.forward(Tensor::cat(outputs, 1)));
        if self.identity { y + x } else { y }
    }
}

/// `HG_Stage`: an optional depthwise downsampling, then HG blocks.
#[derive(Module, Debug)]
pub struct HgStage {
    /// Depthwise 3×3 s2, BatchNorm, no activation.
    pub downsample: Option<ConvAct>,
    pub blocks: Vec<HgBlock>,
}

impl HgStage {
    fn build(p: &Params, spec: &StageSpec, layers: usize) -> Result<Self, LoadError> {
        let downsample = if spec.downsample {
            Some(conv_bn_layer(
                &p.pp("downsample"),
                ConvSpec::depthwise(spec.channels_in, 3, 2),
                Act::Identity,
            )?)
        } else {
            None
        };
        let blocks = (0..spec.blocks)
            .map(|b| {
                let input = if b == 0 {
                    spec.channels_in
                } else {
                    spec.channels_out
                };
                HgBlock::build(&p.pp("blocks").pp(b), input, spec, layers, b > 0)
            })
            .collect::<Result<_, _>>()?;
        Ok(HgStage { downsample, blocks })
    }

    fn first_weight_dtype(&self) -> DType {
        match &self.downsample {
            Some(conv) => conv.conv.weight.val().dtype(),
            None => self.blocks[0].layers[0].conv.weight.val().dtype(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = x.cast(self.first_weight_dtype());
        let x = match &self.downsample {
            Some(conv) => conv.forward(x),
            None => x,
        };
        self.blocks.iter().fold(x, |x, block| block.forward(x))
    }
}

/// PP-HGNet: `stem` → max pool → `stages` → head.
#[derive(Module, Debug)]
pub struct PpHgNet {
    /// 3×3 convolutions, ReLU, the first of stride 2: `[B, stem, H/2, W/2]`.
    pub stem: Vec<ConvAct>,
    /// 3×3 s2, padding 1: `[B, stem, H/4, W/4]`.
    pub pool: MaxPool2d,
    /// Down to `[B, C, H/32, W/32]`.
    pub stages: Vec<HgStage>,
    pub head: Head,
}

impl PpHgNet {
    fn build(config: &Config, p: &Params) -> Result<Self, LoadError> {
        let mut channels = 3;
        let mut stem = Vec::with_capacity(config.stem.len());
        for (i, &out) in config.stem.iter().enumerate() {
            let stride = if i == 0 { 2 } else { 1 };
            stem.push(conv_bn_layer(
                &p.pp("stem").pp(i),
                ConvSpec::new(channels, out, 3, stride),
                Act::Relu,
            )?);
            channels = out;
        }
        let pool = MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init();
        let stages = config
            .stages
            .iter()
            .enumerate()
            .map(|(s, spec)| HgStage::build(&p.pp("stages").pp(s), spec, config.layers))
            .collect::<Result<_, _>>()?;
        Ok(PpHgNet {
            stem,
            pool,
            stages,
            head: config.head.build(p)?,
        })
    }

    fn forward_stem(&self, images: Tensor<4>) -> Tensor<4> {
        let images = channels_last(in_dtype_of(images, &self.stem[0].conv.weight));
        let x = self.stem.iter().fold(images, |x, conv| conv.forward(x));
        self.pool.forward(x)
    }
}

impl Backbone for PpHgNet {
    fn tap_names(&self) -> Vec<String> {
        tap_names(self.stages.len())
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
        self.stem = self.stem.into_iter().map(|c| cast(c, dtype)).collect();
        self.stages = cast_first(self.stages, tap + 1, dtype);
        self
    }

    fn dtype(&self) -> DType {
        self.stem[0].conv.weight.val().dtype()
    }
}
