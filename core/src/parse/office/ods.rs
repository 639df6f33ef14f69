//! ODS read straight from content.xml, row by row, with each cell's displayed text (what the
//! user sees: formatted numbers, dates). calamine builds a dense grid per sheet and expands
//! repeated rows and columns into it (up to 100 million cells, gigabytes, for a few bytes of
//! hostile XML); here repeats of empty cells cost nothing and repeats of filled ones count
//! against the decompression limit.
use super::sheets::{begin_sheet, push_row, record_count};
use super::{attr, corrupt, local, odf, walk_xml, Ev, Package, Sink};
use crate::error::{DocError, ErrorKind, Result};
use crate::parse::{Ctx, Page};

pub fn extract(pkg: &mut Package, ctx: &mut Ctx) -> Result<Vec<Page>> {
    odf::check_encrypted(pkg)?;
    odf::meta(pkg, ctx)?;
    let xml = pkg.read_text("content.xml")?.ok_or_else(|| corrupt("OpenDocument file has no content.xml"))?;
    let pages = sheet_pages(&xml, ctx)?;
    record_count(ctx, pages.len())?;
    Ok(pages)
}

/// A table row being read: its cells as (column, text), and the cell being read.
#[derive(Default)]
struct Row {
    repeats: u64,
    cells: Vec<(u32, String)>,
    column: u32,
    cell: Option<(u64, String)>,
}

fn sheet_pages(xml: &str, ctx: &Ctx) -> Result<Vec<Page>> {
    let limit = ctx.options.max_decompressed_bytes;
    let mut pages = Vec::new();
    let mut sheet: Option<Sink> = None;
    let mut row = Row::default();
    // Open text:p inside the current cell; a cell's paragraphs are joined by spaces.
    let mut in_para = 0usize;
    let mut skip = 0usize;
    // Tables nested in a cell stay part of their sheet.
    let mut tables = 0usize;
    let mut written = 0u64;
    walk_xml(xml, "content.xml", |ev| {
        match ev {
            Ev::Open(_) if skip > 0 => skip += 1,
            Ev::Close(_) if skip > 0 => skip -= 1,
            Ev::Open(e) => match local(e) {
                "annotation" | "shapes" => skip = 1,
                "table" => {
                    tables += 1;
                    if tables == 1 {
                        ctx.check()?;
                        ctx.check_pages(pages.len() + 1)?;
                        sheet = Some(begin_sheet(&attr(e, "table:name").unwrap_or_default()));
                    }
                }
                "table-row" => row = Row { repeats: repeat(e, "table:number-rows-repeated"), ..Row::default() },
                "table-cell" | "covered-table-cell" => row.cell = Some((repeat(e, "table:number-columns-repeated"), String::new())),
                "p" | "h" if row.cell.is_some() => {
                    in_para += 1;
                    if let Some((_, text)) = row.cell.as_mut().filter(|(_, t)| !t.is_empty()) {
                        text.push(' ');
                    }
                }
                "s" | "tab" | "line-break" => cell_text(&mut row, in_para, " "),
                _ => {}
            },
            Ev::Close(name) => match name {
                "p" | "h" => in_para = in_para.saturating_sub(1),
                "table-cell" | "covered-table-cell" => {
                    if let Some((repeats, text)) = row.cell.take() {
                        let filled = !text.trim().is_empty();
                        let span = u32::try_from(repeats).unwrap_or(u32::MAX);
                        // Cells past ODF's last column are the same empty (or bogus) tail.
                        let kept = span.min(MAX_COLUMNS.saturating_sub(row.column));
                        if filled && kept > 0 {
                            written += u64::from(kept) * (text.len() as u64 + 3);
                            for i in 0..kept {
                                row.cells.push((row.column + i, text.clone()));
                            }
                        }
                        row.column = row.column.saturating_add(span);
                    }
                }
                "table-row" => {
                    if let Some(sink) = sheet.as_mut().filter(|_| !row.cells.is_empty()) {
                        let line: u64 = row.cells.iter().map(|(_, t)| t.len() as u64 + 3).sum();
                        written += line.saturating_mul(row.repeats.saturating_sub(1));
                        if written > limit {
                            return Err(too_large(written));
                        }
                        for _ in 0..row.repeats {
                            ctx.check()?;
                            push_row(sink, &mut row.cells);
                        }
                    }
                    row = Row::default();
                }
                "table" => {
                    tables = tables.saturating_sub(1);
                    if let Some(sink) = sheet.take_if(|_| tables == 0) {
                        pages.push(sink.into_page(Some(pages.len() as u32 + 1)));
                    }
                }
                _ => {}
            },
            Ev::Text(t) => cell_text(&mut row, in_para, t),
        }
        if written > limit {
            return Err(too_large(written));
        }
        Ok(())
    })?;
    Ok(pages)
}

/// ODF's own limit on columns (LibreOffice's since 7.4).
const MAX_COLUMNS: u32 = 16_384;

fn repeat(e: &quick_xml::events::BytesStart, name: &str) -> u64 {
    attr(e, name).and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(1).max(1)
}

fn cell_text(row: &mut Row, in_para: usize, text: &str) {
    if let Some((_, cell)) = row.cell.as_mut().filter(|_| in_para > 0) {
        cell.push_str(text);
    }
}

fn too_large(bytes: u64) -> DocError {
    DocError::new(ErrorKind::TooLarge, format!("the spreadsheet's repeated cells expand to more than {} MB of text", bytes >> 20))
        .with_hint("raise docchat.max_decompressed_size if the sheet is genuine")
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{zip_of, Parsed};
    use crate::error::ErrorKind;
    use crate::parse::{test_ctx, Options};

    const MANIFEST: &[u8] = br#"<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#;

    fn ods(tables: &str) -> Vec<u8> {
        let content = format!(
            r#"<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet>{tables}</office:spreadsheet></office:body></office:document-content>"#
        );
        zip_of(&[
            ("mimetype", b"application/vnd.oasis.opendocument.spreadsheet"),
            ("META-INF/manifest.xml", MANIFEST),
            ("content.xml", content.as_bytes()),
        ])
    }

    fn cell(text: &str) -> String {
        format!(r#"<table:table-cell office:value-type="string"><text:p>{text}</text:p></table:table-cell>"#)
    }

    #[test]
    fn sheets_rows_and_displayed_values() {
        let tables = format!(
            r#"<table:table table:name="Costs"><table:table-row>{}{}</table:table-row><table:table-row>{}<table:table-cell office:value-type="float" office:value="2.5"><text:p>2.50 €</text:p></table:table-cell><table:table-cell table:number-columns-repeated="3"/>{}</table:table-row>
<table:table-row table:number-rows-repeated="1048570"><table:table-cell table:number-columns-repeated="1024"/></table:table-row></table:table><table:table table:name="Empty"/>"#,
            cell("Item"),
            cell("Price"),
            cell("Tea"),
            cell("hot<text:s/>drink"),
        );
        let parsed = Parsed::from_bytes(&ods(&tables));
        let texts: Vec<_> = parsed.pages.iter().map(|p| (p.number, p.text.as_str())).collect();
        assert_eq!(texts, [(Some(1), "Costs\n\nItem | Price\nTea | 2.50 € | | hot drink"), (Some(2), "Empty")]);
        assert_eq!(parsed.metadata["pages"], 2);
    }

    #[test]
    fn repeated_filled_cells_are_written_out_within_the_limit() {
        let tables = r#"<table:table table:name="S"><table:table-row table:number-rows-repeated="3"><table:table-cell table:number-columns-repeated="2" office:value-type="string"><text:p>x</text:p></table:table-cell></table:table-row></table:table>"#;
        assert_eq!(Parsed::from_bytes(&ods(tables)).pages[0].text, "S\n\nx | x\nx | x\nx | x");
        // Columns past ODF's last one are dropped, however many a cell claims.
        let wide = r#"<table:table table:name="S"><table:table-row><table:table-cell table:number-columns-repeated="4000000000" office:value-type="string"><text:p>x</text:p></table:table-cell></table:table-row></table:table>"#;
        let text = &Parsed::from_bytes(&ods(wide)).pages[0].text;
        assert_eq!(text.matches('x').count(), 16_384);
        // A million rows of a thousand filled cells: a few hundred bytes of XML, gigabytes of text.
        let bomb = r#"<table:table table:name="S"><table:table-row table:number-rows-repeated="1048576"><table:table-cell table:number-columns-repeated="1024" office:value-type="string"><text:p>boom</text:p></table:table-cell></table:table-row></table:table>"#;
        let opts = Options::default();
        let err = crate::parse::parse(&ods(bomb), None, None, &mut test_ctx(&opts)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TooLarge, "{err}");
    }
}
