//! Search at scale (see bench/scale.sh, which starts a cluster):
//!   scale load DIR N LAYOUT    N chunks in docchat.chunks, owned as LAYOUT says:
//!                              one (one owner has all), many (1,000 owners), small (20 chunks
//!                              of one owner among N of another)
//!   scale query DIR LAYOUT     SciFact's 300 test queries through docchat_search, k = 8, every
//!                              mode: latency percentiles, row counts, semantic recall@10
//!                              (over every third query)
//!   scale images DIR N...      pictures of one owner, at each size N: the exact scan and the
//!                              HNSW index of docchat_search_images (docchat.nearest_images), k = 8,
//!                              latency, rows and the index's recall@8 (where the exact scan
//!                              stops paying: docchat.exact_search_limit)
//! Texts are real and not duplicates: each chunk joins three sentences of SciFact abstracts
//! (DIR/corpus.jsonl), chosen by a hash of its number. Vectors: each sentence is embedded once
//! with the default model (cached in bench_sentences), a chunk's vector is the normalised sum of
//! its sentences' vectors: real directions, mixed as real paragraphs mix them.
use docchat_tests::{connect, percentile};
use postgres::Client;
use serde_json::Value;
use std::collections::HashSet;
use std::time::Instant;

const DB: &str = "scale";
const OWNERS: usize = 1000;
const K: i32 = 8;

fn jsonl(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// SciFact's sentences of 40 to 300 characters, embedded once.
fn sentences(c: &mut Client, dir: &str) -> i64 {
    c.batch_execute("CREATE TABLE IF NOT EXISTS bench_sentences (id integer PRIMARY KEY, text text NOT NULL, vec vector(384) NOT NULL)").unwrap();
    let have: i64 = c.query_one("SELECT count(*) FROM bench_sentences", &[]).unwrap().get(0);
    if have > 0 {
        return have;
    }
    let mut all: Vec<String> = Vec::new();
    for d in jsonl(&format!("{dir}/corpus.jsonl")) {
        for s in d["text"].as_str().unwrap_or("").split(". ") {
            let s = s.trim();
            if (40..=300).contains(&s.len()) {
                all.push(format!("{}.", s.trim_end_matches('.')));
            }
        }
    }
    let t = Instant::now();
    for (b, batch) in all.chunks(256).enumerate() {
        let texts: Vec<&str> = batch.iter().map(String::as_str).collect();
        c.execute(
            "INSERT INTO bench_sentences SELECT $1::integer + n::integer - 1, t, v FROM unnest($2::text[], docchat_embed($2::text[])) WITH ORDINALITY u(t, v, n)",
            &[&((b * 256) as i32), &texts],
        )
        .unwrap();
    }
    println!("embedded {} sentences in {:.0} s", all.len(), t.elapsed().as_secs_f64());
    all.len() as i64
}

/// Chunk i's owner and document (SQL over i): documents of 100 consecutive chunks; in the small
/// layout, 20 chunks spread over the range are the small owner's, each its own document.
fn owner_and_document(layout: &str, n: i64) -> (String, String) {
    let small = format!("i % {} = 7", n / 20);
    let document = |prefix: &str, key: &str| format!("('00000000-0000-0000-{prefix}-' || lpad(({key})::text, 12, '0'))::uuid");
    match layout {
        "one" => ("'scale_0'".into(), document("0000", "i / 100")),
        "many" => ("'scale_' || (i / 100 % 1000)".into(), document("0000", "i / 100")),
        "small" => (
            format!("CASE WHEN {small} THEN 'scale_small' ELSE 'scale_big' END"),
            format!("CASE WHEN {small} THEN {} ELSE {} END", document("0001", "i"), document("0000", "i / 100")),
        ),
        _ => panic!("layout is one, many or small"),
    }
}

fn load(dir: &str, n: i64, layout: &str) {
    let mut c = connect(DB, "postgres");
    let s = sentences(&mut c, dir);
    for r in (0..OWNERS).map(|i| format!("scale_{i}")).chain(["scale_small".into(), "scale_big".into()]) {
        c.batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {r}; EXCEPTION WHEN duplicate_object THEN NULL; END $$; SELECT docchat.grant_usage('{r}')"
        ))
        .unwrap();
    }
    let loaded_as = format!("{n} {layout}");
    c.batch_execute("CREATE TABLE IF NOT EXISTS bench_loaded (what text)").unwrap();
    if c.query_opt("SELECT 1 FROM bench_loaded WHERE what = $1", &[&loaded_as]).unwrap().is_some() {
        println!("layout {layout}: {n} chunks already loaded");
        return;
    }
    let index: String = c.query_one("SELECT pg_get_indexdef('docchat.chunks_hnsw_all_minilm_l6_v2'::regclass)", &[]).unwrap().get(0);
    c.batch_execute("SET maintenance_work_mem = '4GB'; DROP INDEX docchat.chunks_hnsw_all_minilm_l6_v2; TRUNCATE docchat.documents CASCADE; SELECT docchat.rebuild_search_stats()").unwrap();
    let t = Instant::now();
    let (owner, document) = owner_and_document(layout, n);
    // In slices, so that one statement's transition table stays small.
    for start in (0..n).step_by(100_000) {
        let end = (start + 100_000).min(n);
        c.batch_execute(&format!(
            "INSERT INTO docchat.documents (id, owner, filename, mime_type, size, sha256, model, ts_config)
             SELECT DISTINCT ON (1) {document}, {owner}, 'doc-' || i, 'text/plain', 0, '', 'all-MiniLM-L6-v2', 'pg_catalog.english'
             FROM generate_series({start}, {end} - 1) i ORDER BY 1, i;
             INSERT INTO docchat.chunks (document_id, chunk_index, owner, content, char_start, char_end, n_tokens, model, embedding, ts_config)
             SELECT {document}, i, {owner}, a.text || ' ' || b.text || ' ' || x.text, 0, 0, 0, 'all-MiniLM-L6-v2',
                    l2_normalize(a.vec + b.vec + x.vec), 'pg_catalog.english'
             FROM generate_series({start}, {end} - 1) i
             JOIN bench_sentences a ON a.id = (hashint8(i) & 2147483647) % {s}
             JOIN bench_sentences b ON b.id = (hashint8(i + 7919) & 2147483647) % {s}
             JOIN bench_sentences x ON x.id = (hashint8(i + 104729) & 2147483647) % {s}"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    }
    c.batch_execute("UPDATE docchat.documents d SET n_chunks = (SELECT count(*) FROM docchat.chunks c WHERE c.document_id = d.id)").unwrap();
    let loaded = t.elapsed().as_secs_f64();
    c.execute("DELETE FROM bench_loaded", &[]).unwrap();
    let t = Instant::now();
    c.batch_execute(&index).unwrap();
    let indexed = t.elapsed().as_secs_f64();
    c.batch_execute("VACUUM ANALYZE docchat.chunks").unwrap();
    c.batch_execute("VACUUM ANALYZE docchat.documents").unwrap();
    let sizes: Vec<(String, i64)> = c
        .query(
            "SELECT x.name, pg_total_relation_size(x.rel) FROM (VALUES ('chunks table (heap + TOAST)', 'docchat.chunks'::regclass),
               ('HNSW index', 'docchat.chunks_hnsw_all_minilm_l6_v2'), ('text (GIN) index', 'docchat.chunks_fts_idx'),
               ('BM25 lexeme statistics', 'docchat.lexeme_stats')) x(name, rel)",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let heap: i64 = c.query_one("SELECT pg_total_relation_size('docchat.chunks') - pg_indexes_size('docchat.chunks')", &[]).unwrap().get(0);
    c.execute("INSERT INTO bench_loaded VALUES ($1)", &[&loaded_as]).unwrap();
    println!("layout {layout}: {n} chunks loaded (with statistics) in {loaded:.0} s, HNSW index built in {indexed:.0} s");
    println!(
        "sizes: chunks without indexes {} MB; {}",
        heap >> 20,
        sizes.iter().map(|(k, v)| format!("{k} {} MB", v >> 20)).collect::<Vec<_>>().join("; ")
    );
}

fn queries(dir: &str) -> Vec<String> {
    let test: HashSet<String> =
        std::fs::read_to_string(format!("{dir}/qrels/test.tsv")).unwrap().lines().skip(1).map(|l| l.split('\t').next().unwrap().to_owned()).collect();
    jsonl(&format!("{dir}/queries.jsonl"))
        .iter()
        .filter(|q| test.contains(q["_id"].as_str().unwrap()))
        .map(|q| q["text"].as_str().unwrap().to_owned())
        .collect()
}

fn query(dir: &str, layout: &str) {
    let qs = queries(dir);
    let mut c = connect(DB, "postgres");
    c.batch_execute("SET docchat.log_searches = off; SET docchat.query_cache_window = 0").unwrap();
    let role = |i: usize| match layout {
        "one" => "scale_0".to_string(),
        "many" => format!("scale_{}", (i * 7919) % OWNERS),
        _ => "scale_small".to_string(),
    };
    let owned: i64 = c.query_one(&format!("SELECT count(*) FROM docchat.chunks WHERE owner = '{}'", role(0)), &[]).unwrap().get(0);
    println!("| layout | mode | p50 | p95 | p99 | rows as expected | recall@10 |");
    for mode in ["semantic", "keyword", "hybrid"] {
        let (mut times, mut right, mut recall) = (Vec::new(), 0, 0.0);
        for (i, q) in qs.iter().enumerate() {
            c.batch_execute(&format!("SET ROLE {}", role(i))).unwrap();
            let t = Instant::now();
            let rows =
                c.query("SELECT document_id::text || '/' || chunk_index FROM docchat_search($1, $2, -1, mode => $3)", &[q, &K, &mode]).unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            let got: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            // Every owner has more than k chunks; keyword search finds min(k, the chunks matching a lexeme).
            let expected = if mode == "keyword" {
                c.batch_execute("RESET ROLE").unwrap();
                let matching: i64 = c
                    .query_one(
                        "SELECT count(*) FROM docchat.chunks c WHERE c.owner = $2 AND c.fts @@ docchat.any_lexeme_query('pg_catalog.english', $1)",
                        &[q, &role(i)],
                    )
                    .unwrap()
                    .get(0);
                matching.min(K as i64) as usize
            } else {
                (K as i64).min(owned) as usize
            };
            right += (got.len() == expected) as usize;
            // Recall over every third query: an exact search reads all of the owner's rows.
            if mode == "semantic" && i % 3 == 0 {
                // Exact: the owner's rows ordered by distance to the raw column, which no index
                // orders; the vector is a constant, so the scan may run in parallel.
                c.batch_execute("RESET ROLE").unwrap();
                let v: String = c.query_one("SELECT docchat_embed($1)::text", &[q]).unwrap().get(0);
                let exact: HashSet<String> = c
                    .query(
                        "SELECT c.document_id::text || '/' || c.chunk_index FROM docchat.chunks c
                         WHERE c.owner = $2 ORDER BY c.embedding <=> $1::text::vector LIMIT 10",
                        &[&v, &role(i)],
                    )
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                c.batch_execute(&format!("SET ROLE {}", role(i))).unwrap();
                let approx: Vec<String> = c
                    .query("SELECT document_id::text || '/' || chunk_index FROM docchat_search($1, 10, -1, mode => 'semantic')", &[q])
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                recall += approx.iter().filter(|h| exact.contains(*h)).count() as f64 / exact.len().max(1) as f64;
            }
            c.batch_execute("RESET ROLE").unwrap();
        }
        times.sort_by(f64::total_cmp);
        let recall = if mode == "semantic" { format!("{:.3}", recall / qs.len().div_ceil(3) as f64) } else { "-".into() };
        println!(
            "| {layout} | {mode} | {:.1} ms | {:.1} ms | {:.1} ms | {right}/{} | {recall} |",
            percentile(&times, 0.5),
            percentile(&times, 0.95),
            percentile(&times, 0.99),
            qs.len()
        );
    }
}

/// A 512-dimensional picture-like vector from two sentences' vectors (SQL over a and b): real
/// directions, as the CLIP model that would embed pictures is not installed here.
const IMAGE_VECTOR: &str = "l2_normalize(((a.vec::real[] || b.vec::real[])[1:512])::vector(512))";

fn images(dir: &str, sizes: &[i64]) {
    let mut c = connect(DB, "postgres");
    let s = sentences(&mut c, dir);
    c.batch_execute(
        "DO $$ BEGIN CREATE ROLE scale_img; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
         INSERT INTO docchat.documents (id, owner, filename, mime_type, size, sha256, model, ts_config)
         VALUES ('00000000-0000-0000-0002-000000000000', 'scale_img', 'pictures', 'image/png', 0, '', 'all-MiniLM-L6-v2', 'pg_catalog.english')
         ON CONFLICT DO NOTHING",
    )
    .unwrap();
    let qs: Vec<String> = queries(dir);
    // Query vectors made as the pictures' are, from the query's and another sentence's vector.
    let vectors: Vec<String> = qs
        .iter()
        .enumerate()
        .map(|(i, q)| {
            c.query_one(
                &format!("SELECT {IMAGE_VECTOR}::text FROM (SELECT docchat_embed($1) AS vec) a, bench_sentences b WHERE b.id = $2"),
                &[q, &(((i as i64 * 7919) % s) as i32)],
            )
            .unwrap()
            .get(0)
        })
        .collect();
    println!("| pictures | path | p50 | p95 | p99 | rows k = 8 | recall@8 of the index |");
    for &n in sizes {
        let have: i64 = c.query_one("SELECT count(*) FROM docchat.images WHERE owner = 'scale_img'", &[]).unwrap().get(0);
        c.execute(
            &format!(
                "INSERT INTO docchat.images (document_id, image_index, owner, name, mime_type, width, height, content, embedding)
                 SELECT '00000000-0000-0000-0002-000000000000', i, 'scale_img', 'picture ' || i, 'image/png', 1, 1, '\\x00', {IMAGE_VECTOR}
                 FROM generate_series($1::bigint, $2::bigint - 1) i
                 JOIN bench_sentences a ON a.id = (hashint8(i) & 2147483647) % {s}
                 JOIN bench_sentences b ON b.id = (hashint8(i + 7919) & 2147483647) % {s}"
            ),
            &[&have, &n],
        )
        .unwrap();
        c.batch_execute("VACUUM ANALYZE docchat.images").unwrap();
        let mut exact_hits = Vec::new();
        for exact in [true, false] {
            let (mut times, mut right, mut recall) = (Vec::new(), 0, 0.0);
            for (i, v) in vectors.iter().enumerate() {
                let t = Instant::now();
                let rows = c
                    .query(
                        "SELECT document_id::text || '/' || image_index FROM docchat.nearest_images('scale_img', $1::text::vector(512), 8, $2)",
                        &[v, &exact],
                    )
                    .unwrap();
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                let got: HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
                right += (got.len() == 8.min(n as usize)) as usize;
                if exact {
                    exact_hits.push(got);
                } else {
                    recall += exact_hits[i].intersection(&got).count() as f64 / exact_hits[i].len().max(1) as f64;
                }
            }
            times.sort_by(f64::total_cmp);
            let recall = if exact { "-".into() } else { format!("{:.3}", recall / vectors.len() as f64) };
            println!(
                "| {n} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {right}/{} | {recall} |",
                if exact { "exact scan" } else { "HNSW index" },
                percentile(&times, 0.5),
                percentile(&times, 0.95),
                percentile(&times, 0.99),
                vectors.len()
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match (args.first().map(String::as_str), args.len()) {
        (Some("load"), 4) => load(&args[1], args[2].parse().expect("N"), &args[3]),
        (Some("query"), 3) => query(&args[1], &args[2]),
        (Some("images"), n) if n > 2 => images(&args[1], &args[2..].iter().map(|n| n.parse().expect("N")).collect::<Vec<i64>>()),
        _ => eprintln!("usage: scale load DIR N LAYOUT | query DIR LAYOUT (LAYOUT: one, many, small) | images DIR N..."),
    }
}
