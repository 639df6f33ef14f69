//! CLIP for SQL: image and text embeddings in one 512-d space, through the model worker when
//! docchat is preloaded (the same batching as text), else with towers this session loads.
//! Images are decoded and preprocessed here, in the backend, so a bad image is this session's
//! error and the worker only ever runs the model.
use super::embed::embeds_in_worker;
use super::error::OrRaise;
use super::worker_client;
use crate::settings;
use docchat_core::clip::tokenizer::CONTEXT_LENGTH;
use docchat_core::clip::{preprocess, ClipFiles, ClipImageModel, ClipTextModel};
use docchat_core::parse::embedded_images::EmbeddedImage;
use docchat_core::serve::wire::{Input, ModelKey, ModelKind};
use docchat_core::{DocError, ErrorKind};
use parking_lot::Mutex;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::Uuid;

static IMAGE_MODEL: Mutex<Option<(ClipFiles, ClipImageModel)>> = Mutex::new(None);
static TEXT_MODEL: Mutex<Option<(ClipFiles, ClipTextModel)>> = Mutex::new(None);

/// docchat.clip_model_dir with every file present, or why not.
pub fn clip_files() -> Result<ClipFiles, DocError> {
    let Some(files) = settings::clip_files() else {
        return Err(DocError::new(ErrorKind::ModelUnavailable, "no CLIP model is configured (docchat.clip_model_dir is empty)")
            .with_hint("export CLIP ViT-B/32 as the README's \"CLIP models\" section shows and set docchat.clip_model_dir to its folder"));
    };
    let missing = files.missing();
    if !missing.is_empty() {
        return Err(DocError::new(ErrorKind::ModelUnavailable, format!("the CLIP model folder \"{}\" lacks {}", files.dir.display(), missing.join(", ")))
            .with_hint("docchat.clip_model_dir must hold visual.onnx, textual.onnx and bpe_simple_vocab_16e6.txt.gz (or merges.txt); see the README's \"CLIP models\""));
    }
    Ok(files)
}

/// One unit vector per image (encoded bytes), in order.
pub fn embed_images(images: &[&[u8]]) -> Result<Vec<Vec<f32>>, DocError> {
    let files = clip_files()?;
    let mut tensors = Vec::with_capacity(images.len());
    for bytes in images {
        pg_sys::check_for_interrupts!();
        tensors.push(preprocess::pixels(bytes)?);
    }
    if embeds_in_worker() {
        let key = ModelKey::clip(files.dir.to_string_lossy(), ModelKind::ClipImage);
        return worker_client::embed_inputs(&key, tensors.into_iter().map(Input::Pixels).collect());
    }
    let mut slot = IMAGE_MODEL.lock();
    if slot.as_ref().is_none_or(|(f, _)| *f != files) {
        *slot = None;
        *slot = Some((files.clone(), ClipImageModel::load(&files, settings::backend_run_options())?));
    }
    let model = &mut slot.as_mut().expect("loaded above").1;
    let mut out = Vec::with_capacity(tensors.len());
    for batch in tensors.chunks(8) {
        pg_sys::check_for_interrupts!();
        out.extend(model.run(&batch.iter().collect::<Vec<_>>())?);
    }
    Ok(out)
}

/// One unit vector per text, in CLIP's space.
pub fn embed_texts(texts: &[&str]) -> Result<Vec<Vec<f32>>, DocError> {
    let files = clip_files()?;
    if embeds_in_worker() {
        let key = ModelKey::clip(files.dir.to_string_lossy(), ModelKind::ClipText);
        let texts: Vec<&str> = texts.iter().map(|t| docchat_core::embed::model_input(t, CONTEXT_LENGTH)).collect();
        return worker_client::embed(&key, &texts);
    }
    let mut slot = TEXT_MODEL.lock();
    if slot.as_ref().is_none_or(|(f, _)| *f != files) {
        *slot = None;
        *slot = Some((files.clone(), ClipTextModel::load(&files, settings::backend_run_options())?));
    }
    slot.as_mut().expect("loaded above").1.embed(texts)
}

/// A document's pictures and their vectors, as rows of docchat.images.
pub fn insert_images(client: &mut pgrx::spi::SpiClient<'_>, id: Uuid, owner: &str, images: &[EmbeddedImage], vectors: Vec<Vec<f32>>) {
    let spi_fail = |e: pgrx::spi::Error| -> ! { error!("docchat: storing the document's images failed: {e}") };
    use pg_sys::{BYTEAOID as BYTES, FLOAT4ARRAYOID as FLOATS, INT4OID as INT, TEXTOID as TEXT, UUIDOID as UUID};
    let insert = client
        .prepare_mut(
            "INSERT INTO docchat.images (document_id, image_index, owner, page, name, mime_type, width, height, content, embedding) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[UUID, INT, TEXT, INT, TEXT, TEXT, INT, INT, BYTES, FLOATS].map(Into::into),
        )
        .unwrap_or_else(|e| spi_fail(e));
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
        client.update(&insert, None, &args).unwrap_or_else(|e| spi_fail(e));
    }
}

/// For docchat_health(): the folder and what it lacks, or that none is set.
pub fn health() -> serde_json::Value {
    match settings::clip_files() {
        None => serde_json::json!({"configured": false}),
        Some(files) => {
            let missing = files.missing();
            serde_json::json!({"configured": true, "dir": files.dir.display().to_string(), "ok": missing.is_empty(), "missing": missing})
        }
    }
}

#[pg_schema]
mod docchat {
    use super::*;

    /// `docchat_embed_image(bytea)` casts this to vector(512).
    #[pg_extern(stable, parallel_safe)]
    fn clip_image_real(image: Option<&[u8]>) -> Option<Vec<f32>> {
        let image = image?;
        Some(embed_images(&[image]).or_raise(None).remove(0))
    }

    /// `docchat_embed_image_query(text)` casts this to vector(512).
    #[pg_extern(stable, parallel_safe)]
    fn clip_text_real(input: Option<&str>) -> Option<Vec<f32>> {
        let input = input?;
        Some(embed_texts(&[input]).or_raise(None).remove(0))
    }
}
