//! docchat_health(): what serves embeddings and whether it is well.
use super::embed::{backend_model, embeds_in_worker};
use super::worker_client;
use crate::{model_worker, settings};
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
    let pgvector = Spi::get_one::<String>("SELECT extversion::text FROM pg_extension WHERE extname = 'vector'").ok().flatten();
    let session_model = backend_model().map(|(path, dim, device)| json!({"model": path, "dimension": dim, "device": device}));
    JsonB(json!({
        "embedding": if embeds_in_worker() { "model worker" } else { "this session" },
        "models_dir": settings::models_dir().display().to_string(),
        "runtime_library": settings::runtime_library().display().to_string(),
        "model_worker": worker,
        "session_model": session_model,
        "pgvector": pgvector,
        "chat": super::chat::health(),
    }))
}
