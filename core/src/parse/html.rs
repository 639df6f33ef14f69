//! HTML → text with a real HTML5 parser (html5ever via scraper): scripts, styles and other
//! non-content elements are dropped, block elements become paragraph breaks.
use super::{page_with_headings, Ctx, Page, HEADING_MARK};
use scraper::{node::Node, ElementRef, Html};

const SKIPPED: &[&str] = &["script", "style", "noscript", "template", "head", "svg", "iframe", "object"];
const BLOCKS: &[&str] = &[
    "p", "div", "section", "article", "header", "footer", "nav", "aside", "main", "h1", "h2", "h3", "h4", "h5",
    "h6", "ul", "ol", "li", "table", "tr", "blockquote", "pre", "dl", "dt", "dd", "figure", "figcaption", "form",
    "hr", "address", "details", "summary", "body", "title",
];

pub fn extract(source: &str, ctx: &mut Ctx) -> Page {
    let doc = Html::parse_document(source);
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
    page_with_headings(None, &out, titles)
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
        );
        assert_eq!(page.text, "Head\n\nOne bold line\nnext\n\na\n\nb");
        assert_eq!(page.headings, vec![Heading { offset: 0, level: 1, title: "Head".into() }]);
        assert_eq!(ctx.metadata["title"], "The Title");
    }
}
