//! The terminal UI: draws state and turns keys into intents. The monitor, image encoding
//! and exports run on threads of their own; everything reaches the loop as a
//! [`Message`] on one channel; the loop drains the channel, updates the state, then
//! draws one frame.

mod app;
mod export;
mod images;
mod view;

use std::io::Stdout;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

use crossterm::event::{self, DisableMouseCapture, EnableMouseCapture, Event};
use crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui_image::picker::{Picker, ProtocolType};

pub use app::{App, Effect, Intent, Message, intent_of};
pub use images::{ImageCache, ImageKey, ImageRequest, Painter, View, encode};
pub use view::{Areas, draw, layout, wanted};

use crate::cam::image_ops::Blend;
use crate::cam::{Colormap, Target};
use crate::monitor::{Monitor, MonitorConfig};

/// Which terminal graphics protocol draws the images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolChoice {
    /// Ask the terminal (kitty, sixel, iTerm2), else halfblocks.
    Auto,
    Kitty,
    Sixel,
    Iterm2,
    Halfblocks,
}

impl std::str::FromStr for ProtocolChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "auto" => ProtocolChoice::Auto,
            "kitty" => ProtocolChoice::Kitty,
            "sixel" => ProtocolChoice::Sixel,
            "iterm2" => ProtocolChoice::Iterm2,
            "halfblocks" => ProtocolChoice::Halfblocks,
            _ => {
                return Err(format!(
                    "{s:?}: expected auto, kitty, sixel, iterm2 or halfblocks"
                ));
            }
        })
    }
}

pub struct TuiOptions {
    /// The run to follow; method, layer and target change with keys.
    pub monitor: MonitorConfig,
    pub protocol: ProtocolChoice,
    pub snapshots: PathBuf,
    pub colormap: Colormap,
    pub blend: Blend,
    /// Set by SIGTERM, SIGHUP (the SSH connection went) and an outside SIGINT, which
    /// end the UI the way `q` does; registered by the caller before anything slow.
    pub signalled: Arc<AtomicBool>,
}

/// How long the loop sleeps when nothing happens.
const TICK: Duration = Duration::from_millis(250);

pub fn run(options: TuiOptions) -> Result<(), Box<dyn std::error::Error>> {
    let config = &options.monitor;
    let painter = Painter::new(
        config.samples.clone(),
        config.history.clone(),
        config.dir.clone(),
        config.settings.clone(),
        options.colormap,
        options.blend,
    );
    let mut guard = TerminalGuard::enter()?;
    // Probed after entering the alternate screen and before reading any event.
    let picker = pick(options.protocol);

    let signalled = &options.signalled;
    let (tx, rx) = mpsc::channel::<Message>();
    let input_stop = Arc::new(AtomicBool::new(false));
    spawn_input(tx.clone(), Arc::clone(&input_stop));

    let mut app = App::new(
        config.dir.clone(),
        config.device.label(),
        &config.samples,
        config.settings.request.methods.clone(),
    );
    app.layer = config.settings.request.layer;
    app.target = config.settings.request.target;
    let mut monitor = start_monitor(config, &app, tx.clone())?;
    let mut encoder = images::Encoder::spawn(painter.clone(), picker, tx.clone());
    let mut cache = ImageCache::default();
    // Monitors replaced by a new setting, stopping in the background; joined before
    // the process may exit.
    let mut stopping = Vec::new();

    let result = loop {
        let first = match rx.recv_timeout(TICK) {
            Ok(message) => message,
            Err(RecvTimeoutError::Timeout) => Message::Tick,
            Err(RecvTimeoutError::Disconnected) => break Ok(()),
        };
        let mut effects = Vec::new();
        for message in std::iter::once(first).chain(rx.try_iter()) {
            match message {
                Message::Encoded { request, protocol } => cache.insert(request, *protocol),
                Message::Tick => encoder.retry(),
                other => effects.extend(app.update(other)),
            }
        }
        for effect in effects {
            match effect {
                Effect::Restart => {
                    app.generation += 1;
                    app.checkpoints.clear();
                    app.replayed = false;
                    app.working = None;
                    match start_monitor(config, &app, tx.clone()) {
                        Ok(new) => {
                            let old = std::mem::replace(&mut monitor, new);
                            // Stopping waits for the forward pass under way: not here.
                            stopping.push(std::thread::spawn(move || old.stop()));
                        }
                        Err(e) => app.last_error = Some(e.to_string()),
                    }
                }
                Effect::Snapshot | Effect::Animate => {
                    if let Some(job) = export_job(&app, &painter, &options.snapshots) {
                        let tx = tx.clone();
                        std::thread::spawn(move || {
                            let result = if effect == Effect::Snapshot {
                                job.snapshot()
                            } else {
                                job.animate()
                            };
                            let _ = tx.send(Message::Exported(result));
                        });
                    }
                }
            }
        }
        if app.quit || signalled.load(Ordering::Relaxed) {
            break Ok(());
        }
        let size = guard.terminal.size()?;
        let areas = layout(Rect::new(0, 0, size.width, size.height), &app);
        app.clicks = areas.clicks();
        encoder.want(cache.touch(&wanted(&app, &areas)));
        if let Err(e) = guard
            .terminal
            .draw(|frame| draw(frame, &app, &areas, &cache))
        {
            break Err(e.into());
        }
    };
    input_stop.store(true, Ordering::Relaxed);
    drop(guard);
    monitor.stop();
    for old in stopping {
        let _ = old.join();
    }
    result
}

/// Starts the monitor with the method, layer and target the app shows.
fn start_monitor(
    config: &MonitorConfig,
    app: &App,
    tx: Sender<Message>,
) -> Result<Monitor, Box<dyn std::error::Error>> {
    let mut config = config.clone();
    let request = &mut config.settings.request;
    request.methods = app.monitor_methods();
    request.layer = app.layer;
    request.target = app.target;
    if app.target == Target::Label && config.samples.samples.iter().any(|s| s.label.is_none()) {
        request.target = Target::Predicted;
    }
    let (monitor, events) = Monitor::start(config)?;
    let generation = app.generation;
    std::thread::spawn(move || {
        for event in events {
            if tx.send(Message::Monitor { generation, event }).is_err() {
                break;
            }
        }
    });
    Ok(monitor)
}

fn export_job(app: &App, painter: &Painter, out: &std::path::Path) -> Option<export::ExportJob> {
    let current = app.epoch_index()?;
    let with_box = app.show_box && app.samples.get(app.sample)?.has_box;
    let epochs = app
        .epochs()
        .into_iter()
        .map(|c| {
            let key = ImageKey {
                sample: app.sample,
                view: View::Overlay,
                hash: c.hash.clone(),
                method: app.method,
                layer: app.layer,
                target: app.target,
                with_box,
            };
            (key, App::epoch_label(c))
        })
        .collect();
    Some(export::ExportJob {
        painter: painter.clone(),
        out: out.to_path_buf(),
        epochs,
        current,
        name: app.samples[app.sample].name.clone(),
    })
}

fn pick(choice: ProtocolChoice) -> Picker {
    let queried = || Picker::from_query_stdio().ok();
    match choice {
        ProtocolChoice::Halfblocks => Picker::halfblocks(),
        ProtocolChoice::Auto => queried().unwrap_or_else(Picker::halfblocks),
        forced => {
            // Without an answer the font size is a guess (10×20 pixels).
            let mut picker = queried().unwrap_or_else(Picker::halfblocks);
            picker.set_protocol_type(match forced {
                ProtocolChoice::Kitty => ProtocolType::Kitty,
                ProtocolChoice::Sixel => ProtocolType::Sixel,
                _ => ProtocolType::Iterm2,
            });
            picker
        }
    }
}

fn spawn_input(tx: Sender<Message>, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if !event::poll(Duration::from_millis(100)).unwrap_or(false) {
                continue;
            }
            let message = match event::read() {
                Ok(Event::Key(key)) => Message::Key(key),
                Ok(Event::Mouse(mouse)) => Message::Mouse(mouse),
                Ok(Event::Resize(..)) => Message::Resize,
                Ok(_) => continue,
                Err(_) => break,
            };
            if tx.send(message).is_err() {
                break;
            }
        }
    });
}

/// Raw mode, the alternate screen and mouse capture, undone on drop and on panic.
struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
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
        match Terminal::new(CrosstermBackend::new(std::io::stdout())) {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
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
