//! ZIP- and OLE-based office documents: DOCX, PPTX, XLSX/XLS/ODS, ODT/ODP, EPUB. This file holds
//! what the formats share: the ZIP reader that caps decompressed bytes, OPC relationships, an XML
//! event walker, and `Sink`, which turns paragraphs, tables, notes and headings into page text.
use super::{page_with_headings, Ctx, Page, HEADING_MARK};
use crate::detect::Format;
use crate::error::{DocError, ErrorKind, Result};
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Cursor, Read, Write};

mod chart;
pub(super) mod crypto;
mod docx;
mod epub;
mod odf;
mod ods;
pub(super) mod pptx;
mod sheets;
#[cfg(test)]
mod testutil;

pub fn extract(format: Format, bytes: &[u8], ctx: &mut Ctx) -> Result<Vec<Page>> {
    if format == Format::Xls {
        return sheets::extract(format, bytes, None, ctx);
    }
    let mut pkg = Package::open(bytes, ctx.options.max_decompressed_bytes)?;
    match format {
        Format::Docx => docx::extract(&mut pkg, ctx),
        Format::Pptx => pptx::extract(&mut pkg, ctx),
        Format::Xlsx => sheets::extract(format, bytes, Some(&mut pkg), ctx),
        Format::Ods => ods::extract(&mut pkg, ctx),
        Format::Odt | Format::Odp => odf::extract(format, &mut pkg, ctx),
        Format::Epub => epub::extract(&mut pkg, ctx),
        other => Err(DocError::new(ErrorKind::Unsupported, format!("{} is not an office format", other.name()))),
    }
}

pub(super) fn corrupt(message: impl Into<String>) -> DocError {
    DocError::new(ErrorKind::Corrupt, message)
        .with_hint("the file is damaged or truncated; open it in its application, save a fresh copy and ingest that")
}

/// A ZIP container whose entries are only read through `read`/`check_all`, which count every
/// decompressed byte against `max_decompressed_bytes`: a zip bomb stops at the limit.
pub(super) struct Package<'a> {
    zip: zip::ZipArchive<Cursor<&'a [u8]>>,
    budget: u64,
    limit: u64,
}

/// One OPC relationship: `kind` is the last segment of its type URI ("slide", "header", …) and
/// `target` the part name it points to.
pub(super) struct Rel {
    pub id: String,
    pub kind: String,
    pub target: String,
}

impl<'a> Package<'a> {
    pub(super) fn open(bytes: &'a [u8], limit: u64) -> Result<Self> {
        let zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| corrupt(format!("damaged ZIP container: {e}")))?;
        Ok(Package { zip, budget: limit, limit })
    }

    /// Part names are case-insensitive in OPC, and some writers do not keep the case.
    fn index(&self, name: &str) -> Option<usize> {
        self.zip.index_for_name(name).or_else(|| self.zip.file_names_raw().position(|n| n.eq_ignore_ascii_case(name.as_bytes())))
    }

    /// Decompresses entry `i` into `out`, counting its bytes against the budget.
    fn inflate(&mut self, i: usize, out: &mut impl Write) -> Result<()> {
        let mut entry = self.zip.by_index(i).map_err(|e| match e {
            zip::result::ZipError::UnsupportedArchive(zip::result::ZipError::PASSWORD_REQUIRED) => {
                DocError::new(ErrorKind::Encrypted, "the document's ZIP entries are password-protected")
                    .with_hint("remove the password in the application and ingest the saved copy")
            }
            e => corrupt(format!("cannot open ZIP entry {i}: {e}")),
        })?;
        let name = entry.name().map(|n| n.into_owned()).unwrap_or_default();
        let n = std::io::copy(&mut (&mut entry).take(self.budget.saturating_add(1)), out)
            .map_err(|e| corrupt(format!("cannot decompress {name}: {e}")))?;
        if n > self.budget {
            return Err(DocError::new(
                ErrorKind::TooLarge,
                format!("document decompresses to more than {} MB (stopped at {name})", self.limit.div_ceil(1 << 20)),
            )
            .with_hint("raise docchat.max_decompressed_size if the file is trusted"));
        }
        self.budget -= n;
        Ok(())
    }

    /// Every entry's name, in the archive's order.
    pub(super) fn names(&self) -> Vec<String> {
        self.zip.file_names().filter_map(|n| n.ok().map(|n| n.into_owned())).collect()
    }

    pub(super) fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some(i) = self.index(name) else { return Ok(None) };
        let mut buf = Vec::new();
        self.inflate(i, &mut buf)?;
        Ok(Some(buf))
    }

    /// An entry as text: UTF-8, or UTF-16 when it starts with a byte-order mark.
    pub(super) fn read_text(&mut self, name: &str) -> Result<Option<String>> {
        Ok(self.read(name)?.map(|bytes| match encoding_rs::Encoding::for_bom(&bytes) {
            Some((encoding, bom)) => encoding.decode_without_bom_handling(&bytes[bom..]).0.into_owned(),
            None => String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        }))
    }

    /// Decompresses every entry once, so that a reader we do not control (calamine) never gets
    /// to inflate more than the budget allows.
    pub(super) fn check_all(&mut self) -> Result<()> {
        for i in 0..self.zip.len() {
            self.inflate(i, &mut std::io::sink())?;
        }
        Ok(())
    }

    /// The relationships of `part` (from `dir/_rels/name.rels`), without external links.
    pub(super) fn rels(&mut self, part: &str) -> Result<Vec<Rel>> {
        let (dir, file) = part.rsplit_once('/').unwrap_or(("", part));
        let path = if dir.is_empty() { format!("_rels/{file}.rels") } else { format!("{dir}/_rels/{file}.rels") };
        let Some(xml) = self.read_text(&path)? else { return Ok(Vec::new()) };
        let mut rels = Vec::new();
        walk_xml(&xml, &path, |ev| {
            if let Ev::Open(e) = ev {
                if local(e) == "Relationship" && attr(e, "TargetMode").as_deref() != Some("External") {
                    if let (Some(id), Some(kind), Some(target)) = (attr(e, "Id"), attr(e, "Type"), attr(e, "Target")) {
                        let kind = kind.rsplit('/').next().unwrap_or_default().to_string();
                        rels.push(Rel { id, kind, target: resolve(dir, &target) });
                    }
                }
            }
            Ok(())
        })?;
        Ok(rels)
    }
}

/// Resolves a relative reference (`../notesSlides/n1.xml`, `/ppt/x.xml`, `ch%201.xhtml#s2`)
/// against the folder `dir` into a part name.
pub(super) fn resolve(dir: &str, target: &str) -> String {
    let target = percent_decode(target.split(['#', '?']).next().unwrap_or_default());
    let mut parts: Vec<&str> = if target.starts_with('/') { Vec::new() } else { dir.split('/').collect() };
    for segment in target.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.retain(|s| !s.is_empty());
    parts.join("/")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One XML event; element names come without their namespace prefix, text unescaped.
pub(super) enum Ev<'a> {
    Open(&'a BytesStart<'a>),
    Close(&'a str),
    Text(&'a str),
}

/// Feeds every event of `xml` to `f`; an empty element comes as `Open` then `Close`. Only the
/// five XML entities and character references are expanded, so entity bombs have no effect.
pub(super) fn walk_xml(xml: &str, part: &str, mut f: impl FnMut(Ev) -> Result<()>) -> Result<()> {
    let mut reader = Reader::from_str(xml);
    loop {
        match reader.read_event().map_err(|e| corrupt(format!("damaged XML in {part}: {e}")))? {
            Event::Start(e) => f(Ev::Open(&e))?,
            Event::Empty(e) => {
                f(Ev::Open(&e))?;
                f(Ev::Close(local(&e)))?;
            }
            Event::End(e) => f(Ev::Close(e.local_name().into_inner()))?,
            Event::Text(t) => f(Ev::Text(&t.xml10_content()))?,
            Event::CData(t) => f(Ev::Text(&t))?,
            Event::GeneralRef(r) => match r.resolve_char_ref() {
                Ok(Some(c)) => f(Ev::Text(c.encode_utf8(&mut [0; 4])))?,
                _ => f(Ev::Text(quick_xml::escape::resolve_predefined_entity(&r).unwrap_or_default()))?,
            },
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

pub(super) fn local<'a>(e: &'a BytesStart) -> &'a str {
    e.local_name().into_inner()
}

/// An attribute by its qualified name (`w:val`), unescaped.
pub(super) fn attr(e: &BytesStart, name: &str) -> Option<String> {
    let a = e.attributes().flatten().find(|a| a.key.into_inner() == name)?;
    a.normalized_value(XmlVersion::Implicit1_0).ok().map(|v| v.into_owned())
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Sets metadata from the first text of elements named in `fields` (local name, key), earlier
/// fields first so they win for a shared key. Metadata is optional: a damaged part is ignored.
pub(super) fn set_meta_fields(ctx: &mut Ctx, xml: &str, part: &str, fields: &[(&str, &str)]) {
    let mut found: HashMap<&str, String> = HashMap::new();
    let mut open: Option<&str> = None;
    let walked = walk_xml(xml, part, |ev| {
        match ev {
            Ev::Open(e) => {
                open = fields.iter().map(|f| f.0).find(|name| *name == local(e) && !found.contains_key(name));
                if let Some(name) = open {
                    found.insert(name, String::new());
                }
            }
            Ev::Text(t) => {
                if let Some(value) = open.and_then(|name| found.get_mut(name)) {
                    value.push_str(t);
                }
            }
            Ev::Close(_) => open = None,
        }
        Ok(())
    });
    if walked.is_ok() {
        for (name, key) in fields {
            if let Some(value) = found.get(name) {
                ctx.set_meta(key, squash(value));
            }
        }
    }
}

/// OOXML document properties: title, author, created, modified.
pub(super) fn core_props(pkg: &mut Package, ctx: &mut Ctx) -> Result<()> {
    let part = "docProps/core.xml";
    if let Some(xml) = pkg.read_text(part)? {
        let fields = [("title", "title"), ("creator", "author"), ("created", "created"), ("modified", "modified")];
        set_meta_fields(ctx, &xml, part, &fields);
    }
    Ok(())
}

/// The Symbol font's private-use code points (U+F020..U+F0FE) as Unicode (Adobe Symbol encoding).
pub(super) fn symbol_char(code: u32) -> Option<char> {
    const LOW: &str = " !∀#∃%&∋()∗+,−./0123456789:;<=>?≅ΑΒΧΔΕΦΓΗΙϑΚΛΜΝΟΠΘΡΣΤΥςΩΞΨΖ[∴]⊥_‾αβχδεφγηιϕκλμνοπθρστυϖωξψζ{|}∼";
    const HIGH: &str = "€ϒ′≤⁄∞ƒ♣♦♥♠↔←↑→↓°±″≥×∝∂•÷≠≡≈…⏐⎯↵ℵℑℜ℘⊗⊕∅∩∪⊃⊇⊄⊂⊆∈∉∠∇®©™∏√⋅¬∧∨⇔⇐⇑⇒⇓◊〈®©™∑⎛⎜⎝⎡⎢⎣⎧⎨⎩⎪ 〉∫⌠⎮⌡⎞⎟⎠⎤⎥⎦⎫⎬⎭";
    match code {
        0xF020..=0xF07E => LOW.chars().nth((code - 0xF020) as usize),
        0xF0A0..=0xF0FE => HIGH.chars().nth((code - 0xF0A0) as usize),
        _ => None,
    }
}

/// Text in a symbol font: the Symbol font's private-use characters become their Unicode
/// equivalents; those of other symbol fonts (Wingdings bullets and arrows) have none and go.
pub(super) fn font_text(text: &str, symbol_font: bool) -> Cow<'_, str> {
    let private = |c: char| ('\u{F000}'..='\u{F0FF}').contains(&c);
    if !text.chars().any(private) {
        return Cow::Borrowed(text);
    }
    let mapped = text.chars().filter_map(|c| match private(c) {
        true if symbol_font => symbol_char(c as u32),
        true => None,
        false => Some(c),
    });
    Cow::Owned(mapped.collect())
}

/// Builds one page's text: paragraphs separated by blank lines, table rows as lines with cells
/// joined by " | ", note bodies moved to the end, headings remembered by where they start.
#[derive(Default)]
pub(super) struct Sink {
    text: String,
    notes: String,
    /// Open note bodies: while any is open, text goes to `notes`.
    in_note: usize,
    /// Per open table: the cells begun so far in the current row, and where the row starts.
    cells: Vec<(usize, usize)>,
    headings: Vec<(usize, u8, String)>,
}

impl Sink {
    fn buf(&mut self) -> &mut String {
        if self.in_note > 0 {
            &mut self.notes
        } else {
            &mut self.text
        }
    }

    /// Document text; a stray `HEADING_MARK` in it would shift every heading, so it is dropped.
    pub(super) fn push(&mut self, s: &str) {
        let buf = self.buf();
        if s.contains(HEADING_MARK) {
            buf.extend(s.chars().filter(|&c| c != HEADING_MARK));
        } else {
            buf.push_str(s);
        }
    }

    /// Inside a table cell every break is a space, so a row stays on one line.
    fn separator(&mut self, outside_tables: &str) {
        let sep = if self.cells.is_empty() { outside_tables } else { " " };
        self.buf().push_str(sep);
    }

    pub(super) fn para_break(&mut self) {
        self.separator("\n\n");
    }

    pub(super) fn line_break(&mut self) {
        self.separator("\n");
    }

    pub(super) fn table_start(&mut self) {
        self.para_break();
        let start = self.buf().len();
        self.cells.push((0, start));
    }

    pub(super) fn row_start(&mut self) {
        let start = self.buf().len();
        if let Some(row) = self.cells.last_mut() {
            *row = (0, start);
        }
    }

    pub(super) fn cell_start(&mut self) {
        let first = match self.cells.last_mut() {
            Some((n, _)) => {
                *n += 1;
                *n == 1
            }
            None => return,
        };
        if !first {
            self.buf().push_str(" | ");
        }
    }

    /// Empty cells at the end of a row are dropped, and with them rows that are all empty.
    /// Rows of a nested table stay inside the outer cell's line.
    pub(super) fn row_end(&mut self) {
        let (start, nested) = (self.cells.last().map(|row| row.1), self.cells.len() > 1);
        let buf = self.buf();
        if let Some(row) = start.and_then(|s| buf.get(s..)) {
            let keep = row.trim_end_matches(|c: char| c == '|' || c.is_whitespace()).len();
            buf.truncate(buf.len() - row.len() + keep);
        }
        buf.push_str(if nested { " " } else { "\n" });
    }

    pub(super) fn table_end(&mut self) {
        self.cells.pop();
        self.para_break();
    }

    pub(super) fn note_start(&mut self) {
        self.in_note += 1;
        self.para_break();
    }

    pub(super) fn note_end(&mut self) {
        self.in_note = self.in_note.saturating_sub(1);
    }

    /// Where the next text goes, to pass back to `heading` later.
    pub(super) fn pos(&self) -> usize {
        self.text.len()
    }

    /// Squashed text written since `start`, if `start` is outside tables and notes.
    fn text_since(&self, start: usize) -> Option<String> {
        if self.in_note > 0 || !self.cells.is_empty() {
            return None;
        }
        Some(squash(self.text.get(start..)?)).filter(|t| !t.is_empty())
    }

    /// Marks the text written since `start` as a heading of `level`.
    pub(super) fn heading(&mut self, start: usize, level: u8) {
        if let Some(title) = self.text_since(start) {
            let rest = &self.text[start..];
            let offset = start + rest.len() - rest.trim_start().len();
            self.headings.push((offset, level, title));
        }
    }

    /// Marks the text written since `start` as the title of the whole page (a slide's title
    /// shape need not come first, but its section is the whole slide).
    pub(super) fn page_title(&mut self, start: usize) {
        if let Some(title) = self.text_since(start) {
            self.headings.push((0, 1, title));
        }
    }

    pub(super) fn into_page(mut self, number: Option<u32>) -> Page {
        // A mark must sit on the first character of its line, not before the page's leading breaks.
        let lead = self.text.len() - self.text.trim_start().len();
        self.headings.sort_by_key(|h| h.0);
        let mut raw = String::with_capacity(self.text.len() + self.notes.len() + 4 * self.headings.len() + 2);
        let mut last = 0;
        let mut titles = Vec::with_capacity(self.headings.len());
        for (offset, level, title) in self.headings {
            let offset = offset.max(lead);
            if let Some(before) = self.text.get(last..offset) {
                raw.push_str(before);
                raw.push(HEADING_MARK);
                titles.push((level, title));
                last = offset;
            }
        }
        raw.push_str(&self.text[last..]);
        raw.push_str("\n\n");
        raw.push_str(&self.notes);
        page_with_headings(number, &raw, titles)
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::{zip_of, Parsed};
    use super::*;
    use crate::parse::{Heading, Options};

    #[test]
    fn resolves_relative_part_names() {
        assert_eq!(resolve("ppt/slides", "../notesSlides/notesSlide1.xml"), "ppt/notesSlides/notesSlide1.xml");
        assert_eq!(resolve("word", "/word/header1.xml"), "word/header1.xml");
        assert_eq!(resolve("OPS", "chapters/chapter%201.html#top"), "OPS/chapters/chapter 1.html");
        assert_eq!(resolve("", "../../x.xml"), "x.xml");
    }

    #[test]
    fn symbol_fonts_map_or_drop_private_use_characters() {
        assert_eq!(font_text("x \u{F0DA} \u{F028}", true), "x ∨ (");
        assert_eq!(font_text("\u{F0E0} Available", false), " Available");
        assert_eq!(symbol_char(0xF0FE), Some('⎭'));
        assert_eq!(symbol_char(0xF07E), Some('∼'));
    }

    #[test]
    fn sink_lays_out_tables_notes_and_headings() {
        let mut sink = Sink::default();
        let start = sink.pos();
        sink.para_break();
        sink.push("Intro\u{E000}");
        sink.heading(start, 1);
        sink.para_break();
        sink.push("body");
        sink.note_start();
        sink.push("a note");
        sink.note_end();
        sink.table_start();
        for row in [["a", "b"], ["c", "d"]] {
            sink.row_start();
            for cell in row {
                sink.cell_start();
                sink.para_break();
                sink.push(cell);
            }
            sink.cell_start();
            sink.row_end();
        }
        sink.row_start();
        sink.cell_start();
        sink.cell_start();
        sink.row_end();
        sink.table_end();
        let page = sink.into_page(Some(3));
        assert_eq!(page.text, "Intro\n\nbody\n\na | b\nc | d\n\na note");
        assert_eq!(page.headings, vec![Heading { offset: 0, level: 1, title: "Intro".into() }]);
        assert_eq!(page.number, Some(3));
    }

    fn docx_of(document: &[u8], limit: u64) -> Result<Vec<Page>> {
        let bytes = zip_of(&[("word/document.xml", document)]);
        let opts = Options { max_decompressed_bytes: limit, ..Options::default() };
        extract(Format::Docx, &bytes, &mut crate::parse::test_ctx(&opts))
    }

    #[test]
    fn zip_bomb_stops_at_the_limit() {
        let err = docx_of(&vec![0u8; 50 << 20], 1 << 20).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TooLarge);
        assert!(err.hint.unwrap().contains("docchat.max_decompressed_size"));
    }

    #[test]
    fn damaged_containers_are_corrupt() {
        let bytes = std::fs::read(testutil::corpus("tika__testWORD.docx")).unwrap();
        let opts = Options::default();
        let err = extract(Format::Docx, &bytes[..bytes.len() / 2], &mut crate::parse::test_ctx(&opts)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Corrupt);
        assert!(err.hint.is_some());
        let err = docx_of(b"<w:document><w:body><w:p></w:body></w:document>", 1 << 20).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Corrupt);
    }

    #[test]
    fn every_format_reports_its_page_count() {
        let files = [("tika__testPPT.pptx", 3), ("tika__testEXCEL_textbox.xlsx", 3), ("tika__testEPUB.epub", 4)];
        for (file, pages) in files {
            let parsed = Parsed::of(file);
            assert_eq!(parsed.pages.len(), pages, "{file}");
            assert_eq!(parsed.metadata["pages"], pages, "{file}");
        }
    }
}
