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
        let size = plan.screen;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::app::tests::app_with;
    use crate::tui::graphics::{Graphics, Protocol};
    use crate::tui::{Intent, Picture};
    use ratatui::{TerminalOptions, Viewport};

    fn terminal() -> Terminal<CrosstermBackend<Vec<u8>>> {
        Terminal::with_options(
            CrosstermBackend::new(Vec::new()),
            TerminalOptions {
                viewport: Viewport::Fixed(Rect::new(0, 0, 100, 30)),
            },
        )
        .unwrap()
    }

    /// Encodes the plan's images (as the encoder thread would), but not `except`.
    fn make(frames: &mut Frames, plan: &Plan, except: impl Fn(&ImageRequest) -> bool) {
        let graphics = Graphics {
            protocol: Protocol::Sixel,
            cell: (10, 20),
        };
        for request in frames.missing(plan) {
            if except(&request) {
                continue;
            }
            let shade = request.key.sample() as u8 * 70;
            let image =
                image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([shade, x as u8, y as u8]));
            let encoded = graphics.encode(&image, None, request.cells).unwrap();
            frames
                .received(Encoding::Done(request, Box::new(encoded)), &mut io::sink())
                .unwrap();
        }
    }

    fn overlay(request: &ImageRequest) -> bool {
        matches!(request.key.picture, Picture::Overlay(..))
    }

    #[test]
    fn a_frame_waits_for_its_images_then_panes_keep_theirs() {
        let mut app = app_with(3);
        let mut terminal = terminal();
        let mut frames = Frames::default();
        let screen = Rect::new(0, 0, 100, 30);
        let plan = Plan::new(&app, screen);
        make(&mut frames, &plan, |_| false);
        let first = frames
            .draw(&mut terminal, &app, &plan)
            .unwrap()
            .expect("drawn");
        let overlay_at = first.iter().find(|(p, _)| *p == Pane::Overlay).unwrap().1;

        // The next sample's overlay is not made yet: the last frame stays.
        app.apply(Intent::NextSample);
        let plan = Plan::new(&app, screen);
        make(&mut frames, &plan, overlay);
        assert!(frames.draw(&mut terminal, &app, &plan).unwrap().is_none());
        assert!(frames.holding());

        // Past the hold, the frame is drawn; the overlay pane keeps its last image.
        std::thread::sleep(HOLD + Duration::from_millis(50));
        let drawn = frames
            .draw(&mut terminal, &app, &plan)
            .unwrap()
            .expect("drawn");
        assert_eq!(
            drawn.iter().find(|(p, _)| *p == Pane::Overlay).map(|d| d.1),
            Some(overlay_at)
        );

        // A map the history lacks is not waited for, and its pane shows no old image.
        app.apply(Intent::NextSample);
        let plan = Plan::new(&app, screen);
        make(&mut frames, &plan, overlay);
        let missing = plan.slots.iter().find(|s| s.pane == Pane::Overlay).unwrap();
        frames
            .received(
                Encoding::Unavailable(missing.request.clone()),
                &mut io::sink(),
            )
            .unwrap();
        let drawn = frames
            .draw(&mut terminal, &app, &plan)
            .unwrap()
            .expect("not held");
        assert!(drawn.iter().all(|(p, _)| *p != Pane::Overlay));
    }
}
