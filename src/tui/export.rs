//! Snapshots and animations of the current sample, written on a thread of their own:
//! the overlay and image | heatmap | overlay at the shown epoch, a strip of overlays
//! across all epochs, and an animated GIF across epochs; strip and GIF frames carry
//! their epoch, target probability and box energy.

use std::path::{Path, PathBuf};

use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, Frame, Rgb, RgbImage, imageops};

use super::app::App;
use super::images::{ImageKey, Painter, Picture};
use crate::cam::{caption, image_ops};
use crate::monitor::CheckpointReport;
use crate::monitor::timeline::SampleFigures;

/// One epoch of the exported sample.
pub struct EpochFrame {
    /// Its overlay.
    pub key: ImageKey,
    /// For file names: the epoch, or the checkpoint's file name.
    pub label: String,
    /// Burnt into strip and GIF frames.
    pub caption: Vec<String>,
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
        .map(|l| {
            l.chars()
                .filter(|c| caption::can_draw(*c))
                .collect::<String>()
        })
        .filter(|l| !l.trim().is_empty())
        .collect()
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
}

/// Height of each epoch in the timeline strip and the animation.
const STRIP_HEIGHT: u32 = 160;

impl ExportJob {
    fn stem(&self) -> String {
        match &self.epochs[self.current].key.picture {
            Picture::Overlay(id, blend) => {
                format!(
                    "{}.{}.{}.{}",
                    self.name,
                    id.map.method.name(),
                    id.map.layer,
                    blend.name()
                )
            }
            _ => self.name.clone(),
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

    /// overlay, side by side (at the shown epoch) and the timeline strip.
    pub fn snapshot(mut self) -> Result<Vec<PathBuf>, String> {
        create(&self.out)?;
        let frame = &self.epochs[self.current];
        let (key, label) = (frame.key.clone(), frame.label.clone());
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

    /// Overlays at every epoch that has the map, scaled to the strip's height, with
    /// their captions.
    fn frames(&mut self) -> Vec<RgbImage> {
        let epochs: Vec<(ImageKey, Vec<String>)> = self
            .epochs
            .iter()
            .map(|e| (e.key.clone(), e.caption.clone()))
            .collect();
        epochs
            .iter()
            .filter_map(|(key, lines)| {
                let image = self.paint(key)?;
                let width = (image.width() * STRIP_HEIGHT / image.height().max(1)).max(1);
                let mut frame =
                    imageops::resize(&image, width, STRIP_HEIGHT, imageops::FilterType::Triangle);
                caption::burn(&mut frame, lines);
                Some(frame)
            })
            .collect()
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
