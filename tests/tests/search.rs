//! docchat_search's modes, filters, snippets and errors, and row-level security at scale: a role
//! with 20 chunks among 100,000 of other roles' still gets min(k, matches) rows.
use docchat_tests::*;
use postgres::Client;
use std::time::Instant;

const DOCS: [(&str, &str); 4] = [
    ("cats.txt", "Cats are small carnivorous mammals. They hunt mice and birds at dusk."),
    ("market.txt", "The stock market rallied as investors cheered strong quarterly earnings from technology companies."),
    ("bread.txt", "Knead the dough for ten minutes, let it rise for an hour, then bake the loaf at 220 degrees."),
    ("katze.txt", "Die Katze jagt Mäuse im Garten. Katzen sind beliebte Haustiere und schlafen viel am Tag."),
];

fn corpus(name: &str) -> Client {
    let mut c = fresh_db(name);
    for (file, text) in DOCS {
        c.query_one(
            "SELECT docchat_ingest(convert_to($1, 'UTF8'), $2, metadata => jsonb_build_object('language', $3::text, 'topic', $4::text))",
            &[&text, &file, &if file == "katze.txt" { "de" } else { "en" }, &file.trim_end_matches(".txt")],
        )
        .unwrap();
    }
    c
}

fn files(c: &mut Client, sql: &str) -> Vec<String> {
    c.query(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")).iter().map(|r| r.get(0)).collect()
}

#[test]
fn keyword_mode_stems_in_the_documents_language_and_highlights() {
    let mut c = corpus("t_search_keyword");
    let langs = files(&mut c, "SELECT filename || '=' || ts_config FROM docchat.documents ORDER BY filename");
    assert_eq!(
        langs,
        ["bread.txt=pg_catalog.english", "cats.txt=pg_catalog.english", "katze.txt=pg_catalog.german", "market.txt=pg_catalog.english"]
    );
    // 'hunting' and 'hunt' share the English stem; 'Katzen' and 'Katze' the German one.
    assert_eq!(files(&mut c, "SELECT filename FROM docchat_search('hunting', 8, mode => 'keyword')"), ["cats.txt"]);
    assert_eq!(files(&mut c, "SELECT filename FROM docchat_search('katzen', 8, mode => 'keyword')"), ["katze.txt"]);
    let row = c.query_one("SELECT snippet, similarity, keyword_score > 0 FROM docchat_search('hunting mice', 1, mode => 'keyword')", &[]).unwrap();
    assert_eq!(row.get::<_, String>(0), "Cats are small carnivorous mammals. They <b>hunt</b> <b>mice</b> and birds at dusk");
    assert_eq!(row.get::<_, Option<f64>>(1), None, "keyword mode does not embed the query");
    assert!(row.get::<_, bool>(2));
    // A rarer term outweighs a common one: 'market' is in one document, 'the' is a stop word.
    assert!(files(&mut c, "SELECT filename FROM docchat_search('the', 8, mode => 'keyword')").is_empty());
}

#[test]
fn hybrid_fuses_both_rankings_and_keeps_keyword_hits_under_the_threshold() {
    let mut c = corpus("t_search_hybrid");
    let rows = c.query("SELECT filename, score, similarity, keyword_score FROM docchat_search('hunting mice', 4, -1)", &[]).unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0].get::<_, String>(0), "cats.txt");
    // Best on both sides: each side's scaled score is 1, and so is their mean.
    assert!((rows[0].get::<_, f64>(1) - 1.0).abs() < 1e-9, "{}", rows[0].get::<_, f64>(1));
    for r in &rows[1..] {
        assert!(r.get::<_, Option<f64>>(3).is_none(), "only cats.txt has the words");
        assert!(r.get::<_, f64>(1) < 0.5, "the semantic side alone, below its best, weighs half");
    }
    // The semantic side alone, with its similarity as the score.
    let sem = c.query("SELECT filename, score, similarity FROM docchat_search('hunting mice', 4, -1, mode => 'semantic')", &[]).unwrap();
    assert_eq!(sem.len(), 4);
    for r in &sem {
        assert_eq!(r.get::<_, f64>(1), r.get::<_, f64>(2));
    }
    // A high threshold drops weak semantic-only hits but keeps keyword matches.
    assert_eq!(files(&mut c, "SELECT filename FROM docchat_search('earnings', 8, 0.99)"), ["market.txt"]);
    assert!(files(&mut c, "SELECT filename FROM docchat_search('earnings', 8, 0.99, mode => 'semantic')").is_empty());
    // docchat.keyword_weight = 0 leaves the semantic order.
    c.batch_execute("SET docchat.keyword_weight = 0").unwrap();
    let fused = files(&mut c, "SELECT filename FROM docchat_search('bake bread', 4, -1)");
    let semantic = files(&mut c, "SELECT filename FROM docchat_search('bake bread', 4, -1, mode => 'semantic')");
    assert_eq!(fused, semantic);
}

#[test]
fn filters_match_ids_columns_and_metadata() {
    let mut c = corpus("t_search_filter");
    let market: String = c.query_one("SELECT id::text FROM docchat.documents WHERE filename = 'market.txt'", &[]).unwrap().get(0);
    let q = |f: &str| format!("SELECT DISTINCT filename FROM docchat_search('animals', 8, -1, filter => '{f}') ORDER BY 1");
    assert_eq!(files(&mut c, &q(&format!(r#"{{"document_ids": ["{market}"]}}"#))), ["market.txt"]);
    assert_eq!(files(&mut c, &q(r#"{"topic": "bread"}"#)), ["bread.txt"]);
    assert_eq!(files(&mut c, &q(r#"{"filename": "katze.txt"}"#)), ["katze.txt"]);
    assert_eq!(files(&mut c, &q(r#"{"mime_type": "text/plain", "language": "de"}"#)), ["katze.txt"]);
    assert_eq!(files(&mut c, &q(r#"{"mime_type": "application/pdf"}"#)).len(), 0);
    assert_eq!(files(&mut c, &q(r#"{"document_ids": []}"#)).len(), 0);
    assert_eq!(files(&mut c, &q("{}")).len(), 4);
}

#[test]
fn bad_arguments_are_clear_errors() {
    let mut c = corpus("t_search_errors");
    for (sql, message) in [
        ("SELECT * FROM docchat_search('x', mode => 'fuzzy')", "docchat_search: unknown mode 'fuzzy'"),
        ("SELECT * FROM docchat_search('x', filter => '[1]')", "docchat_search: filter must be a JSON object, got [1]"),
        (
            "SELECT * FROM docchat_search('x', filter => '{\"document_ids\": [\"nope\"]}')",
            "docchat_search: filter document_ids must be an array of document ids",
        ),
        ("SELECT * FROM docchat_search('x', 0)", "docchat_search: k must be between 1 and 1000, got 0"),
    ] {
        let err = c.query(sql, &[]).unwrap_err();
        assert_eq!(sqlstate(&err), "22023", "{sql}");
        assert_eq!(err.as_db_error().unwrap().message(), message);
    }
}

#[test]
fn searches_are_logged_unless_turned_off() {
    let mut c = corpus("t_search_log");
    c.query("SELECT * FROM docchat_search('hunting mice', 2, -1, mode => 'semantic')", &[]).unwrap();
    let row = c.query_one("SELECT query, mode, model, n_results, top_similarity > 0.3 FROM docchat.searches", &[]).unwrap();
    assert_eq!(row.get::<_, String>(0), "hunting mice");
    assert_eq!(row.get::<_, String>(1), "semantic");
    assert_eq!(row.get::<_, String>(2), "all-MiniLM-L6-v2");
    assert_eq!(row.get::<_, i32>(3), 2);
    assert!(row.get::<_, bool>(4));
    c.batch_execute("SET docchat.log_searches = off").unwrap();
    c.query("SELECT * FROM docchat_search('hunting mice')", &[]).unwrap();
    let n: i64 = c.query_one("SELECT count(*) FROM docchat.searches", &[]).unwrap().get(0);
    assert_eq!(n, 1);
}

fn median_ms(c: &mut Client, sql: &str) -> f64 {
    let mut times: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            c.query(sql, &[]).unwrap();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    percentile(&times, 0.5)
}

#[test]
fn a_small_owner_gets_min_k_matches_among_100k_other_rows() {
    let mut admin = fresh_db("t_search_rls_scale");
    create_role(&mut admin, "srch_small", true);
    create_role(&mut admin, "srch_big", true);
    // 100,000 chunks of another owner, sharing the small owner's words; the index is built after
    // the rows, as a bulk load would.
    let index: String = admin.query_one("SELECT pg_get_indexdef('docchat.chunks_hnsw_all_minilm_l6_v2'::regclass)", &[]).unwrap().get(0);
    let t = Instant::now();
    admin
        .batch_execute(
            "DROP INDEX docchat.chunks_hnsw_all_minilm_l6_v2;
             INSERT INTO docchat.documents (id, owner, mime_type, size, sha256, model, ts_config)
             SELECT ('00000000-0000-0000-0000-' || lpad(d::text, 12, '0'))::uuid, 'srch_big', 'text/plain', 0, '', 'all-MiniLM-L6-v2', 'pg_catalog.english'
             FROM generate_series(1, 100) d;
             INSERT INTO docchat.chunks (document_id, chunk_index, owner, content, char_start, char_end, n_tokens, model, embedding, ts_config)
             SELECT ('00000000-0000-0000-0000-' || lpad((i % 100 + 1)::text, 12, '0'))::uuid, i, 'srch_big',
                    'notes on apples, rivers and owls, part ' || i, 0, 40, 10, 'all-MiniLM-L6-v2',
                    (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 384) g WHERE g > -i)::vector,
                    'pg_catalog.english'
             FROM generate_series(1, 100000) i;
             SET maintenance_work_mem = '1GB';",
        )
        .unwrap();
    admin.batch_execute(&index).unwrap();
    admin.batch_execute("ANALYZE docchat.chunks").unwrap();
    eprintln!("100,000 other rows and their HNSW index: {:.1} s", t.elapsed().as_secs_f64());

    let mut small = connect("t_search_rls_scale", "srch_small");
    let topics = ["Apples grow on trees in orchards.", "Rivers flow down to the sea.", "Owls hunt at night in the woods."];
    for i in 0..20 {
        let text = format!("{} Note {i} about apples.", topics[i % 3]);
        ingest(&mut small, text.as_bytes(), &format!("note-{i}.txt")).unwrap();
    }
    // Every note has 'apples'; only some have the other words (English stems, stop words dropped).
    let keyword_matches = [("apples", 20), ("where do rivers go", 7), ("night birds", 6), ("fruit trees", 7), ("owls", 6)];
    for (q, keyword) in keyword_matches {
        for mode in ["semantic", "keyword", "hybrid"] {
            let matches = if mode == "keyword" { keyword } else { 20 };
            for k in [8, 50] {
                let sql = format!("SELECT filename FROM docchat_search('{q}', {k}, -1, mode => '{mode}')");
                let got = files(&mut small, &sql);
                assert!(got.iter().all(|f| f.starts_with("note-")), "{sql}: {got:?}");
                assert_eq!(got.len(), matches.min(k), "{sql}");
            }
        }
    }
    // The large owner's searches go through the HNSW index, and still get k rows.
    let mut big = connect("t_search_rls_scale", "srch_big");
    let plan = files(
        &mut admin,
        "EXPLAIN SELECT 1 FROM docchat.chunks WHERE model = 'all-MiniLM-L6-v2' AND owner = 'srch_big' ORDER BY embedding::vector(384) <=> docchat_embed('x') LIMIT 4",
    );
    assert!(plan.join("\n").contains("chunks_hnsw_all_minilm_l6_v2"), "{plan:?}");
    for mode in ["semantic", "keyword", "hybrid"] {
        let sql = format!("SELECT chunk_index::text FROM docchat_search('apples', 8, -1, mode => '{mode}')");
        assert_eq!(files(&mut big, &sql).len(), 8, "{mode}");
    }
    for (who, c) in [("20-chunk owner", &mut small), ("100k-chunk owner", &mut big)] {
        let t: Vec<String> = ["semantic", "keyword", "hybrid"]
            .iter()
            .map(|m| format!("{m} {:.1} ms", median_ms(c, &format!("SELECT * FROM docchat_search('apples', 8, -1, mode => '{m}')"))))
            .collect();
        eprintln!("search latency at 100,020 chunks, {who}, k = 8 (median of 7): {}", t.join(", "));
    }
}
