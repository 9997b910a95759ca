//! The terminal UI's state and the one place it changes: [`App::update`] takes a
//! [`Message`] (a key, a click, a tick, something from the monitor, an encoded image) and
//! returns the [`Effect`]s the loop must carry out. Drawing only reads this state.

use std::path::PathBuf;

use crossterm::event::{KeyEvent, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::{Position, Rect};

use super::intent::Intent;
use super::keymap::intent_of;
use crate::cam::image_ops::Blend;
use crate::cam::{Layer, Method, SampleSet, Target};
use crate::compare;
use crate::monitor::history::Status;
use crate::monitor::timeline::{Event, SampleFigures, sort_in_training_order};
use crate::monitor::{CheckpointReport, MonitorEvent};

/// What changes the UI's state.
pub enum Message {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize,
    Tick,
    /// From run `run`'s monitor started as `generation` (events of a replaced one are
    /// dropped).
    Monitor {
        generation: u64,
        run: usize,
        event: MonitorEvent,
    },
    /// A snapshot or animation written (the files), or why not.
    Exported(Result<Vec<PathBuf>, String>),
    /// Something to say in the status line (the TensorBoard export stopped, say).
    Notice(String),
}

/// Side effects for the loop: the state only records that they are wanted.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Method, layer or target changed: the monitor restarts with the new settings
    /// (what the history holds comes back at once; the rest is computed).
    Restart,
    /// Write PNGs of the current sample (overlay, side by side, timeline strip).
    Snapshot,
    /// Write an animated GIF of the current sample across epochs.
    Animate,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Working {
    pub path: PathBuf,
    pub done: usize,
    pub total: usize,
    pub queued: usize,
}

/// What the UI knows of a sample without its pixels.
#[derive(Clone, Debug)]
pub struct SampleInfo {
    pub name: String,
    pub label: Option<usize>,
    pub has_box: bool,
}

/// Where things were drawn last, for mouse clicks (set by the loop from the layout).
#[derive(Clone, Debug, Default)]
pub struct ClickMap {
    /// The sample list: its area and the index of its first visible row.
    pub list: Option<(Rect, usize)>,
    /// Grid cells and their samples.
    pub grid: Vec<(Rect, usize)>,
    /// Timeline thumbnails and their epoch index.
    pub timeline: Vec<(Rect, usize)>,
    /// Comparing: the epoch axis (and the charts under it) and how many epochs it
    /// spreads over its width.
    pub axis: Option<(Rect, usize)>,
}

/// A run the UI follows.
#[derive(Clone, Debug)]
pub struct RunView {
    pub dir: PathBuf,
    /// How the UI names it (see [`compare::run_names`]).
    pub name: String,
    /// Every checkpoint reported, in training order (errors included).
    pub checkpoints: Vec<CheckpointReport>,
    /// The checkpoint being computed: its path, samples done and in all, and how many
    /// more wait.
    pub working: Option<Working>,
    pub replayed: bool,
    /// The UI follows this run's history read-only: another camwatch writes it (as far
    /// as it is known), or (`None`) nobody does now and this user may not.
    pub following: Option<Option<crate::monitor::lock::Holder>>,
    /// Drawn when comparing (`1`…`8` toggle the page's runs).
    pub shown: bool,
}

impl RunView {
    fn new(dir: PathBuf, name: String) -> RunView {
        RunView {
            dir,
            name,
            checkpoints: Vec::new(),
            working: None,
            replayed: false,
            following: None,
            shown: true,
        }
    }

    /// The layers of the run's network, from its newest checkpoint that names them (a
    /// ResNet's history from before camwatch recorded them: its four stages); empty
    /// while no checkpoint is known.
    pub fn taps(&self) -> Vec<String> {
        let arch = self.checkpoints.iter().rev().find_map(|c| c.arch.as_ref());
        match arch.map(|a| &a["taps"]) {
            Some(serde_json::Value::Array(taps)) => taps
                .iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect(),
            Some(_) => (1..=4).map(|s| format!("stage{s}")).collect(),
            None => Vec::new(),
        }
    }

    /// Whether the run's network has a pooled linear classifier right after its last
    /// layer (where `cam` applies); so it is assumed until a checkpoint says otherwise.
    pub fn pooled_classifier(&self) -> bool {
        let arch = self.checkpoints.iter().rev().find_map(|c| c.arch.as_ref());
        arch.and_then(|a| a["pooled_classifier"].as_bool())
            .unwrap_or(true)
    }

    /// Forgets what the monitor said, before a new one starts.
    pub fn reset(&mut self) {
        self.checkpoints.clear();
        self.replayed = false;
        self.working = None;
        self.following = None;
    }
}

/// Runs compared at once: the digit keys' eight. More are shown a page at a time.
pub const RUNS_PER_PAGE: usize = 8;

pub struct App {
    /// The runs followed: one, or several to compare side by side, aligned by epoch.
    pub runs: Vec<RunView>,
    /// Comparing: the runs whose maps are differenced, `.1 − .0`.
    pub difference: (usize, usize),
    /// Comparing more than [`RUNS_PER_PAGE`] runs: the page shown (`r` turns it).
    pub run_page: usize,
    pub device: String,
    pub samples: Vec<SampleInfo>,
    pub classes: Option<Vec<String>>,
    /// Methods the user asked for; `m` cycles through them, or through all when one.
    pub methods: Vec<Method>,
    pub method: Method,
    pub layer: Layer,
    pub target: Target,
    /// How overlays are drawn (`o` cycles).
    pub blend: Blend,
    /// The graphics protocol and terminal, for the status line and the help.
    pub graphics: String,
    pub sample: usize,
    /// The selected checkpoint's hash; `follow` keeps it on the latest.
    pub selected: Option<String>,
    /// Comparing: the selected epoch, the same in every run.
    pub selected_epoch: Option<u64>,
    pub follow: bool,
    pub grid: bool,
    pub show_box: bool,
    pub help: bool,
    /// The help's first line shown, where it is taller than the screen (kept within
    /// the help by the loop, from the screen's height).
    pub help_first: u16,
    pub last_error: Option<String>,
    /// A passing message (snapshot written, export failed).
    pub notice: Option<String>,
    pub generation: u64,
    pub clicks: ClickMap,
    /// The first epoch of the timeline in the last frame (it moves only when the shown
    /// epoch leaves it).
    pub timeline_first: usize,
    pub quit: bool,
}

impl App {
    /// The UI for the runs in `dirs` (the first alone, or all compared).
    pub fn new(dirs: &[PathBuf], device: String, set: &SampleSet, methods: Vec<Method>) -> App {
        let method = methods.first().copied().unwrap_or(Method::GradCam);
        let paths: Vec<&std::path::Path> = dirs.iter().map(PathBuf::as_path).collect();
        let runs = dirs
            .iter()
            .zip(compare::run_names(&paths))
            .enumerate()
            .map(|(run, (dir, name))| {
                let mut view = RunView::new(dir.clone(), name);
                // Beyond a page, runs wait hidden for `r`.
                view.shown = run < RUNS_PER_PAGE;
                view
            })
            .collect();
        App {
            runs,
            difference: (0, 1),
            run_page: 0,
            device,
            samples: set
                .samples
                .iter()
                .map(|s| SampleInfo {
                    name: s.name.clone(),
                    label: s.label,
                    has_box: s.bbox.is_some(),
                })
                .collect(),
            classes: set.classes.clone(),
            methods,
            method,
            layer: Layer::LAST,
            target: Target::Predicted,
            blend: Blend::Alpha,
            graphics: "halfblocks".into(),
            sample: 0,
            selected: None,
            selected_epoch: None,
            follow: true,
            grid: false,
            show_box: true,
            help: false,
            help_first: 0,
            last_error: None,
            notice: None,
            generation: 0,
            clicks: ClickMap::default(),
            timeline_first: 0,
            quit: false,
        }
    }

    /// The methods the monitor must compute: those asked for and the one shown.
    pub fn monitor_methods(&self) -> Vec<Method> {
        let mut methods = self.methods.clone();
        if !methods.contains(&self.method) {
            methods.push(self.method);
        }
        methods.retain(|m| self.supports(*m));
        methods
    }

    /// The run followed (the first, when comparing).
    pub fn run(&self) -> &RunView {
        &self.runs[0]
    }

    /// Whether several runs are compared side by side.
    pub fn comparing(&self) -> bool {
        self.runs.len() > 1
    }

    /// The runs drawn, by index.
    pub fn shown(&self) -> Vec<usize> {
        (0..self.runs.len())
            .filter(|&r| self.runs[r].shown)
            .collect()
    }

    /// Checkpoints with maps: the epochs one can look at (of the first run).
    pub fn epochs(&self) -> Vec<&CheckpointReport> {
        self.run()
            .checkpoints
            .iter()
            .filter(|c| c.status == Status::Ok)
            .collect()
    }

    /// Comparing: every epoch a shown run has, in order (see [`compare::axis`]).
    pub fn axis(&self) -> Vec<u64> {
        compare::axis(
            self.runs
                .iter()
                .filter(|r| r.shown)
                .map(|r| r.checkpoints.as_slice()),
        )
    }

    /// Comparing: index into [`App::axis`] of the epoch shown (the selected one, or
    /// the nearest before it when the runs showing it are hidden).
    pub fn axis_index(&self) -> Option<usize> {
        let axis = self.axis();
        let last = axis.len().checked_sub(1)?;
        match self.selected_epoch {
            Some(epoch) if !self.follow => {
                Some(axis.iter().rposition(|&e| e <= epoch).unwrap_or(0))
            }
            _ => Some(last),
        }
    }

    /// Comparing: the epoch shown in every run.
    pub fn cursor_epoch(&self) -> Option<u64> {
        Some(self.axis()[self.axis_index()?])
    }

    /// Comparing: run `run`'s checkpoint at the epoch shown, if it has one.
    pub fn at(&self, run: usize) -> Option<&CheckpointReport> {
        compare::at_epoch(&self.runs.get(run)?.checkpoints, self.cursor_epoch()?)
    }

    /// Index into [`App::epochs`] of the checkpoint shown.
    pub fn epoch_index(&self) -> Option<usize> {
        let epochs = self.epochs();
        if epochs.is_empty() {
            return None;
        }
        if self.follow {
            return Some(epochs.len() - 1);
        }
        let selected = self.selected.as_deref();
        Some(
            epochs
                .iter()
                .position(|c| Some(c.hash.as_str()) == selected)
                .unwrap_or(epochs.len() - 1),
        )
    }

    pub fn current(&self) -> Option<&CheckpointReport> {
        let epochs = self.epochs();
        self.epoch_index().map(|i| epochs[i])
    }

    /// The current sample's figures at a checkpoint.
    pub fn figures<'a>(&self, checkpoint: &'a CheckpointReport) -> Option<&'a SampleFigures> {
        let name = &self.samples.get(self.sample)?.name;
        checkpoint.samples.iter().find(|s| &s.name == name)
    }

    /// The shown sample's events at a checkpoint: those of the shown method, and
    /// prediction flips.
    pub fn events<'a>(&self, checkpoint: &'a CheckpointReport) -> Vec<&'a Event> {
        let Some(name) = self.samples.get(self.sample).map(|s| &s.name) else {
            return Vec::new();
        };
        checkpoint
            .events
            .iter()
            .filter(|e| &e.sample == name)
            .filter(|e| e.method.as_deref().is_none_or(|m| m == self.method.name()))
            .collect()
    }

    pub fn class_name(&self, class: usize) -> String {
        self.classes
            .as_ref()
            .and_then(|c| c.get(class).cloned())
            .unwrap_or_else(|| class.to_string())
    }

    /// A short name for a checkpoint: its epoch, or its file name.
    pub fn epoch_label(checkpoint: &CheckpointReport) -> String {
        match checkpoint.epoch {
            Some(e) => e.to_string(),
            None => checkpoint
                .path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        }
    }

    pub fn update(&mut self, message: Message) -> Vec<Effect> {
        match message {
            Message::Key(key) => match intent_of(key) {
                Some(intent) => self.apply(intent),
                None => Vec::new(),
            },
            Message::Mouse(mouse) => match self.intent_of_mouse(mouse) {
                Some(intent) => self.apply(intent),
                None => Vec::new(),
            },
            Message::Resize | Message::Tick => Vec::new(),
            Message::Monitor {
                generation,
                run,
                event,
            } => {
                if generation == self.generation && run < self.runs.len() {
                    return self.on_monitor(run, event);
                }
                Vec::new()
            }
            Message::Notice(text) => {
                self.notice = Some(text);
                Vec::new()
            }
            Message::Exported(result) => {
                self.notice = Some(match result {
                    Ok(files) => format!(
                        "wrote {}",
                        files
                            .iter()
                            .map(|f| f.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    Err(e) => format!("export failed: {e}"),
                });
                Vec::new()
            }
        }
    }

    fn on_monitor(&mut self, run: usize, event: MonitorEvent) -> Vec<Effect> {
        let view = &mut self.runs[run];
        match event {
            MonitorEvent::Revised(report) | MonitorEvent::Measured(report) => {
                if let Some(old) = view.checkpoints.iter_mut().find(|c| c.hash == report.hash) {
                    *old = *report;
                }
            }
            MonitorEvent::Checkpoint { report, .. } => {
                let report = *report;
                if report.status == Status::Error {
                    self.last_error = report.error.clone();
                }
                if view
                    .working
                    .as_ref()
                    .is_some_and(|w| report.paths.contains(&w.path))
                {
                    view.working = None;
                }
                // The same content again (another name, or computed after a restart).
                view.checkpoints.retain(|c| c.hash != report.hash);
                view.checkpoints.push(report);
                sort_in_training_order(&mut view.checkpoints, |c| {
                    (c.epoch, c.mtime_ns, c.path.as_path())
                });
            }
            MonitorEvent::Replayed { .. } => view.replayed = true,
            MonitorEvent::Following { writer } => view.following = Some(writer),
            MonitorEvent::WriterGone => {
                // Its watcher stopped: the UI's own monitor takes over the run.
                self.notice = Some(format!(
                    "the camwatch writing {} stopped: computing it here",
                    view.name
                ));
                return vec![Effect::Restart];
            }
            MonitorEvent::Working {
                path,
                queued,
                done,
                total,
            } => {
                view.working = Some(Working {
                    path,
                    done,
                    total,
                    queued,
                })
            }
            MonitorEvent::Downloading { url, done, total } => {
                self.notice = Some(if done < total {
                    format!(
                        "downloading {url}: {} of {}",
                        crate::untrusted::human_bytes(done),
                        crate::untrusted::human_bytes(total)
                    )
                } else {
                    format!("downloaded {url}")
                })
            }
            MonitorEvent::Warning(message) => self.last_error = Some(message),
        }
        Vec::new()
    }

    fn intent_of_mouse(&self, mouse: MouseEvent) -> Option<Intent> {
        let at = Position::new(mouse.column, mouse.row);
        match mouse.kind {
            MouseEventKind::ScrollUp => Some(Intent::NextEpoch),
            MouseEventKind::ScrollDown => Some(Intent::PreviousEpoch),
            MouseEventKind::Down(MouseButton::Left) => {
                if let Some((area, first)) = self.clicks.list
                    && area.contains(at)
                {
                    let index = first + (at.y - area.y) as usize;
                    return (index < self.samples.len()).then_some(Intent::SelectSample(index));
                }
                let hit = |cells: &[(Rect, usize)]| {
                    cells
                        .iter()
                        .find(|(rect, _)| rect.contains(at))
                        .map(|(_, i)| *i)
                };
                if let Some((area, count)) = self.clicks.axis
                    && area.contains(at)
                    && count > 0
                {
                    // The nearest epoch: the axis spreads them over its width.
                    let across = f64::from(at.x - area.x) / f64::from(area.width.max(2) - 1);
                    let index = (across * (count - 1) as f64).round() as usize;
                    return Some(Intent::SelectEpoch(index.min(count - 1)));
                }
                hit(&self.clicks.grid)
                    .map(Intent::SelectSample)
                    .or_else(|| hit(&self.clicks.timeline).map(Intent::SelectEpoch))
            }
            _ => None,
        }
    }

    pub fn apply(&mut self, intent: Intent) -> Vec<Effect> {
        let samples = self.samples.len().max(1);
        self.notice = None;
        match intent {
            Intent::NextSample => self.sample = (self.sample + 1) % samples,
            Intent::PreviousSample => self.sample = (self.sample + samples - 1) % samples,
            Intent::SelectSample(i) => self.sample = i.min(samples - 1),
            // The open help scrolls where the screen cuts it; the epoch stays.
            Intent::NextEpoch if self.help => self.help_first = self.help_first.saturating_sub(1),
            Intent::PreviousEpoch if self.help => self.help_first += 1,
            Intent::NextEpoch => self.step_epoch(1),
            Intent::PreviousEpoch => self.step_epoch(-1),
            Intent::FirstEpoch => self.select_epoch(0),
            Intent::NextEvent => self.step_event(true),
            Intent::PreviousEvent => self.step_event(false),
            Intent::LatestEpoch => self.follow = true,
            Intent::SelectEpoch(i) => self.select_epoch(i),
            Intent::ToggleFollow => {
                if self.follow {
                    self.selected = self.current().map(|c| c.hash.clone());
                    self.selected_epoch = self.cursor_epoch();
                }
                self.follow = !self.follow;
            }
            Intent::ToggleRun(_) | Intent::NextDifference | Intent::NextRunPage
                if !self.comparing() =>
            {
                self.notice =
                    Some("one run: compare several with camwatch watch RUN_A RUN_B …".into());
            }
            Intent::ToggleRun(run) => self.toggle_run(run),
            Intent::NextRunPage => self.next_run_page(),
            Intent::NextDifference => self.next_difference(),
            Intent::NextMethod => {
                self.method = self.next_method();
                return vec![Effect::Restart];
            }
            Intent::NextLayer => {
                let Some(layer) = self.next_layer() else {
                    self.notice = Some("no checkpoint yet: its layers are not known".into());
                    return vec![];
                };
                self.layer = layer;
                if !self.supports(self.method) {
                    self.method = Method::GradCam;
                }
                return vec![Effect::Restart];
            }
            Intent::NextTarget => {
                self.target = self.next_target();
                return vec![Effect::Restart];
            }
            Intent::NextOverlay => self.blend = self.blend.next(),
            Intent::ToggleGrid if self.comparing() => {
                self.notice = Some("comparing shows one sample across runs: no grid".into());
            }
            Intent::ToggleGrid => self.grid = !self.grid,
            Intent::ToggleBox => self.show_box = !self.show_box,
            Intent::ToggleHelp => {
                self.help = !self.help;
                self.help_first = 0;
            }
            Intent::Snapshot | Intent::Animate => {
                if self.current().is_none() {
                    self.notice = Some("nothing to save yet: no checkpoint has maps".into());
                    return Vec::new();
                }
                self.notice = Some("saving…".into());
                return vec![if intent == Intent::Snapshot {
                    Effect::Snapshot
                } else {
                    Effect::Animate
                }];
            }
            Intent::Back if self.help => self.help = false,
            Intent::Back if self.grid => self.grid = false,
            Intent::Back | Intent::Quit => self.quit = true,
        }
        Vec::new()
    }

    /// How many epochs one can step through, and which one is shown: the timeline's,
    /// or when comparing the runs' common axis.
    fn positions(&self) -> (usize, Option<usize>) {
        if self.comparing() {
            (self.axis().len(), self.axis_index())
        } else {
            (self.epochs().len(), self.epoch_index())
        }
    }

    fn step_epoch(&mut self, step: isize) {
        let (count, Some(index)) = self.positions() else {
            return;
        };
        let last = count as isize - 1;
        self.select_epoch((index as isize + step).clamp(0, last) as usize);
    }

    /// Whether the shown sample has an event at epoch position `i` (comparing: in any
    /// shown run).
    fn has_event(&self, i: usize) -> bool {
        if !self.comparing() {
            return self
                .epochs()
                .get(i)
                .is_some_and(|c| !self.events(c).is_empty());
        }
        let Some(&epoch) = self.axis().get(i) else {
            return false;
        };
        self.shown().into_iter().any(|r| {
            compare::at_epoch(&self.runs[r].checkpoints, epoch)
                .is_some_and(|c| !self.events(c).is_empty())
        })
    }

    /// Goes to the nearest epoch after (or before) the shown one with an event for the
    /// shown sample.
    fn step_event(&mut self, forward: bool) {
        let (count, Some(index)) = self.positions() else {
            return;
        };
        let found = if forward {
            (index + 1..count).find(|&i| self.has_event(i))
        } else {
            (0..index).rev().find(|&i| self.has_event(i))
        };
        match found {
            Some(i) => self.select_epoch(i),
            None => {
                self.notice = Some(format!(
                    "no {} event for this sample",
                    if forward { "later" } else { "earlier" }
                ))
            }
        }
    }

    /// Shows epoch `index` and stops following, unless it is the latest.
    fn select_epoch(&mut self, index: usize) {
        if self.comparing() {
            let axis = self.axis();
            let Some(&epoch) = axis.get(index.min(axis.len().saturating_sub(1))) else {
                return;
            };
            self.selected_epoch = Some(epoch);
            self.follow = index + 1 >= axis.len() && self.follow;
            return;
        }
        let epochs = self.epochs();
        let Some(checkpoint) = epochs.get(index.min(epochs.len().saturating_sub(1))) else {
            return;
        };
        let latest = index + 1 >= epochs.len();
        self.selected = Some(checkpoint.hash.clone());
        self.follow = latest && self.follow;
    }

    /// The shown layer by the network's name for it (`last` is the last layer's).
    pub fn layer_name(&self) -> String {
        match (self.layer, self.run().taps().last()) {
            (Layer::Last, Some(last)) => last.clone(),
            (layer, _) => layer.to_string(),
        }
    }

    /// Whether `method` applies at the shown layer of the run's network.
    fn supports(&self, method: Method) -> bool {
        method.supports(self.layer)
            && (!method.info().last_stage_only || self.run().pooled_classifier())
    }

    /// The network's layer after the shown one, round to the first; `None` while the
    /// network is not known.
    fn next_layer(&self) -> Option<Layer> {
        let taps = self.run().taps();
        let (last, _) = taps.split_last()?;
        let at = match self.layer {
            Layer::Last => Some(taps.len() - 1),
            Layer::Tap(name) => taps.iter().position(|t| t == name),
        };
        let next = &taps[at.map_or(0, |i| (i + 1) % taps.len())];
        Some(if next == last {
            Layer::Last
        } else {
            next.parse().unwrap_or(Layer::Last)
        })
    }

    fn next_method(&self) -> Method {
        let cycle: Vec<Method> = if self.methods.len() > 1 {
            self.methods.clone()
        } else {
            Method::ALL.to_vec()
        };
        let cycle: Vec<Method> = cycle.into_iter().filter(|m| self.supports(*m)).collect();
        let at = cycle.iter().position(|m| *m == self.method);
        cycle[at.map_or(0, |i| (i + 1) % cycle.len())]
    }

    /// Shows or hides a run; at least one stays shown, and the differenced pair stays
    /// among the shown runs.
    fn toggle_run(&mut self, key: usize) {
        let run = self.run_page * RUNS_PER_PAGE + key;
        let Some(view) = self.runs.get(run) else {
            self.notice = Some(format!("there are {} runs", self.runs.len()));
            return;
        };
        if view.shown && self.shown().len() == 1 {
            self.notice = Some("the last run shown stays".into());
            return;
        }
        self.runs[run].shown = !view.shown;
        let shown = self.shown();
        let (a, b) = self.difference;
        if !(shown.contains(&a) && shown.contains(&b)) {
            self.difference = match shown.as_slice() {
                [a, b, ..] => (*a, *b),
                _ => self.difference,
            };
        }
    }

    /// A run that joined (a sweep's, started later): shown when its page is.
    pub fn add_run(&mut self, dir: PathBuf) {
        let run = self.runs.len();
        let mut view = RunView::new(dir, String::new());
        view.shown = run / RUNS_PER_PAGE == self.run_page;
        self.runs.push(view);
    }

    /// Names the runs after their labels (folders or URLs), as short as they stay apart.
    pub fn name_runs(&mut self, labels: &[PathBuf]) {
        let labels: Vec<&std::path::Path> = labels.iter().map(PathBuf::as_path).collect();
        for (view, name) in self.runs.iter_mut().zip(compare::run_names(&labels)) {
            view.name = name;
        }
    }

    /// Shows the next page of runs (all of it), hiding the others.
    fn next_run_page(&mut self) {
        let pages = self.runs.len().div_ceil(RUNS_PER_PAGE);
        if pages <= 1 {
            self.notice = Some(format!(
                "{} runs: all fit on one page ({} at most)",
                self.runs.len(),
                RUNS_PER_PAGE
            ));
            return;
        }
        self.run_page = (self.run_page + 1) % pages;
        self.show_page();
        let first = self.run_page * RUNS_PER_PAGE;
        let last = (first + RUNS_PER_PAGE).min(self.runs.len());
        self.notice = Some(format!("runs {}–{last} of {}", first + 1, self.runs.len()));
    }

    /// Shows exactly the runs of the page, and differences its first two.
    fn show_page(&mut self) {
        let page = self.run_page;
        for (run, view) in self.runs.iter_mut().enumerate() {
            view.shown = run / RUNS_PER_PAGE == page;
        }
        let shown = self.shown();
        if let [a, b, ..] = shown.as_slice() {
            self.difference = (*a, *b);
        }
    }

    /// The next pair of shown runs, in order: (0, 1), (0, 2) … (1, 2) …
    fn next_difference(&mut self) {
        let shown = self.shown();
        let pairs: Vec<(usize, usize)> = shown
            .iter()
            .enumerate()
            .flat_map(|(i, &a)| shown[i + 1..].iter().map(move |&b| (a, b)))
            .collect();
        if pairs.is_empty() {
            self.notice = Some("the difference needs two runs shown".into());
            return;
        }
        let at = pairs.iter().position(|p| *p == self.difference);
        self.difference = pairs[at.map_or(0, |i| (i + 1) % pairs.len())];
    }

    /// The two runs differenced, when both are shown.
    pub fn difference_pair(&self) -> Option<(usize, usize)> {
        let (a, b) = self.difference;
        let shown = |r: usize| self.runs.get(r).is_some_and(|v| v.shown);
        (a != b && shown(a) && shown(b)).then_some((a, b))
    }

    /// predicted → label (when every sample has one) → class 0 … n−1 → predicted.
    fn next_target(&self) -> Target {
        let classes = self
            .runs
            .iter()
            .flat_map(|r| &r.checkpoints)
            .find_map(|c| c.samples.first().map(|s| s.probs.len()))
            .or_else(|| self.classes.as_ref().map(Vec::len))
            .unwrap_or(0);
        let labelled = !self.samples.is_empty() && self.samples.iter().all(|s| s.label.is_some());
        let next = match self.target {
            Target::Predicted if labelled => Target::Label,
            Target::Predicted | Target::Label => Target::Class(0),
            Target::Class(n) => Target::Class(n + 1),
        };
        match next {
            Target::Class(n) if n >= classes => Target::Predicted,
            other => other,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::monitor::timeline::MapShape;
    use crossterm::event::{KeyCode, KeyModifiers};
    use std::collections::BTreeMap;

    fn key(code: KeyCode) -> Message {
        Message::Key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    pub(crate) fn report(epoch: u64, samples: &[&str]) -> CheckpointReport {
        CheckpointReport {
            path: PathBuf::from(format!("run/epoch_{epoch}.pdparams")),
            paths: vec![],
            epoch: Some(epoch),
            status: Status::Ok,
            error: None,
            hash: format!("h{epoch}"),
            time: String::new(),
            format: None,
            arch: None,
            published: None,
            samples: samples
                .iter()
                .map(|name| SampleFigures {
                    name: name.to_string(),
                    file: PathBuf::new(),
                    logits: vec![0.0, 1.0],
                    probs: vec![0.25, 0.75],
                    predicted: 1,
                    target: 1,
                    target_prob: 0.75,
                    predicted_changed: None,
                    maps: BTreeMap::from([(
                        "gradcam".to_string(),
                        MapShape {
                            height: 7,
                            width: 7,
                        },
                    )]),
                    box_energy: None,
                    pointing_hit: None,
                    drift: None,
                    metrics: None,
                    sanity: None,
                })
                .collect(),
            events: vec![],
            mtime_ns: epoch as i64,
        }
    }

    pub(crate) fn app_with(epochs: u64) -> App {
        let mut app = App {
            samples: ["a", "b", "c"]
                .iter()
                .map(|n| SampleInfo {
                    name: n.to_string(),
                    label: Some(0),
                    has_box: false,
                })
                .collect(),
            ..App::new(
                &[PathBuf::from("run")],
                "cpu".into(),
                &SampleSet {
                    dir: PathBuf::new(),
                    samples: vec![],
                    classes: None,
                    defaults: Default::default(),
                },
                vec![Method::GradCam],
            )
        };
        // Arriving newest first, as the worker computes them.
        for epoch in (1..=epochs).rev() {
            app.update(Message::Monitor {
                generation: 0,
                run: 0,
                event: MonitorEvent::Checkpoint {
                    report: Box::new(report(epoch, &["a", "b", "c"])),
                    source: crate::monitor::Source::Computed,
                    ms: 1.0,
                },
            });
        }
        app
    }

    #[test]
    fn the_open_help_takes_the_epoch_keys_to_scroll() {
        let mut app = app_with(3);
        let epoch = app.current().map(|c| c.hash.clone());
        app.update(key(KeyCode::Char('?')));
        for _ in 0..3 {
            app.update(key(KeyCode::Down));
        }
        app.update(key(KeyCode::Up));
        assert_eq!(app.help_first, 2);
        assert_eq!(app.current().map(|c| c.hash.clone()), epoch, "epoch kept");
        app.update(key(KeyCode::Char('?')));
        app.update(key(KeyCode::Char('?')));
        assert_eq!(app.help_first, 0, "opened again at the top");
        assert!(crate::tui::view::help_hidden(&app, 24) > 0);
        assert_eq!(crate::tui::view::help_hidden(&app, 60), 0);
    }

    #[test]
    fn esc_closes_the_topmost_popup_before_it_quits() {
        let mut app = app_with(2);
        app.update(key(KeyCode::Char('g')));
        app.update(key(KeyCode::Char('?')));
        app.update(key(KeyCode::Esc));
        assert!(!app.help && app.grid && !app.quit, "help closes first");
        app.update(key(KeyCode::Esc));
        assert!(!app.grid && !app.quit, "then the grid");
        app.update(key(KeyCode::Esc));
        assert!(app.quit, "then it quits");
        let mut app = app_with(2);
        app.update(key(KeyCode::Char('?')));
        app.update(key(KeyCode::Char('q')));
        assert!(app.quit, "q quits from anywhere");
    }

    #[test]
    fn n_jumps_between_the_shown_samples_events() {
        use crate::monitor::timeline::{Event, EventKind};
        let mut app = app_with(6);
        let event = |sample: &str, method: Option<&str>| Event {
            sample: sample.into(),
            kind: EventKind::LeftObject,
            method: method.map(str::to_string),
            detail: String::new(),
        };
        // Epoch 2: sample a; epoch 4: sample b; epoch 5: a, but for another method.
        app.runs[0].checkpoints[1].events = vec![event("a", Some("gradcam"))];
        app.runs[0].checkpoints[3].events = vec![event("b", None)];
        app.runs[0].checkpoints[4].events = vec![event("a", Some("eigencam"))];
        app.update(key(KeyCode::Home));
        app.update(key(KeyCode::Char('n')));
        assert_eq!(app.current().unwrap().epoch, Some(2));
        app.update(key(KeyCode::Char('n')));
        assert_eq!(
            app.current().unwrap().epoch,
            Some(2),
            "no later event for a"
        );
        assert!(app.notice.as_deref().unwrap().contains("no later event"));
        app.update(key(KeyCode::Char('l')));
        app.update(key(KeyCode::Char('n')));
        assert_eq!(app.current().unwrap().epoch, Some(4));
        app.update(key(KeyCode::Char('N')));
        assert_eq!(
            app.current().unwrap().epoch,
            Some(4),
            "nothing earlier for b"
        );
    }

    #[test]
    fn samples_wrap_and_epochs_stop_following() {
        let mut app = app_with(5);
        let epochs: Vec<u64> = app.epochs().iter().map(|c| c.epoch.unwrap()).collect();
        assert_eq!(epochs, [1, 2, 3, 4, 5]);
        assert_eq!(app.current().unwrap().epoch, Some(5));
        app.update(key(KeyCode::Left));
        assert_eq!(app.sample, 2);
        app.update(key(KeyCode::Char('l')));
        assert_eq!(app.sample, 0);
        app.update(key(KeyCode::Down));
        app.update(key(KeyCode::Char('j')));
        assert_eq!(app.current().unwrap().epoch, Some(3));
        assert!(!app.follow);
        // A new epoch arrives: the view stays where the user put it.
        let update = |app: &mut App, epoch| {
            app.update(Message::Monitor {
                generation: 0,
                run: 0,
                event: MonitorEvent::Checkpoint {
                    report: Box::new(report(epoch, &["a"])),
                    source: crate::monitor::Source::Computed,
                    ms: 1.0,
                },
            })
        };
        update(&mut app, 6);
        assert_eq!(app.current().unwrap().epoch, Some(3));
        app.update(key(KeyCode::Home));
        assert_eq!(app.current().unwrap().epoch, Some(1));
        app.update(key(KeyCode::Char('[')));
        assert_eq!(app.current().unwrap().epoch, Some(1));
        app.update(key(KeyCode::End));
        assert!(app.follow);
        update(&mut app, 7);
        assert_eq!(app.current().unwrap().epoch, Some(7));
        // Revised figures replace a checkpoint's, without adding one.
        let mut revised = report(3, &["a", "b", "c"]);
        revised.samples[0].target_prob = 0.5;
        app.update(Message::Monitor {
            generation: 0,
            run: 0,
            event: MonitorEvent::Revised(Box::new(revised)),
        });
        assert_eq!(app.epochs().len(), 7);
        assert_eq!(app.epochs()[2].samples[0].target_prob, 0.5);
        // Events of a replaced monitor are dropped.
        app.generation = 1;
        update(&mut app, 8);
        assert_eq!(app.current().unwrap().epoch, Some(7));
    }

    #[test]
    fn the_layer_key_steps_through_the_networks_layers() {
        let mut app = app_with(1);
        assert!(app.update(key(KeyCode::Char('y'))).is_empty());
        assert!(app.notice.as_deref().unwrap_or("").contains("not known"));
        app.runs[0].checkpoints[0].arch = Some(serde_json::json!({
            "family": "vit",
            "taps": ["blocks.0.norm1", "blocks.1.norm1"],
            "pooled_classifier": false,
        }));
        assert_eq!(app.layer_name(), "blocks.1.norm1");
        app.update(key(KeyCode::Char('y')));
        assert_eq!(app.layer, Layer::Tap("blocks.0.norm1"));
        app.update(key(KeyCode::Char('y')));
        assert_eq!(app.layer, Layer::Last);
        // `cam` needs a classifier right after the pooled layer: not this network's.
        app.methods = Method::ALL.to_vec();
        for _ in 0..Method::ALL.len() {
            app.update(key(KeyCode::Char('m')));
            assert_ne!(app.method, Method::Cam);
        }
    }

    #[test]
    fn settings_restart_the_monitor() {
        let mut app = app_with(2);
        assert_eq!(app.update(key(KeyCode::Char('m'))), [Effect::Restart]);
        assert_eq!(app.method, Method::HiResCam);
        assert_eq!(app.monitor_methods(), [Method::GradCam, Method::HiResCam]);
        // A history from before camwatch recorded layers: a ResNet's four stages.
        app.runs[0].checkpoints[0].arch = Some(serde_json::json!({"name": "ResNet18"}));
        assert_eq!(app.update(key(KeyCode::Char('y'))), [Effect::Restart]);
        assert_eq!(app.layer, Layer::Tap("stage1"));
        app.update(key(KeyCode::Char('t')));
        assert_eq!(app.target, Target::Label);
        app.update(key(KeyCode::Char('t')));
        assert_eq!(app.target, Target::Class(0));
        app.update(key(KeyCode::Char('t')));
        app.update(key(KeyCode::Char('t')));
        assert_eq!(app.target, Target::Predicted, "two classes, then back");
        for (code, check) in [
            ('g', (|a: &App| a.grid) as fn(&App) -> bool),
            ('?', |a: &App| a.help),
            ('b', |a: &App| !a.show_box),
            ('o', |a: &App| a.blend == Blend::Writeup),
        ] {
            app.update(key(KeyCode::Char(code)));
            assert!(check(&app), "{code}");
        }
        assert_eq!(app.update(key(KeyCode::Char('s'))), [Effect::Snapshot]);
        assert_eq!(app.update(key(KeyCode::Char('a'))), [Effect::Animate]);
        app.update(key(KeyCode::Char('q')));
        assert!(app.quit);
    }

    #[test]
    fn clicks_select_samples_and_epochs() {
        let mut app = app_with(3);
        app.clicks.list = Some((Rect::new(0, 2, 20, 10), 0));
        app.clicks.timeline = vec![(Rect::new(30, 20, 8, 4), 0), (Rect::new(40, 20, 8, 4), 1)];
        let click = |column, row| {
            Message::Mouse(MouseEvent {
                kind: MouseEventKind::Down(MouseButton::Left),
                column,
                row,
                modifiers: KeyModifiers::NONE,
            })
        };
        app.update(click(3, 4));
        assert_eq!(app.sample, 2);
        app.update(click(3, 9));
        assert_eq!(app.sample, 2, "below the last sample");
        app.update(click(42, 21));
        assert_eq!(app.current().unwrap().epoch, Some(2));
    }
}
