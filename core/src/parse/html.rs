//! HTML → text with a real HTML5 parser (html5ever via scraper): scripts, styles and other
//! non-content elements are dropped, block elements become paragraph breaks.
use super::{page_with_headings, Ctx, Page, Result, HEADING_MARK};
use crate::{DocError, ErrorKind};
use html5ever::tendril::{StrTendril, TendrilSink};
use scraper::{node::Node, ElementRef, Html, HtmlTreeSink};
use std::collections::HashMap;

/// Deeper nesting than any real page. html5ever scans the open elements for each tag, so
/// `<div>` × 200,000 would take minutes: the input goes in pieces and stops past this depth.
const MAX_DEPTH: usize = 1000;
const PIECE_BYTES: usize = 16 << 10;

const SKIPPED: &[&str] = &["script", "style", "noscript", "template", "head", "svg", "iframe", "object"];
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "header",
    "footer",
    "nav",
    "aside",
    "main",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "ul",
    "ol",
    "li",
    "table",
    "tr",
    "blockquote",
    "pre",
    "dl",
    "dt",
    "dd",
    "figure",
    "figcaption",
    "form",
    "hr",
    "address",
    "details",
    "summary",
    "body",
    "title",
];

pub fn extract(source: &str, ctx: &mut Ctx) -> Result<Page> {
    let doc = parse_bounded(source, ctx)?;
    let squash = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let select = |sel: &str| scraper::Selector::parse(sel).expect("static selector");
    if let Some(title) = doc.select(&select("title")).next() {
        ctx.set_meta("title", squash(title.text().collect()));
    }
    for meta in doc.select(&select("meta[name][content]")) {
        let (name, content) = (meta.attr("name").unwrap_or("").to_ascii_lowercase(), meta.attr("content").unwrap_or(""));
        if matches!(name.as_str(), "author" | "description" | "keywords") {
            ctx.set_meta(&name, content);
        }
    }
    if let Some(lang) = doc.root_element().attr("lang") {
        ctx.set_meta("html_lang", lang);
    }
    let mut out = String::new();
    let mut titles = Vec::new();
    walk(doc.root_element(), &mut out, &mut titles);
    Ok(page_with_headings(None, &out, titles))
}

/// The document tree, built piece by piece: between pieces the new nodes' depths are checked
/// (each from its parent's, so the check costs linear time) and a cancel is honoured.
fn parse_bounded(source: &str, ctx: &Ctx) -> Result<Html> {
    let mut parser = html5ever::driver::parse_document(HtmlTreeSink::new(Html::new_document()), Default::default());
    let mut depths = HashMap::new();
    let (mut seen, mut rest) = (0, source);
    while !rest.is_empty() {
        let mut cut = rest.len().min(PIECE_BYTES);
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        parser.process(StrTendril::from_slice(&rest[..cut]));
        rest = &rest[cut..];
        ctx.check()?;
        let html = parser.tokenizer.sink.sink.0.borrow();
        for node in html.tree.nodes().skip(seen) {
            let parent = node.parent().map(|p| depths.get(&p.id()).copied().unwrap_or_else(|| p.ancestors().count() + 1));
            let depth = parent.map_or(0, |d| d + 1);
            if depth > MAX_DEPTH {
                return Err(DocError::new(ErrorKind::Corrupt, format!("HTML elements are nested more than {MAX_DEPTH} deep"))
                    .with_hint("no real page nests this deep; the file is damaged or made to slow the parser down"));
            }
            depths.insert(node.id(), depth);
            seen += 1;
        }
    }
    Ok(parser.finish())
}

fn heading_level(name: &str) -> Option<u8> {
    match name.as_bytes() {
        [b'h', d @ b'1'..=b'6'] => Some(d - b'0'),
        _ => None,
    }
}

fn walk(el: ElementRef, out: &mut String, titles: &mut Vec<(u8, String)>) {
    for child in el.children() {
        match child.value() {
            Node::Text(t) => out.push_str(t),
            Node::Element(e) => {
                let name = e.name();
                if SKIPPED.contains(&name) {
                    continue;
                }
                let block = BLOCKS.contains(&name);
                if block {
                    out.push_str("\n\n");
                }
                if let (Some(level), Some(h)) = (heading_level(name), ElementRef::wrap(child)) {
                    let title = h.text().collect::<String>().split_whitespace().collect::<Vec<_>>().join(" ");
                    if !title.is_empty() {
                        out.push(HEADING_MARK);
                        titles.push((level, title));
                    }
                } else if name == "br" {
                    out.push('\n');
                } else if matches!(name, "td" | "th") {
                    out.push(' ');
                }
                if let Some(child_el) = ElementRef::wrap(child) {
                    walk(child_el, out, titles);
                }
                if block {
                    out.push_str("\n\n");
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{test_ctx, Heading, Options};

    #[test]
    fn drops_scripts_and_keeps_blocks() {
        let opts = Options::default();
        let mut ctx = test_ctx(&opts);
        let page = extract(
            "<html><head><title> The  Title </title><style>p{}</style></head><body><h1>Head</h1>\
             <p>One <b>bold</b> line<br>next</p><script>var x = 1;</script><ul><li>a</li><li>b</li></ul></body></html>",
            &mut ctx,
        )
        .unwrap();
        assert_eq!(page.text, "Head\n\nOne bold line\nnext\n\na\n\nb");
        assert_eq!(page.headings, vec![Heading { offset: 0, level: 1, title: "Head".into() }]);
        assert_eq!(ctx.metadata["title"], "The Title");
    }

    #[test]
    fn hostile_nesting_is_refused_quickly_and_deep_real_nesting_is_read() {
        let opts = Options::default();
        let mut ctx = test_ctx(&opts);
        let started = std::time::Instant::now();
        let e = extract(&"<div>".repeat(200_000), &mut ctx).unwrap_err();
        assert_eq!((e.kind, e.message.as_str()), (ErrorKind::Corrupt, "HTML elements are nested more than 1000 deep"));
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
        // 900 levels (html, body and the divs stay under the bound) read as one word; many
        // shallow elements in a row are no depth at all.
        let deep = format!("{}deep{}", "<div>".repeat(900), "</div>".repeat(900));
        assert_eq!(extract(&deep, &mut ctx).unwrap().text, "deep");
        let wide = "<p>x</p>".repeat(50_000);
        assert_eq!(extract(&wide, &mut ctx).unwrap().text.split_whitespace().count(), 50_000);
    }
}
