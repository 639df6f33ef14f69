//! ZIP- and OLE-based office documents: DOCX, PPTX, XLSX/XLS/ODS, ODT/ODP, EPUB.
use super::{Ctx, Page};
use crate::detect::Format;
use crate::error::{DocError, ErrorKind, Result};

pub fn extract(format: Format, _bytes: &[u8], _ctx: &mut Ctx) -> Result<Vec<Page>> {
    Err(DocError::new(ErrorKind::Unsupported, format!("{} is not supported yet", format.name())))
}
