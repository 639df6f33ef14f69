//! Markdown → text with pulldown-cmark: markup dropped, block structure kept as paragraphs,
//! headings recorded for the chunks that follow them.
use super::{page_with_headings, Ctx, Page, HEADING_MARK};
use pulldown_cmark::{Event, HeadingLevel, Parser, Tag, TagEnd};

pub fn extract(source: &str, ctx: &mut Ctx) -> Page {
    let source = strip_front_matter(source);
    let mut out = String::new();
    let mut titles = Vec::new();
    let mut heading: Option<(u8, String)> = None;
    for event in Parser::new(source) {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                out.push_str("\n\n");
                out.push(HEADING_MARK);
                heading = Some((heading_level(level), String::new()));
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((level, h)) = heading.take() {
                    let h = h.split_whitespace().collect::<Vec<_>>().join(" ");
                    if level == 1 {
                        ctx.set_meta("title", h.as_str());
                    }
                    titles.push((level, h));
                }
                out.push_str("\n\n");
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some((_, h)) = heading.as_mut() {
                    h.push_str(&t);
                }
                out.push_str(&t);
            }
            Event::SoftBreak => out.push(' '),
            Event::HardBreak => out.push('\n'),
            Event::End(TagEnd::Paragraph | TagEnd::Item | TagEnd::CodeBlock | TagEnd::BlockQuote(_) | TagEnd::TableRow) => out.push_str("\n\n"),
            Event::End(TagEnd::TableCell) => out.push(' '),
            _ => {}
        }
    }
    page_with_headings(None, &out, titles)
}

fn heading_level(level: HeadingLevel) -> u8 {
    level as u8
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
    use crate::parse::{test_ctx, Heading, Options};

    #[test]
    fn markup_is_dropped_and_headings_kept() {
        let opts = Options::default();
        let mut ctx = test_ctx(&opts);
        let page =
            extract("---\ntitle: x\n---\n# Big *Title*\n\nSome `code` and [a link](http://x).\nsame para\n\n## Part two\n- one\n- two\n", &mut ctx);
        assert_eq!(page.text, "Big Title\n\nSome code and a link. same para\n\nPart two\n\none\n\ntwo");
        assert_eq!(ctx.metadata["title"], "Big Title");
        assert_eq!(
            page.headings,
            vec![Heading { offset: 0, level: 1, title: "Big Title".into() }, Heading { offset: 44, level: 2, title: "Part two".into() },]
        );
    }
}
