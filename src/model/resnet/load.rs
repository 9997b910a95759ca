//! Building a [`ResNet`] from a checkpoint's tensors, or with fresh random weights.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData};

use super::config::ResNetConfig;
use super::layers::{ConvBn, ConvSpec, SqueezeExcite};
use super::naming::{LinearNames, Naming, Stored};
use super::network::{ConvSlot, LayerSource, ResNet};
use crate::checkpoint::{LoadError, WeightTensor, Weights};

/// BatchNorm's epsilon in both PaddleClas and timm.
const BN_EPSILON: f64 = 1e-5;

impl ResNetConfig {
    /// A network with random weights (BatchNorm as the identity).
    pub fn init(&self, device: &Device) -> ResNet {
        match ResNet::build(self, &mut RandomInit { device }) {
            Ok(model) => model,
            Err(never) => match never {},
        }
    }

    /// A network with random weights that are the same for the same seed everywhere
    /// (He-normal convolutions with zero bias, a normal classifier): the untrained
    /// network the model-randomisation sanity check compares maps with.
    pub fn init_seeded(&self, device: &Device, seed: u64) -> ResNet {
        let mut source = SeededInit {
            device,
            normal: crate::rng::Normal::new(seed),
        };
        match ResNet::build(self, &mut source) {
            Ok(model) => model,
            Err(never) => match never {},
        }
    }
}

/// A convolution of `spec` with these weights and bias (BatchNorm folded in, or none).
fn conv_bn(weight: Tensor<4>, bias: Tensor<1>, spec: &ConvSpec, relu: bool) -> ConvBn {
    ConvBn {
        pool: None,
        conv: Conv2d {
            weight: Param::from_tensor(weight),
            bias: Some(Param::from_tensor(bias)),
            stride: [spec.stride, spec.stride],
            kernel_size: [spec.kernel, spec.kernel],
            dilation: [1, 1],
            groups: spec.groups,
            padding: spec.padding(),
        },
        relu,
    }
}

struct SeededInit<'a> {
    device: &'a Device,
    normal: crate::rng::Normal,
}

impl SeededInit<'_> {
    fn draw(&mut self, n: usize, std: f32) -> Vec<f32> {
        (0..n).map(|_| self.normal.sample() * std).collect()
    }
}

impl LayerSource for SeededInit<'_> {
    type Error = std::convert::Infallible;

    fn conv_bn(&mut self, _: ConvSlot, spec: ConvSpec, relu: bool) -> Result<ConvBn, Self::Error> {
        let shape = spec.weight_shape();
        let fan_in = shape[1] * shape[2] * shape[3];
        let values = self.draw(shape.iter().product(), (2.0 / fan_in as f32).sqrt());
        let weight = Tensor::<4>::from_data(TensorData::new(values, shape), self.device);
        let bias = Tensor::<1>::zeros([spec.channels_out], self.device);
        Ok(conv_bn(weight, bias, &spec, relu))
    }

    fn classifier(&mut self, features: usize, classes: usize) -> Result<Linear, Self::Error> {
        let values = self.draw(features * classes, (1.0 / features as f32).sqrt());
        let weight =
            Tensor::<2>::from_data(TensorData::new(values, [features, classes]), self.device);
        Ok(Linear {
            weight: Param::from_tensor(weight),
            bias: Some(Param::from_tensor(Tensor::zeros([classes], self.device))),
        })
    }
}

impl ResNet {
    /// Builds the network of `config` from a checkpoint's tensors, folding each BatchNorm
    /// into its convolution. Every tensor is checked against the shape the network
    /// needs; all missing tensors are reported together.
    pub fn from_weights(
        config: &ResNetConfig,
        naming: &Naming,
        weights: Weights,
        device: &Device,
    ) -> Result<ResNet, LoadError> {
        let mut source = CheckpointSource {
            naming,
            weights,
            device,
            missing: Vec::new(),
        };
        let model = ResNet::build(config, &mut source)?;
        if !source.missing.is_empty() {
            return Err(LoadError::Missing {
                names: source.missing,
            });
        }
        Ok(model)
    }
}

struct RandomInit<'a> {
    device: &'a Device,
}

impl LayerSource for RandomInit<'_> {
    type Error = std::convert::Infallible;

    fn conv_bn(&mut self, _: ConvSlot, spec: ConvSpec, relu: bool) -> Result<ConvBn, Self::Error> {
        let conv = Conv2dConfig::new(
            [spec.channels_in, spec.channels_out],
            [spec.kernel, spec.kernel],
        )
        .with_stride([spec.stride, spec.stride])
        .with_padding(spec.padding())
        .with_groups(spec.groups)
        .init(self.device);
        Ok(ConvBn {
            pool: None,
            conv,
            relu,
        })
    }

    fn classifier(&mut self, features: usize, classes: usize) -> Result<Linear, Self::Error> {
        Ok(LinearConfig::new(features, classes).init(self.device))
    }
}

struct CheckpointSource<'a> {
    naming: &'a Naming,
    weights: Weights,
    device: &'a Device,
    missing: Vec<String>,
}

impl CheckpointSource<'_> {
    /// Takes the tensor `name`, checked against `shape`. A missing tensor is recorded and
    /// stands in as `None` so that the walk goes on and reports every missing name.
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Option<WeightTensor>, LoadError> {
        match self.weights.tensors.remove(name) {
            None => {
                self.missing.push(name.to_string());
                Ok(None)
            }
            Some(t) if t.shape != shape => Err(LoadError::Shape {
                name: name.to_string(),
                expected: shape.to_vec(),
                found: t.shape,
            }),
            // A run that diverged writes NaN: say so rather than compute meaningless maps.
            Some(t) if !t.values.iter().all(|v| v.is_finite()) => Err(LoadError::Tensor {
                name: name.to_string(),
                message: "holds NaN or infinite values (did training diverge?)".into(),
            }),
            Some(t) => Ok(Some(t)),
        }
    }
}

impl LayerSource for CheckpointSource<'_> {
    type Error = LoadError;

    fn conv_bn(&mut self, slot: ConvSlot, spec: ConvSpec, relu: bool) -> Result<ConvBn, LoadError> {
        let names = self.naming.conv(slot);
        let out = spec.channels_out;
        let weight = self.take(&names.weight, &spec.weight_shape())?;
        let gamma = self.take(&names.bn_weight, &[out])?;
        let beta = self.take(&names.bn_bias, &[out])?;
        let mean = self.take(&names.bn_mean, &[out])?;
        let var = self.take(&names.bn_var, &[out])?;

        let (Some(weight), Some(gamma), Some(beta), Some(mean), Some(var)) =
            (weight, gamma, beta, mean, var)
        else {
            let Ok(placeholder) = RandomInit {
                device: self.device,
            }
            .conv_bn(slot, spec, relu);
            return Ok(placeholder);
        };
        // y = γ (conv(x) − μ) / √(σ² + ε) + β  =  conv'(x) + b'
        let mut folded = weight.values;
        let per_channel = folded.len() / out;
        let mut bias = Vec::with_capacity(out);
        for o in 0..out {
            let scale = gamma.values[o] as f64 / (var.values[o] as f64 + BN_EPSILON).sqrt();
            for w in &mut folded[o * per_channel..(o + 1) * per_channel] {
                *w = (*w as f64 * scale) as f32;
            }
            bias.push((beta.values[o] as f64 - mean.values[o] as f64 * scale) as f32);
        }
        let weight =
            Tensor::<4>::from_data(TensorData::new(folded, spec.weight_shape()), self.device);
        let bias = Tensor::<1>::from_data(TensorData::new(bias, [out]), self.device);
        Ok(conv_bn(weight, bias, &spec, relu))
    }

    fn squeeze_excite(
        &mut self,
        stage: usize,
        block: usize,
        channels: usize,
        reduced: usize,
    ) -> Result<SqueezeExcite, LoadError> {
        let (reduce, expand) = self.naming.squeeze_excite(stage, block);
        Ok(SqueezeExcite {
            reduce: self.linear(&reduce, channels, reduced)?,
            expand: self.linear(&expand, reduced, channels)?,
        })
    }

    fn classifier(&mut self, features: usize, classes: usize) -> Result<Linear, LoadError> {
        let names = self.naming.fc();
        self.linear(&names, features, classes)
    }
}

impl CheckpointSource<'_> {
    /// A fully connected layer `features` → `classes`, stored as `names` say.
    fn linear(
        &mut self,
        names: &LinearNames,
        features: usize,
        classes: usize,
    ) -> Result<Linear, LoadError> {
        let stored: &[usize] = match names.stored {
            Stored::InOut => &[features, classes],
            Stored::OutIn => &[classes, features],
            Stored::OutIn1x1 => &[classes, features, 1, 1],
        };
        let weight = self.take(&names.weight, stored)?;
        let bias = self.take(&names.bias, &[classes])?;
        let (Some(weight), Some(bias)) = (weight, bias) else {
            return Ok(LinearConfig::new(features, classes).init(self.device));
        };
        let mut weight = Tensor::<2>::from_data(
            TensorData::new(weight.values, [stored[0], stored[1]]),
            self.device,
        );
        // Burn's Linear is `[in, out]`, as PaddlePaddle's.
        if names.stored != Stored::InOut {
            weight = weight.transpose();
        }
        let bias = Tensor::<1>::from_data(TensorData::new(bias.values, [classes]), self.device);
        Ok(Linear {
            weight: Param::from_tensor(weight),
            bias: Some(Param::from_tensor(bias)),
        })
    }
}
