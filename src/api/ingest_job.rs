//! One queued document, run by an ingest worker: claim → parse → chunk and embed (progress
//! committed as it goes) → chunks and status `ready` in one last transaction. A failure queues
//! the job again after its backoff, or fails it for good: at once when the document itself is
//! at fault (corrupt, unsupported, no text), else after its last attempt.
use super::ingest::{cached_embeddings, chunk_and_embed, document_metadata, insert_chunks, Embedded};
use super::isolate::parse_isolated;
use super::models::Model;
use crate::settings;
use docchat_core::parse::Parsed;
use docchat_core::{DocError, ErrorKind};
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::{JsonB, PgTryBuilder, Uuid};
use serde_json::{Map, Value};

/// Runs `f` in a transaction of its own (a worker is not in one between steps).
pub fn in_transaction<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: called from a background worker's main loop, outside any transaction.
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let result = f();
    unsafe {
        pg_sys::PopActiveSnapshot();
        pg_sys::CommitTransactionCommand();
    }
    result
}

struct Job {
    id: Uuid,
    owner: String,
    content: Vec<u8>,
    options: Map<String, Value>,
    model: Model,
}

impl Job {
    fn option(&self, key: &str) -> Option<&str> {
        self.options.get(key).and_then(Value::as_str)
    }
    fn option_i32(&self, key: &str) -> Option<i32> {
        self.options.get(key).and_then(Value::as_i64).map(|v| v as i32)
    }
}

/// Claims the next due job and runs it; false when none is due.
pub fn run_next_job() -> bool {
    let Some(id) = in_transaction(|| Spi::get_one::<Uuid>("SELECT docchat.claim_ingest_job()").unwrap_or_else(|e| error!("docchat: claiming a job failed: {e}")))
    else {
        return false;
    };
    let outcome = PgTryBuilder::new(|| run(id))
        .catch_others(|e| {
            // A Postgres ERROR inside a step: leave that step's transaction; the job is still ours.
            unsafe { pg_sys::AbortCurrentTransaction() };
            let message = match e {
                CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r.message().to_string(),
                CaughtError::RustPanic { ereport, .. } => ereport.message().to_string(),
            };
            Err(DocError::new(ErrorKind::ModelFailure, message))
        })
        .execute();
    if let Err(e) = outcome {
        let permanent = !e.kind.is_transient();
        let text = match &e.hint {
            Some(hint) => format!("{} (hint: {hint})", e.message),
            None => e.message.clone(),
        };
        in_transaction(|| {
            Spi::run_with_args("SELECT docchat.fail_ingest_job($1, $2, $3)", &[id.into(), text.as_str().into(), permanent.into()])
                .unwrap_or_else(|e| error!("docchat: recording a failed job failed: {e}"))
        });
    }
    true
}

fn run(id: Uuid) -> Result<(), DocError> {
    let Some(job) = in_transaction(|| load(id)) else { return Ok(()) };
    // The worker's own limits (the server's) apply, whatever the queueing session had set.
    if job.content.len() > settings::max_document_bytes() {
        return Err(DocError::new(ErrorKind::TooLarge, format!("document is {} bytes, more than docchat.max_document_size allows", job.content.len()))
            .with_hint("raise docchat.max_document_size in postgresql.conf, or split the document"));
    }
    let parsed = parse_isolated(&job.content, job.option("filename"), job.option("mime_type"), settings::parse_options(job.option("password")))?;
    let pages = parsed.pages.len() as i32;
    in_transaction(|| {
        Spi::run_with_args(
            "UPDATE docchat.ingest_jobs SET pages_done = $2, pages_total = $2, phase_started_at = now(), updated_at = now() WHERE document_id = $1; \
             UPDATE docchat.documents SET status = 'embedding' WHERE id = $1",
            &[id.into(), pages.into()],
        )
        .unwrap_or_else(|e| error!("docchat: recording progress failed: {e}"))
    });
    let cfg = settings::chunk_config(job.option_i32("chunk_size"), job.option_i32("chunk_overlap"), job.model.max_seq_len);
    let mut report = |done: usize, total: usize| {
        in_transaction(|| {
            Spi::run_with_args(
                "UPDATE docchat.ingest_jobs SET chunks_done = $2, chunks_total = $3, updated_at = now() WHERE document_id = $1",
                &[id.into(), (done as i32).into(), (total as i32).into()],
            )
            .unwrap_or_else(|e| error!("docchat: recording progress failed: {e}"))
        })
    };
    let embedded = chunk_and_embed(
        &parsed,
        &job.model,
        &cfg,
        |texts| in_transaction(|| cached_embeddings(&job.owner, &job.model.name, texts)),
        &mut report,
    )?;
    in_transaction(|| finish(&job, &parsed, embedded));
    Ok(())
}

/// The job's bytes and settings; None when its document was deleted meanwhile (or is not the
/// job owner's: claim_ingest_job skips those).
fn load(id: Uuid) -> Option<Job> {
    let row = Spi::connect(|client| {
        let t = client.select(
            "SELECT j.content, j.options, d.model, d.owner FROM docchat.ingest_jobs j JOIN docchat.documents d ON d.id = j.document_id AND d.owner = j.owner \
             WHERE j.document_id = $1",
            Some(1),
            &[id.into()],
        )?;
        if t.is_empty() {
            return Ok(None);
        }
        let row = t.first();
        Ok::<_, pgrx::spi::Error>(Some((row.get::<Vec<u8>>(1)?, row.get::<JsonB>(2)?, row.get::<String>(3)?, row.get::<String>(4)?)))
    })
    .unwrap_or_else(|e| error!("docchat: loading a job failed: {e}"))?;
    let (Some(content), Some(options), Some(model), Some(owner)) = row else { return None };
    let options = match options.0 {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    Some(Job { id, owner, content, options, model: Model::resolve(Some(&model)) })
}

/// The chunks and the document's final state, together; a document deleted meanwhile is left alone.
fn finish(job: &Job, parsed: &Parsed, embedded: Embedded) {
    let Embedded { chunks, embeddings, cached, image_vectors } = embedded;
    let chunks = chunks.as_slice();
    let fail = |e: pgrx::spi::Error| -> ! { error!("docchat: storing the document failed: {e}") };
    let user_metadata = match job.options.get("metadata") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    let metadata = Value::Object(document_metadata(parsed, user_metadata));
    Spi::connect_mut(|client| {
        let t = client
            .update(
                "UPDATE docchat.documents SET status = 'ready', ingested_at = now(), mime_type = $2, metadata = $3, n_chunks = $4, n_chars = $5, \
                        ts_config = docchat.text_search_config($3->>'language') \
                 WHERE id = $1 RETURNING owner, ts_config",
                Some(1),
                &[job.id.into(), parsed.format.mime_type().into(), JsonB(metadata).into(), (chunks.len() as i32).into(), (parsed.n_chars() as i32).into()],
            )
            .unwrap_or_else(|e| fail(e));
        if t.is_empty() {
            return;
        }
        let (owner, ts_config) = t.first().get_two::<String, String>().unwrap_or_else(|e| fail(e));
        let (owner, ts_config) = (owner.expect("owner"), ts_config.expect("ts_config"));
        // An earlier attempt never committed chunks; this makes sure of it.
        client.update("DELETE FROM docchat.chunks WHERE document_id = $1", None, &[job.id.into()]).unwrap_or_else(|e| fail(e));
        client.update("DELETE FROM docchat.images WHERE document_id = $1", None, &[job.id.into()]).unwrap_or_else(|e| fail(e));
        insert_chunks(client, job.id, &owner, &ts_config, &job.model.name, chunks, embeddings);
        super::clip::insert_images(client, job.id, &owner, &parsed.images, image_vectors);
        client
            .update(
                "UPDATE docchat.ingest_jobs SET finished_at = now(), updated_at = now(), content = NULL, options = options - 'password', \
                        chunks_done = $2, chunks_total = $2, chunks_cached = $3, worker_pid = NULL, last_error = NULL WHERE document_id = $1",
                None,
                &[job.id.into(), (chunks.len() as i32).into(), (cached as i32).into()],
            )
            .unwrap_or_else(|e| fail(e));
    });
}
