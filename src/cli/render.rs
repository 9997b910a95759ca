//! `camwatch render --checkpoint FILE --samples DIR --out DIR [options]`

use std::path::{Path, PathBuf};

use clap::Args;

use std::collections::BTreeMap;

use camwatch::cam::metrics::ConfidenceSummary;
use camwatch::render::{self, ArchSummary, SampleSummary, Summary, TimingsMs};

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
    // A folder with a summary is complete: the old summary goes first, the new one
    // comes last, and what the old run wrote that this one does not is removed.
    let summary_path = args.out.join("summary.json");
    let previous = previous_outputs(&summary_path);
    match std::fs::remove_file(&summary_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("{}: {e}", summary_path.display()).into());
        }
        _ => {}
    }
    let metrics = args.cam.options.metric_settings("none");
    let start = std::time::Instant::now();
    let trust = computed.trust(&metrics)?;
    let trust_time = start.elapsed();
    let samples: Vec<SampleSummary> =
        render::write_outputs(&args.out, set, &computed.results, &style)?
            .into_iter()
            .zip(&trust)
            .map(|(summary, trust)| summary.with_trust(trust))
            .collect();
    let confidence: BTreeMap<String, ConfidenceSummary> = resolved
        .request
        .methods
        .iter()
        .filter_map(|&m| {
            let summary = render::confidence_summary(m, &computed.results, &trust)?;
            Some((m.to_string(), summary))
        })
        .collect();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let summary = Summary {
        checkpoint: args.cam.checkpoint.clone(),
        format: computed.loaded.format.to_string(),
        arch: ArchSummary::of(&computed.loaded.config),
        device: computed.device.label(),
        methods: resolved.request.methods.clone(),
        layer: computed.layer_name(),
        target: resolved.request.target.to_string(),
        normalize: resolved.normalize,
        input_size: resolved.input_size,
        precision: resolved.precision,
        timings_ms: TimingsMs {
            load: ms(computed.loaded.load_time),
            forward: ms(computed.timings.forward),
            cam: ms(computed.timings.cam),
            total: ms(computed.total),
            metrics: (!metrics.is_off()).then(|| ms(trust_time)),
        },
        confidence: (!confidence.is_empty()).then_some(confidence),
        samples,
    };
    let written: std::collections::HashSet<String> =
        render::output_files(&listed(&summary.samples), args.side_by_side)
            .into_iter()
            .collect();
    for stale in previous.iter().filter(|name| !written.contains(*name)) {
        let _ = std::fs::remove_file(args.out.join(stale));
    }
    render::write_atomically(
        &summary_path,
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
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

/// Each sample's name and methods, as `render::output_files` takes them.
fn listed(samples: &[SampleSummary]) -> Vec<(String, Vec<String>)> {
    samples
        .iter()
        .map(|s| (s.name.clone(), s.maps.keys().cloned().collect()))
        .collect()
}

/// The files an earlier run's `summary.json` in the output folder lists; none when
/// there is no readable summary.
fn previous_outputs(summary: &Path) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Old {
        samples: Vec<OldSample>,
    }
    #[derive(serde::Deserialize)]
    struct OldSample {
        name: String,
        maps: std::collections::BTreeMap<String, serde_json::Value>,
    }
    let Ok(bytes) = camwatch::untrusted::read(summary, 64 << 20) else {
        return Vec::new();
    };
    let Ok(old) = serde_json::from_slice::<Old>(&bytes) else {
        return Vec::new();
    };
    let samples: Vec<(String, Vec<String>)> = old
        .samples
        .into_iter()
        .map(|s| (s.name, s.maps.into_keys().collect()))
        .collect();
    // Whether that run wrote side-by-side images is not recorded: assume it did.
    render::output_files(&samples, true)
}
