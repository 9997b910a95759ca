//! How well a map points at the object: energy inside the box and the pointing game,
//! and how similar two maps are.

use super::samples::BoundingBox;

/// Whether the centre of pixel (x, y) lies inside the box.
fn inside(bbox: &BoundingBox, x: usize, y: usize) -> bool {
    let (cx, cy) = (x as f32 + 0.5, y as f32 + 0.5);
    cx >= bbox[0] && cx < bbox[2] && cy >= bbox[1] && cy < bbox[3]
}

/// The share of a non-negative map's sum that falls inside the box (0 for an empty map).
pub fn box_energy(map: &[f32], width: usize, bbox: &BoundingBox) -> f32 {
    let (mut inner, mut total) = (0f64, 0f64);
    for (i, &v) in map.iter().enumerate() {
        total += v as f64;
        if inside(bbox, i % width, i / width) {
            inner += v as f64;
        }
    }
    if total > 0.0 {
        (inner / total) as f32
    } else {
        0.0
    }
}

/// The pointing game: is the map's maximum inside the box? (The first maximum, in
/// row-major order, when there are ties.)
pub fn pointing_hit(map: &[f32], width: usize, bbox: &BoundingBox) -> bool {
    let best = map
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 { (i, v) } else { best }
        });
    inside(bbox, best.0 % width, best.0 / width)
}

/// Pearson correlation of two equally long sequences; 1 when both are constant and
/// equal, 0 when only one is constant.
pub fn pearson(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len()) as f64;
    let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let (ma, mb) = (mean(a), mean(b));
    let (mut sab, mut saa, mut sbb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x as f64 - ma, y as f64 - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    match (saa > 0.0, sbb > 0.0) {
        (true, true) => (sab / (saa * sbb).sqrt()) as f32,
        (false, false) if a == b => 1.0,
        _ => 0.0,
    }
}

/// Intersection over union of the two maps' top regions: the `share` (0..1) of pixels
/// with the highest values in each (ties at the threshold included, but never the
/// map's floor: a map that is zero over 90% of the image has a top region of 10%).
pub fn top_region_iou(a: &[f32], b: &[f32], share: f32) -> f32 {
    let (in_a, in_b) = (top_region(a, share), top_region(b, share));
    let (mut both, mut either) = (0usize, 0usize);
    for (&x, &y) in a.iter().zip(b) {
        let (in_a, in_b) = (in_a(x), in_b(y));
        both += (in_a && in_b) as usize;
        either += (in_a || in_b) as usize;
    }
    if either == 0 {
        1.0
    } else {
        both as f32 / either as f32
    }
}

/// Membership in the top region: at least the `ceil(share·n)`-th largest value, and
/// above the minimum unless the map is constant.
fn top_region(values: &[f32], share: f32) -> impl Fn(f32) -> bool {
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(|x, y| y.total_cmp(x));
    let k = ((values.len() as f32 * share).ceil() as usize).clamp(1, values.len().max(1));
    let threshold = sorted.get(k - 1).copied().unwrap_or(f32::INFINITY);
    let floor = sorted.last().copied().unwrap_or(f32::INFINITY);
    let constant = sorted.first().copied() == Some(floor);
    move |v| v >= threshold && (v > floor || constant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_and_pointing() {
        // 4×2 map, box over the right half.
        let map = [0.0, 1.0, 2.0, 1.0, 0.0, 0.0, 4.0, 0.0];
        let bbox = [2.0, 0.0, 4.0, 2.0];
        assert!((box_energy(&map, 4, &bbox) - 7.0 / 8.0).abs() < 1e-6);
        assert!(pointing_hit(&map, 4, &bbox));
        assert!(!pointing_hit(&map, 4, &[0.0, 0.0, 2.0, 2.0]));
        assert_eq!(box_energy(&[0.0; 8], 4, &bbox), 0.0);
    }

    #[test]
    fn correlation() {
        assert!((pearson(&[1., 2., 3.], &[2., 4., 6.]) - 1.0).abs() < 1e-6);
        assert!((pearson(&[1., 2., 3.], &[3., 2., 1.]) + 1.0).abs() < 1e-6);
        assert_eq!(pearson(&[1., 1.], &[1., 1.]), 1.0);
    }

    #[test]
    fn top_regions() {
        // Ten pixels, top 20% = two pixels each.
        let a = [9., 8., 0., 0., 0., 0., 0., 0., 0., 0.];
        let b = [9., 0., 8., 0., 0., 0., 0., 0., 0., 0.];
        assert_eq!(top_region_iou(&a, &a, 0.2), 1.0);
        assert!((top_region_iou(&a, &b, 0.2) - 1.0 / 3.0).abs() < 1e-6);
        let c = [0., 0., 0., 0., 0., 0., 0., 0., 8., 9.];
        assert_eq!(top_region_iou(&a, &c, 0.2), 0.0);
        // Mostly-zero maps: the zeros are not a shared top region.
        let d = [0., 0., 0., 0., 0., 0., 0., 0., 0., 1.];
        let e = [1., 0., 0., 0., 0., 0., 0., 0., 0., 0.];
        assert_eq!(top_region_iou(&d, &e, 0.5), 0.0);
        assert_eq!(top_region_iou(&[2.; 4], &[2.; 4], 0.2), 1.0);
    }
}
