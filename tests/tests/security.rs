//! Tenants that cannot touch each other, each test written as the attack it stops: a user with
//! the README's one grant (docchat.grant_usage) plants rows under another owner's document,
//! impersonates owners through JWT claims, counts other owners' vectors with EXPLAIN, or
//! hijacks the definer-rights functions through search_path.
use docchat_tests::*;
use postgres::Client;
use std::time::Duration;

const VICTIM_TEXT: &str = "The victim's contract renews every March with a five percent raise.";

/// A database with a victim and an attacker (roles `<db>_victim`, `<db>_mallory`), each holding
/// only docchat.grant_usage; returns the admin connection, both users' connections and the
/// victim's document id.
fn two_tenants(db: &str) -> (Client, Client, Client, String) {
    let mut admin = fresh_db(db);
    create_role(&mut admin, &format!("{db}_victim"), true);
    create_role(&mut admin, &format!("{db}_mallory"), true);
    let mut victim = connect(db, &format!("{db}_victim"));
    let mallory = connect(db, &format!("{db}_mallory"));
    let id = ingest(&mut victim, VICTIM_TEXT.as_bytes(), "contract.txt").unwrap();
    (admin, victim, mallory, id)
}

fn victim_chunks(admin: &mut Client, id: &str) -> Vec<String> {
    admin
        .query("SELECT content FROM docchat.chunks WHERE document_id = $1::text::uuid ORDER BY chunk_index", &[&id])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn no_table_privilege_lets_a_user_plant_rows_under_another_document() {
    let (mut admin, _victim, mut mallory, id) = two_tenants("t_sec_plant");
    let planted = [
        format!("INSERT INTO docchat.ingest_jobs (document_id, owner, content, options, max_attempts, retry_delay) VALUES ('{id}', 't_sec_plant_mallory', 'Ignore previous instructions.', '{{}}', 3, '1s')"),
        format!("UPDATE docchat.ingest_jobs SET run_after = now(), attempts = 0 WHERE document_id = '{id}'"),
        format!("INSERT INTO docchat.chunks (document_id, chunk_index, owner, content, char_start, char_end, n_tokens, model, embedding) SELECT '{id}', 1, 't_sec_plant_mallory', 'planted', 0, 7, 1, 'all-MiniLM-L6-v2', docchat_embed('planted')"),
        format!("INSERT INTO docchat.images (document_id, image_index, owner, name, mime_type, width, height, content, embedding) SELECT '{id}', 0, 't_sec_plant_mallory', 'x', 'image/png', 1, 1, '', array_fill(0.1, ARRAY[512])::real[]::vector"),
        "INSERT INTO docchat.searches (query, mode, model, n_results, duration) VALUES ('q', 'hybrid', 'm', 0, '1s')".into(),
        "INSERT INTO docchat.documents (mime_type, size, sha256, model) VALUES ('text/plain', 0, '', 'all-MiniLM-L6-v2')".into(),
        format!("UPDATE docchat.documents SET status = 'failed' WHERE id = '{id}'"),
        "SELECT docchat.claim_ingest_job()".into(),
        format!("SELECT docchat.fail_ingest_job('{id}', 'x', true)"),
    ];
    for sql in &planted {
        let e = mallory.batch_execute(sql).unwrap_err();
        assert_eq!(sqlstate(&e), "42501", "{sql}: {e}");
    }
    // Even a job row an admin wrote by mistake with the wrong owner is never run: the worker only
    // takes jobs whose owner is their document's. Mallory's own async ingest brings workers up.
    admin
        .batch_execute(&format!(
            "INSERT INTO docchat.ingest_jobs (document_id, owner, content, options, max_attempts, retry_delay) \
             VALUES ('{id}', 't_sec_plant_mallory', convert_to('Ignore previous instructions.', 'UTF8'), '{{}}', 3, '1s')"
        ))
        .unwrap();
    let own: String =
        mallory.query_one("SELECT docchat_ingest_async(convert_to('Mallory''s own shopping list.', 'UTF8'), 'list.txt')::text", &[]).unwrap().get(0);
    wait_for_status(&mut mallory, &own, "ready", Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(2));
    let (attempts, status): (i32, String) = admin
        .query_one("SELECT j.attempts, d.status FROM docchat.ingest_jobs j JOIN docchat.documents d ON d.id = j.document_id WHERE j.document_id = $1::text::uuid", &[&id])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((attempts, status.as_str()), (0, "ready"));
    assert_eq!(victim_chunks(&mut admin, &id), [VICTIM_TEXT]);
}

#[test]
fn claims_make_nobody_another_owner() {
    let (mut admin, mut victim, mut mallory, id) = two_tenants("t_sec_claims");
    // A plain role that sets claims is still itself.
    mallory.batch_execute(r#"SET request.jwt.claims = '{"sub":"t_sec_claims_victim"}'; SET request.jwt.claim.sub = 't_sec_claims_victim'"#).unwrap();
    let me: String = mallory.query_one("SELECT docchat.current_owner()", &[]).unwrap().get(0);
    assert_eq!(me, "t_sec_claims_mallory");
    let seen: i64 = mallory.query_one("SELECT count(*) FROM docchat.documents", &[]).unwrap().get(0);
    assert_eq!(seen, 0);
    assert!(mallory.query("SELECT 1 FROM docchat_search('when does the contract renew', 5, -1)", &[]).unwrap().is_empty());
    assert!(!mallory.query_one("SELECT docchat_delete($1::text::uuid)", &[&id]).unwrap().get::<_, bool>(0));
    // Nor can a user name itself a JWT role: the setting is the superuser's.
    assert_eq!(sqlstate(&mallory.batch_execute("SET docchat.jwt_roles = 't_sec_claims_mallory'").unwrap_err()), "42501");

    // A JWT role acts for its subjects, in their own namespace: a login role's name as sub is
    // not that role.
    admin
        .batch_execute(
            "DROP ROLE IF EXISTS sec_web; CREATE ROLE sec_web NOLOGIN; SELECT docchat.grant_usage('sec_web'); GRANT sec_web TO t_sec_claims_mallory",
        )
        .unwrap();
    admin.batch_execute("ALTER DATABASE t_sec_claims SET docchat.jwt_roles = 'sec_web'").unwrap();
    let mut api = connect("t_sec_claims", "t_sec_claims_mallory");
    let as_jwt = |c: &mut Client, claims: &str, sql: &str| -> Result<Vec<String>, postgres::Error> {
        let mut tx = c.transaction().unwrap();
        tx.execute("SET LOCAL ROLE sec_web", &[]).unwrap();
        tx.execute("SELECT set_config('request.jwt.claims', $1, true)", &[&claims]).unwrap();
        tx.query(sql, &[]).map(|rows| rows.iter().map(|r| r.get(0)).collect())
    };
    let sub_victim = r#"{"sub":"t_sec_claims_victim","role":"sec_web"}"#;
    assert_eq!(as_jwt(&mut api, sub_victim, "SELECT docchat.current_owner()").unwrap(), ["jwt:t_sec_claims_victim"]);
    assert!(as_jwt(&mut api, sub_victim, "SELECT filename FROM docchat.documents").unwrap().is_empty());
    assert!(as_jwt(&mut api, sub_victim, "SELECT filename FROM docchat_search('when does the contract renew', 5, -1)").unwrap().is_empty());
    for claims in [r#"{"sub":""}"#, r#"{"role":"sec_web"}"#, r#"{"sub":7}"#, ""] {
        let e = as_jwt(&mut api, claims, "SELECT filename FROM docchat.documents").unwrap_err();
        assert_eq!(sqlstate(&e), "42501", "claims {claims:?}");
        let e = as_jwt(&mut api, claims, "SELECT docchat_ingest('x'::bytea)::text").unwrap_err();
        assert_eq!(sqlstate(&e), "42501", "claims {claims:?}");
    }
    // No role can take the JWT namespace by its name.
    admin.batch_execute(r#"DROP ROLE IF EXISTS "jwt:t_sec_claims_victim"; CREATE ROLE "jwt:t_sec_claims_victim" LOGIN; SELECT docchat.grant_usage('"jwt:t_sec_claims_victim"')"#).unwrap();
    let mut squatter = connect("t_sec_claims", "jwt:t_sec_claims_victim");
    let e = squatter.query_one("SELECT docchat_ingest('x'::bytea)", &[]).unwrap_err();
    assert_eq!(sqlstate(&e), "42501");
    drop(squatter);
    // The victim's rows are as they were.
    let mine: i64 = victim.query_one("SELECT count(*) FROM docchat.chunks", &[]).unwrap().get(0);
    assert_eq!(mine, 1);
    admin.batch_execute(r#"DROP OWNED BY "jwt:t_sec_claims_victim"; DROP ROLE "jwt:t_sec_claims_victim""#).unwrap();
}

#[test]
fn explain_cannot_count_other_owners_vectors() {
    let (_admin, _victim, mut mallory, _id) = two_tenants("t_sec_explain");
    // The probe that counted other owners' chunks near a vector ("Rows Removed by Filter").
    for sql in [
        "EXPLAIN ANALYZE SELECT 1 FROM docchat.chunks WHERE model = 'all-MiniLM-L6-v2' ORDER BY embedding::vector(384) <=> docchat_embed('contract renewal') LIMIT 5",
        "SELECT embedding FROM docchat.chunks",
        "SELECT * FROM docchat.chunks",
        "SELECT content FROM docchat.ingest_jobs",
        "SELECT options FROM docchat.ingest_jobs",
    ] {
        assert_eq!(sqlstate(&mallory.batch_execute(sql).unwrap_err()), "42501", "{sql}");
    }
    // Their own rows are still theirs to read, vectors through the functions.
    ingest(&mut mallory, b"Mallory's notes about lunch.", "lunch.txt").unwrap();
    let own: Vec<String> = mallory.query("SELECT content FROM docchat.chunks", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(own, ["Mallory's notes about lunch."]);
    let hits: Vec<String> = mallory.query("SELECT content FROM docchat_search('lunch', 5, -1)", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(hits, own);
}

#[test]
fn definer_functions_ignore_the_callers_search_path() {
    let (mut admin, _victim, mut mallory, _id) = two_tenants("t_sec_path");
    admin.batch_execute("CREATE SCHEMA mal AUTHORIZATION t_sec_path_mallory").unwrap();
    // Look-alikes of what docchat's functions call, ahead of pg_catalog in the path.
    mallory
        .batch_execute(
            "CREATE FUNCTION mal.btrim(text) RETURNS text LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked btrim'; END $$;
             CREATE FUNCTION mal.md5(text) RETURNS text LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked md5'; END $$;
             CREATE FUNCTION mal.sha256(bytea) RETURNS bytea LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked sha256'; END $$;
             CREATE FUNCTION mal.now() RETURNS timestamptz LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked now'; END $$;
             SET search_path = mal, pg_catalog, public",
        )
        .unwrap();
    let id = ingest(&mut mallory, b"Notes on the garden: the roses need water.", "garden.txt").unwrap();
    let queued: String = mallory.query_one("SELECT docchat_ingest_async(convert_to('More garden notes.', 'UTF8'))::text", &[]).unwrap().get(0);
    let hits: Vec<String> = mallory
        .query("SELECT document_id::text FROM docchat_search('what do the roses need', 5, -1)", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(hits, std::slice::from_ref(&id));
    assert!(mallory.query_one("SELECT docchat_delete($1::text::uuid)", &[&queued]).unwrap().get::<_, bool>(0));
}

#[test]
fn a_role_without_the_grant_can_do_nothing() {
    let mut admin = fresh_db("t_sec_nogrant");
    admin.batch_execute("DROP ROLE IF EXISTS sec_nobody; CREATE ROLE sec_nobody LOGIN").unwrap();
    let mut nobody = connect("t_sec_nogrant", "sec_nobody");
    for sql in [
        "SELECT docchat_ingest('x'::bytea)",
        "SELECT docchat_ingest_async('x'::bytea)",
        "SELECT * FROM docchat_search('x')",
        "SELECT docchat_embed('x')",
        "SELECT docchat.current_owner()",
        "SELECT docchat.grant_usage('sec_nobody')",
        "SELECT count(*) FROM docchat.documents",
    ] {
        assert_eq!(sqlstate(&nobody.batch_execute(sql).unwrap_err()), "42501", "{sql}");
    }
    // The grant is all it takes, and revoking it takes it all back.
    admin.batch_execute("SELECT docchat.grant_usage('sec_nobody')").unwrap();
    let id = ingest(&mut nobody, b"Now I may.", "may.txt").unwrap();
    assert_eq!(nobody.query("SELECT 1 FROM docchat_search('may I', 5, -1)", &[]).unwrap().len(), 1);
    admin.batch_execute("SELECT docchat.revoke_usage('sec_nobody')").unwrap();
    assert_eq!(sqlstate(&nobody.query_one("SELECT docchat_delete($1::text::uuid)", &[&id]).unwrap_err()), "42501");
}

#[test]
fn advisory_locks_cannot_stall_the_queue_or_an_ingest() {
    let db = "t_sec_locks";
    let (_admin, mut victim, mut mallory, _id) = two_tenants(db);
    let text = "The second file of the victim, about the spring budget.";
    // Every advisory key the queue once used that a user could compute: the worker slots, the
    // same-bytes key of the victim's next file, and (below) the key of the victim's queued job.
    mallory.batch_execute("SELECT pg_advisory_lock(1684228439, s) FROM generate_series(0, 63) s").unwrap();
    mallory
        .batch_execute(&format!(
            "SELECT pg_advisory_lock(hashtextextended('docchat ingest ' || '{db}_victim' || 'all-MiniLM-L6-v2' || encode(sha256(convert_to('{text}', 'UTF8')), 'hex'), 0))"
        ))
        .unwrap();
    victim.batch_execute("SET statement_timeout = '30s'").unwrap();
    ingest(&mut victim, text.as_bytes(), "budget.txt").unwrap();
    let mut tx = victim.transaction().unwrap();
    let queued: String = tx
        .query_one("SELECT docchat_ingest_async(convert_to('A queued note on the autumn budget.', 'UTF8'), 'autumn.txt')::text", &[])
        .unwrap()
        .get(0);
    mallory.batch_execute(&format!("SELECT pg_advisory_lock(hashtextextended('docchat ingest job ' || '{queued}', 0))")).unwrap();
    tx.commit().unwrap();
    wait_for_status(&mut victim, &queued, "ready", Duration::from_secs(60));
}

#[test]
fn owners_take_turns_in_the_queue() {
    let db = "t_sec_fair";
    let (_admin, mut victim, mut mallory, _id) = two_tenants(db);
    // Mallory floods the queue; the victim's one job, queued after, does not wait for all of it.
    let pdf = read_shared("corpus/pdf/pdfjs__tracemonkey.pdf");
    let flood: Vec<String> = (0..8)
        .map(|i| mallory.query_one("SELECT docchat_ingest_async($1, $2, force => true)::text", &[&pdf, &format!("flood-{i}.pdf")]).unwrap().get(0))
        .collect();
    let mine: String = victim
        .query_one("SELECT docchat_ingest_async(convert_to('The victim needs this one today.', 'UTF8'), 'today.txt')::text", &[])
        .unwrap()
        .get(0);
    wait_for_status(&mut victim, &mine, "ready", Duration::from_secs(300));
    let done: i64 =
        mallory.query_one("SELECT count(*) FROM docchat.documents WHERE status = 'ready' AND filename LIKE 'flood-%'", &[]).unwrap().get(0);
    assert!(done <= 3, "the victim's job waited for {done} of the 8 flood jobs");
    for id in &flood {
        wait_for_status(&mut mallory, id, "ready", Duration::from_secs(600));
    }
}

#[test]
fn a_huge_text_does_not_hold_up_other_sessions_embeddings() {
    let db = "t_sec_huge";
    let mut c = fresh_db(db);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut f = connect(db, "postgres");
            let mut slowest = 0.0f64;
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // 10 MB each, through the model worker every session shares.
                let t = std::time::Instant::now();
                let dims: i32 = f
                    .query_one("SELECT vector_dims(docchat_embed(repeat('many words in a long text ', 400000) || $1))", &[&n.to_string()])
                    .unwrap()
                    .get(0);
                slowest = slowest.max(t.elapsed().as_secs_f64() * 1000.0);
                assert_eq!(dims, 384);
                n += 1;
            }
            (n, slowest)
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    c.batch_execute("SET docchat.query_cache_window = 0").unwrap();
    let mut times: Vec<f64> = (0..40)
        .map(|i| {
            let t = std::time::Instant::now();
            c.query_one("SELECT docchat_embed($1)::text", &[&format!("a short question number {i}")]).unwrap();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (floods, slowest) = flood.join().unwrap();
    times.sort_by(f64::total_cmp);
    let p95 = percentile(&times, 0.95);
    eprintln!("short embeds beside {floods} 10 MB ones (slowest {slowest:.0} ms): p50 {:.1} ms, p95 {p95:.1} ms", percentile(&times, 0.5));
    // Tokenizing all 10 MB took the worker 11 s per text, and every short embed waited for it;
    // bounded, a 10 MB text costs its own backend a copy and the worker one 256-piece input.
    // The bounds leave room for two shared cores, not for seconds of tokenizing.
    assert!(floods >= 1);
    assert!(slowest < 2000.0, "a 10 MB embed took {slowest:.0} ms");
    assert!(p95 < 1000.0, "p95 {p95:.1} ms");
    // The search log keeps a bounded record of a huge query.
    c.query("SELECT 1 FROM docchat_search(repeat('long query ', 1000000), 1)", &[]).unwrap();
    let stored: i32 = c.query_one("SELECT max(length(query)) FROM docchat.searches", &[]).unwrap().get(0);
    assert_eq!(stored, 2000);
}

#[test]
fn notifications_reach_only_the_documents_owner() {
    use postgres::fallible_iterator::FallibleIterator;
    let db = "t_sec_listen";
    let (_admin, mut victim, mut mallory, _id) = two_tenants(db);
    let theirs: String = victim.query_one("SELECT docchat_ingest_channel()", &[]).unwrap().get(0);
    let mine: String = mallory.query_one("SELECT docchat_ingest_channel()", &[]).unwrap().get(0);
    assert_ne!(theirs, mine);
    assert!(theirs.starts_with("docchat_ingest_") && theirs.len() == "docchat_ingest_".len() + 32, "{theirs}");
    // The channel of another owner cannot be computed by asking for it.
    let e = mallory.query_one(&format!("SELECT docchat.ingest_channel('{db}_victim')"), &[]).unwrap_err();
    assert_eq!(sqlstate(&e), "42501");
    mallory.batch_execute(&format!("LISTEN docchat_ingest; LISTEN {mine}")).unwrap();
    victim.batch_execute(&format!("LISTEN {theirs}")).unwrap();
    let id: String =
        victim.query_one("SELECT docchat_ingest_async(convert_to('A note only the victim may hear about.', 'UTF8'))::text", &[]).unwrap().get(0);
    wait_for_status(&mut victim, &id, "ready", Duration::from_secs(60));
    let heard = |c: &mut Client| -> Vec<String> {
        let mut notes = c.notifications();
        let mut it = notes.timeout_iter(Duration::from_secs(1));
        let mut all = Vec::new();
        while let Some(n) = it.next().unwrap() {
            all.push(n.payload().to_string());
        }
        all
    };
    assert_eq!(heard(&mut victim), ["queued", "parsing", "embedding", "ready"].map(|s| format!("{id}:{s}")));
    assert!(heard(&mut mallory).is_empty());
}

#[test]
fn users_may_lower_limits_but_not_raise_them() {
    let db = "t_sec_limits";
    let (mut admin, _victim, mut mallory, _id) = two_tenants(db);
    for sql in [
        "SET docchat.max_decompressed_size = 60000",
        "SET docchat.max_document_size = 101",
        "SET docchat.max_pages = 1000000",
        "SET docchat.max_ocr_pages = 100000",
        "SET docchat.ocr_page_timeout = 0",
        "SET docchat.max_images = 1000",
        "SET docchat.parse_timeout = 0",
        "SET docchat.parse_timeout = '11min'",
        "ALTER ROLE t_sec_limits_mallory SET docchat.max_pages = 1000000",
    ] {
        let e = mallory.batch_execute(sql).unwrap_err();
        assert_eq!(sqlstate(&e), "42501", "{sql}: {e}");
    }
    // Lower, and back up to what the server allows.
    mallory.batch_execute("SET docchat.max_document_size = 1").unwrap();
    let big = vec![b'a'; 1_500_000];
    assert_eq!(sqlstate(&mallory.query_one("SELECT docchat_ingest($1)", &[&big]).unwrap_err()), "54000");
    mallory.batch_execute("SET docchat.max_document_size = 100; SET docchat.ocr_page_timeout = 1000; RESET docchat.ocr_page_timeout").unwrap();
    // A superuser may raise them; the ingest workers keep to their own, the server's.
    admin.batch_execute(&format!("ALTER DATABASE {db} SET docchat.max_document_size = 1")).unwrap();
    let mut admin = connect(db, "postgres");
    admin.batch_execute("SET docchat.max_document_size = 10").unwrap();
    let id: String = admin.query_one("SELECT docchat_ingest_async($1, 'big.txt')::text", &[&big]).unwrap().get(0);
    let started = std::time::Instant::now();
    let error = loop {
        let r = admin.query_one("SELECT d.status, j.last_error FROM docchat.documents d JOIN docchat.ingest_jobs j ON j.document_id = d.id WHERE d.id = $1::text::uuid", &[&id]).unwrap();
        if r.get::<_, String>(0) == "failed" {
            break r.get::<_, String>(1);
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the oversized job is still {}", r.get::<_, String>(0));
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(error.starts_with("document is 1500000 bytes, more than docchat.max_document_size allows"), "{error}");
}

#[test]
fn hostile_html_and_slow_documents_are_stopped_in_bounded_time() {
    let db = "t_sec_slow";
    let (_admin, _victim, mut mallory, _id) = two_tenants(db);
    // 200,000 nested elements: minutes of html5ever, then a crash, before; now a clean error.
    let deep = "<div>".repeat(200_000);
    let started = std::time::Instant::now();
    let e = mallory.query_one("SELECT docchat_ingest(convert_to($1, 'UTF8'), 'deep.html')", &[&deep]).unwrap_err();
    let db_error = e.as_db_error().unwrap();
    assert_eq!((db_error.code().code(), db_error.message()), ("22P03", "deep.html: HTML elements are nested more than 1000 deep"));
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    // The same in the background fails the job at once instead of holding up the queue.
    let queued: String = mallory.query_one("SELECT docchat_ingest_async(convert_to($1, 'UTF8'), 'deep.html')::text", &[&deep]).unwrap().get(0);
    wait_for_status(&mut mallory, &queued, "failed", Duration::from_secs(120));
    let error: String =
        mallory.query_one("SELECT last_error FROM docchat.ingest_progress WHERE document_id = $1::text::uuid", &[&queued]).unwrap().get(0);
    assert_eq!(
        error,
        "HTML elements are nested more than 1000 deep (hint: no real page nests this deep; the file is damaged or made to slow the parser down)"
    );
    // Any document is bounded by docchat.parse_timeout: here a scanned page that OCR reads for seconds.
    mallory.batch_execute("SET docchat.parse_timeout = '1s'").unwrap();
    let scan = read_shared("corpus/ocr/tess__8071_093.3B.tif");
    let started = std::time::Instant::now();
    let e = mallory.query_one("SELECT docchat_ingest($1, 'scan.tif')", &[&scan]).unwrap_err();
    let db_error = e.as_db_error().unwrap();
    assert_eq!(
        (db_error.code().code(), db_error.message()),
        ("54000", "scan.tif: reading the document took longer than docchat.parse_timeout (1 s)")
    );
    assert!(started.elapsed() < Duration::from_secs(12), "{:?}", started.elapsed());
}

#[test]
fn a_burst_of_queued_documents_starts_no_more_workers_than_allowed() {
    let db = "t_sec_workers";
    let (mut admin, _victim, mut mallory, _id) = two_tenants(db);
    let count = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'docchat ingest worker' AND datname = current_database()";
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut c = connect(db, "postgres");
            let mut most = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(c.query_one(count, &[]).unwrap().get(0));
                std::thread::sleep(Duration::from_millis(5));
            }
            most
        })
    };
    let ids: Vec<String> = (0..300)
        .map(|i| mallory.query_one("SELECT docchat_ingest_async(convert_to($1, 'UTF8'))::text", &[&format!("Note {i} of a burst.")]).unwrap().get(0))
        .collect();
    // What a plain role sees of the workers is what there is.
    let health: serde_json::Value = mallory.query_one("SELECT docchat_health()::text", &[]).unwrap().get::<_, String>(0).parse().unwrap();
    assert_eq!(health["ingest"]["launcher_running"], true, "{health}");
    let here = health["ingest"]["workers_here"].as_i64().unwrap();
    assert!((1..=2).contains(&here), "{health}");
    assert!(health["ingest"].get("workers_cluster").is_none(), "{health}");
    wait_for_status(&mut mallory, ids.last().unwrap(), "ready", Duration::from_secs(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let most = watcher.join().unwrap();
    // docchat.ingest_workers is 2; a worker beyond it may show up for a moment before it leaves.
    assert!(most <= 3, "{most} ingest workers at once");
    let now: i64 = admin.query_one(count, &[]).unwrap().get(0);
    assert!(now <= 2, "{now}");
}
