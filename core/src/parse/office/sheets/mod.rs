//! Spreadsheets through calamine: one page per sheet with the sheet name as heading and each
//! row as a line of cells joined by " | ". XLSX is streamed cell by cell (a dense range for a
//! cell at XFD1048576 would not fit in memory) and gets the text of its drawings' text boxes
//! and charts.
use super::pptx::{shapes, Mode};
use super::{attr, core_props, local, walk_xml, Ev, Package, Sink};
use crate::detect::Format;
use crate::error::{DocError, ErrorKind, Result};
use crate::parse::{Ctx, Page};
use calamine::{Data, Reader, Xls, XlsError, Xlsx};
use std::collections::HashMap;
use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

mod xls_guard;

/// `pkg` is the ZIP container for XLSX, `None` for XLS.
pub fn extract(format: Format, bytes: &[u8], pkg: Option<&mut Package>, ctx: &mut Ctx) -> Result<Vec<Page>> {
    let cursor = Cursor::new(bytes);
    match (format, pkg) {
        (Format::Xlsx, Some(pkg)) => {
            pkg.check_all()?;
            core_props(pkg, ctx)?;
            let book = guarded(|| calamine::open_workbook_from_rs::<Xlsx<_>, _>(cursor).map_err(|e| e.to_string()))?;
            xlsx_pages(book, pkg, ctx)
        }
        (Format::Xls, None) => {
            xls_guard::check(bytes, ctx.options.max_decompressed_bytes)?;
            // Not `guarded`: a password error must stay recognisable.
            let book = catch_unwind(AssertUnwindSafe(|| calamine::open_workbook_from_rs::<Xls<_>, _>(cursor)))
                .map_err(|_| corrupt_sheet("the spreadsheet reader failed"))?
                .map_err(|e| match e {
                    XlsError::Password => DocError::new(ErrorKind::Encrypted, "password-protected Excel workbook")
                        .with_hint("remove the password in Excel and ingest the saved copy"),
                    e => corrupt_sheet(&e.to_string()),
                })?;
            range_pages(book, ctx)
        }
        _ => Err(DocError::new(ErrorKind::Unsupported, format!("{} is not a spreadsheet", format.name()))),
    }
}

fn corrupt_sheet(why: &str) -> DocError {
    super::corrupt(format!("cannot read the spreadsheet: {why}"))
}

/// Runs calamine so that its errors and panics (hostile input) become `Corrupt`.
fn guarded<T>(f: impl FnOnce() -> std::result::Result<T, String>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(|e| corrupt_sheet(&e)),
        Err(_) => Err(corrupt_sheet("the spreadsheet reader failed")),
    }
}

pub(super) fn begin_sheet(name: &str) -> Sink {
    let mut sink = Sink::default();
    sink.push(name);
    sink.heading(0, 1);
    sink.para_break();
    sink
}

/// Adds one row as a line: cells joined by " | ", a run of empty cells shown as one empty cell,
/// empty cells at either end dropped.
pub(super) fn push_row(sink: &mut Sink, cells: &mut [(u32, String)]) {
    cells.sort_by_key(|c| c.0);
    let mut line = String::new();
    let mut last: Option<u32> = None;
    for (col, text) in cells.iter() {
        let text = super::squash(text);
        if text.is_empty() {
            continue;
        }
        if let Some(prev) = last {
            line.push_str(if col.saturating_sub(prev) > 1 { " |  | " } else { " | " });
        }
        line.push_str(&text);
        last = Some(*col);
    }
    if !line.is_empty() {
        sink.push(&line);
        sink.line_break();
    }
}

/// Dates as ISO dates (calamine gives Excel serial numbers), everything else as displayed.
fn cell_text(value: &Data) -> String {
    match value {
        Data::DateTime(dt) if dt.is_datetime() => {
            let (y, mo, d, h, mi, s, _) = dt.to_ymd_hms_milli();
            match (dt.as_f64() < 1.0, (h, mi, s) == (0, 0, 0)) {
                (true, _) => format!("{h:02}:{mi:02}:{s:02}"),
                (false, true) => format!("{y:04}-{mo:02}-{d:02}"),
                (false, false) => format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"),
            }
        }
        other => other.to_string(),
    }
}

pub(super) fn record_count(ctx: &mut Ctx, n: usize) -> Result<()> {
    ctx.check_pages(n)?;
    ctx.metadata.insert("pages".into(), n.into());
    Ok(())
}

/// One page per sheet, headed by its name and filled by `fill`, which says whether the sheet
/// could be read: a sheet that fails gives an empty page, and only a workbook where every
/// sheet fails is an error.
fn sheet_pages(names: &[String], ctx: &mut Ctx, mut fill: impl FnMut(&str, &mut Sink) -> Result<bool>) -> Result<Vec<Page>> {
    record_count(ctx, names.len())?;
    let mut pages = Vec::with_capacity(names.len());
    let mut failed = 0;
    for (n, name) in names.iter().enumerate() {
        ctx.check()?;
        let mut sink = begin_sheet(name);
        failed += !fill(name, &mut sink)? as usize;
        pages.push(sink.into_page(Some(n as u32 + 1)));
    }
    if failed > 0 && failed == pages.len() {
        return Err(corrupt_sheet("no sheet could be read"));
    }
    Ok(pages)
}

/// XLS: calamine reads each sheet into a range.
fn range_pages<'b, R>(mut book: R, ctx: &mut Ctx) -> Result<Vec<Page>>
where
    R: Reader<Cursor<&'b [u8]>>,
    R::Error: std::fmt::Display,
{
    let names = book.sheet_names();
    sheet_pages(&names, ctx, |name, sink| {
        Ok(guarded(|| {
            let range = book.worksheet_range(name).map_err(|e| e.to_string())?;
            for row in range.rows() {
                let mut cells: Vec<_> = row.iter().enumerate().map(|(c, v)| (c as u32, cell_text(v))).collect();
                push_row(sink, &mut cells);
            }
            Ok(())
        })
        .is_ok())
    })
}

/// XLSX: cells streamed in file order and grouped by row, then the sheet's text boxes and charts.
fn xlsx_pages(mut book: Xlsx<Cursor<&[u8]>>, pkg: &mut Package, ctx: &mut Ctx) -> Result<Vec<Page>> {
    let names = book.sheet_names();
    let drawings = sheet_drawings(pkg)?;
    sheet_pages(&names, ctx, |name, sink| {
        let read = guarded(|| {
            let mut cells = book.worksheet_cells_reader(name).map_err(|e| e.to_string())?;
            let mut row: Vec<(u32, String)> = Vec::new();
            let mut row_number = None;
            while let Some(cell) = cells.next_cell().map_err(|e| e.to_string())? {
                let (r, c) = cell.get_position();
                if row_number != Some(r) {
                    push_row(sink, &mut row);
                    row.clear();
                    row_number = Some(r);
                }
                row.push((c, cell_text(&Data::from(cell.get_value().clone()))));
            }
            push_row(sink, &mut row);
            Ok(())
        });
        for part in drawings.get(name).into_iter().flatten() {
            shapes(pkg, part, Mode::Slide, sink)?;
            for rel in pkg.rels(part)?.into_iter().filter(|r| r.kind == "chart") {
                super::chart::chart(pkg, &rel.target, sink)?;
            }
        }
        Ok(read.is_ok())
    })
}

/// The drawing parts (text boxes, shapes) of each sheet, by sheet name.
fn sheet_drawings(pkg: &mut Package) -> Result<HashMap<String, Vec<String>>> {
    let book = "xl/workbook.xml";
    let Some(xml) = pkg.read_text(book)? else { return Ok(HashMap::new()) };
    let mut sheets = Vec::new();
    walk_xml(&xml, book, |ev| {
        if let Ev::Open(e) = ev {
            if let ("sheet", Some(name), Some(id)) = (local(e), attr(e, "name"), attr(e, "r:id")) {
                sheets.push((name, id));
            }
        }
        Ok(())
    })?;
    let rels: HashMap<String, String> = pkg.rels(book)?.into_iter().map(|r| (r.id, r.target)).collect();
    let mut drawings = HashMap::new();
    for (name, id) in sheets {
        let Some(sheet) = rels.get(&id) else { continue };
        let parts: Vec<String> = pkg.rels(sheet)?.into_iter().filter(|r| r.kind == "drawing").map(|r| r.target).collect();
        if !parts.is_empty() {
            drawings.insert(name, parts);
        }
    }
    Ok(drawings)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::Parsed;
    use crate::parse::Heading;

    #[test]
    fn xlsx_rows_with_dates_and_sheet_heading() {
        let parsed = Parsed::of("tika__test-columnar.xlsx");
        let page = &parsed.pages[0];
        assert_eq!(page.headings, vec![Heading { offset: 0, level: 1, title: "testing".into() }]);
        assert!(page.text.starts_with("testing\n\nRecord Number | Square of the Record Number | Description of the Row | Percent Done"));
        // The empty "Percent Increment" cell of row 0 stays as an empty cell.
        assert!(page.text.contains("\n0 | 0 | This is row 0 of 10 | 0 | | 1960-01-01 | 1960-01-01 00:00:01 | 00:00:01\n"), "{:?}", page.text);
        assert!(page.text.ends_with("10 | 100 | This is row 10 of 10 | 1 | 0.9 | 1987-05-19 | 2276-11-19 17:46:40 | 16:24:09"));
        assert_eq!(parsed.meta("author"), "sas user");
    }

    #[test]
    fn legacy_xls() {
        let parsed = Parsed::of("tika__testEXCEL.xls");
        assert_eq!(parsed.pages.iter().map(|p| p.text.as_str()).collect::<Vec<_>>()[1..], ["Feuil2", "Feuil3"]);
        let text = &parsed.pages[0].text;
        assert!(text.starts_with("Feuil1\n\nSample Excel Worksheet - Numbers and their Squares\nNumber | Square\n1 | 1\n2 | 4\n"), "{text:?}");
        assert!(text.ends_with("15 | 225\nWritten and saved in Microsoft Excel X for Mac Service Release 1."));
    }

    #[test]
    fn phonetic_guides_are_not_text() {
        let text = &Parsed::of("tika__testEXCEL_phonetic.xlsx").pages[0].text;
        assert!(text.contains("\n1 | 豊田 | 豊田車会社 | 豊田製品戦略事業統括本部とよたかいしゃトヨタコメント\n"), "{text:?}");
        assert!(!text.contains("トヨ タ"));
    }

    #[test]
    fn xlsx_text_boxes_join_their_sheet() {
        let parsed = Parsed::of("tika__testEXCEL_textbox.xlsx");
        assert_eq!(parsed.pages[0].text, "Sheet1\n\nthis is some autoshape text");
    }
}
