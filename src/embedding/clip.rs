//! CLIP: image and text embeddings in one 512-d space, through the model worker when docchat
//! is preloaded (the same batching as text), else with towers this session loads. Images are
//! decoded and preprocessed here, in the backend, so a bad image is this session's error and
//! the worker only ever runs the model.
use super::slot::SessionSlot;
use super::text::embeds_in_worker;
use super::worker_client;
use crate::settings;
use docchat_core::clip::tokenizer::CONTEXT_LENGTH;
use docchat_core::clip::{preprocess, ClipFiles, ClipImageModel, ClipTextModel};
use docchat_core::serve::wire::{Input, ModelKey, ModelKind};
use docchat_core::{DocError, ErrorKind};
use pgrx::prelude::*;

static IMAGE_MODEL: SessionSlot<ClipFiles, ClipImageModel> = SessionSlot::new();
static TEXT_MODEL: SessionSlot<ClipFiles, ClipTextModel> = SessionSlot::new();

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
    IMAGE_MODEL.with(
        files,
        |f| ClipImageModel::load(f, settings::backend_run_options()),
        |model| {
            let mut out = Vec::with_capacity(tensors.len());
            for batch in tensors.chunks(8) {
                pg_sys::check_for_interrupts!();
                out.extend(model.run(&batch.iter().collect::<Vec<_>>())?);
            }
            Ok(out)
        },
    )
}

/// One unit vector per text, in CLIP's space.
pub fn embed_texts(texts: &[&str]) -> Result<Vec<Vec<f32>>, DocError> {
    let files = clip_files()?;
    if embeds_in_worker() {
        let key = ModelKey::clip(files.dir.to_string_lossy(), ModelKind::ClipText);
        let texts: Vec<&str> = texts.iter().map(|t| docchat_core::embed::model_input(t, CONTEXT_LENGTH)).collect();
        return worker_client::embed(&key, &texts);
    }
    TEXT_MODEL.with(files, |f| ClipTextModel::load(f, settings::backend_run_options()), |model| model.embed(texts))
}
