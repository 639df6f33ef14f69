//! EPUB: META-INF/container.xml names the package document (OPF), whose spine gives the reading
//! order. Each spine document becomes one page, numbered by its place in the spine, with its text
//! and h1–h6 headings from the HTML parser.
use super::{attr, corrupt, local, resolve, set_meta_fields, walk_xml, Ev, Package};
use crate::error::{DocError, ErrorKind, Result};
use crate::parse::{html, Ctx, Page};
use std::collections::HashMap;

pub fn extract(pkg: &mut Package, ctx: &mut Ctx) -> Result<Vec<Page>> {
    let container = "META-INF/container.xml";
    let xml = pkg.read_text(container)?.ok_or_else(|| corrupt("EPUB has no META-INF/container.xml"))?;
    let mut opf_path = None;
    walk_xml(&xml, container, |ev| {
        if let Ev::Open(e) = ev {
            if local(e) == "rootfile" && opf_path.is_none() {
                opf_path = attr(e, "full-path");
            }
        }
        Ok(())
    })?;
    let opf_path = opf_path.ok_or_else(|| corrupt("EPUB container names no package document"))?;
    let opf = pkg.read_text(&opf_path)?.ok_or_else(|| corrupt(format!("EPUB package document {opf_path} is missing")))?;
    let (spine, modified) = read_package(&opf, &opf_path)?;
    // Before the chapters, whose <title> would otherwise become the book's title.
    set_meta_fields(ctx, &opf, &opf_path, &[("title", "title"), ("creator", "author"), ("date", "created")]);
    if let Some(modified) = modified {
        ctx.set_meta("modified", modified);
    }
    check_drm(pkg, &spine)?;
    ctx.check_pages(spine.len())?;
    ctx.metadata.insert("pages".into(), spine.len().into());
    let mut pages = Vec::with_capacity(spine.len());
    for (n, path) in spine.iter().enumerate() {
        ctx.check()?;
        let source = pkg.read_text(path)?.unwrap_or_default();
        let mut page = html::extract(&source, ctx)?;
        page.number = Some(n as u32 + 1);
        pages.push(page);
    }
    Ok(pages)
}

/// The spine as part names, and the EPUB 3 `dcterms:modified` date.
fn read_package(opf: &str, opf_path: &str) -> Result<(Vec<String>, Option<String>)> {
    let dir = opf_path.rsplit_once('/').map_or("", |(dir, _)| dir);
    let mut items = HashMap::new();
    let mut order = Vec::new();
    let mut modified: Option<String> = None;
    let mut in_modified = false;
    walk_xml(opf, opf_path, |ev| {
        match ev {
            Ev::Open(e) => match local(e) {
                "item" => {
                    if let (Some(id), Some(href)) = (attr(e, "id"), attr(e, "href")) {
                        items.insert(id, resolve(dir, &href));
                    }
                }
                "itemref" => order.extend(attr(e, "idref")),
                "meta" => in_modified = attr(e, "property").as_deref() == Some("dcterms:modified"),
                _ => {}
            },
            Ev::Text(t) if in_modified => modified.get_or_insert_with(String::new).push_str(t),
            Ev::Close(_) => in_modified = false,
            Ev::Text(_) => {}
        }
        Ok(())
    })?;
    Ok((order.iter().filter_map(|id| items.get(id).cloned()).collect(), modified))
}

/// DRM-encrypted chapters are unreadable. encryption.xml also lists obfuscated fonts, which do
/// not matter, so only encrypted spine documents count.
fn check_drm(pkg: &mut Package, spine: &[String]) -> Result<()> {
    let part = "META-INF/encryption.xml";
    let Some(xml) = pkg.read_text(part)? else { return Ok(()) };
    let mut locked = false;
    walk_xml(&xml, part, |ev| {
        if let Ev::Open(e) = ev {
            if let ("CipherReference", Some(uri)) = (local(e), attr(e, "URI")) {
                locked |= spine.contains(&resolve("", &uri));
            }
        }
        Ok(())
    })?;
    if locked {
        return Err(DocError::new(ErrorKind::Encrypted, "EPUB chapters are DRM-encrypted")
            .with_hint("only DRM-free EPUB files can be ingested; export the book without DRM"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::Parsed;
    use crate::parse::Heading;

    #[test]
    fn one_page_per_spine_document() {
        let parsed = Parsed::of("tika__testEPUB.epub");
        let numbers: Vec<_> = parsed.pages.iter().map(|p| p.number).collect();
        assert_eq!(numbers, [Some(1), Some(2), Some(3), Some(4)]);
        let chapter1 = &parsed.pages[2];
        assert!(chapter1.text.starts_with("Chapter 1\n\nThis is the text for chapter One"), "{:?}", chapter1.text);
        assert!(!chapter1.text.contains("nothing to see here") && !chapter1.text.contains("nor here"));
        let chapter2 = &parsed.pages[3];
        let titles: Vec<_> = chapter2.headings.iter().map(|h| h.title.as_str()).collect();
        assert_eq!(titles, ["Chapter 2", "Subchapter 2.1", "Subchapter 2.2"]);
        assert!(chapter2.text.contains("Table header Table data"));
        assert_eq!(parsed.meta("title"), "An ePub for Tika");
        assert_eq!(parsed.meta("author"), "Bart Hanssens");
        assert_eq!(parsed.meta("created"), "2009-10-07");
    }

    #[test]
    fn epub3_features_book() {
        let parsed = Parsed::of("pandoc__epub_features.epub");
        let text = parsed.flat();
        for expected in [
            "Reflowable EPUB 3 Conformance Test Document: 0100",
            "This publication is currently considered [UNDER DEVELOPMENT] by the IDPF.",
            "Tests whether MathML equation rendering is supported.",
            "If only the word \"PASS\" is rendered before this paragraph, the test passes.",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from {text:?}");
        }
        let title = "Reflowable EPUB 3 Conformance Test Document: 0100";
        assert_eq!(parsed.pages[0].headings[0], Heading { offset: 0, level: 1, title: title.into() });
        assert_eq!(parsed.meta("title"), "EPUBTEST 0100 - Reflowable Content Tests");
        assert_eq!(parsed.meta("author"), "Markus Gylling");
        assert_eq!(parsed.meta("modified"), "2014-04-24T13:00:00Z");
    }
}
