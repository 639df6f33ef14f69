//! Format detection from the bytes. The filename and mime type only break ties between
//! text formats (Markdown vs plain text), never override what the bytes say.
use crate::error::{DocError, ErrorKind, Result};
use crate::parse::charset;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pdf,
    Html,
    Markdown,
    Text,
    Docx,
    Pptx,
    Xlsx,
    /// Legacy Excel 97-2003 (BIFF in an OLE2 container).
    Xls,
    Ods,
    Odt,
    Odp,
    Epub,
    Rtf,
    Image(ImageKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Png,
    Jpeg,
    Tiff,
    Gif,
    Bmp,
    Webp,
}

impl Format {
    pub fn mime_type(self) -> &'static str {
        match self {
            Format::Pdf => "application/pdf",
            Format::Html => "text/html",
            Format::Markdown => "text/markdown",
            Format::Text => "text/plain",
            Format::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            Format::Pptx => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Format::Xls => "application/vnd.ms-excel",
            Format::Ods => "application/vnd.oasis.opendocument.spreadsheet",
            Format::Odt => "application/vnd.oasis.opendocument.text",
            Format::Odp => "application/vnd.oasis.opendocument.presentation",
            Format::Epub => "application/epub+zip",
            Format::Rtf => "application/rtf",
            Format::Image(ImageKind::Png) => "image/png",
            Format::Image(ImageKind::Jpeg) => "image/jpeg",
            Format::Image(ImageKind::Tiff) => "image/tiff",
            Format::Image(ImageKind::Gif) => "image/gif",
            Format::Image(ImageKind::Bmp) => "image/bmp",
            Format::Image(ImageKind::Webp) => "image/webp",
        }
    }

    /// Short lower-case name, stored as metadata.format.
    pub fn name(self) -> String {
        match self {
            Format::Image(kind) => format!("{kind:?}").to_lowercase(),
            other => format!("{other:?}").to_lowercase(),
        }
    }
}

pub const SUPPORTED: &str = "PDF, DOCX, PPTX, XLSX/XLS/ODS, ODT/ODP, EPUB, RTF, HTML, Markdown, plain text \
                             (UTF-8, UTF-16, Latin-1) and images (PNG, JPEG, TIFF, GIF, BMP, WebP; read by OCR)";

/// What a document's bytes are, and for text formats the decoded text.
#[derive(Debug)]
pub struct Detected {
    pub format: Format,
    /// Decoded text for text formats; `None` for binary formats.
    pub text: Option<String>,
}

const IMAGES: &[(&[u8], ImageKind)] = &[
    (b"\x89PNG\r\n\x1a\n", ImageKind::Png),
    (b"\xFF\xD8\xFF", ImageKind::Jpeg),
    (b"GIF87a", ImageKind::Gif),
    (b"GIF89a", ImageKind::Gif),
    (b"II*\x00", ImageKind::Tiff),
    (b"MM\x00*", ImageKind::Tiff),
];

/// Binary signatures we recognise but cannot read, so the error can name them.
const KNOWN_BINARY: &[(&[u8], &str)] = &[(b"\x1F\x8B", "gzip archive"), (b"7z\xBC\xAF\x27\x1C", "7-Zip archive")];

pub fn detect(bytes: &[u8], filename: Option<&str>, mime: Option<&str>) -> Result<Detected> {
    if bytes.is_empty() {
        return Err(DocError::new(ErrorKind::InvalidArgument, "document is empty (0 bytes)")
            .with_hint("pass the file's contents, e.g. pg_read_binary_file(path) or a bytea parameter"));
    }
    // PDF readers accept the header anywhere in the first 1024 bytes.
    if find(&bytes[..bytes.len().min(1024)], b"%PDF-").is_some() {
        return Ok(Detected { format: Format::Pdf, text: None });
    }
    let binary = |format| Ok(Detected { format, text: None });
    if bytes.starts_with(b"PK\x03\x04") {
        return binary(sniff_zip(bytes)?);
    }
    if bytes.starts_with(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1") {
        return binary(sniff_ole(bytes)?);
    }
    if bytes.starts_with(b"{\\rtf") {
        return binary(Format::Rtf);
    }
    for (magic, kind) in IMAGES {
        if bytes.starts_with(magic) {
            return binary(Format::Image(*kind));
        }
    }
    if bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return binary(Format::Image(ImageKind::Webp));
    }
    if bytes.starts_with(b"BM") && bytes.len() > 26 && looks_binary(bytes) {
        return binary(Format::Image(ImageKind::Bmp));
    }
    for (magic, name) in KNOWN_BINARY {
        if bytes.starts_with(magic) {
            return Err(unsupported(name));
        }
    }
    // NULs and control bytes mean binary data, unless they are the zero bytes of UTF-16/32 text.
    if looks_binary(bytes) && !charset::is_utf16_or_32(bytes) {
        return Err(DocError::new(ErrorKind::Unsupported, "unrecognised binary data: not a supported document format")
            .with_hint(format!("supported formats: {SUPPORTED}")));
    }
    let text = charset::decode_text(bytes)?;
    let format = classify_text(&text, filename, mime);
    Ok(Detected { format, text: Some(text) })
}

/// Which document a ZIP container holds, from its part names and ODF/EPUB `mimetype` entry.
fn sniff_zip(bytes: &[u8]) -> Result<Format> {
    let corrupt = |e: zip::result::ZipError| {
        DocError::new(ErrorKind::Corrupt, format!("damaged ZIP container: {e}"))
            .with_hint("the file is truncated or not a complete DOCX/XLSX/PPTX/ODF/EPUB file")
    };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(corrupt)?;
    let has = |archive: &zip::ZipArchive<_>, name: &str| archive.index_for_name(name).is_some();
    if has(&archive, "word/document.xml") {
        return Ok(Format::Docx);
    }
    if has(&archive, "ppt/presentation.xml") {
        return Ok(Format::Pptx);
    }
    if has(&archive, "xl/workbook.xml") || has(&archive, "xl/workbook.bin") {
        return Ok(Format::Xlsx);
    }
    if let Ok(mut entry) = archive.by_name("mimetype") {
        let mut mime = String::new();
        use std::io::Read;
        let _ = (&mut entry).take(100).read_to_string(&mut mime);
        match mime.trim() {
            "application/vnd.oasis.opendocument.text" => return Ok(Format::Odt),
            "application/vnd.oasis.opendocument.spreadsheet" => return Ok(Format::Ods),
            "application/vnd.oasis.opendocument.presentation" => return Ok(Format::Odp),
            "application/epub+zip" => return Ok(Format::Epub),
            _ => {}
        }
    }
    Err(unsupported("ZIP archive without a known document inside"))
}

/// Which legacy Office file an OLE2 compound file holds, from its stream names (UTF-16 in
/// the directory sectors).
fn sniff_ole(bytes: &[u8]) -> Result<Format> {
    let has_stream = |name: &str| {
        let utf16: Vec<u8> = name.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        bytes.windows(utf16.len()).any(|w| w == utf16.as_slice())
    };
    if has_stream("EncryptedPackage") {
        return Err(DocError::new(ErrorKind::Encrypted, "password-protected Office document (encrypted OOXML)")
            .with_hint("remove the password in the Office application and ingest the saved copy"));
    }
    if has_stream("Workbook") || has_stream("Book") {
        return Ok(Format::Xls);
    }
    let legacy = if has_stream("WordDocument") {
        "legacy Word 97-2003 document (.doc)"
    } else if has_stream("PowerPoint Document") {
        "legacy PowerPoint 97-2003 presentation (.ppt)"
    } else {
        "OLE2 compound file"
    };
    Err(DocError::new(ErrorKind::Unsupported, format!("{legacy} is not a supported document format"))
        .with_hint(format!("save it as .docx/.pptx (or PDF) and ingest that; supported formats: {SUPPORTED}")))
}

fn unsupported(what: &str) -> DocError {
    DocError::new(ErrorKind::Unsupported, format!("{what} is not a supported document format")).with_hint(format!("supported formats: {SUPPORTED}"))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// NUL bytes or many control characters in the first 8 KiB mean binary data, not text.
fn looks_binary(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(8192)];
    let control = head.iter().filter(|&&b| b == 0 || (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0C))).count();
    control > 0 && (head.contains(&0) || control * 20 > head.len())
}

fn classify_text(text: &str, filename: Option<&str>, mime: Option<&str>) -> Format {
    let head: String = text.trim_start().chars().take(1024).collect::<String>().to_ascii_lowercase();
    if head.starts_with("<!doctype html") || head.starts_with("<html") || head.contains("<body") || head.contains("<head>") {
        return Format::Html;
    }
    let ext = filename.and_then(|f| f.rsplit_once('.')).map(|(_, e)| e.to_ascii_lowercase());
    let mime = mime.map(|m| m.to_ascii_lowercase());
    let hinted_html = matches!(ext.as_deref(), Some("html" | "htm" | "xhtml")) || mime.as_deref() == Some("text/html");
    if hinted_html && head.starts_with('<') {
        return Format::Html;
    }
    let hinted_md =
        matches!(ext.as_deref(), Some("md" | "markdown" | "mdown" | "mkd")) || matches!(mime.as_deref(), Some("text/markdown" | "text/x-markdown"));
    if hinted_md || markdown_signals(text) >= 2 {
        Format::Markdown
    } else {
        Format::Text
    }
}

/// Counts lines that only Markdown writes: ATX headings, fences, links, list bullets.
fn markdown_signals(text: &str) -> usize {
    text.lines()
        .take(400)
        .filter(|l| {
            let t = l.trim_start();
            let hashes = t.chars().take_while(|&c| c == '#').count();
            (1..=6).contains(&hashes) && t[hashes..].starts_with(' ') || t.starts_with("```") || (t.contains("](") && t.contains('['))
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn office(name: &str) -> Result<Format> {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/office").join(name);
        fmt(&std::fs::read(&path).unwrap(), None)
    }

    #[test]
    fn containers_are_told_apart_by_content() {
        assert_eq!(office("tika__testWORD.docx").unwrap(), Format::Docx);
        assert_eq!(office("tika__testPPT.pptx").unwrap(), Format::Pptx);
        assert_eq!(office("tika__test-columnar.xlsx").unwrap(), Format::Xlsx);
        assert_eq!(office("tika__testEXCEL.xls").unwrap(), Format::Xls);
        assert_eq!(office("tika__testODFwithOOo3.odt").unwrap(), Format::Odt);
        assert_eq!(office("tika__testEPUB.epub").unwrap(), Format::Epub);
        assert_eq!(office("tika__testRTF.rtf").unwrap(), Format::Rtf);
        assert_eq!(office("tika__testComment.doc").unwrap_err().kind, ErrorKind::Unsupported);
        assert_eq!(office("tika__testWORD_protected_passtika.docx").unwrap_err().kind, ErrorKind::Encrypted);
    }

    fn fmt(bytes: &[u8], name: Option<&str>) -> Result<Format> {
        detect(bytes, name, None).map(|d| d.format)
    }

    #[test]
    fn detects_by_bytes_not_name() {
        assert_eq!(fmt(b"%PDF-1.4\n...", Some("notes.txt")).unwrap(), Format::Pdf);
        assert_eq!(fmt(b"<!DOCTYPE html><p>hi</p>", Some("x.pdf")).unwrap(), Format::Html);
        assert_eq!(fmt(b"just words", Some("a.txt")).unwrap(), Format::Text);
        assert_eq!(fmt(b"# Title\n\nSee [x](http://y).\n", None).unwrap(), Format::Markdown);
        assert_eq!(fmt(b"plain *text*", Some("readme.md")).unwrap(), Format::Markdown);
    }

    #[test]
    fn decodes_boms() {
        let d = detect(b"\xFF\xFEh\x00i\x00", None, None).unwrap();
        assert_eq!(d.text.as_deref(), Some("hi"));
        let d = detect(b"\xEF\xBB\xBFhi", None, None).unwrap();
        assert_eq!(d.text.as_deref(), Some("hi"));
        // BOM-less UTF-16: its NUL bytes must not read as binary data.
        let d = detect(b"h\0e\0l\0l\0o\0", None, None).unwrap();
        assert_eq!(d.text.as_deref(), Some("hello"));
    }

    #[test]
    fn rejects_bad_input_with_specific_kinds() {
        assert_eq!(fmt(b"", None).unwrap_err().kind, ErrorKind::InvalidArgument);
        let latin1 = detect(b"caf\xe9 au lait", None, None).unwrap();
        assert_eq!(latin1.text.as_deref(), Some("caf\u{e9} au lait"));
        assert_eq!(fmt(b"caf\xc3\xa9 au \xe9", None).unwrap_err().kind, ErrorKind::InvalidEncoding);
        assert_eq!(fmt(b"caf\xc3\xa9 au \xe9", None).unwrap_err().message, "text is not valid UTF-8 (invalid byte at offset 9)");
        assert_eq!(fmt(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", None).unwrap(), Format::Image(ImageKind::Png));
        assert_eq!(fmt(b"\x1F\x8B\x08\0\0\0", None).unwrap_err().message, "gzip archive is not a supported document format");
        assert_eq!(fmt(&[0x13, 0x00, 0x9c, 0xff, 0x01, 0x02], None).unwrap_err().kind, ErrorKind::Unsupported);
    }
}
