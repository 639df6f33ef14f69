//! The CLIP functions' Rust halves (docchat_embed_image and docchat_embed_image_query cast
//! them to vector(512)) and CLIP's part of docchat_health().
use crate::embedding::clip::{embed_images, embed_texts};
use crate::pg::error::OrRaise;
use crate::settings;
use pgrx::prelude::*;

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
