//! Drawing: a plan computed once per frame from the state (where everything goes and
//! which image each pane shows), and widgets that only read the state, the plan and
//! the encoded images (nothing here waits or writes to the terminal).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::canvas::{self, Canvas};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui_image::Image;

use super::app::{App, ClickMap};
use super::graphics::{self, Body, Encoded};
use super::images::{ImageKey, ImageRequest, Picture, RunMap};
use super::keymap::{KEYMAP, MOUSE};
use super::side_by_side;
use crate::cam::Target;
use crate::cam::metrics::Metric;
use crate::figures::{CHARTED, Figure, Needs};
use crate::monitor::CheckpointReport;
use crate::monitor::history::Status;
use crate::monitor::lock::Holder;
use crate::monitor::maps::MapId;
use crate::monitor::timeline::SampleFigures;

/// Where everything goes on a screen of a given size.
#[derive(Clone, Debug, Default)]
pub struct Areas {
    pub header: Rect,
    pub list: Rect,
    /// Index of the first sample shown in the list.
    pub list_first: usize,
    pub image: Rect,
    pub overlay: Rect,
    pub info: Rect,
    /// Grid mode: one cell per sample (image area, sample).
    pub grid: Vec<(Rect, usize)>,
    /// Thumbnails (image area, epoch index); labels go on the row below each.
    pub timeline: Vec<(Rect, usize)>,
    pub timeline_title: Rect,
    /// Index of the first epoch in the timeline.
    pub timeline_first: usize,
    /// Charts: names on the left, plots under the timeline, values on the right.
    pub charts: Rect,
    pub status: Rect,
    /// Comparing: the sample, each shown run's overlay and the difference, each in a
    /// cell whose last row is its caption.
    pub panes: Vec<(Rect, Pane)>,
    /// Comparing: the runs' names, colours and first epochs on the object.
    pub legend: Rect,
    /// Comparing: the epochs of all shown runs, over the charts' columns.
    pub axis: Rect,
}

const LIST_WIDTH: u16 = 24;
const THUMB: (u16, u16) = (10, 4);
/// The charts' names to the left of the timeline and the plots.
const GUTTER: u16 = 11;
/// The charts' values at the shown epoch, right of the plots.
const VALUES: u16 = 12;

pub fn layout(area: Rect, app: &App) -> Areas {
    let roomy = area.height >= 20;
    let rows = chart_rows(app).len() as u16;
    // Charts take what the images can spare: the main area keeps 12 rows (at 80×24 the
    // first four charts show).
    let spare = area.height.saturating_sub(2 + THUMB.1 + 2 + 12);
    let chart_height = if !roomy {
        0
    } else if area.height >= 44 {
        (2 * rows).min(spare)
    } else {
        rows.min(spare)
    };
    let [header, main, timeline, charts, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(6),
        Constraint::Length(if roomy { THUMB.1 + 2 } else { 0 }),
        Constraint::Length(chart_height),
        Constraint::Length(1),
    ])
    .areas(area);
    let mut areas = Areas {
        header,
        status,
        charts,
        ..Areas::default()
    };
    if app.grid {
        areas.grid = grid_cells(main, app.samples.len());
    } else {
        let [list, right] = Layout::horizontal([
            Constraint::Length(LIST_WIDTH.min(main.width / 3)),
            Constraint::Min(10),
        ])
        .areas(main);
        // Two more lines (trust figures, events) once the run has any: the same height
        // for every sample and epoch, so the images keep their size.
        let info_height = if has_trust(app) { 4 } else { 2 };
        let [images, info] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(info_height)]).areas(right);
        let [image, overlay] =
            Layout::horizontal([Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)]).areas(images);
        let rows = list.height.saturating_sub(1) as usize;
        areas.list_first = app.sample.saturating_sub(rows.saturating_sub(1));
        areas.list = list;
        areas.image = image;
        areas.overlay = overlay;
        areas.info = info;
    }
    if timeline.height > 0 {
        let [title, strip] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(timeline);
        areas.timeline_title = title;
        let strip = plot_columns(strip);
        let fit = (strip.width / (THUMB.0 + 1)).max(1) as usize;
        let epochs = app.epochs().len();
        let current = app.epoch_index().unwrap_or(0);
        // The window stays put while the shown epoch is inside it, and re-centres when
        // it leaves: moved thumbnails cost a sixel terminal all their bytes again.
        let mut first = app.timeline_first;
        if current < first || current >= first + fit {
            first = current.saturating_sub(fit / 2);
        }
        let first = first.min(epochs.saturating_sub(fit));
        areas.timeline_first = first;
        for (slot, index) in (first..epochs.min(first + fit)).enumerate() {
            let x = strip.x + slot as u16 * (THUMB.0 + 1);
            areas
                .timeline
                .push((Rect::new(x, strip.y, THUMB.0, THUMB.1), index));
        }
    }
    areas
}

/// The columns the timeline and the plots share, between names and values.
pub(super) fn plot_columns(area: Rect) -> Rect {
    let gutter = if area.width >= 60 { GUTTER } else { 0 };
    let values = if area.width >= 60 { VALUES } else { 0 };
    Rect {
        x: area.x + gutter,
        width: area.width.saturating_sub(gutter + values),
        ..area
    }
}

/// Square-ish cells (a cell is about twice as tall as wide) for `count` samples.
pub(super) fn grid_cells(area: Rect, count: usize) -> Vec<(Rect, usize)> {
    if count == 0 || area.width == 0 || area.height < 2 {
        return Vec::new();
    }
    let best = (1..=count)
        .max_by_key(|&columns| {
            let rows = count.div_ceil(columns);
            let width = area.width as usize / columns;
            let height = area.height as usize / rows;
            (width / 2).min(height.saturating_sub(1))
        })
        .unwrap_or(1);
    let rows = count.div_ceil(best);
    let (width, height) = (area.width / best as u16, area.height / rows as u16);
    (0..count)
        .map(|i| {
            let (column, row) = ((i % best) as u16, (i / best) as u16);
            let cell = Rect::new(
                area.x + column * width,
                area.y + row * height,
                width.saturating_sub(1),
                height,
            );
            (cell, i)
        })
        .collect()
}

impl Areas {
    pub fn clicks(&self) -> ClickMap {
        ClickMap {
            list: (self.list.height > 1).then(|| {
                let rows = Rect {
                    y: self.list.y + 1,
                    height: self.list.height - 1,
                    ..self.list
                };
                (rows, self.list_first)
            }),
            grid: self.grid.clone(),
            timeline: self.timeline.clone(),
            axis: None,
        }
    }
}

/// Which pane an image goes in: what keeps its previous image while a new one is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pane {
    Image,
    Overlay,
    /// A grid cell, by sample.
    Grid(usize),
    /// A timeline thumbnail, by position from the left.
    Thumb(usize),
    /// Comparing: a run's overlay.
    Run(usize),
    /// Comparing: the difference of two runs' maps.
    Difference,
}

/// One image of the frame.
#[derive(Clone, Debug)]
pub struct Slot {
    pub pane: Pane,
    pub area: Rect,
    pub request: ImageRequest,
}

/// A frame, decided once: the layout and its images, most important first. The loop
/// asks the encoder for the images, and draws the same plan.
pub struct Plan {
    /// The whole screen.
    pub screen: Rect,
    pub areas: Areas,
    pub slots: Vec<Slot>,
}

impl Plan {
    pub fn new(app: &App, screen: Rect) -> Plan {
        if app.comparing() {
            return side_by_side::plan(app, screen);
        }
        let areas = layout(screen, app);
        let current = app.current();
        let mut slots = Vec::new();
        let mut add = |pane, area: Rect, key| {
            if area.width > 0 && area.height > 0 {
                slots.push(Slot {
                    pane,
                    area,
                    request: ImageRequest {
                        key,
                        cells: (area.width, area.height),
                    },
                });
            }
        };
        if !app.grid {
            if let Some(c) = current {
                add(
                    Pane::Overlay,
                    areas.overlay,
                    overlay_key(app, 0, app.sample, c),
                );
            }
            add(
                Pane::Image,
                areas.image,
                ImageKey {
                    picture: Picture::Image(app.sample),
                    with_box: with_box(app, app.sample),
                },
            );
        }
        if let Some(c) = current {
            for (cell, sample) in &areas.grid {
                add(
                    Pane::Grid(*sample),
                    cell_image(*cell),
                    overlay_key(app, 0, *sample, c),
                );
            }
        }
        let epochs = app.epochs();
        for (position, (rect, index)) in areas.timeline.iter().enumerate() {
            let key = ImageKey {
                picture: Picture::Heat(map_id(app, 0, app.sample, epochs[*index])),
                with_box: false,
            };
            add(Pane::Thumb(position), *rect, key);
        }
        Plan {
            screen,
            areas,
            slots,
        }
    }

    /// Where clicks go in this frame.
    pub fn clicks(&self, app: &App) -> ClickMap {
        if app.comparing() {
            side_by_side::clicks(app, &self.areas)
        } else {
            self.areas.clicks()
        }
    }

    pub fn requests(&self) -> Vec<&ImageRequest> {
        self.slots.iter().map(|s| &s.request).collect()
    }
}

pub(super) fn with_box(app: &App, sample: usize) -> bool {
    app.show_box && app.samples.get(sample).is_some_and(|s| s.has_box)
}

/// Run `run`'s map of a sample at one of its checkpoints, with the shown settings.
fn map_id(app: &App, run: usize, sample: usize, checkpoint: &CheckpointReport) -> RunMap {
    RunMap {
        run,
        map: MapId {
            sample,
            hash: checkpoint.hash.clone(),
            method: app.method,
            layer: app.layer,
            target: app.target,
        },
    }
}

/// A sample's overlay at a checkpoint of run `run`, as the UI draws it (and exports it).
pub(super) fn overlay_key(
    app: &App,
    run: usize,
    sample: usize,
    checkpoint: &CheckpointReport,
) -> ImageKey {
    ImageKey {
        picture: Picture::Overlay(map_id(app, run, sample, checkpoint), app.blend),
        with_box: with_box(app, sample),
    }
}

/// The signed difference of two runs' maps of a sample (`b − a`, each at one of its
/// run's checkpoints), as the UI draws it (and exports it).
pub(super) fn difference_key(
    app: &App,
    sample: usize,
    (a, at_a): (usize, &CheckpointReport),
    (b, at_b): (usize, &CheckpointReport),
) -> ImageKey {
    ImageKey {
        picture: Picture::Difference(map_id(app, a, sample, at_a), map_id(app, b, sample, at_b)),
        with_box: with_box(app, sample),
    }
}

/// What the status line says of a run followed read-only.
fn following(writer: Option<&Holder>) -> String {
    match writer {
        Some(holder) => format!("read-only: {holder} writes it"),
        None => "read-only: nobody writes it now".into(),
    }
}

/// A grid cell's image area (its last row is the name).
fn cell_image(cell: Rect) -> Rect {
    Rect {
        height: cell.height.saturating_sub(1),
        ..cell
    }
}

/// Draws the frame: `pictures` holds, for each slot of the plan, the image to show
/// (`None`: not made yet, or no map). Returns where the graphics images go (their
/// cells are reserved, and the caller sends them after ratatui has drawn the text),
/// and where each pane's image went.
pub fn draw<'a>(
    frame: &mut Frame,
    app: &App,
    plan: &Plan,
    pictures: &[Option<&'a Encoded>],
) -> (Vec<graphics::Place<'a>>, Vec<(Pane, Rect)>) {
    let areas = &plan.areas;
    let mut places = Vec::new();
    let mut drawn = Vec::with_capacity(plan.slots.len());
    for (slot, picture) in plan.slots.iter().zip(pictures) {
        drawn.push(draw_image(frame, *picture, slot.area, &mut places));
    }
    if app.comparing() {
        side_by_side::draw(frame, app, plan, &drawn);
        if app.help {
            draw_help(frame, app);
        }
        return (places, panes_drawn(plan, drawn));
    }
    let drawn_in = |pane: Pane| {
        plan.slots
            .iter()
            .zip(&drawn)
            .find(|(s, _)| s.pane == pane)
            .and_then(|(_, d)| *d)
    };
    frame.render_widget(
        Paragraph::new(header(app, areas.header.width)).reversed(),
        areas.header,
    );
    if app.grid {
        draw_grid_names(frame, app, areas, &drawn_in);
    } else {
        draw_list(frame, app, areas);
        let placeholder = |pane, area: Rect, text: String| {
            if drawn_in(pane).is_none() && area.height > 0 {
                Some((Paragraph::new(text).dark_gray(), area))
            } else {
                None
            }
        };
        let overlay_text = match app.current() {
            None => waiting(app),
            Some(_) => "…".into(),
        };
        for (paragraph, area) in [
            placeholder(Pane::Image, areas.image, "…".into()),
            placeholder(Pane::Overlay, areas.overlay, overlay_text),
        ]
        .into_iter()
        .flatten()
        {
            frame.render_widget(paragraph, area);
        }
        frame.render_widget(Paragraph::new(info(app)), areas.info);
    }
    draw_timeline(frame, app, areas);
    draw_charts(frame, app, areas);
    frame.render_widget(Paragraph::new(status(app)), areas.status);
    if app.help {
        draw_help(frame, app);
    }
    (places, panes_drawn(plan, drawn))
}

/// Where each pane's image went.
fn panes_drawn(plan: &Plan, drawn: Vec<Option<Rect>>) -> Vec<(Pane, Rect)> {
    plan.slots
        .iter()
        .zip(drawn)
        .filter_map(|(slot, at)| Some((slot.pane, at?)))
        .collect()
}

/// Draws an encoded image centred in `area` (halfblocks as text; graphics by reserving
/// their cells and adding them to `places`); returns where it went.
fn draw_image<'a>(
    frame: &mut Frame,
    picture: Option<&'a Encoded>,
    area: Rect,
    places: &mut Vec<graphics::Place<'a>>,
) -> Option<Rect> {
    let picture = picture?;
    let (w, h) = (
        picture.size.width.min(area.width),
        picture.size.height.min(area.height),
    );
    if w == 0 || h == 0 {
        return None;
    }
    let at = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    match &picture.body {
        Body::Cells(cells) => frame.render_widget(Image::new(cells), at),
        Body::Escape(_) | Body::Kitty { .. } => {
            graphics::reserve(frame.buffer_mut(), at);
            places.push(graphics::Place { at, image: picture });
        }
    }
    Some(at)
}

fn waiting(app: &App) -> String {
    let run = app.run();
    match &run.working {
        Some(w) => format!("computing {}…", w.path.display()),
        None if run.replayed => format!("waiting for a checkpoint in {}", run.dir.display()),
        None => "reading the history…".into(),
    }
}

/// The header, fitted to `width`: the title, then the sample's class name, then words
/// of the settings go first when it is narrow.
pub(super) fn header(app: &App, width: u16) -> Line<'static> {
    let sample = app.samples.get(app.sample);
    let name = sample.map_or("-".to_string(), |s| s.name.clone());
    let label = sample
        .and_then(|s| s.label)
        .map(|l| format!(" ({})", app.class_name(l)))
        .unwrap_or_default();
    let epoch = if app.comparing() {
        let axis = app.axis();
        match app.axis_index() {
            Some(i) => format!("epoch {} [{}/{}]", axis[i], i + 1, axis.len()),
            None => "no epoch yet".into(),
        }
    } else {
        match (app.current(), app.epoch_index()) {
            (Some(c), Some(i)) => {
                let count = app.epochs().len();
                format!("epoch {} [{}/{count}]", App::epoch_label(c), i + 1)
            }
            _ => "no epoch yet".into(),
        }
    };
    let follow = if app.follow { " ● follow" } else { "" };
    let target = match app.target {
        Target::Class(n) => format!("class {}", app.class_name(n)),
        other => other.to_string(),
    };
    let position = format!("sample {}/{}", app.sample + 1, app.samples.len());
    let (method, layer) = (app.method, app.layer);
    let fits = |text: &str| text.chars().count() <= width as usize;
    let full = format!(
        " {position} {name}{label} · {epoch}{follow} · {method} · {layer} · target {target} "
    );
    let title = if app.comparing() {
        format!(" camwatch ⇆ {}/{} runs ", app.shown().len(), app.runs.len())
    } else {
        " camwatch ".into()
    };
    if fits(&format!("{title}{full}")) {
        return Line::from(vec![
            Span::styled(title, Style::new().bold()),
            Span::raw(full),
        ]);
    }
    let shorter = [
        full.clone(),
        format!(" {position} {name}{label} · {epoch}{follow} · {method} {layer} → {target} "),
        format!(" {position} {name} · {epoch}{follow} · {method} {layer} → {target} "),
    ];
    let text = shorter.iter().find(|t| fits(t)).unwrap_or(&shorter[2]);
    Line::from(text.clone())
}

fn draw_list(frame: &mut Frame, app: &App, areas: &Areas) {
    let area = areas.list;
    if area.width == 0 {
        return;
    }
    let current = app.current();
    let mut lines = vec![Line::from("samples").bold()];
    let rows = area.height.saturating_sub(1) as usize;
    for (i, sample) in app
        .samples
        .iter()
        .enumerate()
        .skip(areas.list_first)
        .take(rows)
    {
        let figures = current.and_then(|c| c.samples.iter().find(|s| s.name == sample.name));
        let mark = match (figures, sample.label) {
            (Some(f), Some(label)) if f.predicted == label => Span::raw("✓ ").green(),
            (Some(_), Some(_)) => Span::raw("✗ ").red(),
            _ => Span::raw("  "),
        };
        let prob = figures.map_or(String::new(), |f| format!("{:.2}", f.target_prob));
        let width = (area.width as usize).saturating_sub(8);
        let name: String = sample.name.chars().take(width).collect();
        let style = if i == app.sample {
            Style::new().reversed()
        } else {
            Style::new()
        };
        lines.push(Line::from(vec![
            mark,
            Span::styled(format!("{name:<width$}"), style),
            Span::raw(format!("{prob:>5}")),
        ]));
    }
    frame.render_widget(Paragraph::new(lines), area);
}

fn info(app: &App) -> Vec<Line<'static>> {
    let Some(current) = app.current() else {
        return vec![];
    };
    let Some(f) = app.figures(current) else {
        return vec![Line::from("no maps for this sample yet").dark_gray()];
    };
    let method = app.method.name();
    let changed = if f.predicted_changed == Some(true) {
        " (changed)"
    } else {
        ""
    };
    let mut first = format!(
        "pred {} {:.2}{changed} · target {} {:.2}",
        app.class_name(f.predicted),
        f.probs.get(f.predicted).copied().unwrap_or(0.0),
        app.class_name(f.target),
        f.target_prob
    );
    if let (Some(energy), Some(hit)) = (
        f.box_energy.as_ref().and_then(|m| m.get(method)),
        f.pointing_hit.as_ref().and_then(|m| m.get(method)),
    ) {
        first.push_str(&format!(
            " · box {energy:.2} {}",
            if *hit { "hit" } else { "miss" }
        ));
    }
    let second = match f.drift.as_ref().and_then(|d| d.get(method)) {
        Some(d) => format!(
            "drift: 1−corr {:.2}, top-20% IoU {:.2}",
            d.one_minus_corr, d.top20_iou
        ),
        None => "first epoch: no drift yet".into(),
    };
    let mut lines = vec![Line::from(first), Line::from(second).dark_gray()];
    lines.extend(trust_line(f, method));
    let events: Vec<String> = app
        .events(current)
        .iter()
        .map(|e| format!("{} ({})", e.kind.name(), e.detail))
        .collect();
    if !events.is_empty() {
        lines.push(Line::from(format!("! {}", events.join("; "))).yellow());
    }
    lines
}

/// Whether any checkpoint has trust figures or events: the info lines make room.
fn has_trust(app: &App) -> bool {
    app.runs.iter().flat_map(|r| &r.checkpoints).any(|c| {
        !c.events.is_empty()
            || c.samples
                .iter()
                .any(|f| f.metrics.is_some() || f.sanity.is_some())
    })
}

/// The map's faithfulness figures and sanity verdict, once measured.
fn trust_line(f: &SampleFigures, method: &str) -> Option<Line<'static>> {
    let metrics = f.metrics.as_ref().and_then(|m| m.get(method));
    let sanity = f.sanity.as_ref().and_then(|s| s.get(method));
    if metrics.is_none() && sanity.is_none() {
        return None;
    }
    let mut spans = vec![Span::raw("trust:").dark_gray()];
    for metric in Metric::ALL {
        if let Some(v) = metrics.and_then(|m| m.get(metric)) {
            spans.push(Span::raw(format!(" {} {v:.2}", metric.info().short)));
        }
    }
    if let Some(sanity) = sanity {
        let flags = sanity.flags();
        spans.push(if flags.is_empty() {
            Span::raw(" · sane").green()
        } else {
            Span::raw(format!(" · {}", flags.join(", "))).red()
        });
    }
    Some(Line::from(spans))
}

fn draw_grid_names(
    frame: &mut Frame,
    app: &App,
    areas: &Areas,
    drawn_in: &dyn Fn(Pane) -> Option<Rect>,
) {
    for (cell, sample) in &areas.grid {
        let image = cell_image(*cell);
        let name = &app.samples[*sample].name;
        let style = if *sample == app.sample {
            Style::new().reversed()
        } else {
            Style::new().dark_gray()
        };
        // Right under the image (images keep their proportions, so may not fill).
        let below =
            drawn_in(Pane::Grid(*sample)).map_or(image.y + image.height, |d| d.y + d.height);
        let label = Rect {
            y: below.min(cell.y + cell.height.saturating_sub(1)),
            height: 1,
            ..*cell
        };
        frame.render_widget(Paragraph::new(Span::styled(name.clone(), style)), label);
    }
}

fn draw_timeline(frame: &mut Frame, app: &App, areas: &Areas) {
    if areas.timeline_title.height == 0 {
        return;
    }
    let errors = app
        .run()
        .checkpoints
        .iter()
        .filter(|c| c.status == Status::Error)
        .count();
    let mut title = vec![Span::raw(format!("epochs ({})", app.epochs().len())).bold()];
    if errors > 0 {
        title.push(Span::raw(format!(" · {errors} unreadable")).red());
    }
    if areas.charts.height > 0 {
        title.push(Span::raw("   charts: ").dark_gray());
        title.push(Span::raw("━ run mean").fg(RUN_COLOUR));
        title.push(Span::raw("  ━ this sample").fg(SAMPLE_COLOUR));
    }
    frame.render_widget(Paragraph::new(Line::from(title)), areas.timeline_title);
    let epochs = app.epochs();
    let current = app.epoch_index();
    for (rect, index) in &areas.timeline {
        let checkpoint = epochs[*index];
        let style = if Some(*index) == current {
            Style::new().reversed()
        } else {
            Style::new().dark_gray()
        };
        let label = Rect::new(rect.x, rect.y + rect.height, rect.width, 1);
        // `!` marks an epoch with an event for the shown sample (`n` goes there).
        let events = app.events(checkpoint);
        let mark = if events.is_empty() { "" } else { "!" };
        let text = format!(
            "{:^w$}",
            format!("{}{mark}", App::epoch_label(checkpoint)),
            w = rect.width as usize
        );
        let style = if events.is_empty() || Some(*index) == current {
            style
        } else {
            style.fg(Color::Yellow)
        };
        frame.render_widget(Paragraph::new(Span::styled(text, style)), label);
    }
}

const RUN_COLOUR: Color = Color::LightCyan;
const SAMPLE_COLOUR: Color = Color::Yellow;

/// The run's value of a charted figure at a checkpoint (the mean over the samples that
/// have one), and the shown sample's.
fn run_value(figure: &Figure, app: &App, c: &CheckpointReport) -> Option<f32> {
    figure.mean(c, app.method, |_, name| label_of(app, name))
}

fn sample_value(figure: &Figure, app: &App, c: &CheckpointReport) -> Option<f32> {
    let f = app.figures(c)?;
    (figure.value)(f, app.method, label_of(app, &f.name))
}

fn label_of(app: &App, name: &str) -> Option<usize> {
    app.samples.iter().find(|s| s.name == name)?.label
}

/// The charts this run has data for: box figures only with boxes, "right" only with
/// labels.
fn chart_rows(app: &App) -> Vec<&'static Figure> {
    let boxes = app.samples.iter().any(|s| s.has_box);
    let labels = app.samples.iter().any(|s| s.label.is_some());
    let measured = |has: fn(&SampleFigures) -> bool| {
        app.run()
            .checkpoints
            .iter()
            .any(|c| c.samples.iter().any(has))
    };
    CHARTED
        .into_iter()
        .filter(|c| match c.needs {
            Needs::Nothing => true,
            Needs::Boxes => boxes,
            Needs::Labels => labels,
            Needs::Metric(_) => measured(|f| f.metrics.is_some()),
            Needs::Sanity => measured(|f| f.sanity.is_some()),
        })
        .collect()
}

/// Line charts under the timeline, each epoch at its thumbnail's centre: the run's mean
/// and the shown sample's value, with both values at the shown epoch on the right.
fn draw_charts(frame: &mut Frame, app: &App, areas: &Areas) {
    let area = areas.charts;
    let mut rows = chart_rows(app);
    // The first charts, as many as there are lines.
    rows.truncate(area.height as usize);
    if rows.is_empty() {
        return;
    }
    let height = area.height / rows.len() as u16;
    let plot = plot_columns(area);
    let epochs = app.epochs();
    let current = app.epoch_index();
    // Epochs shown and where: the timeline's, at its thumbnails' centres.
    let columns: Vec<(usize, f64)> = areas
        .timeline
        .iter()
        .map(|(rect, index)| {
            (
                *index,
                f64::from(rect.x - plot.x) + f64::from(THUMB.0) / 2.0,
            )
        })
        .collect();
    for (row, chart) in rows.iter().enumerate() {
        let y = area.y + row as u16 * height;
        let line = Rect::new(area.x, y, area.width, height);
        let name = Rect::new(area.x, y, plot.x - area.x, 1);
        frame.render_widget(Paragraph::new(chart.short).dark_gray(), name);
        let at = |f: &dyn Fn(&CheckpointReport) -> Option<f32>| -> Vec<Option<(f64, f64)>> {
            columns
                .iter()
                .map(|(i, x)| f(epochs[*i]).map(|v| (*x, f64::from(v.min(chart.max)))))
                .collect()
        };
        let run = at(&|c| run_value(chart, app, c));
        let sample = at(&|c| sample_value(chart, app, c));
        let cursor = current
            .and_then(|i| columns.iter().find(|(index, _)| *index == i))
            .map(|(_, x)| *x);
        let max = f64::from(chart.max);
        let width = f64::from(plot.width);
        frame.render_widget(
            Canvas::default()
                .marker(Marker::Braille)
                .x_bounds([0.0, width])
                .y_bounds([0.0, max])
                .paint(|ctx| {
                    if let Some(x) = cursor {
                        ctx.draw(&canvas::Line::new(x, 0.0, x, max, Color::DarkGray));
                    }
                    for (series, colour) in [(&sample, SAMPLE_COLOUR), (&run, RUN_COLOUR)] {
                        plot_series(ctx, series, colour);
                    }
                }),
            Rect {
                height,
                ..Rect::new(plot.x, y, plot.width, height)
            },
        );
        let value = |v: Option<f32>| v.map_or("  - ".to_string(), |v| format!("{v:>4.2}"));
        let shown = current.map(|i| epochs[i]);
        let values = Line::from(vec![
            Span::raw(value(shown.and_then(|c| run_value(chart, app, c)))).fg(RUN_COLOUR),
            Span::raw(" "),
            Span::raw(value(shown.and_then(|c| sample_value(chart, app, c)))).fg(SAMPLE_COLOUR),
        ]);
        let right = Rect::new(
            plot.x + plot.width + 1,
            y,
            (line.x + line.width).saturating_sub(plot.x + plot.width + 1),
            1,
        );
        frame.render_widget(Paragraph::new(values), right);
    }
}

/// Joins neighbouring points; a lone point is a dot.
pub(super) fn plot_series(ctx: &mut canvas::Context, series: &[Option<(f64, f64)>], colour: Color) {
    for (i, point) in series.iter().enumerate() {
        let Some((x, y)) = *point else { continue };
        match series.get(i + 1).copied().flatten() {
            Some((x2, y2)) => ctx.draw(&canvas::Line::new(x, y, x2, y2, colour)),
            None => ctx.draw(&canvas::Points {
                coords: &[(x, y)],
                color: colour,
            }),
        }
    }
}

/// What happens now (computing, a notice or an error) first, where a narrow terminal
/// keeps it, and whose camwatch writes the results when another one does; then the
/// device, the graphics, the run.
fn status(app: &App) -> Line<'static> {
    let mut parts = vec![Span::raw(" ")];
    if let Some(w) = &app.run().working {
        let name = w
            .path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into());
        let more = if w.queued > 0 {
            format!(", +{} queued", w.queued)
        } else {
            String::new()
        };
        let progress = format!("computing {name} {}/{}{more} · ", w.done, w.total);
        parts.push(Span::raw(progress).yellow());
    }
    if let Some(notice) = &app.notice {
        parts.push(Span::raw(format!("{notice} · ")).cyan());
    } else if let Some(error) = &app.last_error {
        parts.push(Span::raw(format!("{error} · ")).red());
    }
    // Whose the results are, before the set-up: 80 columns keep it.
    if let Some(writer) = &app.run().following {
        let text = crate::paths::for_terminal(&following(writer.as_ref()));
        parts.push(Span::raw(format!("{text} · ")).yellow());
    }
    parts.push(Span::raw(format!(
        "{} · {} · {} ",
        app.device,
        app.graphics,
        app.run().dir.display()
    )));
    if let Some(latest) = app.epochs().last() {
        parts.push(Span::raw(format!("· latest {} ", App::epoch_label(latest))));
    }
    parts.push(Span::raw("· ? help").dark_gray());
    Line::from(parts)
}

/// The help's lines: every key binding and mouse action, then how images are drawn.
pub fn help_lines(app: &App) -> Vec<(String, String)> {
    let mut lines: Vec<(String, String)> = KEYMAP
        .iter()
        .map(|b| (b.label.to_string(), b.help.to_string()))
        .collect();
    lines.extend(MOUSE.iter().map(|(k, h)| (k.to_string(), h.to_string())));
    lines.push((String::new(), String::new()));
    if app.runs.len() > 1 {
        // Narrow panes shorten it to `[2] .31✗ .12`.
        lines.push((
            "captions".into(),
            "[run] p(target) ✓/✗, box energy, hit/miss".into(),
        ));
    }
    lines.push(("images".into(), app.graphics.clone()));
    lines.push((String::new(), "maps are computed in the background".into()));
    lines
}

/// How many of the help's lines a screen `height` rows high cannot show at once (the
/// help scrolls by as many).
pub fn help_hidden(app: &App, height: u16) -> u16 {
    (help_lines(app).len() as u16 + 2).saturating_sub(height)
}

fn draw_help(frame: &mut Frame, app: &App) {
    let lines = help_lines(app);
    let area = frame.area();
    let width = 62.min(area.width);
    let height = (lines.len() as u16 + 2).min(area.height);
    let hidden = help_hidden(app, area.height);
    let popup = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    );
    let lines: Vec<Line> = lines
        .into_iter()
        .map(|(keys, what)| {
            Line::from(vec![
                Span::styled(
                    format!(" {keys:<12}"),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                Span::raw(what),
            ])
        })
        .collect();
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .scroll((app.help_first.min(hidden), 0))
            .block(Block::new().borders(Borders::ALL).title(if hidden > 0 {
                " Keys (↑↓ scroll) "
            } else {
                " Keys "
            })),
        popup,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::app::tests::app_with;
    use crate::tui::app::{Intent, Message};
    use crate::tui::graphics::{Graphics, Protocol};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    /// Renders the app at a size, with made-up images encoded as halfblocks (so the
    /// output is deterministic), and returns the screen's text.
    fn screen(app: &mut App, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        let plan = Plan::new(app, Rect::new(0, 0, width, height));
        app.clicks = plan.clicks(app);
        let graphics = Graphics {
            protocol: Protocol::Halfblocks,
            cell: (10, 20),
        };
        let pictures: Vec<_> = plan
            .slots
            .iter()
            .map(|slot| {
                let shade = (slot.request.key.sample() * 60 % 255) as u8;
                let image = image::RgbImage::from_fn(16, 16, |x, y| {
                    image::Rgb([shade, (x * 16) as u8, (y * 16) as u8])
                });
                graphics.encode(&image, None, slot.request.cells)
            })
            .collect();
        let refs: Vec<_> = pictures.iter().map(Option::as_ref).collect();
        terminal
            .draw(|frame| {
                draw(frame, app, &plan, &refs);
            })
            .unwrap();
        let buffer = terminal.backend().buffer();
        let mut text = String::new();
        for y in 0..height {
            for x in 0..width {
                text.push_str(buffer[(x, y)].symbol());
            }
            text.push('\n');
        }
        text
    }

    /// Compares with `tests/snapshots/NAME.txt`; `UPDATE_SNAPSHOTS=1` rewrites it.
    fn assert_snapshot(name: &str, actual: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/snapshots")
            .join(format!("{name}.txt"));
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_SNAPSHOTS=1 writes it)", path.display()));
        assert!(
            expected == actual,
            "screen differs from {}:\n{actual}",
            path.display()
        );
    }

    #[test]
    fn main_screen_at_80x24() {
        let mut app = app_with(6);
        app.update(Message::Key(crossterm::event::KeyEvent::from(
            crossterm::event::KeyCode::Right,
        )));
        let text = screen(&mut app, 80, 24);
        assert!(
            text.lines().next().unwrap().contains("sample 2/3 b"),
            "{text}"
        );
        assert!(text.contains("epoch 6 [6/6] ● follow"));
        assert!(text.contains("epochs (6)"));
        assert!(text.contains("p(target)"));
        assert!(
            text.lines()
                .last()
                .unwrap()
                .contains("cpu · halfblocks · run · latest 6")
        );
        assert_snapshot("main_80x24", &text);
    }

    #[test]
    fn grid_help_and_a_wide_screen() {
        let mut app = app_with(12);
        app.apply(Intent::ToggleGrid);
        let grid = screen(&mut app, 80, 24);
        let labels = grid
            .lines()
            .any(|l| l.split_whitespace().eq(["a", "b", "c"]));
        assert!(labels, "a row of sample names in\n{grid}");
        assert_eq!(app.clicks.grid.len(), 3);
        assert_snapshot("grid_80x24", &grid);
        app.apply(Intent::ToggleGrid);
        app.apply(Intent::ToggleHelp);
        let help = screen(&mut app, 120, 40);
        assert!(help.contains("Keys") && help.contains("animated GIF across epochs"));
        assert_snapshot("help_120x40", &help);
    }

    #[test]
    fn runs_side_by_side_at_100x30() {
        let mut app = crate::tui::side_by_side::tests::comparing();
        app.apply(Intent::PreviousEpoch);
        let text = screen(&mut app, 100, 30);
        assert!(
            text.contains("camwatch ⇆ 2/2 runs") && text.contains("epoch 4 [4/5]"),
            "{text}"
        );
        assert!(
            text.contains("[1] a p 0.75") && text.contains("[2] b p 0.75"),
            "{text}"
        );
        assert!(text.contains("[2] − [1]"), "{text}");
        assert_snapshot("compare_100x30", &text);
        for (w, h) in [(40, 10), (20, 5), (1, 1)] {
            screen(&mut app, w, h);
        }
    }

    #[test]
    fn tiny_terminals_do_not_break() {
        let mut app = app_with(3);
        for (w, h) in [(40, 10), (20, 5), (1, 1)] {
            screen(&mut app, w, h);
        }
        let empty = &mut app_with(0);
        let text = screen(empty, 80, 24);
        assert!(text.contains("no epoch yet") && text.contains("reading the history"));
    }
}
