//! The single-run screen: the sample list, the sample and its overlay (or the grid of
//! all samples), the info lines, the timeline of thumbnails, the charts and the status
//! line.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::widgets::canvas::{self, Canvas};

use super::{
    Areas, Pane, Plan, Slot, cell_image, grid_cells, header, map_id, overlay_key, plot_columns,
    plot_series, with_box,
};
use crate::cam::metrics::Metric;
use crate::figures::{CHARTED, Figure, Needs};
use crate::monitor::CheckpointReport;
use crate::monitor::history::Status;
use crate::monitor::lock::Holder;
use crate::monitor::timeline::SampleFigures;
use crate::tui::app::{App, ClickMap};
use crate::tui::images::{ImageKey, ImageRequest, Picture};

/// The single-run screen's frame: the sample and its overlay (or the grid), the
/// timeline's thumbnails.
pub(super) fn plan(app: &App, screen: Rect) -> Plan {
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

/// The single-run screen's text, around the images already drawn (`drawn`: where each
/// slot's image went).
pub(super) fn draw(frame: &mut Frame, app: &App, plan: &Plan, drawn: &[Option<Rect>]) {
    let areas = &plan.areas;
    let drawn_in = |pane: Pane| {
        plan.slots
            .iter()
            .zip(drawn)
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
}

const LIST_WIDTH: u16 = 24;

const THUMB: (u16, u16) = (10, 4);

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

/// What the status line says of a run followed read-only.
fn following(writer: Option<&Holder>) -> String {
    match writer {
        Some(holder) => format!("read-only: {holder} writes it"),
        None => "read-only: nobody writes it now".into(),
    }
}

fn waiting(app: &App) -> String {
    let run = app.run();
    match &run.working {
        Some(w) => format!("computing {}…", w.path.display()),
        None if run.replayed => format!("waiting for a checkpoint in {}", run.dir.display()),
        None => "reading the history…".into(),
    }
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
