//! RTF → text.
use super::{Ctx, Page};
use crate::error::{DocError, ErrorKind, Result};

pub fn extract(_bytes: &[u8], _ctx: &mut Ctx) -> Result<Vec<Page>> {
    Err(DocError::new(ErrorKind::Unsupported, "RTF is not supported yet"))
}
