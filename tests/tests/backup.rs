//! Backups: `pg_dump -Fc` of a database where two owners ingested PDFs, a DOCX and pictures,
//! searched, added a model and left a job queued, restored with `pg_restore` into a new database
//! and into a second cluster, holds every row: the same searches return the same rows and scores,
//! row-level security still holds, the queued job runs, and the search log goes on numbering.
use docchat_tests::*;
use postgres::Client;
use std::process::Command;

const DB: &str = "t_backup";
const QUERIES: [&str; 3] = ["how does the tracing compiler handle loops", "a photograph of an astronaut", "pictures in a Word document"];

/// Runs a command that must succeed; `quiet`: and print no warning either (pg_dump, pg_restore).
fn run(cmd: &mut Command, quiet: bool) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && (!quiet || stderr.trim().is_empty()), "{cmd:?}: {}\n{stderr}", out.status);
}

/// Each table's rows as one digest (as a superuser: every owner's).
fn table_digests(c: &mut Client) -> Vec<(String, i64, String)> {
    ["documents", "chunks", "images", "searches", "ingest_jobs", "models"]
        .iter()
        .map(|t| {
            let r = c
                .query_one(&format!("SELECT count(*), coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') FROM docchat.{t} x"), &[])
                .unwrap();
            (t.to_string(), r.get(0), r.get(1))
        })
        .collect()
}

/// What an owner's searches return, every mode, and their pictures' search.
fn searches(c: &mut Client) -> Vec<(String, String, i32, f64)> {
    c.batch_execute("SET docchat.log_searches = off").unwrap();
    let mut rows = Vec::new();
    for q in QUERIES {
        for mode in ["hybrid", "semantic", "keyword"] {
            for r in c.query("SELECT document_id::text, chunk_index, score FROM docchat_search($1, 10, -1, mode => $2)", &[&q, &mode]).unwrap() {
                rows.push((format!("{mode} {q}"), r.get(0), r.get(1), r.get(2)));
            }
        }
        for r in c.query("SELECT document_id::text, image_index, similarity FROM docchat_search_images($1, 10)", &[&q]).unwrap() {
            rows.push((format!("images {q}"), r.get(0), r.get(1), r.get(2)));
        }
    }
    c.batch_execute("RESET docchat.log_searches").unwrap();
    rows
}

fn assert_same_searches(before: &[(String, String, i32, f64)], after: &[(String, String, i32, f64)]) {
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(after) {
        assert_eq!((&b.0, &b.1, b.2), (&a.0, &a.1, a.2));
        assert!((b.3 - a.3).abs() < 1e-6, "{b:?} vs {a:?}");
    }
}

#[test]
fn a_dump_restores_every_row_and_the_same_searches() {
    let mut admin = fresh_db(DB);
    for role in ["t_bk_alice", "t_bk_bob"] {
        create_role(&mut admin, role, true);
        admin.batch_execute(&format!("ALTER ROLE {role} SET docchat.clip_model_dir = '{}'", clip_model_dir())).unwrap();
    }
    let mut alice = connect(DB, "t_bk_alice");
    let mut bob = connect(DB, "t_bk_bob");
    ingest(&mut alice, &read_shared("corpus/pdf/pdfjs__tracemonkey.pdf"), "tracemonkey.pdf").unwrap();
    ingest(&mut alice, &read_shared("corpus/office/tika__testWORD_embedded_pics.docx"), "pics.docx").unwrap();
    ingest(&mut bob, &read_shared("corpus/pdf/pypdf__jpeg.pdf"), "jpeg.pdf").unwrap();
    ingest(&mut bob, &read_shared("corpus/images/skimage__astronaut.png"), "astronaut.png").unwrap();
    for c in [&mut alice, &mut bob] {
        c.query("SELECT 1 FROM docchat_search('fonts in a PDF', 3)", &[]).unwrap();
    }
    // A model an admin registered, and a job still waiting (due tomorrow) with its bytes.
    admin
        .batch_execute("INSERT INTO docchat.models (name, dimension, max_seq_length, dir) VALUES ('my-minilm', 384, 256, 'all-MiniLM-L6-v2-fp32')")
        .unwrap();
    let mut tx = admin.transaction().unwrap();
    tx.batch_execute("SET LOCAL ROLE t_bk_alice").unwrap();
    let queued: String =
        tx.query_one("SELECT docchat_ingest_async(convert_to('A note that waits for tomorrow.', 'UTF8'), 'later.txt')::text", &[]).unwrap().get(0);
    tx.batch_execute("RESET ROLE").unwrap();
    tx.execute("UPDATE docchat.ingest_jobs SET run_after = now() + interval '1 day' WHERE document_id = $1::text::uuid", &[&queued]).unwrap();
    tx.commit().unwrap();

    let digests = table_digests(&mut admin);
    assert!(digests.iter().all(|(t, n, _)| *n > 0 || t == "models"), "{digests:?}");
    let (alice_hits, bob_hits) = (searches(&mut alice), searches(&mut bob));
    assert!(alice_hits.len() > 20 && bob_hits.iter().any(|h| h.0.starts_with("images")), "{alice_hits:?} {bob_hits:?}");

    let dump = std::env::temp_dir().join("docchat_backup_test.dump");
    run(Command::new("pg_dump").args(["-Fc", "-h", "127.0.0.1", "-p", &port().to_string(), "-U", "postgres", "-d", DB, "-f"]).arg(&dump), true);

    // Into a new database of the same cluster.
    let restored = "t_backup_restored";
    let mut postgres = connect("postgres", "postgres");
    postgres.batch_execute(&format!("DROP DATABASE IF EXISTS {restored} WITH (FORCE)")).unwrap();
    postgres.batch_execute(&format!("CREATE DATABASE {restored}")).unwrap();
    run(
        Command::new("pg_restore")
            .args(["--exit-on-error", "-h", "127.0.0.1", "-p", &port().to_string(), "-U", "postgres", "-d", restored])
            .arg(&dump),
        true,
    );
    let mut admin2 = connect(restored, "postgres");
    assert_eq!(table_digests(&mut admin2), digests);
    let mut alice2 = connect(restored, "t_bk_alice");
    let mut bob2 = connect(restored, "t_bk_bob");
    assert_same_searches(&alice_hits, &searches(&mut alice2));
    assert_same_searches(&bob_hits, &searches(&mut bob2));
    // Row-level security holds on the restored tables.
    let seen: Vec<String> = bob2.query("SELECT DISTINCT owner FROM docchat.documents", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(seen, ["t_bk_bob"]);
    // The search log goes on from where it was, and the queued job runs once it is due.
    alice2.query("SELECT 1 FROM docchat_search('after the restore', 1)", &[]).unwrap();
    let logged: i64 = admin2.query_one("SELECT count(*) FROM docchat.searches", &[]).unwrap().get(0);
    assert_eq!(logged, digests.iter().find(|d| d.0 == "searches").unwrap().1 + 1);
    admin2.execute("UPDATE docchat.ingest_jobs SET run_after = now() WHERE document_id = $1::text::uuid", &[&queued]).unwrap();
    let kick: String = alice2.query_one("SELECT docchat_ingest_async(convert_to('Wakes the workers.', 'UTF8'))::text", &[]).unwrap().get(0);
    wait_for_status(&mut alice2, &kick, "ready", std::time::Duration::from_secs(120));
    wait_for_status(&mut alice2, &queued, "ready", std::time::Duration::from_secs(120));
    let text: String = alice2.query_one("SELECT content FROM docchat.chunks WHERE document_id = $1::text::uuid", &[&queued]).unwrap().get(0);
    assert_eq!(text, "A note that waits for tomorrow.");
    drop((alice2, bob2, admin2));
    postgres.batch_execute(&format!("DROP DATABASE {restored} WITH (FORCE)")).unwrap();

    // Into a second cluster, whose roles the admin creates first (pg_dump keeps no roles).
    let other = OtherCluster::start(".pgbackup", None);
    let mut c = other.connect("postgres", "postgres");
    c.batch_execute(&format!(
        "CREATE ROLE t_bk_alice LOGIN; CREATE ROLE t_bk_bob LOGIN; ALTER ROLE t_bk_bob SET docchat.clip_model_dir = '{}'",
        clip_model_dir()
    ))
    .unwrap();
    c.batch_execute(&format!("CREATE DATABASE {DB}")).unwrap();
    run(
        Command::new("pg_restore").args(["--exit-on-error", "-h", "127.0.0.1", "-p", &other.port.to_string(), "-U", "postgres", "-d", DB]).arg(&dump),
        true,
    );
    let _ = std::fs::remove_file(&dump);
    assert_eq!(table_digests(&mut other.connect(DB, "postgres")), digests);
    // The grants came with the dump: bob searches as before.
    assert_same_searches(&bob_hits, &searches(&mut other.connect(DB, "t_bk_bob")));
}
