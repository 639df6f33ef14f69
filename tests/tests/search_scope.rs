//! A search never leaves the caller's rows, whatever it is given: every mode, k, threshold,
//! filter (another owner's document ids, filename, mime type or metadata), model, and every
//! setting a user may change (the search's own, pgvector's and the planner's, another owner as
//! the default model or as JWT claims), with the other owner large enough (12,000 chunks) that
//! the index paths are taken. Chat context is held to the same.
use docchat_tests::*;
use std::collections::HashSet;

const DB: &str = "t_search_scope";

#[test]
fn no_argument_filter_model_or_setting_returns_another_owners_row() {
    let mut admin = fresh_db(DB);
    create_role(&mut admin, "scope_victim", true);
    create_role(&mut admin, "scope_caller", true);
    let mut victim = connect(DB, "scope_victim");
    let mut caller = connect(DB, "scope_caller");
    let secret: Vec<String> = (0..3)
        .map(|i| {
            let text = format!("Owls and rivers: the victim's private note {i} about apples, owls and the river delta.");
            victim
                .query_one("SELECT docchat_ingest($1, $2, metadata => '{\"team\": \"red\"}')::text", &[&text.as_bytes(), &format!("victim-{i}.txt")])
                .unwrap()
                .get(0)
        })
        .collect();
    // Many more of the victim's chunks, sharing the words, so that its searches go through the indexes.
    admin
        .batch_execute(
            "INSERT INTO docchat.documents (id, owner, filename, mime_type, size, sha256, model, ts_config, metadata)
             VALUES ('00000000-0000-0000-0000-00000000beef', 'scope_victim', 'bulk.txt', 'text/plain', 0, '', 'all-MiniLM-L6-v2',
                     'pg_catalog.english', '{\"team\": \"blue\"}');
             INSERT INTO docchat.chunks (document_id, chunk_index, owner, content, char_start, char_end, n_tokens, model, embedding, ts_config)
             SELECT '00000000-0000-0000-0000-00000000beef', i, 'scope_victim', 'apples owls rivers note ' || i, 0, 30, 8,
                    'all-MiniLM-L6-v2', (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 384) g WHERE g > -i)::vector,
                    'pg_catalog.english'
             FROM generate_series(1, 12000) i;
             UPDATE docchat.documents SET n_chunks = 12000 WHERE id = '00000000-0000-0000-0000-00000000beef';
             ANALYZE docchat.chunks;",
        )
        .unwrap();
    let mine: HashSet<String> = (0..4)
        .map(|i| {
            let text = format!("My own note {i}: apples grow by the river, owls nest in the orchard.");
            caller
                .query_one("SELECT docchat_ingest($1, $2, metadata => '{\"team\": \"red\"}')::text", &[&text.as_bytes(), &format!("mine-{i}.txt")])
                .unwrap()
                .get(0)
        })
        .collect();

    let ids = serde_json::to_string(&secret).unwrap();
    let filters = [
        "NULL".to_string(),
        format!("'{{\"document_ids\": {ids}}}'"),
        format!(
            "'{{\"document_ids\": [\"00000000-0000-0000-0000-00000000beef\", {}]}}'",
            serde_json::to_string(mine.iter().next().unwrap()).unwrap()
        ),
        "'{\"filename\": \"victim-0.txt\"}'".into(),
        "'{\"mime_type\": \"text/plain\"}'".into(),
        "'{\"team\": \"red\"}'".into(),
        "'{\"team\": \"blue\"}'".into(),
    ];
    let settings = [
        "",
        "SET docchat.exact_search_limit = 0",
        "SET docchat.exact_search_limit = 10000000",
        "SET docchat.exact_search_limit = 0; SET hnsw.ef_search = 1; SET hnsw.iterative_scan = off",
        "SET docchat.exact_search_limit = 0; SET hnsw.ef_search = 1000; SET hnsw.max_scan_tuples = 1",
        "SET enable_indexscan = off; SET enable_bitmapscan = off; SET enable_seqscan = on",
        "SET docchat.keyword_weight = 100; SET docchat.bm25_k1 = 0; SET docchat.bm25_b = 1",
        "SET docchat.model = 'all-MiniLM-L6-v2-fp32'",
        "SET request.jwt.claims = '{\"sub\": \"scope_victim\", \"role\": \"scope_victim\"}'; SET request.jwt.claim.sub = 'scope_victim'",
        "SET docchat.log_searches = off; SET plan_cache_mode = force_generic_plan",
    ];
    let mut searches = 0;
    let mut rows = 0;
    for setting in settings {
        caller.batch_execute("RESET ALL").unwrap();
        caller.batch_execute(setting).unwrap();
        for filter in &filters {
            for mode in ["semantic", "keyword", "hybrid"] {
                for (k, threshold) in [(1, -1.0), (8, 0.3), (1000, -1.0)] {
                    for model in ["NULL", "'all-MiniLM-L6-v2'"] {
                        let sql = format!(
                            "SELECT document_id::text FROM docchat_search('the victim''s private note about owls and apples', {k}, {threshold}, \
                             model => {model}, mode => '{mode}', filter => {filter})"
                        );
                        let got: Vec<String> =
                            caller.query(&sql, &[]).unwrap_or_else(|e| panic!("{setting}; {sql}: {e}")).iter().map(|r| r.get(0)).collect();
                        assert!(got.iter().all(|id| mine.contains(id)), "{setting}; {sql}: {got:?}");
                        searches += 1;
                        rows += got.len();
                    }
                }
            }
            let context: String = caller
                .query_one(
                    &format!("SELECT docchat_chat_context('what did the victim write?', k => 20, threshold => -1, filter => {filter})::text"),
                    &[],
                )
                .unwrap()
                .get(0);
            let context: serde_json::Value = serde_json::from_str(&context).unwrap();
            let cited: Vec<&str> = context["context"].as_array().unwrap().iter().map(|p| p["document_id"].as_str().unwrap()).collect();
            assert!(cited.iter().all(|id| mine.contains(*id)), "{setting}; {filter}: {context}");
            assert!(!context["prompt"].as_str().unwrap().contains("victim's"), "{setting}; {filter}: {context}");
        }
    }
    // The wider candidate list a search sets does not outlast it.
    caller.batch_execute("RESET ALL; SET docchat.exact_search_limit = 0; SET hnsw.ef_search = 7").unwrap();
    for mode in ["semantic", "hybrid"] {
        caller.query("SELECT * FROM docchat_search('owls', 8, -1, mode => $1)", &[&mode]).unwrap();
        assert_eq!(caller.query_one("SHOW hnsw.ef_search", &[]).unwrap().get::<_, String>(0), "7", "{mode}");
    }
    // The searches did find the caller's own rows (the test would pass vacuously otherwise).
    assert!(rows > searches, "{rows} rows over {searches} searches");
    eprintln!("{searches} searches, {rows} rows, none another owner's");
}
