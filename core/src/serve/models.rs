//! What the model worker serves: sentence-transformers and CLIP's two towers, behind one
//! batching interface. A batch always holds inputs for one model, so of one kind.
use super::batcher::BatchModel;
use super::wire::{Input, ModelKey, ModelKind};
use crate::clip::{ClipFiles, ClipImageModel, ClipTextModel};
use crate::embed::{Embedder, Encoded, ModelFiles, RunOptions};
use crate::error::{DocError, ErrorKind, Result};
use std::path::{Path, PathBuf};

// A few per worker, never moved around: boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum WorkerModel {
    Sentence(Embedder),
    ClipImage(ClipImageModel),
    ClipText(ClipTextModel),
}

// One per request in flight; the encoding is built in place.
#[allow(clippy::large_enum_variant)]
pub enum Prepared {
    Encoded(Encoded),
    Ids(Vec<i64>),
    Pixels(Vec<f32>),
}

impl WorkerModel {
    pub fn load(key: &ModelKey, runtime: &Path, opts: RunOptions) -> Result<WorkerModel> {
        let clip = || ClipFiles { runtime: runtime.to_path_buf(), dir: PathBuf::from(&key.dir) };
        Ok(match key.kind {
            ModelKind::Sentence => {
                WorkerModel::Sentence(Embedder::load(&ModelFiles::in_dir(runtime.to_path_buf(), Path::new(&key.dir), key.max_seq_len), opts)?)
            }
            ModelKind::ClipImage => WorkerModel::ClipImage(ClipImageModel::load(&clip(), opts)?),
            ModelKind::ClipText => WorkerModel::ClipText(ClipTextModel::load(&clip(), opts)?),
        })
    }

    pub fn dimension(&self) -> usize {
        match self {
            WorkerModel::Sentence(e) => e.dim,
            WorkerModel::ClipImage(_) | WorkerModel::ClipText(_) => crate::clip::DIMENSION,
        }
    }

    pub fn device(&self) -> &'static str {
        match self {
            WorkerModel::Sentence(e) => e.device,
            WorkerModel::ClipImage(m) => m.device(),
            WorkerModel::ClipText(m) => m.device(),
        }
    }
}

fn wrong_input() -> DocError {
    DocError::new(ErrorKind::ModelFailure, "the model worker got an input of the wrong kind for this model")
}

impl BatchModel for WorkerModel {
    type Item = Prepared;

    fn prepare(&self, input: &Input) -> Result<Prepared> {
        match (self, input) {
            (WorkerModel::Sentence(e), Input::Text(t)) => e.tokenizer().encode(t).map(Prepared::Encoded),
            (WorkerModel::ClipText(m), Input::Text(t)) => Ok(Prepared::Ids(m.tokenize(t))),
            (WorkerModel::ClipImage(_), Input::Pixels(p)) if p.len() == 3 * crate::clip::preprocess::SIZE.pow(2) => Ok(Prepared::Pixels(p.clone())),
            _ => Err(wrong_input()),
        }
    }

    fn cost(item: &Prepared) -> usize {
        match item {
            Prepared::Encoded(e) => e.len(),
            Prepared::Ids(_) | Prepared::Pixels(_) => 0,
        }
    }

    fn run(&mut self, items: &[&Prepared]) -> Result<Vec<Vec<f32>>> {
        match self {
            WorkerModel::Sentence(e) => {
                let encs = items.iter().map(|i| if let Prepared::Encoded(x) = i { Ok(x) } else { Err(wrong_input()) }).collect::<Result<Vec<_>>>()?;
                e.run_batch(&encs)
            }
            WorkerModel::ClipText(m) => {
                let ids = items.iter().map(|i| if let Prepared::Ids(x) = i { Ok(x) } else { Err(wrong_input()) }).collect::<Result<Vec<_>>>()?;
                m.run(&ids)
            }
            WorkerModel::ClipImage(m) => {
                let px = items.iter().map(|i| if let Prepared::Pixels(x) = i { Ok(x) } else { Err(wrong_input()) }).collect::<Result<Vec<_>>>()?;
                m.run(&px)
            }
        }
    }
}
