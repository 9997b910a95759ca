//! What a checkpoint becomes in TensorBoard, step = its epoch and wall time = its file's
//! time (raised, where an earlier epoch's file is newer, to just after that epoch's: see
//! [`RunExport::wall_time`]):
//!
//! - scalars `camwatch/<series>/<figure>` (the run's mean) and
//!   `camwatch/<series>/<figure>/<sample>`, for every figure of [`crate::figures`] the
//!   checkpoint has;
//! - images `cam/<series>/<sample>` (the overlay) and `cam/<series>/grid` (every
//!   sample's overlay), PNG.
//!
//! `<series>` is the method, followed by what differs from the default settings
//! (`gradcam`, `gradcam@bf16`, `scorecam@stage3@label`), so that results of other
//! precisions, layers or targets never share a tag. Checkpoints without an epoch in
//! their name (`latest`, `best`) have no step and are left out.

use std::io::Cursor;
use std::path::PathBuf;

use image::RgbImage;
use image::imageops::FilterType;

use super::log::{EventLog, LogError};
use crate::cam::{Layer, Method, SampleSet, Target};
use crate::figures::{Better, FIGURES, Figure, Needs};
use crate::monitor::history::{History, HistoryError, Status, StoredSample};
use crate::monitor::{CheckpointReport, sample_keys, setting};
use crate::precision::Precision;
use crate::render::{CamSettings, OverlayStyle};

/// How the images are drawn.
#[derive(Clone)]
pub struct ImageOptions {
    /// The longest side of an overlay, and the side of a grid's tile, in pixels.
    pub size: u32,
    pub style: OverlayStyle,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    History(#[from] HistoryError),
    /// A bug some data reached (a panic, caught).
    #[error("{0}")]
    Internal(String),
}

/// One run's export: its event log, and where its maps are read from.
pub struct RunExport {
    pub log: EventLog,
    history_file: PathBuf,
    dir: PathBuf,
    history: Option<History>,
    samples: SampleSet,
    /// Each sample resized once for all checkpoints and methods: its longest side the
    /// image size (the overlay), and square (the grid's tile).
    resized: Vec<(RgbImage, RgbImage)>,
    /// Deletion's and insertion's steps, which the stored trust figures are keyed by.
    steps: usize,
    images: ImageOptions,
    /// The wall time each step was given, in seconds.
    walls: std::collections::BTreeMap<i64, f64>,
}

impl RunExport {
    /// The export of the run in `dir` (history `history_file`) into `log`.
    pub fn new(
        log: EventLog,
        (dir, history_file): (PathBuf, PathBuf),
        samples: SampleSet,
        steps: usize,
        images: ImageOptions,
    ) -> RunExport {
        let size = images.size;
        let resized = samples
            .samples
            .iter()
            .map(|sample| {
                let (w, h) = sample.image.dimensions();
                let scale = size as f32 / w.max(h).max(1) as f32;
                let (fw, fh) = (
                    ((w as f32 * scale).round() as u32).max(1),
                    ((h as f32 * scale).round() as u32).max(1),
                );
                (
                    image::imageops::resize(&sample.image, fw, fh, FILTER),
                    image::imageops::resize(&sample.image, size, size, FILTER),
                )
            })
            .collect();
        RunExport {
            log,
            history_file,
            dir,
            history: None,
            samples,
            resized,
            steps,
            images,
            walls: Default::default(),
        }
    }

    /// Step `step`'s wall time: its checkpoint file's time `mtime_ns`, or a millisecond
    /// after the latest wall time of an earlier step where that is later. A copied or
    /// checked-out run does not keep the order training wrote its files in (a git
    /// checkout dates them in name order: `epoch_10` before `epoch_2`), and Aim's
    /// importer keeps a value only when its wall time increases. A step keeps the time
    /// it was given first, for the figures measured after its maps.
    fn wall_time(&mut self, step: i64, mtime_ns: i64) -> f64 {
        if let Some(&wall) = self.walls.get(&step) {
            return wall;
        }
        let file = mtime_ns as f64 / 1e9;
        let wall = match self.walls.range(..step).next_back() {
            Some((_, &earlier)) => file.max(earlier + 1e-3),
            None => file,
        };
        self.walls.insert(step, wall);
        wall
    }

    /// Writes what `report` (computed with `settings`) has that this run's log lacks,
    /// in one flush; returns how many values it wrote. Trust figures measured later
    /// come with a later call.
    pub fn checkpoint(
        &mut self,
        report: &CheckpointReport,
        settings: &CamSettings,
    ) -> Result<usize, ExportError> {
        let Some(epoch) = report.epoch.filter(|_| report.status == Status::Ok) else {
            return Ok(0);
        };
        let step = epoch as i64;
        let wall_time = self.wall_time(step, report.mtime_ns);
        let labels: Vec<Option<usize>> = report
            .samples
            .iter()
            .map(|f| {
                let sample = self.samples.samples.iter().find(|s| s.name == f.name);
                sample.and_then(|s| s.label)
            })
            .collect();
        for &method in &settings.request.methods {
            // Only methods this checkpoint has maps of (p(target) would exist for all).
            if !report
                .samples
                .iter()
                .any(|f| f.maps.contains_key(method.name()))
            {
                continue;
            }
            let series = series(method, settings);
            for figure in &FIGURES {
                self.figure(report, &labels, figure, method, &series, (step, wall_time));
            }
        }
        self.images(report, settings, (step, wall_time))?;
        Ok(self.log.flush()?)
    }

    /// One figure of one method: each sample's value, and the run's mean once every
    /// sample that will have one has it (trust figures arrive a batch at a time).
    fn figure(
        &mut self,
        report: &CheckpointReport,
        labels: &[Option<usize>],
        figure: &Figure,
        method: Method,
        series: &str,
        (step, wall_time): (i64, f64),
    ) {
        let tag = format!("camwatch/{series}/{}", figure.key);
        let values: Vec<Option<f32>> = report
            .samples
            .iter()
            .zip(labels)
            .map(|(f, &label)| (figure.value)(f, method, label))
            .collect();
        for (f, value) in report.samples.iter().zip(&values) {
            if let Some(value) = value {
                let about = description(figure, Some(&f.name));
                let tag = format!("{tag}/{}", f.name);
                self.log.scalar(&tag, step, wall_time, *value, &about);
            }
        }
        let measured_later = matches!(figure.needs, Needs::Metric(_) | Needs::Sanity);
        if measured_later && values.iter().any(Option::is_none) {
            return;
        }
        if let Some(mean) = figure.mean(report, method, |i, _| labels[i]) {
            let about = description(figure, None);
            self.log.scalar(&tag, step, wall_time, mean, &about);
        }
    }

    /// The overlays and the grid of every method, where the log lacks them.
    fn images(
        &mut self,
        report: &CheckpointReport,
        settings: &CamSettings,
        (step, wall_time): (i64, f64),
    ) -> Result<(), ExportError> {
        let missing: Vec<(Method, String)> = settings
            .request
            .methods
            .iter()
            .filter(|m| report.samples.iter().any(|f| f.maps.contains_key(m.name())))
            .map(|&m| (m, series(m, settings)))
            .filter(|(_, series)| !self.log.has(&format!("cam/{series}/grid"), step))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let stored = self.stored(&report.hash, settings)?;
        for (method, series) in missing {
            let mut tiles = Vec::new();
            let samples = self.samples.samples.iter().zip(&self.resized);
            for ((sample, (fitted, tile)), results) in samples.zip(&stored) {
                let Some(map) = results.maps.iter().find(|m| m.method == method) else {
                    continue;
                };
                let overlay = crate::render::draw(fitted, &map.map, &self.images.style).overlay;
                let tag = format!("cam/{series}/{}", sample.name);
                self.log
                    .image(&tag, step, wall_time, png(&overlay), overlay.dimensions());
                tiles.push(crate::render::draw(tile, &map.map, &self.images.style).overlay);
            }
            if !tiles.is_empty() {
                let grid = grid(&tiles, self.images.size);
                let tag = format!("cam/{series}/grid");
                self.log
                    .image(&tag, step, wall_time, png(&grid), grid.dimensions());
            }
        }
        Ok(())
    }

    /// The stored results of every sample at the checkpoint `hash`, in the set's order.
    fn stored(
        &mut self,
        hash: &str,
        settings: &CamSettings,
    ) -> Result<Vec<StoredSample>, HistoryError> {
        let history = match &mut self.history {
            Some(history) => history,
            none => none.insert(History::open_read_only(&self.history_file, &self.dir)?),
        };
        let keys = sample_keys(&self.samples, settings.request.target);
        history.results(hash, &setting(settings, self.steps), &keys)
    }
}

const FILTER: FilterType = FilterType::Triangle;

/// The method, then what differs from the default settings.
pub fn series(method: Method, settings: &CamSettings) -> String {
    let mut name = method.name().to_string();
    if settings.precision != Precision::Fp32 {
        name += &format!("@{}", settings.precision);
    }
    if settings.request.layer != Layer::LAST {
        name += &format!("@{}", settings.request.layer);
    }
    if settings.request.target != Target::Predicted {
        name += &format!("@{}", settings.request.target);
    }
    name
}

/// A figure's description in TensorBoard: what it is (over the samples, or of one),
/// its unit, which way is better.
fn description(figure: &Figure, sample: Option<&str>) -> String {
    let better = match figure.better {
        Better::Higher => "higher is better",
        Better::Lower => "lower is better",
    };
    let what = match sample {
        Some(sample) => format!("{} of {sample}", figure.short),
        None => format!("{}, over the samples", figure.name),
    };
    format!("camwatch: {what} ({}; {better})", figure.unit)
}

/// Tiles of `size` × `size`, in rows of ⌈√n⌉.
fn grid(tiles: &[RgbImage], size: u32) -> RgbImage {
    let columns = (tiles.len() as f32).sqrt().ceil().max(1.0) as u32;
    let rows = (tiles.len() as u32).div_ceil(columns);
    let mut out = RgbImage::new(columns * size, rows * size);
    for (i, tile) in tiles.iter().enumerate() {
        let (x, y) = (i as u32 % columns * size, i as u32 / columns * size);
        image::imageops::replace(&mut out, tile, i64::from(x), i64::from(y));
    }
    out
}

fn png(image: &RgbImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    // Encoding an RGB buffer into memory cannot fail. (The best compression makes the
    // demo's overlays 10 % smaller, at 3 times the time.)
    let _ = image.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_are_as_square_as_the_samples_allow() {
        let tiles = vec![RgbImage::new(8, 8); 12];
        assert_eq!(grid(&tiles, 8).dimensions(), (32, 24));
        assert_eq!(grid(&tiles[..1], 8).dimensions(), (8, 8));
    }
}
