//! `camwatch info [--json] FILE`

use std::path::Path;

use serde::Serialize;

use camwatch::device::{self, DeviceChoice};
use camwatch::loader;
use camwatch::model::Hints;
use camwatch::render::ArchSummary;

use super::CliResult;

#[derive(Serialize)]
struct Info<'a> {
    #[serde(serialize_with = "camwatch::paths::serialize")]
    file: &'a Path,
    format: String,
    arch: ArchSummary,
    parameters: usize,
    device: String,
    load_ms: f64,
}

pub fn run(file: &Path, json: bool, device: DeviceChoice, arch: Option<String>) -> CliResult {
    let selected = device::select(device)?;
    let loaded = loader::load_with(file, &selected.device, &Hints { name: arch })?;
    let config = &loaded.config;
    let info = Info {
        file,
        format: loaded.format.to_string(),
        arch: ArchSummary::of(config),
        parameters: config.parameter_count(),
        device: selected.label(),
        load_ms: loaded.load_time.as_secs_f64() * 1e3,
    };
    if json {
        println!("{}", serde_json::to_string(&info)?);
        return Ok(());
    }
    let line = |label: &str, value: &str| println!("{label:<11} {value}");
    line(
        "file",
        &camwatch::paths::for_terminal(&file.display().to_string()),
    );
    line("format", &info.format);
    line(
        "network",
        &format!(
            "{} ({}, {} variant)",
            info.arch.name, info.arch.family, info.arch.variant
        ),
    );
    for (label, value) in config.describe() {
        line(label, &value);
    }
    if let Some(size) = info.arch.input_size {
        line(
            "input",
            &format!("{size}×{size} (its position embedding's)"),
        );
    }
    line("classes", &info.arch.classes.to_string());
    line(
        "parameters",
        &format!(
            "{} ({:.2} M)",
            info.parameters,
            info.parameters as f64 / 1e6
        ),
    );
    // The last is what --layer last means.
    let taps = &info.arch.taps;
    let listed = match taps.split_last() {
        Some((last, [])) => format!("{last} (last)"),
        Some((last, rest)) => format!("{}, {last} (last)", rest.join(", ")),
        None => String::new(),
    };
    line("layers", &listed);
    line("device", &info.device);
    line("load time", &format!("{:.1} ms", info.load_ms));
    Ok(())
}
