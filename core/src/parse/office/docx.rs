//! DOCX: the body (paragraphs, tables, text boxes, tracked changes accepted), then footnotes,
//! endnotes, headers and footers. Paragraph styles that Word outlines become headings.
use super::{attr, core_props, corrupt, font_text, local, symbol_char, walk_xml, Ev, Package, Sink};
use crate::error::Result;
use crate::parse::{Ctx, Page};
use std::collections::{HashMap, HashSet};

const MAIN: &str = "word/document.xml";

pub fn extract(pkg: &mut Package, ctx: &mut Ctx) -> Result<Vec<Page>> {
    core_props(pkg, ctx)?;
    // Styles only give headings: damaged ones cost the headings, not the text.
    let styles = pkg.read_text("word/styles.xml")?.and_then(|xml| heading_styles(&xml).ok()).unwrap_or_default();
    let rels = pkg.rels(MAIN)?;
    let mut parts = vec![MAIN.to_string()];
    // Several sections often share one header part.
    let mut seen = HashSet::new();
    for kind in ["footnotes", "endnotes", "header", "footer"] {
        for rel in rels.iter().filter(|r| r.kind == kind) {
            if seen.insert(&rel.target) {
                parts.push(rel.target.clone());
            }
        }
    }
    let mut sink = Sink::default();
    for part in &parts {
        ctx.check()?;
        match pkg.read_text(part)? {
            Some(xml) => read_part(&xml, part, &styles, &mut sink)?,
            None if part == MAIN => return Err(corrupt("DOCX has no word/document.xml")),
            None => {}
        }
        // Charts follow the body text (before notes, headers and footers).
        if part == MAIN {
            for rel in rels.iter().filter(|r| r.kind == "chart") {
                super::chart::chart(pkg, &rel.target, &mut sink)?;
            }
        }
    }
    Ok(vec![sink.into_page(None)])
}

/// A paragraph being read: where its text starts and its heading level, if it has one.
struct Para {
    start: usize,
    level: Option<u8>,
}

fn read_part(xml: &str, part: &str, styles: &HashMap<String, u8>, sink: &mut Sink) -> Result<()> {
    let mut skip = 0usize;
    let mut paras: Vec<Para> = Vec::new();
    let mut in_text = false;
    let mut symbol_font = false;
    walk_xml(xml, part, |ev| {
        match ev {
            Ev::Open(_) if skip > 0 => skip += 1,
            Ev::Close(_) if skip > 0 => skip -= 1,
            Ev::Open(e) => match local(e) {
                // Deleted revisions, formatting before a tracked change, the VML copy of a text
                // box (mc:Fallback), tab-stop definitions.
                "del" | "moveFrom" | "pPrChange" | "rPrChange" | "Fallback" | "tabs" => skip = 1,
                "p" => {
                    sink.para_break();
                    paras.push(Para { start: sink.pos(), level: None });
                }
                "pStyle" => {
                    if let (Some(p), Some(id)) = (paras.last_mut(), attr(e, "w:val")) {
                        p.level = styles.get(&id).copied().or_else(|| name_level(&id));
                    }
                }
                "outlineLvl" => {
                    if let Some(p) = paras.last_mut() {
                        p.level = outline_level(attr(e, "w:val"));
                    }
                }
                "t" => in_text = true,
                "tab" | "ptab" => sink.push("\t"),
                "br" | "cr" => sink.line_break(),
                "noBreakHyphen" => sink.push("-"),
                "sym" => {
                    if let Some(c) = sym_char(attr(e, "w:font"), attr(e, "w:char")) {
                        sink.push(c.encode_utf8(&mut [0; 4]));
                    }
                }
                "r" => symbol_font = false,
                "rFonts" => {
                    let font = attr(e, "w:ascii").or_else(|| attr(e, "w:hAnsi"));
                    symbol_font = font.is_some_and(|f| f.eq_ignore_ascii_case("Symbol"));
                }
                "tbl" => sink.table_start(),
                "tr" => sink.row_start(),
                "tc" => sink.cell_start(),
                _ => {}
            },
            Ev::Close(name) => match name {
                "p" => {
                    // Paragraphs inside text boxes are nested in another paragraph: never headings.
                    if let Some(Para { start, level: Some(level) }) = paras.pop() {
                        if paras.is_empty() {
                            sink.heading(start, level);
                        }
                    }
                    // The outer paragraph's text goes on after a text box's.
                    sink.para_break();
                }
                "t" => in_text = false,
                "tr" => sink.row_end(),
                "tbl" => sink.table_end(),
                _ => {}
            },
            Ev::Text(t) if in_text && skip == 0 => {
                sink.push(&font_text(t, symbol_font));
            }
            Ev::Text(_) => {}
        }
        Ok(())
    })
}

/// Heading level per paragraph style id: from the style's outline level or its built-in name
/// ("heading 2", "Title", which Word stores in English whatever the UI language), else inherited
/// through `basedOn`.
fn heading_styles(xml: &str) -> Result<HashMap<String, u8>> {
    struct Style {
        level: Option<u8>,
        based_on: Option<String>,
    }
    let mut styles: HashMap<String, Style> = HashMap::new();
    let mut current: Option<(String, Style)> = None;
    walk_xml(xml, "word/styles.xml", |ev| {
        match ev {
            Ev::Open(e) => match (local(e), current.as_mut()) {
                ("style", _) => {
                    current = match (attr(e, "w:type").as_deref(), attr(e, "w:styleId")) {
                        (Some("paragraph"), Some(id)) => Some((id.clone(), Style { level: name_level(&id), based_on: None })),
                        _ => None,
                    }
                }
                ("name", Some((_, style))) => style.level = attr(e, "w:val").and_then(|n| name_level(&n)).or(style.level),
                ("outlineLvl", Some((_, style))) => style.level = outline_level(attr(e, "w:val")),
                ("basedOn", Some((_, style))) => style.based_on = attr(e, "w:val"),
                _ => {}
            },
            Ev::Close("style") => {
                if let Some((id, style)) = current.take() {
                    styles.insert(id, style);
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    let level_of = |id: &str| {
        let mut id = id;
        // Bounded: a basedOn cycle in a hostile file must not loop forever.
        for _ in 0..16 {
            let style = styles.get(id)?;
            if style.level.is_some() {
                return style.level;
            }
            id = style.based_on.as_deref()?;
        }
        None
    };
    Ok(styles.keys().filter_map(|id| Some((id.clone(), level_of(id)?))).collect())
}

/// "heading 3" / "Heading3" → 3, "Title" → 1.
fn name_level(name: &str) -> Option<u8> {
    let name: String = name.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
    if name == "title" {
        return Some(1);
    }
    name.strip_prefix("heading")?.parse::<u8>().ok().filter(|l| (1..=9).contains(l))
}

/// `w:outlineLvl` counts from 0; 9 means body text.
fn outline_level(value: Option<String>) -> Option<u8> {
    value?.parse::<u8>().ok().filter(|l| *l < 9).map(|l| l + 1)
}

/// A `w:sym` character. Symbol-font codes are mapped to Unicode; other symbol fonts (Wingdings…)
/// have no Unicode equivalents and are dropped.
fn sym_char(font: Option<String>, code: Option<String>) -> Option<char> {
    let code = u32::from_str_radix(&code?, 16).ok()?;
    let private = if code < 0x100 { code + 0xF000 } else { code };
    match symbol_char(private) {
        Some(c) if font.is_some_and(|f| f.eq_ignore_ascii_case("Symbol")) => Some(c),
        _ if (0xF000..=0xF0FF).contains(&private) => None,
        _ => char::from_u32(code),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{assert_paragraphs_in_order, corpus, Parsed};
    use super::*;
    use crate::parse::Heading;

    #[test]
    fn pandoc_documents_match_their_native_paragraphs() {
        for (docx, native) in [
            ("pandoc__docx_i18n_blocks.docx", "pandoc__docx_i18n_blocks.native"),
            ("pandoc__docx_notes.docx", "pandoc__docx_notes.native"),
            ("pandoc__docx_track_changes_deletion.docx", "pandoc__docx_track_changes_deletion_accept.native"),
            ("pandoc__docx_unicode.docx", "pandoc__docx_unicode.native"),
        ] {
            let text = Parsed::of(docx).flat();
            assert_paragraphs_in_order(&text, &std::fs::read_to_string(corpus(native)).unwrap());
        }
    }

    #[test]
    fn deletions_are_dropped_and_localized_heading_styles_found() {
        assert!(!Parsed::of("pandoc__docx_track_changes_deletion.docx").flat().contains("excessively"));
        let page = &Parsed::of("pandoc__docx_i18n_blocks.docx").pages[0];
        assert_eq!(
            page.headings,
            vec![
                Heading { offset: 0, level: 1, title: "This is Heading 1".into() },
                Heading { offset: 19, level: 2, title: "This is Heading 2".into() },
            ]
        );
    }

    #[test]
    fn symbol_font_maps_to_unicode() {
        assert_eq!(sym_char(Some("Symbol".into()), Some("00DA".into())), Some('∨'));
        assert_eq!(sym_char(Some("Symbol".into()), Some("F070".into())), Some('π'));
        assert_eq!(sym_char(Some("Wingdings".into()), Some("F04A".into())), None);
        assert_eq!(sym_char(Some("Arial".into()), Some("2192".into())), Some('→'));
    }

    #[test]
    fn tika_word_document() {
        let parsed = Parsed::of("tika__testWORD.docx");
        let text = parsed.flat();
        for expected in [
            "Sample Word Document Title",
            "This is a sample Microsoft Word Document.",
            "This document includes text that is BOLD and ITALIC.",
            "Apache Tika: http://tika.apache.org/ Tika",
            "This is the header for our document",
            "This is the footer for our document",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from {text:?}");
        }
        let titles: Vec<_> = parsed.pages[0].headings.iter().map(|h| (h.level, h.title.as_str())).collect();
        // "Main Heading" has LibreOffice's generic "Heading" style, which has no level.
        let expected = [(1, "Sample Word Document Title"), (1, "Heading Level 1"), (2, "Heading Level 2"), (3, "Heading Level 3")];
        assert_eq!(titles, expected);
        assert_eq!(parsed.meta("title"), "Sample Word Document");
        assert_eq!(parsed.meta("author"), "Keith Bennett");
    }

    #[test]
    fn text_boxes_appear_once() {
        let text = Parsed::of("tika__testWORD_text_box.docx").flat();
        for place in ["body", "header", "footer"] {
            let boxed = format!("This text is inside of a text box in the {place} of the document.");
            assert_eq!(text.matches(&boxed).count(), 1, "{boxed:?} in {text:?}");
        }
        assert!(text.contains("This text is directly in the body of the document."));
    }

    #[test]
    fn headers_footers_notes_and_tables() {
        let text = Parsed::of("tika__testWORD_various.docx").flat();
        for expected in [
            "This is the header text.",
            "This is the footer text.",
            "This is a footnote.",
            "Row 1 Col 1 | Row 1 Col 2 | Row 1 Col 3",
            "Row 2 Col 1 | Row 2 Col 2 | Row 2 Col 3",
            "Figure 1 This is a caption for Figure 1",
            "ゾルゲと尾崎、淡々と最期",
            "Number bullet 3",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from {text:?}");
        }
        assert_eq!(text.matches("Here is a text box").count(), 1);
        assert!(text.starts_with("Here is a text box Footnote appears here"));
        assert!(!text.contains("SEQ Figure"), "field codes are not text");
        let text = Parsed::of("tika__footnotes.docx").flat();
        assert!(text.contains("Eto ochen prostoy text so snoskoy") && text.ends_with("snoska"), "{text:?}");
    }
}
