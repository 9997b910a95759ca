//! Images for the terminal, made off the UI thread: the encoder reads stored maps
//! through the monitor's [`MapReader`], draws overlays, and encodes them for the
//! terminal ([`Graphics::encode`]). The UI asks for the images of the frame it is about
//! to draw; a newer request replaces an older one (latest wins), and encoded images are
//! cached by what they show and their size in cells.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, Sender};

use image::RgbImage;

use super::Event;
use super::graphics::{Body, Encoded, Graphics};
use crate::cam::image_ops::Blend;
use crate::cam::samples::BoundingBox;
use crate::cam::{Colormap, SampleSet};
use crate::compare;
use crate::monitor::maps::{MapId, MapReader};
use crate::render::{self, OverlayStyle};

/// A stored map of one of the runs followed (by index).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RunMap {
    pub run: usize,
    pub map: MapId,
}

/// What an image shows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Picture {
    /// A sample as it is.
    Image(usize),
    /// A map over its sample.
    Overlay(RunMap, Blend),
    /// A map alone (small timeline thumbnails read better without the image).
    Heat(RunMap),
    /// The signed difference of two runs' maps of a sample, second minus first (see
    /// [`compare::signed_difference`]).
    Difference(RunMap, RunMap),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageKey {
    pub picture: Picture,
    /// The sample's object box drawn over it.
    pub with_box: bool,
}

impl ImageKey {
    pub fn sample(&self) -> usize {
        match &self.picture {
            Picture::Image(sample) => *sample,
            Picture::Overlay(m, _) | Picture::Heat(m) | Picture::Difference(m, _) => m.map.sample,
        }
    }
}

/// An image at a size in terminal cells.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRequest {
    pub key: ImageKey,
    pub cells: (u16, u16),
}

/// Draws pictures of samples and their stored maps.
#[derive(Clone)]
pub struct Painter {
    pub samples: SampleSet,
    /// One reader per run followed.
    maps: Vec<MapReader>,
    colormap: Colormap,
}

impl Painter {
    pub fn new(samples: SampleSet, maps: Vec<MapReader>, colormap: Colormap) -> Painter {
        Painter {
            samples,
            maps,
            colormap,
        }
    }

    /// The box to draw over the picture `key` names, if it has one.
    pub fn bbox(&self, key: &ImageKey) -> Option<BoundingBox> {
        key.with_box
            .then(|| self.samples.samples.get(key.sample())?.bbox)
            .flatten()
    }

    /// The picture, at the sample's own size, without its box; `None` while the map is
    /// not in the history.
    pub fn paint(&mut self, picture: &Picture) -> Option<RgbImage> {
        let (id, blend) = match picture {
            Picture::Image(sample) => {
                return Some(self.samples.samples.get(*sample)?.image.clone());
            }
            Picture::Overlay(id, blend) => (id, *blend),
            Picture::Heat(id) => (id, Blend::Alpha),
            Picture::Difference(a, b) => {
                let size = self.samples.samples.get(a.map.sample)?.image.dimensions();
                let (a, b) = (self.map(a)?, self.map(b)?);
                let difference = compare::signed_difference(&a, &b, size);
                return Some(compare::difference_image(&difference, size));
            }
        };
        let map = self.map(id)?;
        let sample = self.samples.samples.get(id.map.sample)?;
        let style = OverlayStyle {
            colormap: self.colormap,
            blend,
            side_by_side: false,
        };
        let drawn = render::draw(&sample.image, &map, &style);
        Some(match picture {
            Picture::Heat(_) => drawn.heat,
            _ => drawn.overlay,
        })
    }

    /// A run's stored map, if its history has it yet.
    pub fn map(&mut self, id: &RunMap) -> Option<crate::cam::Map> {
        self.maps.get_mut(id.run)?.map(&id.map)
    }
}

/// What the encoder thread sends back.
pub enum Encoding {
    Done(ImageRequest, Box<Encoded>),
    /// Its map is not in the history (yet).
    Unavailable(ImageRequest),
}

/// The encoder thread's side: the UI sends it the images a frame needs.
pub struct Encoder {
    requests: Sender<Vec<ImageRequest>>,
    last: Vec<ImageRequest>,
}

impl Encoder {
    pub fn spawn(mut painter: Painter, graphics: Graphics, out: Sender<Event>) -> Encoder {
        let (requests, inbox) = mpsc::channel::<Vec<ImageRequest>>();
        std::thread::Builder::new()
            .name("camwatch-images".into())
            .spawn(move || encode_loop(&mut painter, graphics, &inbox, &out))
            .ok();
        Encoder {
            requests,
            last: Vec::new(),
        }
    }

    /// Asks again next time, even for the same images: some may have been unavailable
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
    graphics: Graphics,
    inbox: &Receiver<Vec<ImageRequest>>,
    out: &Sender<Event>,
) {
    let mut pending: Vec<ImageRequest> = Vec::new();
    // Pictures at their own size, for other sizes of the same picture.
    let mut painted: HashMap<Picture, RgbImage> = HashMap::new();
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
        let picture = &request.key.picture;
        let image = match painted.get(picture) {
            Some(image) => Some(image.clone()),
            None => painter.paint(picture),
        };
        let encoded = image.and_then(|image| {
            if painted.len() > 256 {
                painted.clear();
            }
            painted.insert(picture.clone(), image.clone());
            let bbox = painter.bbox(&request.key);
            graphics.encode(&image, bbox.as_ref(), request.cells)
        });
        let message = match encoded {
            Some(encoded) => Encoding::Done(request, Box::new(encoded)),
            None => Encoding::Unavailable(request),
        };
        if out.send(Event::Image(message)).is_err() {
            return;
        }
    }
}

/// Encoded images by request, least recently used dropped first.
#[derive(Default)]
pub struct ImageCache {
    images: HashMap<ImageRequest, (Encoded, u64)>,
    clock: u64,
}

/// Enough for a grid of 64 samples, a long timeline and the large views, twice.
const CACHE_CAPACITY: usize = 600;

impl ImageCache {
    /// Stores an image; returns the kitty ids of images dropped to make room (the
    /// terminal may free them).
    pub fn insert(&mut self, request: ImageRequest, encoded: Encoded) -> Vec<u32> {
        self.clock += 1;
        self.images.insert(request, (encoded, self.clock));
        let mut dropped = Vec::new();
        if self.images.len() > CACHE_CAPACITY {
            let mut ages: Vec<u64> = self.images.values().map(|(_, t)| *t).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() - CACHE_CAPACITY / 2];
            self.images.retain(|_, (encoded, t)| {
                let keep = *t >= cut;
                if let (false, Body::Kitty { id, .. }) = (keep, &encoded.body) {
                    dropped.push(*id);
                }
                keep
            });
        }
        dropped
    }

    pub fn get(&self, request: &ImageRequest) -> Option<&Encoded> {
        self.images.get(request).map(|(e, _)| e)
    }

    /// Marks the requests as used now; returns those not cached.
    pub fn touch(&mut self, requests: &[&ImageRequest]) -> Vec<ImageRequest> {
        self.clock += 1;
        let mut missing = Vec::new();
        for request in requests {
            match self.images.get_mut(*request) {
                Some((_, t)) => *t = self.clock,
                None => missing.push((*request).clone()),
            }
        }
        missing
    }
}
