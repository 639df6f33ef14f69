//! Read replicas: a streaming hot standby made with pg_basebackup (scripts/cluster.sh) serves
//! every read function with the primary's results, logs no searches, and refuses ingest and
//! delete with a hint naming the primary.
use docchat_tests::fake_llm::{self, FakeLlm};
use docchat_tests::*;
use postgres::Client;
use std::time::{Duration, Instant};

const DB: &str = "t_standby";

/// Every read a user makes, as text: searches (each mode, a filter), pictures, chat context,
/// embeddings and the views.
fn reads(c: &mut Client) -> Vec<String> {
    let chelsea = read_shared("corpus/images/skimage__chelsea.png");
    let mut out = Vec::new();
    let text = |c: &mut Client, sql: &str| -> Vec<String> {
        c.query(&format!("SELECT row_to_json(r)::text FROM ({sql}) r"), &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    for mode in ["hybrid", "semantic", "keyword"] {
        out.extend(text(
            c,
            &format!(
                "SELECT document_id, chunk_index, score FROM docchat_search('how does the tracing compiler handle loops', 8, -1, mode => '{mode}')"
            ),
        ));
    }
    out.extend(text(c, r#"SELECT document_id, chunk_index, score FROM docchat_search('pictures', 8, -1, filter => '{"filename": "pics.docx"}')"#));
    out.extend(text(c, "SELECT document_id, image_index, similarity FROM docchat_search_images('a cat', 5)"));
    out.extend(text(c, "SELECT docchat_chat_context('What is a trace tree?', '[]', 4) - 'timing'"));
    out.extend(text(c, "SELECT docchat_embed('a question on a replica')::text AS v"));
    out.extend(text(c, "SELECT docchat_embed_image_query('a cat')::text AS v"));
    out.push(c.query_one("SELECT docchat_embed_image($1)::text", &[&chelsea]).unwrap().get(0));
    for view in [
        "SELECT id, filename, status, n_chunks FROM docchat.documents ORDER BY id",
        "SELECT documents_by_status FROM docchat.stats",
        "SELECT document_id, status FROM docchat.ingest_progress",
    ] {
        out.extend(text(c, view));
    }
    out
}

#[test]
fn a_hot_standby_serves_every_read_and_refuses_writes() {
    let mut admin = fresh_db(DB);
    let llm = FakeLlm::start();
    for role in ["t_sb_alice", "t_sb_bob"] {
        create_role(&mut admin, role, true);
        for (setting, value) in [("clip_model_dir", clip_model_dir()), ("chat_url", llm.url.clone()), ("chat_model", "test-model".into())] {
            admin.batch_execute(&format!("ALTER ROLE {role} SET docchat.{setting} = '{value}'")).unwrap();
        }
    }
    let mut alice = connect(DB, "t_sb_alice");
    let mut bob = connect(DB, "t_sb_bob");
    ingest(&mut alice, &read_shared("corpus/pdf/pdfjs__tracemonkey.pdf"), "tracemonkey.pdf").unwrap();
    let queued: String = alice
        .query_one("SELECT docchat_ingest_async($1, 'pics.docx')::text", &[&read_shared("corpus/office/tika__testWORD_embedded_pics.docx")])
        .unwrap()
        .get(0);
    wait_for_status(&mut alice, &queued, "ready", Duration::from_secs(120));
    ingest(&mut bob, &read_shared("corpus/images/skimage__chelsea.png"), "chelsea.png").unwrap();
    let on_primary = [reads(&mut alice), reads(&mut bob)];
    assert!(on_primary[0].len() > 20 && on_primary[1].iter().any(|r| r.contains("image_index")), "{on_primary:?}");
    let logged: i64 = admin.query_one("SELECT count(*) FROM docchat.searches", &[]).unwrap().get(0);
    let lsn: String = admin.query_one("SELECT pg_current_wal_lsn()::text", &[]).unwrap().get(0);

    let standby = OtherCluster::start(".pgstandby", Some(port()));
    {
        let mut sb_admin = standby.connect(DB, "postgres");
        let started = Instant::now();
        while !sb_admin.query_one("SELECT pg_is_in_recovery() AND pg_last_wal_replay_lsn() >= $1::text::pg_lsn", &[&lsn]).unwrap().get::<_, bool>(0) {
            assert!(started.elapsed() < Duration::from_secs(60), "the standby did not replay up to {lsn}");
            std::thread::sleep(Duration::from_millis(100));
        }
        // The standby's model worker runs a warm-up text as it starts; a query that shares its
        // batch gets a slightly different int8 vector (activations are quantized per batch), so
        // the comparison starts once a throwaway embedding has gone through on its own.
        sb_admin
            .batch_execute("SELECT docchat_embed('a throwaway text'); SELECT pg_sleep(0.5); SELECT docchat_embed('another throwaway text')")
            .unwrap();
        let mut sb_alice = standby.connect(DB, "t_sb_alice");
        let mut sb_bob = standby.connect(DB, "t_sb_bob");
        for (client, expected) in [(&mut sb_alice, &on_primary[0]), (&mut sb_bob, &on_primary[1])] {
            let got = reads(client);
            assert_eq!(got.len(), expected.len());
            for (g, e) in got.iter().zip(expected.iter()) {
                let cut = |s: &str| s.chars().take(300).collect::<String>();
                assert!(g == e, "on the standby: {}\non the primary: {}", cut(g), cut(e));
            }
        }
        // An answer through the endpoint, as on the primary.
        llm.queue(fake_llm::completion("A trace tree is a tree of traces [1]."));
        let answer: String = sb_alice.query_one("SELECT docchat_chat('What is a trace tree?')->>'answer'", &[]).unwrap().get(0);
        assert_eq!(answer, "A trace tree is a tree of traces [1].");
        let health: serde_json::Value = sb_alice.query_one("SELECT docchat_health()::text", &[]).unwrap().get::<_, String>(0).parse().unwrap();
        assert_eq!(
            (&health["standby"], &health["searches_logged"], &health["model_worker"]["running"]),
            (&true.into(), &false.into(), &true.into()),
            "{health}"
        );
        // Writes name the primary.
        let primary = format!("127.0.0.1:{}", port());
        for (sql, what) in [
            ("SELECT docchat_ingest(convert_to('x', 'UTF8'))::text", "docchat_ingest"),
            ("SELECT docchat_ingest_async(convert_to('x', 'UTF8'))::text", "docchat_ingest_async"),
            ("SELECT docchat_delete(gen_random_uuid())::text", "docchat_delete"),
        ] {
            let e = sb_alice.query_one(sql, &[]).unwrap_err();
            let db = e.as_db_error().unwrap();
            assert_eq!((db.code().code(), db.message()), ("25006", format!("{what}: this server is a read-only standby").as_str()));
            assert!(db.hint().unwrap().contains(&primary), "{:?}", db.hint());
        }
        // Nothing was logged on the standby, and the primary has only its own searches.
        let on_standby: i64 = sb_admin.query_one("SELECT count(*) FROM docchat.searches", &[]).unwrap().get(0);
        assert_eq!(on_standby, logged);
    }
}
