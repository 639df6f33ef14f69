//! The ingest pipeline: bytes → parsed pages (in an isolated thread) → chunks → embeddings →
//! `storage`. `ingest_now` runs it in the caller's transaction (any error stores nothing);
//! `queue` checks what can be checked at once and leaves the rest to an ingest worker's job.
use super::isolate::parse_isolated;
use super::storage::{self, Claim, NewDocument};
use crate::embedding::clip;
use crate::embedding::models::Model;
use crate::embedding::text::{embed_texts, with_tokenizer};
use crate::pg::error::{raise, OrRaise};
use crate::settings;
use docchat_core::chunk::{chunk_pages, Chunk, ChunkConfig};
use docchat_core::detect::detect;
use docchat_core::parse::Parsed;
use docchat_core::{DocError, ErrorKind};
use pgrx::prelude::*;
use pgrx::{JsonB, Uuid};
use serde_json::{json, Map, Value};

/// What docchat_ingest and docchat_ingest_async take.
pub struct Request<'a> {
    pub content: Option<&'a [u8]>,
    pub filename: Option<&'a str>,
    pub mime_type: Option<&'a str>,
    pub metadata: Option<JsonB>,
    pub chunk_size: Option<i32>,
    pub chunk_overlap: Option<i32>,
    pub password: Option<&'a str>,
    pub model: Option<&'a str>,
    pub force: bool,
}

/// docchat_ingest: the whole pipeline, now, every row owned by the caller.
pub fn ingest_now(r: Request) -> Uuid {
    let (content, user_metadata) = check_arguments(r.content, r.filename, r.metadata);
    let model = Model::resolve(r.model);
    let cfg = settings::chunk_config(r.chunk_size, r.chunk_overlap, model.max_seq_len);
    let parsed = parse_isolated(content, r.filename, r.mime_type, settings::parse_options(r.password)).or_raise(r.filename);
    // After parsing: the same bytes still need their password (and must still parse) to be found.
    let sha256 = match storage::claim_content(content, &model.name, r.force) {
        Claim::Existing(id) => return id,
        Claim::New { sha256 } => sha256,
    };
    let owner = crate::api::current_owner();
    let embedded =
        chunk_and_embed(&parsed, &model, &cfg, |t| storage::cached_embeddings(&owner, &model.name, t), &mut |_, _| {}).or_raise(r.filename);
    let doc = NewDocument {
        filename: r.filename,
        mime: parsed.format.mime_type(),
        size: content.len(),
        sha256: &sha256,
        metadata: user_metadata.clone(),
        model: &model.name,
        status: "embedding",
    };
    let id = storage::create_document(&doc);
    Spi::connect_mut(|client| storage::store_result(client, id, &model.name, &parsed, user_metadata, embedded));
    id
}

/// docchat_ingest_async: the arguments, the format and duplicates checked now; the document
/// queued (status `queued`) for this database's ingest workers (which the caller starts); false: the
/// caller already has these bytes, as that document.
pub fn queue(r: Request) -> (Uuid, bool) {
    let (content, user_metadata) = check_arguments(r.content, r.filename, r.metadata);
    let model = Model::resolve(r.model);
    settings::chunk_config(r.chunk_size, r.chunk_overlap, model.max_seq_len).validate().or_raise(r.filename);
    let format = detect(content, r.filename, r.mime_type).or_raise(r.filename).format;
    let sha256 = match storage::claim_content(content, &model.name, r.force) {
        Claim::Existing(id) => return (id, false),
        Claim::New { sha256 } => sha256,
    };
    let options = json!({
        "filename": r.filename, "mime_type": r.mime_type, "metadata": user_metadata,
        "chunk_size": r.chunk_size, "chunk_overlap": r.chunk_overlap, "password": r.password,
    });
    let doc = NewDocument {
        filename: r.filename,
        mime: format.mime_type(),
        size: content.len(),
        sha256: &sha256,
        metadata: user_metadata,
        model: &model.name,
        status: "queued",
    };
    let id = storage::create_document(&doc);
    let (max_attempts, retry_delay_ms) = settings::ingest_retries();
    storage::queue_job(id, content, options, max_attempts, retry_delay_ms);
    (id, true)
}

fn check_arguments<'a>(content: Option<&'a [u8]>, filename: Option<&str>, metadata: Option<JsonB>) -> (&'a [u8], Map<String, Value>) {
    let Some(content) = content else {
        raise(
            DocError::new(ErrorKind::NullValue, "document content is NULL")
                .with_hint("pass the file's bytes, e.g. docchat_ingest(pg_read_binary_file('/path/file.pdf'), 'file.pdf')"),
            filename,
        )
    };
    let user_metadata = match metadata.map(|j| j.0) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(other) => raise(DocError::new(ErrorKind::InvalidArgument, format!("metadata must be a JSON object, got {other}")), filename),
    };
    if let Err(e) = check_size(content.len(), "raise docchat.max_document_size or split the document") {
        raise(e, filename);
    }
    (content, user_metadata)
}

/// docchat.max_document_size, for the caller and again in the worker (the server's limit).
pub fn check_size(len: usize, hint: &str) -> Result<(), DocError> {
    if len > settings::max_document_bytes() {
        return Err(
            DocError::new(ErrorKind::TooLarge, format!("document is {len} bytes, more than docchat.max_document_size allows")).with_hint(hint)
        );
    }
    Ok(())
}

/// Texts embedded per progress report.
const EMBED_STEP: usize = 256;

pub struct Embedded {
    pub chunks: Vec<Chunk>,
    pub embeddings: Vec<Vec<f32>>,
    /// How many embeddings came from the owner's identical chunks instead of the model.
    pub cached: usize,
    /// CLIP vectors of the document's pictures (Parsed::images), in order.
    pub image_vectors: Vec<Vec<f32>>,
}

/// Chunks the pages and embeds the chunks that `cached` (see `storage::cached_embeddings`) has
/// no vector for, telling `progress` (done, total) after each step.
pub fn chunk_and_embed(
    parsed: &Parsed,
    model: &Model,
    cfg: &ChunkConfig,
    cached: impl FnOnce(&[&str]) -> Vec<Option<Vec<f32>>>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Embedded, DocError> {
    let chunks = with_tokenizer(model, |tok| chunk_pages(&parsed.pages, cfg, |t| tok.pieces(t)))?;
    let image_bytes: Vec<&[u8]> = parsed.images.iter().map(|i| i.bytes.as_slice()).collect();
    let image_vectors = if image_bytes.is_empty() { Vec::new() } else { clip::embed_images(&image_bytes)? };
    // A photo without text is still worth storing: it is found by its picture.
    if chunks.is_empty() && image_vectors.is_empty() {
        let pages = parsed.pages.len();
        return Err(DocError::new(ErrorKind::NoText, format!("no text found in the document ({pages} page(s) read)")).with_hint(
            "neither a text layer nor OCR found text (blank pages, or only pictures and charts); for scans in other languages set docchat.ocr_languages",
        ));
    }
    let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
    let mut embeddings = cached(&texts);
    let cached = embeddings.iter().filter(|e| e.is_some()).count();
    let missing: Vec<usize> = (0..texts.len()).filter(|&i| embeddings[i].is_none()).collect();
    progress(cached, texts.len());
    let mut done = cached;
    for step in missing.chunks(EMBED_STEP) {
        let batch: Vec<&str> = step.iter().map(|&i| texts[i]).collect();
        for (&i, v) in step.iter().zip(embed_texts(model, &batch)?) {
            embeddings[i] = Some(v);
        }
        done += step.len();
        progress(done, texts.len());
    }
    let embeddings = embeddings.into_iter().map(|e| e.expect("every chunk embedded")).collect();
    Ok(Embedded { chunks, embeddings, cached, image_vectors })
}
