//! `camwatch check RUN [--epoch latest|N] [--min-box-energy X] …`: "the model must look
//! at the object" as a step of a training pipeline. One checkpoint's maps (and the
//! metrics the rules need) are taken from what is published beside the run, or
//! computed, each rule prints one line, and the exit status is non-zero when any rule
//! fails.

use std::path::{Path, PathBuf};

use clap::Args;

use camwatch::cam::metrics::{Metric, MetricSettings};
use camwatch::cam::{Method, Sample, SampleMaps, SampleSet};
use camwatch::figures::{self, Better, Figure, Needs};
use camwatch::monitor::history::{Prediction, StoredMap, StoredSample};
use camwatch::monitor::timeline::SampleFigures;
use camwatch::monitor::{self, epoch, scan, timeline};
use camwatch::paths;
use camwatch::render::{self, SampleTrust};
use camwatch::results::{self, Compute};
use camwatch::store::Location;

use super::CliResult;
use super::cam_args::{CamArgs, CamOptions};

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
    /// auto: take the checkpoint's results published beside the run (`watch
    /// --publish`) when they hold every sample, method and figure the rules need, else
    /// compute them; never: only what is published; always: compute.
    #[arg(long, value_name = "auto|never|always", default_value = "auto")]
    pub compute: Compute,
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

/// What a rule measures, over the samples, per method: a figure of the one table
/// (its name, its direction, how a sample's value is found), or the run-level Average
/// Drop.
#[derive(Clone, Copy)]
enum Measure {
    /// The mean over the samples that have the figure.
    Mean(&'static Figure),
    /// How many samples have it (a 0/1 figure: maps flagged).
    Count(&'static Figure),
    /// Average Drop in confidence (percent), from each sample's confidence change.
    AverageDrop,
}

impl Measure {
    fn name(self) -> &'static str {
        match self {
            Measure::Mean(f) | Measure::Count(f) => f.name,
            Measure::AverageDrop => "average drop %",
        }
    }

    /// Which way passes: the figure's own better direction.
    fn at_least(self) -> bool {
        match self {
            Measure::Mean(f) | Measure::Count(f) => f.better == Better::Higher,
            Measure::AverageDrop => false,
        }
    }

    /// What must be measured after the maps for it.
    fn needs(self) -> Needs {
        match self {
            Measure::Mean(f) | Measure::Count(f) => f.needs,
            Measure::AverageDrop => Needs::Metric(Metric::Confidence),
        }
    }
}

/// A measure and its threshold.
struct Rule {
    measure: Measure,
    threshold: f32,
}

impl CheckArgs {
    fn rules(&self) -> Vec<Rule> {
        let rule = |measure, threshold: Option<f32>| {
            threshold.map(|threshold| Rule { measure, threshold })
        };
        let mean = |key| Measure::Mean(figures::by_key(key));
        [
            rule(mean("box_energy"), self.min_box_energy),
            rule(mean("pointing_hits"), self.min_pointing),
            rule(mean("samples_right"), self.min_accuracy),
            rule(mean("deletion_auc"), self.max_deletion_auc),
            rule(mean("insertion_auc"), self.min_insertion_auc),
            rule(mean("road_combined"), self.min_road),
            rule(Measure::AverageDrop, self.max_average_drop),
            rule(
                Measure::Count(figures::by_key("sanity_flags")),
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
    let run = super::run_args::synced_folder(&args.run, args.cam.cache.as_deref())?;
    let checkpoint = choose(&run, args.epoch)?;
    let mut metrics = args.cam.metrics.clone().unwrap_or(MetricSettings {
        metrics: Vec::new(),
        sanity: false,
        ..MetricSettings::default()
    });
    metrics.steps = args.cam.metric_steps;
    for rule in &rules {
        match rule.measure.needs() {
            Needs::Metric(m) if !metrics.metrics.contains(&m) => metrics.metrics.push(m),
            Needs::Sanity => metrics.sanity = true,
            _ => {}
        }
    }
    let found = match args.compute {
        Compute::Always => None,
        _ => published(&args, &run, &checkpoint, &metrics)?,
    };
    let (judged, origin) = match found {
        Some((judged, origin)) => (judged, Some(origin)),
        None if args.compute == Compute::Never => {
            return Err(format!(
                "{}: no results published beside the run for these settings, samples and \
                 rules (--compute auto computes them)",
                checkpoint.display()
            )
            .into());
        }
        None => {
            let cam = CamArgs {
                checkpoint: checkpoint.clone(),
                options: args.cam,
            };
            let computed = cam.compute(&args.samples)?;
            let trust = computed.trust(&metrics)?;
            let judged = Judged {
                methods: computed.resolved.request.methods.clone(),
                results: computed.results,
                set: computed.set,
                trust,
            };
            (judged, None)
        }
    };
    let methods = &judged.methods;
    println!(
        "camwatch check: {} ({}), {} sample(s), {}{}",
        paths::for_terminal(&checkpoint.display().to_string()),
        match epoch::epoch_of(&checkpoint) {
            Some(n) => format!("epoch {n}"),
            None => "no epoch in its name".into(),
        },
        judged.set.samples.len(),
        methods
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(", "),
        match &origin {
            Some(origin) => format!(", published: {}", paths::for_terminal(origin)),
            None => String::new(),
        }
    );
    let figures = sample_figures(&judged);
    let mut failed = 0;
    for rule in &rules {
        for &method in methods {
            let value = measure(rule.measure, method, &judged, &figures)?;
            let at_least = rule.measure.at_least();
            let holds = if at_least {
                value >= rule.threshold
            } else {
                value <= rule.threshold
            };
            failed += usize::from(!holds);
            println!(
                "{}  {:<15} {:>8.3} {} {:<8} {method}",
                if holds { "pass" } else { "FAIL" },
                rule.measure.name(),
                value,
                if at_least { "≥" } else { "≤" },
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

/// What a check judges: its samples' maps and predictions, and their trust figures.
struct Judged {
    set: SampleSet,
    methods: Vec<Method>,
    results: Vec<SampleMaps>,
    trust: Vec<SampleTrust>,
}

/// The results published beside the run for `checkpoint` (a file of the folder `run`)
/// under the settings asked for, with the trust figures `metrics` asks for, and the
/// object they were read from: `None` when they are not all there (or the run's
/// published results cannot be read, said).
fn published(
    args: &CheckArgs,
    run: &Path,
    checkpoint: &Path,
    metrics: &MetricSettings,
) -> CliResult<Option<(Judged, String)>> {
    let Some(key) = checkpoint.strip_prefix(run).ok().and_then(Path::to_str) else {
        return Ok(None);
    };
    let set = SampleSet::load(&args.samples)?;
    let device = camwatch::device::select(args.cam.device)?;
    let settings = args.cam.resolve(&set, &device);
    let methods = settings.request.methods.clone();
    let setting = monitor::setting(&settings, metrics.steps);
    let folder = results::setting_folder(&setting, &methods);
    let shelf = match Location::parse(&args.run)? {
        Location::Store(url) => results::Shelf::store(&url.open()?, &folder),
        Location::Folder(_) => results::Shelf::folder(run, &folder)?,
    };
    let keys = monitor::sample_keys(&set, settings.request.target);
    let expected_setting = results::PublishedSetting::new(&setting, &methods);
    let hash = monitor::content_hash(&std::fs::read(checkpoint)?);
    let found = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let listed = shelf.list_async().await?;
            for name in listed.iter().filter_map(|o| shelf.name_of(&o.location)) {
                let Some((k, identity, results::Kind::Results)) = results::parse_name(&name) else {
                    continue;
                };
                if k != key {
                    continue;
                }
                let expected = results::Expected {
                    key,
                    identity,
                    setting: &expected_setting,
                };
                let decode = |bytes: &[u8]| results::Published::decode(bytes, &expected);
                let Some(found) = shelf.read_async(&name, decode).await? else {
                    continue;
                };
                if found.checkpoint.hash != hash {
                    continue;
                }
                let trust_name = results::trust_name(key, identity);
                let decode = |bytes: &[u8]| results::PublishedTrust::decode(bytes, &expected);
                let trust = shelf.read_async(&trust_name, decode).await?;
                return Ok::<_, String>(Some((found, trust, shelf.describe(&name))));
            }
            Ok(None)
        });
    let (found, trust, origin) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(None),
        Err(e) => {
            eprintln!("camwatch: {}: computed instead", paths::for_terminal(&e));
            return Ok(None);
        }
    };
    if !found.covers(&keys, &methods) {
        return Ok(None);
    }
    let stored: std::collections::HashMap<String, StoredSample> =
        found.stored().into_iter().collect();
    let figures: std::collections::HashMap<String, SampleTrust> = trust
        .map(|t| t.figures())
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut judged = Judged {
        set,
        methods,
        results: Vec::new(),
        trust: Vec::new(),
    };
    for key in &keys {
        let Some(maps) = stored.get(key).and_then(|s| s.sample_maps(&judged.methods)) else {
            return Ok(None);
        };
        let trust = figures.get(key).cloned().unwrap_or_default();
        if !measured(&trust, &judged.methods, metrics) {
            return Ok(None);
        }
        judged.results.push(maps);
        judged.trust.push(trust);
    }
    Ok(Some((judged, origin)))
}

/// Whether `trust` holds every figure `metrics` asks for, for each of `methods`.
fn measured(trust: &SampleTrust, methods: &[Method], metrics: &MetricSettings) -> bool {
    methods.iter().all(|method| {
        let faithful = trust.metrics.get(method);
        let metrics_there = metrics
            .metrics
            .iter()
            .all(|&m| faithful.and_then(|f| f.get(m)).is_some());
        let sanity_there = !metrics.sanity
            || trust
                .sanity
                .get(method)
                .is_some_and(|s| s.class_corr.is_some() && s.random_corr.is_some());
        metrics_there && sanity_there
    })
}

/// The results as the history would report them, for the figures table.
fn sample_figures(judged: &Judged) -> Vec<SampleFigures> {
    let stored: Vec<StoredSample> = judged
        .results
        .iter()
        .zip(&judged.trust)
        .map(|(result, trust)| StoredSample {
            prediction: Some(Prediction {
                logits: result.logits.clone(),
                probs: result.probs.clone(),
                predicted: result.predicted,
            }),
            maps: result
                .maps
                .iter()
                .map(|(method, map)| StoredMap {
                    method: *method,
                    class: result.target,
                    map: map.clone(),
                    // Measured against the sample's box when the figures are made.
                    on_object: None,
                })
                .collect(),
            trust: trust.clone(),
        })
        .collect();
    let samples: Vec<&Sample> = judged.set.samples.iter().collect();
    timeline::sample_figures(&samples, &stored, &judged.methods)
}

/// `measure` for `method`, over the samples.
fn measure(
    measure: Measure,
    method: Method,
    judged: &Judged,
    figures: &[SampleFigures],
) -> CliResult<f32> {
    let figure = match measure {
        Measure::Mean(f) | Measure::Count(f) => f,
        Measure::AverageDrop => {
            return Ok(
                render::confidence_summary(method, &judged.results, &judged.trust)
                    .map_or(0.0, |s| s.average_drop),
            );
        }
    };
    let samples = &judged.set.samples;
    let values: Vec<f32> = figures
        .iter()
        .filter_map(|f| {
            let label = samples.iter().find(|s| s.name == f.name)?.label;
            (figure.value)(f, method, label)
        })
        .collect();
    if let Measure::Count(_) = measure {
        return Ok(values.iter().sum());
    }
    if values.is_empty() {
        let why = match figure.needs {
            Needs::Boxes => "no sample has a box in labels.csv (x0,y0,x1,y1)",
            Needs::Labels => "no sample has a label in labels.csv",
            _ => "no metric computed",
        };
        return Err(format!("{}: {why}", judged.set.dir.display()).into());
    }
    Ok(values.iter().sum::<f32>() / values.len() as f32)
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
