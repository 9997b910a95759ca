//! Choosing where the network runs: `--device auto|cpu|cuda[:N]|flex`.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// CUDA when libtorch sees a GPU, libtorch's CPU otherwise.
    #[default]
    Auto,
    /// libtorch on the CPU.
    Cpu,
    /// libtorch on GPU N.
    Cuda(usize),
    /// Burn's pure-Rust CPU backend.
    Flex,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device {0:?}: expected auto, cpu, cuda, cuda:N or flex")]
    Unknown(String),
    #[error(
        "--device {0}: this camwatch was built without libtorch (cargo feature `tch`); use --device flex"
    )]
    NoLibtorch(DeviceChoice),
    #[error(
        "--device flex: this camwatch was built without the flex backend (cargo feature `flex`)"
    )]
    NoFlex,
    #[error("--device {requested}: libtorch sees {available} CUDA device(s)")]
    NoSuchGpu {
        requested: DeviceChoice,
        available: usize,
    },
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            "flex" => Ok(DeviceChoice::Flex),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| DeviceError::Unknown(s.to_string())),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceChoice::Flex => f.write_str("flex"),
        }
    }
}

/// A device ready for tensors, and what was chosen (`cuda:0`, `cpu`, `flex`): `auto`
/// resolves to one of the others.
#[derive(Clone, Debug)]
pub struct SelectedDevice {
    pub device: Device,
    pub chosen: DeviceChoice,
}

impl SelectedDevice {
    pub fn label(&self) -> String {
        match self.chosen {
            DeviceChoice::Cpu => "cpu (libtorch)".into(),
            DeviceChoice::Flex => "flex (pure Rust)".into(),
            other => other.to_string(),
        }
    }
}

/// Number of CUDA devices libtorch can use (0 without libtorch).
pub fn cuda_device_count() -> usize {
    #[cfg(feature = "tch")]
    {
        if tch::Cuda::is_available() {
            return tch::Cuda::device_count().max(0) as usize;
        }
    }
    0
}

pub fn select(choice: DeviceChoice) -> Result<SelectedDevice, DeviceError> {
    let chosen = match choice {
        DeviceChoice::Auto if cfg!(feature = "tch") => {
            if cuda_device_count() > 0 {
                DeviceChoice::Cuda(0)
            } else {
                DeviceChoice::Cpu
            }
        }
        DeviceChoice::Auto => DeviceChoice::Flex,
        other => other,
    };
    let device = match chosen {
        DeviceChoice::Flex => flex()?,
        DeviceChoice::Cuda(n) => {
            let available = cuda_device_count();
            if n >= available {
                return Err(DeviceError::NoSuchGpu {
                    requested: chosen,
                    available,
                });
            }
            libtorch(chosen)?
        }
        _ => libtorch(chosen)?,
    };
    warm_up(&device);
    Ok(SelectedDevice { device, chosen })
}

/// Caps the CPU threads the backends use for one operation, so that camwatch leaves
/// the rest of the machine to the training job. Call once, before any work.
pub fn limit_threads(threads: usize) {
    let threads = threads.max(1);
    THREADS.store(threads, std::sync::atomic::Ordering::Relaxed);
    #[cfg(feature = "tch")]
    {
        tch::set_num_threads(threads as i32);
        tch::set_num_interop_threads(1);
    }
    #[cfg(feature = "flex")]
    {
        // Fails only when the global pool already exists, which leaves its size as it was.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
    }
}

/// Half the machine's cores (at least one): the default share of a monitor that runs
/// beside a training job.
/// The CPU threads camwatch's own parallel work may use besides the network's: what
/// [`limit_threads`] set, else every core.
pub fn thread_limit() -> usize {
    match THREADS.load(std::sync::atomic::Ordering::Relaxed) {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

static THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// Hands the memory libtorch's CUDA allocator keeps cached back to the driver, as
/// `torch.cuda.empty_cache()` does, so the training job on the same GPU can use it.
/// Does nothing on the CPU backends or when libtorch was built without CUDA.
pub fn release_cached_memory(device: &SelectedDevice) {
    if !matches!(device.chosen, DeviceChoice::Cuda(_)) {
        return;
    }
    #[cfg(camwatch_cuda_cache)]
    {
        unsafe extern "C" {
            fn camwatch_cuda_empty_cache() -> std::ffi::c_int;
        }
        // SAFETY: a C function without arguments that catches every C++ exception.
        let _ = unsafe { camwatch_cuda_empty_cache() };
    }
}

/// Runs one small convolution so that the backend's one-time set-up (thread pools,
/// kernel selection, allocator) happens here, at start-up, rather than inside the first
/// checkpoint's load and forward timings.
fn warm_up(device: &Device) {
    use burn::tensor::Tensor;
    use burn::tensor::module::conv2d;
    use burn::tensor::ops::ConvOptions;
    let x = Tensor::<4>::ones([1, 8, 16, 16], device);
    let w = Tensor::<4>::ones([8, 8, 3, 3], device);
    let y = conv2d(x, w, None, ConvOptions::new([1, 1], [1, 1], [1, 1], 1));
    let _ = y.sum().into_data();
}

// Burn 0.22 marks its libtorch backend deprecated in favour of CubeCL; camwatch uses it
// on purpose: it is the backend that runs the same kernels as the frameworks it follows.
#[allow(deprecated)]
fn libtorch(choice: DeviceChoice) -> Result<Device, DeviceError> {
    #[cfg(feature = "tch")]
    {
        Ok(match choice {
            DeviceChoice::Cuda(n) => Device::libtorch_cuda(n),
            _ => Device::libtorch(),
        })
    }
    #[cfg(not(feature = "tch"))]
    Err(DeviceError::NoLibtorch(choice))
}

fn flex() -> Result<Device, DeviceError> {
    #[cfg(feature = "flex")]
    {
        Ok(Device::flex())
    }
    #[cfg(not(feature = "flex"))]
    Err(DeviceError::NoFlex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("auto".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
        assert_eq!(
            "cuda".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(0)
        );
        assert_eq!(
            "cuda:2".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(2)
        );
        assert!("cuda:x".parse::<DeviceChoice>().is_err());
        assert!("gpu".parse::<DeviceChoice>().is_err());
    }
}
