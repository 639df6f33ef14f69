//! docchat_ingest_async: the document is queued at once and ingest workers bring it to `ready`
//! with the same chunks as docchat_ingest; progress, NOTIFY, retries, poison jobs, RLS.
use docchat_tests::*;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};
use std::time::Duration;

const PDF: &str = "corpus/pdf/pdfjs__tracemonkey.pdf";

#[test]
fn async_ingest_reports_progress_and_ends_like_the_sync_one() {
    let mut c = fresh_db("t_queue_basic");
    let bytes = read_shared(PDF);
    let mut listener = Client::connect(&format!("host=127.0.0.1 port={} user=postgres dbname=t_queue_basic", port()), NoTls).unwrap();
    let channel: String = listener.query_one("SELECT docchat_ingest_channel()", &[]).unwrap().get(0);
    listener.batch_execute(&format!("LISTEN {channel}")).unwrap();

    let mut tx = c.transaction().unwrap();
    let id: String = tx.query_one("SELECT docchat_ingest_async($1, 'tracemonkey.pdf')::text", &[&bytes]).unwrap().get(0);
    let status: String = tx.query_one("SELECT status FROM docchat.documents WHERE id = $1::text::uuid", &[&id]).unwrap().get(0);
    assert_eq!(status, "queued");
    tx.commit().unwrap();
    // The same bytes again: the queued document, not a second one.
    let again: String = c.query_one("SELECT docchat_ingest_async($1, 'again.pdf')::text", &[&bytes]).unwrap().get(0);
    assert_eq!(again, id);

    wait_for_status(&mut c, &id, "ready", Duration::from_secs(180));
    let mut seen = Vec::new();
    let mut notes = listener.notifications();
    let mut it = notes.timeout_iter(Duration::from_secs(2));
    while let Some(n) = it.next().unwrap() {
        seen.push(n.payload().to_string());
    }
    assert_eq!(seen, ["queued", "parsing", "embedding", "ready"].map(|s| format!("{id}:{s}")));

    let p = c
        .query_one(
            "SELECT attempts, pages_done, pages_total, chunks_done, chunks_total, last_error, started_at <= finished_at, \
                    (SELECT content IS NULL FROM docchat.ingest_jobs WHERE document_id = $1::text::uuid) \
             FROM docchat.ingest_progress WHERE document_id = $1::text::uuid",
            &[&id],
        )
        .unwrap();
    let (attempts, pages_done, pages_total, chunks_done, chunks_total): (i32, i32, Option<i32>, i32, Option<i32>) =
        (p.get(0), p.get(1), p.get(2), p.get(3), p.get(4));
    assert_eq!((attempts, pages_done, pages_total), (1, 14, Some(14)));
    assert_eq!(p.get::<_, Option<String>>(5), None);
    assert!(p.get::<_, bool>(6));
    assert!(p.get::<_, bool>(7), "the bytes are dropped once the document is ready");

    // The synchronous path stores exactly the same chunks.
    let sync: String = c.query_one("SELECT docchat_ingest($1, 'tracemonkey.pdf', force => true)::text", &[&bytes]).unwrap().get(0);
    let chunks = |c: &mut Client, id: &str| -> Vec<(i32, String, Option<i32>)> {
        c.query("SELECT chunk_index, content, page FROM docchat.chunks WHERE document_id = $1::text::uuid ORDER BY chunk_index", &[&id])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    };
    let (a, s) = (chunks(&mut c, &id), chunks(&mut c, &sync));
    assert_eq!(a, s);
    assert_eq!((chunks_done, chunks_total), (a.len() as i32, Some(a.len() as i32)));
    let doc = |c: &mut Client, id: &str| -> String {
        c.query_one("SELECT concat_ws(' | ', status, mime_type, n_chunks, n_chars, metadata, ts_config, owner, model) FROM docchat.documents WHERE id = $1::text::uuid", &[&id])
            .unwrap()
            .get(0)
    };
    assert_eq!(doc(&mut c, &id), doc(&mut c, &sync));
    let workers: i64 = c
        .query_one("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'docchat ingest worker' AND datname = current_database()", &[])
        .unwrap()
        .get(0);
    assert!((1..=2).contains(&workers), "{workers} ingest workers");
}

#[test]
fn poison_jobs_fail_after_their_attempts_while_others_complete() {
    let mut c = fresh_db("t_queue_poison");
    // A model whose files are missing: every attempt fails the same way, as a broken install would.
    c.batch_execute(
        "INSERT INTO docchat.models (name, dimension, max_seq_length, dir) VALUES ('missing-model', 384, 256, 'no-such-model-dir');
         SET docchat.ingest_max_attempts = 3; SET docchat.ingest_retry_delay = 200",
    )
    .unwrap();
    let poison: String = c.query_one("SELECT docchat_ingest_async('some text'::bytea, 'p.txt', model => 'missing-model')::text", &[]).unwrap().get(0);
    // Bytes that only the parser can tell are broken fail at once: retrying cannot help.
    let mut broken = read_shared(PDF);
    broken.truncate(3000);
    let corrupt: String = c.query_one("SELECT docchat_ingest_async($1, 'broken.pdf')::text", &[&broken]).unwrap().get(0);
    let good: String = c
        .query_one("SELECT docchat_ingest_async('A note about apples and pears, with enough words to chunk.'::bytea, 'good.txt')::text", &[])
        .unwrap()
        .get(0);

    wait_for_status(&mut c, &good, "ready", Duration::from_secs(60));
    wait_for_status(&mut c, &corrupt, "failed", Duration::from_secs(60));
    wait_for_status(&mut c, &poison, "failed", Duration::from_secs(60));
    let job = |c: &mut Client, id: &str| -> (i32, String) {
        let r = c.query_one("SELECT attempts, last_error FROM docchat.ingest_progress WHERE document_id = $1::text::uuid", &[&id]).unwrap();
        (r.get(0), r.get(1))
    };
    let (attempts, error) = job(&mut c, &poison);
    assert_eq!(attempts, 3);
    assert!(error.contains("no-such-model-dir"), "{error}");
    let sync_error = c.query_one("SELECT docchat_ingest($1, 'broken.pdf')", &[&broken]).unwrap_err();
    let (attempts, error) = job(&mut c, &corrupt);
    assert_eq!(attempts, 1);
    let db = sync_error.as_db_error().unwrap();
    assert_eq!(error, format!("{} (hint: {})", db.message().trim_start_matches("broken.pdf: "), db.hint().unwrap()));
    let chunks: i64 = c
        .query_one("SELECT count(*) FROM docchat.chunks WHERE document_id IN ($1::text::uuid, $2::text::uuid)", &[&poison, &corrupt])
        .unwrap()
        .get(0);
    assert_eq!(chunks, 0);
    // A failed document is not a duplicate: the same bytes can be queued again.
    let retried: String = c.query_one("SELECT docchat_ingest_async($1, 'broken.pdf')::text", &[&broken]).unwrap().get(0);
    assert_ne!(retried, corrupt);
}

#[test]
fn queue_errors_rls_and_delete() {
    let mut c = fresh_db("t_queue_rls");
    create_role(&mut c, "queue_alice", false);
    create_role(&mut c, "queue_bob", false);
    for (sql, code) in [
        ("SELECT docchat_ingest_async(NULL)", "22004"),
        ("SELECT docchat_ingest_async(''::bytea)", "22023"),
        ("SELECT docchat_ingest_async('\\x1f8b0800'::bytea)", "22000"),
        ("SELECT docchat_ingest_async('text'::bytea, chunk_size => 100, chunk_overlap => 100)", "22023"),
        ("SELECT docchat_ingest_async('text'::bytea, model => 'nope')", "22023"),
    ] {
        assert_eq!(sqlstate(&c.batch_execute(sql).unwrap_err()), code, "{sql}");
    }
    let queued: i64 = c.query_one("SELECT count(*) FROM docchat.ingest_jobs", &[]).unwrap().get(0);
    assert_eq!(queued, 0, "a refused document queues nothing");

    c.batch_execute("SET ROLE queue_alice").unwrap();
    let mut tx = c.transaction().unwrap();
    let id: String = tx.query_one("SELECT docchat_ingest_async('Alice''s private notes on the merger.'::bytea, 'a.txt')::text", &[]).unwrap().get(0);
    // Deleted before any worker saw it: the job goes with the document.
    let deleted: bool = tx.query_one("SELECT docchat_delete($1::text::uuid)", &[&id]).unwrap().get(0);
    assert!(deleted);
    tx.commit().unwrap();
    let id: String = c.query_one("SELECT docchat_ingest_async('Alice''s notes on the merger, kept.'::bytea, 'a.txt')::text", &[]).unwrap().get(0);
    wait_for_status(&mut c, &id, "ready", Duration::from_secs(60));
    let mine: i64 = c.query_one("SELECT count(*) FROM docchat.ingest_progress", &[]).unwrap().get(0);
    assert_eq!(mine, 1);
    c.batch_execute("RESET ROLE; SET ROLE queue_bob").unwrap();
    let theirs: i64 = c.query_one("SELECT count(*) FROM docchat.ingest_progress", &[]).unwrap().get(0);
    let jobs: i64 = c.query_one("SELECT count(*) FROM docchat.ingest_jobs", &[]).unwrap().get(0);
    assert_eq!((theirs, jobs), (0, 0));
}

#[test]
fn embedding_and_query_caches_stats_and_health() {
    let mut c = fresh_db("t_queue_cache");
    create_role(&mut c, "cache_carol", false);
    let text = "Orchards in the north grow apples. Pears need a warmer slope.\n\n".repeat(40);
    let first: String = c
        .query_one("SELECT docchat_ingest_async($1, 'fruit.txt', chunk_size => 300, chunk_overlap => 50)::text", &[&text.as_bytes()])
        .unwrap()
        .get(0);
    wait_for_status(&mut c, &first, "ready", Duration::from_secs(120));
    let second: String = c
        .query_one("SELECT docchat_ingest_async($1, 'fruit.txt', chunk_size => 300, chunk_overlap => 50, force => true)::text", &[&text.as_bytes()])
        .unwrap()
        .get(0);
    wait_for_status(&mut c, &second, "ready", Duration::from_secs(120));
    let cached = |c: &mut Client, id: &str| -> (i32, i32) {
        let r = c.query_one("SELECT chunks_cached, chunks_total FROM docchat.ingest_progress WHERE document_id = $1::text::uuid", &[&id]).unwrap();
        (r.get(0), r.get::<_, Option<i32>>(1).unwrap())
    };
    let (hits, total) = cached(&mut c, &second);
    assert!(total > 1);
    // The repeated paragraphs make identical chunks inside the first document too.
    let distinct: i64 =
        c.query_one("SELECT count(DISTINCT content) FROM docchat.chunks WHERE document_id = $1::text::uuid", &[&first]).unwrap().get(0);
    assert_eq!(cached(&mut c, &first).0, 0, "nothing to reuse before the first document was stored");
    assert!(distinct < total as i64);
    assert_eq!(hits, total, "every chunk of the second copy reuses a stored embedding");
    let same: bool = c
        .query_one(
            "SELECT bool_and(a.embedding = b.embedding) FROM docchat.chunks a JOIN docchat.chunks b USING (chunk_index) \
             WHERE a.document_id = $1::text::uuid AND b.document_id = $2::text::uuid",
            &[&first, &second],
        )
        .unwrap()
        .get(0);
    assert!(same);
    // Another owner's chunks never feed this one's.
    c.batch_execute("SET ROLE cache_carol").unwrap();
    let carols: String = c
        .query_one("SELECT docchat_ingest_async($1, 'fruit.txt', chunk_size => 300, chunk_overlap => 50)::text", &[&text.as_bytes()])
        .unwrap()
        .get(0);
    wait_for_status(&mut c, &carols, "ready", Duration::from_secs(120));
    assert_eq!(cached(&mut c, &carols), (0, total));
    c.batch_execute("RESET ROLE").unwrap();

    // The query cache: the same query again within the window is not embedded again.
    let health =
        |c: &mut Client| -> serde_json::Value { c.query_one("SELECT docchat_health()::text", &[]).unwrap().get::<_, String>(0).parse().unwrap() };
    let before = health(&mut c)["query_cache"]["hits"].as_u64().unwrap();
    let same_vector: bool =
        c.query_one("SELECT docchat_embed('which slope for pears?') = docchat_embed('which slope for pears?')", &[]).unwrap().get(0);
    assert!(same_vector);
    assert_eq!(health(&mut c)["query_cache"]["hits"].as_u64().unwrap(), before + 1);
    c.batch_execute("SET docchat.query_cache_window = 0").unwrap();
    c.query_one("SELECT docchat_embed('which slope for pears?')", &[]).unwrap();
    assert_eq!(health(&mut c)["query_cache"]["hits"].as_u64().unwrap(), before + 1);

    for q in ["apples", "pears", "north"] {
        c.query("SELECT * FROM docchat_search($1)", &[&q]).unwrap();
    }
    let s = c
        .query_one(
            "SELECT documents_by_status::text, chunks, queue_depth, failed_jobs, embeddings_per_second::float8, searches_last_hour, \
                    search_p50_ms::float8 <= search_p95_ms::float8 FROM docchat.stats",
            &[],
        )
        .unwrap();
    assert_eq!(s.get::<_, String>(0), r#"{"ready": 3}"#);
    assert_eq!((s.get::<_, i64>(1), s.get::<_, i64>(2), s.get::<_, i64>(3)), (3 * total as i64, 0, 0));
    let per_second = ((3 * total) as f64 / 60.0 * 100.0).round() / 100.0;
    assert_eq!((s.get::<_, f64>(4), s.get::<_, i64>(5), s.get::<_, bool>(6)), (per_second, 3, true));

    let h = health(&mut c);
    assert_eq!(h["ingest"]["launcher_running"], true);
    assert!(h["ingest"]["workers_here"].as_i64().unwrap() >= 1, "{h}");
    assert_eq!((h["ingest"]["queue_depth"].clone(), h["ingest"]["failed_jobs"].clone()), (serde_json::json!(0), serde_json::json!(0)));
    assert_eq!(h["tesseract"]["available"], true, "{h}");
    assert!(h["tesseract"]["languages"].as_array().unwrap().contains(&serde_json::json!("eng")));
    assert!(h["disk_bytes"].as_i64().unwrap() > 0);
}
