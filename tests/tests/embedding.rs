//! docchat_embed agrees with sentence-transformers on the reference texts.
use docchat_tests::*;

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * y).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn embeddings_match_sentence_transformers() {
    let mut c = fresh_db("t_embed");
    let reference = String::from_utf8(read_shared("reference/reference_minilm.jsonl")).unwrap();
    let mut cosines = Vec::new();
    for line in reference.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = row["text"].as_str().unwrap();
        let expected: Vec<f64> = row["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let got: Vec<f32> = c.query_one("SELECT docchat_embed($1)::real[]", &[&text]).unwrap().get(0);
        assert_eq!(got.len(), 384);
        let norm: f32 = got.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "embedding of {text:?} has norm {norm}");
        let cos = cosine(&got, &expected);
        assert!(cos >= 0.99, "cosine {cos:.4} < 0.99 for {text:?}");
        cosines.push(cos);
    }
    assert_eq!(cosines.len(), 200);
    let mean = cosines.iter().sum::<f64>() / cosines.len() as f64;
    let min = cosines.iter().cloned().fold(1.0, f64::min);
    eprintln!("reference agreement over {} texts: min {min:.4}, mean {mean:.5}", cosines.len());
    assert!(mean >= 0.999, "mean cosine {mean:.5} < 0.999");
}

#[test]
fn embed_is_null_for_null_and_deterministic() {
    let mut c = fresh_db("t_embed_null");
    let row = c.query_one("SELECT docchat_embed(NULL) IS NULL, docchat_embed('same') = docchat_embed('same')", &[]).unwrap();
    assert!(row.get::<_, bool>(0));
    assert!(row.get::<_, bool>(1));
}
