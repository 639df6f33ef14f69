//! PDF → per-page text with pdf-extract on top of lopdf. Both libraries panic on some hostile
//! input, so every call into them runs under `catch_unwind` and a panic becomes a `Corrupt` error.
use crate::error::{DocError, ErrorKind, Result};
use lopdf::Document;
use serde_json::Value;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::{Ctx, Page};

pub fn extract(bytes: &[u8], ctx: &mut Ctx) -> Result<Vec<Page>> {
    let mut doc = guarded("cannot read PDF", || Document::load_mem(bytes).map_err(|e| e.to_string()))?;
    if doc.is_encrypted() {
        // Files with only an owner password open with the empty user password.
        guarded("cannot read PDF", || doc.decrypt("").map_err(|e| e.to_string())).map_err(|_| {
            DocError::new(ErrorKind::Encrypted, "PDF is encrypted with a user password")
                .with_hint("decrypt it first (e.g. qpdf --decrypt --password=... in.pdf out.pdf)")
        })?;
    }
    let page_numbers: Vec<u32> = guarded("cannot read PDF page tree", || Ok(doc.get_pages().into_keys().collect()))?;
    if page_numbers.is_empty() {
        return Err(corrupt("PDF has no readable pages (damaged page tree)"));
    }
    ctx.check_pages(page_numbers.len())?;
    ctx.metadata.insert("pages".into(), Value::from(page_numbers.len()));
    if let Some(title) = info_string(&doc, b"Title") {
        ctx.set_meta("title", title);
    }
    let mut pages = Vec::with_capacity(page_numbers.len());
    let mut failed = 0;
    for n in page_numbers {
        ctx.check()?;
        match guarded("cannot extract page text", || page_text(&doc, n)) {
            Ok(text) => pages.push(Page::new(Some(n), super::normalize_whitespace(&text))),
            Err(_) => failed += 1,
        }
    }
    if pages.is_empty() {
        return Err(corrupt(format!("no page of the PDF could be read ({failed} failed)")));
    }
    Ok(pages)
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
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/pdf").join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn run(bytes: &[u8]) -> Result<Vec<Page>> {
        let opts = crate::parse::Options::default();
        extract(bytes, &mut crate::parse::test_ctx(&opts))
    }

    #[test]
    fn crazyones_text_matches_ground_truth() {
        let pages = run(&corpus("pypdf__crazyones.pdf")).unwrap();
        let truth = String::from_utf8(corpus("pypdf__crazyones.txt")).unwrap();
        assert_eq!(pages.len(), 1);
        // The ground truth keeps the ligatures (ﬁ, ﬀ) that docchat normalises away (NFKC).
        assert_eq!(pages[0].text.split_whitespace().collect::<Vec<_>>(), crate::parse::normalize_whitespace(&truth).split_whitespace().collect::<Vec<_>>());
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
