//! docchat_ingest and docchat_ingest_async. Definer rights: users cannot write docchat's tables
//! themselves; every row gets the caller as owner.
use crate::ingest::pipeline::{self, Request};
use crate::pg::standby::refuse_writes;
use pgrx::prelude::*;
use pgrx::{JsonB, Uuid};

#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn docchat_ingest(
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
    refuse_writes("docchat_ingest");
    pipeline::ingest_now(Request { content, filename, mime_type, metadata, chunk_size, chunk_overlap, password, model, force })
}

#[allow(clippy::too_many_arguments)]
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
    refuse_writes("docchat_ingest_async");
    let (id, queued) = pipeline::queue(Request { content, filename, mime_type, metadata, chunk_size, chunk_overlap, password, model, force });
    if queued {
        crate::workers::ingest_worker::ensure_workers();
    }
    id
}
