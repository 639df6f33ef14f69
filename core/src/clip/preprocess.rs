//! Image bytes → CLIP's input tensor, as OpenAI's and open_clip's preprocessing makes it:
//! EXIF orientation applied, `Resize(224, BICUBIC)` (shortest side to 224, longer side truncated),
//! `CenterCrop(224)` (offsets rounded half to even, as Python's round), RGB, scaled to [0, 1] and
//! normalised with CLIP's mean and std, channels first.
use super::resample::{self, Raster, Window};
use crate::error::{DocError, ErrorKind, Result};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use std::io::Cursor;

pub const SIZE: usize = 224;
pub const MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
// CLIP's published constants as written (the nearest f32 is what is used).
#[allow(clippy::excessive_precision)]
pub const STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];
/// Images with more pixels are refused before decoding (a 100 MP scan is 400 MB of RGBA).
pub const MAX_PIXELS: u64 = crate::parse::ocr::MAX_PIXELS;

/// A decoded image: its pixels (orientation applied) and how Pillow would resample it.
pub struct Decoded {
    pub raster: Raster,
    /// Palette and 1-bit images: Pillow resizes them with nearest whatever it is asked.
    pub nearest: bool,
    /// The last channel is alpha: Pillow resizes premultiplied.
    pub alpha: bool,
    pub format: ImageFormat,
}

fn corrupt(e: impl std::fmt::Display) -> DocError {
    DocError::new(ErrorKind::Corrupt, format!("cannot decode the image: {e}"))
}

/// Decodes PNG, JPEG, GIF, BMP, TIFF, WebP or PNM bytes.
pub fn decode(bytes: &[u8]) -> Result<Decoded> {
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(corrupt)?;
    let Some(format) = reader.format() else {
        return Err(DocError::new(ErrorKind::Unsupported, "not an image docchat can decode")
            .with_hint("CLIP images may be PNG, JPEG, GIF, BMP, TIFF, WebP or PNM"));
    };
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let (w, h) = decoder.dimensions();
    crate::parse::ocr::check_pixels(u64::from(w), u64::from(h))?;
    let orientation = decoder.orientation().map_err(corrupt)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    img.apply_orientation(orientation);
    let nearest = pillow_uses_nearest(bytes, format);
    let (raster, alpha) = if nearest {
        // Palette colours are looked up as Pillow's convert("RGB") does: transparency dropped.
        (raster(img.to_rgb8().into_raw(), img.width(), img.height(), 3), false)
    } else {
        eight_bit(img)
    };
    Ok(Decoded { raster, nearest, alpha, format })
}

/// Palette PNG/GIF/BMP and 1-bit PNG/BMP: Pillow's modes "P" and "1".
fn pillow_uses_nearest(bytes: &[u8], format: ImageFormat) -> bool {
    match format {
        ImageFormat::Gif => true,
        // IHDR: bit depth at byte 24, colour type at 25.
        ImageFormat::Png => matches!((bytes.get(24), bytes.get(25)), (_, Some(3)) | (Some(1), Some(0))),
        // BITMAPINFOHEADER bits per pixel at byte 28.
        ImageFormat::Bmp => bytes.get(28..30).is_some_and(|b| u16::from_le_bytes([b[0], b[1]]) <= 8),
        _ => false,
    }
}

fn raster(data: Vec<u8>, w: u32, h: u32, channels: usize) -> Raster {
    Raster { width: w as usize, height: h as usize, channels, data }
}

/// 8 bits per sample in the image's own channels; 16-bit samples keep their high byte, as
/// Pillow reads 16-bit PNGs.
fn eight_bit(img: DynamicImage) -> (Raster, bool) {
    let (w, h) = (img.width(), img.height());
    let high = |v: Vec<u16>| v.into_iter().map(|s| (s >> 8) as u8).collect::<Vec<u8>>();
    match img {
        DynamicImage::ImageLuma8(b) => (raster(b.into_raw(), w, h, 1), false),
        DynamicImage::ImageLumaA8(b) => (raster(b.into_raw(), w, h, 2), true),
        DynamicImage::ImageRgb8(b) => (raster(b.into_raw(), w, h, 3), false),
        DynamicImage::ImageRgba8(b) => (raster(b.into_raw(), w, h, 4), true),
        DynamicImage::ImageLuma16(b) => (raster(high(b.into_raw()), w, h, 1), false),
        DynamicImage::ImageLumaA16(b) => (raster(high(b.into_raw()), w, h, 2), true),
        DynamicImage::ImageRgb16(b) => (raster(high(b.into_raw()), w, h, 3), false),
        DynamicImage::ImageRgba16(b) => (raster(high(b.into_raw()), w, h, 4), true),
        other if other.color().has_alpha() => (raster(other.to_rgba8().into_raw(), w, h, 4), true),
        other => (raster(other.to_rgb8().into_raw(), w, h, 3), false),
    }
}

/// torchvision's Resize(SIZE) output size and CenterCrop(SIZE) offsets for a `w`×`h` image.
pub fn window(w: usize, h: usize) -> Window {
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    // int(size * long / short) in Python: a float product, truncated.
    let new_long = (SIZE as f64 * long as f64 / short as f64) as usize;
    let (rw, rh) = if w <= h { (SIZE, new_long) } else { (new_long, SIZE) };
    // Python's round() rounds halves to even.
    let offset = |resized: usize| ((resized as f64 - SIZE as f64) / 2.0).round_ties_even().max(0.0) as usize;
    Window { resized_width: rw, resized_height: rh, left: offset(rw), top: offset(rh), width: SIZE.min(rw), height: SIZE.min(rh) }
}

/// The 3×224×224 tensor (channels first) CLIP's image tower reads.
pub fn pixels(bytes: &[u8]) -> Result<Vec<f32>> {
    let decoded = decode(bytes)?;
    Ok(tensor(&resized(decoded)))
}

/// The resized and cropped 8-bit image, in the source's channels.
pub fn resized(d: Decoded) -> Raster {
    let mut src = d.raster;
    let win = window(src.width, src.height);
    if d.nearest {
        return resample::nearest_window(&src, win);
    }
    if d.alpha {
        resample::premultiply(&mut src);
    }
    let mut out = resample::bicubic_window(&src, win);
    if d.alpha {
        resample::unpremultiply(&mut out);
    }
    out
}

/// RGB from the raster's channels (gray replicated, alpha dropped), normalised, channels first.
/// A crop smaller than 224 (an image under 224 px on its longer side cannot be) is padded with
/// zeros like torchvision's CenterCrop.
pub fn tensor(r: &Raster) -> Vec<f32> {
    let plane = SIZE * SIZE;
    let mut out = vec![0f32; 3 * plane];
    let (pad_x, pad_y) = ((SIZE - r.width) / 2, (SIZE - r.height) / 2);
    for y in 0..r.height {
        for x in 0..r.width {
            let px = &r.data[(y * r.width + x) * r.channels..][..r.channels];
            let rgb = if r.channels < 3 { [px[0]; 3] } else { [px[0], px[1], px[2]] };
            for c in 0..3 {
                out[c * plane + (y + pad_y) * SIZE + x + pad_x] = (f32::from(rgb[c]) / 255.0 - MEAN[c]) / STD[c];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_follows_torchvision() {
        // 400x328: resized 273x224, crop offset round(24.5) = 24 (half to even).
        assert_eq!(window(400, 328), Window { resized_width: 273, resized_height: 224, left: 24, top: 0, width: 224, height: 224 });
        // 741x500: int(331.97) = 331 wide, round(53.5) = 54.
        assert_eq!(window(741, 500).resized_width, 331);
        assert_eq!(window(741, 500).left, 54);
        assert_eq!(window(300, 451), Window { resized_width: 224, resized_height: 336, left: 0, top: 56, width: 224, height: 224 });
        assert_eq!(window(512, 512), Window { resized_width: 224, resized_height: 224, left: 0, top: 0, width: 224, height: 224 });
    }

    #[test]
    fn tensor_is_normalised_channels_first() {
        let r = Raster { width: 224, height: 224, channels: 1, data: vec![255; 224 * 224] };
        let t = tensor(&r);
        assert_eq!(t.len(), 3 * 224 * 224);
        for c in 0..3 {
            assert!((t[c * 224 * 224] - (1.0 - MEAN[c]) / STD[c]).abs() < 1e-6);
        }
    }

    #[test]
    fn garbage_is_refused_with_a_clear_error() {
        let e = pixels(b"definitely not an image").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
        let png = crate::parse::shared_file("corpus/images/skimage__coins.png");
        let e = pixels(&png[..png.len() / 2]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Corrupt, "{}", e.message);
    }
}
