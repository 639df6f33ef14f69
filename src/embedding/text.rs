//! Sentence embeddings: through the model worker when docchat is preloaded (one model per
//! cluster), else with a model this session loads on first use and keeps.
use super::models::Model;
use super::slot::SessionSlot;
use super::worker_client;
use crate::settings;
use crate::workers::model_worker;
use docchat_core::embed::{Embedder, TextTokenizer};
use docchat_core::{DocError, ErrorKind};
use parking_lot::Mutex;
use pgrx::prelude::*;
use std::path::PathBuf;
use std::time::Instant;

static MODEL: SessionSlot<PathBuf, Embedder> = SessionSlot::new();
static TOKENIZER: SessionSlot<PathBuf, TextTokenizer> = SessionSlot::new();

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

pub fn embed_query(model: &Model, text: &str) -> Result<Vec<f32>, DocError> {
    let window = settings::query_cache_window();
    if window.is_zero() {
        return embed_texts(model, &[text]).map(|mut v| v.remove(0));
    }
    let owner = crate::api::current_owner();
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
    let owner = crate::api::current_owner();
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
    MODEL.with(files.model.clone(), |_| Embedder::load(&files, settings::backend_run_options()), f)
}

/// Runs `f` with the model's tokenizer (what the chunker counts), loaded once per session.
pub fn with_tokenizer<T>(model: &Model, f: impl FnOnce(&TextTokenizer) -> Result<T, DocError>) -> Result<T, DocError> {
    let files = model.files();
    TOKENIZER.with(files.tokenizer.clone(), |path| TextTokenizer::load(path, files.max_seq_len), |t| f(t))
}

/// What this session has loaded, for docchat_health().
pub fn backend_model() -> Option<(String, usize, &'static str)> {
    MODEL.peek(|path, e| (path.display().to_string(), e.dim, e.device))
}
