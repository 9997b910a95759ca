//! `camwatch info [--json] FILE`

use std::path::Path;

use serde::Serialize;

use camwatch::device::{self, DeviceChoice};
use camwatch::loader;
use camwatch::model::Res2NetConfig;

use super::CliResult;

#[derive(Serialize)]
struct Info<'a> {
    file: &'a Path,
    format: String,
    arch: Arch<'a>,
    parameters: usize,
    device: String,
    load_ms: f64,
}

/// The architecture as `summary.json` and `info --json` report it.
#[derive(Serialize)]
pub struct Arch<'a> {
    pub name: String,
    pub variant: String,
    pub layers: Option<usize>,
    pub depths: &'a [usize],
    pub width: usize,
    pub scales: usize,
    pub classes: usize,
}

impl<'a> Arch<'a> {
    pub fn of(config: &'a Res2NetConfig) -> Self {
        Arch {
            name: config.name(),
            variant: config.variant.to_string(),
            layers: config.layers(),
            depths: &config.depths,
            width: config.width,
            scales: config.scales,
            classes: config.num_classes,
        }
    }
}

pub fn run(file: &Path, json: bool, device: DeviceChoice) -> CliResult {
    let selected = device::select(device)?;
    let loaded = loader::load(file, &selected.device)?;
    let config = &loaded.config;
    let info = Info {
        file,
        format: loaded.format.to_string(),
        arch: Arch::of(config),
        parameters: config.parameter_count(),
        device: selected.label(),
        load_ms: loaded.load_time.as_secs_f64() * 1e3,
    };
    if json {
        println!("{}", serde_json::to_string(&info)?);
    } else {
        println!("file        {}", file.display());
        println!("format      {}", info.format);
        println!(
            "network     {} ({} variant)",
            info.arch.name, info.arch.variant
        );
        println!("depths      {:?}", config.depths);
        println!("width       {} × {} scales", config.width, config.scales);
        println!("classes     {}", config.num_classes);
        println!(
            "parameters  {} ({:.2} M)",
            info.parameters,
            info.parameters as f64 / 1e6
        );
        println!("device      {}", info.device);
        println!("load time   {:.1} ms", info.load_ms);
    }
    Ok(())
}
