//! docchat_ingest_async: checks what can be checked at once (arguments, format, duplicates),
//! queues the document (status `queued`) and makes sure this database has ingest workers.
use super::error::OrRaise;
use super::ingest::{check_arguments, claim_content, Claim};
use super::models::Model;
use crate::{ingest_worker, settings};
use docchat_core::detect::detect;
use pgrx::prelude::*;
use pgrx::{JsonB, Uuid};
use serde_json::json;

// Definer rights: users cannot write docchat's tables themselves; every row gets the caller as owner.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn docchat_ingest_async(
    content: Option<&[u8]>,
    filename: default!(Option<&str>, "NULL"),
    mime_type: default!(Option<&str>, "NULL"),
    metadata: default!(Option<JsonB>, "'{}'"),
    chunk_size: default!(Option<i32>, "NULL"),
    chunk_overlap: default!(Option<i32>, "NULL"),
    password: default!(Option<&str>, "NULL"),
    model: default!(Option<&str>, "NULL"),
    force: default!(bool, "false"),
) -> Uuid {
    super::standby::refuse_writes("docchat_ingest_async");
    let (content, user_metadata) = check_arguments(content, filename, metadata);
    let model = Model::resolve(model);
    settings::chunk_config(chunk_size, chunk_overlap, model.max_seq_len).validate().or_raise(filename);
    let format = detect(content, filename, mime_type).or_raise(filename).format;
    let sha256 = match claim_content(content, &model.name, force) {
        Claim::Existing(id) => return id,
        Claim::New { sha256 } => sha256,
    };
    let options = json!({
        "filename": filename, "mime_type": mime_type, "metadata": user_metadata,
        "chunk_size": chunk_size, "chunk_overlap": chunk_overlap, "password": password,
    });
    let (max_attempts, retry_delay_ms) = settings::ingest_retries();
    let id = Spi::get_one_with_args::<Uuid>(
        "WITH d AS (INSERT INTO docchat.documents (filename, mime_type, size, sha256, metadata, model, status, ingested_at) \
                    VALUES ($1, $2, $3, $4, $5, $6, 'queued', NULL) RETURNING id) \
         INSERT INTO docchat.ingest_jobs (document_id, content, options, max_attempts, retry_delay) \
         SELECT id, $7, $8, $9, make_interval(secs => $10 / 1000.0) FROM d RETURNING document_id",
        &[
            filename.into(),
            format.mime_type().into(),
            (content.len() as i64).into(),
            sha256.as_slice().into(),
            JsonB(user_metadata.into()).into(),
            model.name.as_str().into(),
            content.into(),
            JsonB(options).into(),
            max_attempts.into(),
            (retry_delay_ms as f64).into(),
        ],
    )
    .unwrap_or_else(|e| error!("docchat: queueing the document failed: {e}"))
    .expect("INSERT … RETURNING gives the new job's id");
    ingest_worker::ensure_workers();
    id
}
