//! Embedding in the backend: one model per backend process, loaded on first use and kept.
use super::error::OrRaise;
use crate::settings;
use docchat_core::embed::{Embedder, ModelFiles};
use docchat_core::DocError;
use parking_lot::Mutex;
use pgrx::prelude::*;

struct Loaded {
    model: std::path::PathBuf,
    embedder: Embedder,
}

static MODEL: Mutex<Option<Loaded>> = Mutex::new(None);

/// Runs `f` with this backend's embedder, loading it (again, if docchat.model_dir changed).
pub fn with_embedder<T>(f: impl FnOnce(&mut Embedder) -> Result<T, DocError>) -> Result<T, DocError> {
    let files: ModelFiles = settings::model_files();
    let mut slot = MODEL.lock();
    if slot.as_ref().is_none_or(|l| l.model != files.model) {
        *slot = None;
        let embedder = Embedder::load(&files, settings::threads())?;
        *slot = Some(Loaded { model: files.model.clone(), embedder });
    }
    f(&mut slot.as_mut().expect("loaded above").embedder)
}

/// Embeds many texts, checking for query cancel between batches.
pub fn embed_all(texts: &[&str]) -> Result<Vec<Vec<f32>>, DocError> {
    let mut out = Vec::with_capacity(texts.len());
    for batch in texts.chunks(64) {
        pg_sys::check_for_interrupts!();
        out.extend(with_embedder(|e| e.embed(batch))?);
    }
    Ok(out)
}

#[pg_schema]
mod docchat {
    use super::*;

    /// The embedding as real[]; `docchat_embed(text)` casts it to a vector.
    #[pg_extern(immutable, strict, parallel_safe)]
    fn embed_real(input: &str) -> Vec<f32> {
        with_embedder(|e| e.embed(&[input])).or_raise(None).pop().unwrap_or_default()
    }
}
