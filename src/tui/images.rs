//! Images for the terminal, made off the UI thread: the encoder reads maps from the
//! history (its own read connection), draws overlays, resizes and encodes them for the
//! terminal's protocol, and sends them back as messages. The UI asks for the images of
//! the frame it is about to draw; a newer request replaces an older one (latest wins),
//! and encoded images are cached by what they show and their size in cells.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};

use image::{DynamicImage, RgbImage};
use ratatui::layout::Size;
use ratatui_image::picker::{Picker, ProtocolType};
use ratatui_image::protocol::Protocol;
use ratatui_image::{FilterType, Resize};

use super::app::Message;
use crate::cam::image_ops::{self, Blend};
use crate::cam::samples::BoundingBox;
use crate::cam::{Colormap, Layer, Map, Method, SampleSet, Target};
use crate::monitor::history::{History, Setting};
use crate::monitor::{self, sample_keys};
use crate::render::{self, CamSettings, OverlayStyle};

/// What an image shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum View {
    /// The sample as it is.
    Image,
    /// Heatmap over the image.
    Overlay,
    /// The heatmap alone (small timeline thumbnails read better without the image).
    Heat,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageKey {
    pub sample: usize,
    pub view: View,
    /// The checkpoint's hash (empty for [`View::Image`]).
    pub hash: String,
    pub method: Method,
    pub layer: Layer,
    pub target: Target,
    pub with_box: bool,
}

/// An image at a size in terminal cells.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRequest {
    pub key: ImageKey,
    pub cells: (u16, u16),
}

/// Draws images of samples and their maps from the history.
pub struct Painter {
    pub samples: SampleSet,
    history: Option<History>,
    history_file: PathBuf,
    dir: PathBuf,
    settings: CamSettings,
    /// Sample keys for targets other than the label, and for the label.
    keys: Vec<String>,
    label_keys: Vec<String>,
    pub style: OverlayStyle,
}

/// A copy for another thread, which opens its own connection to the history.
impl Clone for Painter {
    fn clone(&self) -> Self {
        Painter {
            samples: self.samples.clone(),
            history: None,
            history_file: self.history_file.clone(),
            dir: self.dir.clone(),
            settings: self.settings.clone(),
            keys: self.keys.clone(),
            label_keys: self.label_keys.clone(),
            style: self.style,
        }
    }
}

impl Painter {
    pub fn new(
        samples: SampleSet,
        history_file: PathBuf,
        dir: PathBuf,
        settings: CamSettings,
        colormap: Colormap,
        blend: Blend,
    ) -> Painter {
        Painter {
            keys: sample_keys(&samples, Target::Predicted),
            label_keys: sample_keys(&samples, Target::Label),
            samples,
            history: None,
            history_file,
            dir,
            settings,
            style: OverlayStyle {
                colormap,
                blend,
                side_by_side: false,
            },
        }
    }

    /// The stored map of a sample at a checkpoint, if the history has it yet.
    pub fn map(&mut self, key: &ImageKey) -> Option<Map> {
        if self.history.is_none() {
            self.history = History::open(&self.history_file, &self.dir).ok();
        }
        let history = self.history.as_ref()?;
        let mut settings = self.settings.clone();
        settings.request.layer = key.layer;
        settings.request.target = key.target;
        let setting: Setting = monitor::setting(&settings);
        let keys = if key.target == Target::Label {
            &self.label_keys
        } else {
            &self.keys
        };
        let stored = history
            .results(
                &key.hash,
                &setting,
                std::slice::from_ref(keys.get(key.sample)?),
            )
            .ok()?;
        stored
            .into_iter()
            .next()?
            .maps
            .into_iter()
            .find(|m| m.method == key.method)
            .map(|m| m.map)
    }

    /// The box to draw over the picture `key` names, if it has one.
    pub fn bbox(&self, key: &ImageKey) -> Option<BoundingBox> {
        key.with_box
            .then(|| self.samples.samples.get(key.sample)?.bbox)
            .flatten()
    }

    /// The picture `key` names, at the sample's own size, without its box.
    pub fn paint(&mut self, key: &ImageKey) -> Option<RgbImage> {
        let image = &self.samples.samples.get(key.sample)?.image;
        let out = match key.view {
            View::Image => image.clone(),
            View::Overlay | View::Heat => {
                let map = self.map(key)?;
                let sample = self.samples.samples.get(key.sample)?;
                let drawn = render::draw(&sample.image, &map, &self.style);
                if key.view == View::Heat {
                    drawn.heat
                } else {
                    drawn.overlay
                }
            }
        };
        Some(out)
    }
}

/// Encodes `image` to fill `cells` (keeping its proportions) in the picker's protocol,
/// with `bbox` outlined in lines about one terminal pixel wide (a halfblock is one
/// column by half a row), so that the box survives the shrinking.
pub fn encode(
    picker: &Picker,
    mut image: RgbImage,
    bbox: Option<&BoundingBox>,
    cells: (u16, u16),
) -> Option<Protocol> {
    if let Some(bbox) = bbox {
        let (width, height) = match picker.protocol_type() {
            ProtocolType::Halfblocks => (u32::from(cells.0), 2 * u32::from(cells.1)),
            _ => {
                let font = picker.font_size();
                (
                    u32::from(cells.0) * u32::from(font.width),
                    u32::from(cells.1) * u32::from(font.height),
                )
            }
        };
        let shrink = (image.width() as f32 / width.max(1) as f32)
            .max(image.height() as f32 / height.max(1) as f32);
        image_ops::draw_box(&mut image, bbox, shrink.ceil() as u32);
    }
    picker
        .new_protocol(
            DynamicImage::ImageRgb8(image),
            Size::new(cells.0, cells.1),
            Resize::Scale(Some(FilterType::Triangle)),
        )
        .ok()
}

/// The encoder thread's side: the UI sends it the images a frame needs.
pub struct Encoder {
    requests: Sender<Vec<ImageRequest>>,
    last: Vec<ImageRequest>,
}

impl Encoder {
    pub fn spawn(mut painter: Painter, picker: Picker, out: Sender<Message>) -> Encoder {
        let (requests, inbox) = mpsc::channel::<Vec<ImageRequest>>();
        std::thread::Builder::new()
            .name("camwatch-images".into())
            .spawn(move || encode_loop(&mut painter, &picker, &inbox, &out))
            .ok();
        Encoder {
            requests,
            last: Vec::new(),
        }
    }

    /// Asks again next time, even for the same images: some may have been skipped
    /// because their maps were not in the history yet.
    pub fn retry(&mut self) {
        self.last.clear();
    }

    /// Asks for the images missing from the cache (not again if already asked).
    pub fn want(&mut self, missing: Vec<ImageRequest>) {
        if missing != self.last {
            self.last.clone_from(&missing);
            let _ = self.requests.send(missing);
        }
    }
}

fn encode_loop(
    painter: &mut Painter,
    picker: &Picker,
    inbox: &Receiver<Vec<ImageRequest>>,
    out: &Sender<Message>,
) {
    let mut pending: Vec<ImageRequest> = Vec::new();
    // Images whose maps are not in the history yet are asked for again by later frames.
    let mut painted: HashMap<ImageKey, RgbImage> = HashMap::new();
    loop {
        if pending.is_empty() {
            match inbox.recv() {
                Ok(requests) => pending = requests,
                Err(_) => return,
            }
        }
        // Latest wins: only the newest request matters.
        if let Some(newest) = inbox.try_iter().last() {
            pending = newest;
        }
        if pending.is_empty() {
            continue;
        }
        let request = pending.remove(0);
        let image = match painted.get(&request.key) {
            Some(image) => Some(image.clone()),
            None => painter.paint(&request.key),
        };
        let Some(image) = image else {
            continue;
        };
        if painted.len() > 256 {
            painted.clear();
        }
        painted.insert(request.key.clone(), image.clone());
        let bbox = painter.bbox(&request.key);
        if let Some(protocol) = encode(picker, image, bbox.as_ref(), request.cells) {
            let message = Message::Encoded {
                request,
                protocol: Box::new(protocol),
            };
            if out.send(message).is_err() {
                return;
            }
        }
    }
}

/// Encoded images by request, least recently used dropped first.
#[derive(Default)]
pub struct ImageCache {
    images: HashMap<ImageRequest, (Protocol, u64)>,
    clock: u64,
}

/// Enough for a grid of 64 samples, a long timeline and the large views, twice.
const CACHE_CAPACITY: usize = 600;

impl ImageCache {
    pub fn insert(&mut self, request: ImageRequest, protocol: Protocol) {
        self.clock += 1;
        self.images.insert(request, (protocol, self.clock));
        if self.images.len() > CACHE_CAPACITY {
            let mut ages: Vec<u64> = self.images.values().map(|(_, t)| *t).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() - CACHE_CAPACITY / 2];
            self.images.retain(|_, (_, t)| *t >= cut);
        }
    }

    pub fn get(&self, request: &ImageRequest) -> Option<&Protocol> {
        self.images.get(request).map(|(p, _)| p)
    }

    /// Marks the requests as used now; returns those not cached.
    pub fn touch(&mut self, requests: &[ImageRequest]) -> Vec<ImageRequest> {
        self.clock += 1;
        let mut missing = Vec::new();
        for request in requests {
            match self.images.get_mut(request) {
                Some((_, t)) => *t = self.clock,
                None => missing.push(request.clone()),
            }
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui_image::Image;

    /// Every protocol encodes an overlay with its box and draws it into a buffer; the
    /// graphics protocols put their escape sequence in the first cell.
    #[test]
    fn every_protocol_encodes_and_draws() {
        let image = RgbImage::from_fn(224, 160, |x, y| image::Rgb([x as u8, y as u8, 90]));
        let bbox = [40.0, 30.0, 180.0, 120.0];
        for (protocol, marker) in [
            (ProtocolType::Halfblocks, None),
            (ProtocolType::Kitty, Some("\x1b_G")),
            (ProtocolType::Sixel, Some("\x1bP")),
            (ProtocolType::Iterm2, Some("\x1b]1337;File=")),
        ] {
            let mut picker = Picker::halfblocks();
            picker.set_protocol_type(protocol);
            let encoded = encode(&picker, image.clone(), Some(&bbox), (30, 10))
                .unwrap_or_else(|| panic!("{protocol:?} encodes"));
            let size = encoded.size();
            assert!(
                size.width <= 30 && size.height <= 10,
                "{protocol:?}: {size:?}"
            );
            let mut terminal = Terminal::new(TestBackend::new(40, 12)).unwrap();
            terminal
                .draw(|f| f.render_widget(Image::new(&encoded), f.area()))
                .unwrap();
            let first = terminal.backend().buffer()[(0, 0)].symbol().to_string();
            match marker {
                Some(escape) => assert!(first.contains(escape), "{protocol:?}: {first:?}"),
                None => assert!(first == "▀" || first == "▄", "{first:?}"),
            }
        }
    }
}
