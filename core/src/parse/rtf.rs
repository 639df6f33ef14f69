//! RTF → text with a small tokenizer and a stack of group states. The crates.io RTF parsers
//! take an already-decoded `&str`, so they cannot decode `\'hh` bytes per font code page or
//! join the two bytes of a Shift_JIS/GBK/Big5 character; this one keeps raw bytes until a
//! control word ends the run, then decodes the run in the current font's code page.
use super::{charset, page_with_headings, Ctx, Page, HEADING_MARK};
use crate::error::{DocError, ErrorKind, Result};
use std::collections::HashMap;

/// Deeper nesting than any real document: hostile input, refused before it costs memory.
const MAX_DEPTH: usize = 1000;

pub fn extract(bytes: &[u8], ctx: &mut Ctx) -> Result<Vec<Page>> {
    let mut rtf = Rtf::default();
    let mut lexer = Lexer { bytes, pos: 0 };
    let mut tokens = 0u32;
    while let Some(tok) = lexer.next() {
        tokens = tokens.wrapping_add(1);
        if tokens.is_multiple_of(4096) {
            ctx.check()?;
        }
        if !rtf.token(tok)? {
            break;
        }
    }
    rtf.flush();
    rtf.paragraph_end("");
    for (key, value) in std::mem::take(&mut rtf.meta) {
        ctx.set_meta(key, value.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    let mut raw = String::with_capacity(rtf.out.len() + rtf.marks.len() * 3);
    let mut last = 0;
    let mut titles = Vec::with_capacity(rtf.marks.len());
    for (at, level, title) in rtf.marks {
        raw.push_str(&rtf.out[last..at]);
        raw.push(HEADING_MARK);
        titles.push((level, title));
        last = at;
    }
    raw.push_str(&rtf.out[last..]);
    Ok(vec![page_with_headings(None, &raw, titles)])
}

enum Tok<'a> {
    Open,
    Close,
    Word(&'a [u8], Option<i32>),
    /// `\` and one non-letter: `\*`, `\~`, `\{`, …
    Symbol(u8),
    /// `\'hh`
    Hex(u8),
    Byte(u8),
}

struct Lexer<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn next(&mut self) -> Option<Tok<'a>> {
        loop {
            let b = *self.bytes.get(self.pos)?;
            self.pos += 1;
            return Some(match b {
                b'{' => Tok::Open,
                b'}' => Tok::Close,
                b'\r' | b'\n' => continue, // line breaks in the source are not text
                b'\\' => self.control(),
                _ => Tok::Byte(b),
            });
        }
    }

    fn control(&mut self) -> Tok<'a> {
        let Some(&c) = self.bytes.get(self.pos) else { return Tok::Symbol(b'\\') };
        self.pos += 1;
        if c == b'\'' {
            return match self.bytes.get(self.pos..self.pos + 2) {
                Some(&[hi, lo]) if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {
                    self.pos += 2;
                    let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                    Tok::Hex(digit(hi) << 4 | digit(lo))
                }
                _ => Tok::Symbol(b'\''),
            };
        }
        if !c.is_ascii_alphabetic() {
            return Tok::Symbol(c);
        }
        let start = self.pos - 1;
        while self.bytes.get(self.pos).is_some_and(u8::is_ascii_alphabetic) {
            self.pos += 1;
        }
        let name = &self.bytes[start..self.pos];
        let digit = |i: usize| self.bytes.get(i).is_some_and(u8::is_ascii_digit);
        let negative = self.bytes.get(self.pos) == Some(&b'-') && digit(self.pos + 1);
        let mut param = None;
        if negative || digit(self.pos) {
            self.pos += usize::from(negative);
            let mut value: i64 = 0;
            while let Some(d) = self.bytes.get(self.pos).filter(|d| d.is_ascii_digit()) {
                value = (value * 10 + i64::from(d - b'0')).min(i64::from(i32::MAX));
                self.pos += 1;
            }
            param = Some((if negative { -value } else { value }) as i32);
        }
        if self.bytes.get(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
        if name == b"bin" {
            // Raw binary data follows; it may contain braces and backslashes.
            let n = usize::try_from(param.unwrap_or(0)).unwrap_or(0);
            self.pos = self.pos.saturating_add(n).min(self.bytes.len());
        }
        Tok::Word(name, param)
    }
}

/// Where the text of a group goes.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Dest {
    Body,
    /// A footnote: body text, set off by spaces.
    Note,
    Skip,
    FontTable,
    StyleSheet,
    Info,
    /// An `\info` text field, stored under this metadata key.
    Field(&'static str),
    /// `\upr`: the ANSI copy of text whose Unicode copy follows in `\*\ud`.
    Upr,
    /// `\creatim` / `\revtim`, stored under this metadata key.
    Date(&'static str),
}

/// Formatting that RTF scopes to groups: `}` restores what `{` saw.
#[derive(Clone, Copy)]
struct State {
    dest: Dest,
    font: i32,
    /// `\ucN`: how many fallback characters follow each `\uN`.
    uc: usize,
    hidden: bool,
    caps: bool,
    style: i32,
    outline: Option<u8>,
}

impl Default for State {
    fn default() -> Self {
        State { dest: Dest::Body, font: 0, uc: 1, hidden: false, caps: false, style: 0, outline: None }
    }
}

/// Groups whose text is not document text (tables, binary data, field codes, duplicates).
const SKIPPED: &[&str] = &[
    "colortbl",
    "listtable",
    "listoverridetable",
    "revtbl",
    "rsidtbl",
    "filetbl",
    "pict",
    "objdata",
    "objclass",
    "themedata",
    "datastore",
    "colorschememapping",
    "generator",
    "latentstyles",
    "xmlnstbl",
    "mmathPr",
    "fldinst",
    "nonshppict",
    "shprslt",
    "sp",
    "xe",
    "tc",
    "txe",
    "pntxta",
    "pntxtb",
    "nonesttables",
    "printim",
    "buptim",
    "template",
    "falt",
    "panose",
    "bkmkstart",
    "bkmkend",
    "annotation",
    "atnid",
    "atnauthor",
    "pgdsctbl",
];

/// `\*` destinations that hold document text (text boxes live in the shape instructions;
/// `\ud` is the Unicode twin of an `\upr` group).
const STARRED_KEPT: &[&str] = &["shpinst", "shptxt", "ud"];

#[derive(Default)]
struct Rtf {
    stack: Vec<State>,
    out: String,
    /// Text bytes (literal and `\'hh`) not yet decoded: a double-byte character's two bytes
    /// may come as two escapes, or an escape and a literal.
    pending: Vec<u8>,
    /// Encoding label of the `\ansicpg`, and of fonts whose `\fcharset`/`\cpg` differ from it.
    ansi: Option<&'static str>,
    fonts: HashMap<i32, &'static str>,
    default_font: i32,
    /// The font table entry being read.
    font_def: i32,
    /// Paragraph style number → heading level, from the stylesheet.
    styles: HashMap<i32, u8>,
    /// The stylesheet entry being read: style number, outline level, name bytes.
    style_def: (i32, Option<u8>, Vec<u8>),
    field: String,
    /// \yr \mo \dy \hr \min \sec of the date being read.
    date: [i32; 6],
    star: bool,
    /// Fallback characters still to skip after a `\uN`.
    skip: usize,
    high_surrogate: Option<u16>,
    para_start: usize,
    /// Heading paragraphs: where they start in `out`, level, title.
    marks: Vec<(usize, u8, String)>,
    meta: Vec<(&'static str, String)>,
}

impl Rtf {
    fn top(&mut self) -> &mut State {
        if self.stack.is_empty() {
            self.stack.push(State::default());
        }
        self.stack.last_mut().expect("stack is not empty")
    }

    /// Handles one token; false once the document's outer group has closed.
    fn token(&mut self, tok: Tok) -> Result<bool> {
        if !matches!(tok, Tok::Byte(_) | Tok::Hex(_)) {
            self.flush();
        }
        if self.skip > 0 && !matches!(tok, Tok::Open | Tok::Close) {
            self.skip -= 1;
            return Ok(true);
        }
        let star = std::mem::take(&mut self.star);
        match tok {
            Tok::Open => {
                self.skip = 0;
                let state = *self.top();
                if self.stack.len() > MAX_DEPTH {
                    return Err(DocError::new(ErrorKind::Corrupt, format!("RTF groups are nested more than {MAX_DEPTH} deep"))
                        .with_hint("the file is damaged or not a real RTF document"));
                }
                if state.dest == Dest::StyleSheet {
                    self.style_def = (0, None, Vec::new());
                }
                self.stack.push(state);
            }
            Tok::Close => {
                self.skip = 0;
                if self.stack.len() <= 2 {
                    // The document's own group ends; its state stays for the last paragraph.
                    return Ok(false);
                }
                let closed = self.stack.pop().unwrap_or_default();
                if closed.dest != self.top().dest {
                    self.destination_end(closed.dest);
                }
            }
            Tok::Byte(b) => self.byte(b),
            Tok::Hex(b) => {
                if matches!(self.top().dest, Dest::Body | Dest::Note | Dest::Field(_)) {
                    self.pending.push(b);
                }
            }
            Tok::Symbol(c) => match c {
                b'*' => self.star = true,
                b'{' | b'}' | b'\\' => self.byte(c),
                b'~' => self.push_text("\u{A0}"),
                b'_' => self.push_text("\u{2011}"),
                b'\n' | b'\r' => self.paragraph_end("\n\n"),
                _ => {}
            },
            Tok::Word(name, param) => self.word(std::str::from_utf8(name).unwrap_or(""), param, star),
        }
        Ok(true)
    }

    fn byte(&mut self, b: u8) {
        match self.top().dest {
            Dest::Body | Dest::Note | Dest::Field(_) => self.pending.push(b),
            Dest::StyleSheet if b == b';' => self.style_end(),
            Dest::StyleSheet => self.style_def.2.push(b),
            _ => {}
        }
    }

    fn word(&mut self, name: &str, param: Option<i32>, star: bool) {
        let dest = self.top().dest;
        if dest == Dest::Skip {
            return;
        }
        if name == "ud" && dest == Dest::Upr {
            // Read the Unicode copy as the group around `\upr` would.
            let outer = self.stack.iter().rev().map(|s| s.dest).find(|&d| d != Dest::Upr).unwrap_or(Dest::Body);
            self.top().dest = outer;
            return;
        }
        if let Some(new_dest) = destination(name, dest, star) {
            self.top().dest = new_dest;
            match new_dest {
                Dest::Note => self.out.push(' '),
                Dest::Field(_) => self.field.clear(),
                Dest::Date(_) => self.date = [0; 6],
                _ => {}
            }
            return;
        }
        let n = param.unwrap_or(0);
        // Toggles: a bare `\b` or `\b1` is on, `\b0` off.
        let on = n != 0 || param.is_none();
        match (dest, name) {
            (Dest::FontTable, "f") => self.font_def = n,
            (Dest::FontTable, "fcharset") => self.set_font_encoding(charset_label(n)),
            (Dest::FontTable, "cpg") => self.set_font_encoding(codepage_label(n)),
            (Dest::StyleSheet, "s") => self.style_def.0 = n,
            (Dest::StyleSheet, "outlinelevel") => self.style_def.1 = u8::try_from(n).ok(),
            (Dest::Date(_), _) => {
                if let Some(i) = ["yr", "mo", "dy", "hr", "min", "sec"].iter().position(|&k| k == name) {
                    self.date[i] = n;
                }
            }
            (_, "ansicpg") => self.ansi = codepage_label(n),
            (_, "mac") => self.ansi = Some("macintosh"),
            (_, "deff") => {
                self.default_font = n;
                self.top().font = n;
            }
            (_, "f") => self.top().font = n,
            (_, "plain") => {
                let font = self.default_font;
                let state = self.top();
                (state.font, state.hidden, state.caps) = (font, false, false);
            }
            (_, "uc") => self.top().uc = usize::try_from(n).unwrap_or(0).min(16),
            (_, "u") => self.unicode(n),
            (_, "v") => self.top().hidden = on,
            (_, "caps") => self.top().caps = on,
            (_, "pard") => {
                let state = self.top();
                (state.style, state.outline) = (0, None);
            }
            (_, "s") => self.top().style = n,
            (_, "outlinelevel") => self.top().outline = u8::try_from(n).ok(),
            (_, "par" | "sect" | "page") => self.paragraph_end("\n\n"),
            (_, "cell" | "nestcell") => self.paragraph_end("\t"),
            (_, "row" | "nestrow") => self.paragraph_end("\n"),
            (_, other) => {
                if let Some(text) = special_char(other) {
                    self.push_text(text);
                }
            }
        }
    }

    fn set_font_encoding(&mut self, label: Option<&'static str>) {
        match label {
            Some(label) => self.fonts.insert(self.font_def, label),
            None => self.fonts.remove(&self.font_def),
        };
    }

    /// `\uN`: a signed 16-bit UTF-16 unit; a surrogate pair comes as two.
    fn unicode(&mut self, n: i32) {
        self.skip = self.top().uc;
        let unit = (if n < 0 { n + 0x10000 } else { n }) as u32;
        let c = match (unit, self.high_surrogate.take()) {
            (0xD800..=0xDBFF, _) => {
                self.high_surrogate = Some(unit as u16);
                None
            }
            (0xDC00..=0xDFFF, Some(high)) => char::decode_utf16([high, unit as u16]).next().and_then(|r| r.ok()),
            _ => char::from_u32(unit),
        };
        if let Some(c) = c {
            self.push_text(c.encode_utf8(&mut [0; 4]));
        }
    }

    /// Decodes the pending bytes in the current font's code page.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut self.pending);
        let font = self.top().font;
        let label = self.fonts.get(&font).copied().or(self.ansi).unwrap_or("windows-1252");
        let text = charset::decode_with_label(&bytes, label).unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        self.push_text(&text);
    }

    fn push_text(&mut self, text: &str) {
        let state = *self.top();
        // Control characters are not text (and NUL cannot be stored); a stray heading mark
        // (private use) would shift every heading after it.
        let text: String = text.chars().filter(|&c| c != HEADING_MARK && (!c.is_control() || c == '\t' || c == '\n')).collect();
        match state.dest {
            Dest::Body | Dest::Note if !state.hidden => {
                if state.caps {
                    self.out.push_str(&text.to_uppercase());
                } else {
                    self.out.push_str(&text);
                }
            }
            Dest::Field(_) => self.field.push_str(&text),
            _ => {}
        }
    }

    /// Ends a paragraph (or cell, or row): records it as a heading if its style says so.
    fn paragraph_end(&mut self, separator: &str) {
        let state = *self.top();
        match state.dest {
            Dest::Body | Dest::Note => {
                let level = state.outline.filter(|&l| l < 9).map(|l| l + 1).or_else(|| self.styles.get(&state.style).copied());
                if let Some(level) = level {
                    let title = self.out[self.para_start..].split_whitespace().collect::<Vec<_>>().join(" ");
                    if !title.is_empty() {
                        self.marks.push((self.para_start, level, title));
                    }
                }
                self.out.push_str(separator);
                self.para_start = self.out.len();
            }
            Dest::Field(_) => self.field.push(' '),
            _ => {}
        }
    }

    /// A stylesheet entry ends at its `;`: "heading N" or an outline level makes it a heading style.
    fn style_end(&mut self) {
        let (number, outline, name) = std::mem::take(&mut self.style_def);
        let name = String::from_utf8_lossy(&name).trim().to_ascii_lowercase();
        let named = name.strip_prefix("heading ").and_then(|n| n.parse::<u8>().ok());
        if let Some(level) = outline.filter(|&l| l < 9).map(|l| l + 1).or(named).filter(|l| (1..=9).contains(l)) {
            self.styles.insert(number, level);
        }
    }

    fn destination_end(&mut self, dest: Dest) {
        match dest {
            Dest::Note => self.out.push(' '),
            Dest::Field(key) => self.meta.push((key, std::mem::take(&mut self.field))),
            Dest::Date(key) => {
                let [y, mo, d, h, mi, s] = self.date;
                if (1..=9999).contains(&y) && (1..=12).contains(&mo) && (1..=31).contains(&d) {
                    let (h, mi, s) = (h.clamp(0, 23), mi.clamp(0, 59), s.clamp(0, 59));
                    self.meta.push((key, format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")));
                }
            }
            _ => {}
        }
    }
}

/// The destination a control word opens, if it opens one.
fn destination(name: &str, current: Dest, star: bool) -> Option<Dest> {
    Some(match name {
        "fonttbl" => Dest::FontTable,
        "stylesheet" => Dest::StyleSheet,
        "info" => Dest::Info,
        "title" if current == Dest::Info => Dest::Field("title"),
        "subject" if current == Dest::Info => Dest::Field("subject"),
        "author" if current == Dest::Info => Dest::Field("author"),
        "keywords" if current == Dest::Info => Dest::Field("keywords"),
        "creatim" if current == Dest::Info => Dest::Date("created"),
        "revtim" if current == Dest::Info => Dest::Date("modified"),
        "footnote" => Dest::Note,
        "upr" => Dest::Upr,
        _ if SKIPPED.contains(&name) || (star && !STARRED_KEPT.contains(&name)) => Dest::Skip,
        _ => return None,
    })
}

fn special_char(name: &str) -> Option<&'static str> {
    Some(match name {
        "line" => "\n",
        "tab" => "\t",
        "emdash" => "\u{2014}",
        "endash" => "\u{2013}",
        "lquote" => "\u{2018}",
        "rquote" => "\u{2019}",
        "ldblquote" => "\u{201C}",
        "rdblquote" => "\u{201D}",
        "bullet" => "\u{2022}",
        "emspace" | "enspace" | "qmspace" => " ",
        _ => return None,
    })
}

/// A font's `\fcharsetN` as an encoding label; `None` means the document's ANSI code page.
fn charset_label(charset: i32) -> Option<&'static str> {
    Some(match charset {
        77 => "macintosh",
        128 => "shift_jis",
        129 => "euc-kr",
        134 => "gbk",
        136 => "big5",
        161 => "windows-1253",
        162 => "windows-1254",
        163 => "windows-1258",
        177 => "windows-1255",
        178 => "windows-1256",
        186 => "windows-1257",
        204 => "windows-1251",
        222 => "windows-874",
        238 => "windows-1250",
        _ => return None,
    })
}

/// A Windows code page number (`\ansicpgN`, `\cpgN`) as an encoding label.
fn codepage_label(codepage: i32) -> Option<&'static str> {
    Some(match codepage {
        866 => "ibm866",
        874 => "windows-874",
        932 => "shift_jis",
        936 => "gbk",
        949 => "euc-kr",
        950 => "big5",
        1250 => "windows-1250",
        1251 => "windows-1251",
        1252 => "windows-1252",
        1253 => "windows-1253",
        1254 => "windows-1254",
        1255 => "windows-1255",
        1256 => "windows-1256",
        1257 => "windows-1257",
        1258 => "windows-1258",
        10000 => "macintosh",
        20866 => "koi8-r",
        21866 => "koi8-u",
        28592 => "iso-8859-2",
        28595 => "iso-8859-5",
        28597 => "iso-8859-7",
        51932 => "euc-jp",
        54936 => "gb18030",
        65001 => "utf-8",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{test_ctx, Heading, Options};
    use serde_json::Value;

    fn corpus(name: &str) -> Vec<u8> {
        crate::parse::shared_file(&format!("corpus/office/{name}"))
    }

    /// The single page's text and the metadata of an RTF file.
    fn parse(bytes: &[u8]) -> (Page, serde_json::Map<String, Value>) {
        let opts = Options::default();
        let mut ctx = test_ctx(&opts);
        let mut pages = extract(bytes, &mut ctx).unwrap();
        assert_eq!(pages.len(), 1);
        (pages.remove(0), ctx.metadata)
    }

    fn squash(s: &str) -> String {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// Each Para/Plain block's text in a pandoc `.native` AST (Haskell `show` syntax): its `Str`
    /// strings joined, `Space`/`SoftBreak`/`LineBreak` as spaces, nested inlines included.
    fn native_blocks(ast: &str) -> Vec<String> {
        let chars: Vec<char> = ast.chars().collect();
        let mut blocks = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let word: String = chars[i..].iter().take_while(|c| c.is_ascii_alphabetic()).collect();
            if word.is_empty() {
                i += if chars[i] == '"' { haskell_string(&chars, i).1 - i } else { 1 };
                continue;
            }
            i += word.len();
            if word == "Para" || word == "Plain" {
                let (text, end) = native_inlines(&chars, i);
                blocks.push(squash(&text));
                i = end;
            }
        }
        blocks
    }

    /// The text of the bracketed inline list starting at or after `i`, and where it ends.
    fn native_inlines(chars: &[char], mut i: usize) -> (String, usize) {
        let (mut text, mut depth) = (String::new(), 0);
        while i < chars.len() {
            match chars[i] {
                '[' => depth += 1,
                ']' => {
                    depth -= 1;
                    if depth == 0 {
                        return (text, i + 1);
                    }
                }
                '"' => {
                    let (s, end) = haskell_string(chars, i);
                    text.push_str(&s);
                    i = end;
                    continue;
                }
                c if c.is_ascii_alphabetic() => {
                    let word: String = chars[i..].iter().take_while(|c| c.is_ascii_alphabetic()).collect();
                    if matches!(word.as_str(), "Space" | "SoftBreak" | "LineBreak") {
                        text.push(' ');
                    }
                    i += word.len();
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
        (text, i)
    }

    /// A Haskell string literal starting at `chars[start] == '"'`: its value and the index after it.
    fn haskell_string(chars: &[char], start: usize) -> (String, usize) {
        let (mut out, mut i) = (String::new(), start + 1);
        while i < chars.len() && chars[i] != '"' {
            if chars[i] != '\\' {
                out.push(chars[i]);
                i += 1;
                continue;
            }
            i += 1;
            let digits: String = chars[i..].iter().take_while(|c| c.is_ascii_digit()).collect();
            if !digits.is_empty() {
                out.extend(digits.parse().ok().and_then(char::from_u32));
                i += digits.len();
                continue;
            }
            match chars.get(i) {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('&') | None => {}
                Some(&c) => out.push(c),
            }
            i += 1;
        }
        (out, i + 1)
    }

    #[test]
    fn rtf_native_helper_reads_pandoc_ast() {
        let ast = r#"[ Para [ Str "It\8217s" , Space , Strong [ Str "\"a\"" ] , SoftBreak , Str "b\\c" ] , Plain [ Str "x[y]" ] ]"#;
        assert_eq!(native_blocks(ast), vec!["It\u{2019}s \"a\" b\\c", "x[y]"]);
    }

    #[test]
    fn rtf_pandoc_blocks_appear_in_order() {
        for name in ["pandoc__rtf_formatting", "pandoc__rtf_list_complex", "pandoc__rtf_table_nested_malformed_itap"] {
            let (page, _) = parse(&corpus(&format!("{name}.rtf")));
            let text = squash(&page.text);
            let ast = String::from_utf8(corpus(&format!("{name}.native"))).unwrap();
            let blocks = native_blocks(&ast);
            assert!(blocks.len() >= 4, "{name}: only {} blocks", blocks.len());
            let mut from = 0;
            for block in blocks.iter().filter(|b| !b.is_empty()) {
                let at = text[from..].find(block.as_str()).unwrap_or_else(|| panic!("{name}: {block:?} not found after byte {from} in {text:?}"));
                from += at + block.len();
            }
        }
        let (page, meta) = parse(&corpus("pandoc__rtf_formatting.rtf"));
        assert!(!page.text.contains("secret"), "hidden text leaked");
        assert_eq!(meta["created"], "2021-08-04T17:01:00");
        let (_, meta) = parse(&corpus("pandoc__rtf_list_complex.rtf"));
        assert_eq!((&meta["title"], &meta["author"]), (&Value::from("Text before list"), &Value::from("Cynthia Johnson")));
    }

    #[test]
    fn rtf_japanese_code_pages() {
        // Verified with python3: the \'hh runs decoded as cp932, and the \uN values as chars.
        let (page, meta) = parse(&corpus("tika__testRTF-ms932.rtf"));
        assert_eq!(page.text, "Hello\n\nこんにちは\n\nTest\n\nテスト");
        assert_eq!(meta["title"], "タイトル");
        assert_eq!(meta["author"], "shinsuke");
        assert_eq!(meta["created"], "2010-10-08T14:18:00");
        assert_eq!(meta["modified"], "2010-10-10T06:59:00");

        let (page, meta) = parse(&corpus("tika__testRTFJapanese.rtf"));
        for s in ["ゾルゲと尾崎、淡々と最期", "古書店で処刑記録見つかる", "渡部富哉さん提供", "尾崎秀実の記録", "リヒアルト・ゾルゲ"]
        {
            assert!(page.text.contains(s), "missing {s}");
        }
        assert!(!page.text.contains('\u{FFFD}') && !page.text.contains('?'));
        // The title's \upr ANSI copy is all '?'; its \ud Unicode copy is the real one.
        assert_eq!(meta["title"], "ゾルゲと尾崎、淡々と最期");
    }

    #[test]
    fn rtf_czech_from_font_charset() {
        // Font \f663 is \fcharset238; the bytes decoded as cp1250 with python3.
        let (page, _) = parse(&corpus("tika__testRTFWord2010CzechCharacters.rtf"));
        for s in ["Článek týdne", "Knihy Izajáš", "Mrtvého moře", "starověké židovské náboženské texty", "pravděpodobně", "našeho letopočtu"]
        {
            assert!(page.text.contains(s), "missing {s}");
        }
    }

    #[test]
    fn rtf_tika_documents() {
        let (page, meta) = parse(&corpus("tika__testRTF.rtf"));
        assert_eq!(page.text, "Test d\u{2019}indexation Word");
        assert_eq!(meta["title"], "Test d\u{2019}indexation Word");
        assert_eq!(meta["author"], "Bibliotheque");
        assert_eq!(meta["created"], "2006-05-18T12:19:00");

        // Strings checked against `unrtf --text` and the RTF source.
        let (page, meta) = parse(&corpus("tika__testRTFVarious.rtf"));
        let text = squash(&page.text);
        for s in [
            "This is the header text.",
            "This is the footer text.",
            "Footnote appears here This is a footnote.",
            "Bold italic underline superscript subscript",
            "Here is a list:",
            "Bullet 3",
            "3) Number bullet 3",
            "This is a hyperlink",
            "Row 1 Col 1 Row 1 Col 2 Row 1 Col 3 Row 2 Col 1",
            "Suddenly some Japanese text: ゾルゲと尾崎、淡々と最期 (GHQ)",
            "Here is a citation: (Kramer)",
            "This is a caption for Figure 1",
        ] {
            assert!(text.contains(s), "missing {s:?} in {text:?}");
        }
        assert_eq!(text.matches("Here is a text box").count(), 1);
        assert!(!text.contains("HYPERLINK") && !text.contains("CITATION"), "field instructions leaked");
        assert_eq!(meta["author"], "Michael McCandless");
        assert_eq!(meta["subject"], "Subject is here");
        assert_eq!(meta["modified"], "2011-08-30T06:13:00");
    }

    #[test]
    fn rtf_escapes_unicode_and_skipped_groups() {
        let rtf = br#"{\rtf1\ansi\ansicpg1252\uc1{\fonttbl{\f0 Times;}{\f1\fcharset128 MS Mincho;}}{\colortbl;\red0;}
caf\u233?\'e9\par {\uc2\u8364\'80\'80} euro\par \u-10179?\u-8704? smile {\*\unknown junk}{\v hidden}
{\field{\*\fldinst HYPERLINK "x"}{\fldrslt link}} {\f1 \'82\'b1\'82\'f1\'81e}\tab\{x\}\\ \bin3 }{\ data\line end}"#;
        let (page, _) = parse(rtf);
        assert_eq!(page.text, "café\u{e9}\n\n€ euro\n\n\u{1F600} smile link こん\u{2018} {x}\\ data\nend");
    }

    #[test]
    fn rtf_headings_from_styles_and_outline_levels() {
        let rtf = br"{\rtf1{\stylesheet{\s0 Normal;}{\s1\outlinelevel0 Big Title;}{\s2\sbasedon0 heading 2;}}
\pard\s1 Intro\par\pard Body text\par\pard\plain\s2 Details\par\pard\outlinelevel2 Deep\par\pard More\u0?\par\s1 End}";
        let (page, _) = parse(rtf);
        assert_eq!(page.text, "Intro\n\nBody text\n\nDetails\n\nDeep\n\nMore\n\nEnd");
        assert_eq!(
            page.headings,
            vec![
                Heading { offset: 0, level: 1, title: "Intro".into() },
                Heading { offset: 18, level: 2, title: "Details".into() },
                Heading { offset: 27, level: 3, title: "Deep".into() },
                Heading { offset: 39, level: 1, title: "End".into() },
            ]
        );
    }

    #[test]
    fn rtf_hostile_input() {
        let opts = Options::default();
        let deep = [&b"{\\rtf1 "[..], &b"{".repeat(5000)].concat();
        let err = extract(&deep, &mut test_ctx(&opts)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Corrupt);
        for bad in [
            &b"{\\rtf1 \\u"[..],
            b"{\\rtf1 \\'",
            b"{\\rtf1 \\'8",
            b"{\\rtf1 \\bin99999999999 x",
            b"{\\rtf1 \\u-99999999999 x",
            b"{\\rtf1\\ansicpg932 \\'82",
            b"{\\rtf1 \\uc99999\\u65 abc}",
            b"{\\rtf1 \\",
            b"}}}{",
            b"{\\rtf1 {\\*\\ud x}\\ud y}",
        ] {
            assert!(extract(bad, &mut test_ctx(&opts)).is_ok(), "{:?}", String::from_utf8_lossy(bad));
        }
        let long = [&b"{\\rtf1 "[..], &b"word\\par ".repeat(10_000)].concat();
        let mut ctx = Ctx::new(&opts, &|| true);
        assert_eq!(extract(&long, &mut ctx).unwrap_err().kind, ErrorKind::Cancelled);
    }
}
