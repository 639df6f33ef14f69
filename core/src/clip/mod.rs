//! CLIP: images and texts into one 512-dimensional space, so a description finds a picture.
//! The user supplies the two ONNX towers and the tokenizer (no registry ships CLIP weights);
//! docchat does CLIP's exact preprocessing and tokenization and L2-normalises both outputs.
pub mod preprocess;
pub mod resample;
mod text_clean;
pub mod tokenizer;

use crate::embed::{open_session, RunOptions};
use crate::error::{DocError, ErrorKind, Result};
use ort::session::Session;
use ort::value::Tensor;
use std::path::{Path, PathBuf};
use tokenizer::ClipTokenizer;

/// What docchat.images stores: ViT-B/32's embedding size.
pub const DIMENSION: usize = 512;
pub const VISUAL: &str = "visual.onnx";
pub const TEXTUAL: &str = "textual.onnx";
/// OpenAI's / open_clip's merges file, or Hugging Face's.
pub const VOCABULARIES: [&str; 2] = ["bpe_simple_vocab_16e6.txt.gz", "merges.txt"];
const HINT: &str = "docchat.clip_model_dir must hold visual.onnx, textual.onnx and bpe_simple_vocab_16e6.txt.gz (or merges.txt); \
                    the README's \"CLIP models\" section shows how to export them";

/// The towers' files in a CLIP folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClipFiles {
    pub runtime: PathBuf,
    pub dir: PathBuf,
}

impl ClipFiles {
    pub fn visual(&self) -> PathBuf {
        self.dir.join(VISUAL)
    }
    pub fn textual(&self) -> PathBuf {
        self.dir.join(TEXTUAL)
    }
    pub fn vocabulary(&self) -> PathBuf {
        VOCABULARIES.iter().map(|f| self.dir.join(f)).find(|p| p.is_file()).unwrap_or_else(|| self.dir.join(VOCABULARIES[0]))
    }
    /// The files that are not there, by name.
    pub fn missing(&self) -> Vec<String> {
        let mut missing: Vec<String> = [VISUAL, TEXTUAL].iter().filter(|f| !self.dir.join(f).is_file()).map(|f| f.to_string()).collect();
        if !self.vocabulary().is_file() {
            missing.push(VOCABULARIES.join(" or "));
        }
        missing
    }
}

fn unavailable(e: DocError) -> DocError {
    if e.kind == ErrorKind::ModelUnavailable {
        DocError { hint: Some(HINT.into()), ..e }
    } else {
        e
    }
}

fn failed(e: impl std::fmt::Display) -> DocError {
    DocError::new(ErrorKind::ModelFailure, format!("CLIP model failed: {e}"))
}

/// One tower's session and the names it uses.
struct Tower {
    session: Session,
    input: String,
    output: String,
    mask: bool,
    device: &'static str,
}

impl Tower {
    fn open(runtime: &Path, model: &Path, opts: RunOptions, preferred_input: &str, preferred_output: &str) -> Result<Tower> {
        let (session, device) = open_session(runtime, model, opts).map_err(unavailable)?;
        let pick = |names: Vec<String>, preferred: &str| names.iter().find(|n| *n == preferred).or(names.first()).cloned();
        let inputs: Vec<String> = session.inputs().iter().map(|i| i.name().to_string()).filter(|n| n != "attention_mask").collect();
        let mask = session.inputs().iter().any(|i| i.name() == "attention_mask");
        let outputs: Vec<String> = session.outputs().iter().map(|o| o.name().to_string()).collect();
        let (Some(input), Some(output)) = (pick(inputs, preferred_input), pick(outputs, preferred_output)) else {
            return Err(unavailable(DocError::new(ErrorKind::ModelUnavailable, format!("\"{}\" has no input or no output", model.display()))));
        };
        Ok(Tower { session, input, output, mask, device })
    }

    /// Runs one batch and returns its rows L2-normalised; they must be DIMENSION long.
    fn run<'i, 'v: 'i>(&mut self, inputs: impl Into<ort::session::SessionInputs<'i, 'v>>, rows: usize) -> Result<Vec<Vec<f32>>> {
        let outputs = self.session.run(inputs).map_err(failed)?;
        let (shape, data) = outputs[self.output.as_str()].try_extract_tensor::<f32>().map_err(failed)?;
        let dims: Vec<i64> = shape.iter().copied().collect();
        if dims != [rows as i64, DIMENSION as i64] {
            return Err(DocError::new(
                ErrorKind::ModelUnavailable,
                format!("CLIP model returned shape {dims:?}; docchat expects [{rows}, {DIMENSION}] (ViT-B/32)"),
            )
            .with_hint(HINT));
        }
        Ok(data.chunks(DIMENSION).map(normalised).collect())
    }
}

fn normalised(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter().map(|x| x / norm).collect()
}

/// The image tower: preprocessed 3×224×224 tensors in, unit vectors out.
pub struct ClipImageModel {
    tower: Tower,
}

impl ClipImageModel {
    pub fn load(files: &ClipFiles, opts: RunOptions) -> Result<Self> {
        let mut model = ClipImageModel { tower: Tower::open(&files.runtime, &files.visual(), opts, "pixel_values", "image_embeds")? };
        model.run(&[&vec![0f32; 3 * preprocess::SIZE * preprocess::SIZE]])?;
        Ok(model)
    }

    pub fn device(&self) -> &'static str {
        self.tower.device
    }

    pub fn run(&mut self, tensors: &[&Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        let side = preprocess::SIZE as i64;
        let data: Vec<f32> = tensors.iter().flat_map(|t| t.iter().copied()).collect();
        let input = Tensor::from_array(([tensors.len() as i64, 3, side, side], data)).map_err(failed)?;
        let name = self.tower.input.clone();
        self.tower.run(ort::inputs![name => input], tensors.len())
    }

    /// Image bytes to a unit vector, in this process.
    pub fn embed_bytes(&mut self, images: &[&[u8]]) -> Result<Vec<Vec<f32>>> {
        let tensors = images.iter().map(|b| preprocess::pixels(b)).collect::<Result<Vec<_>>>()?;
        self.run(&tensors.iter().collect::<Vec<_>>())
    }
}

/// The text tower and its tokenizer: texts in, unit vectors out.
pub struct ClipTextModel {
    tower: Tower,
    tokenizer: ClipTokenizer,
}

impl ClipTextModel {
    pub fn load(files: &ClipFiles, opts: RunOptions) -> Result<Self> {
        let tokenizer = ClipTokenizer::load(&files.vocabulary())?;
        let tower = Tower::open(&files.runtime, &files.textual(), opts, "input_ids", "text_embeds")?;
        let mut model = ClipTextModel { tower, tokenizer };
        model.embed(&["a photo"])?;
        Ok(model)
    }

    pub fn device(&self) -> &'static str {
        self.tower.device
    }

    pub fn tokenize(&self, text: &str) -> Vec<i64> {
        self.tokenizer.model_input(text)
    }

    pub fn run(&mut self, ids: &[&Vec<i64>]) -> Result<Vec<Vec<f32>>> {
        let n = tokenizer::CONTEXT_LENGTH;
        let shape = [ids.len() as i64, n as i64];
        let flat: Vec<i64> = ids.iter().flat_map(|v| v.iter().copied()).collect();
        let mut inputs = ort::inputs![self.tower.input.clone() => Tensor::from_array((shape, flat)).map_err(failed)?];
        if self.tower.mask {
            // Up to and including the end token: what Hugging Face's tokenizer marks as attended.
            let end = i64::from(self.tokenizer.end);
            let mask: Vec<i64> = ids
                .iter()
                .flat_map(|v| {
                    let last = v.iter().position(|&t| t == end).unwrap_or(n - 1);
                    (0..n).map(move |i| i64::from(i <= last))
                })
                .collect();
            inputs.push(("attention_mask".into(), Tensor::from_array((shape, mask)).map_err(failed)?.into()));
        }
        self.tower.run(inputs, ids.len())
    }

    pub fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let ids: Vec<Vec<i64>> = texts.iter().map(|t| self.tokenize(t)).collect();
        self.run(&ids.iter().collect::<Vec<_>>())
    }
}

#[cfg(test)]
mod reference_tests;
