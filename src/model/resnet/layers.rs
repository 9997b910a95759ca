//! The units the ResNet family is made of: convolution + BatchNorm, squeeze-and-excitation,
//! and the pools it uses.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig};
use burn::nn::{Linear, PaddingConfig2d};
use burn::tensor::Tensor;
use burn::tensor::activation::{relu, sigmoid};

/// Convolution + BatchNorm (+ ReLU), with the BatchNorm folded into the convolution's
/// weight and bias when the weights are loaded: camwatch only runs inference, and one
/// convolution costs less than a convolution and a normalisation. In "vd" shortcuts a
/// 2×2 average pool comes first.
#[derive(Module, Debug)]
pub struct ConvBn {
    pub pool: Option<AvgPool2d>,
    pub conv: Conv2d,
    pub relu: bool,
}

impl ConvBn {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = match &self.pool {
            Some(pool) => pool.forward(x),
            None => x,
        };
        let y = self.conv.forward(x);
        if self.relu { relu(y) } else { y }
    }
}

/// Squeeze-and-excitation: each channel scaled by a gate computed from the means of all
/// channels (global average pool → reduce → ReLU → expand → sigmoid).
#[derive(Module, Debug)]
pub struct SqueezeExcite {
    pub reduce: Linear,
    pub expand: Linear,
}

impl SqueezeExcite {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [batch, channels, _, _] = x.dims();
        let means = x.clone().mean_dims(&[2, 3]).reshape([batch, channels]);
        let gate = sigmoid(self.expand.forward(relu(self.reduce.forward(means))));
        x * gate.reshape([batch, channels, 1, 1])
    }
}

/// What a convolution slot holds: `[out, in / groups, k, k]` with padding `(k − 1) / 2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    pub channels_in: usize,
    pub channels_out: usize,
    pub kernel: usize,
    pub stride: usize,
    pub groups: usize,
}

impl ConvSpec {
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.channels_out,
            self.channels_in / self.groups,
            self.kernel,
            self.kernel,
        ]
    }

    pub fn padding(&self) -> PaddingConfig2d {
        let p = (self.kernel - 1) / 2;
        PaddingConfig2d::Explicit(p, p, p, p)
    }
}

/// Average pooling over a square window with symmetric padding. `count_include_pad`
/// is one of the two places where PaddleClas (false) and timm (true) differ.
pub fn avg_pool(
    kernel: usize,
    stride: usize,
    padding: usize,
    count_include_pad: bool,
) -> AvgPool2d {
    AvgPool2dConfig::new([kernel, kernel])
        .with_strides([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .with_count_include_pad(count_include_pad)
        .init()
}

/// The "vd" downsampling of a shortcut: 2×2, stride 2, ceil mode, padding not counted
/// (PaddleClas and timm agree here).
pub fn vd_pool() -> AvgPool2d {
    AvgPool2dConfig::new([2, 2])
        .with_strides([2, 2])
        .with_ceil_mode(true)
        .with_count_include_pad(false)
        .init()
}
