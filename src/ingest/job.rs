//! One queued document, run by an ingest worker: claim → parse → chunk and embed (progress
//! committed as it goes) → chunks and status `ready` in one last transaction. A failure queues
//! the job again after its backoff, or fails it for good: at once when the document itself is
//! at fault (corrupt, unsupported, no text), else after its last attempt.
use super::isolate::parse_isolated;
use super::pipeline::{check_size, chunk_and_embed};
use super::storage;
use crate::embedding::models::Model;
use crate::settings;
use docchat_core::{DocError, ErrorKind};
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::{PgTryBuilder, Uuid};

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

/// Claims the next due job and runs it; false when none is due.
pub fn run_next_job() -> bool {
    let Some(id) = in_transaction(storage::claim_job) else {
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
        in_transaction(|| storage::fail_job(id, &text, permanent));
    }
    true
}

fn run(id: Uuid) -> Result<(), DocError> {
    // The model is resolved by SQL (docchat.model_for): in the same transaction.
    let loaded = in_transaction(|| storage::load_job(id).map(|job| (Model::resolve(Some(&job.model)), job)));
    let Some((model, job)) = loaded else { return Ok(()) };
    // The worker's own limits (the server's) apply, whatever the queueing session had set.
    check_size(job.content.len(), "raise docchat.max_document_size in postgresql.conf, or split the document")?;
    let parsed = parse_isolated(&job.content, job.option("filename"), job.option("mime_type"), settings::parse_options(job.option("password")))?;
    in_transaction(|| storage::job_parsed(id, parsed.pages.len() as i32));
    let cfg = settings::chunk_config(job.option_i32("chunk_size"), job.option_i32("chunk_overlap"), model.max_seq_len);
    let mut report = |done: usize, total: usize| in_transaction(|| storage::job_progress(id, done, total));
    let embedded =
        chunk_and_embed(&parsed, &model, &cfg, |texts| in_transaction(|| storage::cached_embeddings(&job.owner, &model.name, texts)), &mut report)?;
    let user_metadata = job.metadata();
    // The chunks, the document's final state and the job's end, in one transaction.
    in_transaction(|| {
        Spi::connect_mut(|client| {
            let (chunks, cached) = (embedded.chunks.len(), embedded.cached);
            if storage::store_result(client, id, &model.name, &parsed, user_metadata, embedded) {
                storage::finish_job(client, id, chunks, cached);
            }
        })
    });
    Ok(())
}
