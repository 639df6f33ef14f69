//! OCR of scanned PDF pages from the page's own images.
//!
//! The images are decoded and read instead of rendering the page: there is no PDF renderer we can
//! link from Rust on Debian and run safely inside a Postgres backend (poppler and MuPDF bring large
//! C/C++ stacks, global state and, for MuPDF, the AGPL), while a scanned page is one full-page
//! picture anyway, so decoding it yields the pixels a renderer would. Pages with a text layer
//! never need any of this.
use super::images::{area, collect_images, decode_image, page_resources};
use crate::error::Result;
use crate::parse::ocr;
use crate::parse::Options;
use lopdf::{Document, ObjectId, Stream};
use std::collections::HashSet;

/// Smaller images (in pixels) are logos, icons and rules rather than scanned text.
const MIN_AREA: u64 = 150_000;
/// Most images read per page; scanners that cut a page into strips stay well below it.
const MAX_IMAGES: usize = 8;
/// OCRs the large images of a page. `None` when the page has no image we can decode (none at
/// all, or only JBIG2, which no library we can link decodes). Images whose data is damaged are
/// skipped like undecodable ones; limits, cancel and missing models are errors.
pub fn ocr_page(doc: &Document, page_id: ObjectId, options: &Options, interrupted: &dyn Fn() -> bool) -> Result<Option<String>> {
    let mut images = Vec::new();
    if let Some(resources) = page_resources(doc, page_id) {
        collect_images(doc, resources, 0, &mut HashSet::new(), &mut images);
    }
    let mut sized: Vec<(u64, &Stream)> = images.into_iter().map(|s| (area(doc, s), s)).filter(|&(a, _)| a >= MIN_AREA).collect();
    // Stable: equal strips keep their order in the file.
    sized.sort_by_key(|&(a, _)| std::cmp::Reverse(a));
    let (mut decoded, mut texts) = (false, Vec::new());
    for (_, stream) in sized.into_iter().take(MAX_IMAGES) {
        if let Some(pix) = decode_image(doc, stream, options)? {
            decoded = true;
            let text = ocr::ocr_pix(&pix, options, interrupted)?;
            if !text.trim().is_empty() {
                texts.push(text.trim().to_owned());
            }
        }
    }
    Ok(decoded.then(|| texts.join("\n\n")))
}
