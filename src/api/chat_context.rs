//! docchat_chat_context(): one docchat_search call (with the caller's model, mode, filter and
//! threshold), its hits turned into numbered passages and a prompt by `docchat_core::chat::context`.
use crate::pg::error::raise;
use docchat_core::chat::context::{self, Hit, Request};
use docchat_core::{DocError, ErrorKind};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Map, Value};
use std::ffi::CStr;

/// The search options chat passes on to docchat_search.
pub struct SearchOptions<'a> {
    pub threshold: Option<f64>,
    pub model: Option<&'a str>,
    pub mode: Option<&'a str>,
    pub filter: Option<Value>,
}

#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile, parallel_unsafe)]
fn docchat_chat_context(
    message: Option<&str>,
    history: default!(Option<JsonB>, "'[]'"),
    k: default!(Option<i32>, 8),
    max_context_tokens: default!(Option<i32>, 2000),
    threshold: default!(Option<f64>, 0.3),
    model: default!(Option<&str>, "NULL"),
    mode: default!(Option<&str>, "'hybrid'"),
    filter: default!(Option<JsonB>, "NULL"),
) -> JsonB {
    JsonB(build(
        "docchat_chat_context",
        message,
        history,
        k,
        max_context_tokens,
        SearchOptions { threshold, model, mode, filter: filter.map(|f| f.0) },
    ))
}

/// The context for `message`; errors name `caller`.
pub fn build(
    caller: &str,
    message: Option<&str>,
    history: Option<JsonB>,
    k: Option<i32>,
    max_context_tokens: Option<i32>,
    search: SearchOptions,
) -> Value {
    let fail = |e: DocError| -> ! { raise(e, Some(caller)) };
    let message = message
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| fail(DocError::new(ErrorKind::InvalidArgument, "message is empty").with_hint("pass the user's question")));
    let history = context::parse_history(&history.map_or(Value::Null, |j| j.0)).unwrap_or_else(|e| fail(e));
    let budget = max_context_tokens.filter(|t| *t >= 1).unwrap_or_else(|| {
        let got = max_context_tokens.map_or("NULL".into(), |t| t.to_string());
        fail(DocError::new(ErrorKind::InvalidArgument, format!("max_context_tokens must be positive, got {got}")))
    });
    let query = context::retrieval_query(message, &history);
    // k, threshold, mode and filter are docchat_search's: the same checks, under this name.
    Spi::connect(|c| {
        c.select(
            "SELECT docchat.check_search_args($1, $2, $3, $4, $5, $6)",
            None,
            &[caller.into(), query.as_str().into(), k.into(), search.threshold.into(), search.mode.into(), search.filter.clone().map(JsonB).into()],
        )
        .map(|_| ())
    })
    .unwrap_or_else(|e| error!("{caller}: {e}"));
    let k = k.expect("checked above");
    let hits = search_hits(&query, (k * 2).min(1000), &search);
    let mut options = Map::new();
    options.insert("threshold".into(), json!(search.threshold));
    options.insert("mode".into(), json!(search.mode));
    options.insert("model".into(), json!(search.model));
    options.insert("filter".into(), search.filter.unwrap_or(Value::Null));
    context::build(&Request { message, history: &history, k: k as usize, max_context_tokens: budget as i64, search: options }, hits)
}

fn search_hits(query: &str, k: i32, s: &SearchOptions) -> Vec<Hit> {
    let sql = format!(
        "SELECT document_id::text, filename, page, score, content, char_start, char_end, n_tokens FROM {}.docchat_search($1, $2, $3, $4, $5, $6)",
        extension_schema()
    );
    let args = [query.into(), k.into(), s.threshold.into(), s.model.into(), s.mode.into(), s.filter.clone().map(JsonB).into()];
    Spi::connect(|c| {
        let mut hits = Vec::new();
        for row in c.select(&sql, None, &args)? {
            hits.push(Hit {
                document_id: row.get::<String>(1)?.expect("an id"),
                filename: row.get::<String>(2)?,
                page: row.get::<i32>(3)?,
                score: row.get::<f64>(4)?.unwrap_or(0.0),
                content: row.get::<String>(5)?.unwrap_or_default(),
                char_start: row.get::<i32>(6)?.unwrap_or(0),
                char_end: row.get::<i32>(7)?.unwrap_or(0),
                n_tokens: row.get::<i32>(8)?.unwrap_or(0),
            });
        }
        Ok::<_, pgrx::spi::Error>(hits)
    })
    .unwrap_or_else(|e| error!("docchat_search: {e}"))
}

/// The schema docchat_search lives in (the extension's), quoted: never a caller's look-alike
/// earlier in search_path.
fn extension_schema() -> String {
    // SAFETY: catalog lookups by name and oid on the main thread; get_namespace_name returns a
    // palloc'd NUL-terminated string.
    unsafe {
        let ext = pg_sys::get_extension_oid(c"docchat".as_ptr(), false);
        let name = pg_sys::get_namespace_name(pg_sys::get_extension_schema(ext));
        CStr::from_ptr(pg_sys::quote_identifier(name)).to_string_lossy().into_owned()
    }
}
