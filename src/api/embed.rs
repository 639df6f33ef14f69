//! Embedding for SQL: through the model worker when docchat is preloaded (one model per
//! cluster), else with a model this session loads on first use and keeps.
use super::error::OrRaise;
use super::models::Model;
use super::worker_client;
use crate::{model_worker, settings};
use docchat_core::embed::{Embedder, TextTokenizer};
use docchat_core::{DocError, ErrorKind};
use parking_lot::Mutex;
use pgrx::prelude::*;
use std::path::PathBuf;
use std::time::Instant;

struct Loaded<T> {
    path: PathBuf,
    value: T,
}

static MODEL: Mutex<Option<Loaded<Embedder>>> = Mutex::new(None);
static TOKENIZER: Mutex<Option<Loaded<TextTokenizer>>> = Mutex::new(None);

/// This session's recent single-text embeddings (search queries, mostly): a query repeated
/// within docchat.query_cache_window reuses its vector instead of running the model again. Entries
/// and hit counts are per owner: JWT subjects sharing a pooled connection never see each
/// other's queries, not even as a hit count.
struct QueryCache {
    entries: Vec<CachedQuery>,
    hits: Vec<(String, u64)>,
}
struct CachedQuery {
    at: Instant,
    owner: String,
    model: String,
    text: String,
    vector: Vec<f32>,
}
const QUERY_CACHE_ENTRIES: usize = 64;
static QUERY_CACHE: Mutex<QueryCache> = Mutex::new(QueryCache { entries: Vec::new(), hits: Vec::new() });

fn embed_query(model: &Model, text: &str) -> Result<Vec<f32>, DocError> {
    let window = settings::query_cache_window();
    if window.is_zero() {
        return embed_texts(model, &[text]).map(|mut v| v.remove(0));
    }
    let owner = super::owner::current_owner();
    {
        let mut cache = QUERY_CACHE.lock();
        cache.entries.retain(|e| e.at.elapsed() < window);
        let hit = cache.entries.iter().find(|e| e.owner == owner && e.model == model.name && e.text == text).map(|e| e.vector.clone());
        if let Some(hit) = hit {
            match cache.hits.iter_mut().find(|(o, _)| *o == owner) {
                Some((_, n)) => *n += 1,
                None => cache.hits.push((owner, 1)),
            }
            return Ok(hit);
        }
    }
    let vector = embed_texts(model, &[text])?.remove(0);
    let mut cache = QUERY_CACHE.lock();
    if cache.entries.len() >= QUERY_CACHE_ENTRIES {
        cache.entries.remove(0);
    }
    cache.entries.push(CachedQuery { at: Instant::now(), owner, model: model.name.clone(), text: text.to_string(), vector: vector.clone() });
    Ok(vector)
}

/// (entries, hits) of the caller's own part of this session's query cache, for docchat_health().
pub fn query_cache_stats() -> (usize, u64) {
    let owner = super::owner::current_owner();
    let cache = QUERY_CACHE.lock();
    let entries = cache.entries.iter().filter(|e| e.owner == owner).count();
    (entries, cache.hits.iter().find(|(o, _)| *o == owner).map_or(0, |(_, n)| *n))
}

/// Whether this session's embeddings come from the model worker.
pub fn embeds_in_worker() -> bool {
    model_worker::preloaded() && settings::use_worker()
}

/// One unit vector per text, in order.
pub fn embed_texts(model: &Model, texts: &[&str]) -> Result<Vec<Vec<f32>>, DocError> {
    // Only what the model can read travels to the worker (a 10 MB text is its first ~32 KB).
    let texts: Vec<&str> = texts.iter().map(|t| docchat_core::embed::model_input(t, model.max_seq_len)).collect();
    let texts = texts.as_slice();
    let vectors = if embeds_in_worker() {
        worker_client::embed(&model.key(), texts)?
    } else {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(worker_client::REQUEST_TEXTS) {
            pg_sys::check_for_interrupts!();
            out.extend(with_backend_model(model, |e| e.embed(batch))?);
        }
        out
    };
    match vectors.iter().find(|v| v.len() != model.dimension) {
        Some(v) => Err(DocError::new(
            ErrorKind::ModelFailure,
            format!("model \"{}\" gives {}-dimensional vectors but docchat.models says {}", model.name, v.len(), model.dimension),
        )
        .with_hint("correct the model's row in docchat.models")),
        None => Ok(vectors),
    }
}

/// Runs `f` with this session's own copy of `model`, loaded on first use and kept.
fn with_backend_model<T>(model: &Model, f: impl FnOnce(&mut Embedder) -> Result<T, DocError>) -> Result<T, DocError> {
    let files = model.files();
    let mut slot = MODEL.lock();
    if slot.as_ref().is_none_or(|l| l.path != files.model) {
        *slot = None;
        *slot = Some(Loaded { path: files.model.clone(), value: Embedder::load(&files, settings::backend_run_options())? });
    }
    f(&mut slot.as_mut().expect("loaded above").value)
}

/// Runs `f` with the model's tokenizer (what the chunker counts), loaded once per session.
pub fn with_tokenizer<T>(model: &Model, f: impl FnOnce(&TextTokenizer) -> Result<T, DocError>) -> Result<T, DocError> {
    let files = model.files();
    let mut slot = TOKENIZER.lock();
    if slot.as_ref().is_none_or(|l| l.path != files.tokenizer) {
        *slot = None;
        *slot = Some(Loaded { value: TextTokenizer::load(&files.tokenizer, files.max_seq_len)?, path: files.tokenizer });
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

    /// The embedding as real[]; `docchat_embed(text, model)` casts it to a vector.
    #[pg_extern(stable, parallel_safe)]
    fn embed_real(input: Option<&str>, model: Option<&str>) -> Option<Vec<f32>> {
        let input = input?;
        let model = Model::resolve(model);
        Some(embed_query(&model, input).or_raise(None))
    }

    /// Embeddings of many texts in one call, one row per input (NULL in, NULL out);
    /// `docchat_embed(text[], model)` folds them into a vector[].
    #[pg_extern(stable, parallel_safe)]
    fn embed_real_many(
        inputs: Option<Vec<Option<String>>>,
        model: Option<&str>,
    ) -> TableIterator<'static, (name!(ord, i32), name!(embedding, Option<Vec<f32>>))> {
        let Some(inputs) = inputs else { return TableIterator::new(Vec::new()) };
        let model = Model::resolve(model);
        let present: Vec<&str> = inputs.iter().flatten().map(String::as_str).collect();
        let mut vectors = embed_texts(&model, &present).or_raise(None).into_iter();
        let rows: Vec<_> = inputs.iter().enumerate().map(|(i, t)| (i as i32 + 1, t.as_ref().and_then(|_| vectors.next()))).collect();
        TableIterator::new(rows)
    }
}
