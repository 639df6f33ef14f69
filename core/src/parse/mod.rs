//! Bytes → pages of clean text, one module per format.
pub mod charset;
pub mod embedded_images;
mod html;
mod image;
mod markdown;
pub mod ocr;
mod office;
mod pdf;
mod rtf;

use crate::detect::{self, Format};
use crate::error::{DocError, ErrorKind, Result};
use serde_json::{Map, Value};

/// One page (paged formats) or the whole document (flowing formats) of extracted text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// 1-based page, slide or sheet number where the format has them.
    pub number: Option<u32>,
    pub text: String,
    /// Headings that start inside `text`, in order.
    pub headings: Vec<Heading>,
    /// Whether the text came from OCR.
    pub ocr: bool,
}

impl Page {
    pub fn new(number: Option<u32>, text: String) -> Self {
        Page { number, text, ..Default::default() }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Heading {
    /// Byte offset in the page text where the heading's section starts.
    pub offset: usize,
    pub level: u8,
    pub title: String,
}

/// Limits and options for one parse. Every parser honours the limits that apply to it.
#[derive(Debug, Clone)]
pub struct Options {
    pub max_pages: usize,
    /// Total bytes a container (ZIP, compressed PDF stream) may decompress to: zip bombs stop here.
    pub max_decompressed_bytes: u64,
    pub max_ocr_pages: usize,
    pub ocr_timeout_ms: u64,
    /// Tesseract languages, e.g. "eng" or "eng+deu".
    pub ocr_languages: String,
    pub password: Option<String>,
    /// Pull pictures out of the document (for CLIP), within these limits; `None`: don't.
    pub images: Option<embedded_images::ImageLimits>,
}

/// The limits' defaults, which the extension's settings start from too.
pub mod defaults {
    pub const MAX_PAGES: i32 = 5000;
    pub const MAX_DECOMPRESSED_MB: i32 = 512;
    pub const MAX_OCR_PAGES: i32 = 200;
    pub const OCR_PAGE_TIMEOUT_MS: i32 = 60_000;
    pub const OCR_LANGUAGES: &std::ffi::CStr = c"eng";
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_pages: defaults::MAX_PAGES as usize,
            max_decompressed_bytes: (defaults::MAX_DECOMPRESSED_MB as u64) << 20,
            max_ocr_pages: defaults::MAX_OCR_PAGES as usize,
            ocr_timeout_ms: defaults::OCR_PAGE_TIMEOUT_MS as u64,
            ocr_languages: defaults::OCR_LANGUAGES.to_string_lossy().into_owned(),
            password: None,
            images: None,
        }
    }
}

/// What a parser gets besides the bytes: the options, a way to notice query cancel, and the
/// document metadata to fill in (title, author, created, modified, producer, pages, …).
pub struct Ctx<'a> {
    pub options: &'a Options,
    /// True when the caller wants the work stopped (query cancel, statement timeout).
    pub interrupted: &'a dyn Fn() -> bool,
    pub metadata: Map<String, Value>,
}

impl<'a> Ctx<'a> {
    pub fn new(options: &'a Options, interrupted: &'a dyn Fn() -> bool) -> Self {
        Ctx { options, interrupted, metadata: Map::new() }
    }

    /// Call in long loops: returns `Cancelled` once the caller asked to stop.
    pub fn check(&self) -> Result<()> {
        if (self.interrupted)() {
            Err(DocError::new(ErrorKind::Cancelled, "canceled while parsing the document"))
        } else {
            Ok(())
        }
    }

    /// Records a metadata string if it is non-empty and not already set.
    pub fn set_meta(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into().trim().to_string();
        if !value.is_empty() && !self.metadata.contains_key(key) {
            self.metadata.insert(key.into(), Value::String(value));
        }
    }

    pub fn check_pages(&self, n: usize) -> Result<()> {
        if n > self.options.max_pages {
            Err(DocError::new(ErrorKind::TooLarge, format!("document has {n} pages, more than the limit of {}", self.options.max_pages))
                .with_hint("raise docchat.max_pages or split the document"))
        } else {
            Ok(())
        }
    }
}

#[derive(Debug)]
pub struct Parsed {
    pub format: Format,
    pub pages: Vec<Page>,
    /// Document properties found in the file (title, page count, …).
    pub metadata: Map<String, Value>,
    /// Pictures in the document, when Options::images asks for them.
    pub images: Vec<embedded_images::EmbeddedImage>,
}

impl Parsed {
    pub fn n_chars(&self) -> usize {
        self.pages.iter().map(|p| p.text.chars().count()).sum()
    }
}

/// Detects the format and extracts text. Empty results are the caller's to judge.
pub fn parse(bytes: &[u8], filename: Option<&str>, mime: Option<&str>, ctx: &mut Ctx) -> Result<Parsed> {
    let opts = ctx.options;
    if let Some(package) = office::crypto::unlock(bytes, opts.password.as_deref(), opts.max_decompressed_bytes)? {
        return parse(&package, filename, mime, ctx);
    }
    let detected = detect::detect(bytes, filename, mime)?;
    let text = detected.text.unwrap_or_default();
    let pages = match detected.format {
        Format::Pdf => pdf::extract(bytes, ctx)?,
        Format::Html => vec![html::extract(&text, ctx)?],
        Format::Markdown => vec![markdown::extract(&text, ctx)],
        Format::Text => vec![Page::new(None, normalize_whitespace(&text))],
        Format::Rtf => rtf::extract(bytes, ctx)?,
        Format::Image(kind) => image::extract(kind, bytes, ctx)?,
        f @ (Format::Docx | Format::Pptx | Format::Xlsx | Format::Xls | Format::Ods | Format::Odt | Format::Odp | Format::Epub) => {
            office::extract(f, bytes, ctx)?
        }
    };
    let images = match opts.images {
        Some(limits) => embedded_images::extract(detected.format, bytes, limits, ctx)?,
        None => Vec::new(),
    };
    let mut metadata = std::mem::take(&mut ctx.metadata);
    describe_text(&pages, &mut metadata);
    Ok(Parsed { format: detected.format, pages, metadata, images })
}

/// Metadata every format gets: word count, detected language, and which pages were OCR'd.
fn describe_text(pages: &[Page], metadata: &mut Map<String, Value>) {
    let words: usize = pages.iter().map(|p| p.text.split_whitespace().count()).sum();
    metadata.insert("word_count".into(), Value::from(words));
    let sample: String = pages.iter().flat_map(|p| p.text.chars()).take(4000).collect();
    if let Some(info) = whatlang::detect(&sample).filter(|i| i.is_reliable()) {
        metadata.insert("language".into(), Value::from(info.lang().code()));
    }
    if pages.iter().any(|p| p.ocr) {
        let ocr: Vec<Value> = pages.iter().map(|p| Value::from(p.ocr)).collect();
        metadata.insert("ocr".into(), Value::Array(ocr));
    }
}

/// Put before a heading's text in raw extracted text; `page_with_headings` turns the marks
/// into `Heading` offsets after whitespace normalisation.
pub const HEADING_MARK: char = '\u{E000}';

/// Normalises `raw` and records where each `HEADING_MARK` was, pairing marks with `titles` in order.
pub fn page_with_headings(number: Option<u32>, raw: &str, titles: Vec<(u8, String)>) -> Page {
    let normalized = normalize_whitespace(raw);
    let mut text = String::with_capacity(normalized.len());
    let mut headings = Vec::new();
    let mut titles = titles.into_iter();
    for ch in normalized.chars() {
        if ch == HEADING_MARK {
            if let Some((level, title)) = titles.next() {
                headings.push(Heading { offset: text.len(), level, title });
            }
        } else {
            text.push(ch);
        }
    }
    Page { number, text, headings, ocr: false }
}

/// Unicode NFKC (ligatures, full-width and compatibility forms become plain characters), every
/// line trimmed, runs of spaces collapsed, at most one blank line between paragraphs.
pub fn normalize_whitespace(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let line = line.nfkc().collect::<String>();
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        blank_run = 0;
        out.push_str(&line);
    }
    out
}

/// A file under ../shared for tests, e.g. `shared_file("corpus/pdf/x.pdf")`.
#[cfg(test)]
pub(crate) fn shared_file(path: &str) -> Vec<u8> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared").join(path);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[cfg(test)]
pub(crate) fn test_ctx(options: &Options) -> Ctx<'_> {
    Ctx::new(options, &|| false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_is_normalised() {
        assert_eq!(normalize_whitespace("  a \t b \r\n\r\n\r\n\nc\n d  "), "a b\n\nc\nd");
        assert_eq!(normalize_whitespace("\n\n"), "");
        assert_eq!(normalize_whitespace("ﬁne ﬂow ＡＢＣ"), "fine flow ABC");
    }

    #[test]
    fn heading_marks_become_offsets() {
        let raw = format!("  {HEADING_MARK}Intro\n\n\nbody  text\n{HEADING_MARK}Next\nmore");
        let page = page_with_headings(Some(2), &raw, vec![(1, "Intro".into()), (2, "Next".into())]);
        assert_eq!(page.text, "Intro\n\nbody text\nNext\nmore");
        assert_eq!(
            page.headings,
            vec![Heading { offset: 0, level: 1, title: "Intro".into() }, Heading { offset: 17, level: 2, title: "Next".into() },]
        );
    }

    #[test]
    fn text_parses_to_one_page() {
        let opts = Options::default();
        let p = parse("Hello\n\n\nworld ".as_bytes(), None, None, &mut test_ctx(&opts)).unwrap();
        assert_eq!(p.format, Format::Text);
        assert_eq!(p.pages, vec![Page::new(None, "Hello\n\nworld".into())]);
    }
}
