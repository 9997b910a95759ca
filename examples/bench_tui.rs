//! The terminal UI with 64 samples and 100 epochs in history, at 160×45 cells: for each
//! graphics protocol, the time of a frame (the draw alone, images cached; and a key
//! press to a finished frame, encoding included) and the bytes a key press writes to
//! the terminal, through the UI's own frame logic into a counting writer. Then the
//! same for 8 such runs compared side by side.
//!
//!     cargo run --release --example bench_tui

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use camwatch::cam::{Method, Sample, SampleSet};
use camwatch::monitor::timeline::{Drift, MapShape, SampleFigures};
use camwatch::monitor::{CheckpointReport, MonitorEvent, Source};
use camwatch::tui::graphics::{Graphics, Protocol};
use camwatch::tui::{App, Encoding, Frames, Intent, Message, Plan};
use crossterm::event::{KeyCode, KeyEvent};
use image::{Rgb, RgbImage};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};

const SAMPLES: usize = 64;
const EPOCHS: u64 = 100;
const SIZE: (u16, u16) = (160, 45);

fn figures(name: &str, epoch: u64) -> SampleFigures {
    let p = (epoch as f32 / EPOCHS as f32).min(0.99);
    SampleFigures {
        name: name.into(),
        file: PathBuf::from(format!("{name}.png")),
        logits: vec![p, 1.0 - p, 0.0, 0.0],
        probs: vec![p, 1.0 - p, 0.0, 0.0],
        predicted: 0,
        target: 0,
        target_prob: p,
        predicted_changed: Some(false),
        maps: BTreeMap::from([(
            "gradcam".into(),
            MapShape {
                height: 7,
                width: 7,
            },
        )]),
        box_energy: Some(BTreeMap::from([("gradcam".into(), p / 2.0)])),
        pointing_hit: Some(BTreeMap::from([(
            "gradcam".into(),
            epoch.is_multiple_of(2),
        )])),
        drift: Some(BTreeMap::from([(
            "gradcam".into(),
            Drift {
                one_minus_corr: 1.0 - p,
                top20_iou: p,
            },
        )])),
        metrics: None,
        sanity: None,
    }
}

fn main() {
    let samples: Vec<Sample> = (0..SAMPLES)
        .map(|i| Sample {
            name: format!("{i:02}_sample"),
            file: PathBuf::from(format!("{i:02}_sample.png")),
            digest: format!("{i:032}"),
            image: RgbImage::from_fn(224, 224, |x, y| Rgb([i as u8 * 4, x as u8, y as u8])),
            label: Some(0),
            bbox: Some([50.0, 50.0, 150.0, 150.0]),
        })
        .collect();
    let set = SampleSet {
        dir: PathBuf::from("samples"),
        samples,
        classes: None,
        defaults: Default::default(),
    };
    let mut app = app_of(1, &set);
    for protocol in [
        Protocol::Halfblocks,
        Protocol::Sixel,
        Protocol::Kitty,
        Protocol::Iterm2,
    ] {
        bench(&mut app, &set, protocol);
    }
    let mut app = app_of(COMPARED, &set);
    for protocol in [Protocol::Halfblocks, Protocol::Kitty] {
        bench(&mut app, &set, protocol);
    }
}

/// Runs compared in the second part.
const COMPARED: usize = 8;

/// The UI with `runs` runs of [`EPOCHS`] epochs each in history.
fn app_of(runs: usize, set: &SampleSet) -> App {
    let dirs: Vec<PathBuf> = (0..runs)
        .map(|r| PathBuf::from(format!("run{r}")))
        .collect();
    let mut app = App::new(&dirs, "cpu".into(), set, vec![Method::GradCam]);
    for (run, epoch) in (0..runs).flat_map(|r| (1..=EPOCHS).map(move |e| (r, e))) {
        let report = CheckpointReport {
            path: PathBuf::from(format!("checkpoints/epoch_{epoch}.pdparams")),
            paths: vec![],
            epoch: Some(epoch),
            status: camwatch::monitor::history::Status::Ok,
            error: None,
            hash: format!("{run}{epoch:063}"),
            time: String::new(),
            format: None,
            arch: None,
            published: None,
            samples: set
                .samples
                .iter()
                .map(|s| figures(&s.name, epoch))
                .collect(),
            events: vec![],
            mtime_ns: epoch as i64,
        };
        app.update(Message::Monitor {
            generation: 0,
            run,
            event: MonitorEvent::Checkpoint {
                report: Box::new(report),
                source: Source::History,
                ms: 0.0,
            },
        });
    }
    app
}

/// Counts what is written, and throws it away.
#[derive(Clone, Default)]
struct Wire(Arc<AtomicU64>);

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn bench(app: &mut App, set: &SampleSet, protocol: Protocol) {
    app.sample = 0;
    app.apply(Intent::LatestEpoch);
    let graphics = Graphics {
        protocol,
        cell: (10, 20),
    };
    let wire = Wire::default();
    let area = Rect::new(0, 0, SIZE.0, SIZE.1);
    let mut terminal = Terminal::with_options(
        CrosstermBackend::new(wire.clone()),
        TerminalOptions {
            viewport: Viewport::Fixed(area),
        },
    )
    .unwrap();
    let mut frames = Frames::default();

    // One frame as the UI loop makes it; images missing from the cache are encoded
    // here (in the app, the encoder thread does it and the frame after shows them).
    let mut frame = |app: &mut App, frames: &mut Frames| -> (Duration, Duration, u64) {
        let before = wire.0.load(Ordering::Relaxed);
        let start = Instant::now();
        let plan = Plan::new(app, area);
        app.clicks = plan.clicks(app);
        app.timeline_first = plan.areas.timeline_first;
        let missing = frames.missing(&plan);
        for request in missing {
            let sample = &set.samples[request.key.sample()];
            let bbox = sample.bbox.filter(|_| request.key.with_box);
            if let Some(e) = graphics.encode(&sample.image, bbox.as_ref(), request.cells) {
                frames
                    .received(Encoding::Done(request, Box::new(e)), &mut std::io::sink())
                    .unwrap();
            }
        }
        let encoded = start.elapsed();
        frames.draw(&mut terminal, app, &plan).unwrap();
        (
            encoded,
            start.elapsed(),
            wire.0.load(Ordering::Relaxed) - before,
        )
    };
    let (_, _, first) = frame(app, &mut frames);

    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e3
    };
    let draws: Vec<Duration> = (0..100).map(|_| frame(app, &mut frames).1).collect();
    let runs = if app.comparing() {
        format!("{} runs compared, each ", app.runs.len())
    } else {
        String::new()
    };
    println!(
        "{runs}{SAMPLES} samples × {EPOCHS} epochs, {}×{} cells, {} (cells of 10×20 pixels)",
        SIZE.0,
        SIZE.1,
        protocol.name()
    );
    println!("  start:                           {:>9} bytes", first);
    println!(
        "  frame, images cached:            {:6.2} ms (median of 100)",
        median(draws)
    );
    let key = |code| Message::Key(KeyEvent::from(code));
    for (name, code) in [
        ("→ next sample", KeyCode::Right),
        ("↓ previous epoch", KeyCode::Down),
    ] {
        let mut total = Vec::new();
        let mut encoding = Vec::new();
        let mut bytes = Vec::new();
        for _ in 0..20 {
            let start = Instant::now();
            app.update(key(code));
            let (encoded, _, written) = frame(app, &mut frames);
            encoding.push(encoded);
            total.push(start.elapsed());
            bytes.push(written);
        }
        bytes.sort_unstable();
        println!(
            "  key {name:<17} → frame: {:6.2} ms (median of 20; {:.2} ms encoding), {:>9} bytes",
            median(total),
            median(encoding),
            bytes[bytes.len() / 2]
        );
    }
    // Back to samples already drawn (at this epoch), then the help open and closed.
    for _ in 0..5 {
        app.update(key(KeyCode::Right));
        frame(app, &mut frames);
    }
    let mut back = Vec::new();
    for _ in 0..5 {
        app.update(key(KeyCode::Left));
        back.push(frame(app, &mut frames).2);
    }
    back.sort_unstable();
    println!(
        "  key ← back to a drawn sample:    {:>9} bytes (median of 5)",
        back[2]
    );
    app.update(key(KeyCode::Char('?')));
    let open = frame(app, &mut frames).2;
    app.update(key(KeyCode::Char('?')));
    let close = frame(app, &mut frames).2;
    println!("  help opened / closed:            {open:>9} / {close} bytes");
    if app.comparing() {
        return;
    }
    app.apply(Intent::ToggleGrid);
    let (_, _, grid_bytes) = frame(app, &mut frames);
    let grid: Vec<Duration> = (0..50).map(|_| frame(app, &mut frames).1).collect();
    println!(
        "  grid of 64: {grid_bytes} bytes to open, then {:6.2} ms a frame (median of 50)",
        median(grid)
    );
    app.apply(Intent::ToggleGrid);
}
