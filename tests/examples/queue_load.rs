//! Load on the ingest queue (see bench/queue_load.sh, which starts a cluster for it):
//!   queue_load SESSIONS SECONDS
//! Each session is its own role and, for SECONDS, alternates one docchat_ingest_async of a new
//! document (8 passages of the benchmark set, each tagged so that no chunk repeats) with three docchat_search calls.
//! Then it waits for the queue to drain and checks that every queued document is `ready` once,
//! with exactly its chunks; prints throughput, latency percentiles and errors, and the same
//! searches' latency on the idle server afterwards.
use docchat_tests::{connect, create_role, fresh_db, percentile, shared};
use std::time::{Duration, Instant};

const DB: &str = "docchat_load";

fn lines(path: &str) -> Vec<String> {
    std::fs::read_to_string(shared(path)).unwrap().lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
}

struct Tally {
    ids: Vec<String>,
    ingest_ms: Vec<f64>,
    search_ms: Vec<f64>,
    errors: Vec<String>,
}

fn session(i: usize, secs: u64, passages: &[String], queries: &[String]) -> Tally {
    let mut c = connect(DB, "postgres");
    c.batch_execute(&format!("SET ROLE load_user_{i}")).unwrap();
    let mut t = Tally { ids: Vec::new(), ingest_ms: Vec::new(), search_ms: Vec::new(), errors: Vec::new() };
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut n = 0;
    while Instant::now() < deadline {
        // Each passage tagged with its place, so no chunk repeats and the embedding cache stays out of it.
        let doc: String =
            (0..8).map(|k| format!("[{i}-{n}-{k}] {}", passages[(i * 7919 + n * 131 + k * 17) % passages.len()])).collect::<Vec<_>>().join("\n\n");
        let doc = format!("Load document {i}-{n}.\n\n{doc}");
        let started = Instant::now();
        match c.query_one("SELECT docchat_ingest_async($1, $2)::text", &[&doc.as_bytes(), &format!("load-{i}-{n}.txt")]) {
            Ok(row) => t.ids.push(row.get(0)),
            Err(e) => t.errors.push(format!("ingest: {e}")),
        }
        t.ingest_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        for k in 0..3 {
            let q = &queries[(i * 31 + n * 3 + k) % queries.len()];
            let started = Instant::now();
            if let Err(e) = c.query("SELECT * FROM docchat_search($1, 5)", &[q]) {
                t.errors.push(format!("search: {e}"));
            }
            t.search_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        n += 1;
    }
    t
}

fn summary(name: &str, ms: &mut [f64], secs: f64) {
    ms.sort_by(f64::total_cmp);
    println!(
        "| {name} | {} | {:.1}/s | {:.1} ms | {:.1} ms | {:.1} ms |",
        ms.len(),
        ms.len() as f64 / secs,
        percentile(ms, 0.50),
        percentile(ms, 0.95),
        percentile(ms, 0.99)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sessions: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(8);
    let secs: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(300);
    let (passages, queries) = (lines("reference/bench_passages.txt"), lines("reference/bench_queries.txt"));
    let mut admin = fresh_db(DB);
    for i in 0..sessions {
        create_role(&mut admin, &format!("load_user_{i}"), false);
    }
    let started = Instant::now();
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..sessions)
            .map(|i| {
                let (p, q) = (&passages, &queries);
                s.spawn(move || session(i, secs, p, q))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let load_secs = started.elapsed().as_secs_f64();
    let pending = |c: &mut postgres::Client| -> i64 { c.query_one("SELECT docchat.pending_jobs()", &[]).unwrap().get(0) };
    let backlog = pending(&mut admin);
    while pending(&mut admin) > 0 {
        assert!(started.elapsed() < Duration::from_secs(secs + 1800), "the queue did not drain");
        std::thread::sleep(Duration::from_millis(500));
    }
    let total_secs = started.elapsed().as_secs_f64();
    // The same searches by one session of each role with nothing else running: the idle figure
    // of this run, over the (then larger) data.
    let mut idle = Vec::new();
    let mut c = connect(DB, "postgres");
    for n in 0..(tallies.iter().map(|t| t.search_ms.len()).sum::<usize>().min(600)) {
        let i = n % sessions;
        c.batch_execute(&format!("SET ROLE load_user_{i}")).unwrap();
        let t = Instant::now();
        c.query("SELECT * FROM docchat_search($1, 5)", &[&queries[(i * 31 + n) % queries.len()]]).unwrap();
        idle.push(t.elapsed().as_secs_f64() * 1000.0);
    }

    let ids: Vec<String> = tallies.iter().flat_map(|t| t.ids.iter().cloned()).collect();
    let errors: Vec<&String> = tallies.iter().flat_map(|t| t.errors.iter()).collect();
    let row = admin
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE d.status = 'ready'), \
                    count(*) FILTER (WHERE d.n_chunks = (SELECT count(*) FROM docchat.chunks c WHERE c.document_id = d.id)), \
                    (SELECT count(*) FROM docchat.chunks), \
                    (SELECT count(*) FROM (SELECT DISTINCT document_id, chunk_index FROM docchat.chunks) u), \
                    coalesce(sum(d.n_chunks), 0)::int8, \
                    (SELECT count(*) FROM docchat.ingest_jobs WHERE attempts > 1), \
                    (SELECT coalesce(sum(chunks_cached), 0)::int8 FROM docchat.ingest_jobs) \
             FROM docchat.documents d",
            &[],
        )
        .unwrap();
    let (docs, ready, exact, chunks, distinct, announced, retried, cached): (i64, i64, i64, i64, i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get(5), row.get(6), row.get(7));
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    println!(
        "{sessions} sessions (one role each), {load_secs:.0} s of load, queue drained {:.0} s later (backlog at the end: {backlog})",
        total_secs - load_secs
    );
    println!("| operation | count | rate | p50 | p95 | p99 |");
    println!("|---|---|---|---|---|---|");
    let mut ingest: Vec<f64> = tallies.iter().flat_map(|t| t.ingest_ms.iter().copied()).collect();
    let mut search: Vec<f64> = tallies.iter().flat_map(|t| t.search_ms.iter().copied()).collect();
    summary("docchat_ingest_async", &mut ingest, load_secs);
    summary("docchat_search", &mut search, load_secs);
    let idle_secs = idle.iter().sum::<f64>() / 1000.0;
    summary("docchat_search, idle (after)", &mut idle, idle_secs);
    println!(
        "documents: {} queued, {docs} stored, {ready} ready, {exact} with exactly their chunks; {chunks} chunks ({distinct} distinct positions, {announced} announced); \
         {cached} of them reused from the embedding cache; \
         {:.1} documents/s and {:.1} chunks/s end to end; {retried} jobs retried; {} errors",
        ids.len(),
        ready as f64 / total_secs,
        chunks as f64 / total_secs,
        errors.len()
    );
    for e in errors.iter().take(5) {
        println!("  error: {e}");
    }
    let lost_or_duplicated =
        ids.len() as i64 != docs || unique.len() != ids.len() || ready != docs || exact != docs || chunks != distinct || chunks != announced;
    assert!(errors.is_empty() && !lost_or_duplicated, "the load run lost, duplicated or failed documents");
    println!("OK: 0 errors, 0 lost or duplicated documents");
}
