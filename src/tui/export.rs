//! Snapshots and animations of the current sample, written on a thread of their own:
//! the overlay and image | heatmap | overlay at the shown epoch, a strip of overlays
//! across all epochs, and an animated GIF across epochs; strip and GIF frames carry
//! their epoch, target probability and box energy. Comparing runs, a frame is the
//! sample, each shown run's overlay and the difference side by side.

use std::path::{Path, PathBuf};

use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, Frame, Rgb, RgbImage, imageops};

use super::app::App;
use super::images::{ImageKey, Painter, Picture};
use super::view;
use crate::cam::{caption, image_ops};
use crate::compare;
use crate::monitor::CheckpointReport;
use crate::monitor::timeline::SampleFigures;

/// One picture of an exported frame.
pub struct Tile {
    /// What it shows; `None`: a run without this epoch (drawn grey).
    pub key: Option<ImageKey>,
    /// Burnt into it.
    pub caption: Vec<String>,
}

/// One epoch of the exported sample: its overlay, or when comparing the sample, each
/// shown run's overlay and the difference.
pub struct EpochFrame {
    pub tiles: Vec<Tile>,
    /// For file names: the epoch, or the checkpoint's file name.
    pub label: String,
}

/// `epoch 12` over `p 0.83 box 0.61 hit`: what a frame of a strip or GIF says.
pub fn caption(
    app: &App,
    checkpoint: &CheckpointReport,
    figures: Option<&SampleFigures>,
) -> Vec<String> {
    let epoch = match checkpoint.epoch {
        Some(e) => format!("epoch {e}"),
        None => format!("checkpoint {}", App::epoch_label(checkpoint)),
    };
    let mut figures_line = String::new();
    if let Some(f) = figures {
        figures_line = format!("p {:.2}", f.target_prob);
        let method = app.method.name();
        if let Some(energy) = f.box_energy.as_ref().and_then(|m| m.get(method)) {
            figures_line.push_str(&format!(" box {energy:.2}"));
        }
        if let Some(hit) = f.pointing_hit.as_ref().and_then(|m| m.get(method)) {
            figures_line.push_str(if *hit { " hit" } else { " miss" });
        }
    }
    [epoch, figures_line]
        .into_iter()
        .map(|l| caption::drawable(&l))
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// Epoch `epoch` of the compared runs: the sample, each shown run's overlay (grey
/// where the run has no such epoch) and the difference of the chosen pair.
fn compared(app: &App, epoch: u64) -> EpochFrame {
    let sample = app.sample;
    let mut tiles = vec![Tile {
        key: Some(ImageKey {
            picture: Picture::Image(sample),
            with_box: view::with_box(app, sample),
        }),
        caption: vec![format!("epoch {epoch}")],
    }];
    let at = |run: usize| compare::at_epoch(&app.runs[run].checkpoints, epoch);
    for run in app.shown() {
        let name = format!("{} {}", run + 1, app.runs[run].name);
        tiles.push(match at(run) {
            Some(c) => {
                let figures = caption(app, c, app.figures(c)).into_iter().skip(1);
                Tile {
                    key: Some(view::overlay_key(app, run, sample, c)),
                    caption: std::iter::once(name).chain(figures).collect(),
                }
            }
            None => Tile {
                key: None,
                caption: vec![name, format!("no epoch {epoch}")],
            },
        });
    }
    if let Some((a, b)) = app.difference_pair()
        && let (Some(ca), Some(cb)) = (at(a), at(b))
    {
        tiles.push(Tile {
            key: Some(view::difference_key(app, sample, (a, ca), (b, cb))),
            caption: vec![
                format!("{} - {}", b + 1, a + 1),
                format!("red: {}", app.runs[b].name),
            ],
        });
    }
    let tiles = tiles
        .into_iter()
        .map(|mut t| {
            t.caption = t.caption.iter().map(|l| caption::drawable(l)).collect();
            t
        })
        .collect();
    EpochFrame {
        tiles,
        label: epoch.to_string(),
    }
}

/// What to export: one sample across the run's epochs.
pub struct ExportJob {
    pub painter: Painter,
    pub out: PathBuf,
    /// Every epoch of the sample, in training order.
    pub epochs: Vec<EpochFrame>,
    /// Index of the shown epoch.
    pub current: usize,
    pub name: String,
    /// Runs compared: a snapshot is the shown epoch's frame, at full size.
    pub comparing: bool,
}

/// Height of each epoch in the timeline strip and the animation.
const STRIP_HEIGHT: u32 = 160;

impl ExportJob {
    /// The shown sample across the epochs, as the UI shows it; `None` before any
    /// checkpoint has maps.
    pub fn of(app: &App, painter: &Painter, out: &Path) -> Option<ExportJob> {
        let (epochs, current) = if app.comparing() {
            let axis = app.axis();
            let epochs = axis.iter().map(|&e| compared(app, e)).collect();
            (epochs, app.axis_index()?)
        } else {
            let epochs = app
                .epochs()
                .into_iter()
                .map(|c| EpochFrame {
                    // The overlay the UI shows for this sample at that epoch.
                    tiles: vec![Tile {
                        key: Some(view::overlay_key(app, 0, app.sample, c)),
                        caption: caption(app, c, app.figures(c)),
                    }],
                    label: App::epoch_label(c),
                })
                .collect();
            (epochs, app.epoch_index()?)
        };
        Some(ExportJob {
            painter: painter.clone(),
            out: out.to_path_buf(),
            epochs,
            current,
            name: app.samples.get(app.sample)?.name.clone(),
            comparing: app.comparing(),
        })
    }

    fn stem(&self) -> String {
        let overlay =
            self.epochs[self.current]
                .tiles
                .iter()
                .find_map(|t| match &t.key.as_ref()?.picture {
                    Picture::Overlay(id, blend) => Some((id, blend)),
                    _ => None,
                });
        let compared = if self.comparing { ".compare" } else { "" };
        match overlay {
            Some((id, blend)) => format!(
                "{}{compared}.{}.{}.{}",
                self.name,
                id.map.method.name(),
                id.map.layer,
                blend.name()
            ),
            None => format!("{}{compared}", self.name),
        }
    }

    /// The picture with its box, if it has one, in lines 1/100 of the image wide.
    fn paint(&mut self, key: &ImageKey) -> Option<RgbImage> {
        let mut image = self.painter.paint(&key.picture)?;
        if let Some(bbox) = self.painter.bbox(key) {
            let line = (image.width().max(image.height()) / 100).max(1);
            image_ops::draw_box(&mut image, &bbox, line);
        }
        Some(image)
    }

    /// overlay, side by side (at the shown epoch) and the timeline strip; comparing,
    /// the runs side by side at the shown epoch.
    pub fn snapshot(mut self) -> Result<Vec<PathBuf>, String> {
        create(&self.out)?;
        let label = self.epochs[self.current].label.clone();
        if self.comparing {
            let path = self.out.join(format!("{}.e{label}.png", self.stem()));
            let frame = self
                .frame(self.current, None)
                .ok_or("no run has this sample's map at this epoch")?;
            save(&frame, &path)?;
            return Ok(vec![path]);
        }
        let Some(key) = self.epochs[self.current].tiles[0].key.clone() else {
            return Err("the map is not in the history".into());
        };
        let Picture::Overlay(id, _) = &key.picture else {
            return Err("not an overlay".into());
        };
        let overlay = self
            .painter
            .paint(&key.picture)
            .ok_or("the map is not in the history")?;
        let heat = self
            .painter
            .paint(&Picture::Heat(id.clone()))
            .ok_or("the map is not in the history")?;
        let image = self.painter.samples.samples[key.sample()].image.clone();
        let stem = self.stem();
        let overlay_path = self.out.join(format!("{stem}.e{label}.png"));
        let side_path = self.out.join(format!("{stem}.e{label}.side.png"));
        let strip_path = self.out.join(format!("{stem}.timeline.png"));
        save(&overlay, &overlay_path)?;
        save(
            &image_ops::side_by_side(&[&image, &heat, &overlay]),
            &side_path,
        )?;
        let frames = self.frames();
        let refs: Vec<&RgbImage> = frames.iter().collect();
        save(&image_ops::side_by_side(&refs), &strip_path)?;
        Ok(vec![overlay_path, side_path, strip_path])
    }

    /// The sample's overlay at every epoch, as a looping GIF with a progress bar.
    pub fn animate(mut self) -> Result<Vec<PathBuf>, String> {
        create(&self.out)?;
        let path = self.out.join(format!("{}.gif", self.stem()));
        let frames = self.frames();
        if frames.is_empty() {
            return Err("no epoch has maps for this sample yet".into());
        }
        let file = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut encoder = GifEncoder::new_with_speed(std::io::BufWriter::new(file), 10);
        encoder
            .set_repeat(Repeat::Infinite)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let count = frames.len();
        for (i, mut frame) in frames.into_iter().enumerate() {
            progress_bar(&mut frame, i, count);
            let rgba = image::DynamicImage::ImageRgb8(frame).into_rgba8();
            encoder
                .encode_frame(Frame::from_parts(
                    rgba,
                    0,
                    0,
                    Delay::from_numer_denom_ms(600, 1),
                ))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(vec![path])
    }

    /// Every epoch that has a map, each scaled to the strip's height, with captions.
    fn frames(&mut self) -> Vec<RgbImage> {
        (0..self.epochs.len())
            .filter_map(|i| self.frame(i, Some(STRIP_HEIGHT)))
            .collect()
    }

    /// Epoch `index`'s tiles side by side with their captions, `height` pixels high
    /// (else at the sample's size); `None` when no tile has its map.
    fn frame(&mut self, index: usize, height: Option<u32>) -> Option<RgbImage> {
        let tiles: Vec<(Option<ImageKey>, Vec<String>)> = self.epochs[index]
            .tiles
            .iter()
            .map(|t| (t.key.clone(), t.caption.clone()))
            .collect();
        let painted: Vec<Option<RgbImage>> = tiles
            .iter()
            .map(|(key, _)| self.paint(key.as_ref()?))
            .collect();
        let (width, tall) = painted.iter().flatten().next()?.dimensions();
        let height = height.unwrap_or(tall);
        let width = (width * height / tall.max(1)).max(1);
        let images: Vec<RgbImage> = painted
            .into_iter()
            .zip(&tiles)
            .map(|(image, (_, lines))| {
                let mut tile = match image {
                    Some(image) => {
                        imageops::resize(&image, width, height, imageops::FilterType::Triangle)
                    }
                    None => RgbImage::from_pixel(width, height, Rgb([60, 60, 60])),
                };
                caption::burn(&mut tile, lines);
                tile
            })
            .collect();
        let refs: Vec<&RgbImage> = images.iter().collect();
        Some(image_ops::side_by_side(&refs))
    }
}

/// A bar along the bottom edge: how far into the run this frame is.
fn progress_bar(frame: &mut RgbImage, index: usize, count: usize) {
    let (width, height) = frame.dimensions();
    let filled = (width as usize * (index + 1) / count.max(1)) as u32;
    for y in height.saturating_sub(4)..height {
        for x in 0..width {
            let colour = if x < filled {
                [255, 255, 255]
            } else {
                [40, 40, 40]
            };
            frame.put_pixel(x, y, Rgb(colour));
        }
    }
}

fn create(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

fn save(image: &RgbImage, path: &Path) -> Result<(), String> {
    image
        .save(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}
