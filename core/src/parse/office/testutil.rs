//! Test helpers for the office parsers: corpus files, in-memory ZIPs, and the paragraphs of
//! pandoc's `.native` files (Haskell `show` output of the expected document).
use crate::parse::{normalize_whitespace, parse, test_ctx, Options, Page};
use std::io::Write;
use std::path::PathBuf;

pub fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/office").join(name)
}

/// Pages and metadata of a corpus file, through the whole parse (detection included).
pub struct Parsed {
    pub pages: Vec<Page>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl Parsed {
    pub fn of(name: &str) -> Parsed {
        Parsed::from_bytes(&std::fs::read(corpus(name)).unwrap())
    }

    pub fn from_bytes(bytes: &[u8]) -> Parsed {
        let opts = Options::default();
        let p = parse(bytes, None, None, &mut test_ctx(&opts)).unwrap();
        Parsed { pages: p.pages, metadata: p.metadata }
    }

    /// All pages' text, whitespace squashed to single spaces.
    pub fn flat(&self) -> String {
        squash(&self.pages.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join(" "))
    }

    pub fn meta(&self, key: &str) -> &str {
        self.metadata.get(key).and_then(|v| v.as_str()).unwrap_or_default()
    }
}

pub fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in files {
        zip.start_file(*name, options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// Asserts that every paragraph of `native` occurs in `text`, in order (notes may come last).
pub fn assert_paragraphs_in_order(text: &str, native: &str) {
    let mut from = 0;
    for para in native_paragraphs(native) {
        let para = squash(&normalize_whitespace(&para));
        match text[from..].find(&para) {
            Some(i) => from += i + para.len(),
            None => panic!("paragraph {para:?} not found (in order) in {text:?}"),
        }
    }
}

/// A value in Haskell `show` syntax: constructor applications, lists/tuples, strings.
enum Hs {
    Con(String, Vec<Hs>),
    List(Vec<Hs>),
    Str(String),
    Num,
}

/// The text of each Para/Plain/Header block in reading order, then the text of note blocks.
pub fn native_paragraphs(native: &str) -> Vec<String> {
    let chars: Vec<char> = native.chars().collect();
    let mut pos = 0;
    let doc = value(&chars, &mut pos);
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    blocks(&doc, &mut out, &mut notes);
    out.extend(notes);
    out
}

fn skip_space(s: &[char], pos: &mut usize) {
    while s.get(*pos).is_some_and(|c| c.is_whitespace()) {
        *pos += 1;
    }
}

/// A constructor with its arguments, or any other single value.
fn value(s: &[char], pos: &mut usize) -> Hs {
    skip_space(s, pos);
    match atom(s, pos) {
        Hs::Con(name, _) => {
            let mut args = Vec::new();
            skip_space(s, pos);
            while s.get(*pos).is_some_and(|&c| c == '[' || c == '(' || c == '"' || c.is_alphanumeric() || c == '-') {
                args.push(atom(s, pos));
                skip_space(s, pos);
            }
            Hs::Con(name, args)
        }
        other => other,
    }
}

fn atom(s: &[char], pos: &mut usize) -> Hs {
    skip_space(s, pos);
    match s[*pos] {
        open @ ('[' | '(') => {
            let close = if open == '[' { ']' } else { ')' };
            *pos += 1;
            let mut items = Vec::new();
            loop {
                skip_space(s, pos);
                match s[*pos] {
                    c if c == close => break,
                    ',' => *pos += 1,
                    _ => items.push(value(s, pos)),
                }
            }
            *pos += 1;
            Hs::List(items)
        }
        '"' => Hs::Str(string(s, pos)),
        c if c.is_ascii_digit() || c == '-' => {
            while s.get(*pos).is_some_and(|c| c.is_ascii_digit() || *c == '-' || *c == '.') {
                *pos += 1;
            }
            Hs::Num
        }
        _ => {
            let start = *pos;
            while s.get(*pos).is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '\'') {
                *pos += 1;
            }
            Hs::Con(s[start..*pos].iter().collect(), Vec::new())
        }
    }
}

/// A string literal with Haskell escapes: `\"`, `\\`, `\n`, `\8217` (decimal), `\&` (empty).
fn string(s: &[char], pos: &mut usize) -> String {
    let mut out = String::new();
    *pos += 1;
    while s[*pos] != '"' {
        if s[*pos] == '\\' {
            *pos += 1;
            match s[*pos] {
                '&' => *pos += 1,
                'n' => {
                    out.push('\n');
                    *pos += 1;
                }
                d if d.is_ascii_digit() => {
                    let start = *pos;
                    while s[*pos].is_ascii_digit() {
                        *pos += 1;
                    }
                    let code: u32 = s[start..*pos].iter().collect::<String>().parse().unwrap();
                    out.push(char::from_u32(code).unwrap());
                }
                c => {
                    out.push(c);
                    *pos += 1;
                }
            }
        } else {
            out.push(s[*pos]);
            *pos += 1;
        }
    }
    *pos += 1;
    out
}

fn blocks(v: &Hs, out: &mut Vec<String>, notes: &mut Vec<String>) {
    match v {
        Hs::List(items) => items.iter().for_each(|i| blocks(i, out, notes)),
        Hs::Con(name, args) if matches!(name.as_str(), "Para" | "Plain" | "Header") => {
            let mut text = String::new();
            if let Some(content) = args.last() {
                inlines(content, &mut text, notes);
            }
            out.push(text);
        }
        Hs::Con(_, args) => args.iter().for_each(|a| blocks(a, out, notes)),
        Hs::Str(_) | Hs::Num => {}
    }
}

fn inlines(v: &Hs, text: &mut String, notes: &mut Vec<String>) {
    match v {
        Hs::List(items) => items.iter().for_each(|i| inlines(i, text, notes)),
        Hs::Con(name, args) => match (name.as_str(), args.as_slice()) {
            ("Str", [Hs::Str(s)]) => text.push_str(s),
            ("Space" | "SoftBreak" | "LineBreak", _) => text.push(' '),
            ("Note", _) => args.iter().for_each(|a| blocks(a, notes, &mut Vec::new())),
            _ => args.iter().for_each(|a| inlines(a, text, notes)),
        },
        Hs::Str(_) | Hs::Num => {}
    }
}

#[test]
fn native_paragraphs_are_read() {
    let native = r#"[Header 2 ("a",[],[]) [Str "A",Space,Str "note"]
,Para [Str "Hello,",Space,Str "\19990\30028.",Note [Para [Str "My",Space,Str "\8220x\8221"]],Space,Emph [Str "\8364\&10"]]]"#;
    assert_eq!(native_paragraphs(native), vec!["A note", "Hello, 世界. €10", "My “x”"]);
}
