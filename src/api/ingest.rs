//! docchat_ingest: bytes → parsed pages → chunks → embeddings → rows, in the caller's
//! transaction (any error stores nothing), every row owned by the caller.
use super::embed::{embed_texts, with_tokenizer};
use super::error::{raise, OrRaise};
use super::isolate::parse_isolated;
use super::models::Model;
use crate::settings;
use docchat_core::chunk::{chunk_pages, Chunk, ChunkConfig};
use docchat_core::parse::embedded_images::EmbeddedImage;
use docchat_core::parse::Parsed;
use docchat_core::{DocError, ErrorKind};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::{JsonB, Uuid};
use serde_json::{Map, Value};

// Definer rights: users cannot write docchat's tables themselves; every row gets the caller as owner.
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
    super::standby::refuse_writes("docchat_ingest");
    let (content, user_metadata) = check_arguments(content, filename, metadata);
    let model = Model::resolve(model);
    let cfg = settings::chunk_config(chunk_size, chunk_overlap, model.max_seq_len);
    let parsed = parse_isolated(content, filename, mime_type, settings::parse_options(password)).or_raise(filename);
    // After parsing: the same bytes still need their password (and must still parse) to be found.
    let sha256 = match claim_content(content, &model.name, force) {
        Claim::Existing(id) => return id,
        Claim::New { sha256 } => sha256,
    };
    let owner = Spi::get_one::<String>("SELECT docchat.current_owner()").ok().flatten().unwrap_or_default();
    let Embedded { chunks, embeddings, image_vectors, .. } = chunk_and_embed(&parsed, &model, &cfg, |t| cached_embeddings(&owner, &model.name, t), &mut |_, _| {}).or_raise(filename);
    // The bytes decide the format; a caller's mime type was only a hint.
    let doc = NewDocument {
        size: content.len(),
        sha256: &sha256,
        filename,
        mime: parsed.format.mime_type(),
        metadata: document_metadata(&parsed, user_metadata),
        n_chars: parsed.n_chars(),
        model: &model.name,
    };
    store(&doc, &chunks, embeddings, &parsed.images, image_vectors)
}

/// Validates what docchat_ingest and docchat_ingest_async both take.
pub(super) fn check_arguments<'a>(content: Option<&'a [u8]>, filename: Option<&str>, metadata: Option<JsonB>) -> (&'a [u8], Map<String, Value>) {
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
        Some(other) => raise(
            DocError::new(ErrorKind::InvalidArgument, format!("metadata must be a JSON object, got {other}")),
            filename,
        ),
    };
    if content.len() > settings::max_document_bytes() {
        raise(
            DocError::new(ErrorKind::TooLarge, format!("document is {} bytes, more than docchat.max_document_size allows", content.len()))
                .with_hint("raise docchat.max_document_size or split the document"),
            filename,
        );
    }
    (content, user_metadata)
}

/// Texts embedded per progress report.
const EMBED_STEP: usize = 256;

pub(super) struct Embedded {
    pub chunks: Vec<Chunk>,
    pub embeddings: Vec<Vec<f32>>,
    /// How many embeddings came from the owner's identical chunks instead of the model.
    pub cached: usize,
    /// CLIP vectors of the document's pictures (Parsed::images), in order.
    pub image_vectors: Vec<Vec<f32>>,
}

/// Chunks the pages and embeds the chunks that `cached` (see `cached_embeddings`) has no
/// vector for, telling `progress` (done, total) after each step.
pub(super) fn chunk_and_embed(
    parsed: &Parsed,
    model: &Model,
    cfg: &ChunkConfig,
    cached: impl FnOnce(&[&str]) -> Vec<Option<Vec<f32>>>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Embedded, DocError> {
    let chunks = with_tokenizer(model, |tok| chunk_pages(&parsed.pages, cfg, |t| tok.pieces(t)))?;
    let image_bytes: Vec<&[u8]> = parsed.images.iter().map(|i| i.bytes.as_slice()).collect();
    let image_vectors = if image_bytes.is_empty() { Vec::new() } else { super::clip::embed_images(&image_bytes)? };
    // A photo without text is still worth storing: it is found by its picture.
    if chunks.is_empty() && image_vectors.is_empty() {
        let pages = parsed.pages.len();
        return Err(DocError::new(ErrorKind::NoText, format!("no text found in the document ({pages} page(s) read)"))
            .with_hint("neither a text layer nor OCR found text (blank pages, or only pictures and charts); for scans in other languages set docchat.ocr_languages"));
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

/// The stored embedding of each text that `owner` already has as a chunk of this model.
/// Only the owner's own chunks count: nobody else's rows can put a vector into its documents.
pub(super) fn cached_embeddings(owner: &str, model: &str, texts: &[&str]) -> Vec<Option<Vec<f32>>> {
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
    .unwrap_or_else(|e| error!("docchat: looking up cached embeddings failed: {e}"))
}

/// What the parser found, with the caller's metadata on top.
pub(super) fn document_metadata(parsed: &Parsed, user_metadata: Map<String, Value>) -> Map<String, Value> {
    let mut metadata = parsed.metadata.clone();
    metadata.insert("format".into(), Value::from(parsed.format.name()));
    metadata.extend(user_metadata);
    metadata
}

pub(super) enum Claim {
    /// The caller already has a document with these bytes and this model.
    Existing(Uuid),
    New { sha256: Vec<u8> },
}

/// Hashes the bytes (once: a document may be 100 MB), serialises ingests of the same bytes by the
/// same owner with the same model (a row of docchat.ingest_locks, locked until the transaction
/// ends), then finds the document already holding them, unless `force`.
pub(super) fn claim_content(content: &[u8], model: &str, force: bool) -> Claim {
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
            .unwrap_or_else(|e| error!("docchat: locking the document's content failed: {e}"))
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
            .unwrap_or_else(|e| error!("docchat: looking for the same content failed: {e}"));
        match existing {
            Some(id) => Claim::Existing(id),
            None => Claim::New { sha256 },
        }
    })
}

struct NewDocument<'a> {
    size: usize,
    sha256: &'a [u8],
    filename: Option<&'a str>,
    mime: &'a str,
    metadata: serde_json::Map<String, Value>,
    n_chars: usize,
    model: &'a str,
}

fn store(doc: &NewDocument, chunks: &[Chunk], embeddings: Vec<Vec<f32>>, images: &[EmbeddedImage], image_vectors: Vec<Vec<f32>>) -> Uuid {
    let spi_fail = |e: pgrx::spi::Error| -> ! { error!("docchat: storing the document failed: {e}") };
    Spi::connect_mut(|client| {
        let args: Vec<DatumWithOid> = vec![
            doc.filename.into(),
            doc.mime.into(),
            (doc.size as i64).into(),
            doc.sha256.into(),
            JsonB(Value::Object(doc.metadata.clone())).into(),
            (chunks.len() as i32).into(),
            (doc.n_chars as i32).into(),
            doc.model.into(),
        ];
        // The language (detected, or the caller's metadata) picks the full-text configuration.
        let (id, owner, ts_config) = client
            .update(
                "INSERT INTO docchat.documents (filename, mime_type, size, sha256, metadata, n_chunks, n_chars, model, ts_config) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, docchat.text_search_config($5->>'language')) RETURNING id, owner, ts_config",
                Some(1),
                &args,
            )
            .and_then(|t| t.first().get_three::<Uuid, String, String>())
            .unwrap_or_else(|e| spi_fail(e));
        let (id, owner, ts_config) = (id.expect("the new document's id"), owner.expect("its owner"), ts_config.expect("its ts_config"));
        insert_chunks(client, id, &owner, &ts_config, doc.model, chunks, embeddings);
        super::clip::insert_images(client, id, &owner, images, image_vectors);
        id
    })
}

/// Every chunk of a document, with its owner given (an ingest worker is not the owner).
pub(super) fn insert_chunks(
    client: &mut pgrx::spi::SpiClient<'_>,
    id: Uuid,
    owner: &str,
    ts_config: &str,
    model: &str,
    chunks: &[Chunk],
    embeddings: Vec<Vec<f32>>,
) {
    let spi_fail = |e: pgrx::spi::Error| -> ! { error!("docchat: storing the chunks failed: {e}") };
    use pg_sys::{FLOAT4ARRAYOID as FLOATS, INT4OID as INT, TEXTOID as TEXT, UUIDOID as UUID};
    let insert = client
        .prepare_mut(
            "INSERT INTO docchat.chunks (document_id, chunk_index, content, char_start, char_end, page, n_tokens, heading, embedding, model, ts_config, owner) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            &[UUID, INT, TEXT, INT, INT, INT, INT, TEXT, FLOATS, TEXT, TEXT, TEXT].map(Into::into),
        )
        .unwrap_or_else(|e| spi_fail(e));
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
        client.update(&insert, None, &args).unwrap_or_else(|e| spi_fail(e));
    }
}
