//! The comparing screen: several runs at one epoch. The sample, each shown run's
//! overlay and the signed difference of two runs' maps side by side; under them the
//! runs (colour, first epoch on the object), the epochs of all runs on one axis, and
//! run-level charts with one line per run.
//!
//! ```text
//! ┌ header ──────────────────────────────────────────────────────────┐
//! │ samples │ image │ [1] overlay │ [2] overlay │ [2] − [1]           │
//! │ legend: [1] plain · on object from 9   [2] shortcut · never      │
//! │ axis:   1   2   3 … ▮7▮ … 16                                      │
//! │ charts: one line per run                              values     │
//! └ status ──────────────────────────────────────────────────────────┘
//! ```

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::widgets::canvas::{self, Canvas};

use super::{self as view, Areas, Pane, Plan, Slot};
use crate::compare::{self, FIGURES, PALETTE};
use crate::monitor::CheckpointReport;
use crate::monitor::timeline;
use crate::tui::app::{App, ClickMap, RUNS_PER_PAGE};
use crate::tui::images::{ImageKey, ImageRequest, Picture};

const LIST_WIDTH: u16 = 22;

/// A run's colour, the same as in `camwatch report`.
pub fn colour(run: usize) -> Color {
    let [r, g, b] = PALETTE[run % PALETTE.len()];
    Color::Rgb(r, g, b)
}

fn layout(area: Rect, app: &App) -> Areas {
    let roomy = area.height >= 20;
    let rows = FIGURES.len() as u16;
    // Charts take what the images can spare: the panes keep 12 rows. Side by side the
    // images are narrow, so lines two rows high come sooner than on one run's screen.
    let spare = area.height.saturating_sub(4 + 12);
    let chart_height = match (roomy, area.height >= 34) {
        (false, _) => 0,
        (true, true) => (2 * rows).min(spare),
        (true, false) => rows.min(spare),
    };
    let areas = layout_with(area, app, chart_height);
    // Rows the panes leave empty (their images as wide as the cells allow) go to the
    // charts, up to four rows a chart.
    let unused = unused_rows(&areas.panes);
    if roomy && unused >= rows {
        let more = (chart_height + unused / rows * rows).min(4 * rows);
        return layout_with(area, app, more);
    }
    areas
}

/// Rows of the panes' cells that their square images (a cell about twice as tall as
/// wide) leave empty, summed over the rows of cells.
fn unused_rows(panes: &[(Rect, Pane)]) -> u16 {
    let mut rows: Vec<(u16, u16)> = Vec::new();
    for (cell, _) in panes {
        let side = (cell.width / 2).min(cell.height.saturating_sub(1));
        let unused = cell.height.saturating_sub(1 + side);
        match rows.iter_mut().find(|(y, _)| *y == cell.y) {
            Some((_, least)) => *least = (*least).min(unused),
            None => rows.push((cell.y, unused)),
        }
    }
    rows.iter().map(|(_, unused)| unused).sum()
}

fn layout_with(area: Rect, app: &App, chart_height: u16) -> Areas {
    let roomy = area.height >= 20;
    let [header, main, legend, axis, charts, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(4),
        Constraint::Length(1),
        Constraint::Length(u16::from(roomy)),
        Constraint::Length(chart_height),
        Constraint::Length(1),
    ])
    .areas(area);
    let [list, right] = Layout::horizontal([
        Constraint::Length(LIST_WIDTH.min(main.width / 4)),
        Constraint::Min(10),
    ])
    .areas(main);
    let rows = list.height.saturating_sub(1) as usize;
    let mut panes = vec![Pane::Image];
    panes.extend(app.shown().into_iter().map(Pane::Run));
    if app.difference_pair().is_some() {
        panes.push(Pane::Difference);
    }
    let cells = view::grid_cells(right, panes.len());
    Areas {
        header,
        list,
        list_first: app.sample.saturating_sub(rows.saturating_sub(1)),
        charts,
        status,
        panes: cells
            .into_iter()
            .map(|(cell, i)| (cell, panes[i]))
            .collect(),
        legend,
        axis,
        ..Areas::default()
    }
}

/// The image area of a pane's cell (its last row is the caption).
fn image_area(cell: Rect) -> Rect {
    Rect {
        height: cell.height.saturating_sub(1),
        ..cell
    }
}

pub fn plan(app: &App, screen: Rect) -> Plan {
    let areas = layout(screen, app);
    let sample = app.sample;
    let mut slots = Vec::new();
    for (cell, pane) in &areas.panes {
        let key = match *pane {
            Pane::Image => Some(ImageKey {
                picture: Picture::Image(sample),
                with_box: view::with_box(app, sample),
            }),
            Pane::Run(run) => app.at(run).map(|c| view::overlay_key(app, run, sample, c)),
            Pane::Difference => app.difference_pair().and_then(|(a, b)| {
                Some(view::difference_key(
                    app,
                    sample,
                    (a, app.at(a)?),
                    (b, app.at(b)?),
                ))
            }),
            _ => None,
        };
        let area = image_area(*cell);
        if let Some(key) = key
            && area.width > 0
            && area.height > 0
        {
            slots.push(Slot {
                pane: *pane,
                area,
                request: ImageRequest {
                    key,
                    cells: (area.width, area.height),
                },
            });
        }
    }
    Plan {
        screen,
        areas,
        slots,
    }
}

/// Where clicks go: the sample list, and the axis with the charts under it.
pub fn clicks(app: &App, areas: &Areas) -> ClickMap {
    let mut clicks = areas.clicks();
    let plot = view::plot_columns(Rect {
        height: areas.axis.height + areas.charts.height,
        ..areas.axis
    });
    clicks.axis = (plot.height > 0).then(|| (plot, app.axis().len()));
    clicks
}

pub fn draw(frame: &mut Frame, app: &App, plan: &Plan, drawn: &[Option<Rect>]) {
    let areas = &plan.areas;
    frame.render_widget(
        Paragraph::new(view::header(app, areas.header.width)).reversed(),
        areas.header,
    );
    draw_list(frame, app, areas.list, areas.list_first);
    let mut pane_captions: Vec<Vec<Line>> = areas
        .panes
        .iter()
        .map(|(_, pane)| captions(app, *pane))
        .collect();
    // Every run's caption in the same form: the longest that fits them all.
    let run_form = areas
        .panes
        .iter()
        .zip(&pane_captions)
        .filter(|((_, pane), _)| matches!(pane, Pane::Run(_)))
        .map(|((cell, _), forms)| longest_fitting(forms, cell.width))
        .max()
        .unwrap_or(0);
    for ((cell, pane), forms) in areas.panes.iter().zip(&mut pane_captions) {
        let at = plan
            .slots
            .iter()
            .zip(drawn)
            .find(|(s, _)| s.pane == *pane)
            .and_then(|(_, d)| *d);
        let image = image_area(*cell);
        if at.is_none() && image.height > 0 {
            // In the middle of where the image would be, over as many rows as it needs.
            let lines = wrap_words(&placeholder(app, *pane), image.width);
            let height = (lines.len() as u16).min(image.height);
            let middle = Rect {
                y: image.y + (image.height - height) / 2,
                height,
                ..image
            };
            let lines: Vec<Line> = lines.into_iter().map(Line::from).collect();
            let text = Paragraph::new(lines).dark_gray().centered();
            frame.render_widget(text, middle);
        }
        // Right under the image (images keep their proportions, so may not fill), or
        // where a square one would end.
        let side = (image.width / 2).min(image.height);
        let below = at.map_or(image.y + (image.height + side) / 2, |d| d.y + d.height);
        let caption = Rect {
            y: below.min(cell.y + cell.height.saturating_sub(1)),
            height: 1,
            ..*cell
        };
        let form = match pane {
            Pane::Run(_) => run_form,
            _ => longest_fitting(forms, cell.width),
        };
        frame.render_widget(Paragraph::new(forms.swap_remove(form)), caption);
    }
    frame.render_widget(Paragraph::new(legend(app)), areas.legend);
    draw_axis(frame, app, areas);
    draw_charts(frame, app, areas);
    frame.render_widget(Paragraph::new(status(app)), areas.status);
}

/// What a pane without its image says.
fn placeholder(app: &App, pane: Pane) -> String {
    let epoch = app.cursor_epoch();
    match pane {
        Pane::Run(run) if app.at(run).is_none() => {
            let view = &app.runs[run];
            match (epoch, &view.working) {
                (_, Some(w)) if !view.replayed || epoch.is_none() => {
                    format!("computing {}…", w.path.display())
                }
                (Some(e), _) => format!("no epoch {e} in this run"),
                (None, _) if view.replayed => "no checkpoint yet".into(),
                (None, _) => "reading the history…".into(),
            }
        }
        Pane::Difference => match (epoch, app.difference_pair()) {
            (Some(e), Some((a, b))) => match [a, b].into_iter().find(|&r| app.at(r).is_none()) {
                Some(r) => format!("no epoch {e} in [{}] {}", r + 1, app.runs[r].name),
                None => "…".into(),
            },
            _ => "…".into(),
        },
        _ => "…".into(),
    }
}

/// The captions a pane can have, longest first: `[2] shortcut p 0.31 ✗ box 0.12 miss`
/// under a run's overlay, what is differenced under the difference (the legend names
/// the runs, so narrow panes drop the name first, then the words).
fn captions(app: &App, pane: Pane) -> Vec<Line<'static>> {
    match pane {
        Pane::Image => vec![Line::from("image").dark_gray()],
        Pane::Run(run) => run_captions(app, run),
        Pane::Difference => match app.difference_pair() {
            Some((a, b)) => {
                let tag = |r: usize| Span::raw(format!("[{}]", r + 1)).fg(colour(r)).bold();
                let minus = || vec![tag(b), Span::raw(" − "), tag(a)];
                let mut full = minus();
                full.extend([
                    Span::raw(" (red: "),
                    Span::raw(format!("[{}]", b + 1)).fg(colour(b)),
                    Span::raw(" more)"),
                ]);
                vec![Line::from(full), Line::from(minus())]
            }
            None => vec![Line::default()],
        },
        _ => vec![Line::default()],
    }
}

/// The first of `forms` no wider than `width`, or the last.
fn longest_fitting(forms: &[Line], width: u16) -> usize {
    let fits = forms
        .iter()
        .position(|line| line.width() <= usize::from(width));
    fits.unwrap_or(forms.len() - 1)
}

/// A run's caption in its four forms, longest first (four for every run, so that all
/// can be drawn in one form).
fn run_captions(app: &App, run: usize) -> Vec<Line<'static>> {
    let name = run_tag(app, run);
    let number = Span::raw(format!("[{}]", run + 1)).fg(colour(run)).bold();
    let Some(f) = app.at(run).and_then(|c| app.figures(c)) else {
        let number = Line::from(number);
        return vec![Line::from(name), number.clone(), number.clone(), number];
    };
    let right = app
        .samples
        .get(app.sample)
        .and_then(|s| s.label)
        .map_or("", |l| if f.predicted == l { " ✓" } else { " ✗" });
    let method = app.method.name();
    let on_box = f
        .box_energy
        .as_ref()
        .and_then(|m| m.get(method))
        .zip(f.pointing_hit.as_ref().and_then(|m| m.get(method)));
    // `p 0.31 ✓ box 0.12 hit`, then `p .31 ✓ box .12 hit`, then `.31✓ .12`.
    let with_words = |number: &dyn Fn(f32) -> String| {
        format!(
            " p {}{right}{}",
            number(f.target_prob),
            on_box.map_or(String::new(), |(energy, hit)| format!(
                " box {} {}",
                number(*energy),
                if *hit { "hit" } else { "miss" }
            ))
        )
    };
    let short = |x: f32| format!("{x:.2}").trim_start_matches('0').to_owned();
    let words = with_words(&|x| format!("{x:.2}"));
    let terse = format!(
        " {}{}{}",
        short(f.target_prob),
        right.trim_start(),
        on_box.map_or(String::new(), |(energy, _)| format!(" {}", short(*energy)))
    );
    vec![
        Line::from(vec![name, Span::raw(words.clone())]),
        Line::from(vec![number.clone(), Span::raw(words)]),
        Line::from(vec![number.clone(), Span::raw(with_words(&short))]),
        Line::from(vec![number, Span::raw(terse)]),
    ]
}

/// `text` broken at spaces into lines of at most `width` columns (a longer word is
/// cut by the widget).
fn wrap_words(text: &str, width: u16) -> Vec<String> {
    let width = usize::from(width.max(1));
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_owned()),
        }
    }
    lines
}

/// `[2] shortcut` in the run's colour.
fn run_tag(app: &App, run: usize) -> Span<'static> {
    Span::raw(format!("[{}] {}", run + 1, app.runs[run].name))
        .fg(colour(run))
        .bold()
}

/// Samples, each with a mark per shown run at the shown epoch: ✓ right, ✗ wrong,
/// · no maps.
fn draw_list(frame: &mut Frame, app: &App, area: Rect, first: usize) {
    if area.width == 0 {
        return;
    }
    let shown = app.shown();
    let at: Vec<(usize, Option<&CheckpointReport>)> =
        shown.iter().map(|&r| (r, app.at(r))).collect();
    let mut lines = vec![Line::from("samples").bold()];
    let marks_width = shown.len().min(8);
    let rows = area.height.saturating_sub(1) as usize;
    for (i, sample) in app.samples.iter().enumerate().skip(first).take(rows) {
        let mut spans: Vec<Span> = at
            .iter()
            .take(marks_width)
            .map(|(run, c)| {
                let f = c.and_then(|c| c.samples.iter().find(|f| f.name == sample.name));
                let mark = match (f, sample.label) {
                    (Some(f), Some(l)) if f.predicted == l => "✓",
                    (Some(_), Some(_)) => "✗",
                    _ => "·",
                };
                Span::raw(mark).fg(colour(*run))
            })
            .collect();
        let width = (area.width as usize).saturating_sub(marks_width + 1);
        let name: String = sample.name.chars().take(width).collect();
        let style = if i == app.sample {
            Style::new().reversed()
        } else {
            Style::new()
        };
        spans.push(Span::raw(" "));
        spans.push(Span::styled(name, style));
        lines.push(Line::from(spans));
    }
    frame.render_widget(Paragraph::new(lines), area);
}

/// Each run: its key, name and colour, and the first epoch from which its attention is
/// on the object ([`timeline::first_on_object`]); hidden runs dimmed.
fn legend(app: &App) -> Line<'static> {
    let mut spans = Vec::new();
    let page = app.run_page * RUNS_PER_PAGE..(app.run_page + 1) * RUNS_PER_PAGE;
    // First, where a wide legend is cut off.
    if app.runs.len() > RUNS_PER_PAGE {
        spans.push(
            Span::raw(format!(
                "runs {}–{} of {} (r: next)   ",
                page.start + 1,
                page.end.min(app.runs.len()),
                app.runs.len()
            ))
            .dark_gray(),
        );
    }
    for (run, view) in app.runs.iter().enumerate() {
        // Runs of other pages are named by `r` (and counted here), not listed.
        if !page.contains(&run) && !view.shown {
            continue;
        }
        if !view.shown {
            spans.push(Span::raw(format!("[{}] {} hidden  ", run + 1, view.name)).dark_gray());
            continue;
        }
        spans.push(run_tag(app, run));
        let on = match timeline::first_on_object(&view.checkpoints, app.method) {
            Some(e) => format!(" on object from {e}"),
            None if app.samples.iter().any(|s| s.has_box) => " never on object".into(),
            None => String::new(),
        };
        spans.push(Span::raw(on));
        if view.following.is_some() {
            spans.push(Span::raw(" (read-only)").dark_gray());
        }
        spans.push(Span::raw("   "));
    }
    Line::from(spans)
}

/// Where axis position `i` of `count` is drawn, in the plot's own x (0 … width).
fn x_of(i: usize, count: usize, width: u16) -> f64 {
    let span = f64::from(width.saturating_sub(1)).max(1.0);
    if count <= 1 {
        return span / 2.0;
    }
    i as f64 / (count - 1) as f64 * span
}

/// The epochs of all shown runs, spread over the plots' width: the shown one, the
/// first and the last always, others where they fit.
fn draw_axis(frame: &mut Frame, app: &App, areas: &Areas) {
    let area = areas.axis;
    if area.height == 0 {
        return;
    }
    let plot = view::plot_columns(area);
    let axis = app.axis();
    let current = app.axis_index();
    frame.render_widget(
        Paragraph::new(Span::raw("epoch").dark_gray()),
        Rect::new(area.x, area.y, plot.x - area.x, 1),
    );
    let mut order: Vec<usize> = current.into_iter().collect();
    order.extend([0, axis.len().saturating_sub(1)]);
    order.extend(1..axis.len());
    // Cells taken so far, to keep labels apart.
    let mut taken: Vec<(u16, u16)> = Vec::new();
    for i in order {
        let Some(epoch) = axis.get(i) else { continue };
        let text = epoch.to_string();
        let width = text.len() as u16;
        let centre = plot.x + x_of(i, axis.len(), plot.width).round() as u16;
        let x = centre
            .saturating_sub(width / 2)
            .clamp(plot.x, (plot.x + plot.width).saturating_sub(width));
        if taken.iter().any(|&(a, b)| x < b + 1 && a < x + width + 1) {
            continue;
        }
        taken.push((x, x + width));
        let style = if Some(i) == current {
            Style::new().reversed()
        } else {
            Style::new().dark_gray()
        };
        frame.render_widget(
            Paragraph::new(Span::styled(text, style)),
            Rect::new(x, area.y, width, 1),
        );
    }
}

/// A line's points (x, value), `None` where the run has no value.
type Series = Vec<Option<(f64, f64)>>;

/// One chart per run-level figure, one line per shown run, the shown epoch marked; the
/// shown runs' values there on the right.
fn draw_charts(frame: &mut Frame, app: &App, areas: &Areas) {
    let area = areas.charts;
    let rows = (FIGURES.len() as u16).min(area.height);
    if rows == 0 {
        return;
    }
    let height = area.height / rows;
    let plot = view::plot_columns(area);
    let axis = app.axis();
    let current = app.axis_index();
    let shown = app.shown();
    let label = |i: usize, name: &str| {
        app.samples
            .get(i)
            .filter(|s| s.name == name)
            .or_else(|| app.samples.iter().find(|s| s.name == name))
            .and_then(|s| s.label)
    };
    // Each run's figures along the axis (per figure, a point per epoch), computed once
    // per frame.
    let series: Vec<Vec<Series>> = shown
        .iter()
        .map(|&run| {
            let checkpoints = &app.runs[run].checkpoints;
            let at: Vec<Option<&CheckpointReport>> = axis
                .iter()
                .map(|&epoch| compare::at_epoch(checkpoints, epoch))
                .collect();
            FIGURES
                .iter()
                .map(|figure| {
                    at.iter()
                        .enumerate()
                        .map(|(i, c)| {
                            let v = figure.mean((*c)?, app.method, label)?;
                            Some((x_of(i, axis.len(), plot.width), f64::from(v.min(1.0))))
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    for (row, figure) in FIGURES.iter().take(rows as usize).enumerate() {
        let y = area.y + row as u16 * height;
        frame.render_widget(
            Paragraph::new(figure.short).dark_gray(),
            Rect::new(area.x, y, plot.x - area.x, 1),
        );
        let cursor = current.map(|i| x_of(i, axis.len(), plot.width));
        let width = f64::from(plot.width);
        frame.render_widget(
            Canvas::default()
                .marker(Marker::Braille)
                .x_bounds([0.0, width])
                .y_bounds([0.0, 1.0])
                .paint(|ctx| {
                    if let Some(x) = cursor {
                        ctx.draw(&canvas::Line::new(x, 0.0, x, 1.0, Color::DarkGray));
                    }
                    // The first run last: on top.
                    for (run, lines) in shown.iter().zip(&series).rev() {
                        view::plot_series(ctx, &lines[row], colour(*run));
                    }
                }),
            Rect::new(plot.x, y, plot.width, height),
        );
        let values: Vec<Span> = shown
            .iter()
            .zip(&series)
            .map(|(run, lines)| {
                let value = current
                    .and_then(|i| lines[row][i])
                    .map_or(" -  ".to_string(), |(_, v)| format!("{v:.2}"));
                Span::raw(format!("{value} ")).fg(colour(*run))
            })
            .collect();
        let right = plot.x + plot.width + 1;
        frame.render_widget(
            Paragraph::new(Line::from(values)),
            Rect::new(right, y, (area.x + area.width).saturating_sub(right), 1),
        );
    }
}

/// What happens now first (a run being computed, a notice or an error), then the
/// device, the graphics and the keys of comparing.
fn status(app: &App) -> Line<'static> {
    let mut parts = vec![Span::raw(" ")];
    for (run, view) in app.runs.iter().enumerate() {
        if let Some(w) = &view.working {
            let name = w
                .path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into());
            parts.push(
                Span::raw(format!(
                    "[{}] computing {name} {}/{} · ",
                    run + 1,
                    w.done,
                    w.total
                ))
                .yellow(),
            );
        }
    }
    if let Some(notice) = &app.notice {
        parts.push(Span::raw(format!("{notice} · ")).cyan());
    } else if let Some(error) = &app.last_error {
        parts.push(Span::raw(format!("{error} · ")).red());
    }
    parts.push(Span::raw(format!("{} · {} ", app.device, app.graphics)));
    let keys = if app.runs.len() > RUNS_PER_PAGE {
        "· 1…8 runs · r next 8 · d difference · ? help"
    } else {
        "· 1…8 runs · d difference · ? help"
    };
    parts.push(Span::raw(keys).dark_gray());
    Line::from(parts)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::monitor::MonitorEvent;
    use crate::tui::app::Message;
    use crate::tui::app::tests::{app_with, report};
    use crate::tui::intent::Intent;
    use std::path::PathBuf;

    /// The app's runs for these folders, as the UI starts them.
    fn runs_of(dirs: &[PathBuf]) -> Vec<crate::tui::app::RunView> {
        let samples = crate::cam::SampleSet {
            dir: PathBuf::new(),
            samples: vec![],
            classes: None,
            defaults: Default::default(),
        };
        App::new(dirs, "cpu".into(), &samples, vec![]).runs
    }

    /// Two runs: `a` with epochs 1–4, `b` with 2, 4 and 6.
    pub(crate) fn comparing() -> App {
        let mut app = app_with(0);
        app.runs = runs_of(&[PathBuf::from("x/a"), PathBuf::from("x/b")]);
        for (run, epochs) in [(0, vec![1, 2, 3, 4]), (1, vec![2, 4, 6])] {
            for epoch in epochs {
                let mut checkpoint = report(epoch, &["a", "b", "c"]);
                checkpoint.hash = format!("r{run}e{epoch}");
                app.update(Message::Monitor {
                    generation: 0,
                    run,
                    event: MonitorEvent::Checkpoint {
                        report: Box::new(checkpoint),
                        source: crate::monitor::Source::History,
                        ms: 0.0,
                    },
                });
            }
        }
        app
    }

    #[test]
    fn one_cursor_moves_every_run_by_epoch() {
        let mut app = comparing();
        assert_eq!(app.axis(), [1, 2, 3, 4, 6]);
        assert_eq!(app.cursor_epoch(), Some(6));
        assert!(app.at(0).is_none(), "a has no epoch 6");
        assert_eq!(app.at(1).unwrap().hash, "r1e6");
        app.apply(Intent::PreviousEpoch);
        assert_eq!(app.cursor_epoch(), Some(4));
        assert_eq!(
            (
                app.at(0).unwrap().hash.as_str(),
                app.at(1).unwrap().hash.as_str()
            ),
            ("r0e4", "r1e4")
        );
        app.apply(Intent::PreviousEpoch);
        assert_eq!(app.cursor_epoch(), Some(3));
        assert!(app.at(1).is_none(), "b skipped epoch 3");
        // Hiding b takes its epochs off the axis; the cursor stays on epoch 3.
        app.apply(Intent::ToggleRun(1));
        assert_eq!(app.axis(), [1, 2, 3, 4]);
        assert_eq!(app.cursor_epoch(), Some(3));
        assert_eq!(app.difference_pair(), None);
        app.apply(Intent::ToggleRun(0));
        assert!(app.runs[0].shown, "the last run shown stays");
        app.apply(Intent::ToggleRun(1));
        assert_eq!(app.difference_pair(), Some((0, 1)));
        app.apply(Intent::LatestEpoch);
        assert_eq!(app.cursor_epoch(), Some(6));
    }

    #[test]
    fn the_pair_differenced_cycles_through_the_shown_runs() {
        let mut app = comparing();
        app.runs.push(app.runs[1].clone());
        app.runs[2].name = "c".into();
        let mut pairs = Vec::new();
        for _ in 0..4 {
            app.apply(Intent::NextDifference);
            pairs.push(app.difference);
        }
        assert_eq!(pairs, [(0, 2), (1, 2), (0, 1), (0, 2)]);
        app.apply(Intent::ToggleRun(0));
        assert_eq!(
            app.difference_pair(),
            Some((1, 2)),
            "kept among the shown runs"
        );
    }

    #[test]
    fn the_screen_shows_every_run_and_the_difference() {
        let mut app = comparing();
        app.apply(Intent::PreviousEpoch);
        let at_4 = plan(&app, Rect::new(0, 0, 100, 30));
        let panes: Vec<Pane> = at_4.slots.iter().map(|s| s.pane).collect();
        assert_eq!(
            panes,
            [Pane::Image, Pane::Run(0), Pane::Run(1), Pane::Difference]
        );
        let Picture::Difference(a, b) = &at_4.slots[3].request.key.picture else {
            panic!("the difference of the two runs");
        };
        assert_eq!((a.run, a.map.hash.as_str()), (0, "r0e4"));
        assert_eq!((b.run, b.map.hash.as_str()), (1, "r1e4"));
        // At epoch 6 run a has nothing: no overlay, and no difference.
        app.apply(Intent::LatestEpoch);
        let at_6 = plan(&app, Rect::new(0, 0, 100, 30));
        let panes: Vec<Pane> = at_6.slots.iter().map(|s| s.pane).collect();
        assert_eq!(panes, [Pane::Image, Pane::Run(1)]);
        assert_eq!(placeholder(&app, Pane::Run(0)), "no epoch 6 in this run");
    }

    #[test]
    fn captions_and_placeholders_fit_narrow_panes() {
        let mut app = comparing();
        app.apply(Intent::PreviousEpoch);
        let text = |line: Line| {
            line.spans
                .iter()
                .map(|s| s.content.as_ref())
                .collect::<String>()
        };
        let caption = |pane, width| {
            let mut forms = captions(&app, pane);
            let form = longest_fitting(&forms, width);
            forms.swap_remove(form)
        };
        let wide = text(caption(Pane::Run(1), 80));
        assert!(wide.starts_with("[2] b p "), "{wide}");
        for width in [14, 20, 30] {
            for pane in [Pane::Run(0), Pane::Run(1), Pane::Difference] {
                let line = caption(pane, width);
                assert!(
                    line.width() <= usize::from(width),
                    "{width}: {}",
                    text(line)
                );
            }
        }
        assert_eq!(text(caption(Pane::Difference, 14)), "[2] − [1]");
        // At epoch 6 run a has no figures, yet as many forms as b.
        app.apply(Intent::LatestEpoch);
        assert_eq!(run_captions(&app, 0).len(), run_captions(&app, 1).len());
        assert_eq!(
            wrap_words("no epoch 16 in this run", 14),
            ["no epoch 16 in", "this run"]
        );
        assert_eq!(wrap_words("computing x…", 40), ["computing x…"]);
    }

    /// Twenty runs: eight at a time, the digits toggling the page's, `r` turning pages.
    #[test]
    fn more_than_eight_runs_are_shown_a_page_at_a_time() {
        let dirs: Vec<PathBuf> = (0..20)
            .map(|i| PathBuf::from(format!("sweep/lr{i}")))
            .collect();
        let mut app = comparing();
        app.runs = runs_of(&dirs);
        assert_eq!(app.shown(), (0..8).collect::<Vec<_>>());
        app.apply(Intent::NextRunPage);
        assert_eq!(app.shown(), (8..16).collect::<Vec<_>>());
        assert_eq!(app.difference, (8, 9));
        app.apply(Intent::ToggleRun(0));
        assert!(!app.runs[8].shown, "the digit toggles the page's run");
        app.apply(Intent::NextRunPage);
        assert_eq!(app.shown(), (16..20).collect::<Vec<_>>());
        let legend: String = legend(&app)
            .spans
            .iter()
            .map(|s| s.content.to_string())
            .collect();
        assert!(legend.contains("runs 17–20 of 20"), "{legend}");
        assert!(
            !legend.contains("lr3"),
            "other pages are not listed: {legend}"
        );
        app.apply(Intent::NextRunPage);
        assert_eq!(app.shown(), (0..8).collect::<Vec<_>>());
    }
}
