//! Helpers for docchat's SQL-level integration tests. They run against the cluster that
//! `make test` starts on 127.0.0.1:$DOCCHAT_TEST_PORT with docchat installed.
pub mod fake_llm;

use postgres::{Client, NoTls};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub fn port() -> u16 {
    std::env::var("DOCCHAT_TEST_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(5434)
}

pub fn connect(db: &str, user: &str) -> Client {
    Client::connect(&format!("host=127.0.0.1 port={} user={user} dbname={db}", port()), NoTls)
        .unwrap_or_else(|e| panic!("cannot connect to the test cluster as {user} ({e}); run the tests with `make test`"))
}

/// A new database with docchat created in it, for one test; returns a superuser connection.
pub fn fresh_db(name: &str) -> Client {
    let mut admin = connect("postgres", "postgres");
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let mut c = connect(name, "postgres");
    c.batch_execute("CREATE EXTENSION docchat CASCADE").unwrap();
    c
}

/// A role with exactly the one grant the README tells an admin to give.
pub fn create_role(admin: &mut Client, role: &str, login: bool) {
    let login = if login { "LOGIN" } else { "NOLOGIN" };
    admin.batch_execute(&format!("DROP ROLE IF EXISTS {role}; CREATE ROLE {role} {login};")).unwrap();
    admin.batch_execute(&format!("SELECT docchat.grant_usage('{role}')")).unwrap();
}

/// Every catalog fact about docchat in the database (tests/sql/describe.sql), function and view
/// bodies as digests on lines starting with `body `.
pub fn catalog(c: &mut Client) -> Vec<String> {
    let sql = std::fs::read_to_string(repo().join("tests/sql/describe.sql")).unwrap();
    c.query(&sql, &[]).unwrap().iter().map(|r| r.get::<_, String>(0)).collect()
}

/// A file under ../shared (the corpus and reference data).
pub fn shared(path: &str) -> PathBuf {
    let root = std::env::var("DOCCHAT_SHARED").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    root.join(path)
}

pub fn read_shared(path: &str) -> Vec<u8> {
    let p = shared(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// Ingests a file; returns the document id as text.
pub fn ingest(c: &mut Client, bytes: &[u8], filename: &str) -> Result<String, postgres::Error> {
    c.query_one("SELECT docchat_ingest($1, $2)::text", &[&bytes, &filename]).map(|r| r.get(0))
}

/// Unicode NFKC, as docchat applies to extracted text (ligatures become letters).
pub fn nfkc(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    s.nfkc().collect()
}

/// Collapses all whitespace runs to single spaces.
pub fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The SQLSTATE of a failed statement.
pub fn sqlstate(e: &postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_else(|| format!("no SQLSTATE: {e}"))
}

/// The document's text rebuilt from its chunks' character offsets (chunks overlap).
pub fn document_text(c: &mut Client, id: &str) -> String {
    let rows =
        c.query("SELECT content, char_start, char_end FROM docchat.chunks WHERE document_id = $1::text::uuid ORDER BY chunk_index", &[&id]).unwrap();
    let mut text = String::new();
    let mut end = 0i32;
    for r in rows {
        let (content, start, stop): (String, i32, i32) = (r.get(0), r.get(1), r.get(2));
        assert_eq!(content.chars().count() as i32, stop - start, "chunk offsets must span its content");
        if stop <= end {
            continue;
        }
        let skip = (end - start).max(0) as usize;
        text.push(' ');
        text.extend(content.chars().skip(skip));
        end = stop;
    }
    squash(&text)
}

/// The q-quantile (nearest rank) of ascending values, e.g. 0.5 and 0.95 for latency figures.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Waits until a queued document has `status`; a document that fails instead ends the wait
/// with its error.
pub fn wait_for_status(c: &mut Client, id: &str, status: &str, within: Duration) {
    let started = Instant::now();
    loop {
        let row = c
            .query_one(
                "SELECT d.status, j.last_error FROM docchat.documents d LEFT JOIN docchat.ingest_jobs j ON j.document_id = d.id WHERE d.id = $1::text::uuid",
                &[&id],
            )
            .unwrap();
        let (now, error): (String, Option<String>) = (row.get(0), row.get(1));
        if now == status {
            return;
        }
        assert!(now != "failed", "document {id} failed while waiting for {status}: {error:?}");
        assert!(started.elapsed() < within, "document {id} is still {now} after {within:?}, not {status} (last error {error:?})");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The CLIP-shaped model folder that scripts/clip_fixture.sh makes.
pub fn clip_model_dir() -> String {
    PathBuf::from(std::env::var("DOCCHAT_TEST_CLIP_FIXTURE").expect("DOCCHAT_TEST_CLIP_FIXTURE (make test sets it)"))
        .join("model")
        .display()
        .to_string()
}

/// The repository root (scripts/ is there).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A second local cluster for a test (a restore target, a standby): its data folder under
/// $DOCCHAT_STATE, started on the first free port above the test cluster's by
/// scripts/cluster.sh (`primary`: as a streaming standby of that port), stopped and removed on drop.
pub struct OtherCluster {
    pub port: u16,
    datadir: PathBuf,
}

impl OtherCluster {
    pub fn start(name: &str, primary: Option<u16>) -> OtherCluster {
        let state = std::env::var("DOCCHAT_STATE").map(PathBuf::from).unwrap_or_else(|_| repo());
        let datadir = state.join(name);
        let _ = std::fs::remove_dir_all(&datadir);
        let port = (port() + 1..port() + 100).find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok()).expect("a free port");
        let cluster = OtherCluster { port, datadir };
        cluster.run("start", primary);
        cluster
    }

    pub fn connect(&self, db: &str, user: &str) -> Client {
        Client::connect(&format!("host=127.0.0.1 port={} user={user} dbname={db}", self.port), NoTls).unwrap()
    }

    fn run(&self, action: &str, primary: Option<u16>) {
        let mut cmd = std::process::Command::new("bash");
        cmd.arg(repo().join("scripts/cluster.sh")).arg(&self.datadir).arg(self.port.to_string()).arg(action);
        cmd.args(primary.map(|p| p.to_string()));
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for OtherCluster {
    fn drop(&mut self) {
        self.run("stop", None);
        let _ = std::fs::remove_dir_all(&self.datadir);
    }
}
