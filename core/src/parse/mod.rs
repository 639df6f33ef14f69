//! Bytes → pages of clean text, one module per format.
mod html;
mod markdown;
mod pdf;

use crate::detect::{self, Format};
use crate::error::Result;

/// One page (PDF) or the whole document (text formats) of extracted text.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// 1-based page number for paged formats.
    pub number: Option<u32>,
    pub text: String,
}

#[derive(Debug)]
pub struct Parsed {
    pub format: Format,
    pub pages: Vec<Page>,
    /// Document properties found in the file (title, page count, …).
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl Parsed {
    pub fn n_chars(&self) -> usize {
        self.pages.iter().map(|p| p.text.chars().count()).sum()
    }
}

/// Detects the format and extracts text. Empty results are the caller's to judge.
pub fn parse(bytes: &[u8], filename: Option<&str>, mime: Option<&str>) -> Result<Parsed> {
    let detected = detect::detect(bytes, filename, mime)?;
    let mut metadata = serde_json::Map::new();
    let pages = match (detected.format, detected.text) {
        (Format::Pdf, _) => pdf::extract(bytes, &mut metadata)?,
        (Format::Html, Some(t)) => vec![whole(html::extract(&t, &mut metadata))],
        (Format::Markdown, Some(t)) => vec![whole(markdown::extract(&t, &mut metadata))],
        (_, text) => vec![whole(normalize_whitespace(&text.unwrap_or_default()))],
    };
    Ok(Parsed { format: detected.format, pages, metadata })
}

fn whole(text: String) -> Page {
    Page { number: None, text }
}

/// Trims every line, collapses runs of spaces, keeps at most one blank line between paragraphs.
pub fn normalize_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_is_normalised() {
        assert_eq!(normalize_whitespace("  a \t b \r\n\r\n\r\n\nc\n d  "), "a b\n\nc\nd");
        assert_eq!(normalize_whitespace("\n\n"), "");
    }

    #[test]
    fn text_parses_to_one_page() {
        let p = parse("Hello\n\n\nworld ".as_bytes(), None, None).unwrap();
        assert_eq!(p.format, Format::Text);
        assert_eq!(p.pages, vec![Page { number: None, text: "Hello\n\nworld".into() }]);
    }
}
