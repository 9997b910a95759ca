//! A network of the ResNet family: stem → max pool → four stages of residual blocks →
//! global average pool → linear.

use burn::module::Module;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, PaddingConfig2d};
use burn::tensor::Tensor;

use super::block::Block;
use super::config::{BlockKind, ResNetConfig, Stem};
use super::layers::{ConvBn, ConvSpec, SqueezeExcite, avg_pool, vd_pool};
use crate::model::Variant;
use crate::model::layers::channels_last;

/// A convolution with its BatchNorm, by position in the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvSlot {
    /// The stem convolutions: 0 of a plain stem, 0..3 of a deep one.
    Stem(usize),
    /// The convolution that opens a block (1×1; a basic block's first 3×3).
    Conv0 { stage: usize, block: usize },
    /// A bottleneck's 3×3 convolution (`scale` 0), or Res2Net branch `scale`'s
    /// (0..scales−1).
    Branch {
        stage: usize,
        block: usize,
        scale: usize,
    },
    /// The convolution that closes a block (1×1; a basic block's second 3×3).
    Conv2 { stage: usize, block: usize },
    /// The projection shortcut of a stage's first block.
    Shortcut { stage: usize },
}

/// Supplies the weights of each layer while [`ResNet::build`] walks the network: random
/// ones for a fresh network, a checkpoint's for a loaded one.
pub trait LayerSource {
    type Error;
    /// The convolution for `slot`, BatchNorm folded in, with ReLU or not.
    fn conv_bn(
        &mut self,
        slot: ConvSlot,
        spec: ConvSpec,
        relu: bool,
    ) -> Result<ConvBn, Self::Error>;
    /// A fully connected layer: the classifier, and (unless the source names them) the
    /// two of a squeeze-and-excitation.
    fn classifier(&mut self, features: usize, classes: usize) -> Result<Linear, Self::Error>;
    /// The squeeze-and-excitation of block `block` of stage `stage`, whose output has
    /// `channels` channels.
    fn squeeze_excite(
        &mut self,
        stage: usize,
        block: usize,
        channels: usize,
        reduced: usize,
    ) -> Result<SqueezeExcite, Self::Error> {
        let _ = (stage, block);
        Ok(SqueezeExcite {
            reduce: self.classifier(channels, reduced)?,
            expand: self.classifier(reduced, channels)?,
        })
    }
}

#[derive(Module, Debug)]
pub struct Stage {
    pub blocks: Vec<Block>,
}

#[derive(Module, Debug)]
pub struct ResNet {
    /// A 7×7 convolution 3→w s2, or three 3×3: 3→w s2, w→w, w→2w; each with ReLU.
    pub stem: Vec<ConvBn>,
    pub stem_pool: MaxPool2d,
    pub stages: Vec<Stage>,
    pub fc: Linear,
}

/// Logits and the output of every stage (the feature maps CAMs are computed on).
pub struct ResNetOutput {
    /// `[B, classes]`
    pub logits: Tensor<2>,
    /// `[B, expansion·base·2^s, H/2^(s+2), W/2^(s+2)]` for s in 0..4 (ceil division).
    pub stages: Vec<Tensor<4>>,
}

impl ResNet {
    /// Walks the architecture of `config`, taking every layer's weights from `source`.
    pub fn build<S: LayerSource>(config: &ResNetConfig, source: &mut S) -> Result<Self, S::Error> {
        let w = config.stem_width;
        let stem_specs: &[_] = match config.stem {
            Stem::Plain => &[(3, w, 7, 2)],
            Stem::Deep => &[(3, w, 3, 2), (w, w, 3, 1), (w, 2 * w, 3, 1)],
        };
        let mut stem = Vec::with_capacity(stem_specs.len());
        for (i, &(channels_in, channels_out, kernel, stride)) in stem_specs.iter().enumerate() {
            let spec = ConvSpec {
                channels_in,
                channels_out,
                kernel,
                stride,
                groups: 1,
            };
            stem.push(source.conv_bn(ConvSlot::Stem(i), spec, true)?);
        }
        let stem_pool = MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init();

        let mut stages = Vec::with_capacity(config.depths.len());
        for (stage, &depth) in config.depths.iter().enumerate() {
            let blocks = (0..depth)
                .map(|block| build_block(config, source, stage, block))
                .collect::<Result<_, _>>()?;
            stages.push(Stage { blocks });
        }
        let fc = source.classifier(config.feature_channels(), config.num_classes)?;
        Ok(ResNet {
            stem,
            stem_pool,
            stages,
            fc,
        })
    }

    pub fn forward(&self, images: Tensor<4>) -> ResNetOutput {
        let mut x = self.forward_stem(images);
        let mut stages = Vec::with_capacity(self.stages.len());
        for stage in &self.stages {
            x = stage.forward(x);
            stages.push(x.clone());
        }
        let logits = self.head(x);
        ResNetOutput { logits, stages }
    }

    /// `[B, 3, H, W]` → `[B, stem channels, H/4, W/4]`
    pub fn forward_stem(&self, images: Tensor<4>) -> Tensor<4> {
        // Channels-last from the first convolution on (see `channels_last`).
        let images = channels_last(images.cast(self.stem[0].conv.weight.val().dtype()));
        let x = self.stem.iter().fold(images, |x, conv| conv.forward(x));
        self.stem_pool.forward(x)
    }

    /// Runs the stages after `stage` and the head on that stage's output: the path a
    /// score's gradient flows back along to reach an inner feature map.
    pub fn forward_from_stage(&self, stage: usize, activation: Tensor<4>) -> Tensor<2> {
        let x = self.stages[stage + 1..]
            .iter()
            .fold(activation, |x, s| s.forward(x));
        self.head(x)
    }

    /// Global average pool and the classifier: `[B, C, h, w]` → `[B, classes]`.
    pub fn head(&self, features: Tensor<4>) -> Tensor<2> {
        let [batch, channels, _, _] = features.dims();
        let pooled = features.mean_dims(&[2, 3]).reshape([batch, channels]);
        self.fc.forward(pooled.cast(self.fc.weight.val().dtype()))
    }
}

impl Stage {
    /// Runs the blocks in the precision of their weights (a network may mix them).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = x.cast(self.blocks[0].conv0.conv.weight.val().dtype());
        self.blocks.iter().fold(x, |x, block| block.forward(x))
    }
}

fn build_block<S: LayerSource>(
    config: &ResNetConfig,
    source: &mut S,
    stage: usize,
    block: usize,
) -> Result<Block, S::Error> {
    let first = block == 0;
    let stride = if first && stage != 0 { 2 } else { 1 };
    let channels_in = if first {
        config.stage_input(stage)
    } else {
        config.stage_channels(stage)
    };
    let channels_out = config.stage_channels(stage);
    let width = config.stage_width(stage);
    let conv = |channels_in, channels_out, kernel, stride, groups| ConvSpec {
        channels_in,
        channels_out,
        kernel,
        stride,
        groups,
    };
    let opening = match config.block {
        BlockKind::Basic => conv(channels_in, width, 3, stride, 1),
        BlockKind::Bottleneck => conv(channels_in, width, 1, 1, 1),
        BlockKind::Res2Net => conv(channels_in, width * config.scales, 1, 1, 1),
    };
    let conv0 = source.conv_bn(ConvSlot::Conv0 { stage, block }, opening, true)?;
    let branches = match config.block {
        BlockKind::Basic => 0,
        BlockKind::Bottleneck => 1,
        BlockKind::Res2Net => config.scales - 1,
    };
    let branches = (0..branches)
        .map(|scale| {
            let slot = ConvSlot::Branch {
                stage,
                block,
                scale,
            };
            source.conv_bn(slot, conv(width, width, 3, stride, config.groups), true)
        })
        .collect::<Result<_, _>>()?;
    let split = config.block == BlockKind::Res2Net;
    let (cascade, last_pool) = match config.variant {
        _ if !split => (false, None),
        Variant::Paddle => (
            stride == 1,
            (stride != 1).then(|| avg_pool(3, stride, 1, false)),
        ),
        Variant::Timm => (!first, first.then(|| avg_pool(3, stride, 1, true))),
    };
    let closing = match config.block {
        BlockKind::Basic => conv(width, channels_out, 3, 1, 1),
        BlockKind::Bottleneck => conv(width, channels_out, 1, 1, 1),
        BlockKind::Res2Net => conv(width * config.scales, channels_out, 1, 1, 1),
    };
    let conv2 = source.conv_bn(ConvSlot::Conv2 { stage, block }, closing, false)?;
    let se = match config.se_ratio {
        Some(_) => {
            let reduced = config.se_channels(channels_out);
            Some(source.squeeze_excite(stage, block, channels_out, reduced)?)
        }
        None => None,
    };
    let shortcut = if config.projects(stage, block) {
        // "vd": pool, then project with stride 1.
        let pooled = config.avg_down && stride != 1;
        let projection_stride = if pooled { 1 } else { stride };
        let mut projection = source.conv_bn(
            ConvSlot::Shortcut { stage },
            conv(channels_in, channels_out, 1, projection_stride, 1),
            false,
        )?;
        if pooled {
            projection.pool = Some(vd_pool());
        }
        Some(projection)
    } else {
        None
    };
    Ok(Block {
        conv0,
        branches,
        split,
        cascade,
        last_pool,
        conv2,
        se,
        shortcut,
    })
}
