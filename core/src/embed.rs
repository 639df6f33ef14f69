//! Texts → unit vectors with a sentence-transformer exported to ONNX: word-piece tokenizer,
//! ONNX Runtime (loaded from a shared library at run time), mean pooling, L2 normalisation.
use crate::chunk::Piece;
use crate::error::{DocError, ErrorKind, Result};
use once_cell::sync::OnceCell;
use ort::session::Session;
use ort::value::Tensor;
use std::path::{Path, PathBuf};
use tokenizers::{Tokenizer, TruncationParams};

/// Where a model's files are. All three must exist; nothing is ever downloaded.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub runtime: PathBuf,
    pub model: PathBuf,
    pub tokenizer: PathBuf,
    /// Longest input the model reads, special tokens included (its max_seq_length).
    pub max_seq_len: usize,
}

impl ModelFiles {
    /// A model folder's files: model.onnx and tokenizer.json.
    pub fn in_dir(runtime: PathBuf, dir: &Path, max_seq_len: usize) -> ModelFiles {
        ModelFiles { runtime, model: dir.join("model.onnx"), tokenizer: dir.join("tokenizer.json"), max_seq_len }
    }
}

/// [CLS] and [SEP] (BERT), <s> and </s> (MPNet).
pub const SPECIAL_TOKENS: usize = 2;
/// Texts per ONNX run when a session embeds many at once by itself.
const BATCH: usize = 32;

/// Where the model runs. `Auto` takes CUDA when the runtime library was built with it and a GPU
/// answers, else the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Auto,
    Cpu,
    Cuda,
}

/// How a session is built: device and ONNX Runtime intra-op threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    pub device: Device,
    pub threads: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { device: Device::Cpu, threads: 1 }
    }
}

fn unavailable(what: &str, path: &Path, e: impl std::fmt::Display) -> DocError {
    DocError::new(ErrorKind::ModelUnavailable, format!("cannot load {what} \"{}\": {e}", path.display())).with_hint(
        "run `make install` (or scripts/setup.sh) to install the model files, or point the docchat.model_dir / \
         docchat.onnxruntime_library settings at them",
    )
}

fn require(what: &str, path: &Path) -> Result<()> {
    if path.is_file() {
        Ok(())
    } else {
        Err(unavailable(what, path, "file not found"))
    }
}

/// Most bytes of a text that its model input is read from, per word-piece of the sequence
/// length. Real text needs under 10 bytes a piece; the bound keeps one 10 MB argument from
/// tokenizing for seconds in the model worker that every session shares. Only a text made
/// mostly of whitespace, or of words over 100 characters, could lose pieces to it.
pub const MODEL_INPUT_BYTES_PER_PIECE: usize = 128;

/// The part of `text` that can reach a model reading at most `max_seq_len` word-pieces.
pub fn model_input(text: &str, max_seq_len: usize) -> &str {
    let mut end = max_seq_len.saturating_mul(MODEL_INPUT_BYTES_PER_PIECE);
    if text.len() <= end {
        return text;
    }
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The word-piece tokenizer twice: truncating at the model's sequence length (model input)
/// and untruncated (what the chunker counts). Neither pads.
pub struct TextTokenizer {
    model_input: Tokenizer,
    whole: Tokenizer,
    max_seq_len: usize,
}

impl TextTokenizer {
    /// `max_seq_len`: where model input is truncated, special tokens included.
    pub fn load(path: &Path, max_seq_len: usize) -> Result<Self> {
        require("tokenizer", path)?;
        let mut whole = Tokenizer::from_file(path).map_err(|e| unavailable("tokenizer", path, e))?;
        whole.with_padding(None);
        whole.with_truncation(None).map_err(|e| unavailable("tokenizer", path, e))?;
        let mut model_input = whole.clone();
        model_input
            .with_truncation(Some(TruncationParams { max_length: max_seq_len, ..Default::default() }))
            .map_err(|e| unavailable("tokenizer", path, e))?;
        Ok(TextTokenizer { model_input, whole, max_seq_len })
    }

    /// Word-pieces of `text` without special tokens and without truncation: what the chunker counts.
    pub fn pieces(&self, text: &str) -> Result<Vec<Piece>> {
        let enc = self.whole.encode(text, false).map_err(tokenizer_failure)?;
        let mut prev_word = None;
        Ok(enc
            .get_offsets()
            .iter()
            .zip(enc.get_word_ids())
            .map(|(&(start, end), &word)| {
                let word_start = word != prev_word;
                prev_word = word;
                Piece { start, end, word_start }
            })
            .collect())
    }

    pub fn encode(&self, text: &str) -> Result<tokenizers::Encoding> {
        self.model_input.encode(model_input(text, self.max_seq_len), true).map_err(tokenizer_failure)
    }
}

fn tokenizer_failure(e: impl std::fmt::Display) -> DocError {
    DocError::new(ErrorKind::ModelFailure, format!("tokenizer failed: {e}"))
}

/// ONNX Runtime is loaded once per process; the first library path wins.
static RUNTIME: OnceCell<ort::environment::Environment> = OnceCell::new();

fn runtime(path: &Path) -> Result<&'static ort::environment::Environment> {
    RUNTIME.get_or_try_init(|| {
        require("ONNX Runtime library", path)?;
        let builder = ort::init_from(path).map_err(|e| unavailable("ONNX Runtime library", path, e))?;
        builder.with_name("docchat").build().map_err(|e| unavailable("ONNX Runtime library", path, e))
    })
}

pub struct Embedder {
    session: Session,
    tokenizer: TextTokenizer,
    /// Whether the graph takes token_type_ids (BERT does, MPNet does not).
    wants_token_types: bool,
    pub dim: usize,
    /// "cpu" or "cuda": where the session actually runs.
    pub device: &'static str,
}

/// The input the model reads for one text: word-piece ids with special tokens, truncated.
pub type Encoded = tokenizers::Encoding;

impl Embedder {
    /// Loads the runtime, the tokenizer and an ONNX session.
    pub fn load(files: &ModelFiles, opts: RunOptions) -> Result<Self> {
        let tokenizer = TextTokenizer::load(&files.tokenizer, files.max_seq_len)?;
        let (session, device) = open_session(&files.runtime, &files.model, opts)?;
        let wants_token_types = session.inputs().iter().any(|i| i.name() == "token_type_ids");
        let mut embedder = Embedder { session, tokenizer, wants_token_types, dim: 0, device };
        embedder.dim = embedder.embed(&["dimension probe"])?[0].len();
        Ok(embedder)
    }

    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// One unit vector per text, in order. Texts are batched by length to keep padding small.
    pub fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let encodings = texts.iter().map(|t| self.tokenizer.encode(t)).collect::<Result<Vec<_>>>()?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        for batch in order.chunks(BATCH) {
            let encs: Vec<_> = batch.iter().map(|&i| &encodings[i]).collect();
            for (&i, v) in batch.iter().zip(self.run_batch(&encs)?) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// One ONNX run over already tokenized texts, padded to the longest.
    pub fn run_batch(&mut self, encs: &[&Encoded]) -> Result<Vec<Vec<f32>>> {
        let rows = encs.len();
        let cols = encs.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![0i64; rows * cols];
        let mut mask = vec![0i64; rows * cols];
        for (r, e) in encs.iter().enumerate() {
            for (c, (&id, &m)) in e.get_ids().iter().zip(e.get_attention_mask()).enumerate() {
                ids[r * cols + c] = id as i64;
                mask[r * cols + c] = m as i64;
            }
        }
        let fail = |e: ort::Error| DocError::new(ErrorKind::ModelFailure, format!("embedding model failed: {e}"));
        let shape = [rows as i64, cols as i64];
        let mut inputs = ort::inputs![
            "input_ids" => Tensor::from_array((shape, ids)).map_err(fail)?,
            "attention_mask" => Tensor::from_array((shape, mask.clone())).map_err(fail)?,
        ];
        if self.wants_token_types {
            inputs.push(("token_type_ids".into(), Tensor::from_array((shape, vec![0i64; rows * cols])).map_err(fail)?.into()));
        }
        let outputs = self.session.run(inputs).map_err(fail)?;
        let (out_shape, hidden) = outputs[0].try_extract_tensor::<f32>().map_err(fail)?;
        let dim = *out_shape.last().unwrap_or(&0) as usize;
        Ok((0..rows).map(|r| mean_pool_normalised(&hidden[r * cols * dim..(r + 1) * cols * dim], &mask[r * cols..(r + 1) * cols], dim)).collect())
    }
}

/// An ONNX Runtime session for `model` on the device `opts` asks for, and where it runs.
pub fn open_session(runtime_library: &Path, model: &Path, opts: RunOptions) -> Result<(Session, &'static str)> {
    let env = runtime(runtime_library)?;
    require("model", model)?;
    let build = |cuda| build_session(env, runtime_library, model, opts.threads, cuda);
    Ok(match opts.device {
        Device::Cpu => (build(false)?, "cpu"),
        Device::Cuda => (build(true)?, "cuda"),
        Device::Auto if cuda_runtime_present(runtime_library) => match build(true) {
            Ok(s) => (s, "cuda"),
            Err(_) => (build(false)?, "cpu"),
        },
        Device::Auto => (build(false)?, "cpu"),
    })
}

fn build_session(env: &ort::environment::Environment, runtime_library: &Path, model: &Path, threads: usize, cuda: bool) -> Result<Session> {
    let fail = |e: ort::Error| unavailable("model", model, e);
    let mut builder = Session::builder(env)
        .map_err(fail)?
        .with_intra_threads(threads.max(1))
        .map_err(|e| fail(e.into()))?
        .with_inter_threads(1)
        .map_err(|e| fail(e.into()))?
        // Idle pool threads sleep instead of spinning: the cores are shared with Postgres backends.
        .with_intra_op_spinning(false)
        .map_err(|e| fail(e.into()))?;
    if cuda {
        builder = builder
            .with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
            .map_err(|e| unavailable("CUDA execution provider for", runtime_library, e))?;
    }
    // Its thread pools start here and inherit this thread's signal mask (crate::threads).
    crate::threads::with_signals_blocked(|| builder.commit_from_file(model)).map_err(fail)
}

/// The onnxruntime-gpu build ships its CUDA provider as a library beside the runtime.
fn cuda_runtime_present(runtime: &Path) -> bool {
    runtime.parent().is_some_and(|dir| dir.join("libonnxruntime_providers_cuda.so").is_file())
}

/// Mean of the token vectors under the attention mask, scaled to unit length.
pub fn mean_pool_normalised(hidden: &[f32], mask: &[i64], dim: usize) -> Vec<f32> {
    let mut sum = vec![0f32; dim];
    let mut n = 0f32;
    for (t, &m) in mask.iter().enumerate() {
        if m != 0 {
            n += 1.0;
            for (s, h) in sum.iter_mut().zip(&hidden[t * dim..(t + 1) * dim]) {
                *s += h;
            }
        }
    }
    let n = n.max(1.0);
    sum.iter_mut().for_each(|s| *s /= n);
    let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    sum.iter_mut().for_each(|s| *s /= norm);
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_ignores_padding_and_normalises() {
        let hidden = [1.0, 0.0, 3.0, 0.0, 100.0, 100.0];
        let v = mean_pool_normalised(&hidden, &[1, 1, 0], 2);
        assert_eq!(v, vec![1.0, 0.0]);
    }

    #[test]
    fn model_input_is_bounded_at_a_char_boundary() {
        assert_eq!(model_input("short text", 4), "short text");
        let long = "é".repeat(1000); // two bytes each
        let cut = model_input(&long, 3);
        assert_eq!(cut.len(), 3 * MODEL_INPUT_BYTES_PER_PIECE);
        let odd = format!("x{long}");
        assert_eq!(model_input(&odd, 3).len(), 3 * MODEL_INPUT_BYTES_PER_PIECE - 1);
    }
}

#[cfg(test)]
pub(crate) mod model_tests {
    //! Against the real model files that scripts/setup.sh installs under .cache/.
    use super::*;

    /// The fp32 MiniLM export (scripts/models.sh), whose vectors do not depend on batch companions;
    /// DOCCHAT_TEST_MODEL_DIR and DOCCHAT_ORT_LIB point elsewhere.
    pub(crate) fn files() -> ModelFiles {
        let cache = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache");
        let env_or = |var: &str, default: PathBuf| std::env::var(var).map(PathBuf::from).unwrap_or(default);
        ModelFiles::in_dir(
            env_or("DOCCHAT_ORT_LIB", cache.join("py/onnxruntime/onnxruntime/capi/libonnxruntime.so.1.31.1")),
            &env_or("DOCCHAT_TEST_MODEL_DIR", cache.join("models/all-MiniLM-L6-v2-fp32")),
            256,
        )
    }

    #[test]
    fn pieces_match_the_model_encoding() {
        let tok = TextTokenizer::load(&files().tokenizer, 256).unwrap();
        let text = "Héllo, wörld! Tokenizers split unbelievably long words; 東京 too.";
        let pieces = tok.pieces(text).unwrap();
        assert_eq!(pieces.len() + SPECIAL_TOKENS, tok.encode(text).unwrap().len());
        // Every slice cut at a word start re-tokenizes to exactly its pieces.
        for (i, p) in pieces.iter().enumerate().filter(|(_, p)| p.word_start) {
            assert_eq!(tok.pieces(&text[p.start..]).unwrap().len(), pieces.len() - i, "cut at {i}");
        }
        // Ten megabytes are read only as far as the model can see: the same ids as a short prefix.
        let huge = "many words in a long text ".repeat(400_000);
        assert_eq!(tok.encode(&huge).unwrap().get_ids(), tok.encode(&huge[..4000]).unwrap().get_ids());
        let long = "word ".repeat(400);
        assert_eq!(tok.pieces(&long).unwrap().len(), 400, "pieces are not truncated");
        assert_eq!(tok.encode(&long).unwrap().len(), 256, "model input is");
    }

    #[test]
    fn embeddings_are_unit_vectors_and_batch_independent() {
        let mut e = Embedder::load(&files(), RunOptions::default()).unwrap();
        assert_eq!(e.dim, 384);
        let texts = ["a short one", "a considerably longer sentence about something else entirely", "x"];
        let batch = e.embed(&texts).unwrap();
        for (t, v) in texts.iter().zip(&batch) {
            let single = e.embed(&[t]).unwrap().pop().unwrap();
            let cos: f32 = single.iter().zip(v).map(|(a, b)| a * b).sum();
            assert!(cos > 0.9999, "{t}: {cos}");
            assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn missing_files_are_named_in_the_error() {
        let mut f = files();
        f.model = PathBuf::from("/nonexistent/model.onnx");
        let err = Embedder::load(&f, RunOptions::default()).err().unwrap();
        assert_eq!(err.kind, ErrorKind::ModelUnavailable);
        assert_eq!(err.message, "cannot load model \"/nonexistent/model.onnx\": file not found");
    }
}
