//! Image-side operations: preprocessing for the network, and turning a map into a
//! heatmap and an overlay, the way OpenCV and pytorch-grad-cam do.

use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use image::imageops::FilterType;

use super::colormap::Colormap;
use super::options::Normalize;

const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Images → `[B, 3, size, size]`: bilinear resize (antialiased when shrinking, like
/// PIL's), then scaling by `normalize`.
pub fn to_input(
    images: &[&RgbImage],
    size: usize,
    normalize: Normalize,
    device: &Device,
) -> Tensor<4> {
    let plane = size * size;
    let mut data = vec![0f32; images.len() * 3 * plane];
    for (b, image) in images.iter().enumerate() {
        let resized;
        let image = if image.dimensions() == (size as u32, size as u32) {
            *image
        } else {
            resized =
                image::imageops::resize(*image, size as u32, size as u32, FilterType::Triangle);
            &resized
        };
        for (i, pixel) in image.pixels().enumerate() {
            for c in 0..3 {
                let v = pixel[c] as f32;
                data[(b * 3 + c) * plane + i] = match normalize {
                    Normalize::Imagenet => (v / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c],
                    Normalize::Unit => v / 255.0,
                    Normalize::None => v,
                };
            }
        }
    }
    Tensor::from_data(TensorData::new(data, [images.len(), 3, size, size]), device)
}

/// Shifts a map to start at 0 and divides by its maximum (+1e-7), as pytorch-grad-cam's
/// `scale_cam_image`: a flat map becomes all zeros.
pub fn min_max(values: &[f32]) -> Vec<f32> {
    let min = values.iter().copied().fold(f32::INFINITY, f32::min);
    let max = values.iter().map(|v| v - min).fold(0f32, f32::max);
    values.iter().map(|v| (v - min) / (max + 1e-7)).collect()
}

/// Bilinear resize of a single-channel map with OpenCV's `INTER_LINEAR` geometry
/// (pixel centres aligned, edges clamped).
pub fn resize_bilinear(
    src: &[f32],
    (h, w): (usize, usize),
    (out_h, out_w): (usize, usize),
) -> Vec<f32> {
    if h == 0 || w == 0 || h.checked_mul(w) != Some(src.len()) {
        // Not a map of that size: nothing to draw, rather than an index out of range.
        return vec![0.0; out_h * out_w];
    }
    let axis = |n_in: usize, n_out: usize| -> Vec<(usize, usize, f32)> {
        let scale = n_in as f32 / n_out as f32;
        (0..n_out)
            .map(|o| {
                let s = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (s.floor() as usize).min(n_in - 1);
                let i1 = (i0 + 1).min(n_in - 1);
                (i0, i1, s - i0 as f32)
            })
            .collect()
    };
    let (ys, xs) = (axis(h, out_h), axis(w, out_w));
    let mut out = Vec::with_capacity(out_h * out_w);
    for &(y0, y1, fy) in &ys {
        for &(x0, x1, fx) in &xs {
            let top = src[y0 * w + x0] * (1.0 - fx) + src[y0 * w + x1] * fx;
            let bottom = src[y1 * w + x0] * (1.0 - fx) + src[y1 * w + x1] * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}

/// A `[0, 1]` map at image size → colours, indexed by `uint8(255 · v)` as OpenCV is.
pub fn heatmap(map01: &[f32], (width, height): (u32, u32), colormap: Colormap) -> RgbImage {
    let table = colormap.table();
    let mut out = RgbImage::new(width, height);
    for (pixel, &v) in out.pixels_mut().zip(map01) {
        pixel.0 = table[(255.0 * v.clamp(0.0, 1.0)) as usize];
    }
    out
}

/// How the heatmap is laid over the image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Blend {
    /// The heat's own weight: `a·heatmap + (1 − a)·image` with `a = 0.1 + 0.7·map`, so
    /// hot regions show the colours and cold ones the image, over bright or dark images
    /// alike.
    Alpha,
    /// The original write-up's: `heatmap · 0.4 + image`, saturated to 0..255 (washes out
    /// over bright objects).
    Writeup,
    /// pytorch-grad-cam's `show_cam_on_image`: `(1 − w)·heatmap + w·image`, divided by
    /// its maximum.
    ImageWeight(f32),
}

// Weights are checked to be in 0..=1 (never NaN), so equality is an equivalence.
impl Eq for Blend {}

impl std::hash::Hash for Blend {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
        if let Blend::ImageWeight(w) = self {
            w.to_bits().hash(state);
        }
    }
}

impl Blend {
    /// pytorch-grad-cam's default image weight.
    pub const GRAD_CAM: Blend = Blend::ImageWeight(0.5);

    pub fn name(self) -> &'static str {
        match self {
            Blend::Alpha => "alpha",
            Blend::Writeup => "writeup",
            Blend::ImageWeight(_) => "gradcam",
        }
    }

    /// The next style, for the UI's key.
    pub fn next(self) -> Blend {
        match self {
            Blend::Alpha => Blend::Writeup,
            Blend::Writeup => Blend::GRAD_CAM,
            Blend::ImageWeight(_) => Blend::Alpha,
        }
    }
}

impl std::str::FromStr for Blend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "alpha" => Ok(Blend::Alpha),
            "writeup" => Ok(Blend::Writeup),
            "gradcam" => Ok(Blend::GRAD_CAM),
            _ => Err(format!("{s:?}: expected alpha, writeup or gradcam")),
        }
    }
}

/// `heat` (the colours of `shown`, the map in [0, 1] at the image's size) over `image`.
pub fn overlay(image: &RgbImage, heat: &RgbImage, shown: &[f32], blend: Blend) -> RgbImage {
    let mut out = RgbImage::new(image.width(), image.height());
    match blend {
        Blend::Alpha => {
            let pixels = out.pixels_mut().zip(image.pixels()).zip(heat.pixels());
            for (((o, i), h), v) in pixels.zip(shown) {
                let a = 0.1 + 0.7 * v.clamp(0.0, 1.0);
                for c in 0..3 {
                    o[c] = (a * h[c] as f32 + (1.0 - a) * i[c] as f32).round() as u8;
                }
            }
        }
        Blend::Writeup => {
            for ((o, i), h) in out.pixels_mut().zip(image.pixels()).zip(heat.pixels()) {
                for c in 0..3 {
                    o[c] = (h[c] as f32 * 0.4 + i[c] as f32).round().min(255.0) as u8;
                }
            }
        }
        Blend::ImageWeight(w) => {
            let mixed: Vec<f32> = image
                .as_raw()
                .iter()
                .zip(heat.as_raw())
                .map(|(&i, &h)| (1.0 - w) * h as f32 / 255.0 + w * i as f32 / 255.0)
                .collect();
            let max = mixed.iter().copied().fold(0f32, f32::max).max(1e-7);
            for (o, v) in out.iter_mut().zip(mixed) {
                *o = (255.0 * v / max) as u8;
            }
        }
    }
    out
}

/// Images side by side, left to right, on a common height (the first's).
pub fn side_by_side(images: &[&RgbImage]) -> RgbImage {
    let height = images.first().map_or(0, |i| i.height());
    let width = images.iter().map(|i| i.width()).sum();
    let mut out = RgbImage::new(width, height);
    let mut x = 0;
    for image in images {
        image::imageops::replace(&mut out, *image, x as i64, 0);
        x += image.width();
    }
    out
}

/// Draws the outline of `bbox` (original-image pixels): a black line and a white one
/// inside it, each `line` pixels wide, so that it shows over any heatmap.
pub fn draw_box(image: &mut RgbImage, bbox: &super::samples::BoundingBox, line: u32) {
    let (w, h) = (image.width() as i64, image.height() as i64);
    let line = i64::from(line.max(1));
    let clamp = |v: f32, max: i64| (v.round() as i64).clamp(0, max - 1);
    let (x0, y0) = (clamp(bbox[0], w), clamp(bbox[1], h));
    let (x1, y1) = (clamp(bbox[2] - 1.0, w), clamp(bbox[3] - 1.0, h));
    for inset in 0..2 * line {
        let colour = if inset < line {
            [0, 0, 0]
        } else {
            [255, 255, 255]
        };
        let (a0, b0, a1, b1) = (x0 + inset, y0 + inset, x1 - inset, y1 - inset);
        if a0 > a1 || b0 > b1 {
            break;
        }
        for x in a0..=a1 {
            image.put_pixel(x as u32, b0 as u32, image::Rgb(colour));
            image.put_pixel(x as u32, b1 as u32, image::Rgb(colour));
        }
        for y in b0..=b1 {
            image.put_pixel(a0 as u32, y as u32, image::Rgb(colour));
            image.put_pixel(a1 as u32, y as u32, image::Rgb(colour));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_outline() {
        let mut image = RgbImage::from_pixel(160, 160, image::Rgb([100, 100, 100]));
        draw_box(&mut image, &[40.0, 40.0, 120.0, 100.0], 2);
        assert_eq!(image.get_pixel(40, 70).0, [0, 0, 0], "outer line");
        assert_eq!(image.get_pixel(42, 70).0, [255, 255, 255], "inner line");
        assert_eq!(
            image.get_pixel(119, 99).0,
            [0, 0, 0],
            "last pixel inside the box"
        );
        assert_eq!(
            image.get_pixel(80, 70).0,
            [100, 100, 100],
            "inside untouched"
        );
        assert_eq!(
            image.get_pixel(120, 70).0,
            [100, 100, 100],
            "outside untouched"
        );
    }

    #[test]
    fn bilinear_matches_opencv_geometry() {
        // cv2.resize(np.float32([[0, 1], [2, 3]]), (4, 4))
        let out = resize_bilinear(&[0., 1., 2., 3.], (2, 2), (4, 4));
        let expected = [
            0.0, 0.25, 0.75, 1.0, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2.0, 2.25, 2.75, 3.0,
        ];
        for (a, b) in out.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn min_max_of_flat_map_is_zero() {
        assert_eq!(min_max(&[2.0, 2.0]), vec![0.0, 0.0]);
        let m = min_max(&[1.0, 3.0]);
        assert!(m[0] == 0.0 && (m[1] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn writeup_overlay_saturates() {
        let image = RgbImage::from_pixel(1, 1, image::Rgb([250, 10, 0]));
        let heat = RgbImage::from_pixel(1, 1, image::Rgb([255, 100, 3]));
        let out = overlay(&image, &heat, &[1.0], Blend::Writeup);
        assert_eq!(out.get_pixel(0, 0).0, [255, 50, 1]);
    }

    #[test]
    fn alpha_overlay_shows_heat_where_the_map_is_high() {
        let image = RgbImage::from_pixel(2, 1, image::Rgb([250, 250, 250]));
        let heat = RgbImage::from_pixel(2, 1, image::Rgb([200, 0, 0]));
        let out = overlay(&image, &heat, &[0.0, 1.0], Blend::Alpha);
        // Cold: mostly the image; hot: mostly the heat, even over a white image.
        assert_eq!(out.get_pixel(0, 0).0, [245, 225, 225]);
        assert_eq!(out.get_pixel(1, 0).0, [210, 50, 50]);
    }
}
