//! Runs compared on paper: per-epoch charts with one line per run, the samples' overlays
//! side by side at one epoch with the signed difference of two runs' maps, and the
//! figures behind them — what `camwatch report` writes.

use image::{Rgb, RgbImage};
use plotters::prelude::*;

use crate::cam::{Method, Sample};
use crate::monitor::CheckpointReport;
use crate::monitor::history::Status;
use crate::monitor::timeline::SampleFigures;
use crate::render::{self, OverlayStyle};

/// One run, as its history holds it.
pub struct Run {
    /// How the figures name it: its folder's name.
    pub name: String,
    pub first_on_object: Option<u64>,
    pub checkpoints: Vec<CheckpointReport>,
}

/// A run-level figure at a checkpoint: a mean over the samples that have it.
pub struct Figure {
    pub name: &'static str,
    pub value: fn(&SampleFigures, Method, Option<usize>) -> Option<f32>,
}

/// The charts' figures, in order; `label` is the sample's label, if any.
pub const FIGURES: [Figure; 4] = [
    Figure {
        name: "mean box energy",
        value: |f, m, _| f.box_energy.as_ref()?.get(m.name()).copied(),
    },
    Figure {
        name: "pointing hits",
        value: |f, m, _| {
            Some(f32::from(u8::from(
                *f.pointing_hit.as_ref()?.get(m.name())?,
            )))
        },
    },
    Figure {
        name: "samples right",
        value: |f, _, label| Some(f32::from(u8::from(f.predicted == label?))),
    },
    Figure {
        name: "mean p(target)",
        value: |f, _, _| Some(f.target_prob),
    },
];

impl Figure {
    /// The mean over `checkpoint`'s samples that have the figure.
    pub fn at(
        &self,
        checkpoint: &CheckpointReport,
        method: Method,
        samples: &[Sample],
    ) -> Option<f32> {
        let values: Vec<f32> = checkpoint
            .samples
            .iter()
            .filter_map(|f| {
                let label = samples
                    .iter()
                    .find(|s| s.name == f.name)
                    .and_then(|s| s.label);
                (self.value)(f, method, label)
            })
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f32>() / values.len() as f32)
    }
}

/// The checkpoints with maps, each with its epoch.
pub fn epochs(run: &Run) -> Vec<(u64, &CheckpointReport)> {
    run.checkpoints
        .iter()
        .filter(|c| c.status == Status::Ok)
        .filter_map(|c| Some((c.epoch?, c)))
        .collect()
}

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// One panel per figure, one line per run, epochs along x.
pub fn charts(runs: &[Run], method: Method, samples: &[Sample]) -> Result<RgbImage, String> {
    // Registering the same font again replaces it: harmless.
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    let (width, panel) = (900u32, 260u32);
    let height = panel * FIGURES.len() as u32;
    let mut buffer = vec![255u8; (width * height * 3) as usize];
    let last_epoch = runs
        .iter()
        .flat_map(|r| epochs(r).into_iter().map(|(e, _)| e))
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
                let colour = PALETTE[i % PALETTE.len()];
                let points: Vec<(f32, f32)> = epochs(run)
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

/// The signed difference `b − a` of two maps as shown (each min–max scaled), in
/// [−1, 1], drawn blue (a's attention) through white to red (b's).
pub fn difference(a: &[f32], b: &[f32], (width, height): (u32, u32)) -> RgbImage {
    let mut out = RgbImage::new(width, height);
    for (i, pixel) in out.pixels_mut().enumerate() {
        let d =
            (b.get(i).copied().unwrap_or(0.0) - a.get(i).copied().unwrap_or(0.0)).clamp(-1.0, 1.0);
        let fade = |c: f32| (255.0 * (1.0 - d.abs()) + c * d.abs()) as u8;
        *pixel = if d >= 0.0 {
            Rgb([fade(214.0), fade(39.0), fade(40.0)])
        } else {
            Rgb([fade(31.0), fade(119.0), fade(180.0)])
        };
    }
    out
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
            let tile = difference(a, b, (thumb, thumb));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_difference_is_red_where_the_second_map_is_higher() {
        let a = [0.0, 1.0, 0.5, 0.25];
        let b = [1.0, 0.0, 0.5, 0.75];
        let d = difference(&a, &b, (2, 2));
        assert_eq!(d.get_pixel(0, 0).0, [214, 39, 40], "b − a = 1: full red");
        assert_eq!(d.get_pixel(1, 0).0, [31, 119, 180], "b − a = −1: full blue");
        assert_eq!(d.get_pixel(0, 1).0, [255, 255, 255], "equal: white");
        // Half way: half the way from white to red.
        assert_eq!(d.get_pixel(1, 1).0, [234, 147, 147]);
    }
}
