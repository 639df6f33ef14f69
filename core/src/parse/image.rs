//! Images → text by OCR.
use super::{Ctx, Page};
use crate::detect::ImageKind;
use crate::error::{DocError, ErrorKind, Result};

pub fn extract(kind: ImageKind, _bytes: &[u8], _ctx: &mut Ctx) -> Result<Vec<Page>> {
    Err(DocError::new(ErrorKind::Unsupported, format!("{kind:?} images are not supported yet")))
}
