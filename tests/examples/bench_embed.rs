//! Embedding benchmark against a running cluster (see bench/embed.sh, which starts one):
//!   bench_embed throughput  PASSAGES QUERIES   1000 passages as one docchat_embed(text[]) call,
//!                                             then each query as its own SELECT docchat_embed($1)
//!   bench_embed concurrency QUERIES N SECS    N sessions embedding queries one at a time
//!   bench_embed memory N                      cluster memory: no sessions, N idle, N after embedding
//! Settings for every session come from $DOCCHAT_BENCH_SET (e.g. "SET docchat.model_worker = off").
use docchat_tests::{connect, percentile};
use postgres::Client;
use std::time::{Duration, Instant};

fn session(db: &str) -> Client {
    let mut c = connect(db, "postgres");
    if let Ok(set) = std::env::var("DOCCHAT_BENCH_SET") {
        c.batch_execute(&set).unwrap();
    }
    c
}

fn lines(path: &str) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
}

fn throughput(db: &str, passages: &[String], queries: &[String]) {
    let mut c = session(db);
    let one = c.prepare("SELECT docchat_embed($1)").unwrap();
    c.query_one(&one, &[&"warm up"]).unwrap();
    let t = Instant::now();
    let n: i32 = c.query_one("SELECT cardinality(docchat_embed($1::text[]))", &[&passages]).unwrap().get(0);
    let passages_s = t.elapsed().as_secs_f64();
    assert_eq!(n as usize, passages.len());
    let t = Instant::now();
    for q in queries {
        c.query_one(&one, &[q]).unwrap();
    }
    let queries_s = t.elapsed().as_secs_f64();
    println!("passages/s {:.1}", passages.len() as f64 / passages_s);
    println!("queries/s {:.1}", queries.len() as f64 / queries_s);
}

fn concurrency(db: &str, queries: &[String], sessions: usize, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let handles: Vec<_> = (0..sessions)
        .map(|s| {
            let (db, queries) = (db.to_string(), queries.to_vec());
            std::thread::spawn(move || {
                let mut c = session(&db);
                let one = c.prepare("SELECT docchat_embed($1)").unwrap();
                c.query_one(&one, &[&"warm up"]).unwrap();
                let mut lat = Vec::new();
                let mut i = s * 37;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    c.query_one(&one, &[&queries[i % queries.len()]]).unwrap();
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    i += 1;
                }
                lat
            })
        })
        .collect();
    let started = Instant::now();
    let mut all: Vec<f64> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let wall = started.elapsed().as_secs_f64().max(secs as f64);
    all.sort_by(f64::total_cmp);
    println!(
        "sessions {sessions}: {:.1} queries/s total, p50 {:.2} ms, p95 {:.2} ms ({} queries)",
        all.len() as f64 / wall,
        percentile(&all, 0.5),
        percentile(&all, 0.95),
        all.len()
    );
}

/// Proportional set size (shared pages split between the processes sharing them) of every
/// process of the cluster, in MB.
fn cluster_pss_mb(c: &mut Client) -> f64 {
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap().split_whitespace().nth(3).unwrap().to_string();
    let mut kb = 0u64;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{name}/stat")) else { continue };
        let parent = stat.rsplit(')').next().unwrap_or("").split_whitespace().nth(1).unwrap_or("");
        if name == ppid || parent == ppid {
            if let Ok(rollup) = std::fs::read_to_string(format!("/proc/{name}/smaps_rollup")) {
                kb += rollup
                    .lines()
                    .find(|l| l.starts_with("Pss:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    kb as f64 / 1024.0
}

fn memory(db: &str, n: usize) {
    let mut probe = session(db);
    probe.query_one("SELECT docchat_embed('warm up')", &[]).unwrap();
    let base = cluster_pss_mb(&mut probe);
    let mut sessions: Vec<Client> = (0..n).map(|_| session(db)).collect();
    std::thread::sleep(Duration::from_millis(500));
    let idle = cluster_pss_mb(&mut probe);
    for (i, c) in sessions.iter_mut().enumerate() {
        c.query_one("SELECT docchat_embed($1)", &[&format!("session {i} embeds a sentence")]).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let used = cluster_pss_mb(&mut probe);
    println!(
        "cluster PSS: {base:.0} MB with 1 session; +{n} idle sessions {idle:.0} MB; after each embedded once {used:.0} MB; growth {:.2} MB per session ({:.2} MB of it from embedding)",
        (used - base) / n as f64,
        (used - idle) / n as f64
    );
    drop(sessions);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let db = std::env::var("DOCCHAT_BENCH_DB").unwrap_or_else(|_| "docchat_bench".into());
    match args.first().map(String::as_str) {
        Some("throughput") => throughput(&db, &lines(&args[1]), &lines(&args[2])),
        Some("concurrency") => concurrency(&db, &lines(&args[1]), args[2].parse().unwrap(), args[3].parse().unwrap()),
        Some("memory") => memory(&db, args[1].parse().unwrap()),
        _ => eprintln!("usage: bench_embed throughput PASSAGES QUERIES | concurrency QUERIES N SECS | memory N"),
    }
}
