//! Terminal graphics: images encoded for the terminal's protocol, and the bookkeeping of
//! what is on screen, so that an image crosses the wire only when it must.
//!
//! Halfblocks are text and go through ratatui like any other cell. The graphics
//! protocols do not: ratatui is told to skip the cells an image covers, and
//! [`Screen::sync`] writes the image's escape sequence itself after each frame, only
//! when the image is new there or something (a popup, another layout) was drawn over
//! it since. Sixel and iTerm2 pixels are erased only by writing cells over them, so
//! an image comes back by being sent again; kitty keeps transmitted images, so it
//! comes back by being placed again by id, which costs a few bytes.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use image::{DynamicImage, RgbImage, imageops};
use ratatui::buffer::{Buffer, CellDiffOption};
use ratatui::layout::{Rect, Size};
use ratatui_image::protocol::Protocol as CellImage;
use ratatui_image::protocol::halfblocks::Halfblocks;
use ratatui_image::protocol::sixel::Sixel;

use crate::cam::image_ops;
use crate::cam::samples::BoundingBox;

/// How images reach the terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Two pixels a cell, as text (`▀` with foreground and background colours).
    Halfblocks,
    Sixel,
    /// iTerm2's inline images (also WezTerm's most faithful protocol).
    Iterm2,
    /// kitty's graphics protocol with direct placement by id (not Unicode placeholders,
    /// which kitty supports only from 0.28 and other terminals not at all).
    Kitty,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Halfblocks => "halfblocks",
            Protocol::Sixel => "sixel",
            Protocol::Iterm2 => "iterm2",
            Protocol::Kitty => "kitty",
        }
    }
}

/// The protocol and the size of a cell in pixels, which together say how many pixels
/// fill an area of cells with the right proportions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Graphics {
    pub protocol: Protocol,
    /// Width and height of a cell in pixels (for halfblocks, only the ratio matters).
    pub cell: (u16, u16),
}

/// An image ready for the terminal.
pub struct Encoded {
    /// Unique among all images this process encodes: what [`Screen`] compares.
    pub serial: u64,
    /// The cells it covers (within the area it was made for).
    pub size: Size,
    pub body: Body,
}

pub enum Body {
    /// Drawn by ratatui as text.
    Cells(CellImage),
    /// Sixel or iTerm2: the whole escape sequence, which clears its cells first.
    Escape(String),
    /// kitty: the transmission (sent once) of image `id`.
    Kitty { id: u32, transmit: String },
}

static SERIAL: AtomicU64 = AtomicU64::new(1);

/// Image ids in the terminal are shared by every program in the window: start
/// somewhere this process is unlikely to meet another's.
fn kitty_id(serial: u64) -> u32 {
    let base = std::process::id().wrapping_mul(2_654_435_761) & 0x7fff_0000;
    (base | 1).wrapping_add(serial as u32).max(1)
}

impl Graphics {
    /// The pixel size an `(width, height)` image gets to fill `cells` with its
    /// proportions kept (scaled up or down), and the cells that takes.
    pub fn fit(&self, (width, height): (u32, u32), cells: (u16, u16)) -> ((u32, u32), Size) {
        let (cw, ch) = (f64::from(self.cell.0.max(1)), f64::from(self.cell.1.max(1)));
        let scale = (f64::from(cells.0) * cw / f64::from(width.max(1)))
            .min(f64::from(cells.1) * ch / f64::from(height.max(1)));
        let (pw, ph) = (f64::from(width) * scale, f64::from(height) * scale);
        let size =
            |pixels: f64, cell: f64, most: u16| ((pixels / cell).ceil() as u16).clamp(1, most);
        match self.protocol {
            Protocol::Halfblocks => {
                // A cell holds one pixel across and two down.
                let columns = size(pw, cw, cells.0);
                let rows = size(ph, ch, cells.1);
                let half_rows = ((ph / (ch / 2.0)).round() as u32).clamp(1, 2 * u32::from(rows));
                let columns_px = ((pw / cw).round() as u32).clamp(1, u32::from(columns));
                (
                    (columns_px, half_rows),
                    Size::new(columns_px as u16, half_rows.div_ceil(2) as u16),
                )
            }
            _ => {
                let (w, h) = ((pw.round() as u32).max(1), (ph.round() as u32).max(1));
                (
                    (w, h),
                    Size::new(
                        size(f64::from(w), cw, cells.0),
                        size(f64::from(h), ch, cells.1),
                    ),
                )
            }
        }
    }

    /// `image` scaled to fill `cells` (proportions kept), with `bbox` (in the image's
    /// own pixels) outlined one or two pixels wide after scaling, encoded.
    pub fn encode(
        &self,
        image: &RgbImage,
        bbox: Option<&BoundingBox>,
        cells: (u16, u16),
    ) -> Option<Encoded> {
        if cells.0 == 0 || cells.1 == 0 || image.width() == 0 || image.height() == 0 {
            return None;
        }
        let ((shown_w, shown_h), size) = self.fit(image.dimensions(), cells);
        // kitty and iTerm2 scale images themselves: pixels beyond the picture's own
        // would only cost bytes on the wire.
        let scales = matches!(self.protocol, Protocol::Kitty | Protocol::Iterm2);
        let (w, h) = if scales && shown_w > image.width() {
            image.dimensions()
        } else {
            (shown_w, shown_h)
        };
        let mut scaled = imageops::resize(image, w, h, imageops::FilterType::Triangle);
        if let Some(b) = bbox {
            let (sx, sy) = (
                w as f32 / image.width() as f32,
                h as f32 / image.height() as f32,
            );
            let line = if self.protocol == Protocol::Halfblocks || w < 200 {
                1
            } else {
                2
            };
            image_ops::draw_box(
                &mut scaled,
                &[b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy],
                line,
            );
        }
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        let picture = DynamicImage::ImageRgb8(scaled);
        let body = match self.protocol {
            Protocol::Halfblocks => {
                // Halfblocks resizes to width × 2·height itself; an odd count of half
                // rows gets a black last one rather than a stretch.
                let mut padded = RgbImage::new(w, 2 * u32::from(size.height));
                imageops::replace(&mut padded, &picture.to_rgb8(), 0, 0);
                Body::Cells(CellImage::Halfblocks(
                    Halfblocks::new(DynamicImage::ImageRgb8(padded), size).ok()?,
                ))
            }
            Protocol::Sixel => Body::Escape(Sixel::new(picture, size, false).ok()?.data),
            Protocol::Iterm2 => Body::Escape(iterm2(&picture, size)?),
            Protocol::Kitty => {
                // kitty stretches an image over the cells it is placed on: padded
                // (transparent) to their proportions, it keeps its own.
                let ratio = f64::from(w) / f64::from(shown_w.max(1));
                let canvas = (
                    ((f64::from(size.width) * f64::from(self.cell.0) * ratio).round() as u32)
                        .max(w),
                    ((f64::from(size.height) * f64::from(self.cell.1) * ratio).round() as u32)
                        .max(h),
                );
                let mut padded = image::RgbaImage::new(canvas.0, canvas.1);
                imageops::replace(&mut padded, &picture.to_rgba8(), 0, 0);
                let id = kitty_id(serial);
                Body::Kitty {
                    id,
                    transmit: kitty_transmission(id, &DynamicImage::ImageRgba8(padded))?,
                }
            }
        };
        Some(Encoded { serial, size, body })
    }
}

/// iTerm2's inline image (PNG), fitted by the terminal into `size` cells with its
/// proportions kept, after clearing those cells; the cursor stays.
fn iterm2(picture: &DynamicImage, size: Size) -> Option<String> {
    let mut png = Vec::new();
    picture
        .write_to(&mut io::Cursor::new(&mut png), image::ImageFormat::Png)
        .ok()?;
    let mut out = String::new();
    for _ in 0..size.height {
        write!(out, "\x1b[{}X\x1b[1B", size.width).ok()?;
    }
    write!(
        out,
        "\x1b[{}A\x1b]1337;File=inline=1;size={};width={};height={};preserveAspectRatio=1;doNotMoveCursor=1:",
        size.height,
        png.len(),
        size.width,
        size.height
    )
    .ok()?;
    base64::engine::general_purpose::STANDARD.encode_string(&png, &mut out);
    out.push('\x07');
    Some(out)
}

/// `a=t`: store the image as PNG under `id` without showing it, quietly (`q=2`), in
/// chunks of 4096 base64 bytes as the protocol asks.
fn kitty_transmission(id: u32, picture: &DynamicImage) -> Option<String> {
    let mut png = Vec::new();
    picture
        .write_to(&mut io::Cursor::new(&mut png), image::ImageFormat::Png)
        .ok()?;
    let data = base64::engine::general_purpose::STANDARD.encode(png);
    let chunks: Vec<&[u8]> = data.as_bytes().chunks(4096).collect();
    let mut out = String::with_capacity(data.len() + 64 * chunks.len());
    for (i, chunk) in chunks.iter().enumerate() {
        let more = u8::from(i + 1 < chunks.len());
        if i == 0 {
            write!(out, "\x1b_Ga=t,f=100,i={id},q=2,m={more};").ok()?;
        } else {
            write!(out, "\x1b_Gm={more};").ok()?;
        }
        out.push_str(std::str::from_utf8(chunk).ok()?);
        out.push_str("\x1b\\");
    }
    Some(out)
}

/// Where an image is to be shown this frame.
pub struct Place<'a> {
    pub at: Rect,
    pub image: &'a Encoded,
}

/// Marks the cells of `at` as the image's: ratatui leaves them alone.
pub fn reserve(buffer: &mut Buffer, at: Rect) {
    for y in at.top()..at.bottom() {
        for x in at.left()..at.right() {
            if let Some(cell) = buffer.cell_mut((x, y)) {
                cell.reset();
                cell.set_diff_option(CellDiffOption::Skip);
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shown {
    at: Rect,
    serial: u64,
    kitty: Option<u32>,
    /// On screen and whole: nothing was drawn over it since it was sent.
    whole: bool,
}

/// The graphics on screen, as this process put them there.
#[derive(Default)]
pub struct Screen {
    shown: Vec<Shown>,
    /// kitty images the terminal holds.
    transmitted: HashSet<u32>,
}

impl Screen {
    /// The screen was cleared (a resize): nothing is shown any more. kitty images stay
    /// stored; their placements are deleted.
    pub fn cleared(&mut self, out: &mut impl Write) -> io::Result<()> {
        if self.shown.iter().any(|s| s.kitty.is_some()) {
            out.write_all(b"\x1b_Ga=d,d=a,q=2\x1b\\")?;
        }
        self.shown.clear();
        Ok(())
    }

    /// After ratatui drew `buffer` (with the image cells reserved): makes `places`
    /// visible, sending only images that are not already there and whole. An image
    /// with anything drawn over it (a popup) waits until it is uncovered; kitty's, which
    /// would hide the popup, is taken off meanwhile.
    pub fn sync(
        &mut self,
        out: &mut impl Write,
        places: &[Place],
        buffer: &Buffer,
    ) -> io::Result<()> {
        let previous = std::mem::take(&mut self.shown);
        for old in &previous {
            let kept = places
                .iter()
                .any(|p| p.at == old.at && p.image.serial == old.serial);
            if !kept
                && old.whole
                && let Some(id) = old.kitty
            {
                out.write_all(format!("\x1b_Ga=d,d=i,i={id},p=1,q=2\x1b\\").as_bytes())?;
            }
        }
        for place in places {
            let kitty = match &place.image.body {
                Body::Cells(_) => continue,
                Body::Kitty { id, .. } => Some(*id),
                Body::Escape(_) => None,
            };
            let before = previous
                .iter()
                .find(|s| s.at == place.at && s.serial == place.image.serial);
            let covered = !reserved(buffer, place.at);
            let whole = before.is_some_and(|s| s.whole);
            if covered {
                if whole && let Some(id) = kitty {
                    out.write_all(format!("\x1b_Ga=d,d=i,i={id},p=1,q=2\x1b\\").as_bytes())?;
                }
            } else if !whole {
                self.show(out, place)?;
            }
            self.shown.push(Shown {
                at: place.at,
                serial: place.image.serial,
                kitty,
                whole: !covered,
            });
        }
        out.flush()
    }

    /// kitty images no longer cached are freed in the terminal too.
    pub fn forget(&mut self, out: &mut impl Write, ids: &[u32]) -> io::Result<()> {
        for id in ids {
            if self.transmitted.remove(id) {
                out.write_all(format!("\x1b_Ga=d,d=I,i={id},q=2\x1b\\").as_bytes())?;
            }
        }
        Ok(())
    }

    fn show(&mut self, out: &mut impl Write, place: &Place) -> io::Result<()> {
        let at = place.at;
        let mut bytes = format!("\x1b[{};{}H", at.y + 1, at.x + 1);
        match &place.image.body {
            Body::Cells(_) => return Ok(()),
            Body::Escape(data) => bytes.push_str(data),
            Body::Kitty { id, transmit } => {
                if self.transmitted.insert(*id) {
                    bytes.push_str(transmit);
                }
                // Text that was under a popup would show around the image's edges.
                for row in 0..at.height {
                    let _ = write!(
                        bytes,
                        "\x1b[{};{}H\x1b[{}X",
                        at.y + 1 + row,
                        at.x + 1,
                        at.width
                    );
                }
                let _ = write!(
                    bytes,
                    "\x1b[{};{}H\x1b_Ga=p,i={id},p=1,q=2,C=1,c={},r={}\x1b\\",
                    at.y + 1,
                    at.x + 1,
                    place.image.size.width,
                    place.image.size.height
                );
            }
        }
        out.write_all(bytes.as_bytes())
    }
}

/// Writes `image` at the cursor, outside any UI (`camwatch show`): its rows are made
/// first (scrolling if need be), so that whatever is printed next goes below it.
pub fn print_inline(out: &mut impl Write, image: &Encoded) -> io::Result<()> {
    let rows = image.size.height;
    match &image.body {
        Body::Cells(CellImage::Halfblocks(cells)) => {
            let area = Rect::new(0, 0, image.size.width, rows);
            let mut buffer = Buffer::empty(area);
            ratatui::widgets::Widget::render(
                ratatui_image::Image::new(&CellImage::Halfblocks(cells.clone())),
                area,
                &mut buffer,
            );
            let mut text = String::new();
            for y in 0..rows {
                for x in 0..image.size.width {
                    let cell = &buffer[(x, y)];
                    let rgb = |c: ratatui::style::Color| match c {
                        ratatui::style::Color::Rgb(r, g, b) => (r, g, b),
                        _ => (0, 0, 0),
                    };
                    let (f, b) = (rgb(cell.fg), rgb(cell.bg));
                    let _ = write!(
                        text,
                        "\x1b[38;2;{};{};{}m\x1b[48;2;{};{};{}m{}",
                        f.0,
                        f.1,
                        f.2,
                        b.0,
                        b.1,
                        b.2,
                        cell.symbol()
                    );
                }
                text.push_str("\x1b[0m\n");
            }
            out.write_all(text.as_bytes())?;
        }
        Body::Cells(_) => {}
        Body::Escape(data) => {
            write!(out, "{}\x1b[{rows}A\x1b7", "\n".repeat(rows.into()))?;
            out.write_all(data.as_bytes())?;
            write!(out, "\x1b8\x1b[{rows}B\r")?;
        }
        Body::Kitty { id, transmit } => {
            write!(out, "{}\x1b[{rows}A\x1b7", "\n".repeat(rows.into()))?;
            out.write_all(transmit.as_bytes())?;
            let columns = image.size.width;
            write!(
                out,
                "\x1b_Ga=p,i={id},q=2,C=1,c={columns},r={rows}\x1b\\\x1b8\x1b[{rows}B\r"
            )?;
        }
    }
    out.flush()
}

/// Whether every cell of `at` is still reserved (nothing drawn over it this frame).
fn reserved(buffer: &Buffer, at: Rect) -> bool {
    (at.top()..at.bottom()).all(|y| {
        (at.left()..at.right()).all(|x| {
            buffer
                .cell((x, y))
                .is_none_or(|c| c.diff_option == CellDiffOption::Skip)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graphics(protocol: Protocol) -> Graphics {
        Graphics {
            protocol,
            cell: (10, 20),
        }
    }

    #[test]
    fn images_keep_their_proportions_in_cells() {
        // A square in 40×10 cells of 10×20 pixels: 200×200 pixels, 20×10 cells.
        let g = graphics(Protocol::Sixel);
        assert_eq!(g.fit((224, 224), (40, 10)), ((200, 200), Size::new(20, 10)));
        // Halfblocks: 20 columns of 10 px, 20 half rows of 10 px.
        let h = graphics(Protocol::Halfblocks);
        assert_eq!(h.fit((224, 224), (40, 10)), ((20, 20), Size::new(20, 10)));
        // Cells as wide as tall (a font of 8×8): the square is as many rows as columns.
        let square = Graphics {
            protocol: Protocol::Halfblocks,
            cell: (8, 8),
        };
        assert_eq!(
            square.fit((100, 100), (30, 10)),
            ((10, 20), Size::new(10, 10))
        );
    }

    fn encoded(protocol: Protocol) -> Encoded {
        let image = RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
        graphics(protocol)
            .encode(&image, Some(&[8.0, 8.0, 40.0, 30.0]), (12, 6))
            .unwrap()
    }

    fn frame(places: &[(Rect, bool)]) -> Buffer {
        let mut buffer = Buffer::empty(Rect::new(0, 0, 40, 20));
        for (at, covered) in places {
            reserve(&mut buffer, *at);
            if *covered {
                buffer[(at.x, at.y)].set_symbol("x");
                buffer[(at.x, at.y)].set_diff_option(CellDiffOption::None);
            }
        }
        buffer
    }

    #[test]
    fn images_are_sent_once_and_again_after_being_drawn_over() {
        for protocol in [Protocol::Sixel, Protocol::Iterm2, Protocol::Kitty] {
            let image = encoded(protocol);
            let at = Rect::new(2, 2, image.size.width, image.size.height);
            let place = [Place { at, image: &image }];
            let mut screen = Screen::default();
            let mut out = Vec::new();
            screen
                .sync(&mut out, &place, &frame(&[(at, false)]))
                .unwrap();
            let first = out.len();
            assert!(first > 500, "{protocol:?} sent {first} bytes");
            out.clear();
            screen
                .sync(&mut out, &place, &frame(&[(at, false)]))
                .unwrap();
            assert_eq!(out.len(), 0, "{protocol:?}: unchanged, nothing sent");
            // A popup over it, then gone: sent again (kitty: placed again, not sent).
            screen
                .sync(&mut out, &place, &frame(&[(at, true)]))
                .unwrap();
            let text = String::from_utf8_lossy(&out).to_string();
            assert_eq!(
                protocol == Protocol::Kitty,
                text.contains("a=d,d=i"),
                "{text:?}"
            );
            out.clear();
            screen
                .sync(&mut out, &place, &frame(&[(at, false)]))
                .unwrap();
            match protocol {
                Protocol::Kitty => {
                    let text = String::from_utf8_lossy(&out).to_string();
                    assert!(text.contains("a=p") && !text.contains("a=t"), "{text:?}");
                    assert!(out.len() < 200);
                }
                _ => assert_eq!(out.len(), first, "{protocol:?} sent again whole"),
            }
            // Resized: everything is sent or placed again.
            out.clear();
            screen.cleared(&mut out).unwrap();
            screen
                .sync(&mut out, &place, &frame(&[(at, false)]))
                .unwrap();
            assert!(!out.is_empty());
        }
    }

    #[test]
    fn halfblocks_are_text() {
        let image = encoded(Protocol::Halfblocks);
        assert!(matches!(image.body, Body::Cells(_)));
        let mut screen = Screen::default();
        let mut out = Vec::new();
        let at = Rect::new(0, 0, 12, 6);
        screen
            .sync(&mut out, &[Place { at, image: &image }], &frame(&[]))
            .unwrap();
        assert!(out.is_empty());
    }
}
