//! Drawing: a layout computed from the state, the images each area needs, and widgets
//! that only read the state and the image cache (nothing here waits or writes).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Sparkline};
use ratatui_image::Image;

use super::app::{App, ClickMap};
use super::images::{ImageCache, ImageKey, ImageRequest, View};
use crate::cam::{Layer, Method, Target};
use crate::monitor::CheckpointReport;
use crate::monitor::history::Status;

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
    pub charts: Rect,
    pub status: Rect,
}

const LIST_WIDTH: u16 = 24;
const THUMB: (u16, u16) = (10, 4);

pub fn layout(area: Rect, app: &App) -> Areas {
    let roomy = area.height >= 20;
    let [header, main, timeline, charts, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(6),
        Constraint::Length(if roomy { THUMB.1 + 2 } else { 0 }),
        Constraint::Length(if roomy { 4 } else { 0 }),
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
        let [images, info] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(2)]).areas(right);
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
        let fit = (strip.width / (THUMB.0 + 1)).max(1) as usize;
        let epochs = app.epochs().len();
        let current = app.epoch_index().unwrap_or(0);
        let first = current
            .saturating_sub(fit / 2)
            .min(epochs.saturating_sub(fit));
        for (slot, index) in (first..epochs.min(first + fit)).enumerate() {
            let x = strip.x + slot as u16 * (THUMB.0 + 1);
            areas
                .timeline
                .push((Rect::new(x, strip.y, THUMB.0, THUMB.1), index));
        }
    }
    areas
}

/// Square-ish cells (a cell is about twice as tall as wide) for `count` samples.
fn grid_cells(area: Rect, count: usize) -> Vec<(Rect, usize)> {
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
        }
    }
}

fn key(app: &App, sample: usize, view: View, checkpoint: Option<&CheckpointReport>) -> ImageKey {
    let with_box = app.show_box && app.samples.get(sample).is_some_and(|s| s.has_box);
    match (view, checkpoint) {
        (View::Image, _) | (_, None) => ImageKey {
            sample,
            view: View::Image,
            hash: String::new(),
            method: Method::GradCam,
            layer: Layer::LAST,
            target: Target::Predicted,
            with_box,
        },
        (view, Some(c)) => ImageKey {
            sample,
            view,
            hash: c.hash.clone(),
            method: app.method,
            layer: app.layer,
            target: app.target,
            with_box: with_box && view == View::Overlay,
        },
    }
}

/// A grid cell's image area (its last row is the name).
fn cell_image(cell: Rect) -> Rect {
    Rect {
        height: cell.height.saturating_sub(1),
        ..cell
    }
}

/// The images the frame shows, most important first.
pub fn wanted(app: &App, areas: &Areas) -> Vec<ImageRequest> {
    let current = app.current();
    let mut out = Vec::new();
    if !app.grid {
        if let Some(c) = current {
            out.push(request_for(
                app,
                app.sample,
                View::Overlay,
                Some(c),
                areas.overlay,
            ));
        }
        out.push(request_for(app, app.sample, View::Image, None, areas.image));
    }
    if let Some(c) = current {
        for (cell, sample) in &areas.grid {
            out.push(request_for(
                app,
                *sample,
                View::Overlay,
                Some(c),
                cell_image(*cell),
            ));
        }
    }
    let epochs = app.epochs();
    for (rect, index) in &areas.timeline {
        out.push(request_for(
            app,
            app.sample,
            View::Heat,
            Some(epochs[*index]),
            *rect,
        ));
    }
    out.retain(|r| r.cells.0 > 0 && r.cells.1 > 0);
    out
}

pub fn draw(frame: &mut Frame, app: &App, areas: &Areas, images: &ImageCache) {
    frame.render_widget(
        Paragraph::new(header(app, areas.header.width)).reversed(),
        areas.header,
    );
    if app.grid {
        draw_grid(frame, app, areas, images);
    } else {
        draw_list(frame, app, areas);
        let current = app.current();
        draw_image(
            frame,
            images,
            &request_for(app, app.sample, View::Image, None, areas.image),
            areas.image,
        );
        match current {
            Some(c) => {
                let request = request_for(app, app.sample, View::Overlay, Some(c), areas.overlay);
                draw_image(frame, images, &request, areas.overlay);
            }
            None => frame.render_widget(Paragraph::new(waiting(app)).dark_gray(), areas.overlay),
        }
        frame.render_widget(Paragraph::new(info(app)), areas.info);
    }
    draw_timeline(frame, app, areas, images);
    draw_charts(frame, app, areas.charts);
    frame.render_widget(Paragraph::new(status(app)), areas.status);
    if app.help {
        draw_help(frame);
    }
}

fn request_for(
    app: &App,
    sample: usize,
    view: View,
    checkpoint: Option<&CheckpointReport>,
    area: Rect,
) -> ImageRequest {
    ImageRequest {
        key: key(app, sample, view, checkpoint),
        cells: (area.width, area.height),
    }
}

/// Draws a cached image centred in `area`, or a placeholder while it is being made;
/// returns where the image went.
fn draw_image(
    frame: &mut Frame,
    images: &ImageCache,
    request: &ImageRequest,
    area: Rect,
) -> Option<Rect> {
    if area.width == 0 || area.height == 0 {
        return None;
    }
    match images.get(request) {
        Some(protocol) => {
            let size = protocol.size();
            let (w, h) = (size.width.min(area.width), size.height.min(area.height));
            let centred = Rect::new(
                area.x + (area.width - w) / 2,
                area.y + (area.height - h) / 2,
                w,
                h,
            );
            frame.render_widget(Image::new(protocol), centred);
            Some(centred)
        }
        None => {
            frame.render_widget(Paragraph::new("…").dark_gray(), area);
            None
        }
    }
}

fn waiting(app: &App) -> String {
    match &app.working {
        Some(w) => format!("computing {}…", w.path.display()),
        None if app.replayed => format!("waiting for a checkpoint in {}", app.dir.display()),
        None => "reading the history…".into(),
    }
}

/// The header, fitted to `width`: the title, then the sample's class name, then words
/// of the settings go first when it is narrow.
fn header(app: &App, width: u16) -> Line<'static> {
    let sample = app.samples.get(app.sample);
    let name = sample.map_or("-".to_string(), |s| s.name.clone());
    let label = sample
        .and_then(|s| s.label)
        .map(|l| format!(" ({})", app.class_name(l)))
        .unwrap_or_default();
    let epochs = app.epochs();
    let epoch = match (app.current(), app.epoch_index()) {
        (Some(c), Some(i)) => format!("epoch {} [{}/{}]", App::epoch_label(c), i + 1, epochs.len()),
        _ => "no epoch yet".into(),
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
    if fits(&format!(" camwatch {full}")) {
        return Line::from(vec![
            Span::styled(" camwatch ", Style::new().bold()),
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
    vec![Line::from(first), Line::from(second).dark_gray()]
}

fn draw_grid(frame: &mut Frame, app: &App, areas: &Areas, images: &ImageCache) {
    let current = app.current();
    for (cell, sample) in &areas.grid {
        let image = cell_image(*cell);
        let drawn = current.and_then(|c| {
            draw_image(
                frame,
                images,
                &request_for(app, *sample, View::Overlay, Some(c), image),
                image,
            )
        });
        let name = &app.samples[*sample].name;
        let style = if *sample == app.sample {
            Style::new().reversed()
        } else {
            Style::new().dark_gray()
        };
        // Right under the image (images keep their proportions, so may not fill).
        let below = drawn.map_or(image.y + image.height, |d| d.y + d.height);
        let label = Rect {
            y: below.min(cell.y + cell.height.saturating_sub(1)),
            height: 1,
            ..*cell
        };
        frame.render_widget(Paragraph::new(Span::styled(name.clone(), style)), label);
    }
}

fn draw_timeline(frame: &mut Frame, app: &App, areas: &Areas, images: &ImageCache) {
    if areas.timeline_title.height == 0 {
        return;
    }
    let errors = app
        .checkpoints
        .iter()
        .filter(|c| c.status == Status::Error)
        .count();
    let mut title = format!("epochs ({})", app.epochs().len());
    if errors > 0 {
        title.push_str(&format!(" · {errors} unreadable"));
    }
    frame.render_widget(Paragraph::new(title).bold(), areas.timeline_title);
    let epochs = app.epochs();
    let current = app.epoch_index();
    for (rect, index) in &areas.timeline {
        let checkpoint = epochs[*index];
        draw_image(
            frame,
            images,
            &request_for(app, app.sample, View::Heat, Some(checkpoint), *rect),
            *rect,
        );
        let style = if Some(*index) == current {
            Style::new().reversed()
        } else {
            Style::new().dark_gray()
        };
        let label = Rect::new(rect.x, rect.y + rect.height, rect.width, 1);
        let text = format!(
            "{:^w$}",
            App::epoch_label(checkpoint),
            w = rect.width as usize
        );
        frame.render_widget(Paragraph::new(Span::styled(text, style)), label);
    }
}

fn draw_charts(frame: &mut Frame, app: &App, area: Rect) {
    if area.height < 4 {
        return;
    }
    let epochs = app.epochs();
    let method = app.method.name();
    let series = |f: &dyn Fn(&crate::monitor::timeline::SampleFigures) -> Option<f32>| {
        epochs
            .iter()
            .map(|c| app.figures(c).and_then(f))
            .collect::<Vec<Option<f32>>>()
    };
    let has_box = app.samples.get(app.sample).is_some_and(|s| s.has_box);
    let mut rows: Vec<(&str, Vec<Option<f32>>, f32, Color)> = vec![(
        "p(target)",
        series(&|f| Some(f.target_prob)),
        1.0,
        Color::Green,
    )];
    if has_box {
        rows.push((
            "box energy",
            series(&|f| f.box_energy.as_ref()?.get(method).copied()),
            1.0,
            Color::Yellow,
        ));
    }
    rows.push((
        "drift",
        series(&|f| Some(f.drift.as_ref()?.get(method)?.one_minus_corr)),
        2.0,
        Color::Magenta,
    ));
    const LABEL: u16 = 11;
    const VALUE: u16 = 6;
    let width = area.width.saturating_sub(LABEL + VALUE) as usize;
    let first = epochs.len().saturating_sub(width);
    let current = app.epoch_index();
    for (row, (label, values, max, colour)) in rows.iter().enumerate() {
        let y = area.y + row as u16;
        let [name, spark, value] = Layout::horizontal([
            Constraint::Length(LABEL),
            Constraint::Min(1),
            Constraint::Length(VALUE),
        ])
        .areas(Rect::new(area.x, y, area.width, 1));
        frame.render_widget(Paragraph::new(*label).dark_gray(), name);
        let data: Vec<u64> = values[first..]
            .iter()
            .map(|v| v.map_or(0, |v| (v / max * 100.0).round().clamp(0.0, 100.0) as u64))
            .collect();
        frame.render_widget(
            Sparkline::default()
                .data(&data)
                .max(100)
                .style(Style::new().fg(*colour)),
            spark,
        );
        let shown = current.and_then(|i| values.get(i).copied().flatten());
        frame.render_widget(
            Paragraph::new(shown.map_or("-".into(), |v| format!("{v:>5.2}"))),
            value,
        );
    }
    // A caret under the shown epoch.
    if let Some(i) = current.filter(|i| *i >= first) {
        let x = area.x + LABEL + (i - first) as u16;
        if x < area.x + area.width {
            frame.render_widget(
                Paragraph::new("▲").cyan(),
                Rect::new(x, area.y + area.height - 1, 1, 1),
            );
        }
    }
}

fn status(app: &App) -> Line<'static> {
    let mut parts = vec![Span::raw(format!(
        " {} · {} ",
        app.device,
        app.dir.display()
    ))];
    if let Some(latest) = app.epochs().last() {
        parts.push(Span::raw(format!("· latest {} ", App::epoch_label(latest))));
    }
    if let Some(w) = &app.working {
        let name = w
            .path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into());
        let more = if w.queued > 0 {
            format!(", +{} queued", w.queued)
        } else {
            String::new()
        };
        let progress = format!("· computing {name} {}/{}{more} ", w.done, w.total);
        parts.push(Span::raw(progress).yellow());
    }
    if let Some(notice) = &app.notice {
        parts.push(Span::raw(format!("· {notice} ")).cyan());
    } else if let Some(error) = &app.last_error {
        parts.push(Span::raw(format!("· {error} ")).red());
    }
    parts.push(Span::raw("· ? help").dark_gray());
    Line::from(parts)
}

pub const HELP: [(&str, &str); 17] = [
    ("← → h l", "previous / next sample"),
    ("↑ ↓ k j [ ]", "next / previous epoch"),
    ("Home End", "first / latest epoch"),
    ("f", "follow the latest epoch"),
    ("m", "next CAM method"),
    ("y", "next layer (stage1…stage4)"),
    ("t", "target: predicted, label, each class"),
    ("g", "grid of all samples"),
    ("b", "object box on/off"),
    ("s", "snapshot PNGs: overlay, side by side, timeline"),
    ("a", "animated GIF across epochs"),
    ("click", "select a sample or an epoch"),
    ("wheel", "scrub epochs"),
    ("?", "this help"),
    ("Esc", "close the help or the grid; else quit"),
    ("q", "quit"),
    ("", "maps are computed in the background"),
];

fn draw_help(frame: &mut Frame) {
    let area = frame.area();
    let width = 62.min(area.width);
    let height = (HELP.len() as u16 + 2).min(area.height);
    let popup = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    );
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(keys, what)| {
            Line::from(vec![
                Span::styled(
                    format!(" {keys:<13}"),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                Span::raw(*what),
            ])
        })
        .collect();
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::new().borders(Borders::ALL).title(" Keys ")),
        popup,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::app::tests::app_with;
    use crate::tui::app::{Intent, Message};
    use crate::tui::images::encode;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui_image::picker::Picker;

    /// Renders the app at a size, with made-up images encoded as halfblocks (so the
    /// output is deterministic), and returns the screen's text.
    fn screen(app: &mut App, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        let areas = layout(Rect::new(0, 0, width, height), app);
        app.clicks = areas.clicks();
        let mut cache = ImageCache::default();
        let picker = Picker::halfblocks();
        for request in wanted(app, &areas) {
            let shade = (request.key.sample * 60 % 255) as u8;
            let image = image::RgbImage::from_fn(16, 16, |x, y| {
                image::Rgb([shade, (x * 16) as u8, (y * 16) as u8])
            });
            let protocol = encode(&picker, image, None, request.cells).unwrap();
            cache.insert(request, protocol);
        }
        terminal
            .draw(|frame| draw(frame, app, &areas, &cache))
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
                .contains("cpu · run · latest 6")
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
