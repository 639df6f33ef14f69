//! PPTX: one page per slide in presentation order: the slide's shapes and tables (its title as
//! heading), SmartArt text, charts, the text its layout and master draw on it (once, on the first slide
//! that uses them), then the speaker notes.
use super::{attr, core_props, corrupt, font_text, local, walk_xml, Ev, Package, Sink};
use crate::error::Result;
use crate::parse::{Ctx, Page};
use std::collections::{HashMap, HashSet};

const MAIN: &str = "ppt/presentation.xml";

/// The slides' part names in presentation order.
pub(crate) fn slide_parts(pkg: &mut Package, ctx: &Ctx) -> Result<Vec<String>> {
    let xml = pkg.read_text(MAIN)?.ok_or_else(|| corrupt("PPTX has no ppt/presentation.xml"))?;
    let mut ids = Vec::new();
    walk_xml(&xml, MAIN, |ev| {
        if let Ev::Open(e) = ev {
            if let ("sldId", Some(id)) = (local(e), attr(e, "r:id")) {
                ids.push(id);
            }
        }
        Ok(())
    })?;
    ctx.check_pages(ids.len())?;
    let mut rels: HashMap<String, String> = pkg.rels(MAIN)?.into_iter().map(|r| (r.id, r.target)).collect();
    Ok(ids.iter().filter_map(|id| rels.remove(id)).collect())
}

pub fn extract(pkg: &mut Package, ctx: &mut Ctx) -> Result<Vec<Page>> {
    core_props(pkg, ctx)?;
    let slides = slide_parts(pkg, ctx)?;
    ctx.metadata.insert("pages".into(), slides.len().into());
    let mut shown = HashSet::new();
    let mut pages = Vec::with_capacity(slides.len());
    for (n, slide) in slides.iter().enumerate() {
        ctx.check()?;
        let mut sink = Sink::default();
        shapes(pkg, slide, Mode::Slide, &mut sink)?;
        let rels = pkg.rels(slide)?;
        for rel in rels.iter().filter(|r| r.kind == "diagramData") {
            shapes(pkg, &rel.target, Mode::Slide, &mut sink)?;
        }
        for rel in rels.iter().filter(|r| r.kind == "chart") {
            super::chart::chart(pkg, &rel.target, &mut sink)?;
        }
        for layout in rels.iter().filter(|r| r.kind == "slideLayout") {
            if shown.insert(layout.target.clone()) {
                shapes(pkg, &layout.target, Mode::Furniture, &mut sink)?;
                for master in pkg.rels(&layout.target)?.into_iter().filter(|r| r.kind == "slideMaster") {
                    if shown.insert(master.target.clone()) {
                        shapes(pkg, &master.target, Mode::Furniture, &mut sink)?;
                    }
                }
            }
        }
        for notes in rels.iter().filter(|r| r.kind == "notesSlide") {
            shapes(pkg, &notes.target, Mode::Notes, &mut sink)?;
        }
        pages.push(sink.into_page(Some(n as u32 + 1)));
    }
    Ok(pages)
}

/// Which placeholder shapes a part's text comes from.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Mode {
    /// Slides (and spreadsheet drawings): everything but the slide-number placeholder.
    Slide,
    /// Notes pages: the notes, not the slide image, number, header, footer or date.
    Notes,
    /// Layouts and masters: only shapes that are not placeholders ("Click to edit…").
    Furniture,
}

fn hidden(mode: Mode, placeholder: &str) -> bool {
    match mode {
        Mode::Slide => placeholder == "sldNum",
        Mode::Notes => matches!(placeholder, "sldNum" | "sldImg" | "hdr" | "ftr" | "dt"),
        Mode::Furniture => true,
    }
}

/// A shape (`p:sp`, `xdr:sp`) being read.
struct Shape {
    start: usize,
    title: bool,
    hidden: bool,
}

/// Adds the DrawingML text of one part: paragraphs, line breaks and tables.
pub(super) fn shapes(pkg: &mut Package, part: &str, mode: Mode, sink: &mut Sink) -> Result<()> {
    let Some(xml) = pkg.read_text(part)? else { return Ok(()) };
    let mut shape: Option<Shape> = None;
    let mut in_text = false;
    let mut symbol_font = false;
    walk_xml(&xml, part, |ev| {
        let hide = shape.as_ref().is_some_and(|s| s.hidden);
        match ev {
            Ev::Open(e) => match local(e) {
                "sp" => shape = Some(Shape { start: sink.pos(), title: false, hidden: false }),
                "ph" => {
                    if let Some(s) = shape.as_mut() {
                        let kind = attr(e, "type").unwrap_or_default();
                        s.title = matches!(kind.as_str(), "title" | "ctrTitle");
                        s.hidden = hidden(mode, &kind);
                    }
                }
                "p" if !hide => sink.para_break(),
                "br" if !hide => sink.line_break(),
                "t" => in_text = !hide,
                "r" | "fld" => symbol_font = false,
                "latin" | "sym" => symbol_font |= attr(e, "typeface").is_some_and(|f| f.eq_ignore_ascii_case("Symbol")),
                "tbl" => sink.table_start(),
                "tr" => sink.row_start(),
                "tc" => sink.cell_start(),
                _ => {}
            },
            Ev::Close(name) => match name {
                "sp" => {
                    if let Some(s) = shape.take().filter(|s| s.title && mode == Mode::Slide) {
                        sink.page_title(s.start);
                    }
                }
                "t" => in_text = false,
                "tr" => sink.row_end(),
                "tbl" => sink.table_end(),
                _ => {}
            },
            Ev::Text(t) if in_text => sink.push(&font_text(t, symbol_font)),
            Ev::Text(_) => {}
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::Parsed;

    #[test]
    fn slides_in_presentation_order_with_titles() {
        let parsed = Parsed::of("tika__testPPT.pptx");
        let firsts: Vec<_> = parsed.pages.iter().map(|p| p.text.lines().next().unwrap_or_default()).collect();
        assert_eq!(firsts[0], "Attachment Test");
        assert!(firsts[1].starts_with("This is a test file data with the same content as every other file"));
        assert_eq!(firsts[2], "Different words to test against");
        assert_eq!(parsed.pages.iter().map(|p| p.number).collect::<Vec<_>>(), [Some(1), Some(2), Some(3)]);
        assert!(parsed.pages[2].text.contains("Black Panther\n\nMystery"));
        assert_eq!(parsed.pages[0].headings[0].title, "Attachment Test");
    }

    #[test]
    fn speaker_notes_follow_their_slide() {
        let parsed = Parsed::of("pythonpptx__sld-notes.pptx");
        assert_eq!(parsed.pages.len(), 2);
        assert_eq!(parsed.pages[0].text, "Notes");
        assert_eq!(parsed.pages[1].text, "");
    }

    #[test]
    fn tables_text_boxes_and_layout_text() {
        let text = Parsed::of("tika__testPPT_various.pptx").flat();
        for expected in [
            "Row 1 Col 1 | Row 1 Col 2 | Row 1 Col 3",
            "Here is a text box",
            "Footnote appears here",
            "ゾルゲと尾崎、淡々と最期",
            "Number bullet 2",
            "This is a hyperlink",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from {text:?}");
        }
        let text = Parsed::of("tika__testPPT_masterText.pptx").flat();
        assert_eq!(text, "Text that I added to the master slide");
    }

    #[test]
    fn pandoc_deck_with_table_and_smartart() {
        let parsed = Parsed::of("pandoc__pptx_basic.pptx");
        assert_eq!(parsed.pages.len(), 4);
        let first = &parsed.pages[0].text;
        assert!(first.contains("Provider Available LLMs – who manages? How?"), "Wingdings arrow dropped: {first:?}");
        assert!(parsed.pages[2].text.contains("Col1 | Col2 | Col3\nName | Anton | Antich"), "{:?}", parsed.pages[2].text);
        assert_eq!(parsed.pages[2].headings[0].title, "Table");
        assert!(parsed.pages[3].text.contains("Smart Art"), "{:?}", parsed.pages[3].text);
    }
}
