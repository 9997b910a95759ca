//! `camwatch info [--json] FILE`

use std::path::Path;

use serde::Serialize;

use camwatch::device::{self, DeviceChoice};
use camwatch::loader;
use camwatch::model::{BlockKind, NetworkConfig, Stem};
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

pub fn run(file: &Path, json: bool, device: DeviceChoice) -> CliResult {
    let selected = device::select(device)?;
    let loaded = loader::load(file, &selected.device)?;
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
    } else {
        println!(
            "file        {}",
            camwatch::paths::for_terminal(&file.display().to_string())
        );
        println!("format      {}", info.format);
        println!(
            "network     {} ({} variant)",
            info.arch.name, info.arch.variant
        );
        println!("depths      {:?}", config.depths);
        println!("block       {}", describe_block(config));
        println!(
            "stem        {}",
            match config.stem {
                Stem::Plain => format!("one 7×7 convolution, {} channels", config.stem_width),
                Stem::Deep => format!(
                    "three 3×3 convolutions, {w}, {w} and {} channels",
                    config.stem_channels(),
                    w = config.stem_width
                ),
            }
        );
        println!(
            "shortcut    {}",
            if config.avg_down {
                "average pool, then 1×1 (vd)"
            } else {
                "strided 1×1"
            }
        );
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

/// `bottleneck, 32 groups × 4 channels, squeeze-excitation 1/16`, `Res2Net, 4 scales × 26 channels`.
fn describe_block(config: &NetworkConfig) -> String {
    let mut text = match config.block {
        BlockKind::Basic => format!("basic, {} channels", config.width),
        BlockKind::Bottleneck if config.groups > 1 => format!(
            "bottleneck, {} groups × {} channels",
            config.groups,
            config.width / config.groups
        ),
        BlockKind::Bottleneck => format!("bottleneck, {} channels", config.width),
        BlockKind::Res2Net => format!(
            "Res2Net, {} scales × {} channels",
            config.scales, config.width
        ),
    };
    if let Some(ratio) = config.se_ratio {
        text.push_str(&format!(", squeeze-excitation 1/{ratio}"));
    }
    text
}
