//! ODT and ODP from content.xml: paragraphs, headings (`text:h` with its outline level), lists,
//! tables and text frames; footnotes move to the end of the page; tracked deletions, comments,
//! shape descriptions and index templates are dropped. ODP gives one page per `draw:page`, its
//! title frame as the page's heading, speaker notes after the slide.
use super::{attr, corrupt, local, set_meta_fields, walk_xml, Ev, Package, Sink};
use crate::detect::Format;
use crate::error::{DocError, ErrorKind, Result};
use crate::parse::{Ctx, Page};

pub fn extract(format: Format, pkg: &mut Package, ctx: &mut Ctx) -> Result<Vec<Page>> {
    check_encrypted(pkg)?;
    meta(pkg, ctx)?;
    let xml = pkg.read_text("content.xml")?.ok_or_else(|| corrupt("OpenDocument file has no content.xml"))?;
    let slides = format == Format::Odp;
    let pages = content_pages(&xml, slides, ctx)?;
    if slides {
        ctx.metadata.insert("pages".into(), pages.len().into());
    }
    Ok(pages)
}

/// An encrypted package keeps its manifest readable and says so there.
pub(super) fn check_encrypted(pkg: &mut Package) -> Result<()> {
    let part = "META-INF/manifest.xml";
    let Some(xml) = pkg.read_text(part)? else { return Ok(()) };
    let mut encrypted = false;
    walk_xml(&xml, part, |ev| {
        if let Ev::Open(e) = ev {
            encrypted |= local(e) == "encryption-data";
        }
        Ok(())
    })?;
    if encrypted {
        return Err(DocError::new(ErrorKind::Encrypted, "password-protected OpenDocument file")
            .with_hint("save it in LibreOffice without \"Save with password\" (File > Save As) and ingest that copy"));
    }
    Ok(())
}

/// meta.xml: the initial creator is the author; dc:creator is whoever saved it last.
pub(super) fn meta(pkg: &mut Package, ctx: &mut Ctx) -> Result<()> {
    if let Some(xml) = pkg.read_text("meta.xml")? {
        let fields = [("title", "title"), ("initial-creator", "author"), ("creator", "author"), ("creation-date", "created"), ("date", "modified")];
        set_meta_fields(ctx, &xml, "meta.xml", &fields);
    }
    Ok(())
}

fn content_pages(xml: &str, slides: bool, ctx: &Ctx) -> Result<Vec<Page>> {
    let mut pages = Vec::new();
    let mut sink = Sink::default();
    let mut skip = 0usize;
    // Open text:p / text:h: only text inside them is content (the rest is indentation).
    let mut in_para = 0usize;
    let mut headings: Vec<(usize, u8)> = Vec::new();
    // Open draw:frame elements; Some(start) for a presentation title.
    let mut frames: Vec<Option<usize>> = Vec::new();
    walk_xml(xml, "content.xml", |ev| {
        match ev {
            Ev::Open(_) if skip > 0 => skip += 1,
            Ev::Close(_) if skip > 0 => skip -= 1,
            Ev::Open(e) => match local(e) {
                "tracked-changes" | "annotation" | "note-citation" | "sequence-decls" | "page-thumbnail" => skip = 1,
                // Index templates (text:*-source) and shape descriptions (svg:title, svg:desc).
                name if name.ends_with("-source") || matches!(e.name().into_inner(), "svg:title" | "svg:desc") => skip = 1,
                "p" => {
                    sink.para_break();
                    in_para += 1;
                }
                "h" => {
                    sink.para_break();
                    in_para += 1;
                    let level = attr(e, "text:outline-level").and_then(|l| l.parse::<u8>().ok()).unwrap_or(1);
                    headings.push((sink.pos(), level.clamp(1, 10)));
                }
                "s" => sink.push(" "),
                "tab" => sink.push("\t"),
                "line-break" => sink.line_break(),
                "note-body" => sink.note_start(),
                "table" => sink.table_start(),
                "table-row" => sink.row_start(),
                "table-cell" | "covered-table-cell" => sink.cell_start(),
                "frame" => frames.push((attr(e, "presentation:class").as_deref() == Some("title")).then(|| sink.pos())),
                "page" if slides => {
                    ctx.check()?;
                    ctx.check_pages(pages.len() + 1)?;
                }
                _ => {}
            },
            Ev::Close(name) => match name {
                // Text after a frame's paragraphs, inside the outer paragraph, starts a new line.
                "p" => {
                    in_para = in_para.saturating_sub(1);
                    sink.para_break();
                }
                "h" => {
                    in_para = in_para.saturating_sub(1);
                    if let Some((start, level)) = headings.pop() {
                        sink.heading(start, level);
                    }
                    sink.para_break();
                }
                "note-body" => sink.note_end(),
                "table-row" => sink.row_end(),
                "table" => sink.table_end(),
                "frame" => {
                    if let Some(Some(start)) = frames.pop() {
                        sink.page_title(start);
                    }
                }
                "page" if slides => pages.push(std::mem::take(&mut sink).into_page(Some(pages.len() as u32 + 1))),
                _ => {}
            },
            // In ODF, line ends in the XML are plain spaces; breaks are elements.
            Ev::Text(t) if in_para > 0 && skip == 0 => sink.push(&t.replace(['\n', '\r', '\t'], " ")),
            Ev::Text(_) => {}
        }
        Ok(())
    })?;
    if !slides {
        pages.push(sink.into_page(None));
    }
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{zip_of, Parsed};
    use crate::error::ErrorKind;
    use crate::parse::{normalize_whitespace, test_ctx, Heading, Options};

    #[test]
    fn odt_with_notes_changes_and_comments() {
        let parsed = Parsed::of("tika__testODFwithOOo3.odt");
        let page = &parsed.pages[0];
        assert_eq!(page.headings, vec![Heading { offset: 0, level: 1, title: "Apache Tika Test Document".into() }]);
        assert!(
            page.text.starts_with("Apache Tika Test Document\n\nThis is a rather difficult test document, with interesting features.\n\nA rectangle"),
            "{:?}",
            page.text
        );
        for expected in ["First item\n\nSecond item", "Reference to the title: Apache Tika Test Document", "Solr: Various, Solr website, 2009"] {
            assert!(page.text.contains(expected), "{expected:?} missing from {:?}", page.text);
        }
        assert!(page.text.ends_with("This is of course a simple footnote"), "footnotes go last: {:?}", page.text);
        for dropped in ["complex", "Tika is part of the Lucene project.", "Bart Hanssens", "blue background"] {
            assert!(!page.text.contains(dropped), "{dropped:?} in {:?}", page.text);
        }
        assert_eq!(parsed.meta("title"), "Apache Tika");
        assert_eq!(parsed.meta("author"), "Bart Hanssens");
        assert_eq!(parsed.meta("created"), "2009-10-05T19:04:01");
        assert_eq!(parsed.meta("modified"), "2009-10-05T21:22:38");
    }

    #[test]
    fn odt_unicode() {
        let text = &Parsed::of("pandoc__odt_unicode.odt").pages[0].text;
        assert_eq!(*text, normalize_whitespace("“”’çӨ©¼вбФШöÉµ"));
    }

    #[test]
    fn encrypted_odt_is_refused() {
        let bytes = std::fs::read(super::super::testutil::corpus("tika__testODTEncrypted.odt")).unwrap();
        let opts = Options::default();
        let err = crate::parse::parse(&bytes, None, None, &mut test_ctx(&opts)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Encrypted);
        assert!(err.hint.is_some());
    }

    #[test]
    fn odp_gives_a_page_per_slide_with_notes() {
        let content = br#"<office:document-content xmlns:office="o" xmlns:draw="d" xmlns:text="t" xmlns:presentation="p" xmlns:table="tb"><office:body><office:presentation>
<draw:page draw:name="p1"><draw:frame presentation:class="outline"><draw:text-box><text:list><text:list-item><text:p>First point</text:p></text:list-item></text:list></draw:text-box></draw:frame>
<draw:frame presentation:class="title"><draw:text-box><text:p>Opening</text:p></draw:text-box></draw:frame>
<presentation:notes><draw:page-thumbnail/><draw:frame presentation:class="notes"><draw:text-box><text:p>Say hello</text:p></draw:text-box></draw:frame></presentation:notes></draw:page>
<draw:page draw:name="p2"><draw:frame><table:table><table:table-row><table:table-cell><text:p>a</text:p></table:table-cell><table:table-cell><text:p>b</text:p></table:table-cell></table:table-row></table:table></draw:frame></draw:page>
</office:presentation></office:body></office:document-content>"#;
        let bytes = zip_of(&[("mimetype", b"application/vnd.oasis.opendocument.presentation"), ("content.xml", content)]);
        let parsed = Parsed::from_bytes(&bytes);
        assert_eq!(parsed.pages.len(), 2);
        assert_eq!(parsed.pages[0].text, "First point\n\nOpening\n\nSay hello");
        assert_eq!(parsed.pages[0].headings, vec![Heading { offset: 0, level: 1, title: "Opening".into() }]);
        assert_eq!((parsed.pages[1].number, parsed.pages[1].text.as_str()), (Some(2), "a | b"));
        assert_eq!(parsed.metadata["pages"], 2);
    }
}
