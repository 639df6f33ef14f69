//! PDF → per-page text with pdf-extract on top of lopdf. Both libraries panic on some hostile
//! input, so every call into them runs under `catch_unwind` and a panic becomes a `Corrupt` error.
//! Form field values are added to their page's text; pages without a usable text layer are OCR'd.
use crate::error::{DocError, ErrorKind, Result};
use lopdf::Document;
use serde_json::Value;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::{Ctx, Page};

mod forms;
pub(super) mod images;
mod load;
pub(super) use load::load;
mod ocr;
mod render;
mod safety;

pub fn extract(bytes: &[u8], ctx: &mut Ctx) -> Result<Vec<Page>> {
    let (mut doc, orphans) = load::load(bytes, ctx.options.password.as_deref())?;
    safety::break_xobject_cycles(&mut doc);
    let page_ids: Vec<(u32, lopdf::ObjectId)> = guarded("cannot read PDF page tree", || Ok(doc.get_pages().into_iter().collect()))?;
    if page_ids.is_empty() {
        return Err(corrupt("PDF has no readable pages (damaged page tree)"));
    }
    ctx.check_pages(page_ids.len())?;
    ctx.metadata.insert("pages".into(), Value::from(page_ids.len()));
    for (key, name) in [(&b"Title"[..], "title"), (b"Author", "author"), (b"Producer", "producer"), (b"Creator", "creator")] {
        if let Some(v) = info_string(&doc, key) {
            ctx.set_meta(name, v);
        }
    }
    for (key, name) in [(&b"CreationDate"[..], "created"), (b"ModDate", "modified")] {
        if let Some(v) = info_string(&doc, key).and_then(|d| pdf_date(&d)) {
            ctx.set_meta(name, v);
        }
    }
    let fields = forms::field_values_by_page(&doc);
    let mut pages = Vec::with_capacity(page_ids.len());
    let mut failed = 0;
    let mut ocr_budget = ctx.options.max_ocr_pages;
    for (n, id) in page_ids {
        ctx.check()?;
        let text = match guarded("cannot extract page text", || page_text(&doc, n)) {
            Ok(text) => super::normalize_whitespace(&text),
            Err(_) => {
                failed += 1;
                String::new()
            }
        };
        let text = if is_garbage(&text) { String::new() } else { text };
        let mut page = Page::new(Some(n), text);
        // A page with (almost) no usable text layer is a scan or uses unreadable fonts.
        if page.text.chars().count() < MIN_TEXT_LAYER && ocr_budget > 0 {
            ocr_budget -= 1;
            if let Some(ocr) = ocr_page(bytes, &doc, n, id, ctx)?.filter(|t| t.chars().count() > page.text.chars().count()) {
                page.text = ocr;
                page.ocr = true;
            }
        }
        if let Some(values) = fields.get(&id) {
            if !page.text.is_empty() {
                page.text.push_str("\n\n");
            }
            page.text.push_str(&super::normalize_whitespace(&values.join("\n")));
        }
        pages.push(page);
    }
    if failed == pages.len() {
        return Err(corrupt(format!("no page of the PDF could be read ({failed} failed)")));
    }
    // Pages found outside a broken page tree that hold nothing are debris, not an empty document.
    if orphans && pages.iter().all(|p| p.text.is_empty()) {
        return Err(corrupt("PDF has no readable pages (damaged page tree)"));
    }
    Ok(pages)
}

/// Fewer characters than this on a page means its text layer is missing or a stub.
const MIN_TEXT_LAYER: usize = 20;

/// OCR of one page: its embedded images when they can be decoded, else the page rendered by
/// poppler. Undecodable images are not an error (the page just stays without text).
fn ocr_page(bytes: &[u8], doc: &Document, n: u32, id: lopdf::ObjectId, ctx: &Ctx) -> Result<Option<String>> {
    let opts = ctx.options;
    let soft = |r: Result<Option<String>>| match r {
        Err(e) if e.kind == ErrorKind::Corrupt => Ok(None),
        other => other,
    };
    let text = match soft(ocr::ocr_page(doc, id, opts, ctx.interrupted))? {
        Some(t) if !t.trim().is_empty() => Some(t),
        _ => {
            let timeout = std::time::Duration::from_millis(opts.ocr_timeout_ms);
            match render::render_page(bytes, n, opts.password.as_deref(), timeout, ctx.interrupted)? {
                Some(image) => soft(super::ocr::ocr_image(&image, opts, ctx.interrupted).map(Some))?,
                None => None,
            }
        }
    };
    Ok(text.map(|t| super::normalize_whitespace(&t)).filter(|t| !t.is_empty()))
}

/// Text from fonts without a usable Unicode map comes out as control characters, private-use
/// glyphs or Latin-1 mojibake; such a text layer is worse than none (the page goes to OCR).
pub(super) fn is_garbage(text: &str) -> bool {
    // Latin-1 symbols (¡ £ ¶ · ¹ º ¾ × …) are rare in real text but fill the mojibake that
    // double-byte (GBK, Shift-JIS) codes make when read as single bytes.
    let (mut total, mut bad, mut latin1_symbols) = (0usize, 0usize, 0usize);
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        total += 1;
        if c == '\u{FFFD}' || c.is_control() || ('\u{E000}'..='\u{F8FF}').contains(&c) {
            bad += 1;
        }
        if ('\u{A1}'..='\u{BF}').contains(&c) || c == '×' || c == '÷' {
            latin1_symbols += 1;
        }
    }
    total > 0 && (bad * 10 > total || latin1_symbols * 10 > total)
}

/// PDF dates look like D:20040609115437+02'00'; metadata gets ISO 8601.
fn pdf_date(raw: &str) -> Option<String> {
    let d = raw.trim().strip_prefix("D:").unwrap_or(raw.trim());
    let digits: String = d.chars().take_while(|c| c.is_ascii_digit()).collect();
    if digits.len() < 8 {
        return None;
    }
    let part = |a: usize, b: usize, default: &'static str| digits.get(a..b).unwrap_or(default).to_string();
    Some(format!(
        "{}-{}-{}T{}:{}:{}",
        part(0, 4, "0000"),
        part(4, 6, "01"),
        part(6, 8, "01"),
        part(8, 10, "00"),
        part(10, 12, "00"),
        part(12, 14, "00")
    ))
}

fn page_text(doc: &Document, n: u32) -> std::result::Result<String, String> {
    let mut text = String::new();
    let mut out = pdf_extract::PlainTextOutput::new(&mut text);
    pdf_extract::output_doc_page(doc, &mut out, n).map_err(|e| e.to_string())?;
    Ok(text)
}

fn info_string(doc: &Document, key: &[u8]) -> Option<String> {
    let info = doc.trailer.get(b"Info").ok()?;
    let dict = match info {
        lopdf::Object::Reference(id) => doc.get_dictionary(*id).ok()?,
        lopdf::Object::Dictionary(d) => d,
        _ => return None,
    };
    let raw = dict.get(key).ok()?.as_str().ok()?;
    let s = lopdf::decode_text_string(&lopdf::Object::String(raw.to_vec(), lopdf::StringFormat::Literal)).ok()?;
    let s = s.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn corrupt(msg: impl Into<String>) -> DocError {
    DocError::new(ErrorKind::Corrupt, msg).with_hint("the file is damaged or not a complete PDF; re-export or repair it (e.g. qpdf in.pdf out.pdf)")
}

/// Runs a parser step, turning both its errors and its panics into a `Corrupt` error.
fn guarded<T>(what: &str, f: impl FnOnce() -> std::result::Result<T, String>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(corrupt(format!("{what}: {e}"))),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "parser panicked".into());
            Err(corrupt(format!("{what}: {msg}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(name: &str) -> Vec<u8> {
        crate::parse::shared_file(&format!("corpus/pdf/{name}"))
    }

    fn run(bytes: &[u8]) -> Result<Vec<Page>> {
        let opts = crate::parse::Options::default();
        extract(bytes, &mut crate::parse::test_ctx(&opts))
    }

    #[test]
    fn crazyones_text_matches_ground_truth() {
        let truth = String::from_utf8(corpus("pypdf__crazyones.txt")).unwrap();
        for file in ["pypdf__crazyones.pdf", "samplefiles__021-crazyones-pdfa.pdf"] {
            let pages = run(&corpus(file)).unwrap();
            assert_eq!(pages.len(), 1);
            // The ground truth keeps the ligatures (ﬁ, ﬀ) that docchat normalises away (NFKC).
            assert_eq!(
                pages[0].text.split_whitespace().collect::<Vec<_>>(),
                crate::parse::normalize_whitespace(&truth).split_whitespace().collect::<Vec<_>>(),
                "{file}"
            );
        }
    }

    #[test]
    fn multicolumn_page_keeps_column_order() {
        let pages = run(&corpus("samplefiles__026-multicolumn.pdf")).unwrap();
        let text = pages[0].text.split_whitespace().collect::<Vec<_>>().join(" ");
        // Left column top to bottom, then the right one, as in pypdf__multicolumn-lorem-ipsum.txt.
        let order = [
            "This is a sample document with two columns filled",
            "Curabitur dictum gravida mauris",
            "Vivamus viverra fermentum felis",
            "pellentesque ante. Phasellus adipiscing semper elit",
            "Nam ipsum ligula, eleifend at",
            "Quisque egestas wisi eget nunc",
        ];
        let at: Vec<usize> = order.iter().map(|s| text.find(s).unwrap_or_else(|| panic!("{s:?} missing"))).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
    }

    #[test]
    fn scans_and_unreadable_fonts_are_ocrd() {
        // Chinese text in a non-embedded GBK font: the text layer is mojibake, the rendering is fine.
        let pages = run(&corpus("pdfjs__XiaoBiaoSong.pdf")).unwrap();
        assert!(pages[0].ocr && !pages[0].text.is_empty());
        // The Vicksburg scans carry an OCR text layer of their own.
        let pages = run(&corpus("pypdf__Seige_of_Vicksburg_Sample_OCR.pdf")).unwrap();
        assert!(pages.iter().map(|p| p.text.to_uppercase()).any(|t| t.contains("VICKSBURG")));
        let pages = run(&corpus("pdfjs__scan-bad.pdf")).unwrap();
        assert_eq!(pages[0].text, "pdf.js");
    }

    #[test]
    fn form_fields_and_metadata_are_read() {
        let opts = crate::parse::Options::default();
        let mut ctx = crate::parse::test_ctx(&opts);
        let pages = extract(&corpus("pdfjs__prefilled_f1040.pdf"), &mut ctx).unwrap();
        let all: String = pages.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join("\n");
        assert!(all.contains("topmostSubform[0].Page2[0].p2-t124[0]: foobar"), "filled-in field value");
        assert!(all.contains("topmostSubform[0].Page2[0].c1_01_0_[0]: Yes"), "checked box");
        assert_eq!(ctx.metadata["pages"], 2);
    }

    #[test]
    fn encrypted_files_need_their_password() {
        let opts = |pw: Option<&str>| crate::parse::Options { password: pw.map(str::to_owned), ..Default::default() };
        let bytes = corpus("pypdf__crazyones-encrypted-256.pdf");
        for pw in [None, Some("wrong")] {
            let o = opts(pw);
            assert_eq!(extract(&bytes, &mut crate::parse::test_ctx(&o)).unwrap_err().kind, ErrorKind::Encrypted);
        }
        let o = opts(Some("password"));
        let pages = extract(&bytes, &mut crate::parse::test_ctx(&o)).unwrap();
        assert!(pages[0].text.starts_with("The Crazy Ones"));
        let o = opts(Some("S\u{aa}SL\u{ad}prep"));
        assert!(!extract(&corpus("pdfjs__saslprep-r6.pdf"), &mut crate::parse::test_ctx(&o)).unwrap()[0].text.is_empty());
    }

    #[test]
    fn garbage_text_layers_are_recognised() {
        assert!(!is_garbage("The quick brown fox. Café crème, naïve déjà vu."));
        assert!(!is_garbage("à À â Â ä Ä ç Ç é É è È ê Ê ë Ë î Î ï Ï ô Ô ù Ù û Û ü Ü 1"));
        assert!(!is_garbage("東京都 日本語のテキスト"));
        assert!(is_garbage("ÖÐÎÄ×Ö·û´®²âÊÔ ÄãºÃ"));
        assert!(is_garbage("\u{1}\u{2}\u{3} ab \u{E001}\u{E002}"));
        assert!(!is_garbage(""));
    }

    #[test]
    fn dates_become_iso() {
        assert_eq!(pdf_date("D:20040609115437+02'00'").as_deref(), Some("2004-06-09T11:54:37"));
        assert_eq!(pdf_date("D:1999").as_deref(), None);
    }

    #[test]
    fn damaged_files_are_corrupt_errors() {
        for name in ["pdfjs__poppler-395-0-fuzzed.pdf", "pdfjs__poppler-85140-0.pdf"] {
            let err = run(&corpus(name)).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Corrupt, "{name}: {err}");
        }
        let whole = corpus("pypdf__crazyones.pdf");
        assert_eq!(run(&whole[..whole.len() / 2]).unwrap_err().kind, ErrorKind::Corrupt);
    }
}
