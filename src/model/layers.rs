//! The layers the families share, each built from a checkpoint's tensors by name path:
//! convolution with its BatchNorm folded in and an activation, squeeze-excitation,
//! LayerNorm (over the last dimension or over channels), linear layers in either storage
//! order, and the precision helpers every family's forward pass uses.

use burn::module::{Module, ModuleMapper, Param};
use burn::nn::conv::Conv2d;
use burn::nn::{Linear, PaddingConfig2d};
use burn::tensor::activation::{gelu, hard_sigmoid, relu, relu6, sigmoid, silu};
use burn::tensor::ops::PadMode;
use burn::tensor::{DType, Tensor};

use super::{Init, Params};
use crate::checkpoint::LoadError;

/// An activation function, with the framework's own constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    Identity,
    Relu,
    Relu6,
    Silu,
    /// The exact (erf) GELU, as `nn.GELU()`.
    Gelu,
    Sigmoid,
    /// `x · hard_sigmoid(x)` with PyTorch's slope 1/6 (PaddlePaddle's is the same).
    HardSwish,
    /// `clamp(slope · x + 0.5, 0, 1)`: PyTorch's slope is 1/6, PaddleClas's MobileNetV3
    /// uses 0.2.
    HardSigmoid {
        slope: f64,
    },
}

impl Act {
    pub const TORCH_HARD_SIGMOID: Act = Act::HardSigmoid { slope: 1.0 / 6.0 };

    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Act::Identity => x,
            Act::Relu => relu(x),
            Act::Relu6 => relu6(x),
            Act::Silu => silu(x),
            Act::Gelu => gelu(x),
            Act::Sigmoid => sigmoid(x),
            Act::HardSwish => x.clone() * hard_sigmoid(x, 1.0 / 6.0, 0.5),
            Act::HardSigmoid { slope } => hard_sigmoid(x, slope, 0.5),
        }
    }
}

/// How a framework names a BatchNorm's running statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BnNames {
    /// PyTorch: `running_mean`, `running_var`.
    Torch,
    /// PaddlePaddle: `_mean`, `_variance`.
    Paddle,
}

/// What a convolution holds: `[out, in / groups, k, k]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    pub channels_in: usize,
    pub channels_out: usize,
    pub kernel: usize,
    pub stride: usize,
    pub groups: usize,
}

impl ConvSpec {
    pub fn new(channels_in: usize, channels_out: usize, kernel: usize, stride: usize) -> Self {
        ConvSpec {
            channels_in,
            channels_out,
            kernel,
            stride,
            groups: 1,
        }
    }

    /// Depthwise: one group per channel.
    pub fn depthwise(channels: usize, kernel: usize, stride: usize) -> Self {
        ConvSpec {
            groups: channels,
            ..ConvSpec::new(channels, channels, kernel, stride)
        }
    }

    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.channels_out,
            self.channels_in / self.groups,
            self.kernel,
            self.kernel,
        ]
    }
}

/// How a convolution pads its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// `(k − 1) / 2` on every side (PyTorch's and PaddlePaddle's usual).
    Symmetric,
    /// None (patch embeddings, ConvNeXt's downsampling).
    Valid,
    /// TensorFlow's "same": `ceil(in / stride)` outputs, the padding split with the
    /// extra pixel at the bottom and right (timm's `tf_` networks).
    TfSame,
}

/// A convolution (its BatchNorm folded in, where it has one) and an activation.
#[derive(Module, Debug)]
pub struct ConvAct {
    pub conv: Conv2d,
    #[module(skip)]
    pub act: Act,
    /// TensorFlow's "same" padding, computed from each input's size.
    #[module(skip)]
    pub tf_same: bool,
}

impl ConvAct {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = if self.tf_same { self.pad_same(x) } else { x };
        self.act.apply(self.conv.forward(x))
    }

    fn pad_same(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let [kh, kw] = self.conv.kernel_size;
        let [sh, sw] = self.conv.stride;
        let total = |size: usize, k: usize, s: usize| {
            (size.div_ceil(s).saturating_sub(1) * s + k).saturating_sub(size)
        };
        let (ph, pw) = (total(h, kh, sh), total(w, kw, sw));
        if ph == 0 && pw == 0 {
            return x;
        }
        x.pad(
            (pw / 2, pw - pw / 2, ph / 2, ph - ph / 2),
            PadMode::Constant(0.0),
        )
    }

    /// A convolution with these (folded) weights.
    fn new(
        weight: Tensor<4>,
        bias: Option<Tensor<1>>,
        spec: &ConvSpec,
        padding: Padding,
        act: Act,
    ) -> Self {
        let p = match padding {
            Padding::Symmetric => (spec.kernel - 1) / 2,
            Padding::Valid | Padding::TfSame => 0,
        };
        ConvAct {
            conv: Conv2d {
                weight: Param::from_tensor(weight),
                bias: bias.map(Param::from_tensor),
                stride: [spec.stride, spec.stride],
                kernel_size: [spec.kernel, spec.kernel],
                dilation: [1, 1],
                groups: spec.groups,
                padding: PaddingConfig2d::Explicit(p, p, p, p),
            },
            act,
            tf_same: padding == Padding::TfSame,
        }
    }
}

/// A convolution without BatchNorm, at `p` (`p.weight`, and `p.bias` if `bias`).
pub fn conv(
    p: &Params,
    spec: ConvSpec,
    bias: bool,
    padding: Padding,
    act: Act,
) -> Result<ConvAct, LoadError> {
    let weight = p.tensor("weight", spec.weight_shape(), Init::Conv)?;
    let bias = if bias {
        Some(p.tensor("bias", [spec.channels_out], Init::Zeros)?)
    } else {
        None
    };
    Ok(ConvAct::new(weight, bias, &spec, padding, act))
}

/// A BatchNorm's affine parameters and running statistics at `bn`, for `channels`.
pub struct BatchNorm {
    pub scale: Vec<f64>,
    pub shift: Vec<f64>,
}

impl BatchNorm {
    /// `y = γ (x − μ) / √(σ² + ε) + β` as `scale · x + shift`.
    pub fn read(
        bn: &Params,
        channels: usize,
        names: BnNames,
        epsilon: f64,
    ) -> Result<Self, LoadError> {
        let (mean, var) = match names {
            BnNames::Torch => ("running_mean", "running_var"),
            BnNames::Paddle => ("_mean", "_variance"),
        };
        let gamma = bn.values("weight", &[channels], Init::Ones)?;
        let beta = bn.values("bias", &[channels], Init::Zeros)?;
        let mean = bn.values(mean, &[channels], Init::Zeros)?;
        let var = bn.values(var, &[channels], Init::Ones)?;
        let mut scale = Vec::with_capacity(channels);
        let mut shift = Vec::with_capacity(channels);
        for c in 0..channels {
            let s = gamma[c] as f64 / (var[c] as f64 + epsilon).sqrt();
            scale.push(s);
            shift.push(beta[c] as f64 - mean[c] as f64 * s);
        }
        Ok(BatchNorm { scale, shift })
    }
}

/// A bias-free convolution at `conv_p` followed by the BatchNorm at `bn_p`, folded into
/// one convolution.
pub fn conv_bn(
    conv_p: &Params,
    bn_p: &Params,
    spec: ConvSpec,
    norm: (BnNames, f64),
    padding: Padding,
    act: Act,
) -> Result<ConvAct, LoadError> {
    let shape = spec.weight_shape();
    let mut weight = conv_p.values("weight", &shape, Init::Conv)?;
    let bn = BatchNorm::read(bn_p, spec.channels_out, norm.0, norm.1)?;
    let per_channel = weight.len() / spec.channels_out;
    for (o, chunk) in weight.chunks_mut(per_channel).enumerate() {
        for w in chunk {
            *w = (*w as f64 * bn.scale[o]) as f32;
        }
    }
    let bias: Vec<f32> = bn.shift.iter().map(|&b| b as f32).collect();
    let weight = conv_p.upload(weight, shape);
    let bias = conv_p.upload(bias, [spec.channels_out]);
    Ok(ConvAct::new(weight, Some(bias), &spec, padding, act))
}

/// How a fully connected layer's weight is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// `[in, out]`: PaddlePaddle's Linear (and Burn's).
    InOut,
    /// `[out, in]`: PyTorch's Linear.
    OutIn,
    /// `[out, in, 1, 1]`: a 1×1 convolution on a pooled vector.
    OutIn1x1,
}

/// A fully connected layer `features → outputs` at `p`, stored as `stored` says, with
/// or without bias.
pub fn linear(
    p: &Params,
    features: usize,
    outputs: usize,
    stored: Stored,
    bias: bool,
) -> Result<Linear, LoadError> {
    let shape: Vec<usize> = match stored {
        Stored::InOut => vec![features, outputs],
        Stored::OutIn => vec![outputs, features],
        Stored::OutIn1x1 => vec![outputs, features, 1, 1],
    };
    let init = if stored == Stored::InOut {
        Init::Normal((1.0 / features.max(1) as f32).sqrt())
    } else {
        Init::Linear
    };
    let values = p.values("weight", &shape, init)?;
    let weight = p.upload(values, [shape[0], shape[1]]);
    // Burn's Linear is `[in, out]`, as PaddlePaddle's.
    let weight = if stored == Stored::InOut {
        weight
    } else {
        weight.transpose()
    };
    let bias = if bias {
        Some(Param::from_tensor(p.tensor(
            "bias",
            [outputs],
            Init::Zeros,
        )?))
    } else {
        None
    };
    Ok(Linear {
        weight: Param::from_tensor(weight),
        bias,
    })
}

/// Squeeze-and-excitation: each channel scaled by a gate computed from the means of all
/// channels (global average pool → reduce → activation → expand → gate). PP-HGNet's
/// "effective" variant has no reduction: one layer, then the gate.
#[derive(Module, Debug)]
pub struct SqueezeExcite {
    pub reduce: Option<Linear>,
    pub expand: Linear,
    #[module(skip)]
    pub act: Act,
    #[module(skip)]
    pub gate: Act,
}

impl SqueezeExcite {
    /// Reduce and expand as 1×1 convolutions with bias at `p.pp(reduce)` and
    /// `p.pp(expand)`.
    pub fn read(
        p: &Params,
        names: [&str; 2],
        channels: usize,
        reduced: usize,
        act: Act,
        gate: Act,
    ) -> Result<Self, LoadError> {
        Ok(SqueezeExcite {
            reduce: Some(linear(
                &p.pp(names[0]),
                channels,
                reduced,
                Stored::OutIn1x1,
                true,
            )?),
            expand: linear(&p.pp(names[1]), reduced, channels, Stored::OutIn1x1, true)?,
            act,
            gate,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [batch, channels, _, _] = x.dims();
        let means = x.clone().mean_dims(&[2, 3]).reshape([batch, channels]);
        let means = in_dtype_of_linear(means, &self.expand);
        let hidden = match &self.reduce {
            Some(reduce) => self.act.apply(reduce.forward(means)),
            None => means,
        };
        let gate = self.gate.apply(self.expand.forward(hidden));
        x * gate.reshape([batch, channels, 1, 1])
    }
}

/// LayerNorm: over the last dimension, or over the channels of a `[B, C, H, W]` map
/// (timm's `LayerNorm2d`).
#[derive(Module, Debug)]
pub struct LayerNorm {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
    #[module(skip)]
    pub epsilon: f64,
}

impl LayerNorm {
    pub fn read(p: &Params, channels: usize, epsilon: f64) -> Result<Self, LoadError> {
        Ok(LayerNorm {
            weight: Param::from_tensor(p.tensor("weight", [channels], Init::Ones)?),
            bias: Param::from_tensor(p.tensor("bias", [channels], Init::Zeros)?),
            epsilon,
        })
    }

    /// Over the last dimension.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let x = x.cast(self.weight.val().dtype());
        let normalized = normalize(x, D - 1, self.epsilon);
        let mut shape = [1usize; D];
        shape[D - 1] = self.weight.dims()[0];
        normalized * self.weight.val().reshape(shape) + self.bias.val().reshape(shape)
    }

    /// Over the channels of `[B, C, H, W]`.
    pub fn forward_channels(&self, x: Tensor<4>) -> Tensor<4> {
        let x = x.cast(self.weight.val().dtype());
        let channels = self.weight.dims()[0];
        let normalized = normalize(x, 1, self.epsilon);
        normalized * self.weight.val().reshape([1, channels, 1, 1])
            + self.bias.val().reshape([1, channels, 1, 1])
    }
}

/// `(x − mean) / √(var + ε)` over dimension `dim`, the variance without Bessel's
/// correction (as every framework's LayerNorm).
fn normalize<const D: usize>(x: Tensor<D>, dim: usize, epsilon: f64) -> Tensor<D> {
    let centred = x.clone() - x.mean_dim(dim);
    let var = (centred.clone() * centred.clone()).mean_dim(dim);
    centred / var.add_scalar(epsilon).sqrt()
}

/// Casts every weight of a module.
struct CastWeights(DType);

impl ModuleMapper for CastWeights {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.0;
        param.map(|t| t.cast(dtype))
    }
}

/// `module` with every weight in `dtype`.
pub fn cast<M: Module>(module: M, dtype: DType) -> M {
    module.map(&mut CastWeights(dtype))
}

/// The first `count` of `modules` (the layers up to a tap) with every weight in `dtype`,
/// the rest as they are.
pub fn cast_first<M: Module>(modules: Vec<M>, count: usize, dtype: DType) -> Vec<M> {
    modules
        .into_iter()
        .enumerate()
        .map(|(i, m)| if i < count { cast(m, dtype) } else { m })
        .collect()
}

/// `x` in the precision of `weight` (a network may run its layers in two).
pub fn in_dtype_of<const D: usize, const W: usize>(
    x: Tensor<D>,
    weight: &Param<Tensor<W>>,
) -> Tensor<D> {
    x.cast(weight.val().dtype())
}

fn in_dtype_of_linear<const D: usize>(x: Tensor<D>, linear: &Linear) -> Tensor<D> {
    in_dtype_of(x, &linear.weight)
}

/// The same `[B, C, H, W]` tensor with its values stored channel-fastest (NHWC): a
/// permuted copy, seen through the inverse permutation. libtorch keeps the layout through
/// the network and its oneDNN convolutions run 15–25 % faster on it (docs/performance.md,
/// "Where the time goes"); the pure-Rust backend runs as fast either way.
pub fn channels_last(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.permute([0, 2, 3, 1])
        .reshape([b, h * w * c])
        .reshape([b, h, w, c])
        .permute([0, 3, 1, 2])
}

/// Global average pooling then the classifier: `[B, C, h, w]` → `[B, classes]`.
pub fn pool_and_classify(features: Tensor<4>, classifier: &Linear) -> Tensor<2> {
    let [batch, channels, _, _] = features.dims();
    let pooled = features.mean_dims(&[2, 3]).reshape([batch, channels]);
    classifier.forward(in_dtype_of(pooled, &classifier.weight))
}
