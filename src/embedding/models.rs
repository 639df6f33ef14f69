//! The model registry, docchat.models: which model a call uses and where its files are.
//! Resolution (argument, else docchat.model, else the default row) lives in SQL,
//! docchat.model_for(), so SQL functions and Rust agree.
use crate::settings;
use docchat_core::embed::ModelFiles;
use docchat_core::serve::wire::ModelKey;
use pgrx::prelude::*;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Model {
    pub name: String,
    pub dir: PathBuf,
    pub dimension: usize,
    pub max_seq_len: usize,
}

impl Model {
    /// The registered model `requested`, or the default one; an unknown name is an ERROR
    /// (raised by docchat.model_for) listing the registered ones.
    pub fn resolve(requested: Option<&str>) -> Model {
        let fail = |e: pgrx::spi::Error| -> ! { error!("docchat: reading docchat.models failed: {e}") };
        let (name, dir, dimension, max_seq_len) = Spi::connect(|client| {
            let row = client.select("SELECT name, dir, dimension, max_seq_length FROM docchat.model_for($1)", Some(1), &[requested.into()])?.first();
            Ok::<_, pgrx::spi::Error>((row.get::<String>(1)?, row.get::<String>(2)?, row.get::<i32>(3)?, row.get::<i32>(4)?))
        })
        .unwrap_or_else(|e| fail(e));
        let (Some(name), Some(dir), Some(dimension), Some(max_seq_len)) = (name, dir, dimension, max_seq_len) else {
            error!("docchat: docchat.model_for returned an incomplete row")
        };
        let dir = PathBuf::from(dir);
        let dir = if dir.is_absolute() { dir } else { settings::models_dir().join(dir) };
        Model { name, dir, dimension: dimension as usize, max_seq_len: max_seq_len as usize }
    }

    pub fn key(&self) -> ModelKey {
        ModelKey::sentence(self.dir.to_string_lossy(), self.max_seq_len)
    }

    pub fn files(&self) -> ModelFiles {
        ModelFiles::in_dir(settings::runtime_library(), &self.dir, self.max_seq_len)
    }
}
