//! The convolution unit Res2Net-vd is made of, and the pools it uses.

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig};
use burn::tensor::Tensor;
use burn::tensor::activation::relu;

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

/// What a convolution slot holds: `[out, in, k, k]` with padding `(k − 1) / 2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    pub channels_in: usize,
    pub channels_out: usize,
    pub kernel: usize,
    pub stride: usize,
}

impl ConvSpec {
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.channels_out,
            self.channels_in,
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
