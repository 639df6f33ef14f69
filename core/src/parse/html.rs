//! HTML → text with a real HTML5 parser (html5ever via scraper): scripts, styles and other
//! non-content elements are dropped, block elements become paragraph breaks.
use scraper::{node::Node, ElementRef, Html};
use serde_json::{Map, Value};

const SKIPPED: &[&str] = &["script", "style", "noscript", "template", "head", "svg", "iframe", "object"];
const BLOCKS: &[&str] = &[
    "p", "div", "section", "article", "header", "footer", "nav", "aside", "main", "h1", "h2", "h3", "h4", "h5",
    "h6", "ul", "ol", "li", "table", "tr", "blockquote", "pre", "dl", "dt", "dd", "figure", "figcaption", "form",
    "hr", "address", "details", "summary", "body", "title",
];

pub fn extract(source: &str, metadata: &mut Map<String, Value>) -> String {
    let doc = Html::parse_document(source);
    if let Some(title) = doc
        .select(&scraper::Selector::parse("title").expect("static selector"))
        .next()
        .map(|t| t.text().collect::<String>().split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|t| !t.is_empty())
    {
        metadata.insert("title".into(), Value::String(title));
    }
    let mut out = String::new();
    walk(doc.root_element(), &mut out);
    super::normalize_whitespace(&out)
}

fn walk(el: ElementRef, out: &mut String) {
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
                } else if name == "br" {
                    out.push('\n');
                } else if matches!(name, "td" | "th") {
                    out.push(' ');
                }
                if let Some(child_el) = ElementRef::wrap(child) {
                    walk(child_el, out);
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

    #[test]
    fn drops_scripts_and_keeps_blocks() {
        let mut meta = Map::new();
        let text = extract(
            "<html><head><title> The  Title </title><style>p{}</style></head><body><h1>Head</h1>\
             <p>One <b>bold</b> line<br>next</p><script>var x = 1;</script><ul><li>a</li><li>b</li></ul></body></html>",
            &mut meta,
        );
        assert_eq!(text, "Head\n\nOne bold line\nnext\n\na\n\nb");
        assert_eq!(meta["title"], "The Title");
    }
}
