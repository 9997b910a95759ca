//! `camwatch render --checkpoint FILE --samples DIR --out DIR [options]`

use std::path::PathBuf;

use clap::Args;

use camwatch::render::{self, ArchSummary, Summary, TimingsMs};

use super::CliResult;
use super::cam_args::CamArgs;

#[derive(Args, Debug)]
pub struct RenderArgs {
    #[command(flatten)]
    pub cam: CamArgs,
    /// Sample images, with optional labels.csv, classes.txt and camwatch.toml.
    #[arg(long, default_value = "samples")]
    pub samples: PathBuf,
    /// Output folder: <stem>.<method>.npy and .png, summary.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Also write <stem>.<method>.side.png: image | heatmap | overlay.
    #[arg(long)]
    pub side_by_side: bool,
}

pub fn run(args: RenderArgs) -> CliResult {
    let computed = args.cam.compute(&args.samples)?;
    let (set, resolved) = (&computed.set, &computed.resolved);
    let style = args.cam.style(args.side_by_side);
    let samples = render::write_outputs(&args.out, set, &computed.results, &style)?;
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let summary = Summary {
        checkpoint: args.cam.checkpoint.clone(),
        format: computed.loaded.format.to_string(),
        arch: ArchSummary::of(&computed.loaded.config),
        device: computed.device.label(),
        methods: resolved.request.methods.clone(),
        layer: resolved.request.layer.to_string(),
        target: resolved.request.target.to_string(),
        normalize: resolved.normalize,
        input_size: resolved.input_size,
        timings_ms: TimingsMs {
            load: ms(computed.loaded.load_time),
            forward: ms(computed.timings.forward),
            cam: ms(computed.timings.cam),
            total: ms(computed.total),
        },
        samples,
    };
    let path = args.out.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)?)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!(
        "camwatch: {} sample(s) × {} method(s) in {:.0} ms on {} → {}",
        set.samples.len(),
        resolved.request.methods.len(),
        summary.timings_ms.total,
        summary.device,
        args.out.display()
    );
    Ok(())
}
