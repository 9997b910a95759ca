//! From a weight file on disk to a network on a device.

use std::path::Path;
use std::time::{Duration, Instant};

use burn::tensor::Device;

use crate::checkpoint::{self, CheckpointError, Format};
use crate::model::{Res2Net, Res2NetConfig};

/// A network loaded from a checkpoint, with what was learned about the file.
pub struct LoadedModel {
    pub model: Res2Net,
    pub config: Res2NetConfig,
    pub format: Format,
    /// From opening the file to having the network on the device.
    pub load_time: Duration,
}

/// Reads `path`, infers the architecture and builds the network on `device`.
pub fn load(path: &Path, device: &Device) -> Result<LoadedModel, CheckpointError> {
    let start = Instant::now();
    let (format, weights) = checkpoint::read(path)?;
    let wrap = |e| CheckpointError::new(path, e);
    let (config, naming) = checkpoint::infer(&weights).map_err(wrap)?;
    let model = Res2Net::from_weights(&config, &naming, weights, device).map_err(wrap)?;
    Ok(LoadedModel {
        model,
        config,
        format,
        load_time: start.elapsed(),
    })
}
