//! Embedding for SQL: through the model worker when docchat is preloaded (one model per
//! cluster), else with a model this session loads on first use and keeps.
use super::error::OrRaise;
use super::worker_client;
use crate::{model_worker, settings};
use docchat_core::embed::{Embedder, TextTokenizer};
use docchat_core::DocError;
use parking_lot::Mutex;
use pgrx::prelude::*;
use std::path::PathBuf;

struct Loaded<T> {
    path: PathBuf,
    value: T,
}

static MODEL: Mutex<Option<Loaded<Embedder>>> = Mutex::new(None);
static TOKENIZER: Mutex<Option<Loaded<TextTokenizer>>> = Mutex::new(None);

/// Whether this session's embeddings come from the model worker.
pub fn embeds_in_worker() -> bool {
    model_worker::preloaded() && settings::use_worker()
}

/// One unit vector per text, in order.
pub fn embed_texts(texts: &[&str]) -> Result<Vec<Vec<f32>>, DocError> {
    if embeds_in_worker() {
        return worker_client::embed(&settings::model_dir(), texts);
    }
    let mut out = Vec::with_capacity(texts.len());
    for batch in texts.chunks(worker_client::REQUEST_TEXTS) {
        pg_sys::check_for_interrupts!();
        out.extend(with_backend_model(|e| e.embed(batch))?);
    }
    Ok(out)
}

/// Runs `f` with this session's own model, loading it (again, if docchat.model_dir changed).
fn with_backend_model<T>(f: impl FnOnce(&mut Embedder) -> Result<T, DocError>) -> Result<T, DocError> {
    let files = settings::model_files();
    let mut slot = MODEL.lock();
    if slot.as_ref().is_none_or(|l| l.path != files.model) {
        *slot = None;
        *slot = Some(Loaded { path: files.model.clone(), value: Embedder::load(&files, settings::backend_run_options())? });
    }
    f(&mut slot.as_mut().expect("loaded above").value)
}

/// Runs `f` with the model's tokenizer (what the chunker counts), loaded once per session.
pub fn with_tokenizer<T>(f: impl FnOnce(&TextTokenizer) -> Result<T, DocError>) -> Result<T, DocError> {
    let path = settings::model_files().tokenizer;
    let mut slot = TOKENIZER.lock();
    if slot.as_ref().is_none_or(|l| l.path != path) {
        *slot = None;
        *slot = Some(Loaded { value: TextTokenizer::load(&path)?, path });
    }
    f(&slot.as_ref().expect("loaded above").value)
}

/// What this session has loaded, for docchat_health().
pub fn backend_model() -> Option<(String, usize, &'static str)> {
    MODEL.lock().as_ref().map(|l| (l.path.display().to_string(), l.value.dim, l.value.device))
}

#[pg_schema]
mod docchat {
    use super::*;

    /// The embedding as real[]; `docchat_embed(text)` casts it to a vector.
    #[pg_extern(immutable, strict, parallel_safe)]
    fn embed_real(input: &str) -> Vec<f32> {
        embed_texts(&[input]).or_raise(None).pop().unwrap_or_default()
    }

    /// Embeddings of many texts in one call, one row per input (NULL in, NULL out);
    /// `docchat_embed(text[])` folds them into a vector[].
    #[pg_extern(immutable, strict, parallel_safe)]
    fn embed_real_many(
        inputs: Vec<Option<String>>,
    ) -> TableIterator<'static, (name!(ord, i32), name!(embedding, Option<Vec<f32>>))> {
        let present: Vec<&str> = inputs.iter().flatten().map(String::as_str).collect();
        let mut vectors = embed_texts(&present).or_raise(None).into_iter();
        let rows: Vec<_> = inputs.iter().enumerate().map(|(i, t)| (i as i32 + 1, t.as_ref().and_then(|_| vectors.next()))).collect();
        TableIterator::new(rows)
    }
}
