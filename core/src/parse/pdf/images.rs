//! A PDF page's images: found through its resources (Form XObjects included) and decoded from
//! the file's own filters (JPEG, JPEG 2000, Flate, LZW, CCITT, raw samples) into pixels for OCR
//! (`ocr`) or into image files for the stored pictures (`embedded_images`).
use crate::error::{DocError, ErrorKind, Result};
use crate::parse::ocr::{self, Pix};
use crate::parse::Options;
use leptess::capi as c;
use lopdf::{Dictionary, Document, Object, ObjectId, Stream};
use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Read;

/// How deep Form XObjects (and the page tree, for inherited resources) are followed.
const MAX_DEPTH: usize = 16;

fn deref<'a>(doc: &'a Document, object: &'a Object) -> &'a Object {
    doc.dereference(object).map(|(_, o)| o).unwrap_or(object)
}

pub(crate) fn get<'a>(doc: &'a Document, dict: &'a Dictionary, key: &[u8]) -> Option<&'a Object> {
    dict.get(key).ok().map(|o| deref(doc, o))
}

pub(crate) fn int(doc: &Document, dict: Option<&Dictionary>, key: &[u8]) -> Option<i64> {
    get(doc, dict?, key)?.as_i64().ok()
}

/// The page's resources, inherited from the page tree when the page has none of its own.
pub(crate) fn page_resources(doc: &Document, page_id: ObjectId) -> Option<&Dictionary> {
    let mut node = doc.get_dictionary(page_id).ok()?;
    for _ in 0..MAX_DEPTH {
        if let Some(resources) = get(doc, node, b"Resources") {
            return resources.as_dict().ok();
        }
        node = get(doc, node, b"Parent")?.as_dict().ok()?;
    }
    None
}

/// Image XObjects of `resources`, including those inside Form XObjects; `seen` stops cycles.
pub(crate) fn collect_images<'a>(
    doc: &'a Document,
    resources: &'a Dictionary,
    depth: usize,
    seen: &mut HashSet<ObjectId>,
    out: &mut Vec<&'a Stream>,
) {
    let Some(Ok(xobjects)) = get(doc, resources, b"XObject").map(Object::as_dict) else { return };
    for (_, object) in xobjects.iter() {
        let Ok(id) = object.as_reference() else { continue };
        if !seen.insert(id) {
            continue;
        }
        let Ok(stream) = doc.get_object(id).and_then(Object::as_stream) else { continue };
        match get(doc, &stream.dict, b"Subtype").and_then(|s| s.as_name().ok()) {
            Some(b"Image") => out.push(stream),
            Some(b"Form") if depth < MAX_DEPTH => {
                if let Some(Ok(inner)) = get(doc, &stream.dict, b"Resources").map(Object::as_dict) {
                    collect_images(doc, inner, depth + 1, seen, out);
                }
            }
            _ => {}
        }
    }
}

pub(super) fn area(doc: &Document, image: &Stream) -> u64 {
    let side = |key: &[u8]| int(doc, Some(&image.dict), key).and_then(|v| u64::try_from(v).ok()).unwrap_or(0);
    side(b"Width").saturating_mul(side(b"Height"))
}

/// Decodes an image XObject into a Leptonica image, `None` when we cannot.
pub(super) fn decode_image(doc: &Document, image: &Stream, options: &Options) -> Result<Option<Pix>> {
    match image_file(doc, image, options)? {
        Some((file, inverted)) => read(&file, inverted),
        None => Ok(None),
    }
}

/// An image XObject as an image file (JPEG, JPEG 2000, TIFF for fax data, PNM for raw samples)
/// and whether its samples must be inverted; `None` when we cannot decode it.
pub(crate) fn image_file<'a>(doc: &Document, image: &'a Stream, options: &Options) -> Result<Option<(Cow<'a, [u8]>, bool)>> {
    let dict = &image.dict;
    let side = |key: &[u8]| int(doc, Some(dict), key).and_then(|v| u64::try_from(v).ok()).filter(|&v| v > 0);
    let (Some(w), Some(h)) = (side(b"Width"), side(b"Height")) else { return Ok(None) };
    ocr::check_pixels(w, h)?;
    let mask = get(doc, dict, b"ImageMask").and_then(|o| o.as_bool().ok()).unwrap_or(false);
    // A stencil mask paints its 0 samples: like DeviceGray, 0 is black.
    let colour = if mask { Some(Colour::Gray) } else { get(doc, dict, b"ColorSpace").and_then(|cs| colour_space(doc, cs, 0)) };
    let decode = get(doc, dict, b"Decode").and_then(|d| d.as_array().ok());
    let number = |i: usize| decode.and_then(|d| d.get(i)).and_then(|o| deref(doc, o).as_float().ok());
    let inverted = !matches!(colour, Some(Colour::Indexed(..))) && matches!((number(0), number(1)), (Some(a), Some(b)) if a > b);
    let filters: Vec<&[u8]> = list(doc, get(doc, dict, b"Filter")).filter_map(|f| f.as_name().ok()).collect();
    let params: Vec<Option<&Dictionary>> = list(doc, get(doc, dict, b"DecodeParms")).map(|p| p.as_dict().ok()).collect();
    let mut data = Cow::Borrowed(image.content.as_slice());
    for (i, &filter) in filters.iter().enumerate() {
        let p = params.get(i).copied().flatten();
        let file = match filter {
            b"DCTDecode" | b"DCT" | b"JPXDecode" => data,
            b"CCITTFaxDecode" | b"CCF" => Cow::Owned(ccitt_tiff(doc, &data, p, h)),
            _ => match unfilter(doc, filter, &data, p, options.max_decompressed_bytes)? {
                Some(plain) => {
                    data = Cow::Owned(plain);
                    continue;
                }
                None => return Ok(None), // JBIG2, RunLength, ...
            },
        };
        return Ok(Some((file, inverted)));
    }
    let bpc = if mask { 1 } else { int(doc, Some(dict), b"BitsPerComponent").unwrap_or(8) };
    Ok(colour.and_then(|colour| pnm(&data, w, h, bpc, &colour)).map(|file| (Cow::Owned(file), inverted)))
}

/// A name or an array of them (filters, decode parameters) as a list.
fn list<'a>(doc: &'a Document, object: Option<&'a Object>) -> impl Iterator<Item = &'a Object> {
    let items: Vec<&Object> = match object {
        Some(Object::Array(items)) => items.iter().map(|o| deref(doc, o)).collect(),
        Some(single) => vec![single],
        None => Vec::new(),
    };
    items.into_iter()
}

/// Leptonica decodes the file; damaged data means "cannot decode", not a failed document.
fn read(file: &[u8], inverted: bool) -> Result<Option<Pix>> {
    let pix = match ocr::read_image(file) {
        Ok(pix) => pix,
        Err(e) if e.kind == ErrorKind::Corrupt => return Ok(None),
        Err(e) => return Err(e),
    };
    if inverted {
        return pix.derive("invert", |p| unsafe { c::pixInvert(std::ptr::null_mut(), p) }).map(Some);
    }
    Ok(Some(pix))
}

fn too_big(limit: u64) -> DocError {
    DocError::new(ErrorKind::TooLarge, format!("an image in the PDF decompresses to more than {} MB", limit >> 20))
        .with_hint("raise docchat.max_decompressed_size if the file is trusted")
}

/// Undoes one general-purpose filter and its predictor; `None` for filters we do not handle.
fn unfilter(doc: &Document, filter: &[u8], data: &[u8], params: Option<&Dictionary>, limit: u64) -> Result<Option<Vec<u8>>> {
    let plain = match filter {
        b"FlateDecode" | b"Fl" => {
            let mut out = Vec::new();
            // Damaged data still yields the rows before the damage.
            let _ = flate2::read::ZlibDecoder::new(data).take(limit.saturating_add(1)).read_to_end(&mut out);
            out
        }
        b"LZWDecode" | b"LZW" => lzw(data, int(doc, params, b"EarlyChange") != Some(0), limit),
        b"ASCII85Decode" | b"A85" => {
            // At most 4 bytes out per byte in, so lopdf's unbounded decoder is safe here.
            let stream = Stream::new(lopdf::dictionary! { "Filter" => "ASCII85Decode" }, data.to_vec());
            stream.decompressed_content().unwrap_or_default()
        }
        _ => return Ok(None),
    };
    if plain.len() as u64 > limit {
        return Err(too_big(limit));
    }
    Ok(unpredict(doc, plain, params))
}

/// LZW with a bound on the output (lopdf's decoder has none).
fn lzw(data: &[u8], early_change: bool, limit: u64) -> Vec<u8> {
    use weezl::{decode::Decoder, BitOrder, LzwStatus};
    let mut decoder = if early_change { Decoder::with_tiff_size_switch(BitOrder::Msb, 8) } else { Decoder::new(BitOrder::Msb, 8) };
    let (mut out, mut buf, mut input) = (Vec::new(), vec![0u8; 1 << 16], data);
    while out.len() as u64 <= limit {
        let step = decoder.decode_bytes(input, &mut buf);
        input = &input[step.consumed_in..];
        out.extend_from_slice(&buf[..step.consumed_out]);
        if !matches!(step.status, Ok(LzwStatus::Ok)) {
            break; // done, or damaged: keep what was decoded
        }
    }
    out
}

/// Undoes /DecodeParms predictors: TIFF's (8-bit samples) and PNG's row filters.
fn unpredict(doc: &Document, data: Vec<u8>, params: Option<&Dictionary>) -> Option<Vec<u8>> {
    let p = |key: &[u8], default: i64| int(doc, params, key).unwrap_or(default);
    let predictor = p(b"Predictor", 1);
    if predictor == 1 {
        return Some(data);
    }
    let (colors, bpc, columns) = (p(b"Colors", 1), p(b"BitsPerComponent", 8), p(b"Columns", 1));
    if !(1..=32).contains(&colors) || ![1, 2, 4, 8, 16].contains(&bpc) || !(1..=1 << 20).contains(&columns) {
        return None;
    }
    let (colors, row) = (colors as usize, ((colors * bpc * columns) as usize).div_ceil(8));
    if predictor == 2 {
        if bpc != 8 {
            return None;
        }
        let mut data = data;
        for line in data.chunks_mut(row) {
            for i in colors..line.len() {
                line[i] = line[i].wrapping_add(line[i - colors]);
            }
        }
        return Some(data);
    }
    let bytes_per_pixel = (colors * bpc as usize / 8).max(1);
    let mut out = Vec::with_capacity(data.len());
    let mut previous = vec![0u8; row];
    for line in data.chunks_exact(row + 1) {
        let filter = lopdf::filters::png::FilterType::try_from(line[0]).ok()?;
        let mut current = line[1..].to_vec();
        lopdf::filters::png::decode_row(filter, bytes_per_pixel, &previous, &mut current);
        out.extend_from_slice(&current);
        previous = current;
    }
    Some(out)
}

/// CCITT G3/G4 data wrapped in a minimal one-strip TIFF, which Leptonica decodes with libtiff.
fn ccitt_tiff(doc: &Document, data: &[u8], params: Option<&Dictionary>, height: u64) -> Vec<u8> {
    let p = |key: &[u8], default: i64| int(doc, params, key).unwrap_or(default);
    let flag = |key: &[u8]| params.and_then(|d| get(doc, d, key)).and_then(|o| o.as_bool().ok()).unwrap_or(false);
    let k = p(b"K", 0);
    let columns = p(b"Columns", 1728).clamp(1, u32::MAX as i64) as u32;
    let rows = match p(b"Rows", 0) {
        r if r > 0 => r.min(u32::MAX as i64) as u32,
        _ => height.min(u32::MAX as u64) as u32,
    };
    // By default PDF shows coded black as black, which is TIFF's WhiteIsZero; BlackIs1 flips it.
    let photometric = u32::from(flag(b"BlackIs1"));
    let (compression, options_tag, options) = match k {
        k if k < 0 => (4, 293, 0),                                                       // G4
        0 if !flag(b"EndOfLine") && flag(b"EncodedByteAlign") => (2, 292, 0),            // Modified Huffman, byte-aligned rows
        k => (3, 292, u32::from(k > 0) | if flag(b"EncodedByteAlign") { 4 } else { 0 }), // G3 1-D or 2-D
    };
    const SHORT: u16 = 3;
    const LONG: u16 = 4;
    let entries: [(u16, u16, u32); 10] = [
        (256, LONG, columns),
        (257, LONG, rows),
        (258, SHORT, 1),
        (259, SHORT, compression),
        (262, SHORT, photometric),
        (273, LONG, 8 + 2 + 12 * 10 + 4),
        (277, SHORT, 1),
        (278, LONG, rows),
        (279, LONG, data.len().min(u32::MAX as usize) as u32),
        (options_tag, LONG, options),
    ];
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    tiff.extend((entries.len() as u16).to_le_bytes());
    for (tag, kind, value) in entries {
        // Little-endian: a SHORT value sits in the first two bytes of the 4-byte field.
        tiff.extend(tag.to_le_bytes().into_iter().chain(kind.to_le_bytes()).chain(1u32.to_le_bytes()).chain(value.to_le_bytes()));
    }
    tiff.extend(0u32.to_le_bytes());
    tiff.extend_from_slice(data);
    tiff
}

/// The colour spaces whose raw samples we turn into grey or RGB pixels.
enum Colour {
    Gray,
    /// One ink (Separation): 1 is full ink, i.e. dark.
    Ink,
    Rgb,
    Cmyk,
    /// A palette of `base` colours, one 8-bit tuple per index.
    Indexed(Box<Colour>, Vec<u8>),
}

impl Colour {
    fn components(&self) -> usize {
        match self {
            Colour::Rgb => 3,
            Colour::Cmyk => 4,
            _ => 1,
        }
    }

    fn is_colour(&self) -> bool {
        match self {
            Colour::Rgb | Colour::Cmyk => true,
            Colour::Indexed(base, _) => base.is_colour(),
            _ => false,
        }
    }

    /// Appends the grey or RGB pixel of one tuple of 8-bit components.
    fn emit(&self, v: &[u8], out: &mut Vec<u8>) {
        match self {
            Colour::Gray => out.push(v[0]),
            Colour::Ink => out.push(255 - v[0]),
            Colour::Rgb => out.extend_from_slice(&v[..3]),
            Colour::Cmyk => out.extend(v[..3].iter().map(|&ink| 255 - ink.saturating_add(v[3]))),
            Colour::Indexed(base, palette) => {
                let n = base.components();
                let start = v[0] as usize * n;
                match palette.get(start..start + n) {
                    Some(entry) => base.emit(entry, out),
                    None => base.emit(&[0; 4][..n], out),
                }
            }
        }
    }
}

fn colour_space(doc: &Document, object: &Object, depth: usize) -> Option<Colour> {
    let object = deref(doc, object);
    let (family, array) = match object {
        Object::Name(name) => (name.as_slice(), None),
        Object::Array(items) => (deref(doc, items.first()?).as_name().ok()?, Some(items)),
        _ => return None,
    };
    let arg = |i: usize| array.and_then(|a| a.get(i)).map(|o| deref(doc, o));
    Some(match family {
        b"DeviceGray" | b"G" | b"CalGray" => Colour::Gray,
        b"DeviceRGB" | b"RGB" | b"CalRGB" => Colour::Rgb,
        b"DeviceCMYK" | b"CMYK" => Colour::Cmyk,
        b"Separation" => Colour::Ink,
        b"ICCBased" => match int(doc, Some(&arg(1)?.as_stream().ok()?.dict), b"N")? {
            1 => Colour::Gray,
            3 => Colour::Rgb,
            4 => Colour::Cmyk,
            _ => return None,
        },
        b"Indexed" | b"I" if depth == 0 => {
            let base = colour_space(doc, arg(1)?, 1)?;
            let palette = match arg(3)? {
                Object::String(bytes, _) => bytes.clone(),
                Object::Stream(s) => {
                    let mut data = s.content.clone();
                    for filter in list(doc, get(doc, &s.dict, b"Filter")) {
                        // A palette holds at most 256 entries of 4 bytes.
                        data = unfilter(doc, filter.as_name().ok()?, &data, None, 1024).ok()??;
                    }
                    data
                }
                _ => return None,
            };
            Colour::Indexed(Box::new(base), palette)
        }
        _ => return None,
    })
}

/// Raw samples as a PNM file: P4 for 1-bit grey (PDF's 1 is white, PBM's is black, so the bits
/// flip), P5 for other grey images, P6 for colour. A short stream gives the rows it has.
fn pnm(data: &[u8], w: u64, h: u64, bpc: i64, colour: &Colour) -> Option<Vec<u8>> {
    let (w, h) = (usize::try_from(w).ok()?, usize::try_from(h).ok()?);
    let bpc = [1, 2, 4, 8, 16].contains(&bpc).then_some(bpc as usize)?;
    let comps = colour.components();
    let row_bytes = (w * comps * bpc).div_ceil(8);
    let rows = (data.len() / row_bytes).min(h);
    if rows == 0 {
        return None;
    }
    let data = &data[..rows * row_bytes];
    if bpc == 1 && matches!(colour, Colour::Gray) {
        let mut out = format!("P4\n{w} {rows}\n").into_bytes();
        out.extend(data.iter().map(|b| !b));
        return Some(out);
    }
    let indexed = matches!(colour, Colour::Indexed(..));
    let max = (1u32 << bpc.min(8)) - 1;
    // Sample `i` of a row, as an 8-bit value (palette indexes unscaled).
    let sample = |row: &[u8], i: usize| -> u8 {
        let raw = match bpc {
            8 => return row[i],
            16 => return row[2 * i],
            _ => (row[i * bpc / 8] >> (8 - bpc - i * bpc % 8)) as u32 & max,
        };
        if indexed {
            raw as u8
        } else {
            (raw * 255 / max) as u8
        }
    };
    let mut out = format!("{}\n{w} {rows}\n255\n", if colour.is_colour() { "P6" } else { "P5" }).into_bytes();
    let mut tuple = [0u8; 4];
    for row in data.chunks_exact(row_bytes) {
        for x in 0..w {
            for (c, t) in tuple[..comps].iter_mut().enumerate() {
                *t = sample(row, x * comps + c);
            }
            colour.emit(&tuple[..comps], &mut out);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::ocr::ocr_page;
    use super::*;
    use lopdf::dictionary;
    use std::io::Write;
    use std::time::Instant;

    fn corpus_doc(name: &str) -> Document {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/pdf").join(name);
        super::super::load::load(&std::fs::read(&path).unwrap(), None).unwrap().0
    }

    fn page_text(doc: &Document, page: u32) -> Result<Option<String>> {
        ocr_page(doc, doc.get_pages()[&page], &Options::default(), &|| false)
    }

    fn decode(dict: Dictionary, content: Vec<u8>) -> Result<Option<Pix>> {
        decode_image(&Document::new(), &Stream::new(dict, content), &Options::default())
    }

    fn same(a: &Pix, b: &Pix) -> bool {
        let mut same = 0;
        unsafe { c::pixEqual(a.as_ptr(), b.as_ptr(), &mut same) };
        same == 1
    }

    fn phototest() -> Pix {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/ocr/tess__phototest.tif");
        ocr::read_image(&std::fs::read(path).unwrap()).unwrap()
    }

    /// The pixel values of `pix`, one row after another.
    fn pixels(pix: &Pix) -> Vec<Vec<u32>> {
        (0..pix.height() as i32)
            .map(|y| {
                (0..pix.width() as i32)
                    .map(|x| {
                        let mut v = 0;
                        unsafe { c::pixGetPixel(pix.as_ptr(), x, y, &mut v) };
                        v
                    })
                    .collect()
            })
            .collect()
    }

    /// 1-bit rows packed MSB first, as PDF stores them.
    fn pack(rows: &[Vec<u32>], one_is_black: bool) -> Vec<u8> {
        rows.iter()
            .flat_map(|row| {
                row.chunks(8).map(|bits| bits.iter().enumerate().fold(0u8, |byte, (i, &b)| byte | (u8::from((b == 1) == one_is_black) << (7 - i))))
            })
            .collect()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(data).unwrap();
        z.finish().unwrap()
    }

    fn image(w: u32, h: u32, colour_space: Object, bpc: i64) -> Dictionary {
        dictionary! { "Subtype" => "Image", "Width" => w as i64, "Height" => h as i64, "ColorSpace" => colour_space, "BitsPerComponent" => bpc }
    }

    #[test]
    fn scanned_jpeg_page_is_read() {
        let doc = corpus_doc("pdfjs__scan-bad.pdf");
        let start = Instant::now();
        page_text(&doc, 1).unwrap();
        let cold = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let text = page_text(&doc, 1).unwrap().unwrap();
        eprintln!("pdfjs__scan-bad.pdf page 1 (2550x3300 JPEG): {:.2} s/page ({cold:.2} s with model loading)", start.elapsed().as_secs_f64());
        // The scan shows one line, "pdf.js" (checked by eye).
        assert_eq!(text, "pdf.js");
    }

    #[test]
    fn vicksburg_text_is_in_jbig2_masks() {
        // Each page is mixed raster content: a JPX background (illustrations only), a JPX
        // foreground colour layer, and the text as a JBIG2 soft mask, which no library we link
        // decodes. So the JPX layers must decode and the JBIG2 masks be skipped.
        let doc = corpus_doc("pypdf__Seige_of_Vicksburg_Sample_OCR.pdf");
        let images: Vec<&Stream> = doc.objects.values().filter_map(|o| o.as_stream().ok()).filter(|s| area(&doc, s) > 1).collect();
        let codec = |s: &Stream| s.dict.get(b"Filter").and_then(Object::as_name).unwrap().to_vec();
        assert_eq!(images.iter().filter(|s| codec(s) == b"JBIG2Decode").count(), 6);
        assert_eq!(images.iter().filter(|s| codec(s) == b"JPXDecode").count(), 12);
        for image in images {
            let pix = decode_image(&doc, image, &Options::default()).unwrap();
            if codec(image) == b"JBIG2Decode" {
                assert!(pix.is_none());
            } else {
                let pix = pix.unwrap();
                assert_eq!(pix.width() as u64 * pix.height() as u64, area(&doc, image));
            }
        }
        assert!(page_text(&doc, 1).unwrap().is_some());
    }

    #[test]
    fn photo_reads_empty_and_text_page_has_no_image() {
        assert_eq!(page_text(&corpus_doc("pypdf__jpeg.pdf"), 1).unwrap(), Some(String::new()));
        assert_eq!(page_text(&corpus_doc("pypdf__crazyones.pdf"), 1).unwrap(), None);
    }

    #[test]
    fn flate_with_png_predictor_and_decode_arrays() {
        let page = phototest();
        let rows = pixels(&page);
        let (w, h) = (page.width(), page.height());
        // 8-bit grey, each row PNG "Up"-filtered.
        let grey: Vec<Vec<u8>> = rows.iter().map(|r| r.iter().map(|&b| if b == 1 { 0 } else { 255 }).collect()).collect();
        let mut filtered = Vec::new();
        for (y, row) in grey.iter().enumerate() {
            filtered.push(2);
            filtered.extend(row.iter().enumerate().map(|(x, &v)| v.wrapping_sub(if y == 0 { 0 } else { grey[y - 1][x] })));
        }
        let mut dict = image(w, h, "DeviceGray".into(), 8);
        dict.set("Filter", "FlateDecode");
        dict.set("DecodeParms", dictionary! { "Predictor" => 12, "Columns" => w as i64 });
        let decoded = decode(dict, zlib(&filtered)).unwrap().unwrap();
        let expected = page.derive("grey", |p| unsafe { c::pixConvertTo8(p, 0) }).unwrap();
        assert!(same(&decoded, &expected));
        // The same samples LZW-coded, without a predictor.
        let lzw = weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8).encode(&grey.concat()).unwrap();
        let mut dict = image(w, h, "DeviceGray".into(), 8);
        dict.set("Filter", "LZWDecode");
        assert!(same(&decode(dict, lzw).unwrap().unwrap(), &expected));
        // 1-bit with 1 = black, said by /Decode [1 0]; a stencil mask paints its 0 bits.
        let mut dict = image(w, h, "DeviceGray".into(), 1);
        dict.set("Decode", vec![1.into(), 0.into()]);
        assert!(same(&decode(dict, pack(&rows, true)).unwrap().unwrap(), &page));
        let mask = dictionary! { "Subtype" => "Image", "Width" => w as i64, "Height" => h as i64, "ImageMask" => true };
        assert!(same(&decode(mask, pack(&rows, false)).unwrap().unwrap(), &page));
        // A two-colour RGB palette.
        let palette = Object::Array(vec!["Indexed".into(), "DeviceRGB".into(), 1.into(), Object::string_literal(b"\0\0\0\xFF\xFF\xFF".to_vec())]);
        let decoded = decode(image(w, h, palette, 1), pack(&rows, false)).unwrap().unwrap();
        assert!(same(&decoded.derive("grey", |p| unsafe { c::pixConvertTo8(p, 0) }).unwrap(), &expected));
    }

    #[test]
    fn ccitt_fax_data_decodes() {
        let page = phototest();
        let (w, h) = (page.width() as i64, page.height() as i64);
        for (format, k) in [(c::IFF_TIFF_G4, -1), (c::IFF_TIFF_G3, 0)] {
            // Leptonica writes the fax data as one strip of a TIFF; take the strip out.
            let tiff = unsafe {
                let (mut data, mut size) = (std::ptr::null_mut(), 0usize);
                assert_eq!(c::pixWriteMemTiff(&mut data, &mut size, page.as_ptr(), format as i32), 0);
                let bytes = std::slice::from_raw_parts(data, size).to_vec();
                c::lept_free(data.cast());
                bytes
            };
            let tag = |tag: u16| {
                let at = |o: usize, n: usize| tiff[o..o + n].iter().rev().fold(0usize, |v, &b| v << 8 | b as usize);
                let ifd = at(4, 4);
                let entry = (0..at(ifd, 2)).map(|i| ifd + 2 + 12 * i).find(|&e| at(e, 2) == tag as usize).unwrap();
                at(entry + 8, if at(entry + 2, 2) == 3 { 2 } else { 4 })
            };
            assert!(tag(278) >= h as usize, "one strip");
            let strip = tiff[tag(273)..tag(273) + tag(279)].to_vec();
            let mut dict = image(w as u32, h as u32, "DeviceGray".into(), 1);
            dict.set("Filter", "CCITTFaxDecode");
            dict.set("DecodeParms", dictionary! { "K" => k, "Columns" => w, "Rows" => h, "EndOfLine" => k == 0 });
            assert!(same(&decode(dict.clone(), strip.clone()).unwrap().unwrap(), &page), "K={k}");
            // BlackIs1 shows the coded black runs as white.
            let mut params = dict.get(b"DecodeParms").unwrap().as_dict().unwrap().clone();
            params.set("BlackIs1", true);
            dict.set("DecodeParms", params);
            let inverted = page.derive("invert", |p| unsafe { c::pixInvert(std::ptr::null_mut(), p) }).unwrap();
            assert!(same(&decode(dict, strip).unwrap().unwrap(), &inverted), "K={k}, BlackIs1");
        }
    }

    #[test]
    fn limits_and_undecodable_images() {
        let huge = image(20_000, 20_000, "DeviceGray".into(), 8);
        assert_eq!(decode(huge, Vec::new()).unwrap_err().kind, ErrorKind::TooLarge);
        // A flate bomb stops at docchat.max_decompressed_size.
        let mut dict = image(4000, 4000, "DeviceGray".into(), 8);
        dict.set("Filter", "FlateDecode");
        let options = Options { max_decompressed_bytes: 1 << 20, ..Options::default() };
        let bomb = Stream::new(dict, zlib(&vec![0; 16 << 20]));
        assert_eq!(decode_image(&Document::new(), &bomb, &options).unwrap_err().kind, ErrorKind::TooLarge);
        for (filter, data) in [("JBIG2Decode", vec![0u8; 16]), ("DCTDecode", b"not a JPEG at all".to_vec())] {
            let mut dict = image(1000, 1000, "DeviceGray".into(), 8);
            dict.set("Filter", filter);
            assert!(decode(dict, data).unwrap().is_none(), "{filter}");
        }
    }

    #[test]
    fn images_inside_forms_are_found_and_cycles_end() {
        let mut doc = Document::with_version("1.5");
        let image_id = doc.add_object(Stream::new(image(1000, 1000, "DeviceGray".into(), 8), Vec::new()));
        let form_id = doc.new_object_id();
        let xobjects = dictionary! { "Itself" => form_id, "Im" => image_id };
        let form = Stream::new(dictionary! { "Subtype" => "Form", "Resources" => dictionary! { "XObject" => xobjects } }, Vec::new());
        doc.objects.insert(form_id, Object::Stream(form));
        let pages_id = doc.new_object_id();
        let page_id = doc.add_object(dictionary! { "Type" => "Page", "Parent" => pages_id });
        // Resources inherited from the page tree.
        let pages = dictionary! { "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1, "Resources" => dictionary! { "XObject" => dictionary! { "Fm" => form_id } } };
        doc.objects.insert(pages_id, Object::Dictionary(pages));
        let mut images = Vec::new();
        collect_images(&doc, page_resources(&doc, page_id).unwrap(), 0, &mut HashSet::new(), &mut images);
        assert_eq!(images.len(), 1);
        assert_eq!(area(&doc, images[0]), 1_000_000);
    }
}
