//! From a frame plan to the screen: the encoded images, what each pane showed last, the
//! graphics on screen, and a frame held back (up to [`HOLD`]) while its images are
//! made, so that a frame shows one state: never a new header over old images, and
//! never a blank pane where an image was.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;

use super::App;
use super::graphics;
use super::images::{Encoding, ImageCache, ImageRequest};
use super::view::{self, Pane, Plan};

/// How long a frame may wait for its images before it is drawn with what there is
/// (the previous image of a pane, or a placeholder): until then the screen keeps the
/// last whole frame.
pub const HOLD: Duration = Duration::from_millis(700);

/// What goes to the screen: the encoded images, what each pane showed last, the
/// graphics on screen, and a frame held back while its images are made.
#[derive(Default)]
pub struct Frames {
    cache: ImageCache,
    /// Images without a map (yet): drawn as placeholders, not waited for.
    unavailable: HashSet<ImageRequest>,
    /// What each pane showed last, shown again while its new image is made.
    last: HashMap<Pane, ImageRequest>,
    screen: graphics::Screen,
    size: Option<(u16, u16)>,
    /// Since when the frame waits for its images.
    waiting: Option<Instant>,
}

impl Frames {
    /// Takes an image from the encoder; returns whether the screen may need it.
    pub fn received(&mut self, encoding: Encoding, out: &mut impl Write) -> io::Result<bool> {
        match encoding {
            Encoding::Done(request, encoded) => {
                self.unavailable.remove(&request);
                let dropped = self.cache.insert(request, *encoded);
                self.screen.forget(out, &dropped)?;
                Ok(true)
            }
            Encoding::Unavailable(request) => Ok(self.unavailable.insert(request)),
        }
    }

    /// The history changed: images that had no map may have one now.
    pub fn maps_changed(&mut self) {
        self.unavailable.clear();
    }

    /// The plan's images to make: neither cached nor known to lack a map.
    pub fn missing(&mut self, plan: &Plan) -> Vec<ImageRequest> {
        let mut missing = self.cache.touch(&plan.requests());
        missing.retain(|r| !self.unavailable.contains(r));
        missing
    }

    /// Whether a frame is held back, waiting for its images.
    pub fn holding(&self) -> bool {
        self.waiting.is_some()
    }

    /// Draws `plan`, unless its images are still being made and the last frame may
    /// stay a little longer; graphics go to the same stream as ratatui's cells.
    /// Returns where each pane's image went, or `None` when the frame was held back.
    pub fn draw<W: Write>(
        &mut self,
        terminal: &mut Terminal<CrosstermBackend<W>>,
        app: &App,
        plan: &Plan,
    ) -> io::Result<Option<Vec<(Pane, Rect)>>> {
        let size = terminal.size()?;
        let resized = self.size != Some((size.width, size.height));
        let ready = plan
            .slots
            .iter()
            .all(|s| self.cache.get(&s.request).is_some() || self.unavailable.contains(&s.request));
        if !ready && !resized {
            let since = *self.waiting.get_or_insert_with(Instant::now);
            if since.elapsed() < HOLD {
                return Ok(None);
            }
        }
        self.waiting = None;
        if resized {
            // ratatui clears the screen on a resize: every image must come again.
            self.screen.cleared(&mut terminal.backend_mut())?;
            self.size = Some((size.width, size.height));
        }
        // Each pane's image, or while it is made, the one the pane showed last.
        let requests: Vec<Option<ImageRequest>> = plan
            .slots
            .iter()
            .map(|slot| {
                if self.cache.get(&slot.request).is_some() {
                    return Some(slot.request.clone());
                }
                if self.unavailable.contains(&slot.request) {
                    return None;
                }
                let last = self.last.get(&slot.pane)?;
                (last.cells == slot.request.cells && self.cache.get(last).is_some())
                    .then(|| last.clone())
            })
            .collect();
        let shown: Vec<_> = requests
            .iter()
            .map(|r| r.as_ref().and_then(|r| self.cache.get(r)))
            .collect();
        let mut places = Vec::new();
        let mut drawn = Vec::new();
        let completed = terminal.draw(|frame| {
            let (p, d) = view::draw(frame, app, plan, &shown);
            (places, drawn) = (p, d);
        })?;
        let buffer = completed.buffer.clone();
        self.screen
            .sync(&mut terminal.backend_mut(), &places, &buffer)?;
        for (slot, request) in plan.slots.iter().zip(requests) {
            match request {
                Some(request) => self.last.insert(slot.pane, request),
                None => self.last.remove(&slot.pane),
            };
        }
        Ok(Some(drawn))
    }
}
