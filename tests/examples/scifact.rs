//! BEIR SciFact through docchat's SQL functions (see bench/scifact.sh, which starts a cluster):
//!   scifact ingest DIR MODEL        each corpus abstract (title + " " + text) a document, via
//!                                   docchat_ingest(..., model => MODEL), 4 sessions at once;
//!                                   skipped when the database already holds them for MODEL
//!   scifact eval DIR MODEL MODE     the 300 test queries through docchat_search(q, 300, -1,
//!                                   model => MODEL, mode => MODE): nDCG@10 and recall@100
//! Metrics as BEIR computes them (pytrec_eval): a document's rank is that of its best chunk; a document
//! whose id equals the query id is ignored; gain = qrels relevance, discount 1/log2(rank + 1), ideal
//! DCG from the judged-relevant documents; means over the queries in qrels/test.tsv.
use docchat_tests::{connect, percentile};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

const SESSIONS: usize = 4;

fn db() -> String {
    std::env::var("DOCCHAT_BENCH_DB").unwrap_or_else(|_| "scifact".into())
}

fn jsonl(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn ingest(dir: &str, model: &str) {
    let docs: Vec<(String, String)> = jsonl(&format!("{dir}/corpus.jsonl"))
        .iter()
        .map(|d| {
            let text = format!("{} {}", d["title"].as_str().unwrap_or(""), d["text"].as_str().unwrap_or(""));
            (d["_id"].as_str().unwrap().to_owned(), text.trim().to_owned())
        })
        .collect();
    let mut c = connect(&db(), "postgres");
    let have: i64 =
        c.query_one("SELECT count(*) FROM docchat.documents WHERE model = $1 AND metadata->>'corpus' = 'scifact'", &[&model]).unwrap().get(0);
    if have as usize == docs.len() {
        println!("{model}: {have} documents already ingested");
        return;
    }
    c.execute("DELETE FROM docchat.documents WHERE model = $1 AND metadata->>'corpus' = 'scifact'", &[&model]).unwrap();
    let t = Instant::now();
    std::thread::scope(|s| {
        for part in docs.chunks(docs.len().div_ceil(SESSIONS)) {
            s.spawn(move || {
                let mut c = connect(&db(), "postgres");
                let stmt = c.prepare("SELECT docchat_ingest($1, $2, 'text/plain', '{\"corpus\": \"scifact\"}', model => $3)").unwrap();
                for (id, text) in part {
                    c.query_one(&stmt, &[&text.as_bytes(), id, &model]).unwrap_or_else(|e| panic!("document {id}: {e}"));
                }
            });
        }
    });
    let secs = t.elapsed().as_secs_f64();
    let chunks: i64 = c.query_one("SELECT count(*) FROM docchat.chunks WHERE model = $1", &[&model]).unwrap().get(0);
    println!("{model}: ingested {} documents ({chunks} chunks) in {secs:.0} s, {:.1} documents/s", docs.len(), docs.len() as f64 / secs);
}

fn qrels(dir: &str) -> HashMap<String, HashMap<String, i32>> {
    let mut out: HashMap<String, HashMap<String, i32>> = HashMap::new();
    let text = std::fs::read_to_string(format!("{dir}/qrels/test.tsv")).unwrap();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        out.entry(f[0].to_owned()).or_default().insert(f[1].to_owned(), f[2].trim().parse().unwrap());
    }
    out
}

fn ndcg_at(ranked: &[String], rel: &HashMap<String, i32>, k: usize) -> f64 {
    let dcg: f64 = ranked.iter().take(k).enumerate().map(|(i, d)| *rel.get(d).unwrap_or(&0) as f64 / (i as f64 + 2.0).log2()).sum();
    let mut ideal: Vec<i32> = rel.values().copied().filter(|&r| r > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal.iter().take(k).enumerate().map(|(i, &r)| r as f64 / (i as f64 + 2.0).log2()).sum();
    if idcg == 0.0 {
        0.0
    } else {
        dcg / idcg
    }
}

fn recall_at(ranked: &[String], rel: &HashMap<String, i32>, k: usize) -> f64 {
    let relevant: HashSet<&String> = rel.iter().filter(|(_, &r)| r > 0).map(|(d, _)| d).collect();
    ranked.iter().take(k).filter(|d| relevant.contains(d)).count() as f64 / relevant.len() as f64
}

fn eval(dir: &str, model: &str, mode: &str) {
    let qrels = qrels(dir);
    let queries: Vec<(String, String)> = jsonl(&format!("{dir}/queries.jsonl"))
        .iter()
        .filter(|q| qrels.contains_key(q["_id"].as_str().unwrap()))
        .map(|q| (q["_id"].as_str().unwrap().to_owned(), q["text"].as_str().unwrap().to_owned()))
        .collect();
    let mut c = connect(&db(), "postgres");
    c.batch_execute("SET docchat.log_searches = off").unwrap();
    let stmt = c.prepare("SELECT filename FROM docchat_search($1, 300, -1, model => $2, mode => $3)").unwrap();
    let (mut ndcg, mut recall, mut times) = (0.0, 0.0, Vec::new());
    for (qid, text) in &queries {
        let t = Instant::now();
        let rows = c.query(&stmt, &[text, &model, &mode]).unwrap_or_else(|e| panic!("query {qid}: {e}"));
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        let mut seen = HashSet::new();
        let ranked: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).filter(|d| d != qid && seen.insert(d.clone())).collect();
        ndcg += ndcg_at(&ranked, &qrels[qid], 10);
        recall += recall_at(&ranked, &qrels[qid], 100);
    }
    times.sort_by(f64::total_cmp);
    let n = queries.len() as f64;
    println!(
        "| {model} | {mode} | {:.4} | {:.4} | {:.1} ms | {:.1} ms | {} queries |",
        ndcg / n,
        recall / n,
        percentile(&times, 0.5),
        percentile(&times, 0.95),
        queries.len()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match (args.first().map(String::as_str), args.len()) {
        (Some("ingest"), 3) => ingest(&args[1], &args[2]),
        (Some("eval"), 4) => eval(&args[1], &args[2], &args[3]),
        _ => eprintln!("usage: scifact ingest DIR MODEL | eval DIR MODEL MODE"),
    }
}
