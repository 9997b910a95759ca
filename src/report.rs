//! Runs compared on paper: per-epoch charts with one line per run, the samples' overlays
//! side by side at one epoch with the signed difference of two runs' maps, and the
//! figures behind them — what `camwatch report` writes.

use image::{Rgb, RgbImage};
use plotters::prelude::*;

use crate::cam::{Method, Sample};
use crate::compare::{FIGURES, PALETTE, Run, difference_image, epochs};
use crate::render::{self, OverlayStyle};

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// One panel per figure, one line per run, epochs along x.
pub fn charts(runs: &[Run], method: Method, samples: &[Sample]) -> Result<RgbImage, String> {
    // Registering the same font again replaces it: harmless.
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    let (width, panel) = (900u32, 260u32);
    let height = panel * FIGURES.len() as u32;
    let mut buffer = vec![255u8; (width * height * 3) as usize];
    let last_epoch = runs
        .iter()
        .flat_map(|r| epochs(&r.checkpoints).into_iter().map(|(e, _)| e))
        .max()
        .unwrap_or(1);
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        let panels = root.split_evenly((FIGURES.len(), 1));
        for (figure, area) in FIGURES.iter().zip(&panels) {
            let mut chart = ChartBuilder::on(area)
                .caption(figure.name, ("sans-serif", 20))
                .margin(8)
                .x_label_area_size(28)
                .y_label_area_size(44)
                .build_cartesian_2d(0f32..last_epoch as f32 + 0.5, 0f32..1.02f32)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .light_line_style(TRANSPARENT)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .x_desc("epoch")
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(|e| e.to_string())?;
            for (i, run) in runs.iter().enumerate() {
                let [r, g, b] = PALETTE[i % PALETTE.len()];
                let colour = RGBColor(r, g, b);
                let points: Vec<(f32, f32)> = epochs(&run.checkpoints)
                    .into_iter()
                    .filter_map(|(e, c)| Some((e as f32, figure.at(c, method, samples)?)))
                    .collect();
                chart
                    .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(run.name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                    });
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                    .map_err(|e| e.to_string())?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 13))
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    RgbImage::from_raw(width, height, buffer).ok_or_else(|| "chart buffer".to_string())
}

/// One row per sample: each run's overlay at its epoch, then the difference of the last
/// two maps given (`b − a`), each under a caption. `cells[s][r]` is sample s's map in
/// run r, if stored.
pub fn sample_grid(
    samples: &[Sample],
    runs: &[(String, u64)],
    cells: &[Vec<Option<crate::cam::Map>>],
    style: &OverlayStyle,
    thumb: u32,
) -> Result<RgbImage, String> {
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    let columns = runs.len() + usize::from(runs.len() >= 2);
    let label = 18;
    let (cell_w, cell_h) = (thumb + 6, thumb + label + 6);
    let mut out = RgbImage::from_pixel(
        cell_w * columns as u32,
        cell_h * samples.len() as u32,
        Rgb([255, 255, 255]),
    );
    let mut captions = Vec::new();
    for (row, (sample, maps)) in samples.iter().zip(cells).enumerate() {
        let image = image::imageops::resize(
            &sample.image,
            thumb,
            thumb,
            image::imageops::FilterType::Triangle,
        );
        let y = row as u32 * cell_h;
        let mut shown = Vec::new();
        for (column, ((name, epoch), map)) in runs.iter().zip(maps).enumerate() {
            let tile = match map {
                Some(map) => {
                    let drawn = render::draw(&image, map, style);
                    shown.push(Some(drawn.shown));
                    drawn.overlay
                }
                None => {
                    shown.push(None);
                    image.clone()
                }
            };
            let x = column as u32 * cell_w;
            image::imageops::replace(&mut out, &tile, i64::from(x + 3), i64::from(y + label + 3));
            let text = if column == 0 {
                format!("{}: {name} e{epoch}", sample.name)
            } else {
                format!("{name} e{epoch}")
            };
            captions.push((text, x, y));
        }
        if runs.len() >= 2
            && let (Some(Some(a)), Some(Some(b))) = (shown.get(runs.len() - 2), shown.last())
        {
            let d: Vec<f32> = a.iter().zip(b).map(|(a, b)| b - a).collect();
            let tile = difference_image(&d, (thumb, thumb));
            let x = runs.len() as u32 * cell_w;
            image::imageops::replace(&mut out, &tile, i64::from(x + 3), i64::from(y + label + 3));
            let (a_name, b_name) = (&runs[runs.len() - 2].0, &runs[runs.len() - 1].0);
            captions.push((format!("{b_name} − {a_name}"), x, y));
        }
    }
    let (width, height) = out.dimensions();
    let mut buffer = out.into_raw();
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        for (text, x, y) in captions {
            root.draw(&Text::new(
                text,
                (x as i32 + 3, y as i32 + 3),
                ("sans-serif", 12).into_font().color(&BLACK),
            ))
            .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    RgbImage::from_raw(width, height, buffer).ok_or_else(|| "grid buffer".to_string())
}
