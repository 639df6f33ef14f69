//! The model worker: with docchat preloaded (as `make test`'s cluster has it), one background
//! process embeds for every session, survives restarts and honours cancel.
use docchat_tests::*;
use postgres::Client;
use std::time::{Duration, Instant};

/// A fresh database whose session embeds every call: the query cache would answer repeated
/// texts without asking the worker (or the session's own model), which these tests watch.
fn worker_db(name: &str) -> Client {
    let mut c = fresh_db(name);
    c.batch_execute("SET docchat.query_cache_window = 0").unwrap();
    c
}

fn worker_pids(c: &mut Client) -> Vec<i32> {
    c.query("SELECT pid FROM pg_stat_activity WHERE backend_type = 'docchat model worker'", &[]).unwrap().iter().map(|r| r.get(0)).collect()
}

fn health(c: &mut Client) -> serde_json::Value {
    c.query_one("SELECT docchat_health()::text", &[]).unwrap().get::<_, String>(0).parse().unwrap()
}

fn embed(c: &mut Client, text: &str) -> Vec<f32> {
    c.query_one("SELECT docchat_embed($1)::real[]", &[&text]).unwrap().get(0)
}

fn embed_many(c: &mut Client, texts: &[Option<&str>]) -> Vec<Option<Vec<f32>>> {
    c.query("SELECT e::real[] FROM unnest(docchat_embed($1::text[])) WITH ORDINALITY AS u(e, n) ORDER BY n", &[&texts])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The default int8 model quantizes activations with one scale per ONNX run, so a text's vector moves
/// slightly with the texts batched beside it: alone vs beside 31 passages, mean cosine 0.998, worst
/// 0.990 (one-word texts), and tests run in parallel, sharing the worker.
const SAME_TEXT_OTHER_BATCH: f32 = 0.985;

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Texts long enough that embedding a few hundred takes seconds.
fn long_texts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("passage {i}: ") + &"the quick brown fox jumps over the lazy dog near the river bank ".repeat(8)).collect()
}

#[test]
fn one_worker_embeds_for_every_session() {
    let mut c = worker_db("t_worker_serves");
    assert_eq!(worker_pids(&mut c).len(), 1, "exactly one model worker runs");
    let before = health(&mut c);
    assert_eq!(before["embedding"], "model worker");
    assert_eq!(before["model_worker"]["running"], true);
    assert_eq!(before["model_worker"]["pid"].as_i64().unwrap() as i32, worker_pids(&mut c)[0]);
    let served = embed(&mut c, "a sentence the worker embeds");
    let after = health(&mut c);
    assert!(after["model_worker"]["texts"].as_u64() > before["model_worker"]["texts"].as_u64());
    assert_eq!(after["model_worker"]["models"][0]["dimension"], 384);
    assert!(after["session_model"].is_null(), "the session loaded no model of its own: {after}");

    // The same model run inside the session gives the same vector.
    c.batch_execute("SET docchat.model_worker = off").unwrap();
    let local = embed(&mut c, "a sentence the worker embeds");
    assert!(dot(&served, &local) > SAME_TEXT_OTHER_BATCH, "worker and session disagree: {}", dot(&served, &local));
    let h = health(&mut c);
    assert_eq!(h["embedding"], "this session");
    assert_eq!(h["session_model"]["dimension"], 384);
}

#[test]
fn the_array_variant_matches_single_calls_in_order() {
    let mut c = worker_db("t_worker_array");
    let texts = ["first", "a second and longer text", "third"];
    let many = embed_many(&mut c, &[Some(texts[0]), Some(texts[1]), None, Some(texts[2])]);
    assert_eq!(many.len(), 4);
    assert!(many[2].is_none(), "NULL in, NULL out");
    for (t, v) in texts.iter().zip([&many[0], &many[1], &many[3]]) {
        let single = embed(&mut c, t);
        assert!(dot(&single, v.as_ref().unwrap()) > SAME_TEXT_OTHER_BATCH, "{t}");
    }
    let empty: String = c.query_one("SELECT docchat_embed('{}'::text[])::text", &[]).unwrap().get(0);
    assert_eq!(empty, "{}");
    let null: Option<String> = c.query_one("SELECT docchat_embed(NULL::text[])::text", &[]).unwrap().get(0);
    assert_eq!(null, None);
}

#[test]
fn a_waiting_session_honours_statement_timeout() {
    let mut c = worker_db("t_worker_cancel");
    let texts = long_texts(400);
    c.batch_execute("SET statement_timeout = '300ms'").unwrap();
    let started = Instant::now();
    let err = c.query_one("SELECT docchat_embed($1::text[])", &[&texts]).unwrap_err();
    assert_eq!(sqlstate(&err), "57014", "{err}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    c.batch_execute("RESET statement_timeout").unwrap();
    assert_eq!(embed(&mut c, "still works").len(), 384);
}

/// Restarts of the worker, in one test so they do not overlap.
#[test]
fn worker_restarts_are_survived() {
    let mut c = worker_db("t_worker_restart");
    let expected = embed(&mut c, "passage 0: the quick brown fox");

    // Killed mid-request: the waiting session reconnects to the new worker and gets every vector.
    let texts = long_texts(150);
    let first = embed(&mut c, &texts[0]);
    let old = worker_pids(&mut c)[0];
    let runner = std::thread::spawn(move || {
        let mut c = connect("t_worker_restart", "postgres");
        let t0 = Instant::now();
        let rows = c.query("SELECT e::real[] FROM unnest(docchat_embed($1::text[])) WITH ORDINALITY u(e, n) ORDER BY n", &[&texts]);
        (rows.map(|rs| rs.iter().map(|r| r.get::<_, Vec<f32>>(0)).collect::<Vec<_>>()), t0.elapsed())
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while health(&mut c)["model_worker"]["queue_depth"].as_u64().unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "the request never reached the worker");
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed: bool = c.query_one("SELECT pg_terminate_backend($1, 10000)", &[&old]).unwrap().get(0);
    assert!(killed);
    let (rows, took) = runner.join().unwrap();
    let rows = rows.expect("the request survives the restart");
    assert_eq!(rows.len(), 150);
    assert!(dot(&rows[0], &first) > SAME_TEXT_OTHER_BATCH);
    let new = worker_pids(&mut c);
    assert_eq!(new.len(), 1);
    assert_ne!(new[0], old, "a fresh worker took over");
    eprintln!("150 texts with a worker restart in the middle: {took:?}");

    // Gone and not back yet: with no patience, a clear error; with the default, it waits.
    let pid = new[0];
    assert!(c.query_one("SELECT pg_terminate_backend($1, 10000)", &[&pid]).unwrap().get::<_, bool>(0));
    c.batch_execute("SET docchat.worker_timeout = 0").unwrap();
    let err = c.query_one("SELECT docchat_embed('x')", &[]).unwrap_err();
    assert_eq!(sqlstate(&err), "58000", "{err}");
    let db = err.as_db_error().unwrap();
    assert!(db.message().starts_with("cannot reach the docchat model worker"), "{}", db.message());
    assert!(db.hint().unwrap().contains("shared_preload_libraries"));
    assert_eq!(health(&mut c)["model_worker"]["running"], false);
    c.batch_execute("RESET docchat.worker_timeout").unwrap();
    assert!(dot(&embed(&mut c, "passage 0: the quick brown fox"), &expected) > SAME_TEXT_OTHER_BATCH);
    assert_eq!(health(&mut c)["model_worker"]["running"], true);
}
