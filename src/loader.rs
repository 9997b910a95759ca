//! From a weight file on disk to a network on a device.

use std::path::Path;
use std::time::{Duration, Instant};

use burn::tensor::Device;

use crate::checkpoint::{self, CheckpointError, Format, Weights};
use crate::model::{self, Arch, Hints, Network, Source};

/// A network loaded from a checkpoint, with what was learned about the file.
pub struct LoadedModel {
    pub model: Network,
    /// The architecture read off the file.
    pub config: Arch,
    pub format: Format,
    /// From opening the file to having the network on the device.
    pub load_time: Duration,
}

/// Reads `path`, infers the architecture and builds the network on `device`.
pub fn load(path: &Path, device: &Device) -> Result<LoadedModel, CheckpointError> {
    load_with(path, device, &Hints::default())
}

/// [`load`], with what the user said of the network (`--arch`).
pub fn load_with(
    path: &Path,
    device: &Device,
    hints: &Hints,
) -> Result<LoadedModel, CheckpointError> {
    let start = Instant::now();
    let mut loaded = checkpoint::with_file(path, |data| from_bytes(path, data, device, hints))??;
    loaded.load_time = start.elapsed();
    Ok(loaded)
}

/// Builds the network from the bytes of the file at `path` (named in errors only).
pub fn from_bytes(
    path: &Path,
    data: &[u8],
    device: &Device,
    hints: &Hints,
) -> Result<LoadedModel, CheckpointError> {
    let start = Instant::now();
    let (format, weights) = checkpoint::parse(data).map_err(|e| CheckpointError::new(path, e))?;
    let mut loaded = from_weights(path, format, weights, device, hints)?;
    loaded.load_time = start.elapsed();
    Ok(loaded)
}

/// Builds the network from a parsed checkpoint's tensors: the architecture inferred from
/// their names and shapes, and from the model name the file carries (timm's training
/// checkpoints say `arch`) unless the user named one.
pub fn from_weights(
    path: &Path,
    format: Format,
    weights: Weights,
    device: &Device,
    hints: &Hints,
) -> Result<LoadedModel, CheckpointError> {
    let start = Instant::now();
    let wrap = |e| CheckpointError::new(path, e);
    let hints = Hints {
        name: hints.name.clone().or_else(|| weights.arch.clone()),
    };
    let config = model::infer(&weights, &hints).map_err(wrap)?;
    let model = config
        .build(Source::Checkpoint(weights), device)
        .map_err(wrap)?;
    Ok(LoadedModel {
        model,
        config,
        format,
        load_time: start.elapsed(),
    })
}
