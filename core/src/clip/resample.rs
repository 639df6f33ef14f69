//! Image resizing exactly as Pillow's `Image.resize` does it, because CLIP's preprocessing is
//! torchvision's `Resize(224, BICUBIC)` on a PIL image and the model was trained on those pixels.
//!
//! Bicubic (a = -0.5) is a separable convolution whose support widens with the downscale factor
//! (antialiasing), with coefficients in 22-bit fixed point and a round to 8 bits between the
//! horizontal pass (first) and the vertical one. Nearest is what Pillow uses for palette and
//! 1-bit images whatever the caller asks for.

/// Pillow's PRECISION_BITS for 8-bit images: 32 - 8 - 2.
const PRECISION_BITS: u32 = 22;

fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// For each output position: the first input position it reads and its fixed-point weights.
pub(crate) struct Coefficients {
    taps: Vec<(usize, Vec<i32>)>,
}

impl Coefficients {
    /// Pillow's precompute_coeffs + normalize_coeffs_8bpc for `in_size` → `out_size`.
    pub(crate) fn bicubic(in_size: usize, out_size: usize) -> Coefficients {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = 2.0 * filterscale;
        let taps = (0..out_size)
            .map(|xx| {
                let center = (xx as f64 + 0.5) * scale;
                // C's (int) truncates toward zero.
                let xmin = ((center - support + 0.5) as i64).max(0) as usize;
                let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
                let mut w: Vec<f64> = (xmin..xmax).map(|x| bicubic((x as f64 - center + 0.5) / filterscale)).collect();
                let total: f64 = w.iter().sum();
                if total != 0.0 {
                    w.iter_mut().for_each(|k| *k /= total);
                }
                let fixed = w
                    .iter()
                    .map(|&k| {
                        let k = k * f64::from(1u32 << PRECISION_BITS);
                        (if k < 0.0 { k - 0.5 } else { k + 0.5 }) as i32
                    })
                    .collect();
                (xmin, fixed)
            })
            .collect();
        Coefficients { taps }
    }

    /// One output sample from `sample(i)` over the input positions the filter covers.
    fn apply(&self, out: usize, sample: impl Fn(usize) -> u8) -> u8 {
        let (first, weights) = &self.taps[out];
        let mut acc: i64 = 1 << (PRECISION_BITS - 1);
        for (i, &k) in weights.iter().enumerate() {
            acc += i64::from(sample(first + i)) * i64::from(k);
        }
        (acc >> PRECISION_BITS).clamp(0, 255) as u8
    }

    /// The input range the outputs `outs` read.
    fn span(&self, outs: std::ops::Range<usize>) -> std::ops::Range<usize> {
        let lo = outs.clone().map(|o| self.taps[o].0).min().unwrap_or(0);
        let hi = outs.map(|o| self.taps[o].0 + self.taps[o].1.len()).max().unwrap_or(0);
        lo..hi
    }
}

/// An 8-bit image with `channels` interleaved samples per pixel.
#[derive(Debug, Clone, PartialEq)]
pub struct Raster {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<u8>,
}

/// Where the crop sits in the resized image and how big the resized image is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub resized_width: usize,
    pub resized_height: usize,
    pub left: usize,
    pub top: usize,
    pub width: usize,
    pub height: usize,
}

/// Bicubic resize of `src` to the window's resized size, computing only the window's pixels
/// (each output pixel depends only on its own row and column filters, so this is the same as
/// resizing everything and cropping).
pub fn bicubic_window(src: &Raster, win: Window) -> Raster {
    let c = src.channels;
    let cols = win.left..win.left + win.width;
    let rows = win.top..win.top + win.height;
    let same_width = win.resized_width == src.width;
    let same_height = win.resized_height == src.height;
    let hz = Coefficients::bicubic(src.width, win.resized_width);
    let vt = Coefficients::bicubic(src.height, win.resized_height);
    // Horizontal pass over the source rows the vertical pass reads (Pillow's ybox).
    let src_rows = if same_height { rows.clone() } else { vt.span(rows.clone()) };
    let mut temp = vec![0u8; src_rows.len() * win.width * c];
    for (ty, sy) in src_rows.clone().enumerate() {
        let line = &src.data[sy * src.width * c..(sy + 1) * src.width * c];
        for (tx, ox) in cols.clone().enumerate() {
            for ch in 0..c {
                temp[(ty * win.width + tx) * c + ch] = if same_width { line[ox * c + ch] } else { hz.apply(ox, |x| line[x * c + ch]) };
            }
        }
    }
    let mut out = vec![0u8; win.width * win.height * c];
    for (y, oy) in rows.enumerate() {
        for x in 0..win.width {
            for ch in 0..c {
                out[(y * win.width + x) * c + ch] = if same_height {
                    temp[(y * win.width + x) * c + ch]
                } else {
                    vt.apply(oy, |sy| temp[((sy - src_rows.start) * win.width + x) * c + ch])
                };
            }
        }
    }
    Raster { width: win.width, height: win.height, channels: c, data: out }
}

/// Pillow's nearest-neighbour resize (ImagingScaleAffine: source coordinate accumulated in
/// floating point from half a step), computing only the window.
pub fn nearest_window(src: &Raster, win: Window) -> Raster {
    let positions = |in_size: usize, out_size: usize| -> Vec<usize> {
        let step = in_size as f64 / out_size as f64;
        let mut at = step * 0.5;
        (0..out_size)
            .map(|_| {
                let i = (at as usize).min(in_size - 1);
                at += step;
                i
            })
            .collect()
    };
    let xs = positions(src.width, win.resized_width);
    let ys = positions(src.height, win.resized_height);
    let c = src.channels;
    let mut out = Vec::with_capacity(win.width * win.height * c);
    for &sy in &ys[win.top..win.top + win.height] {
        for &sx in &xs[win.left..win.left + win.width] {
            out.extend_from_slice(&src.data[(sy * src.width + sx) * c..(sy * src.width + sx + 1) * c]);
        }
    }
    Raster { width: win.width, height: win.height, channels: c, data: out }
}

/// Pillow's RGBA → RGBa: colour scaled by alpha, rounded (MULDIV255).
pub fn premultiply(r: &mut Raster) {
    let c = r.channels;
    for px in r.data.chunks_exact_mut(c) {
        let alpha = u32::from(px[c - 1]);
        for v in &mut px[..c - 1] {
            let t = u32::from(*v) * alpha + 128;
            *v = (((t >> 8) + t) >> 8) as u8;
        }
    }
}

/// Pillow's RGBa → RGBA: colour divided by alpha (integer division), untouched at 0 and 255.
pub fn unpremultiply(r: &mut Raster) {
    let c = r.channels;
    for px in r.data.chunks_exact_mut(c) {
        let alpha = u32::from(px[c - 1]);
        if alpha == 0 || alpha == 255 {
            continue;
        }
        for v in &mut px[..c - 1] {
            *v = ((255 * u32::from(*v)) / alpha).min(255) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(width: usize, height: usize, f: impl Fn(usize, usize) -> u8) -> Raster {
        let data = (0..height).flat_map(|y| (0..width).map(move |x| (x, y))).map(|(x, y)| f(x, y)).collect();
        Raster { width, height, channels: 1, data }
    }

    fn full(w: usize, h: usize) -> Window {
        Window { resized_width: w, resized_height: h, left: 0, top: 0, width: w, height: h }
    }

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (i, o) in [(512, 224), (100, 224), (224, 224), (7, 3)] {
            let co = Coefficients::bicubic(i, o);
            for (first, w) in &co.taps {
                let sum: i64 = w.iter().map(|&k| i64::from(k)).sum();
                assert!((sum - (1 << PRECISION_BITS)).abs() <= w.len() as i64, "{i}->{o}: {sum}");
                assert!(first + w.len() <= i);
            }
        }
    }

    #[test]
    fn flat_images_stay_flat_and_a_window_equals_a_crop_of_the_whole() {
        let flat = gray(37, 23, |_, _| 200);
        assert!(bicubic_window(&flat, full(11, 50)).data.iter().all(|&v| v == 200));
        let img = gray(97, 61, |x, y| ((x * 7 + y * 13) % 256) as u8);
        let whole = bicubic_window(&img, full(40, 30));
        let win = bicubic_window(&img, Window { resized_width: 40, resized_height: 30, left: 5, top: 3, width: 20, height: 17 });
        for y in 0..17 {
            assert_eq!(&win.data[y * 20..(y + 1) * 20], &whole.data[(y + 3) * 40 + 5..(y + 3) * 40 + 25]);
        }
    }

    #[test]
    fn nearest_takes_the_pixel_under_each_centre() {
        let img = gray(4, 1, |x, _| x as u8 * 10);
        assert_eq!(nearest_window(&img, full(2, 1)).data, vec![10, 30]);
        assert_eq!(nearest_window(&img, full(8, 1)).data, vec![0, 0, 10, 10, 20, 20, 30, 30]);
    }

    #[test]
    fn premultiplication_round_trips_like_pillow() {
        let mut r = Raster { width: 3, height: 1, channels: 2, data: vec![200, 128, 50, 0, 255, 255] };
        premultiply(&mut r);
        assert_eq!(r.data, vec![100, 128, 0, 0, 255, 255]);
        unpremultiply(&mut r);
        assert_eq!(r.data, vec![199, 128, 0, 0, 255, 255]);
    }
}
