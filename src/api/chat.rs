//! docchat_chat(): the context docchat_chat_context builds, sent to the configured
//! OpenAI-compatible endpoint; the answer comes back with the passages it cites. The HTTP call
//! runs on a helper thread that never touches Postgres, so a cancel or statement_timeout ends
//! the statement at once; the thread finishes by itself within docchat.chat_timeout.
use super::chat_context::SearchOptions;
use crate::pg::error::{raise, serve_interrupts, OrRaise};
use crate::settings::{self, ChatSettings};
use docchat_core::chat::{self, Breaker, Completion, Endpoint};
use docchat_core::{DocError, ErrorKind};
use pgrx::prelude::*;
use pgrx::shmem::PGRXSharedMemory;
use pgrx::{pg_shmem_init, JsonB, PgAtomic};
use serde_json::{json, Value};
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Default)]
pub struct BreakerState {
    failures: AtomicU64,
    open_until_ms: AtomicU64,
}

// SAFETY: two atomics, valid at any address and in any process.
unsafe impl PGRXSharedMemory for BreakerState {}

// SAFETY: the name is docchat's own.
static SHARED_BREAKER: PgAtomic<BreakerState> = unsafe { PgAtomic::new(c"docchat chat breaker") };
/// Without preloading there is no shared memory: each session keeps its own breaker.
static SESSION_BREAKER: BreakerState = BreakerState { failures: AtomicU64::new(0), open_until_ms: AtomicU64::new(0) };

/// In the postmaster, while preloading: one breaker for every session.
pub fn init_shared_memory() {
    // SAFETY: a flag the postmaster sets while it loads shared_preload_libraries.
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        pg_shmem_init!(SHARED_BREAKER);
    }
}

fn breaker(s: &ChatSettings) -> Breaker<'static> {
    let state = if crate::workers::model_worker::preloaded() { SHARED_BREAKER.get() } else { &SESSION_BREAKER };
    Breaker { failures: &state.failures, open_until_ms: &state.open_until_ms, threshold: s.breaker_failures, cooldown: s.breaker_cooldown }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile, parallel_unsafe)]
fn docchat_chat(
    message: Option<&str>,
    history: default!(Option<JsonB>, "'[]'"),
    k: default!(Option<i32>, 8),
    max_context_tokens: default!(Option<i32>, 2000),
    threshold: default!(Option<f64>, 0.3),
    model: default!(Option<&str>, "NULL"),
    mode: default!(Option<&str>, "'hybrid'"),
    filter: default!(Option<JsonB>, "NULL"),
    temperature: default!(Option<f64>, "NULL"),
    max_tokens: default!(Option<i32>, "NULL"),
) -> JsonB {
    let s = settings::chat();
    // model names the embedding model searched with; the chat model is docchat.chat_model.
    let search_model = model;
    let (endpoint, model) = endpoint(&s).or_raise(Some("docchat_chat"));
    if let Some(t) = temperature.filter(|t| !(0.0..=2.0).contains(t)) {
        raise(DocError::new(ErrorKind::InvalidArgument, format!("temperature must be between 0 and 2, not {t}")), Some("docchat_chat"));
    }
    if let Some(m) = max_tokens.filter(|m| *m < 1 || *m > s.max_tokens) {
        raise(
            DocError::new(ErrorKind::InvalidArgument, format!("max_tokens must be between 1 and {}, not {m}", s.max_tokens))
                .with_hint("docchat.chat_max_tokens (superuser) sets the largest answer a call may ask for"),
            Some("docchat_chat"),
        );
    }
    let breaker = breaker(&s);
    breaker.check(now_ms()).or_raise(Some("docchat_chat"));
    let search = SearchOptions { threshold, model: search_model, mode, filter: filter.map(|f| f.0) };
    let context = super::chat_context::build("docchat_chat", message, history, k, max_context_tokens, search);
    let body = chat::request_body(&model, &context["messages"], temperature, max_tokens);
    let started = Instant::now();
    let result = complete_interruptibly(endpoint, body);
    // A timeout the session chose shorter than the server's says nothing about the endpoint.
    let outcome = result.as_ref().map(|_| ());
    if s.timeout_is_the_servers || !matches!(&outcome, Err(e) if e.kind == ErrorKind::ChatTimeout) {
        breaker.record(outcome, now_ms());
    }
    let done = result.or_raise(Some("docchat_chat"));
    JsonB(answer_json(done, &context, &model, started.elapsed()))
}

/// docchat_health()'s view of the chat endpoint (never the key itself).
pub fn health() -> Value {
    let s = settings::chat();
    let b = breaker(&s);
    let key = match (&s.api_key, &s.api_key_file) {
        (Some(_), _) => "docchat.chat_api_key".to_string(),
        (None, Some(path)) => path.display().to_string(),
        (None, None) => "none".to_string(),
    };
    json!({
        "configured": s.url.is_some() && s.model.is_some(),
        "url": s.url.as_deref().map(chat::completions_url),
        "model": s.model,
        "api_key_from": key,
        "consecutive_failures": b.failures.load(std::sync::atomic::Ordering::Relaxed),
        "breaker_open": b.is_open(now_ms()),
    })
}

fn endpoint(s: &ChatSettings) -> Result<(Endpoint, String), DocError> {
    let (Some(url), Some(model)) = (s.url.clone(), s.model.clone()) else {
        return Err(DocError::new(ErrorKind::ChatUnconfigured, "no chat endpoint is configured").with_hint(
            "a superuser sets docchat.chat_url (e.g. ALTER SYSTEM SET docchat.chat_url = 'https://api.openai.com/v1'), \
             docchat.chat_model and docchat.chat_api_key_file; docchat_chat_context builds the same prompt without an endpoint",
        ));
    };
    let api_key = match (&s.api_key, &s.api_key_file) {
        (Some(key), _) => Some(key.clone()),
        (None, Some(path)) => {
            let key = std::fs::read_to_string(path).map_err(|e| {
                DocError::new(ErrorKind::ChatUnconfigured, format!("cannot read docchat.chat_api_key_file {}: {e}", path.display()))
                    .with_hint("the file must be readable by the database server's operating-system user")
            })?;
            Some(key.trim().to_string()).filter(|k| !k.is_empty())
        }
        (None, None) => None,
    };
    Ok((Endpoint { url, api_key, timeout: s.timeout }, model))
}

fn complete_interruptibly(endpoint: Endpoint, body: Value) -> Result<Completion, DocError> {
    let (tx, rx) = mpsc::channel();
    docchat_core::threads::spawn(std::thread::Builder::new().name("docchat-chat".into()), move || {
        let _ = tx.send(chat::complete(&endpoint, &body));
    })
    .map_err(|e| DocError::new(ErrorKind::ChatFailed, format!("cannot start the chat request thread: {e}")))?;
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(result) => return result,
            Err(mpsc::RecvTimeoutError::Timeout) => serve_interrupts(),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(DocError::new(ErrorKind::ChatFailed, "the chat request thread stopped without a result"))
            }
        }
    }
}

/// `citations` are the context passages the answer cites, in the order it first cites them;
/// `context` is every passage the endpoint was given.
fn answer_json(done: Completion, context: &Value, asked_model: &str, took: Duration) -> Value {
    let passages = context["context"].as_array().cloned().unwrap_or_default();
    let citations: Vec<Value> =
        chat::cited_numbers(&done.answer).into_iter().filter_map(|n| passages.iter().find(|p| p["n"].as_u64() == Some(n as u64)).cloned()).collect();
    json!({
        "answer": done.answer,
        "citations": citations,
        "context": passages,
        "model": done.model.unwrap_or_else(|| asked_model.to_string()),
        "finish_reason": done.finish_reason,
        "usage": done.usage,
        "latency_ms": took.as_millis() as u64,
    })
}
