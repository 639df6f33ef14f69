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
        // The default model computes in int8 (measured: min 0.9867, mean 0.9970); the fp32 model
        // below gives sentence-transformers' vectors exactly.
        assert!(cos >= 0.98, "cosine {cos:.4} < 0.98 for {text:?}");
        cosines.push(cos);
    }
    assert_eq!(cosines.len(), 200);
    let mean = cosines.iter().sum::<f64>() / cosines.len() as f64;
    let min = cosines.iter().cloned().fold(1.0, f64::min);
    eprintln!("reference agreement over {} texts: min {min:.4}, mean {mean:.5}", cosines.len());
    assert!(mean >= 0.995, "mean cosine {mean:.5} < 0.995");
}

#[test]
fn embed_is_null_for_null_and_stable() {
    let mut c = fresh_db("t_embed_null");
    // Not bit-identical: other sessions' texts may share the worker's batch (see worker.rs).
    let row = c.query_one("SELECT docchat_embed(NULL) IS NULL, (docchat_embed('same') <=> docchat_embed('same')) < 0.015", &[]).unwrap();
    assert!(row.get::<_, bool>(0));
    assert!(row.get::<_, bool>(1));
}

/// Every reference text through `docchat_embed(text[], model)`: (min, mean) cosine to the reference.
fn agreement(c: &mut postgres::Client, model: &str, reference_file: &str, dimension: usize) -> (f64, f64) {
    let reference = String::from_utf8(read_shared(reference_file)).unwrap();
    let rows: Vec<serde_json::Value> = reference.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let texts: Vec<&str> = rows.iter().map(|r| r["text"].as_str().unwrap()).collect();
    let got: Vec<Vec<f32>> = c
        .query("SELECT e::real[] FROM unnest(docchat_embed($1::text[], $2)) WITH ORDINALITY u(e, n) ORDER BY n", &[&texts, &model])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(got.len(), 200);
    let cosines: Vec<f64> = got
        .iter()
        .zip(&rows)
        .map(|(v, r)| {
            assert_eq!(v.len(), dimension);
            let expected: Vec<f64> = r["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            cosine(v, &expected)
        })
        .collect();
    let min = cosines.iter().cloned().fold(1.0, f64::min);
    (min, cosines.iter().sum::<f64>() / cosines.len() as f64)
}

#[test]
fn exported_fp32_models_match_sentence_transformers_exactly() {
    let mut c = fresh_db("t_embed_fp32");
    for (model, reference, dim) in
        [("all-MiniLM-L6-v2-fp32", "reference/reference_minilm.jsonl", 384), ("all-mpnet-base-v2", "reference/reference_mpnet.jsonl", 768)]
    {
        let (min, mean) = agreement(&mut c, model, reference, dim);
        eprintln!("{model}: cosine to sentence-transformers min {min:.6}, mean {mean:.6}");
        assert!(min >= 0.999, "{model}: min cosine {min:.6} < 0.999");
    }
}

#[test]
fn models_are_chosen_per_call_or_by_setting() {
    let mut c = fresh_db("t_embed_models");
    let dims = |c: &mut postgres::Client, sql: &str| -> i32 { c.query_one(sql, &[]).unwrap().get(0) };
    assert_eq!(dims(&mut c, "SELECT vector_dims(docchat_embed('x'))"), 384, "the default model");
    assert_eq!(dims(&mut c, "SELECT vector_dims(docchat_embed('x', 'all-mpnet-base-v2'))"), 768);
    c.batch_execute("SET docchat.model = 'all-mpnet-base-v2'").unwrap();
    assert_eq!(dims(&mut c, "SELECT vector_dims(docchat_embed('x'))"), 768, "docchat.model picks the default");
    assert_eq!(dims(&mut c, "SELECT vector_dims((docchat_embed(ARRAY['x']))[1])"), 768);
    let err = c.query_one("SELECT docchat_embed('x', 'no-such-model')", &[]).unwrap_err();
    assert_eq!(sqlstate(&err), "22023");
    let db = err.as_db_error().unwrap();
    assert_eq!(db.message(), "unknown embedding model \"no-such-model\"");
    assert_eq!(db.hint(), Some("registered models: all-MiniLM-L6-v2, all-MiniLM-L6-v2-fp32, all-mpnet-base-v2"));
    // A registered model whose files are missing names the path.
    c.batch_execute("INSERT INTO docchat.models (name, dimension, max_seq_length, dir) VALUES ('ghost', 384, 256, '/nonexistent/ghost')").unwrap();
    let err = c.query_one("SELECT docchat_embed('x', 'ghost')", &[]).unwrap_err();
    assert_eq!(sqlstate(&err), "58P01", "{err}");
    assert!(err.as_db_error().unwrap().message().contains("/nonexistent/ghost/tokenizer.json"), "{err}");
    // Registering a model made its index.
    let idx: i64 = c.query_one("SELECT count(*) FROM pg_indexes WHERE indexname = 'chunks_hnsw_ghost'", &[]).unwrap().get(0);
    assert_eq!(idx, 1);
}
