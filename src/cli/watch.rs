//! `camwatch watch [DIR]`: follow a training run in the terminal UI, or with `--headless`
//! as one JSON line per checkpoint.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use camwatch::monitor::readiness::Timing;
use camwatch::monitor::{CheckpointReport, MonitorConfig, MonitorEvent, Source};
use camwatch::precision::Precision;
use camwatch::runs::{RunMaker, RunSet, RunsEvent};
use camwatch::tui::{self, ProtocolChoice, TuiOptions};
use camwatch::{device, paths};

use super::export::{ImageArgs, run_exports};
use super::run_args::RunArgs;
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
    // What the TensorBoard export needs of every run (the same for all).
    let (samples, steps) = (template.samples.clone(), template.metrics.steps);
    let maker = RunMaker {
        template,
        cache: args.run.cam.cache.clone(),
        store_poll: args.poll.unwrap_or(Duration::from_secs(5)),
        cache_limit: (args.cache_size.max(0.0) * 1e9) as u64,
    };
    let given: Vec<PathBuf> = std::iter::once(args.run.dir.clone())
        .chain(args.more.iter().cloned())
        .collect();
    let (mut set, events) = RunSet::new(
        maker,
        &given,
        args.runs,
        args.run.history.as_deref(),
        Arc::clone(&stop),
    )?;
    if let Some(root) = &args.tensorboard {
        let locations: Vec<_> = set
            .runs()
            .iter()
            .map(|r| (r.config.dir.clone(), r.config.history.clone()))
            .collect();
        let images = args.images.options(&args.run.cam);
        let exports = run_exports(root, &locations, &samples, steps, &images)?;
        set.export_live(exports.into_iter().map(|(_, export)| export).collect());
    }
    if !args.headless {
        if !std::io::stdout().is_terminal() {
            return Err("stdout is not a terminal: use --headless for JSON lines".into());
        }
        if set.runs().is_empty() {
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
        let precision = args
            .run
            .cam
            .precision_choice(&set.runs()[0].config.samples.defaults);
        return tui::run(TuiOptions {
            runs: set,
            events,
            protocol: args.protocol,
            snapshots: args.snapshots.clone(),
            colormap: style.colormap,
            blend: style.blend,
            precision,
            signalled: stop,
        });
    }
    headless(set, events, &stop, stop_after)
}

/// `--headless`: one JSON line per checkpoint (and per batch of trust figures) of every
/// run, on stdout; what else happens, one line each on stderr.
fn headless(
    mut set: RunSet,
    events: std::sync::mpsc::Receiver<RunsEvent>,
    stop: &AtomicBool,
    stop_after: Option<usize>,
) -> CliResult {
    let say = |text: &str| eprintln!("camwatch: {}", paths::for_terminal(text));
    let describe = |config: &MonitorConfig| {
        let methods: Vec<&str> = config
            .settings
            .request
            .methods
            .iter()
            .map(|m| m.name())
            .collect();
        say(&format!(
            "watching {} ({} sample(s), {} on {}, history {})",
            config.dir.display(),
            config.samples.samples.len(),
            methods.join(","),
            config.device.label(),
            config.history.display()
        ));
    };
    // Where histories went (said by the set) before the monitors' own lines.
    for event in events.try_iter() {
        if let RunsEvent::Notice(text) = event {
            say(&text);
        }
    }
    set.runs().iter().for_each(|r| describe(&r.config));
    let no_adjusting = |_: &mut MonitorConfig| {};
    set.start(&no_adjusting)?;
    let precision = set
        .started(0)
        .map_or(Precision::Fp32, |c| c.settings.precision);
    let several = set.runs().len() > 1 || set.is_sweep();
    let mut stdout = std::io::stdout().lock();
    let mut lines = 0;
    while !stop.load(Ordering::Relaxed) && stop_after.is_none_or(|n| lines < n) {
        // A sweep's runs that started since: followed from now on.
        for joined in set.take_joined(&no_adjusting) {
            match joined {
                Ok(run) => describe(&set.runs()[run].config),
                Err(e) => say(&e),
            }
        }
        let (run, event) = match events.recv_timeout(Duration::from_millis(100)) {
            Ok(RunsEvent::Monitor { run, event, .. }) => (run, event),
            Ok(RunsEvent::Notice(text)) => {
                say(&text);
                continue;
            }
            Ok(RunsEvent::Stopped { dir, .. }) => {
                // Say so rather than end quietly with 0 as if the run were over.
                set.stop();
                let dir = dir.display();
                return Err(format!("the monitor's worker for {dir} stopped unexpectedly").into());
            }
            Err(_) => continue,
        };
        let this = &set.runs()[run];
        let dir = &this.config.dir;
        let store = &this.store;
        let run_url = store.as_ref().map(|s| PathBuf::from(s.url.to_string()));
        let run_name = several.then_some(run_url.as_deref().unwrap_or(dir.as_path()));
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
                            .zip(set.objects(run))
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
                    run: run_name,
                    report,
                    source,
                    ms,
                    precision,
                };
                // Serialised whole before anything is written: a line is never cut.
                let mut text = match serde_json::to_vec(&line) {
                    Ok(text) => text,
                    Err(e) => {
                        say(&e.to_string());
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
                say(&format!(
                    "{checkpoints} checkpoint(s) from the history; watching"
                ));
            }
            MonitorEvent::Following { writer } => match writer {
                Some(writer) => say(&format!(
                    "{writer} watches {}: following its history read-only",
                    dir.display()
                )),
                None => say(&format!(
                    "nobody writes {}'s history now and this user may not: showing it \
                     read-only",
                    dir.display()
                )),
            },
            MonitorEvent::WriterGone => say(&format!(
                "the camwatch writing {}'s history stopped: new checkpoints there are not \
                 computed until camwatch is started again",
                dir.display()
            )),
            MonitorEvent::Replayed { .. }
            | MonitorEvent::Working { .. }
            | MonitorEvent::Downloading { .. }
            | MonitorEvent::Revised(_) => {}
            MonitorEvent::Warning(message) => say(&message),
        }
    }
    set.stop();
    Ok(())
}
