//! `camwatch watch [DIR]`: follow a training run in the terminal UI, or with `--headless`
//! as one JSON line per checkpoint.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use camwatch::monitor::place::{self, Purpose};
use camwatch::monitor::readiness::Timing;
use camwatch::monitor::{CheckpointReport, Monitor, MonitorConfig, MonitorEvent, Source};
use camwatch::precision::Precision;
use camwatch::store::mirror::MirrorConfig;
use camwatch::store::{Location, sweep};
use camwatch::tensorboard::Live;
use camwatch::tui::{self, ProtocolChoice, TuiOptions};
use camwatch::{device, paths};

use super::export::{ImageArgs, run_exports};
use super::run_args::{RunArgs, StoreRun, resolve_stores};
use super::{CliResult, signals};

#[derive(Args, Debug)]
pub struct WatchArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// More runs to follow beside the first, each with its own history and worker (or
    /// followed read-only when another camwatch already watches it); the samples and
    /// CAM settings are shared. The UI shows them side by side, aligned by epoch.
    #[arg(value_name = "RUN")]
    pub more: Vec<PathBuf>,
    /// Print one JSON object per checkpoint on stdout instead of opening the terminal UI.
    #[arg(long)]
    pub headless: bool,
    /// DIR (and each RUN) is a sweep: each of its subfolders (or sub-prefixes in a
    /// store) that holds a checkpoint is a run; runs that start later join as they
    /// appear.
    #[arg(long)]
    pub runs: bool,
    /// Look for new files every SECONDS instead of waiting for file-system events (for
    /// network file systems, where events do not arrive); a run in an object store is
    /// listed this often [default there: 5].
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub poll: Option<Duration>,
    /// Gigabytes of a store run's checkpoints kept in --cache; past that the oldest
    /// whose maps are recorded are removed.
    #[arg(long, value_name = "GB", default_value = "20")]
    pub cache_size: f64,
    /// A file is read once its size and mtime have not changed for this long.
    #[arg(long, value_name = "SECONDS", default_value = "0.5", value_parser = parse_seconds)]
    pub settle: Duration,
    /// A file still incomplete (no end marker) and unchanged for this long is an error.
    #[arg(long, value_name = "SECONDS", default_value = "120", value_parser = parse_seconds)]
    pub give_up: Duration,
    /// When the GPU runs out of memory (the training job beside camwatch may need it
    /// all), compute that checkpoint on the CPU instead of waiting for memory and trying
    /// again (2 s, doubling, at most a minute apart).
    #[arg(long)]
    pub cpu_fallback: bool,
    /// After each checkpoint, hand the memory its computation used back to the
    /// training job (release: libtorch's cached GPU memory and the heap's free pages),
    /// or keep it for the next checkpoint (keep: no allocation on its way to the maps)
    /// [default: keep on the CPU, release on a GPU].
    #[arg(long, value_name = "keep|release")]
    pub gpu_memory: Option<device::MemoryUse>,
    /// CPU threads for the network [default: half the cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Terminal graphics: auto (ask the terminal), kitty, sixel, iterm2, halfblocks.
    #[arg(long, default_value = "auto")]
    pub protocol: ProtocolChoice,
    /// Where `s` (snapshot) and `a` (animation) write their files.
    #[arg(long, default_value = "snapshots")]
    pub snapshots: PathBuf,
    /// Publish each checkpoint's results beside the run (RUN/.camwatch/results/, in its
    /// folder or store), once, for every camwatch that looks at the run: run it next to
    /// each training job of a sweep, and look from anywhere with --compute never.
    #[arg(long)]
    pub publish: bool,
    /// auto: take the results published beside the run and compute only what is
    /// missing; never: only show what is published (a laptop, a login node: no
    /// checkpoint is computed, nor a store's downloaded); always: compute everything
    /// here.
    #[arg(long, value_name = "auto|never|always", default_value = "auto")]
    pub compute: camwatch::results::Compute,
    /// Also write each checkpoint's figures and overlays as TensorBoard event files
    /// into DIR as they come (one subfolder per run when several); a restart adds
    /// what is missing, never a step twice.
    #[arg(long, value_name = "DIR")]
    pub tensorboard: Option<PathBuf>,
    #[command(flatten)]
    pub images: ImageArgs,
}

impl WatchArgs {
    /// `camwatch watch` with every default (for `demo`).
    pub fn defaults() -> WatchArgs {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            watch: WatchArgs,
        }
        <Defaults as clap::Parser>::parse_from(["camwatch"]).watch
    }
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!("{s:?} is not a number of seconds")),
    }
}

/// One line of `--headless` output.
#[derive(Serialize)]
struct Line<'a> {
    event: &'static str,
    /// A store run's object: its ETag (the report's `path` is its URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    /// The run's folder, when several are followed.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_run"
    )]
    run: Option<&'a std::path::Path>,
    #[serde(flatten)]
    report: &'a CheckpointReport,
    source: Source,
    ms: f64,
    precision: Precision,
}

fn serialize_run<S: serde::Serializer>(
    run: &Option<&std::path::Path>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match run {
        Some(path) => paths::serialize(path, serializer),
        None => serializer.serialize_none(),
    }
}

pub fn run(args: WatchArgs) -> CliResult {
    run_until(args, None)
}

/// Watches; headless, ends after `stop_after` checkpoint lines when given.
pub fn run_until(args: WatchArgs, stop_after: Option<usize>) -> CliResult {
    // Registered before anything slow (libtorch starting, the samples read): a signal
    // at any moment ends camwatch cleanly, with status 0.
    let stop = Arc::new(AtomicBool::new(false));
    let signals = if args.headless {
        &[signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM][..]
    } else {
        // The UI also ends on SIGHUP: the SSH connection went.
        &[
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ][..]
    };
    for &signal in signals {
        if args.headless {
            // A second signal, if the clean stop hangs, ends it at once.
            signals::end_at_a_second(signal, Arc::clone(&stop))?;
        }
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    device::limit_threads(args.threads.unwrap_or_else(device::default_threads));
    let device = device::select(args.run.cam.device)?;
    let (samples, settings) = args.run.load(&device)?;
    let memory = args
        .gpu_memory
        .unwrap_or_else(|| device::MemoryUse::default_for(&device));
    if (!args.more.is_empty() || args.runs) && args.run.history.is_some() {
        return Err(
            "--history names one run's database: with several runs each has its \
             own (RUN/.camwatch/history.sqlite)"
                .into(),
        );
    }
    let template = MonitorConfig {
        dir: PathBuf::new(),
        history: PathBuf::new(),
        samples,
        settings,
        device,
        poll: args.poll,
        timing: Timing {
            settle: args.settle,
            give_up: args.give_up,
        },
        metrics: args.run.cam.metric_settings("all"),
        cpu_fallback: args.cpu_fallback,
        memory,
        mirror: None,
        hints: camwatch::model::Hints {
            name: args.run.cam.arch.clone(),
        },
        publish: args.publish,
        compute: args.compute,
    };
    let mut maker = RunMaker {
        template,
        cache: args.run.cam.cache.clone(),
        store_poll: args.poll.unwrap_or(Duration::from_secs(5)),
        cache_limit: (args.cache_size.max(0.0) * 1e9) as u64,
        notices: Vec::new(),
    };
    let given: Vec<PathBuf> = std::iter::once(args.run.dir.clone())
        .chain(args.more.iter().cloned())
        .collect();
    // With --runs the given folders (or prefixes) are sweeps, each sub-run a run.
    let sweep = if args.runs {
        let roots = given
            .iter()
            .map(|root| Location::parse(root))
            .collect::<Result<Vec<_>, _>>()?;
        Some(Sweep::start(roots, maker.store_poll, Arc::clone(&stop)))
    } else {
        None
    };
    let first: Vec<PathBuf> = match &sweep {
        Some(sweep) => sweep.first.clone(),
        None => given.clone(),
    };
    let mut runs = Vec::with_capacity(first.len());
    let mut stores = Vec::with_capacity(first.len());
    for (i, dir) in first.iter().enumerate() {
        let history = (i == 0 && !args.runs)
            .then_some(args.run.history.as_deref())
            .flatten();
        let (config, store) = maker.make(dir, history)?;
        runs.push(config);
        stores.push(store);
    }
    let config = maker.template.clone();
    let precision = config.settings.precision;
    let notices = std::mem::take(&mut maker.notices);
    let exports = match &args.tensorboard {
        Some(root) => {
            let locations: Vec<_> = runs
                .iter()
                .map(|r| (r.dir.clone(), r.history.clone()))
                .collect();
            let images = args.images.options(&args.run.cam);
            let exports = run_exports(
                root,
                &locations,
                &config.samples,
                config.metrics.steps,
                &images,
            )?;
            Some(exports.into_iter().map(|(_, export)| export).collect())
        }
        None => None,
    };
    if !args.headless {
        if !std::io::stdout().is_terminal() {
            return Err("stdout is not a terminal: use --headless for JSON lines".into());
        }
        if runs.is_empty() {
            return Err(format!(
                "no run under {} holds a checkpoint yet (--headless waits for them)",
                given
                    .iter()
                    .map(|g| g.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
            .into());
        }
        let style = args.run.cam.style(false);
        let precision = args.run.cam.precision_choice(&config.samples.defaults);
        // A sweep's runs that start later join the comparing view, made here (what
        // the maker would say is not printed over the UI).
        let joined = sweep.map(|sweep| {
            let (tx, joined) = std::sync::mpsc::channel();
            let mut maker = maker;
            std::thread::spawn(move || {
                for joined in sweep.joined {
                    let run = joined.and_then(|dir| {
                        maker
                            .make(&dir, None)
                            .map(|(config, _)| (config, dir.clone()))
                            .map_err(|e| e.to_string())
                    });
                    maker.notices.clear();
                    if tx.send(run).is_err() {
                        return;
                    }
                }
            });
            joined
        });
        return tui::run(TuiOptions {
            runs,
            protocol: args.protocol,
            snapshots: args.snapshots.clone(),
            colormap: style.colormap,
            blend: style.blend,
            precision,
            signalled: stop,
            notice: (!notices.is_empty()).then(|| notices.join("; ")),
            tensorboard: exports,
            labels: first,
            joined,
        });
    }
    for notice in &notices {
        eprintln!("camwatch: {}", paths::for_terminal(notice));
    }
    let warn = |text: String| eprintln!("camwatch: {}", paths::for_terminal(&text));
    let live = exports.map(|exports| Live::start(exports, Box::new(warn)));
    // Their events on one channel.
    let several = runs.len() > 1 || sweep.is_some();
    let (merged, events) = std::sync::mpsc::channel::<(usize, Option<MonitorEvent>)>();
    let mut monitors = Vec::with_capacity(runs.len());
    let mut objects = Vec::with_capacity(runs.len());
    for (i, config) in runs.iter().enumerate() {
        match start_headless(i, config, &merged) {
            Ok(monitor) => {
                objects.push(monitor.objects());
                monitors.push(monitor);
            }
            Err(e) => {
                monitors.into_iter().for_each(Monitor::stop);
                return Err(e);
            }
        }
    }
    let mut stdout = std::io::stdout().lock();
    let mut lines = 0;
    while !stop.load(Ordering::Relaxed) && stop_after.is_none_or(|n| lines < n) {
        // A sweep's runs that started since: followed from now on.
        for joined in sweep.iter().flat_map(|sweep| sweep.joined.try_iter()) {
            let dir = match joined {
                Ok(dir) => dir,
                Err(e) => {
                    eprintln!("camwatch: {}", paths::for_terminal(&e));
                    continue;
                }
            };
            let started = maker.make(&dir, None).and_then(|(config, store)| {
                let monitor = start_headless(runs.len(), &config, &merged)?;
                Ok((config, store, monitor))
            });
            if live.is_some() {
                eprintln!(
                    "camwatch: {} joined: not written to --tensorboard until camwatch restarts",
                    paths::for_terminal(&dir.display().to_string())
                );
            }
            match started {
                Ok((config, store, monitor)) => {
                    objects.push(monitor.objects());
                    monitors.push(monitor);
                    runs.push(config);
                    stores.push(store);
                }
                Err(e) => eprintln!("camwatch: {}", paths::for_terminal(&e.to_string())),
            }
            for notice in std::mem::take(&mut maker.notices) {
                eprintln!("camwatch: {}", paths::for_terminal(&notice));
            }
        }
        let (index, event) = match events.recv_timeout(Duration::from_millis(100)) {
            Ok((index, Some(event))) => (index, event),
            Ok((index, None)) => {
                // Only a stopped worker closes a channel: say so rather than end
                // quietly with 0 as if the run were over.
                monitors.into_iter().for_each(Monitor::stop);
                return Err(format!(
                    "the monitor's worker for {} stopped unexpectedly",
                    runs[index].dir.display()
                )
                .into());
            }
            Err(_) => continue,
        };
        let dir = &runs[index].dir;
        let store = &stores[index];
        let run_url = store.as_ref().map(|s| PathBuf::from(s.url.to_string()));
        let run = several.then_some(run_url.as_deref().unwrap_or(dir.as_path()));
        if let (Some(live), Some(report)) = (&live, event.report()) {
            live.report(index, report, &runs[index].settings);
        }
        match event {
            MonitorEvent::Checkpoint { .. } | MonitorEvent::Measured(_) => {
                let (report, source, ms, kind) = match &event {
                    MonitorEvent::Checkpoint { report, source, ms } => {
                        (report, *source, *ms, "checkpoint")
                    }
                    MonitorEvent::Measured(report) => (report, Source::Measured, 0.0, "metrics"),
                    _ => continue,
                };
                // A store run's files are told by their objects' URLs and ETags.
                let mut etag = None;
                let stored;
                let report = match store {
                    Some(store) => {
                        let mut named = report.as_ref().clone();
                        etag = store
                            .key_of(&named.path)
                            .zip(objects[index].as_ref())
                            .and_then(|(key, objects)| objects.etag(key));
                        store.name_by_url(&mut named);
                        stored = named;
                        &stored
                    }
                    None => report.as_ref(),
                };
                let line = Line {
                    event: kind,
                    etag,
                    run,
                    report,
                    source,
                    ms,
                    precision,
                };
                // Serialised whole before anything is written: a line is never cut.
                let mut text = match serde_json::to_vec(&line) {
                    Ok(text) => text,
                    Err(e) => {
                        eprintln!("camwatch: {}", paths::for_terminal(&e.to_string()));
                        continue;
                    }
                };
                text.push(b'\n');
                let written = stdout.write_all(&text).and_then(|()| stdout.flush());
                if written.is_err() {
                    // The reader went away (a closed pipe): nobody is listening.
                    break;
                }
                lines += usize::from(line.event == "checkpoint");
            }
            MonitorEvent::Replayed { checkpoints } if checkpoints > 0 => {
                eprintln!("camwatch: {checkpoints} checkpoint(s) from the history; watching");
            }
            MonitorEvent::Following { writer } => {
                let dir = paths::for_terminal(&dir.display().to_string());
                match writer {
                    Some(writer) => eprintln!(
                        "camwatch: {} watches {dir}: following its history read-only",
                        paths::for_terminal(&writer.to_string())
                    ),
                    None => eprintln!(
                        "camwatch: nobody writes {dir}'s history now and this user may not: \
                         showing it read-only"
                    ),
                }
            }
            MonitorEvent::WriterGone => eprintln!(
                "camwatch: the camwatch writing {}'s history stopped: new checkpoints there \
                 are not computed until camwatch is started again",
                paths::for_terminal(&dir.display().to_string())
            ),
            MonitorEvent::Replayed { .. }
            | MonitorEvent::Working { .. }
            | MonitorEvent::Downloading { .. }
            | MonitorEvent::Revised(_) => {}
            MonitorEvent::Warning(message) => {
                eprintln!("camwatch: {}", paths::for_terminal(&message))
            }
        }
    }
    monitors.into_iter().for_each(Monitor::stop);
    if let Some(live) = live {
        // What the workers sent before they stopped is written too: a checkpoint's
        // line may be out while its revised neighbour still waits here.
        for (index, event) in events.try_iter() {
            if let Some(report) = event.as_ref().and_then(MonitorEvent::report) {
                live.report(index, report, &runs[index].settings);
            }
        }
        live.finish();
    }
    Ok(())
}

/// Starts run `index`'s monitor for headless output, its events into `merged`.
fn start_headless(
    index: usize,
    config: &MonitorConfig,
    merged: &std::sync::mpsc::Sender<(usize, Option<MonitorEvent>)>,
) -> CliResult<Monitor> {
    let methods: Vec<&str> = config
        .settings
        .request
        .methods
        .iter()
        .map(|m| m.name())
        .collect();
    eprintln!(
        "camwatch: watching {} ({} sample(s), {} on {}, history {})",
        paths::for_terminal(&config.dir.display().to_string()),
        config.samples.samples.len(),
        methods.join(","),
        config.device.label(),
        paths::for_terminal(&config.history.display().to_string())
    );
    let (monitor, run_events) = Monitor::start(config.clone())?;
    let merged = merged.clone();
    std::thread::spawn(move || {
        for event in run_events {
            if merged.send((index, Some(event))).is_err() {
                return;
            }
        }
        // The run's worker is gone.
        let _ = merged.send((index, None));
    });
    Ok(monitor)
}

/// Makes each run's monitor settings: its folder (a store run's mirror), history and
/// mirror.
struct RunMaker {
    template: MonitorConfig,
    cache: Option<PathBuf>,
    store_poll: Duration,
    cache_limit: u64,
    /// Where histories went, to be said once.
    notices: Vec<String>,
}

impl RunMaker {
    fn make(
        &mut self,
        given: &std::path::Path,
        history: Option<&std::path::Path>,
    ) -> CliResult<(MonitorConfig, Option<StoreRun>)> {
        let mut dir = given.to_path_buf();
        let store = resolve_stores(&mut dir, &mut [], self.cache.as_deref(), true)?.remove(0);
        let place = place::locate(&dir, history, Purpose::Watch);
        if let Some(notice) = place::prepare(&dir, &place)? {
            self.notices.push(notice);
        }
        let mut config = MonitorConfig {
            dir,
            history: place.file,
            ..self.template.clone()
        };
        if let Some(store) = &store {
            let open = store.url.open()?;
            self.notices.push(format!(
                "{} is mirrored in {} (credentials: {})",
                store.url,
                store.folder.display(),
                open.credentials
            ));
            // The mirror polls the store; its local folder has events.
            config.poll = None;
            config.mirror = Some(MirrorConfig {
                store: open,
                dir: config.dir.clone(),
                poll: self.store_poll,
                cache_limit: self.cache_limit,
                history: config.history.clone(),
                // Set by the monitor, which knows the setting.
                results: None,
            });
        }
        Ok((config, store))
    }
}

/// The runs of the sweeps being watched (`--runs`): those found at start, and a thread
/// that looks again every poll and sends the runs that appeared (or, once until it
/// changes, why a sweep could not be looked at).
struct Sweep {
    first: Vec<PathBuf>,
    joined: std::sync::mpsc::Receiver<Result<PathBuf, String>>,
}

impl Sweep {
    fn start(roots: Vec<Location>, poll: Duration, stop: Arc<AtomicBool>) -> Sweep {
        let find = move |roots: &[Location]| -> (Vec<PathBuf>, Vec<String>) {
            let (mut found, mut errors) = (Vec::new(), Vec::new());
            for root in roots {
                match sweep::runs(root) {
                    Ok(runs) => found.extend(runs),
                    Err(e) => errors.push(e),
                }
            }
            (found, errors)
        };
        let (first, errors) = find(&roots);
        for e in &errors {
            eprintln!("camwatch: {}", paths::for_terminal(e));
        }
        let (tx, joined) = std::sync::mpsc::channel();
        let mut known: std::collections::HashSet<PathBuf> = first.iter().cloned().collect();
        let mut said = errors;
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let end = std::time::Instant::now() + poll;
                while std::time::Instant::now() < end {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                let (found, errors) = find(&roots);
                for e in errors.iter().filter(|e| !said.contains(e)) {
                    if tx.send(Err(e.clone())).is_err() {
                        return;
                    }
                }
                said = errors;
                for run in found {
                    if known.insert(run.clone()) && tx.send(Ok(run)).is_err() {
                        return;
                    }
                }
            }
        });
        Sweep { first, joined }
    }
}
