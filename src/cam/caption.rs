//! Captions burnt into exported images (epoch, probability, box energy, the run), in a
//! 5×7 pixel font of digits, lowercase letters and a little punctuation: strips and
//! animations stay readable where they are pasted, without a font file or a
//! text-rendering dependency.

use image::{Rgb, RgbImage};

const GLYPH: (u32, u32) = (5, 7);

/// Rows of 5 bits, top first, for each character a caption may hold.
fn glyph(c: char) -> Option<[u8; 7]> {
    Some(match c {
        '0' => [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
        '1' => [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
        '2' => [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
        '3' => [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
        '4' => [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02],
        '5' => [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
        '6' => [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e],
        '7' => [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
        '9' => [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c],
        ':' => [0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00],
        '-' => [0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00],
        '/' => [0x01, 0x02, 0x02, 0x04, 0x08, 0x08, 0x10],
        '=' => [0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00],
        '_' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        ' ' => [0; 7],
        'a' => [0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f],
        'b' => [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1e],
        'c' => [0x00, 0x00, 0x0e, 0x10, 0x10, 0x11, 0x0e],
        'd' => [0x01, 0x01, 0x0d, 0x13, 0x11, 0x11, 0x0f],
        'e' => [0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e],
        'f' => [0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08],
        'g' => [0x00, 0x0f, 0x11, 0x11, 0x0f, 0x01, 0x0e],
        'h' => [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11],
        'i' => [0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e],
        'j' => [0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0c],
        'k' => [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12],
        'l' => [0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e],
        'm' => [0x00, 0x00, 0x1a, 0x15, 0x15, 0x11, 0x11],
        'n' => [0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11],
        'o' => [0x00, 0x00, 0x0e, 0x11, 0x11, 0x11, 0x0e],
        'p' => [0x00, 0x00, 0x1e, 0x11, 0x1e, 0x10, 0x10],
        'q' => [0x00, 0x00, 0x0d, 0x13, 0x0f, 0x01, 0x01],
        'r' => [0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10],
        's' => [0x00, 0x00, 0x0e, 0x10, 0x0e, 0x01, 0x1e],
        't' => [0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06],
        'u' => [0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d],
        'v' => [0x00, 0x00, 0x11, 0x11, 0x11, 0x0a, 0x04],
        'w' => [0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0a],
        'x' => [0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11],
        'y' => [0x00, 0x00, 0x11, 0x11, 0x0f, 0x01, 0x0e],
        'z' => [0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f],
        _ => return None,
    })
}

/// The characters [`burn`] draws (others are left out).
pub fn can_draw(c: char) -> bool {
    glyph(c).is_some()
}

/// `line` as [`burn`] can draw it: lowercased (the font has no capitals), without the
/// characters it has no glyph for.
pub fn drawable(line: &str) -> String {
    line.to_lowercase()
        .chars()
        .filter(|&c| can_draw(c))
        .collect()
}

/// Lines of text in white on a darkened band across the top of `image`, as large as
/// the widest line allows (1 to 3 pixels a font pixel).
pub fn burn(image: &mut RgbImage, lines: &[String]) {
    let widest = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0) as u32;
    if widest == 0 || image.width() < GLYPH.0 + 2 {
        return;
    }
    let advance = GLYPH.0 + 1;
    let scale = (image.width().saturating_sub(4) / (widest * advance)).clamp(1, 3);
    let line_height = (GLYPH.1 + 2) * scale;
    let band = (line_height * lines.len() as u32 + 2 * scale).min(image.height());
    for y in 0..band {
        for x in 0..image.width() {
            let p = image.get_pixel_mut(x, y);
            p.0 = p.0.map(|v| (u16::from(v) * 3 / 10) as u8);
        }
    }
    for (row, line) in lines.iter().enumerate() {
        let top = 2 * scale + row as u32 * line_height;
        for (column, c) in line.chars().enumerate() {
            let Some(rows) = glyph(c) else { continue };
            let left = 2 * scale + column as u32 * advance * scale;
            for (gy, bits) in rows.iter().enumerate() {
                for gx in 0..GLYPH.0 {
                    if bits & (0x10 >> gx) == 0 {
                        continue;
                    }
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let (x, y) = (left + gx * scale + dx, top + gy as u32 * scale + dy);
                            if x < image.width() && y < image.height() {
                                image.put_pixel(x, y, Rgb([255, 255, 255]));
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captions_are_drawn_in_white_on_a_dark_band() {
        let mut image = RgbImage::from_pixel(120, 60, Rgb([200, 100, 50]));
        burn(&mut image, &["epoch 12".into(), "p 0.83".into()]);
        let white = image.pixels().filter(|p| p.0 == [255, 255, 255]).count();
        assert!(white > 50, "{white} white pixels");
        assert_eq!(image.get_pixel(119, 1).0, [60, 30, 15], "the band darkens");
        assert_eq!(
            image.get_pixel(60, 59).0,
            [200, 100, 50],
            "below it, untouched"
        );
        // Every character of a caption is in the font.
        assert!("epoch 0123456789 p box hit miss".chars().all(can_draw));
        assert!(('a'..='z').chain("_-()".chars()).all(can_draw), "run names");
        assert_eq!(drawable("checkpoint Best.pth ✓"), "checkpoint best.pth ");
        // No two letters alike.
        let mut seen: Vec<[u8; 7]> = ('a'..='z').filter_map(glyph).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 26);
    }
}
