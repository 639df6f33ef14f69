//! Markdown → text with pulldown-cmark: markup dropped, block structure kept as paragraphs.
use pulldown_cmark::{Event, Parser, Tag, TagEnd};
use serde_json::{Map, Value};

pub fn extract(source: &str, metadata: &mut Map<String, Value>) -> String {
    let source = strip_front_matter(source);
    let mut out = String::new();
    let mut heading: Option<String> = None;
    for event in Parser::new(source) {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::End(TagEnd::Heading(_)) => {
                if let Some(h) = heading.take() {
                    if !metadata.contains_key("title") && !h.trim().is_empty() {
                        metadata.insert("title".into(), Value::String(h.trim().to_string()));
                    }
                }
                out.push_str("\n\n");
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
                out.push_str(&t);
            }
            Event::SoftBreak => out.push(' '),
            Event::HardBreak => out.push('\n'),
            Event::End(TagEnd::Paragraph | TagEnd::Item | TagEnd::CodeBlock | TagEnd::BlockQuote(_) | TagEnd::TableRow) => {
                out.push_str("\n\n")
            }
            Event::End(TagEnd::TableCell) => out.push(' '),
            _ => {}
        }
    }
    super::normalize_whitespace(&out)
}

/// YAML front matter (`---` … `---` at the very top) is metadata, not prose.
fn strip_front_matter(source: &str) -> &str {
    if let Some(rest) = source.strip_prefix("---\n") {
        if let Some(end) = rest.find("\n---\n").or_else(|| rest.find("\n...\n")) {
            return &rest[end + 5..];
        }
    }
    source
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_dropped() {
        let mut meta = Map::new();
        let text = extract("---\ntitle: x\n---\n# Big *Title*\n\nSome `code` and [a link](http://x).\nsame para\n\n- one\n- two\n", &mut meta);
        assert_eq!(text, "Big Title\n\nSome code and a link. same para\n\none\n\ntwo");
        assert_eq!(meta["title"], "Big Title");
    }
}
