//! The precision of the network's forward pass: fp32, or bf16 where the hardware runs
//! it fast (CUDA; CPUs with AVX-512 BF16 or AMX). The maps are always made in fp32,
//! from the activations and gradients cast up; only the forward pass (nearly all of
//! the cost) changes. libtorch only: the pure-Rust backend computes in fp32.

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
    /// The precision of a network's forward pass (its first layer's weights).
    pub fn of(model: &Network) -> Precision {
        if model.dtype() == DType::BF16 {
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
    /// The precision for `methods` at `layer` on `device`, for forward passes of
    /// `images` images of `input_size`². `auto` is bf16 where it is known to give fp32's
    /// maps (the last stage with the methods made of one pass and its gradient:
    /// correlation ≥ 0.999 with fp32 on the reference networks) and where it is faster
    /// here: hardware that computes bf16 (CUDA; CPUs with AVX-512 BF16 or AMX, under
    /// libtorch), and measured faster on this device at this size (see
    /// [`bf16_measured_faster`]); fp32 otherwise (docs/precision.md).
    pub fn resolve(
        self,
        device: &SelectedDevice,
        methods: &[Method],
        layer: Layer,
        images: usize,
        input_size: usize,
    ) -> Precision {
        match self {
            _ if device.chosen == DeviceChoice::Flex => Precision::Fp32,
            PrecisionChoice::Fp32 => Precision::Fp32,
            PrecisionChoice::Bf16 => Precision::Bf16,
            PrecisionChoice::Auto
                if bf16_eligible(device, methods, layer)
                    && measured(device, images, input_size).bf16_faster() =>
            {
                Precision::Bf16
            }
            PrecisionChoice::Auto => Precision::Fp32,
        }
    }
}

/// Where `auto` may choose bf16: hardware that computes it (CUDA; CPUs with AVX-512 BF16
/// or AMX, under libtorch), for maps known to be fp32's in bf16.
pub fn bf16_eligible(device: &SelectedDevice, methods: &[Method], layer: Layer) -> bool {
    let hardware = match device.chosen {
        DeviceChoice::Cuda(_) => true,
        DeviceChoice::Cpu => cpu_has_fast_bf16(),
        _ => false,
    };
    hardware && layer == Layer::LAST && methods.iter().all(|m| m.info().bf16_exact)
}

/// How fast the forward pass runs in fp32 and in bf16 on this device: measured once per
/// device, camwatch version and size, on an untrained Res2Net50_vd_26w_4s (a
/// checkpoint's own weights do not change the speed), and kept in the cache folder
/// (`~/.cache/camwatch/precision.json`). On an H200, bf16 was no faster for a few
/// images; on CPUs with AVX-512 BF16 but no AMX it may be slower: flags alone cannot
/// tell.
pub fn measured(device: &SelectedDevice, images: usize, input_size: usize) -> Measured {
    // On the CPU a pass of 64 images takes seconds: the speed per image is measured on
    // a smaller batch. A GPU's speed depends on the batch: measured at the batch itself.
    let images = if device.is_cuda() {
        images.clamp(1, 256)
    } else {
        images.clamp(1, 8)
    };
    let key = format!(
        "{} | {} | {images} images of {input_size}² | camwatch {}",
        device.label(),
        hardware_name(device),
        env!("CARGO_PKG_VERSION")
    );
    let cache = dirs::cache_dir().map(|d| d.join("camwatch").join("precision.json"));
    let mut known: std::collections::BTreeMap<String, Measured> = cache
        .as_ref()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    // Asked again in this process (the UI restarting its monitors): never measured twice,
    // even where the cache folder cannot be written.
    static MEASURED: std::sync::Mutex<Vec<(String, Measured)>> = std::sync::Mutex::new(Vec::new());
    let mut memo = MEASURED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, measured)) = memo.iter().find(|(k, _)| *k == key) {
        return *measured;
    }
    if let Some(measured) = known.get(&key) {
        memo.push((key, *measured));
        return *measured;
    }
    eprintln!(
        "camwatch: --precision auto: timing fp32 and bf16 once on {} ({images} images)…",
        device.label()
    );
    let measured = measure(&device.device, images, input_size);
    eprintln!(
        "camwatch: --precision auto: fp32 {:.0} ms, bf16 {:.0} ms per pass: {} (kept in {})",
        measured.fp32_ms,
        measured.bf16_ms,
        if measured.bf16_faster() {
            "bf16"
        } else {
            "fp32"
        },
        cache
            .as_ref()
            .map_or("memory only".into(), |f| f.display().to_string())
    );
    memo.push((key.clone(), measured));
    known.insert(key, measured);
    if let Some(file) = cache {
        // Best effort: without a cache folder it is measured again next time.
        let _ = std::fs::create_dir_all(file.parent().unwrap_or(&file));
        let partial = file.with_extension("json.partial");
        if let Ok(text) = serde_json::to_string_pretty(&known)
            && std::fs::write(&partial, text).is_ok()
        {
            let _ = std::fs::rename(&partial, &file);
        }
    }
    measured
}

/// One forward pass's time in each precision, in milliseconds (the best of three).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Measured {
    pub fp32_ms: f64,
    pub bf16_ms: f64,
}

impl Measured {
    pub fn bf16_faster(&self) -> bool {
        self.bf16_ms < self.fp32_ms
    }
}

fn measure(device: &burn::tensor::Device, images: usize, input_size: usize) -> Measured {
    use crate::model::Variant;
    use crate::model::resnet::ResNetConfig;
    let config = ResNetConfig::res2net50_vd_26w_4s(Variant::Timm, 1000);
    let fp32 = Network::ResNet(config.init_seeded(device, 0));
    let bf16 = cast(fp32.clone(), Precision::Bf16, Layer::LAST);
    let input = Tensor::<4>::ones([images, 3, input_size, input_size], device);
    let time = |network: &Network| {
        let pass = || {
            let start = std::time::Instant::now();
            // Reading the logits back waits for the device.
            let _ = network.logits(input.clone()).into_data();
            start.elapsed().as_secs_f64() * 1e3
        };
        pass(); // warm-up: kernels chosen, memory allocated
        (0..3).map(|_| pass()).fold(f64::INFINITY, f64::min)
    };
    Measured {
        fp32_ms: time(&fp32),
        bf16_ms: time(&bf16),
    }
}

/// The processor the device is: the GPU's name, or the CPU's model.
fn hardware_name(device: &SelectedDevice) -> String {
    let field = |text: String, name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, value)| value.trim().to_string())
    };
    if device.is_cuda() {
        // The driver's description of each GPU: "Model: NVIDIA H200".
        let gpus = std::fs::read_dir("/proc/driver/nvidia/gpus")
            .into_iter()
            .flatten();
        let mut names: Vec<String> = gpus
            .flatten()
            .filter_map(|gpu| std::fs::read_to_string(gpu.path().join("information")).ok())
            .filter_map(|text| field(text, "Model"))
            .collect();
        names.sort();
        names.dedup();
        return if names.is_empty() {
            "unknown GPU".into()
        } else {
            names.join(", ")
        };
    }
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| field(text, "model name"))
        .unwrap_or_else(|| "unknown CPU".into())
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

/// The network for maps at `layer` in `precision`: the layers up to `layer` in that
/// precision; those after it and the classifier stay in fp32, so that the gradient
/// flowing back to an inner layer is as exact as fp32's (each layer runs in its weights'
/// precision). A layer the network does not have leaves it as it is (the CAM engine says
/// so).
pub fn cast(model: Network, precision: Precision, layer: Layer) -> Network {
    match model.tap_index(layer.tap_name()) {
        Some(tap) if precision != Precision::Fp32 => model.cast_through(tap, precision.dtype()),
        _ => model,
    }
}
