//! The terminal UI: draws state and turns keys into intents. The monitor, image encoding
//! and exports run on threads of their own; everything reaches the loop as a
//! [`Message`] on one channel; the loop drains the channel, updates the state, then
//! draws one frame.

mod app;
mod export;
mod frames;
pub mod graphics;
mod images;
mod intent;
mod keymap;
pub mod probe;
mod view;

use std::io::{Stdout, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

use crossterm::event::{self, DisableMouseCapture, EnableMouseCapture, Event as TermEvent};
use crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;

pub use app::{App, Effect, Message};
pub use frames::Frames;
pub use images::{Encoding, ImageCache, ImageKey, ImageRequest, Painter, Picture, RunMap};
pub use intent::Intent;
pub use keymap::{KEYMAP, intent_of};
pub use probe::ProtocolChoice;
pub use view::{Areas, Pane, Plan, draw, layout};

use crate::cam::image_ops::Blend;
use crate::cam::{Colormap, Target};
use crate::monitor::MonitorConfig;
use crate::monitor::maps::MapReader;
use crate::runs::{Run, RunSet, RunsEvent};

/// Everything that reaches the UI loop, on one channel.
pub enum Event {
    /// Changes the state.
    App(Message),
    /// From the encoder thread.
    Image(Encoding),
}

pub struct TuiOptions {
    /// The runs to follow: one, or several compared side by side (same samples and
    /// settings, each its own folder and history), a sweep's joining as they come.
    /// Method, layer and target change with keys.
    pub runs: RunSet,
    /// The set's events.
    pub events: mpsc::Receiver<RunsEvent>,
    pub protocol: ProtocolChoice,
    pub snapshots: PathBuf,
    pub colormap: Colormap,
    pub blend: Blend,
    /// What `--precision` asked for: `auto` decides again for each method and layer.
    pub precision: crate::precision::PrecisionChoice,
    /// Set by SIGTERM, SIGHUP (the SSH connection went) and an outside SIGINT, which
    /// end the UI the way `q` does; registered by the caller before anything slow.
    pub signalled: Arc<AtomicBool>,
}

/// How long the loop sleeps when nothing happens.
const TICK: Duration = Duration::from_millis(250);

pub fn run(options: TuiOptions) -> Result<(), Box<dyn std::error::Error>> {
    let mut set = options.runs;
    let Some(config) = set.runs().first().map(|r| r.config.clone()) else {
        return Err("no run to follow".into());
    };
    // What the set said while it was made (where histories go), for the status line.
    let notices: Vec<String> = options
        .events
        .try_iter()
        .filter_map(|e| match e {
            RunsEvent::Notice(text) => Some(text),
            _ => None,
        })
        .collect();
    let mut labels: Vec<PathBuf> = set.runs().iter().map(|r| r.label.clone()).collect();
    let painter_of = |runs: &[Run]| {
        let maps = runs
            .iter()
            .map(|run| {
                MapReader::new(
                    &run.config.samples,
                    run.config.history.clone(),
                    run.config.dir.clone(),
                    run.config.settings.clone(),
                )
            })
            .collect();
        Painter::new(config.samples.clone(), maps, options.colormap)
    };
    let mut painter = painter_of(set.runs());
    let mut guard = TerminalGuard::enter()?;
    // Asked after entering the alternate screen and before reading any event.
    let choice = probe_terminal(options.protocol);

    let signalled = &options.signalled;
    let (tx, rx) = mpsc::channel::<Event>();
    let input_stop = Arc::new(AtomicBool::new(false));
    spawn_input(tx.clone(), Arc::clone(&input_stop));
    forward(options.events, tx.clone());

    let dirs: Vec<PathBuf> = set.runs().iter().map(|r| r.config.dir.clone()).collect();
    let mut app = App::new(
        &dirs,
        config.device.label(),
        &config.samples,
        config.settings.request.methods.clone(),
    );
    app.name_runs(&labels);
    app.layer = config.settings.request.layer;
    app.target = config.settings.request.target;
    app.blend = options.blend;
    app.graphics = choice.label();
    let ours = (!notices.is_empty()).then(|| notices.join("; "));
    app.notice = match (ours, &choice.notice) {
        (Some(ours), Some(probe)) => Some(format!("{ours}; {probe}")),
        (ours, probe) => ours.or_else(|| probe.clone()),
    };
    let precision = options.precision;
    set.start(&|config| shown_settings(&app, precision, config))?;
    app.device = device_label(&set);
    let mut encoder = images::Encoder::spawn(painter.clone(), choice.graphics, tx.clone());
    let mut frames = Frames::default();
    let mut log = FrameLog::from_env(&choice);

    // Whether the screen may be out of date: nothing is drawn (not a byte written)
    // while nothing changes.
    let mut dirty = true;
    let result = loop {
        let first = match rx.recv_timeout(TICK) {
            Ok(message) => message,
            Err(RecvTimeoutError::Timeout) => Event::App(Message::Tick),
            Err(RecvTimeoutError::Disconnected) => break Ok(()),
        };
        let mut effects = Vec::new();
        for event in std::iter::once(first).chain(rx.try_iter()) {
            match event {
                Event::Image(encoding) => {
                    dirty |= frames.received(encoding, guard.terminal.backend_mut())?
                }
                Event::App(Message::Tick) => {}
                Event::App(message) => {
                    if matches!(message, Message::Monitor { .. }) {
                        // A new checkpoint may bring maps that were missing: ask for
                        // them again, even if the same images were asked for before.
                        frames.maps_changed();
                        encoder.retry();
                    }
                    effects.extend(app.update(message));
                    dirty = true;
                }
            }
        }
        // A sweep's new runs: followed, drawn and named from now on.
        let joined = set.take_joined(&|config| shown_settings(&app, precision, config));
        for joined in joined {
            match joined {
                Ok(run) => {
                    app.add_run(set.runs()[run].config.dir.clone());
                    labels.push(set.runs()[run].label.clone());
                    app.name_runs(&labels);
                    // The painter reads every run's maps: a new one for the new run.
                    painter = painter_of(set.runs());
                    encoder = images::Encoder::spawn(painter.clone(), choice.graphics, tx.clone());
                    frames.maps_changed();
                    dirty = true;
                }
                Err(e) => app.last_error = Some(e),
            }
        }
        for effect in effects {
            match effect {
                Effect::Restart => {
                    app.generation += 1;
                    app.runs.iter_mut().for_each(app::RunView::reset);
                    match set.restart(&|config| shown_settings(&app, precision, config)) {
                        Ok(()) => app.device = device_label(&set),
                        Err(e) => app.last_error = Some(e),
                    }
                }
                Effect::Snapshot | Effect::Animate => {
                    if let Some(job) = export::ExportJob::of(&app, &painter, &options.snapshots) {
                        let tx = tx.clone();
                        std::thread::spawn(move || {
                            let result = if effect == Effect::Snapshot {
                                job.snapshot()
                            } else {
                                job.animate()
                            };
                            let _ = tx.send(Event::App(Message::Exported(result)));
                        });
                    }
                }
            }
        }
        if app.quit || signalled.load(Ordering::Relaxed) {
            break Ok(());
        }
        if !dirty && !frames.holding() {
            continue;
        }
        let size = guard.terminal.size()?;
        let plan = Plan::new(&app, Rect::new(0, 0, size.width, size.height));
        app.clicks = plan.clicks(&app);
        app.timeline_first = plan.areas.timeline_first;
        app.help_first = app.help_first.min(view::help_hidden(&app, size.height));
        encoder.want(frames.missing(&plan));
        match frames.draw(&mut guard.terminal, &app, &plan) {
            Ok(Some(panes)) => {
                dirty = false;
                log.frame(&app, size, &panes, guard.written());
            }
            Ok(None) => {}
            Err(e) => break Err(e.into()),
        }
    };
    input_stop.store(true, Ordering::Relaxed);
    drop(guard);
    set.stop();
    result
}

/// The set's events into the UI's channel.
fn forward(events: mpsc::Receiver<RunsEvent>, tx: Sender<Event>) {
    std::thread::spawn(move || {
        for event in events {
            let message = match event {
                RunsEvent::Monitor {
                    run,
                    generation,
                    event,
                } => Message::Monitor {
                    generation,
                    run,
                    event,
                },
                RunsEvent::Notice(text) => Message::Notice(text),
                RunsEvent::Stopped { dir, .. } => Message::Notice(format!(
                    "the monitor's worker for {} stopped unexpectedly",
                    dir.display()
                )),
            };
            if tx.send(Event::App(message)).is_err() {
                return;
            }
        }
    });
}

/// A run's monitor settings with what the UI shows: its methods, layer and target
/// (`label` falls back to the prediction where a sample has no label), in the
/// precision `--precision` gives for them.
fn shown_settings(
    app: &App,
    precision: crate::precision::PrecisionChoice,
    config: &mut MonitorConfig,
) {
    let request = &mut config.settings.request;
    request.methods = app.monitor_methods();
    request.layer = app.layer;
    request.target = app.target;
    if app.target == Target::Label && config.samples.samples.iter().any(|s| s.label.is_none()) {
        request.target = Target::Predicted;
    }
    config.settings.precision = precision.resolve(
        &config.device,
        &config.settings.request.methods,
        app.layer,
        config
            .samples
            .samples
            .len()
            .min(config.settings.request.batch),
        config.settings.input_size,
    );
}

/// The device and precision the monitors run in, for the header.
fn device_label(set: &RunSet) -> String {
    match set.started(0) {
        Some(config) => format!("{} {}", config.device.label(), config.settings.precision),
        None => String::new(),
    }
}

/// What the terminal on stdin and stdout draws, for output outside the UI (`show`):
/// raw mode only while it answers.
pub fn probe_outside_ui(choice: ProtocolChoice) -> probe::Choice {
    let raw = terminal::enable_raw_mode().is_ok();
    let choice = probe_terminal(choice);
    if raw {
        let _ = terminal::disable_raw_mode();
    }
    choice
}

/// Asks the terminal what it draws (see [`probe`]); the pixel size the kernel knows
/// stands in for a terminal that does not tell its own.
fn probe_terminal(choice: ProtocolChoice) -> probe::Choice {
    let replies = probe::query(Duration::from_secs(1)).unwrap_or_default();
    let mut replies = probe::parse(&replies);
    let size = terminal::window_size().ok();
    if replies.window.is_none()
        && let Some(size) = size.as_ref().filter(|s| s.width > 0 && s.height > 0)
    {
        replies.window = Some((size.width, size.height));
    }
    let cells = size.map_or((0, 0), |s| (s.columns, s.rows));
    probe::choose(&replies, &probe::Env::of_process(), choice, cells)
}

fn spawn_input(tx: Sender<Event>, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if !event::poll(Duration::from_millis(100)).unwrap_or(false) {
                continue;
            }
            let message = match event::read() {
                Ok(TermEvent::Key(key)) => Message::Key(key),
                Ok(TermEvent::Mouse(mouse)) => Message::Mouse(mouse),
                Ok(TermEvent::Resize(..)) => Message::Resize,
                Ok(_) => continue,
                Err(_) => break,
            };
            if tx.send(Event::App(message)).is_err() {
                break;
            }
        }
    });
}

/// `CAMWATCH_FRAME_LOG=FILE`: one JSON line per frame drawn, with where each image
/// went and the bytes written to the terminal since the frame before; for tests that
/// look at the pixels of a real terminal, and for measuring what crosses the wire.
struct FrameLog {
    file: Option<std::fs::File>,
    graphics: graphics::Graphics,
    written: u64,
}

impl FrameLog {
    fn from_env(choice: &probe::Choice) -> FrameLog {
        let file = std::env::var_os("CAMWATCH_FRAME_LOG").and_then(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok()
        });
        FrameLog {
            file,
            graphics: choice.graphics,
            written: 0,
        }
    }

    fn frame(
        &mut self,
        app: &App,
        size: ratatui::layout::Size,
        panes: &[(Pane, Rect)],
        written: u64,
    ) {
        let Some(file) = &mut self.file else { return };
        let images: Vec<_> = panes
            .iter()
            .map(|(pane, at)| {
                serde_json::json!({
                    "pane": format!("{pane:?}"),
                    "at": [at.x, at.y, at.width, at.height],
                })
            })
            .collect();
        let line = serde_json::json!({
            "protocol": self.graphics.protocol.name(),
            "cell": [self.graphics.cell.0, self.graphics.cell.1],
            "size": [size.width, size.height],
            "bytes": written - self.written,
            "sample": app.sample,
            "epoch": if app.comparing() {
                app.cursor_epoch().map(|e| e.to_string())
            } else {
                app.current().map(App::epoch_label)
            },
            "epochs": if app.comparing() { app.axis().len() } else { app.epochs().len() },
            "runs": app.runs.iter().map(|r| serde_json::json!({
                "name": r.name,
                "shown": r.shown,
                "epochs": crate::compare::epochs(&r.checkpoints).len(),
                "following": r.following.is_some(),
            })).collect::<Vec<_>>(),
            "help": app.help,
            "grid": app.grid,
            "working": app.runs.iter().any(|r| r.working.is_some()),
            "images": images,
        });
        self.written = written;
        let _ = writeln!(file, "{line}");
    }
}

/// Stdout, counting what it writes.
struct Counted {
    out: Stdout,
    written: Arc<AtomicU64>,
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Raw mode, the alternate screen and mouse capture, undone on drop and on panic.
struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Counted>>,
    written: Arc<AtomicU64>,
}

impl TerminalGuard {
    /// Bytes written to the terminal so far.
    fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    fn enter() -> std::io::Result<TerminalGuard> {
        terminal::enable_raw_mode()?;
        crossterm::execute!(std::io::stdout(), EnterAlternateScreen, EnableMouseCapture)?;
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // A panic inside an isolated job becomes that job's error; the UI goes on.
            if !crate::isolate::is_isolated() {
                restore();
            }
            previous(info);
        }));
        let written = Arc::new(AtomicU64::new(0));
        let out = Counted {
            out: std::io::stdout(),
            written: Arc::clone(&written),
        };
        match Terminal::new(CrosstermBackend::new(out)) {
            Ok(terminal) => Ok(TerminalGuard { terminal, written }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

fn restore() {
    let _ = crossterm::execute!(
        std::io::stdout(),
        DisableMouseCapture,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
    let _ = terminal::disable_raw_mode();
}
