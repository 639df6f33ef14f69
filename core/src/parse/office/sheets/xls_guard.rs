//! calamine reads each XLS sheet into a dense grid spanning its outermost cells, after
//! reserving what the sheet's Dimensions record claims. A damaged or hostile file with one cell
//! at a far corner (or a huge Dimensions record) makes that tens of gigabytes. This pass walks
//! the BIFF records first and refuses a sheet whose grid would exceed the decompression limit.
use crate::error::{DocError, ErrorKind, Result};
use std::io::{Cursor, Read};

/// What calamine allocates per grid cell (a `Cell<Data>` is the larger of the two it uses).
const CELL_BYTES: u64 = std::mem::size_of::<calamine::Cell<calamine::Data>>() as u64;

pub fn check(bytes: &[u8], limit_bytes: u64) -> Result<()> {
    let stream = workbook_stream(bytes)?;
    let mut sheet = Extent::default();
    let mut depth = 0usize;
    let mut at = 0;
    while at + 4 <= stream.len() {
        let kind = u16::from_le_bytes([stream[at], stream[at + 1]]);
        let len = u16::from_le_bytes([stream[at + 2], stream[at + 3]]) as usize;
        let data = &stream[at + 4..(at + 4 + len).min(stream.len())];
        at += 4 + len;
        match kind {
            // BOF starts a substream (globals, a sheet, or a chart nested in a sheet).
            0x0809 => {
                depth += 1;
                if depth == 1 {
                    sheet = Extent::default();
                }
            }
            0x000A => {
                if depth == 1 {
                    sheet.check(limit_bytes)?;
                }
                depth = depth.saturating_sub(1);
            }
            // calamine skips nested substreams; so does this.
            _ if depth > 1 => {}
            0x0200 => sheet.claimed = sheet.claimed.max(dimensions_cells(data)),
            // Number, Label, RString, BoolErr, RK, LabelSst, Formula: row and column first.
            0x0203 | 0x0204 | 0x00D6 | 0x0205 | 0x027E | 0x00FD | 0x0006 if data.len() >= 4 => {
                let (row, col) = (u16_at(data, 0), u16_at(data, 2));
                sheet.add(row, col);
            }
            // MulRk: row, first column, …, last column.
            0x00BD if data.len() >= 6 => {
                let row = u16_at(data, 0);
                sheet.add(row, u16_at(data, 2));
                sheet.add(row, u16_at(data, data.len() - 2));
            }
            _ => {}
        }
    }
    sheet.check(limit_bytes)
}

/// The Workbook stream, read by the `cfb` crate, which validates sector chains: calamine's own
/// reader follows a cyclic chain forever, growing without bound.
fn workbook_stream(bytes: &[u8]) -> Result<Vec<u8>> {
    let read = || -> std::io::Result<Vec<u8>> {
        let mut file = cfb::CompoundFile::open(Cursor::new(bytes))?;
        let mut stream = file.open_stream("/Workbook").or_else(|_| file.open_stream("/Book"))?;
        let mut data = Vec::new();
        // A stream cannot be longer than the file that holds it.
        (&mut stream).take(bytes.len() as u64).read_to_end(&mut data)?;
        Ok(data)
    };
    match std::panic::catch_unwind(read) {
        Ok(Ok(data)) => Ok(data),
        Ok(Err(e)) => Err(super::corrupt_sheet(&format!("damaged XLS compound file: {e}"))),
        Err(_) => Err(super::corrupt_sheet("damaged XLS compound file")),
    }
}

fn u16_at(data: &[u8], at: usize) -> u32 {
    u32::from(u16::from_le_bytes([data[at], data[at + 1]]))
}

/// Cells calamine reserves for a Dimensions record, read as calamine reads it.
fn dimensions_cells(data: &[u8]) -> u64 {
    let u32_at = |at: usize| u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
    let (first_row, last_row, mut first_col, last_col) = match data.len() {
        10 => (u16_at(data, 0), u16_at(data, 2), u16_at(data, 4), u16_at(data, 6)),
        14 | 16 => (u32_at(0), u32_at(4), u16_at(data, 8), u16_at(data, 10)),
        _ => return 0,
    };
    if first_col > 0xFF || last_col < first_col {
        first_col = 0;
    }
    if last_row == 0 || last_col == 0 {
        return 1;
    }
    // calamine's `end - start + 1` in u32 wraps (release builds) when the record is inverted.
    let rows = (last_row - 1).wrapping_sub(first_row).wrapping_add(1);
    let cols = (last_col - 1).wrapping_sub(first_col).wrapping_add(1);
    u64::from(rows).saturating_mul(u64::from(cols))
}

/// The outermost cells of one sheet and the size its Dimensions record claims.
#[derive(Default)]
struct Extent {
    bounds: Option<(u32, u32, u32, u32)>,
    claimed: u64,
}

impl Extent {
    fn add(&mut self, row: u32, col: u32) {
        let (r0, r1, c0, c1) = self.bounds.unwrap_or((row, row, col, col));
        self.bounds = Some((r0.min(row), r1.max(row), c0.min(col), c1.max(col)));
    }

    fn check(&self, limit_bytes: u64) -> Result<()> {
        let grid = self.bounds.map_or(0, |(r0, r1, c0, c1)| u64::from(r1 - r0 + 1) * u64::from(c1 - c0 + 1));
        let cells = grid.max(self.claimed);
        if cells.saturating_mul(CELL_BYTES) <= limit_bytes {
            return Ok(());
        }
        Err(DocError::new(
            ErrorKind::TooLarge,
            format!(
                "an XLS sheet spans {cells} cells ({} MB in memory), more than docchat.max_decompressed_size allows",
                cells.saturating_mul(CELL_BYTES) >> 20
            ),
        )
        .with_hint("save the workbook as .xlsx (read cell by cell, without this limit) or raise docchat.max_decompressed_size"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> Vec<u8> {
        std::fs::read(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
    }

    #[test]
    fn real_workbooks_pass() {
        check(&crate::parse::shared_file("corpus/office/tika__testEXCEL.xls"), 1 << 20).unwrap();
    }

    #[test]
    fn cyclic_sector_chains_are_refused_before_calamine() {
        // Found by fuzz/run.sh: calamine followed the cycle for minutes, growing to ~15 GB.
        let err = check(&file("../fuzz/regressions/xls-calamine-runaway.xls"), 512 << 20).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Corrupt, "{err}");
    }

    /// A compound file whose Workbook stream holds `records` (type, data).
    fn xls_of(records: &[(u16, Vec<u8>)]) -> Vec<u8> {
        use std::io::Write;
        let mut stream = Vec::new();
        for (kind, data) in records {
            stream.extend_from_slice(&kind.to_le_bytes());
            stream.extend_from_slice(&(data.len() as u16).to_le_bytes());
            stream.extend_from_slice(data);
        }
        let mut file = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
        file.create_stream("/Workbook").unwrap().write_all(&stream).unwrap();
        file.into_inner().into_inner()
    }

    fn number(row: u16, col: u16) -> (u16, Vec<u8>) {
        (0x0203, [&row.to_le_bytes()[..], &col.to_le_bytes(), &[0; 10]].concat())
    }

    #[test]
    fn a_sheet_spanning_a_huge_grid_is_refused() {
        let (bof, eof) = ((0x0809, vec![0; 16]), (0x000A, vec![]));
        let corners = xls_of(&[bof.clone(), eof.clone(), bof.clone(), number(0, 0), number(65535, 255), eof.clone()]);
        let err = check(&corners, 512 << 20).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TooLarge, "{err}");
        assert!(err.to_string().contains("16777216 cells"), "{err}");
        // The same two cells a few rows apart, or inside a chart nested in the sheet, are fine.
        check(&xls_of(&[bof.clone(), number(0, 0), number(9, 3), eof.clone()]), 512 << 20).unwrap();
        check(&xls_of(&[bof.clone(), bof.clone(), number(0, 0), number(65535, 255), eof.clone(), eof.clone()]), 512 << 20).unwrap();
        // A Dimensions record claiming four billion rows is refused before calamine reserves them.
        let claim = (0x0200, [&0u32.to_le_bytes()[..], &u32::MAX.to_le_bytes(), &0u16.to_le_bytes(), &4u16.to_le_bytes(), &[0, 0]].concat());
        assert_eq!(check(&xls_of(&[bof, claim, eof]), 512 << 20).unwrap_err().kind, ErrorKind::TooLarge);
    }

    #[test]
    fn dimensions_are_read_like_calamine() {
        let biff8 =
            |r0: u32, r1: u32, c0: u16, c1: u16| [&r0.to_le_bytes()[..], &r1.to_le_bytes(), &c0.to_le_bytes(), &c1.to_le_bytes(), &[0, 0]].concat();
        assert_eq!(dimensions_cells(&biff8(0, 16, 0, 2)), 32);
        assert_eq!(dimensions_cells(&biff8(0, u32::MAX, 0, 256)), u64::from(u32::MAX) * 256);
        assert_eq!(dimensions_cells(&biff8(0, 0, 0, 0)), 1);
        assert_eq!(dimensions_cells(&biff8(10, 5, 0, 1)), u64::from(u32::MAX) - 4, "inverted rows wrap");
        assert_eq!(dimensions_cells(&[0; 3]), 0);
    }
}
