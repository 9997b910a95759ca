//! Frame time of the terminal UI with 64 samples and 100 epochs in history, drawn on a
//! 160×45 TestBackend with halfblock images: the draw alone (images cached), and a key
//! press to a finished frame including encoding the images it newly needs.
//!
//!     cargo run --release --example bench_tui

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use camwatch::cam::{Method, Sample, SampleSet};
use camwatch::monitor::timeline::{Drift, MapShape, SampleFigures};
use camwatch::monitor::{CheckpointReport, MonitorEvent, Source};
use camwatch::tui::{App, ImageCache, Intent, Message, draw, encode, layout, wanted};
use crossterm::event::{KeyCode, KeyEvent};
use image::{Rgb, RgbImage};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;
use ratatui_image::picker::Picker;

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
    let mut app = App::new(
        PathBuf::from("checkpoints"),
        "cpu".into(),
        &set,
        vec![Method::GradCam],
    );
    for epoch in 1..=EPOCHS {
        let report = CheckpointReport {
            path: PathBuf::from(format!("checkpoints/epoch_{epoch}.pdparams")),
            paths: vec![],
            epoch: Some(epoch),
            status: camwatch::monitor::history::Status::Ok,
            error: None,
            hash: format!("{epoch:064}"),
            time: String::new(),
            format: None,
            arch: None,
            samples: set
                .samples
                .iter()
                .map(|s| figures(&s.name, epoch))
                .collect(),
            mtime_ns: epoch as i64,
        };
        app.update(Message::Monitor {
            generation: 0,
            event: MonitorEvent::Checkpoint {
                report: Box::new(report),
                source: Source::History,
                ms: 0.0,
            },
        });
    }
    let picker = Picker::halfblocks();
    let mut terminal = Terminal::new(TestBackend::new(SIZE.0, SIZE.1)).unwrap();
    let mut cache = ImageCache::default();
    let area = Rect::new(0, 0, SIZE.0, SIZE.1);

    // One frame as the UI loop makes it; images missing from the cache are encoded
    // here (in the app, the encoder thread does it and the frame after shows them).
    let mut frame = |app: &mut App, cache: &mut ImageCache| -> (Duration, Duration) {
        let start = Instant::now();
        let areas = layout(area, app);
        app.clicks = areas.clicks();
        let missing = cache.touch(&wanted(app, &areas));
        for request in missing {
            let sample = &set.samples[request.key.sample];
            let bbox = sample.bbox.filter(|_| request.key.with_box);
            if let Some(p) = encode(&picker, sample.image.clone(), bbox.as_ref(), request.cells) {
                cache.insert(request, p);
            }
        }
        let encoded = start.elapsed();
        terminal.draw(|f| draw(f, app, &areas, cache)).unwrap();
        (encoded, start.elapsed())
    };
    frame(&mut app, &mut cache);

    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e3
    };
    let draws: Vec<Duration> = (0..200).map(|_| frame(&mut app, &mut cache).1).collect();
    println!(
        "{SAMPLES} samples × {EPOCHS} epochs, {}×{} cells, halfblocks",
        SIZE.0, SIZE.1
    );
    println!(
        "  frame, images cached:            {:6.2} ms (median of 200)",
        median(draws)
    );
    for (name, intent) in [
        ("next sample", Intent::NextSample),
        ("previous epoch", Intent::PreviousEpoch),
    ] {
        let mut total = Vec::new();
        let mut encoding = Vec::new();
        for _ in 0..40 {
            let start = Instant::now();
            app.update(Message::Key(KeyEvent::from(match intent {
                Intent::NextSample => KeyCode::Right,
                _ => KeyCode::Down,
            })));
            let (encoded, _) = frame(&mut app, &mut cache);
            encoding.push(encoded);
            total.push(start.elapsed());
        }
        println!(
            "  key ({name:<14}) → frame:     {:6.2} ms (median of 40; {:.2} ms of it encoding new images)",
            median(total),
            median(encoding)
        );
    }
    app.apply(Intent::ToggleGrid);
    frame(&mut app, &mut cache);
    let grid: Vec<Duration> = (0..100).map(|_| frame(&mut app, &mut cache).1).collect();
    println!(
        "  grid of 64, images cached:       {:6.2} ms (median of 100)",
        median(grid)
    );
}
