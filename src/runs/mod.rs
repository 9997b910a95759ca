//! A set of runs followed at once, and everything every view of them needs: each run
//! resolved (a folder, or a store run's local mirror and its history), a sweep's runs as
//! they join, their monitors started, restarted with new settings and stopped, their
//! events on one channel, and the live TensorBoard export. `watch --headless` and the
//! terminal UI are two views of one [`RunSet`], with one policy for each case:
//!
//! - a run that joins a sweep is followed at once, with the settings the view has now;
//!   it is not written to `--tensorboard` until camwatch restarts (each run's log folder
//!   is named after the whole set), and that is said once, as a [`RunsEvent::Notice`];
//! - a monitor whose worker ends on its own (it never should) is a
//!   [`RunsEvent::Stopped`], never a silent gap;
//! - where each history went, or why a sweep could not be listed, is a notice.

mod store_run;
mod sweep;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::monitor::place::{self, Purpose};
use crate::monitor::{Monitor, MonitorConfig, MonitorEvent};
use crate::store::Location;
use crate::store::mirror::{MirrorConfig, Objects};
use crate::tensorboard::{Live, LiveHandle, RunExport};

pub use store_run::{StoreRun, resolve_stores};
use sweep::Sweep;

/// One run of the set.
#[derive(Clone)]
pub struct Run {
    /// Its monitor's settings as made (the view's own settings are applied at start).
    pub config: MonitorConfig,
    /// A store run: its URL and local folder.
    pub store: Option<StoreRun>,
    /// As the user named it (a store run's URL rather than its mirror), for its name.
    pub label: PathBuf,
}

/// What the set tells its view, in order, on one channel.
pub enum RunsEvent {
    /// Run `run`'s monitor said something (`generation`: of which start).
    Monitor {
        run: usize,
        generation: u64,
        event: MonitorEvent,
    },
    /// Run `run` (in `dir`)'s worker ended while it was meant to run.
    Stopped { run: usize, dir: PathBuf },
    /// One line for the user.
    Notice(String),
}

/// How each run's monitor settings are made: a template and where store runs go.
pub struct RunMaker {
    pub template: MonitorConfig,
    /// `--cache`: where store runs are mirrored.
    pub cache: Option<PathBuf>,
    /// How often a store is listed.
    pub store_poll: Duration,
    /// Bytes of a store run's checkpoints kept.
    pub cache_limit: u64,
}

impl RunMaker {
    /// The run `given` (a folder or a store URL), with its history at `history` when
    /// given; and where its history went, when that is worth saying.
    fn make(&self, given: &Path, history: Option<&Path>) -> Result<(Run, Vec<String>), String> {
        let mut dir = given.to_path_buf();
        let store = resolve_stores(&mut dir, &mut [], self.cache.as_deref(), true)?.remove(0);
        let place = place::locate(&dir, history, Purpose::Watch);
        let mut notices = Vec::new();
        if let Some(notice) = place::prepare(&dir, &place).map_err(|e| e.to_string())? {
            notices.push(notice);
        }
        let mut config = MonitorConfig {
            dir,
            history: place.file,
            ..self.template.clone()
        };
        if let Some(store) = &store {
            let open = store.url.open().map_err(|e| e.to_string())?;
            notices.push(format!(
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
                // Set by the monitor, which keeps the history.
                recorded: None,
                // Set by the monitor, which knows the setting.
                results: None,
            });
        }
        let run = Run {
            config,
            store,
            label: given.to_path_buf(),
        };
        Ok((run, notices))
    }
}

/// A run's monitor as started: the settings it was started with (the view's applied),
/// and the thread that forwards its events (joined before TensorBoard is closed).
struct Started {
    monitor: Monitor,
    config: MonitorConfig,
    forwarder: JoinHandle<()>,
}

impl Started {
    fn stop(self) {
        self.monitor.stop();
        let _ = self.forwarder.join();
    }
}

/// The view's own settings (the UI's method, layer, target and precision), applied to
/// each run's monitor settings at start.
pub type Adjust<'a> = &'a dyn Fn(&mut MonitorConfig);

/// The runs followed, and their monitors once started.
pub struct RunSet {
    maker: RunMaker,
    runs: Vec<Run>,
    /// The current start's monitors.
    monitors: Vec<Started>,
    /// Set before the current start's monitors are stopped: their ends are expected.
    ending: Arc<AtomicBool>,
    generation: u64,
    sweep: Option<Sweep>,
    live: Option<Live>,
    /// Runs `0..exported` are written to `--tensorboard`.
    exported: usize,
    events: Sender<RunsEvent>,
    /// Monitors replaced by a restart, stopping in the background.
    stopping: Vec<JoinHandle<()>>,
}

impl RunSet {
    /// The runs `given` (folders or store URLs; with `sweep`, each a sweep whose runs
    /// are found and join as they appear), the first one's history at `history` when
    /// given. Nothing is started yet.
    pub fn new(
        maker: RunMaker,
        given: &[PathBuf],
        sweep: bool,
        history: Option<&Path>,
        stop: Arc<AtomicBool>,
    ) -> Result<(RunSet, Receiver<RunsEvent>), String> {
        if (given.len() > 1 || sweep) && history.is_some() {
            return Err(
                "--history names one run's database: with several runs each has its \
                        own (RUN/.camwatch/history.sqlite)"
                    .into(),
            );
        }
        let (events, receiver) = mpsc::channel();
        let sweep = match sweep {
            true => {
                let roots = given
                    .iter()
                    .map(|root| Location::parse(root))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?;
                let (sweep, errors) = Sweep::start(roots, maker.store_poll, stop);
                for error in errors {
                    let _ = events.send(RunsEvent::Notice(error));
                }
                Some(sweep)
            }
            false => None,
        };
        let first = match &sweep {
            Some(sweep) => sweep.first.clone(),
            None => given.to_vec(),
        };
        let mut runs = Vec::with_capacity(first.len());
        for (i, dir) in first.iter().enumerate() {
            let (run, notices) = maker.make(dir, history.filter(|_| i == 0))?;
            for notice in notices {
                let _ = events.send(RunsEvent::Notice(notice));
            }
            runs.push(run);
        }
        let set = RunSet {
            maker,
            runs,
            monitors: Vec::new(),
            ending: Arc::new(AtomicBool::new(false)),
            generation: 0,
            sweep,
            live: None,
            exported: 0,
            events,
            stopping: Vec::new(),
        };
        Ok((set, receiver))
    }

    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// Whether the set may grow (a sweep).
    pub fn is_sweep(&self) -> bool {
        self.sweep.is_some()
    }

    /// The settings run `run`'s monitor was started with (the view's applied).
    pub fn started(&self, run: usize) -> Option<&MonitorConfig> {
        self.monitors.get(run).map(|s| &s.config)
    }

    /// A store run's objects (their ETags), from its monitor's mirror.
    pub fn objects(&self, run: usize) -> Option<Arc<Objects>> {
        self.monitors.get(run).and_then(|s| s.monitor.objects())
    }

    /// Writes the runs there are now to TensorBoard as their checkpoints come
    /// (`exports`: one per run, in order); why a run's export stopped is a notice.
    pub fn export_live(&mut self, exports: Vec<RunExport>) {
        self.exported = exports.len().min(self.runs.len());
        let events = self.events.clone();
        let warn = move |text: String| {
            let _ = events.send(RunsEvent::Notice(text));
        };
        self.live = Some(Live::start(exports, Box::new(warn)));
    }

    /// Starts every run's monitor with the view's settings.
    pub fn start(&mut self, adjust: Adjust) -> Result<(), String> {
        let ending = Arc::new(AtomicBool::new(false));
        let mut monitors = Vec::with_capacity(self.runs.len());
        for run in 0..self.runs.len() {
            match self.start_one(run, adjust, &ending) {
                Ok(started) => monitors.push(started),
                Err(e) => {
                    ending.store(true, Ordering::Relaxed);
                    monitors.into_iter().for_each(Started::stop);
                    return Err(e);
                }
            }
        }
        self.ending = ending;
        self.monitors = monitors;
        Ok(())
    }

    /// Starts every run's monitor again with new settings (the UI's `m`, `y`, `t`):
    /// their events carry the next generation; the old monitors stop in the background
    /// (each waits for the forward pass under way).
    pub fn restart(&mut self, adjust: Adjust) -> Result<(), String> {
        let (old, old_ending) = (std::mem::take(&mut self.monitors), Arc::clone(&self.ending));
        self.generation += 1;
        let started = self.start(adjust);
        old_ending.store(true, Ordering::Relaxed);
        self.stopping.push(std::thread::spawn(move || {
            old.into_iter().for_each(Started::stop)
        }));
        started
    }

    /// The generation of the current start (the UI drops older monitors' events).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Starts the runs that joined the sweep since the last call; each started run's
    /// index, or why one could not be.
    pub fn take_joined(&mut self, adjust: Adjust) -> Vec<Result<usize, String>> {
        let joined: Vec<Result<PathBuf, String>> = match &self.sweep {
            Some(sweep) => sweep.joined.try_iter().collect(),
            None => return Vec::new(),
        };
        let mut started = Vec::new();
        for dir in joined {
            let made = dir.and_then(|dir| self.maker.make(&dir, None));
            let (run, notices) = match made {
                Ok(made) => made,
                Err(e) => {
                    started.push(Err(e));
                    continue;
                }
            };
            for notice in notices {
                let _ = self.events.send(RunsEvent::Notice(notice));
            }
            if self.live.is_some() {
                let _ = self.events.send(RunsEvent::Notice(format!(
                    "{} joined: not written to --tensorboard until camwatch restarts",
                    run.label.display()
                )));
            }
            let index = self.runs.len();
            self.runs.push(run);
            let ending = Arc::clone(&self.ending);
            match self.start_one(index, adjust, &ending) {
                Ok(monitor) => {
                    self.monitors.push(monitor);
                    started.push(Ok(index));
                }
                Err(e) => {
                    self.runs.pop();
                    started.push(Err(e));
                }
            }
        }
        started
    }

    fn start_one(
        &self,
        run: usize,
        adjust: Adjust,
        ending: &Arc<AtomicBool>,
    ) -> Result<Started, String> {
        let mut config = self.runs[run].config.clone();
        adjust(&mut config);
        let (monitor, events) = Monitor::start(config.clone()).map_err(|e| e.to_string())?;
        let tensorboard: Option<LiveHandle> = self
            .live
            .as_ref()
            .filter(|_| run < self.exported)
            .map(Live::handle);
        let (tx, ending, generation) = (self.events.clone(), Arc::clone(ending), self.generation);
        let dir = config.dir.clone();
        let settings = config.settings.clone();
        let forwarder = std::thread::spawn(move || {
            for event in events {
                if let (Some(tensorboard), Some(report)) = (&tensorboard, event.report()) {
                    tensorboard.report(run, report, &settings);
                }
                let event = RunsEvent::Monitor {
                    run,
                    generation,
                    event,
                };
                if tx.send(event).is_err() {
                    return;
                }
            }
            // Only a stopped worker closes the channel.
            if !ending.load(Ordering::Relaxed) {
                let _ = tx.send(RunsEvent::Stopped { run, dir });
            }
        });
        Ok(Started {
            monitor,
            config,
            forwarder,
        })
    }

    /// Stops every monitor and waits for them; then writes what they reported to
    /// TensorBoard and closes it.
    pub fn stop(mut self) {
        self.ending.store(true, Ordering::Relaxed);
        std::mem::take(&mut self.monitors)
            .into_iter()
            .for_each(Started::stop);
        for old in std::mem::take(&mut self.stopping) {
            let _ = old.join();
        }
        if let Some(live) = self.live.take() {
            live.finish();
        }
    }
}

impl Drop for RunSet {
    fn drop(&mut self) {
        self.ending.store(true, Ordering::Relaxed);
    }
}
