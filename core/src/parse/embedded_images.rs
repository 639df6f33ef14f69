//! Pictures inside documents, for CLIP: a PDF's image XObjects (with their page), the media of
//! Office and OpenDocument packages (PPTX with their slide), or the document itself when it is an
//! image. Small ones (icons, bullets, rules) are skipped; the bytes are kept as the document
//! holds them when that is a format browsers show (JPEG, PNG, GIF, WebP), else re-encoded as PNG.
use super::office::{pptx, Package};
use super::pdf::images;
use super::Ctx;
use crate::detect::Format;
use crate::error::Result;
use image::{ImageFormat, ImageReader};
use std::collections::HashSet;
use std::io::Cursor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Images narrower or shorter than this (pixels) are left out.
    pub min_side: u32,
    /// Most images taken from one document.
    pub max_images: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedImage {
    pub page: Option<u32>,
    /// Where it is in the document: a ZIP entry or a PDF object.
    pub name: String,
    pub mime: &'static str,
    pub width: u32,
    pub height: u32,
    pub bytes: Vec<u8>,
}

const MEDIA_EXTENSIONS: [&str; 9] = ["png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp", "jfif"];

pub fn extract(format: Format, bytes: &[u8], limits: ImageLimits, ctx: &Ctx) -> Result<Vec<EmbeddedImage>> {
    let mut out = Vec::new();
    match format {
        // The document is the picture: kept whatever its size.
        Format::Image(_) => out.extend(keep(bytes.to_vec(), None, "document".into(), 0)),
        Format::Pdf => pdf(bytes, limits, ctx, &mut out)?,
        Format::Docx | Format::Pptx | Format::Xlsx | Format::Odt | Format::Odp | Format::Ods | Format::Epub => {
            package(format, bytes, limits, ctx, &mut out)?
        }
        _ => {}
    }
    Ok(out)
}

/// The image if it decodes and is at least `min_side` both ways, in a format browsers show.
fn keep(bytes: Vec<u8>, page: Option<u32>, name: String, min_side: u32) -> Option<EmbeddedImage> {
    let reader = ImageReader::new(Cursor::new(&bytes)).with_guessed_format().ok()?;
    let format = reader.format()?;
    let (width, height) = reader.into_dimensions().ok()?;
    if width < min_side || height < min_side || crate::parse::ocr::check_pixels(u64::from(width), u64::from(height)).is_err() {
        return None;
    }
    let mime = match format {
        ImageFormat::Jpeg => "image/jpeg",
        ImageFormat::Png => "image/png",
        ImageFormat::Gif => "image/gif",
        ImageFormat::WebP => "image/webp",
        _ => return reencoded(&bytes, page, name),
    };
    Some(EmbeddedImage { page, name, mime, width, height, bytes })
}

fn reencoded(bytes: &[u8], page: Option<u32>, name: String) -> Option<EmbeddedImage> {
    as_png(image::load_from_memory(bytes).ok()?, page, name)
}

fn as_png(img: image::DynamicImage, page: Option<u32>, name: String) -> Option<EmbeddedImage> {
    let mut png = Vec::new();
    img.write_to(&mut Cursor::new(&mut png), ImageFormat::Png).ok()?;
    Some(EmbeddedImage { page, name, mime: "image/png", width: img.width(), height: img.height(), bytes: png })
}

fn pdf(bytes: &[u8], limits: ImageLimits, ctx: &Ctx, out: &mut Vec<EmbeddedImage>) -> Result<()> {
    let (doc, _) = super::pdf::load(bytes, ctx.options.password.as_deref())?;
    let mut seen = HashSet::new();
    for (number, page_id) in doc.get_pages() {
        ctx.check()?;
        let mut streams = Vec::new();
        if let Some(resources) = images::page_resources(&doc, page_id) {
            images::collect_images(&doc, resources, 0, &mut HashSet::new(), &mut streams);
        }
        for stream in streams {
            if out.len() == limits.max_images {
                return Ok(());
            }
            // A picture drawn on many pages counts once, on its first page.
            if !seen.insert(stream as *const _ as usize) {
                continue;
            }
            let side = |key: &[u8]| images::int(&doc, Some(&stream.dict), key).unwrap_or(0);
            let stencil = images::get(&doc, &stream.dict, b"ImageMask").and_then(|o| o.as_bool().ok()).unwrap_or(false);
            if stencil || side(b"Width") < i64::from(limits.min_side) || side(b"Height") < i64::from(limits.min_side) {
                continue;
            }
            let Some((file, inverted)) = images::image_file(&doc, stream, ctx.options)? else { continue };
            let name = format!("page {number} image {}", out.len() + 1);
            let image = if inverted { inverted_png(&file, Some(number), name) } else { keep(file.into_owned(), Some(number), name, 0) };
            out.extend(image);
        }
    }
    Ok(())
}

fn inverted_png(file: &[u8], page: Option<u32>, name: String) -> Option<EmbeddedImage> {
    let mut img = image::load_from_memory(file).ok()?;
    img.invert();
    as_png(img, page, name)
}

fn package(format: Format, bytes: &[u8], limits: ImageLimits, ctx: &Ctx, out: &mut Vec<EmbeddedImage>) -> Result<()> {
    let mut pkg = Package::open(bytes, ctx.options.max_decompressed_bytes)?;
    // Slides say which of them shows each picture; other formats have no pages to give.
    let mut pages: Vec<(String, Option<u32>)> = Vec::new();
    if format == Format::Pptx {
        for (n, slide) in pptx::slide_parts(&mut pkg, ctx)?.iter().enumerate() {
            for rel in pkg.rels(slide)?.into_iter().filter(|r| r.kind == "image") {
                pages.push((rel.target, Some(n as u32 + 1)));
            }
        }
    }
    let mut names: Vec<String> = pkg
        .names()
        .into_iter()
        // Thumbnails are pictures of the document, not pictures in it.
        .filter(|n| !n.starts_with("docProps/") && !n.starts_with("Thumbnails/"))
        .filter(|n| n.rsplit_once('.').is_some_and(|(_, ext)| MEDIA_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str())))
        .collect();
    let page_of = |name: &str| pages.iter().find(|(t, _)| t.eq_ignore_ascii_case(name)).and_then(|(_, p)| *p);
    names.sort_by_key(|n| (page_of(n).unwrap_or(u32::MAX), n.clone()));
    for name in names {
        if out.len() == limits.max_images {
            break;
        }
        ctx.check()?;
        let Some(data) = pkg.read(&name)? else { continue };
        out.extend(keep(data, page_of(&name), name, limits.min_side));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{shared_file, test_ctx, Options};

    fn images(path: &str, format: Format, min_side: u32) -> Vec<EmbeddedImage> {
        let options = Options::default();
        extract(format, &shared_file(path), ImageLimits { min_side, max_images: 100 }, &test_ctx(&options)).unwrap()
    }

    fn summary(images: &[EmbeddedImage]) -> Vec<(Option<u32>, String, &'static str, u32, u32)> {
        images.iter().map(|i| (i.page, i.name.clone(), i.mime, i.width, i.height)).collect()
    }

    #[test]
    fn docx_pictures_come_out_whole() {
        let found = images("corpus/office/tika__testWORD_embedded_pics.docx", Format::Docx, 64);
        assert_eq!(
            summary(&found),
            vec![(None, "word/media/image1.jpeg".into(), "image/jpeg", 100, 75), (None, "word/media/image2.jpeg".into(), "image/jpeg", 100, 75)]
        );
        // Not the package's thumbnail (a picture of the first page); 140x56 is under 64 px high.
        let found = images("corpus/office/pythondocx__having-images.docx", Format::Docx, 64);
        assert_eq!(
            summary(&found),
            vec![(None, "word/media/image1.png".into(), "image/png", 211, 71), (None, "word/media/image2.png".into(), "image/png", 150, 214)]
        );
        assert_eq!(images("corpus/office/pythondocx__having-images.docx", Format::Docx, 1).len(), 3);
        for i in &found {
            assert!(image::load_from_memory(&i.bytes).is_ok());
        }
    }

    #[test]
    fn pptx_pictures_have_their_slide() {
        let found = images("corpus/office/tika__testOCR.pptx", Format::Pptx, 64);
        assert_eq!(
            summary(&found).iter().map(|s| (s.0, s.1.as_str(), s.2)).collect::<Vec<_>>(),
            vec![(Some(1), "ppt/media/image1.png", "image/png")]
        );
    }

    #[test]
    fn pdf_images_have_their_page_and_small_ones_are_skipped() {
        let found = images("corpus/pdf/pypdf__jpeg.pdf", Format::Pdf, 64);
        assert_eq!(summary(&found), vec![(Some(1), "page 1 image 1".to_string(), "image/jpeg", 800, 600)]);
        let wiki = images("corpus/pdf/pdfjs__pdfjs_wikipedia.pdf", Format::Pdf, 64);
        assert!(!wiki.is_empty() && wiki.iter().all(|i| i.page == Some(1) && i.width >= 64 && i.height >= 64), "{:?}", summary(&wiki));
        assert!(images("corpus/pdf/pdfjs__pdfjs_wikipedia.pdf", Format::Pdf, 10_000).is_empty());
    }
}
