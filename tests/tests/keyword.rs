//! Keyword search is BM25 over per-owner statistics the triggers on docchat.chunks keep exact:
//! after ingests by two owners, deletes and an update, the tables equal a recount from the
//! chunks, and the scores docchat_search returns equal BM25 computed here in SQL from the
//! chunks' own tsvectors, for the default and for changed k1 and b.
use docchat_tests::*;
use postgres::Client;

const DB: &str = "t_keyword";

/// The statistics as stored and as recounted from the chunks, one line per corpus or lexeme.
fn stored_and_recounted(c: &mut Client) -> (Vec<String>, Vec<String>) {
    let lines = |c: &mut Client, sql: &str| -> Vec<String> { c.query(sql, &[]).unwrap().iter().map(|r| r.get(0)).collect() };
    let stored = lines(
        c,
        "SELECT line FROM (
           SELECT format('%s %s %s %s %s', owner, model, ts_config, n_chunks, n_terms) AS line FROM docchat.corpus_stats WHERE n_chunks > 0
           UNION ALL
           SELECT format('%s %s %s', s.owner, l.lexeme, l.n_chunks) FROM docchat.lexeme_stats l JOIN docchat.corpus_stats s ON s.id = l.corpus) x
         ORDER BY 1",
    );
    let recounted = lines(
        c,
        "SELECT line FROM (
           SELECT format('%s %s %s %s %s', owner, model, ts_config, count(*),
                         sum((SELECT sum(coalesce(array_length(t.positions, 1), 1)) FROM unnest(fts) t))) AS line
           FROM docchat.chunks GROUP BY owner, model, ts_config
           UNION ALL
           SELECT format('%s %s %s', c.owner, t.lexeme, count(*)) FROM docchat.chunks c, unnest(c.fts) t GROUP BY c.owner, t.lexeme) x
         ORDER BY 1",
    );
    (stored, recounted)
}

/// BM25 of every chunk of the caller's for the query, computed from the chunks alone.
const BM25_IN_SQL: &str = "
    WITH corpus AS (SELECT count(*)::float8 AS n, avg((SELECT sum(array_length(t.positions, 1)) FROM unnest(fts) t)) AS avg_len
                    FROM docchat.chunks),
    terms AS (SELECT DISTINCT t.lexeme FROM unnest(to_tsvector((SELECT min(ts_config) FROM docchat.chunks)::regconfig, $1)) t),
    df AS (SELECT terms.lexeme, count(c.chunk_index)::float8 AS df FROM terms
           LEFT JOIN docchat.chunks c ON c.fts @@ docchat.quote_lexeme(terms.lexeme)::tsquery GROUP BY 1),
    tf AS (SELECT c.document_id, c.chunk_index, t.lexeme, array_length(t.positions, 1)::float8 AS tf,
                  (SELECT sum(array_length(u.positions, 1)) FROM unnest(c.fts) u)::float8 AS len
           FROM docchat.chunks c, unnest(c.fts) t WHERE t.lexeme IN (SELECT lexeme FROM terms))
    SELECT tf.document_id::text, tf.chunk_index,
           sum(ln(1 + (corpus.n - df.df + 0.5) / (df.df + 0.5)) * tf.tf * ($2::float8 + 1)
               / (tf.tf + $2::float8 * (1 - $3::float8 + $3::float8 * tf.len / corpus.avg_len))) AS score
    FROM tf JOIN df USING (lexeme), corpus
    GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2";

fn scores(c: &mut Client, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> Vec<(String, i32, f64)> {
    c.query(sql, params).unwrap().iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
}

#[test]
fn statistics_stay_exact_and_scores_are_bm25() {
    let mut admin = fresh_db(DB);
    create_role(&mut admin, "kw_ann", true);
    create_role(&mut admin, "kw_ben", true);
    let mut ann = connect(DB, "kw_ann");
    let mut ben = connect(DB, "kw_ben");
    let mut ids = Vec::new();
    for name in ["pdf/pypdf__crazyones.pdf", "office/pandoc__getting-started.md", "pdf/pdfjs__tracemonkey.pdf"] {
        ids.push(ingest(&mut ann, &read_shared(&format!("corpus/{name}")), name).unwrap());
    }
    for (i, text) in ["The crazy ones, the misfits, the rebels.", "Rebels push the human race forward.", "Loops are traced."].iter().enumerate() {
        ingest(&mut ben, text.as_bytes(), &format!("ben-{i}.txt")).unwrap();
    }
    let (stored, recounted) = stored_and_recounted(&mut admin);
    assert!(stored.len() > 100, "{} lines", stored.len());
    assert_eq!(stored, recounted, "after ingests");

    // A delete (cascading to chunks), an update of chunks in place, and a re-ingest.
    ann.batch_execute(&format!("SELECT docchat_delete('{}')", ids[0])).unwrap();
    admin.batch_execute("UPDATE docchat.chunks SET content = content || ' rebels rebels' WHERE owner = 'kw_ben' AND chunk_index = 0").unwrap();
    ingest(&mut ann, &read_shared("corpus/pdf/pypdf__crazyones.pdf"), "again.pdf").unwrap();
    let (stored, recounted) = stored_and_recounted(&mut admin);
    assert_eq!(stored, recounted, "after a delete, an update and a re-ingest");
    let lengths_differ: i64 = admin
        .query_one(
            "SELECT count(*) FROM docchat.chunks WHERE docchat.fts_length(fts) <> (SELECT coalesce(sum(array_length(t.positions, 1)), 0) FROM unnest(fts) t)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(lengths_differ, 0);

    let configs: i64 = ben.query_one("SELECT count(DISTINCT ts_config) FROM docchat.chunks", &[]).unwrap().get(0);
    assert_eq!(configs, 1, "the SQL below scores one configuration");
    // Scores: Ben's corpus alone (Ann's chunks count for Ann only), for two parameter settings.
    for (k1, b) in [(1.2f64, 0.75f64), (2.0, 0.3)] {
        ben.batch_execute(&format!("SET docchat.bm25_k1 = {k1}; SET docchat.bm25_b = {b}")).unwrap();
        for q in ["rebels", "the crazy rebels push loops"] {
            let want = scores(&mut ben, BM25_IN_SQL, &[&q, &k1, &b]);
            let got = scores(&mut ben, "SELECT document_id::text, chunk_index, score FROM docchat_search($1, 10, -1, mode => 'keyword')", &[&q]);
            assert!(!want.is_empty());
            assert_eq!(got.len(), want.len(), "{q} k1={k1} b={b}: {got:?} vs {want:?}");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!((&g.0, g.1), (&w.0, w.1), "{q} k1={k1} b={b}");
                assert!((g.2 - w.2).abs() < 1e-9, "{q} k1={k1} b={b}: {g:?} vs {w:?}");
            }
        }
    }

    // An admin's rebuild gives the same tables; users may not run it.
    let before = stored_and_recounted(&mut admin).0;
    admin.batch_execute("SELECT docchat.rebuild_search_stats()").unwrap();
    assert_eq!(stored_and_recounted(&mut admin).0, before);
    assert_eq!(sqlstate(&ben.batch_execute("SELECT docchat.rebuild_search_stats()").unwrap_err()), "42501");
    assert_eq!(sqlstate(&ben.batch_execute("SELECT * FROM docchat.lexeme_stats").unwrap_err()), "42501");
}

/// The text index path reads only the chunks whose terms' bounds can reach the depth-th score
/// (docchat.keyword_candidates' tsqueries, after a first pass over the chunks expected to
/// score best): its results must be exactly those of scoring every chunk, for real abstracts
/// and real questions (SciFact), at keyword search's depth (k) and at hybrid's (100).
#[test]
fn pruned_keyword_search_returns_exactly_the_full_ranking() {
    let mut admin = fresh_db("t_keyword_pruned");
    create_role(&mut admin, "kw_many", true);
    let mut user = connect("t_keyword_pruned", "kw_many");
    let read = |name: &str| -> Vec<String> {
        String::from_utf8(read_shared(&format!("corpus/retrieval/scifact/{name}")))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| format!("{} {}", v.get("title").and_then(|t| t.as_str()).unwrap_or(""), v["text"].as_str().unwrap()))
            .collect()
    };
    let abstracts: Vec<String> = read("corpus.jsonl").into_iter().take(3000).collect();
    admin
        .execute(
            "WITH d AS (INSERT INTO docchat.documents (id, owner, filename, mime_type, size, sha256, model, ts_config, n_chunks)
                        VALUES ('00000000-0000-0000-0000-0000000000ab', 'kw_many', 'scifact.txt', 'text/plain', 0, '',
                                'all-MiniLM-L6-v2', 'pg_catalog.english', cardinality($1::text[])) RETURNING id)
             INSERT INTO docchat.chunks (document_id, chunk_index, owner, content, char_start, char_end, n_tokens, model, embedding, ts_config)
             SELECT d.id, a.i - 1, 'kw_many', a.text, 0, length(a.text), 1, 'all-MiniLM-L6-v2',
                    array_fill(0.05, ARRAY[384])::vector, 'pg_catalog.english'
             FROM d, unnest($1::text[]) WITH ORDINALITY a(text, i)",
            &[&abstracts],
        )
        .unwrap();
    let mut queries: Vec<String> = read("queries.jsonl").into_iter().take(60).collect();
    // One common term, common terms only, a rare term among common ones, a term no chunk holds.
    queries.extend(["cells", "the role of cells in patients with disease", "cells patients mitochondria", "zzzqqq cells"].map(String::from));
    let ranking = |c: &mut Client, q: &str, k: i32, limit: &str| -> Vec<(String, i32, f64)> {
        c.batch_execute(&format!("SET docchat.exact_search_limit = {limit}")).unwrap();
        scores(c, "SELECT document_id::text, chunk_index, score FROM docchat_search($1, $2, -1, mode => 'keyword')", &[&q, &k])
    };
    let mut nonempty = 0;
    for q in &queries {
        for k in [8, 100] {
            let full = ranking(&mut user, q, k, "10000000");
            let pruned = ranking(&mut user, q, k, "0");
            assert_eq!(pruned, full, "{q:?} k={k}");
            nonempty += !full.is_empty() as usize;
        }
    }
    assert!(nonempty >= 2 * 62, "{nonempty} non-empty rankings");
}
