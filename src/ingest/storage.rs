//! Every statement ingest runs on docchat's tables. A document is written by `create_document`
//! (queued, or in progress for a synchronous ingest) and completed by `store_result`, whether
//! the caller's transaction or an ingest worker's job does the work.
use super::pipeline::Embedded;
use docchat_core::parse::embedded_images::EmbeddedImage;
use docchat_core::parse::Parsed;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::{JsonB, Uuid};
use serde_json::{Map, Value};

fn fail(what: &str, e: pgrx::spi::Error) -> ! {
    error!("docchat: {what} failed: {e}")
}

pub enum Claim {
    /// The caller already has a document with these bytes and this model.
    Existing(Uuid),
    New {
        sha256: Vec<u8>,
    },
}

/// Hashes the bytes (once: a document may be 100 MB), serialises ingests of the same bytes by the
/// same owner with the same model (a row of docchat.ingest_locks, locked until the transaction
/// ends), then finds the document already holding them, unless `force`.
pub fn claim_content(content: &[u8], model: &str, force: bool) -> Claim {
    Spi::connect_mut(|client| {
        let sha256: Vec<u8> = client
            .update(
                "WITH s AS (SELECT sha256($1) AS h), \
                 locked AS (INSERT INTO docchat.ingest_locks (key) \
                            SELECT sha256(convert_to(docchat.current_owner() || E'\\n' || $2 || E'\\n', 'UTF8') || s.h) FROM s \
                            ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key RETURNING key) \
                 SELECT s.h, (SELECT count(*) FROM locked) FROM s",
                Some(1),
                &[content.into(), model.into()],
            )
            .and_then(|t| t.first().get_one::<Vec<u8>>())
            .unwrap_or_else(|e| fail("locking the document's content", e))
            .expect("sha256 of non-NULL bytes");
        if force {
            return Claim::New { sha256 };
        }
        let existing = client
            .select(
                "SELECT id FROM docchat.documents WHERE owner = docchat.current_owner() AND model = $2 AND sha256 = $1 AND status <> 'failed' \
                 ORDER BY created_at, id LIMIT 1",
                Some(1),
                &[sha256.as_slice().into(), model.into()],
            )
            .and_then(|t| if t.is_empty() { Ok(None) } else { t.first().get_one::<Uuid>() })
            .unwrap_or_else(|e| fail("looking for the same content", e));
        match existing {
            Some(id) => Claim::Existing(id),
            None => Claim::New { sha256 },
        }
    })
}

/// The stored embedding of each text that `owner` already has as a chunk of this model.
/// Only the owner's own chunks count: nobody else's rows can put a vector into its documents.
pub fn cached_embeddings(owner: &str, model: &str, texts: &[&str]) -> Vec<Option<Vec<f32>>> {
    let texts_owned: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
    Spi::connect(|client| {
        client
            .select(
                "SELECT (SELECT c.embedding::real[] FROM docchat.chunks c \
                         WHERE c.owner = $1 AND c.model = $2 AND md5(c.content) = md5(t.text) AND c.content = t.text LIMIT 1) \
                 FROM unnest($3::text[]) WITH ORDINALITY AS t(text, ord) ORDER BY t.ord",
                None,
                &[owner.into(), model.into(), texts_owned.into()],
            )?
            .map(|row| row.get::<Vec<f32>>(1))
            .collect::<Result<Vec<_>, _>>()
    })
    .unwrap_or_else(|e| fail("looking up cached embeddings", e))
}

/// A document row before its chunks: what the caller gave and the bytes say.
pub struct NewDocument<'a> {
    pub filename: Option<&'a str>,
    /// The detected format's: a caller's mime type is only a hint.
    pub mime: &'a str,
    pub size: usize,
    pub sha256: &'a [u8],
    /// The caller's metadata; `store_result` adds what the parser found.
    pub metadata: Map<String, Value>,
    pub model: &'a str,
    /// `queued` for the background queue, `embedding` while the caller's transaction works on it.
    pub status: &'a str,
}

/// The new document's id; its owner is the caller (the column's default).
pub fn create_document(doc: &NewDocument) -> Uuid {
    Spi::get_one_with_args::<Uuid>(
        "INSERT INTO docchat.documents (filename, mime_type, size, sha256, metadata, model, status, ingested_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, NULL) RETURNING id",
        &[
            doc.filename.into(),
            doc.mime.into(),
            (doc.size as i64).into(),
            doc.sha256.into(),
            JsonB(Value::Object(doc.metadata.clone())).into(),
            doc.model.into(),
            doc.status.into(),
        ],
    )
    .unwrap_or_else(|e| fail("storing the document", e))
    .expect("INSERT … RETURNING gives the new document's id")
}

/// Queues a created document for the ingest workers.
pub fn queue_job(id: Uuid, content: &[u8], options: Value, max_attempts: i32, retry_delay_ms: i32) {
    Spi::run_with_args(
        "INSERT INTO docchat.ingest_jobs (document_id, content, options, max_attempts, retry_delay) \
         VALUES ($1, $2, $3, $4, make_interval(secs => $5 / 1000.0))",
        &[id.into(), content.into(), JsonB(options).into(), max_attempts.into(), (retry_delay_ms as f64).into()],
    )
    .unwrap_or_else(|e| fail("queueing the document", e))
}

/// The document's final state with its chunks and pictures, together: status `ready`, the
/// parser's metadata under the caller's, and the text search configuration its language picks.
/// False when the document was deleted meanwhile (it is then left alone).
pub fn store_result(
    client: &mut SpiClient<'_>,
    id: Uuid,
    model: &str,
    parsed: &Parsed,
    user_metadata: Map<String, Value>,
    embedded: Embedded,
) -> bool {
    let Embedded { chunks, embeddings, image_vectors, .. } = embedded;
    let mut metadata = parsed.metadata.clone();
    metadata.insert("format".into(), Value::from(parsed.format.name()));
    metadata.extend(user_metadata);
    let t = client
        .update(
            "UPDATE docchat.documents SET status = 'ready', ingested_at = now(), mime_type = $2, metadata = $3, n_chunks = $4, n_chars = $5, \
                    ts_config = docchat.text_search_config($3->>'language') \
             WHERE id = $1 RETURNING owner, ts_config",
            Some(1),
            &[
                id.into(),
                parsed.format.mime_type().into(),
                JsonB(Value::Object(metadata)).into(),
                (chunks.len() as i32).into(),
                (parsed.n_chars() as i32).into(),
            ],
        )
        .unwrap_or_else(|e| fail("storing the document", e));
    if t.is_empty() {
        return false;
    }
    let (owner, ts_config) = t.first().get_two::<String, String>().unwrap_or_else(|e| fail("storing the document", e));
    let (owner, ts_config) = (owner.expect("owner"), ts_config.expect("ts_config"));
    // A job's earlier attempt never committed chunks; this makes sure of it.
    client.update("DELETE FROM docchat.chunks WHERE document_id = $1", None, &[id.into()]).unwrap_or_else(|e| fail("storing the document", e));
    client.update("DELETE FROM docchat.images WHERE document_id = $1", None, &[id.into()]).unwrap_or_else(|e| fail("storing the document", e));
    insert_chunks(client, id, &owner, &ts_config, model, &chunks, embeddings);
    insert_images(client, id, &owner, &parsed.images, image_vectors);
    true
}

/// Every chunk of a document, with its owner given (an ingest worker is not the owner).
fn insert_chunks(
    client: &mut SpiClient<'_>,
    id: Uuid,
    owner: &str,
    ts_config: &str,
    model: &str,
    chunks: &[docchat_core::chunk::Chunk],
    embeddings: Vec<Vec<f32>>,
) {
    use pg_sys::{FLOAT4ARRAYOID as FLOATS, INT4OID as INT, TEXTOID as TEXT, UUIDOID as UUID};
    let insert = client
        .prepare_mut(
            "INSERT INTO docchat.chunks (document_id, chunk_index, content, char_start, char_end, page, n_tokens, heading, embedding, model, ts_config, owner) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            &[UUID, INT, TEXT, INT, INT, INT, INT, TEXT, FLOATS, TEXT, TEXT, TEXT].map(Into::into),
        )
        .unwrap_or_else(|e| fail("storing the chunks", e));
    for (i, (chunk, embedding)) in chunks.iter().zip(embeddings).enumerate() {
        let args: Vec<DatumWithOid> = vec![
            id.into(),
            (i as i32).into(),
            chunk.text.as_str().into(),
            (chunk.char_start as i32).into(),
            (chunk.char_end as i32).into(),
            chunk.page.map(|p| p as i32).into(),
            (chunk.n_tokens as i32).into(),
            chunk.heading.as_deref().into(),
            embedding.into(),
            model.into(),
            ts_config.into(),
            owner.into(),
        ];
        client.update(&insert, None, &args).unwrap_or_else(|e| fail("storing the chunks", e));
    }
}

/// A document's pictures and their CLIP vectors, as rows of docchat.images.
fn insert_images(client: &mut SpiClient<'_>, id: Uuid, owner: &str, images: &[EmbeddedImage], vectors: Vec<Vec<f32>>) {
    use pg_sys::{BYTEAOID as BYTES, FLOAT4ARRAYOID as FLOATS, INT4OID as INT, TEXTOID as TEXT, UUIDOID as UUID};
    let insert = client
        .prepare_mut(
            "INSERT INTO docchat.images (document_id, image_index, owner, page, name, mime_type, width, height, content, embedding) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[UUID, INT, TEXT, INT, TEXT, TEXT, INT, INT, BYTES, FLOATS].map(Into::into),
        )
        .unwrap_or_else(|e| fail("storing the document's images", e));
    for (i, (image, vector)) in images.iter().zip(vectors).enumerate() {
        let args: Vec<DatumWithOid> = vec![
            id.into(),
            (i as i32).into(),
            owner.into(),
            image.page.map(|p| p as i32).into(),
            image.name.as_str().into(),
            image.mime.into(),
            (image.width as i32).into(),
            (image.height as i32).into(),
            image.bytes.as_slice().into(),
            vector.into(),
        ];
        client.update(&insert, None, &args).unwrap_or_else(|e| fail("storing the document's images", e));
    }
}

/// The next due job's document id, now this worker's.
pub fn claim_job() -> Option<Uuid> {
    Spi::get_one::<Uuid>("SELECT docchat.claim_ingest_job()").unwrap_or_else(|e| fail("claiming a job", e))
}

/// A queued document as its job holds it.
pub struct QueuedJob {
    pub content: Vec<u8>,
    /// What docchat_ingest_async was given (filename, metadata, chunking, password).
    pub options: Map<String, Value>,
    pub model: String,
    pub owner: String,
}

impl QueuedJob {
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.get(key).and_then(Value::as_str)
    }

    pub fn option_i32(&self, key: &str) -> Option<i32> {
        self.options.get(key).and_then(Value::as_i64).map(|v| v as i32)
    }

    /// The caller's metadata, which the document gets besides the parser's.
    pub fn metadata(&self) -> Map<String, Value> {
        match self.options.get("metadata") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        }
    }
}

/// None when the job's document was deleted meanwhile (or is not the job owner's:
/// claim_ingest_job skips those).
pub fn load_job(id: Uuid) -> Option<QueuedJob> {
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
    .unwrap_or_else(|e| fail("loading a job", e))?;
    let (Some(content), Some(options), Some(model), Some(owner)) = row else { return None };
    let options = match options.0 {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    Some(QueuedJob { content, options, model, owner })
}

/// The job's document is parsed (`pages` pages) and its chunks are being embedded.
pub fn job_parsed(id: Uuid, pages: i32) {
    Spi::run_with_args(
        "UPDATE docchat.ingest_jobs SET pages_done = $2, pages_total = $2, phase_started_at = now(), updated_at = now() WHERE document_id = $1; \
         UPDATE docchat.documents SET status = 'embedding' WHERE id = $1",
        &[id.into(), pages.into()],
    )
    .unwrap_or_else(|e| fail("recording progress", e))
}

pub fn job_progress(id: Uuid, done: usize, total: usize) {
    Spi::run_with_args(
        "UPDATE docchat.ingest_jobs SET chunks_done = $2, chunks_total = $3, updated_at = now() WHERE document_id = $1",
        &[id.into(), (done as i32).into(), (total as i32).into()],
    )
    .unwrap_or_else(|e| fail("recording progress", e))
}

/// The job is done: its bytes and password are dropped, its counts kept for docchat.ingest_progress.
pub fn finish_job(client: &mut SpiClient<'_>, id: Uuid, chunks: usize, cached: usize) {
    client
        .update(
            "UPDATE docchat.ingest_jobs SET finished_at = now(), updated_at = now(), content = NULL, options = options - 'password', \
                    chunks_done = $2, chunks_total = $2, chunks_cached = $3, worker_pid = NULL, last_error = NULL WHERE document_id = $1",
            None,
            &[id.into(), (chunks as i32).into(), (cached as i32).into()],
        )
        .unwrap_or_else(|e| fail("storing the document", e));
}

/// Queues the job again after its backoff, or fails it for good (`permanent`).
pub fn fail_job(id: Uuid, error: &str, permanent: bool) {
    Spi::run_with_args("SELECT docchat.fail_ingest_job($1, $2, $3)", &[id.into(), error.into(), permanent.into()])
        .unwrap_or_else(|e| fail("recording a failed job", e))
}
