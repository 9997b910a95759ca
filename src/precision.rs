//! The precision of the network's forward pass: fp32, or bf16 where the hardware runs
//! it fast (CUDA; CPUs with AVX-512 BF16 or AMX). The maps are always made in fp32,
//! from the activations and gradients cast up; only the forward pass (nearly all of
//! the cost) changes. libtorch only: the pure-Rust backend computes in fp32.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, Tensor};

use crate::cam::{Layer, Method};
use crate::device::{DeviceChoice, SelectedDevice};
use crate::model::Network;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    Bf16,
}

impl Precision {
    /// The precision of a network's forward pass (its stem's weights).
    pub fn of(model: &Network) -> Precision {
        if model.stem[0].conv.weight.val().dtype() == DType::BF16 {
            Precision::Bf16
        } else {
            Precision::Fp32
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }

    pub fn dtype(self) -> DType {
        match self {
            Precision::Fp32 => DType::F32,
            Precision::Bf16 => DType::BF16,
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Asked for: one precision, or `auto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionChoice {
    Fp32,
    Bf16,
    Auto,
}

impl std::str::FromStr for PrecisionChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fp32" => Ok(PrecisionChoice::Fp32),
            "bf16" => Ok(PrecisionChoice::Bf16),
            "auto" => Ok(PrecisionChoice::Auto),
            _ => Err(format!("{s:?}: expected fp32, bf16 or auto")),
        }
    }
}

impl PrecisionChoice {
    /// The precision for `methods` at `layer` on `device`. `auto` is bf16 where it is
    /// both fast (CUDA; CPUs with AVX-512 BF16 or AMX, under libtorch) and known to give
    /// fp32's maps: the last stage with the methods made of one pass and its gradient
    /// (correlation ≥ 0.999 with fp32 on the reference networks). Earlier layers,
    /// ScoreCAM and EigenCAM stay fp32 there (see README, Precision).
    pub fn resolve(self, device: &SelectedDevice, methods: &[Method], layer: Layer) -> Precision {
        match self {
            _ if device.chosen == DeviceChoice::Flex => Precision::Fp32,
            PrecisionChoice::Fp32 => Precision::Fp32,
            PrecisionChoice::Bf16 => Precision::Bf16,
            PrecisionChoice::Auto => {
                let fast = match device.chosen {
                    DeviceChoice::Cuda(_) => true,
                    DeviceChoice::Cpu => cpu_has_fast_bf16(),
                    _ => false,
                };
                let exact = layer == Layer::LAST && methods.iter().all(|m| m.info().bf16_exact);
                if fast && exact {
                    Precision::Bf16
                } else {
                    Precision::Fp32
                }
            }
        }
    }
}

/// Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX), from the kernel's
/// list of CPU flags.
pub fn cpu_has_fast_bf16() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
        info.lines().filter(|l| l.starts_with("flags")).any(|l| {
            l.split_whitespace()
                .any(|f| f == "avx512_bf16" || f == "amx_bf16")
        })
    })
}

/// Casts every weight of the network.
struct CastWeights(DType);

impl ModuleMapper for CastWeights {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.0;
        param.map(|t| t.cast(dtype))
    }
}

/// The network for maps at `layer` in `precision`: the stem and the stages up to
/// `layer` in that precision; the stages after it and the classifier stay in fp32, so
/// that the gradient flowing back to an inner layer is as exact as fp32's (each stage
/// runs in its weights' precision).
pub fn cast(model: Network, precision: Precision, layer: Layer) -> Network {
    if precision == Precision::Fp32 {
        return model;
    }
    let mut cast = CastWeights(precision.dtype());
    let mut model = model;
    model.stem = model.stem.into_iter().map(|c| c.map(&mut cast)).collect();
    for stage in model.stages.iter_mut().take(layer.0 + 1) {
        *stage = stage.clone().map(&mut cast);
    }
    model
}
