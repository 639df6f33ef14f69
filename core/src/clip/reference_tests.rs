//! docchat's CLIP preprocessing, tokenizer and towers against reference implementations, over
//! the fixtures scripts/clip_fixture.sh makes (DOCCHAT_TEST_CLIP_FIXTURE, default
//! .cache/clip-fixture): Pillow-based CLIP preprocessing, OpenAI's simple_tokenizer.py and
//! ONNX Runtime's Python API on a CLIP-shaped model with pseudo-random weights.
use super::preprocess;
use super::tokenizer::ClipTokenizer;
use super::{ClipFiles, ClipImageModel, ClipTextModel};
use crate::embed::RunOptions;
use serde_json::Value;
use std::path::PathBuf;

fn fixture() -> PathBuf {
    let default = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/clip-fixture");
    let dir = std::env::var("DOCCHAT_TEST_CLIP_FIXTURE").map(PathBuf::from).unwrap_or(default);
    assert!(dir.join("reference/embeddings.json").is_file(), "{}: run scripts/clip_fixture.sh first", dir.display());
    dir
}

fn json(path: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture().join(path)).unwrap()).unwrap()
}

/// Every reference image: name and bytes (corpus images, then the fixture's own).
fn images() -> Vec<(String, Vec<u8>)> {
    let refs = fixture().join("reference/pixels");
    let mut names: Vec<String> = std::fs::read_dir(&refs).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
        .into_iter()
        .map(|f| {
            let name = f.trim_end_matches(".f32").to_string();
            let own = fixture().join("images").join(&name);
            let bytes = if own.is_file() { std::fs::read(own).unwrap() } else { crate::parse::shared_file(&format!("corpus/images/{name}")) };
            (name, bytes)
        })
        .collect()
}

fn reference_pixels(name: &str) -> Vec<f32> {
    let raw = std::fs::read(fixture().join(format!("reference/pixels/{name}.f32"))).unwrap();
    raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn files() -> ClipFiles {
    ClipFiles { runtime: crate::embed::model_tests::files().runtime, dir: fixture().join("model") }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn vector(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

#[test]
fn token_ids_match_openai_simple_tokenizer() {
    let tok = ClipTokenizer::load(&files().vocabulary()).unwrap();
    let cases = json("reference/tokens.json");
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 20);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want: Vec<i64> = case["ids"].as_array().unwrap().iter().map(|i| i.as_i64().unwrap()).collect();
        assert_eq!(tok.model_input(text), want, "{text:?}");
    }
}

/// One 8-bit level in normalised units is 1 / (255 · std) ≈ 0.0152.
const LEVEL: f32 = 1.0 / (255.0 * 0.26);

#[test]
fn pixels_match_pillow_clip_preprocessing() {
    let mut report = Vec::new();
    for (name, bytes) in images() {
        let ours = preprocess::pixels(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = reference_pixels(&name);
        assert_eq!(ours.len(), want.len(), "{name}");
        let diffs: Vec<f32> = ours.iter().zip(&want).map(|(a, b)| (a - b).abs()).collect();
        let max = diffs.iter().cloned().fold(0f32, f32::max);
        let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
        report.push(format!("{name}: max {:.4} levels, mean {:.5} levels", max / LEVEL, mean / LEVEL));
        if name.ends_with(".jpg") {
            // Another JPEG decoder (zune-jpeg, not libjpeg-turbo): a few levels at most, rarely.
            assert!(max <= 4.0 * LEVEL && mean <= 0.2 * LEVEL, "{}", report.last().unwrap());
        } else {
            // Lossless formats: the same 8-bit pixels as Pillow, so float32 rounding only.
            assert!(max <= 1e-5, "{}", report.last().unwrap());
        }
    }
    println!("{}", report.join("\n"));
}

#[test]
fn embeddings_match_onnx_runtime_on_reference_inputs() {
    let refs = json("reference/embeddings.json");
    let mut visual = ClipImageModel::load(&files(), RunOptions::default()).unwrap();
    for (name, bytes) in images() {
        let ours = visual.embed_bytes(&[&bytes]).unwrap().pop().unwrap();
        let want = vector(&refs["images"][&name]);
        let cos = cosine(&ours, &want);
        assert!(cos > if name.ends_with(".jpg") { 0.999 } else { 0.99999 }, "{name}: cosine {cos}");
        assert!((cosine(&ours, &ours) - 1.0).abs() < 1e-5);
    }
    let mut textual = ClipTextModel::load(&files(), RunOptions::default()).unwrap();
    let texts = refs["texts"].as_array().unwrap();
    let strings: Vec<&str> = texts.iter().map(|t| t["text"].as_str().unwrap()).collect();
    // One batch: padding and batch companions change nothing.
    let ours = textual.embed(&strings).unwrap();
    for (t, v) in texts.iter().zip(&ours) {
        let cos = cosine(v, &vector(&t["vector"]));
        assert!(cos > 0.99999, "{:?}: cosine {cos}", t["text"]);
    }
}

#[test]
fn missing_files_are_listed_and_refused_with_a_hint() {
    let f = ClipFiles { runtime: files().runtime, dir: PathBuf::from("/nonexistent/clip") };
    assert_eq!(f.missing(), vec!["visual.onnx", "textual.onnx", "bpe_simple_vocab_16e6.txt.gz or merges.txt"]);
    let e = ClipImageModel::load(&f, RunOptions::default()).err().unwrap();
    assert_eq!(e.kind, crate::ErrorKind::ModelUnavailable);
    assert_eq!(e.message, "cannot load model \"/nonexistent/clip/visual.onnx\": file not found");
    assert!(e.hint.unwrap().contains("docchat.clip_model_dir"));
    assert!(files().missing().is_empty());
}
