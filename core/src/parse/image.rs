//! Images → text by OCR: one page per image, or per frame of a multi-page TIFF.
use super::ocr::{self, Pix};
use super::{Ctx, Page};
use crate::detect::ImageKind;
use crate::error::{DocError, ErrorKind, Result};
use leptess::capi as c;
use serde_json::Value;
use std::collections::HashSet;

pub fn extract(kind: ImageKind, bytes: &[u8], ctx: &mut Ctx) -> Result<Vec<Page>> {
    if kind != ImageKind::Tiff {
        ctx.metadata.insert("pages".into(), Value::from(1));
        let pix = ocr::read_image(bytes)?;
        return Ok(vec![read_page(None, &pix, ctx)?]);
    }
    let frames = tiff_frames(bytes).ok_or_else(|| ocr::corrupt("damaged TIFF: cannot follow its list of pages"))?;
    ctx.check_pages(frames.len())?;
    ctx.metadata.insert("pages".into(), Value::from(frames.len()));
    let limit = ctx.options.max_ocr_pages;
    if limit == 0 {
        return Err(DocError::new(ErrorKind::TooLarge, "the document is an image and OCR is turned off (docchat.max_ocr_pages = 0)")
            .with_hint("raise docchat.max_ocr_pages to read images"));
    }
    if frames.len() > limit {
        // The text of the first pages is still worth having; the metadata says what was left out.
        ctx.metadata.insert("ocr_skipped_pages".into(), Value::from(frames.len() - limit));
    }
    let mut pages = Vec::new();
    let mut offset = 0usize;
    for (i, &(w, h)) in frames.iter().take(limit).enumerate() {
        ctx.check()?;
        ocr::check_pixels(w, h)?;
        // Leptonica moves `offset` to the next frame's directory.
        let pix = Pix::from_raw(unsafe { c::pixReadMemFromMultipageTiff(bytes.as_ptr(), bytes.len(), &mut offset) })
            .ok_or_else(|| ocr::corrupt(format!("damaged TIFF: cannot decode page {}", i + 1)))?;
        pages.push(read_page(Some(i as u32 + 1), &pix, ctx)?);
    }
    Ok(pages)
}

fn read_page(number: Option<u32>, pix: &Pix, ctx: &Ctx) -> Result<Page> {
    let text = ocr::ocr_pix(pix, ctx.options, ctx.interrupted)?;
    Ok(Page { ocr: true, ..Page::new(number, super::normalize_whitespace(&text)) })
}

/// Width and height of every frame of a TIFF, from its directory chain, without decoding pixels.
/// `None` when the chain is damaged (or BigTIFF, which is rare for scans).
fn tiff_frames(b: &[u8]) -> Option<Vec<(u64, u64)>> {
    let le = match b.get(..4)? {
        b"II*\0" => true,
        b"MM\0*" => false,
        _ => return None,
    };
    let u16_at = |o: usize| b.get(o..o + 2).map(|s| if le { u16::from_le_bytes([s[0], s[1]]) } else { u16::from_be_bytes([s[0], s[1]]) });
    let u32_at = |o: usize| {
        b.get(o..o + 4).map(|s| {
            let s = [s[0], s[1], s[2], s[3]];
            if le {
                u32::from_le_bytes(s)
            } else {
                u32::from_be_bytes(s)
            }
        })
    };
    let mut frames = Vec::new();
    let mut seen = HashSet::new();
    let mut ifd = u32_at(4)? as usize;
    while ifd != 0 {
        if !seen.insert(ifd) {
            return None; // a loop in the chain
        }
        let entries = u16_at(ifd)? as usize;
        let (mut w, mut h) = (0, 0);
        for e in (0..entries).map(|i| ifd + 2 + 12 * i) {
            // SHORT (type 3) values sit in the first two bytes of the value field.
            let value = if u16_at(e + 2)? == 3 { u16_at(e + 8)? as u64 } else { u32_at(e + 8)? as u64 };
            match u16_at(e)? {
                256 => w = value,
                257 => h = value,
                _ => {}
            }
        }
        frames.push((w, h));
        ifd = u32_at(ifd + 2 + 12 * entries)? as usize;
    }
    (!frames.is_empty()).then_some(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{test_ctx, Options};

    fn corpus(name: &str) -> Vec<u8> {
        crate::parse::shared_file(&format!("corpus/ocr/{name}"))
    }

    /// A multi-page TIFF made by Leptonica from the given images.
    fn multipage(names: &[&str]) -> Vec<u8> {
        unsafe {
            let pixa = c::pixaCreate(0);
            for name in names {
                let pix = ocr::read_image(&corpus(name)).unwrap();
                c::pixaAddPix(pixa, c::pixClone(pix.as_ptr()), c::L_INSERT as i32);
            }
            let (mut data, mut size) = (std::ptr::null_mut(), 0usize);
            assert_eq!(c::pixaWriteMemMultipageTiff(&mut data, &mut size, pixa), 0);
            let bytes = std::slice::from_raw_parts(data, size).to_vec();
            c::lept_free(data.cast());
            let mut pixa = pixa;
            c::pixaDestroy(&mut pixa);
            bytes
        }
    }

    #[test]
    fn single_image_is_one_ocr_page() {
        let opts = Options::default();
        let mut ctx = test_ctx(&opts);
        let pages = extract(ImageKind::Png, &corpus("tess__phototest-rotated-180.png"), &mut ctx).unwrap();
        assert_eq!(pages.len(), 1);
        assert!(pages[0].ocr && pages[0].number.is_none());
        assert!(pages[0].text.starts_with("This is a lot of 12 point text"), "{}", pages[0].text);
        assert_eq!(ctx.metadata["pages"], 1);
    }

    #[test]
    fn tiff_frames_become_pages() {
        let tiff = multipage(&["tess__phototest.tif", "tess__HelloGoogle.tif", "tess__phototest.tif"]);
        assert_eq!(tiff_frames(&tiff).unwrap(), vec![(640, 480), (400, 200), (640, 480)]);
        let opts = Options { max_ocr_pages: 2, ..Options::default() };
        let mut ctx = test_ctx(&opts);
        let pages = extract(ImageKind::Tiff, &tiff, &mut ctx).unwrap();
        assert_eq!(pages.iter().map(|p| p.number).collect::<Vec<_>>(), vec![Some(1), Some(2)]);
        assert!(pages[0].text.contains("The quick brown dog"), "{}", pages[0].text);
        assert_eq!(pages[1].text, "Hello Google");
        assert_eq!(ctx.metadata["pages"], 3);
        assert_eq!(ctx.metadata["ocr_skipped_pages"], 1);
        let opts = Options { max_pages: 2, ..Options::default() };
        assert_eq!(extract(ImageKind::Tiff, &tiff, &mut test_ctx(&opts)).unwrap_err().kind, ErrorKind::TooLarge);
    }

    #[test]
    fn damaged_tiff_is_corrupt() {
        let tiff = corpus("tess__eurotext.tif");
        let opts = Options::default();
        let err = extract(ImageKind::Tiff, &tiff[..tiff.len() / 2], &mut test_ctx(&opts)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Corrupt, "{err}");
    }
}
