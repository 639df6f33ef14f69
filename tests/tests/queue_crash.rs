//! A queued document survives its ingest worker being killed (SIGKILL: the server restarts all
//! backends) and a server restart mid-job: it ends `ready` with exactly its chunks, once each.
//! These tests restart the test cluster, so they live in their own binary and take turns.
use docchat_tests::*;
use postgres::Client;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
/// A 350-page book: long enough to be caught mid-job.
const BOOK: &str = "corpus/pdf/pdfjs__freeculture.pdf";

/// Queues the book and waits until its worker has embedded some but not all chunks; returns
/// the document id, the worker's pid and the chunk count the worker announced.
fn queue_and_catch_mid_job(db: &str) -> (Client, String, i32, i32) {
    reconnect("postgres"); // after the other test's restart
    let mut c = fresh_db(db);
    let id: String = c.query_one("SELECT docchat_ingest_async($1, 'freeculture.pdf')::text", &[&read_shared(BOOK)]).unwrap().get(0);
    let started = Instant::now();
    loop {
        let r = c
            .query_one("SELECT d.status, j.worker_pid, j.chunks_done, j.chunks_total FROM docchat.documents d JOIN docchat.ingest_jobs j ON j.document_id = d.id WHERE d.id = $1::text::uuid", &[&id])
            .unwrap();
        let (status, pid, done, total): (String, Option<i32>, i32, Option<i32>) = (r.get(0), r.get(1), r.get(2), r.get(3));
        if let (Some(pid), Some(total)) = (pid, total) {
            if status == "embedding" && done > 0 {
                assert!(done < total, "the job finished before it could be interrupted ({done} of {total})");
                return (c, id, pid, total);
            }
        }
        assert!(started.elapsed() < Duration::from_secs(300), "the job never got to embedding (status {status})");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Connects once the server accepts connections again.
fn reconnect(db: &str) -> Client {
    let started = Instant::now();
    loop {
        if let Ok(c) = postgres::Client::connect(&format!("host=127.0.0.1 port={} user=postgres dbname={db}", port()), postgres::NoTls) {
            return c;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the server did not come back");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Exactly `total` chunks, each index once, none left from the interrupted attempt.
fn assert_complete(c: &mut Client, id: &str, total: i32) {
    wait_for_status(c, id, "ready", Duration::from_secs(300));
    let r = c
        .query_one(
            "SELECT count(*)::int, count(DISTINCT chunk_index)::int, max(chunk_index) + 1, \
                    (SELECT n_chunks FROM docchat.documents WHERE id = $1::text::uuid), \
                    (SELECT attempts FROM docchat.ingest_jobs WHERE document_id = $1::text::uuid), \
                    (SELECT count(*)::int FROM docchat.documents) \
             FROM docchat.chunks WHERE document_id = $1::text::uuid",
            &[&id],
        )
        .unwrap();
    let got: (i32, i32, i32, i32, i32, i32) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
    assert_eq!(got, (total, total, total, total, 2, 1), "(chunks, distinct indexes, max index + 1, n_chunks, attempts, documents)");
}

#[test]
fn killed_worker_job_is_retried_from_a_clean_state() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (mut old, id, pid, total) = queue_and_catch_mid_job("t_crash_kill");
    let killed = Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    assert!(killed.success());
    // The postmaster ends every backend, this connection's too, before it recovers.
    let started = Instant::now();
    while old.simple_query("SELECT 1").is_ok() {
        assert!(started.elapsed() < Duration::from_secs(30), "the server did not restart its backends");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut c = reconnect("t_crash_kill");
    assert_complete(&mut c, &id, total);
}

#[test]
fn server_restart_mid_job_loses_nothing() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (_c, id, _pid, total) = queue_and_catch_mid_job("t_crash_restart");
    let datadir: String = connect("postgres", "postgres").query_one("SHOW data_directory", &[]).unwrap().get(0);
    let cluster = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/cluster.sh");
    let restarted = Command::new("bash").arg(cluster).args([&datadir, &port().to_string(), "start"]).status().unwrap();
    assert!(restarted.success(), "scripts/cluster.sh restart failed");
    let mut c = reconnect("t_crash_restart");
    assert_complete(&mut c, &id, total);
}
