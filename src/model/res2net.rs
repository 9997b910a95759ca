//! Res2Net-vd: deep stem → four stages of bottlenecks → global average pool → linear.

use burn::module::Module;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, PaddingConfig2d};
use burn::tensor::Tensor;

use super::bottleneck::Bottleneck;
use super::config::{Res2NetConfig, Variant};
use super::layers::{ConvBn, ConvSpec, avg_pool, vd_pool};

/// A convolution with its BatchNorm, by position in the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvSlot {
    /// The three stem convolutions, 0..3.
    Stem(usize),
    /// The 1×1 convolution that opens a bottleneck.
    Conv0 { stage: usize, block: usize },
    /// The 3×3 convolution of branch `scale` (0..scales−1).
    Branch {
        stage: usize,
        block: usize,
        scale: usize,
    },
    /// The 1×1 convolution that closes a bottleneck.
    Conv2 { stage: usize, block: usize },
    /// The projection shortcut of a stage's first block.
    Shortcut { stage: usize },
}

/// Supplies the weights of each layer while [`Res2Net::build`] walks the network: random
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
    fn classifier(&mut self, features: usize, classes: usize) -> Result<Linear, Self::Error>;
}

#[derive(Module, Debug)]
pub struct Stage {
    pub blocks: Vec<Bottleneck>,
}

#[derive(Module, Debug)]
pub struct Res2Net {
    /// `conv1_1` 3→w s2, `conv1_2` w→w, `conv1_3` w→2w, each with ReLU.
    pub stem: Vec<ConvBn>,
    pub stem_pool: MaxPool2d,
    pub stages: Vec<Stage>,
    pub fc: Linear,
}

/// Logits and the output of every stage (the feature maps CAMs are computed on).
pub struct Res2NetOutput {
    /// `[B, classes]`
    pub logits: Tensor<2>,
    /// `[B, 4·base·2^s, H/2^(s+2), W/2^(s+2)]` for s in 0..4 (ceil division).
    pub stages: Vec<Tensor<4>>,
}

impl Res2Net {
    /// Walks the architecture of `config`, taking every layer's weights from `source`.
    pub fn build<S: LayerSource>(config: &Res2NetConfig, source: &mut S) -> Result<Self, S::Error> {
        let w = config.stem_width;
        let stem_specs = [(3, w, 2), (w, w, 1), (w, 2 * w, 1)];
        let mut stem = Vec::with_capacity(3);
        for (i, (channels_in, channels_out, stride)) in stem_specs.into_iter().enumerate() {
            let spec = ConvSpec {
                channels_in,
                channels_out,
                kernel: 3,
                stride,
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
        Ok(Res2Net {
            stem,
            stem_pool,
            stages,
            fc,
        })
    }

    pub fn forward(&self, images: Tensor<4>) -> Res2NetOutput {
        let mut x = self.forward_stem(images);
        let mut stages = Vec::with_capacity(self.stages.len());
        for stage in &self.stages {
            x = stage.forward(x);
            stages.push(x.clone());
        }
        let logits = self.head(x);
        Res2NetOutput { logits, stages }
    }

    /// `[B, 3, H, W]` → `[B, 2w, H/4, W/4]`
    pub fn forward_stem(&self, images: Tensor<4>) -> Tensor<4> {
        // Channels-last from the first convolution on: libtorch keeps the layout through
        // the network and its oneDNN kernels run 15–25 % faster on it (README, "Where
        // the time goes"); the pure-Rust backend runs as fast either way.
        let images = channels_last(images.cast(self.stem[0].conv.weight.val().dtype()));
        let x = self.stem.iter().fold(images, |x, conv| conv.forward(x));
        self.stem_pool.forward(x)
    }

    /// Runs the stages after `stage` and the head on that stage's output: the path a
    /// score's gradient flows back along to reach an inner feature map.
    pub fn forward_from(&self, stage: usize, activation: Tensor<4>) -> Tensor<2> {
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
    config: &Res2NetConfig,
    source: &mut S,
    stage: usize,
    block: usize,
) -> Result<Bottleneck, S::Error> {
    let first = block == 0;
    let stride = if first && stage != 0 { 2 } else { 1 };
    let channels_in = if first {
        config.stage_input(stage)
    } else {
        config.stage_channels(stage)
    };
    let channels_out = config.stage_channels(stage);
    let width = config.branch_width(stage);
    let conv = |channels_in, channels_out, kernel, stride| ConvSpec {
        channels_in,
        channels_out,
        kernel,
        stride,
    };

    let conv0 = source.conv_bn(
        ConvSlot::Conv0 { stage, block },
        conv(channels_in, width * config.scales, 1, 1),
        true,
    )?;
    let branches = (0..config.scales - 1)
        .map(|scale| {
            let slot = ConvSlot::Branch {
                stage,
                block,
                scale,
            };
            source.conv_bn(slot, conv(width, width, 3, stride), true)
        })
        .collect::<Result<_, _>>()?;
    let (cascade, last_pool) = match config.variant {
        Variant::Paddle => (
            stride == 1,
            (stride != 1).then(|| avg_pool(3, stride, 1, false)),
        ),
        Variant::Timm => (!first, first.then(|| avg_pool(3, stride, 1, true))),
    };
    let conv2 = source.conv_bn(
        ConvSlot::Conv2 { stage, block },
        conv(width * config.scales, channels_out, 1, 1),
        false,
    )?;
    let shortcut = if first {
        let mut projection = source.conv_bn(
            ConvSlot::Shortcut { stage },
            conv(channels_in, channels_out, 1, 1),
            false,
        )?;
        if stage != 0 {
            projection.pool = Some(vd_pool());
        }
        Some(projection)
    } else {
        None
    };
    Ok(Bottleneck {
        conv0,
        branches,
        cascade,
        last_pool,
        conv2,
        shortcut,
    })
}

/// The same `[B, C, H, W]` tensor with its values stored channel-fastest (NHWC):
/// a permuted copy, seen through the inverse permutation.
pub fn channels_last(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.permute([0, 2, 3, 1])
        .reshape([b, h * w * c])
        .reshape([b, h, w, c])
        .permute([0, 3, 1, 2])
}
