//! Drawing: a plan computed once per frame from the state (where everything goes and
//! which image each pane shows), and widgets that only read the state, the plan and
//! the encoded images (nothing here waits or writes to the terminal).
//!
//! This module is the frame's contract, which both screens fill: [`Areas`], [`Pane`],
//! [`Slot`], [`Plan`], [`draw`], and the helpers they share (image keys, grid cells,
//! plot columns, the header, the help). Each screen is a module of its own:
//! [`single`] (one run) and [`side_by_side`] (comparing runs).

mod side_by_side;
mod single;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::canvas;
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui_image::Image;

use super::app::{App, ClickMap};
use super::graphics::{self, Body, Encoded};
use super::images::{ImageKey, ImageRequest, Picture, RunMap};
use super::keymap::{KEYMAP, MOUSE};
use crate::cam::Target;
use crate::monitor::CheckpointReport;
use crate::monitor::maps::MapId;

pub use single::layout;

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

/// The charts' names to the left of the timeline and the plots.
const GUTTER: u16 = 11;
/// The charts' values at the shown epoch, right of the plots.
const VALUES: u16 = 12;

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
            side_by_side::plan(app, screen)
        } else {
            single::plan(app, screen)
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
    let mut places = Vec::new();
    let mut drawn = Vec::with_capacity(plan.slots.len());
    for (slot, picture) in plan.slots.iter().zip(pictures) {
        drawn.push(draw_image(frame, *picture, slot.area, &mut places));
    }
    if app.comparing() {
        side_by_side::draw(frame, app, plan, &drawn);
    } else {
        single::draw(frame, app, plan, &drawn);
    }
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
    let (method, layer) = (app.method, app.layer_name());
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
    use crate::tui::app::Message;
    use crate::tui::app::tests::app_with;
    use crate::tui::graphics::{Graphics, Protocol};
    use crate::tui::intent::Intent;
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
        let mut app = side_by_side::tests::comparing();
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
