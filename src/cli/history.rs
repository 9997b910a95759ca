//! `camwatch history [DIR …] [--json]`: the stored history of a run (or of several, to
//! compare them), without a network.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use camwatch::cam::{Method, Sample, SampleSet};
use camwatch::figures;
use camwatch::paths;
use camwatch::render::CamSettings;
use camwatch::results;

use camwatch::monitor::history::History;
use camwatch::monitor::place::{self, Purpose};
use camwatch::monitor::{self, CheckpointReport, timeline};

use super::CliResult;
use super::run_args::{RunArgs, StoreRun, resolve_stores};

#[derive(Args, Debug)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// More runs to compare with the first, each with its own history
    /// (`RUN/.camwatch/history.sqlite`), read with the same samples and settings.
    #[arg(value_name = "RUN")]
    pub more: Vec<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One run among several: `{"runs": [...]}`.
#[derive(Serialize)]
struct RunDump {
    #[serde(serialize_with = "paths::serialize")]
    path: PathBuf,
    #[serde(serialize_with = "paths::serialize")]
    history: PathBuf,
    /// The first epoch from which attention stays on the object (see
    /// [`timeline::first_on_object`]).
    first_on_object: Option<u64>,
    checkpoints: Vec<CheckpointReport>,
}

#[derive(Serialize)]
struct Runs {
    precision: camwatch::precision::Precision,
    runs: Vec<RunDump>,
}

#[derive(Serialize)]
struct Dump<'a> {
    #[serde(serialize_with = "paths::serialize")]
    dir: &'a std::path::Path,
    #[serde(serialize_with = "paths::serialize")]
    history: &'a std::path::Path,
    /// The forward pass of the rows read (`--precision`).
    precision: camwatch::precision::Precision,
    checkpoints: &'a [CheckpointReport],
}

pub fn run(args: HistoryArgs) -> CliResult {
    if !args.more.is_empty() {
        return compare(args);
    }
    let (shared, mut runs) = read_runs(&args.run, &[])?;
    let StoredRun {
        dir,
        file,
        store,
        checkpoints: mut reports,
        ..
    } = runs.remove(0);
    // A store run's checkpoints are named by their objects' URLs.
    let dir = match &store {
        Some(store) => {
            reports.iter_mut().for_each(|r| store.name_by_url(r));
            args.run.dir.clone()
        }
        None => dir,
    };
    if args.json {
        let dump = Dump {
            dir: &dir,
            history: &file,
            precision: shared.settings.precision,
            checkpoints: &reports,
        };
        println!("{}", serde_json::to_string(&dump)?);
        return Ok(());
    }
    println!(
        "{:>6}  {:<32} {:>6}  {:>7}  {:>7}  {:>6}  {:>6}  {:>6}  {:>6}  {:>6}",
        "epoch", "file", "status", "p(tgt)", "energy", "hits", "drift", "ins", "del", "events"
    );
    for report in &reports {
        let epoch = report.epoch.map_or("-".into(), |e| e.to_string());
        let name = report.path.strip_prefix(&dir).unwrap_or(&report.path);
        let line = summarise(
            report,
            shared.settings.request.methods[0],
            &shared.samples.samples,
        );
        println!(
            "{epoch:>6}  {:<32} {:>6}  {line}",
            paths::for_terminal(&name.display().to_string()),
            report.status
        );
        if let Some(error) = &report.error {
            println!("        {}", paths::for_terminal(error));
        }
    }
    Ok(())
}

/// The table's figures, by the one table of figures: the run means of target
/// probability, box energy (and the pointing hits as a count), drift, insertion and
/// deletion AUC (once measured) for `method`; and the number of events.
fn summarise(report: &CheckpointReport, method: Method, samples: &[Sample]) -> String {
    if report.samples.is_empty() {
        return String::new();
    }
    let mean = |key: &str| {
        figures::by_key(key)
            .at(report, method, samples)
            .map_or("-".to_string(), |v| format!("{v:.3}"))
    };
    // Hits as a count of the samples with a box: `3/12`.
    let pointing = figures::by_key("pointing_hits");
    let hits: Vec<f32> = report
        .samples
        .iter()
        .filter_map(|f| (pointing.value)(f, method, None))
        .collect();
    let hits = if hits.is_empty() {
        "-".into()
    } else {
        format!(
            "{}/{}",
            hits.iter().filter(|h| **h > 0.5).count(),
            hits.len()
        )
    };
    format!(
        "{:>7}  {:>7}  {hits:>6}  {:>6}  {:>6}  {:>6}  {:>6}",
        mean("target_prob"),
        mean("box_energy"),
        mean("drift"),
        mean("insertion_auc"),
        mean("deletion_auc"),
        report.events.len()
    )
}

/// Several runs' histories side by side, as JSON: the same samples and settings for
/// each, every run with its own history file.
fn compare(args: HistoryArgs) -> CliResult {
    if !args.json {
        return Err("several runs are compared with --json (or `camwatch report`)".into());
    }
    let (settings, runs) = read_runs(&args.run, &args.more)?;
    let dump = Runs {
        precision: settings.settings.precision,
        runs: runs
            .into_iter()
            .map(|run| RunDump {
                path: run.dir,
                history: run.file,
                first_on_object: run.first_on_object,
                checkpoints: run.checkpoints,
            })
            .collect(),
    };
    println!("{}", serde_json::to_string(&dump)?);
    Ok(())
}

/// `local` (the run's history, if any) with what is published beside the run; a store
/// that cannot be read is said, and `local` read alone.
fn with_published(
    local: Option<History>,
    dir: &Path,
    store: Option<&StoreRun>,
    samples: &SampleSet,
    settings: &CamSettings,
    steps: usize,
) -> Option<History> {
    let setting = monitor::setting(settings, steps);
    let methods = &settings.request.methods;
    let folder = results::setting_folder(&setting, methods);
    let shelf = match store {
        Some(store) => store
            .url
            .open()
            .map(|open| results::Shelf::store(&open, &folder))
            .map_err(|e| e.to_string()),
        None => results::Shelf::folder(dir, &folder),
    };
    let keys = monitor::sample_keys(samples, settings.request.target);
    let published = results::PublishedSetting::new(&setting, methods);
    let shelf = match shelf {
        Ok(shelf) => shelf,
        Err(e) => {
            eprintln!(
                "camwatch: {}: published results not read",
                paths::for_terminal(&e)
            );
            return local;
        }
    };
    let (history, imported) =
        monitor::published::reading_history(local, dir, &shelf, &setting, &published, &keys);
    for refused in imported.refused {
        eprintln!("camwatch: {}: ignored", paths::for_terminal(&refused));
    }
    if let Some(e) = imported.unread {
        eprintln!(
            "camwatch: {}: published results not read",
            paths::for_terminal(&e)
        );
    }
    history
}

/// A run's stored history, read for comparison.
pub struct StoredRun {
    /// Its folder (a store run's local folder).
    pub dir: PathBuf,
    /// A store run: its URL, and how its files are named by it.
    pub store: Option<StoreRun>,
    pub file: PathBuf,
    pub history: History,
    pub first_on_object: Option<u64>,
    pub checkpoints: Vec<CheckpointReport>,
}

/// What every compared run is read with.
pub struct Shared {
    pub samples: SampleSet,
    pub settings: CamSettings,
    pub steps: usize,
}

/// `run.dir` and `more` (folders or store URLs, resolved here for every command that
/// reads runs), each from its own history and the results published beside it (one of
/// them must exist), with the same samples and settings.
pub fn read_runs(run: &RunArgs, more: &[PathBuf]) -> CliResult<(Shared, Vec<StoredRun>)> {
    if run.history.is_some() && !more.is_empty() {
        return Err(
            "--history names one run's database: with several runs each has its \
             own (RUN/.camwatch/history.sqlite)"
                .into(),
        );
    }
    let (mut dir, mut others) = (run.dir.clone(), more.to_vec());
    let stores = resolve_stores(&mut dir, &mut others, run.cam.cache.as_deref(), false)?;
    let dirs: Vec<&PathBuf> = std::iter::once(&dir).chain(&others).collect();
    let files: Vec<PathBuf> = if more.is_empty() {
        vec![place::locate(&dir, run.history.as_deref(), Purpose::Read).file]
    } else {
        dirs.iter()
            .map(|dir| place::locate(dir, None, Purpose::Read).file)
            .collect()
    };
    // Reading never creates a history: a folder run with neither a history nor
    // published results is named before anything slow (a store run's are listed later).
    let given: Vec<&PathBuf> = std::iter::once(&run.dir).chain(more).collect();
    let no_history = |file: &Path, given: &Path| {
        format!(
            "{}: no history yet, nor results published beside the run; `camwatch watch {}` \
             records one",
            file.display(),
            given.display()
        )
    };
    for ((file, dir), store) in files.iter().zip(&dirs).zip(&stores) {
        if !file.exists() && store.is_none() && !dir.join(results::RESULTS_DIR).is_dir() {
            let at = given[files.iter().position(|f| f == file).unwrap_or(0)];
            return Err(no_history(file, at).into());
        }
    }
    // The device decides what `--precision auto` means, and so which rows are read.
    let device = camwatch::device::select(run.cam.device)?;
    let (samples, settings) = run.load(&device)?;
    let steps = run.cam.metric_steps;
    let mut runs = Vec::new();
    for (((dir, file), store), given) in dirs.into_iter().zip(files).zip(stores).zip(given) {
        let local = match file.exists() {
            true => Some(History::open_read_only(&file, dir)?),
            false => None,
        };
        let history = with_published(local, dir, store.as_ref(), &samples, &settings, steps)
            .ok_or_else(|| no_history(&file, given))?;
        let checkpoints = monitor::read_history(&history, &samples, &settings, steps)?;
        runs.push(StoredRun {
            dir: dir.clone(),
            store,
            file,
            history,
            first_on_object: timeline::first_on_object(&checkpoints, settings.request.methods[0]),
            checkpoints,
        });
    }
    let shared = Shared {
        samples,
        settings,
        steps,
    };
    Ok((shared, runs))
}
