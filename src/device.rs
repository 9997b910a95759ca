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
    #[error("--device {requested}: libtorch sees {available} CUDA device(s){}", diagnosis.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    NoSuchGpu {
        requested: DeviceChoice,
        available: usize,
        /// Why, when a GPU is there that libtorch cannot use (see [`gpu_diagnosis`]).
        diagnosis: Option<String>,
    },
}

/// The CUDA version of the libraries camwatch bundles (the torch 2.9.0 wheel's), and
/// the oldest NVIDIA driver that runs them.
const BUNDLED_CUDA: &str = "12.8";
const OLDEST_DRIVER: (u32, u32) = (525, 60);

/// Why libtorch sees no GPU although the machine has one: the NVIDIA kernel driver is
/// loaded (`/proc/driver/nvidia/version`) but too old for the bundled CUDA libraries,
/// or something else keeps libtorch from it. `None` on a machine without the driver.
pub fn gpu_diagnosis() -> Option<String> {
    let text = std::fs::read_to_string("/proc/driver/nvidia/version").ok()?;
    Some(diagnose_driver(&text))
}

/// [`gpu_diagnosis`] from the text of `/proc/driver/nvidia/version`.
fn diagnose_driver(text: &str) -> String {
    // "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 …"
    let version = text
        .split_whitespace()
        .find(|w| w.split('.').count() >= 2 && w.split('.').all(|p| p.parse::<u32>().is_ok()));
    let parsed = version.and_then(|v| {
        let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
        Some((parts.next()??, parts.next()??))
    });
    match (version, parsed) {
        (Some(v), Some(found)) if found < OLDEST_DRIVER => format!(
            "the NVIDIA driver {v} is too old for the CUDA {BUNDLED_CUDA} libraries camwatch \
             bundles (needs {}.{} or newer): update the driver, or use --device cpu",
            OLDEST_DRIVER.0, OLDEST_DRIVER.1
        ),
        (Some(v), _) => format!(
            "the NVIDIA driver {v} is loaded but CUDA does not start (no device visible to \
             this process? CUDA_VISIBLE_DEVICES, permissions on /dev/nvidia*); use --device cpu"
        ),
        (None, _) => "an NVIDIA driver is loaded but CUDA does not start; use --device cpu".into(),
    }
}

/// Whether an error says the GPU ran out of memory (libtorch's, cuBLAS's and cuDNN's
/// words for it): not the checkpoint's fault, so it is tried again, not recorded.
pub fn out_of_gpu_memory(message: &str) -> bool {
    [
        "CUDA out of memory",
        "CUDA error: out of memory",
        "CUBLAS_STATUS_ALLOC_FAILED",
        "CUDNN_STATUS_ALLOC_FAILED",
        "cudaErrorMemoryAllocation",
    ]
    .iter()
    .any(|needle| message.contains(needle))
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
    /// `auto` chose the CPU although the machine has a GPU (see [`gpu_diagnosis`]).
    pub gpu_unusable: bool,
}

impl SelectedDevice {
    pub fn label(&self) -> String {
        match self.chosen {
            DeviceChoice::Cpu if self.gpu_unusable => "cpu (libtorch; GPU unusable)".into(),
            DeviceChoice::Cpu => "cpu (libtorch)".into(),
            DeviceChoice::Flex => "flex (pure Rust)".into(),
            other => other.to_string(),
        }
    }

    pub fn is_cuda(&self) -> bool {
        matches!(self.chosen, DeviceChoice::Cuda(_))
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
    let mut gpu_unusable = false;
    let chosen = match choice {
        DeviceChoice::Auto if cfg!(feature = "tch") => {
            if cuda_device_count() > 0 {
                DeviceChoice::Cuda(0)
            } else {
                // A GPU libtorch cannot use: said once, here, before any UI.
                if let Some(diagnosis) = gpu_diagnosis() {
                    eprintln!("camwatch: --device auto runs on the CPU: {diagnosis}");
                    gpu_unusable = true;
                }
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
                    diagnosis: gpu_diagnosis(),
                });
            }
            libtorch(chosen)?
        }
        _ => libtorch(chosen)?,
    };
    warm_up(&device);
    Ok(SelectedDevice {
        device,
        chosen,
        gpu_unusable,
    })
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

/// The CPU threads camwatch's own parallel work may use besides the network's: what
/// [`limit_threads`] set, else every core.
pub fn thread_limit() -> usize {
    match THREADS.load(std::sync::atomic::Ordering::Relaxed) {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

static THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Half the machine's cores (at least one): the default share of a monitor that runs
/// beside a training job.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// Keeps memory freed by the CPU backends for reuse instead of handing it back at once.
/// glibc serves every block over at most 32 MB (a Res2Net50 activation for 64 images is
/// 200 MB) with its own mmap, unmapped on free, so each layer's output paid for fresh
/// zeroed pages: page faults were about a quarter of an fp32 forward pass on the CPU
/// (perf: exc_page_fault, clear_page_erms). From the heap, freed blocks are reused:
/// forward 5.5 → 3.9 s fp32, 2.5 → 2.2 s bf16 for 64 images (docs/performance.md, "Where
/// the time goes"). With `--gpu-memory release` the heap goes back to the system after each
/// checkpoint ([`release_cached_memory`]).
///
/// One arena for every thread: a thread's own arena grows in heaps of at most 64 MB,
/// serves anything larger (a checkpoint's buffers, its widened tensors) with an mmap
/// whatever `M_MMAP_MAX` says, and unmaps a heap once it is free, so the scanner's and
/// the worker's buffers were fresh zeroed pages for every checkpoint (perf: 17 % of a
/// watcher's samples in `clear_page_erms`).
pub fn reuse_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's thresholds; called before other threads.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
    }
}

/// What a monitor does with the memory a checkpoint's computation used, once done
/// (`--gpu-memory`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryUse {
    /// Kept for the next checkpoint: no allocation on its critical path, but the
    /// memory stays taken from the training job beside camwatch.
    Keep,
    /// Handed back after each checkpoint ([`release_cached_memory`]).
    Release,
}

impl MemoryUse {
    /// Keep on the CPU: measured 0.91× the time from a checkpoint's rename to its maps
    /// (Res2Net50, 6 samples, one thread) for about 190 MB more resident memory, little
    /// beside a machine's RAM (docs/gpu.md, "The GPU"). Release on a GPU, whose
    /// memory the training job may need whole.
    pub fn default_for(device: &SelectedDevice) -> MemoryUse {
        if device.is_cuda() {
            MemoryUse::Release
        } else {
            MemoryUse::Keep
        }
    }
}

impl FromStr for MemoryUse {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "keep" => Ok(MemoryUse::Keep),
            "release" => Ok(MemoryUse::Release),
            _ => Err(format!("{s:?}: expected keep or release")),
        }
    }
}

/// Hands memory kept for reuse back after a checkpoint, so the training job beside
/// camwatch can use it: the heap's free pages to the system ([`reuse_freed_memory`]),
/// and what libtorch's CUDA allocator keeps cached to the driver, as
/// `torch.cuda.empty_cache()` does (when libtorch was built with CUDA).
pub fn release_cached_memory(device: &SelectedDevice) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the system.
    unsafe {
        libc::malloc_trim(0);
    }
    if device.is_cuda() {
        empty_cuda_cache();
    }
}

/// Hands libtorch's cached CUDA memory back to the driver (`torch.cuda.empty_cache()`).
pub fn empty_cuda_cache() {
    #[cfg(camwatch_cuda_cache)]
    {
        unsafe extern "C" {
            fn camwatch_cuda_empty_cache() -> std::ffi::c_int;
        }
        // SAFETY: a C function without arguments that catches every C++ exception.
        let _ = unsafe { camwatch_cuda_empty_cache() };
    }
}

/// Whether a backend device is a CUDA GPU.
pub fn is_cuda_device(device: &Device) -> bool {
    #[cfg(feature = "tch")]
    #[allow(deprecated)]
    {
        (0..cuda_device_count()).any(|n| *device == Device::libtorch_cuda(n))
    }
    #[cfg(not(feature = "tch"))]
    {
        let _ = device;
        false
    }
}

/// The fraction of the current GPU's memory that is free (libtorch's cache counts as
/// taken), from the CUDA runtime libtorch loaded; `None` without one.
pub fn gpu_free_fraction() -> Option<f64> {
    type MemGetInfo = unsafe extern "C" fn(*mut usize, *mut usize) -> std::ffi::c_int;
    // SAFETY: looks a symbol up among the libraries already loaded.
    let symbol = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"cudaMemGetInfo".as_ptr()) };
    if symbol.is_null() {
        return None;
    }
    // SAFETY: `cudaError_t cudaMemGetInfo(size_t* free, size_t* total)`, CUDA's runtime API.
    let get: MemGetInfo = unsafe { std::mem::transmute(symbol) };
    let (mut free, mut total) = (0usize, 0usize);
    // SAFETY: two valid pointers to write to.
    let status = unsafe { get(&mut free, &mut total) };
    (status == 0 && total > 0).then(|| free as f64 / total as f64)
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

    #[test]
    fn an_old_driver_is_named_with_what_it_needs() {
        let old = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.57.02  Tue Jul 13 16:14:05 UTC 2021\nGCC version:  gcc version 9.3.0\n";
        let said = diagnose_driver(old);
        assert!(
            said.contains("470.57.02 is too old for the CUDA 12.8"),
            "{said}"
        );
        assert!(said.contains("525.60 or newer"), "{said}");
        let recent =
            "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.133.20  Release Build\n";
        let said = diagnose_driver(recent);
        assert!(
            said.contains("570.133.20 is loaded but CUDA does not start"),
            "{said}"
        );
        assert!(diagnose_driver("garbage").contains("an NVIDIA driver is loaded"));
    }

    #[test]
    fn out_of_memory_is_told_from_other_errors() {
        // As libtorch words it (through tch's error), and cuBLAS.
        assert!(out_of_gpu_memory(
            "epoch_3.pth: internal error: Torch(\"CUDA out of memory. Tried to allocate 20.00 MiB \
             (GPU 0; 79.19 GiB total capacity; 78.50 GiB already allocated)\")"
        ));
        assert!(out_of_gpu_memory(
            "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"
        ));
        assert!(!out_of_gpu_memory(
            "epoch_3.pth: tensor \"fc.weight\" has shape [4, 2048]"
        ));
        assert!(!out_of_gpu_memory(
            "CUDA error: an illegal memory access was encountered"
        ));
    }
}
