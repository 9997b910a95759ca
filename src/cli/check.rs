//! `camwatch check RUN [--epoch latest|N] [--min-box-energy X] …`: "the model must look
//! at the object" as a step of a training pipeline. One checkpoint's maps (and the
//! metrics the rules need) are computed, each rule prints one line, and the exit status
//! is non-zero when any rule fails.

use std::path::{Path, PathBuf};

use clap::Args;

use camwatch::cam::metrics::{Metric, MetricSettings};
use camwatch::cam::{Method, SampleMaps};
use camwatch::monitor::{self, epoch, scan, timeline};
use camwatch::paths;
use camwatch::render::{self, SampleTrust};

use super::CliResult;
use super::cam_args::{CamArgs, CamOptions, Computed};

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// A run's checkpoint folder (subfolders included), or one weight file.
    pub run: PathBuf,
    /// Sample images, with labels.csv (labels and boxes) for the rules that need them.
    #[arg(long, default_value = "samples")]
    pub samples: PathBuf,
    /// The checkpoint of the folder to check: latest (last in training order) or an
    /// epoch number.
    #[arg(long, default_value = "latest", value_parser = parse_epoch)]
    pub epoch: Epoch,
    /// Mean share of each map inside its sample's box (0..1).
    #[arg(long, value_name = "X")]
    pub min_box_energy: Option<f32>,
    /// Share of samples whose map's maximum is inside the box (0..1).
    #[arg(long, value_name = "X")]
    pub min_pointing: Option<f32>,
    /// Share of labelled samples predicted right (0..1).
    #[arg(long, value_name = "X")]
    pub min_accuracy: Option<f32>,
    /// Mean deletion AUC: low when deleting what the map points at kills the prediction.
    #[arg(long, value_name = "X")]
    pub max_deletion_auc: Option<f32>,
    /// Mean insertion AUC: high when what the map points at alone gives the prediction.
    #[arg(long, value_name = "X")]
    pub min_insertion_auc: Option<f32>,
    /// Mean ROAD combined score.
    #[arg(long, value_name = "X")]
    pub min_road: Option<f32>,
    /// Average Drop in confidence of the image times its map (percent).
    #[arg(long, value_name = "PERCENT")]
    pub max_average_drop: Option<f32>,
    /// Maps flagged by the sanity checks (ignores the class, like an untrained network's).
    #[arg(long, value_name = "N")]
    pub max_sanity_flags: Option<usize>,
    #[command(flatten)]
    pub cam: CamOptions,
}

/// `--epoch`: the last checkpoint in training order, or the one of an epoch.
#[derive(Clone, Copy, Debug)]
pub enum Epoch {
    Latest,
    Number(u64),
}

fn parse_epoch(s: &str) -> Result<Epoch, String> {
    match s {
        "latest" => Ok(Epoch::Latest),
        n => n
            .parse()
            .map(Epoch::Number)
            .map_err(|_| format!("{s:?} is neither `latest` nor an epoch number")),
    }
}

/// What a rule measures, over the samples, per method.
#[derive(Clone, Copy)]
enum Figure {
    BoxEnergy,
    PointingHits,
    Accuracy,
    /// The mean of a faithfulness metric.
    Mean(Metric),
    AverageDrop,
    SanityFlags,
}

impl Figure {
    fn name(self) -> &'static str {
        match self {
            Figure::BoxEnergy => "box energy",
            Figure::PointingHits => "pointing hits",
            Figure::Accuracy => "accuracy",
            Figure::Mean(Metric::Deletion) => "deletion AUC",
            Figure::Mean(Metric::Insertion) => "insertion AUC",
            Figure::Mean(Metric::Road) => "ROAD combined",
            Figure::Mean(Metric::Confidence) => "conf. change",
            Figure::AverageDrop => "average drop %",
            Figure::SanityFlags => "sanity flags",
        }
    }

    /// The metric it needs computed, if any.
    fn metric(self) -> Option<Metric> {
        match self {
            Figure::Mean(m) => Some(m),
            Figure::AverageDrop => Some(Metric::Confidence),
            _ => None,
        }
    }
}

/// A figure, which way it must go, and its threshold.
struct Rule {
    figure: Figure,
    at_least: bool,
    threshold: f32,
}

impl CheckArgs {
    fn rules(&self) -> Vec<Rule> {
        let rule = |figure, at_least, threshold: Option<f32>| {
            threshold.map(|threshold| Rule {
                figure,
                at_least,
                threshold,
            })
        };
        [
            rule(Figure::BoxEnergy, true, self.min_box_energy),
            rule(Figure::PointingHits, true, self.min_pointing),
            rule(Figure::Accuracy, true, self.min_accuracy),
            rule(Figure::Mean(Metric::Deletion), false, self.max_deletion_auc),
            rule(
                Figure::Mean(Metric::Insertion),
                true,
                self.min_insertion_auc,
            ),
            rule(Figure::Mean(Metric::Road), true, self.min_road),
            rule(Figure::AverageDrop, false, self.max_average_drop),
            rule(
                Figure::SanityFlags,
                false,
                self.max_sanity_flags.map(|n| n as f32),
            ),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

pub fn run(args: CheckArgs) -> CliResult {
    let rules = args.rules();
    if rules.is_empty() {
        return Err(
            "no rules to check: give at least one of --min-box-energy, --min-pointing, \
             --min-accuracy, --max-deletion-auc, --min-insertion-auc, --min-road, \
             --max-average-drop, --max-sanity-flags"
                .into(),
        );
    }
    let checkpoint = choose(&args.run, args.epoch)?;
    let mut metrics = args.cam.metrics.clone().unwrap_or(MetricSettings {
        metrics: Vec::new(),
        sanity: false,
        ..MetricSettings::default()
    });
    metrics.steps = args.cam.metric_steps;
    for rule in &rules {
        if let Some(m) = rule
            .figure
            .metric()
            .filter(|m| !metrics.metrics.contains(m))
        {
            metrics.metrics.push(m);
        }
        metrics.sanity |= matches!(rule.figure, Figure::SanityFlags);
    }
    let cam = CamArgs {
        checkpoint: checkpoint.clone(),
        options: args.cam,
    };
    let computed = cam.compute(&args.samples)?;
    let trust = computed.trust(&metrics)?;
    let methods = &computed.resolved.request.methods;
    println!(
        "camwatch check: {} ({}), {} sample(s), {}",
        paths::for_terminal(&checkpoint.display().to_string()),
        match epoch::epoch_of(&checkpoint) {
            Some(n) => format!("epoch {n}"),
            None => "no epoch in its name".into(),
        },
        computed.set.samples.len(),
        methods
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut failed = 0;
    for rule in &rules {
        for &method in methods {
            let value = figure(rule.figure, method, &computed, &trust)?;
            let holds = if rule.at_least {
                value >= rule.threshold
            } else {
                value <= rule.threshold
            };
            failed += usize::from(!holds);
            println!(
                "{}  {:<15} {:>8.3} {} {:<8} {method}",
                if holds { "pass" } else { "FAIL" },
                rule.figure.name(),
                value,
                if rule.at_least { "≥" } else { "≤" },
                rule.threshold,
            );
        }
    }
    let checks = rules.len() * methods.len();
    if failed > 0 {
        return Err(format!(
            "{}: {failed} of {checks} check(s) failed",
            checkpoint.display()
        )
        .into());
    }
    Ok(())
}

/// `figure` for `method`, over the samples.
fn figure(
    figure: Figure,
    method: Method,
    computed: &Computed,
    trust: &[SampleTrust],
) -> CliResult<f32> {
    let samples = &computed.set.samples;
    let maps = |r: &SampleMaps| {
        r.maps
            .iter()
            .find(|(m, _)| *m == method)
            .map(|(_, map)| map.clone())
    };
    let mean = |values: Vec<f32>, what: &str| -> CliResult<f32> {
        if values.is_empty() {
            return Err(format!("{}: {what}", computed.set.dir.display()).into());
        }
        Ok(values.iter().sum::<f32>() / values.len() as f32)
    };
    let on_object = || -> Vec<(f32, bool)> {
        samples
            .iter()
            .zip(&computed.results)
            .filter_map(|(sample, result)| {
                let (_, energy, hit) = timeline::measure_on_object(&maps(result)?, sample)?;
                Some((energy, hit))
            })
            .collect()
    };
    let no_boxes = "no sample has a box in labels.csv (x0,y0,x1,y1)";
    match figure {
        Figure::BoxEnergy => mean(on_object().iter().map(|o| o.0).collect(), no_boxes),
        Figure::PointingHits => mean(
            on_object()
                .iter()
                .map(|o| f32::from(u8::from(o.1)))
                .collect(),
            no_boxes,
        ),
        Figure::Accuracy => mean(
            samples
                .iter()
                .zip(&computed.results)
                .filter_map(|(s, r)| Some(f32::from(u8::from(s.label? == r.predicted))))
                .collect(),
            "no sample has a label in labels.csv",
        ),
        Figure::AverageDrop => Ok(render::confidence_summary(method, &computed.results, trust)
            .map_or(0.0, |s| s.average_drop)),
        Figure::SanityFlags => Ok(trust
            .iter()
            .filter_map(|t| t.sanity.get(&method))
            .map(|s| s.flags().len().min(1) as f32)
            .sum()),
        Figure::Mean(m) => mean(
            trust
                .iter()
                .filter_map(|t| t.metrics.get(&method)?.get(m))
                .collect(),
            "no metric computed",
        ),
    }
}

/// The checkpoint to check: `run` itself when it is a file, else the one of the folder
/// with epoch `epoch`, or the last in training order.
fn choose(run: &Path, epoch: Epoch) -> CliResult<PathBuf> {
    if run.is_file() {
        return Ok(run.to_path_buf());
    }
    if !run.is_dir() {
        return Err(format!("{}: no such file or folder", run.display()).into());
    }
    let mut found: Vec<(PathBuf, Option<u64>, i64)> =
        scan::scan(run, &run.join(monitor::HISTORY_DIR))
            .into_iter()
            .map(|path| {
                let mtime = scan::Fingerprint::of(&path).map_or(0, |f| f.mtime_ns);
                (path.clone(), epoch::epoch_of(&path), mtime)
            })
            .collect();
    timeline::sort_in_training_order(&mut found, |(path, epoch, mtime)| {
        (*epoch, *mtime, path.as_path())
    });
    let chosen = match epoch {
        Epoch::Latest => found.last(),
        Epoch::Number(n) => found.iter().find(|(_, e, _)| *e == Some(n)),
    };
    match (chosen, epoch) {
        (Some((path, _, _)), _) => Ok(path.clone()),
        (None, Epoch::Latest) => {
            Err(format!("{}: no checkpoint in this folder", run.display()).into())
        }
        (None, Epoch::Number(n)) => {
            Err(format!("{}: no checkpoint of epoch {n}", run.display()).into())
        }
    }
}
