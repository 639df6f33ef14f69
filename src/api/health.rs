//! docchat_health(): what serves embeddings and whether it is well.
use crate::embedding::text::{backend_model, embeds_in_worker};
use crate::embedding::worker_client;
use crate::pg::standby::select_one;
use crate::settings;
use crate::workers::model_worker;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};

#[pg_extern(volatile, parallel_safe)]
fn docchat_health() -> JsonB {
    let worker = if !model_worker::preloaded() {
        json!({"preloaded": false, "running": false,
               "note": "docchat is not in shared_preload_libraries: every session loads its own copy of the model"})
    } else {
        match worker_client::stats_within(std::time::Duration::ZERO) {
            Ok(text) => {
                let mut v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if let Some(o) = v.as_object_mut() {
                    o.insert("preloaded".into(), true.into());
                    o.insert("running".into(), true.into());
                }
                v
            }
            Err(e) => json!({"preloaded": true, "running": false, "error": e.message}),
        }
    };
    let pgvector = select_one::<String>("SELECT extversion::text FROM pg_extension WHERE extname = 'vector'", &[]).ok().flatten();
    let session_model = backend_model().map(|(path, dim, device)| json!({"model": path, "dimension": dim, "device": device}));
    let (entries, hits) = crate::embedding::text::query_cache_stats();
    let query_cache = json!({"entries": entries, "hits": hits, "window_ms": settings::query_cache_window().as_millis() as u64});
    JsonB(json!({
        "embedding": if embeds_in_worker() { "model worker" } else { "this session" },
        "models_dir": settings::models_dir().display().to_string(),
        "runtime_library": settings::runtime_library().display().to_string(),
        "model_worker": worker,
        "session_model": session_model,
        "pgvector": pgvector,
        "chat": super::chat::health(),
        "ingest": ingest(),
        "query_cache": query_cache,
        // A standby serves reads; its searches are not logged (it cannot write).
        "standby": crate::pg::standby::is_standby(),
        "searches_logged": super::search::searches_logged(),
        "clip": super::clip::health(),
        "tesseract": tesseract(),
        "disk_bytes": select_one::<i64>(
            "SELECT sum(pg_total_relation_size(c.oid))::int8 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'docchat' AND c.relkind IN ('r', 'm')",
            &[]
        ).ok().flatten(),
    }))
}

/// Ingest workers and launcher alive (counted with definer rights), and the caller's queue (its
/// own rows, by row-level security). Other databases' workers are a superuser's business.
fn ingest() -> Value {
    let query = "SELECT docchat.ingest_workers_running() || jsonb_build_object( \
            'queue_depth', s.queue_depth, 'failed_jobs', s.failed_jobs, \
            'oldest_pending_seconds', round(extract(epoch FROM s.oldest_pending_age)::numeric, 1)) \
         FROM docchat.stats s";
    select_one::<JsonB>(query, &[]).ok().flatten().map(|j| j.0).unwrap_or(Value::Null)
}

fn tesseract() -> Value {
    let languages = settings::parse_options(None).ocr_languages;
    match docchat_core::parse::ocr::status(&languages) {
        Ok((version, installed)) => json!({"available": true, "version": version, "languages": installed, "ocr_languages": languages}),
        Err(e) => json!({"available": false, "error": e.message, "hint": e.hint, "ocr_languages": languages}),
    }
}
