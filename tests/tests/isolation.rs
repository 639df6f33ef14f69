//! Property-style isolation: two owners (a login role and a JWT subject) make random sequences
//! of calls (ingest, async ingest, delete of any id they have heard of, search in every mode,
//! chat context, reads of every view, LISTEN); no result or notification one of them receives
//! ever holds a document id, a text or the name of the other.
use docchat_tests::*;
use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;
use std::time::Duration;

const DB: &str = "t_isolation";

/// One owner: how to run a statement as them, and everything of theirs the other must never see.
struct Tenant {
    label: &'static str,
    client: Client,
    /// The PostgREST-style role and claims, for the JWT subject.
    jwt: Option<(&'static str, String)>,
    owner: String,
    live: Vec<String>,
    secrets: Vec<String>,
}

impl Tenant {
    /// Rows of `sql` as JSON text, run as this owner (in its own transaction).
    fn rows(&mut self, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> Vec<String> {
        let wrapped = format!("SELECT row_to_json(r)::text FROM ({sql}) r");
        let mut tx = self.client.transaction().unwrap();
        if let Some((role, claims)) = &self.jwt {
            tx.batch_execute(&format!("SET LOCAL ROLE {role}")).unwrap();
            tx.execute("SELECT set_config('request.jwt.claims', $1, true)", &[claims]).unwrap();
        }
        let rows = tx.query(&wrapped, params).unwrap_or_else(|e| panic!("{}: {sql}: {e}", self.label));
        tx.commit().unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    }

    fn value(&mut self, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> serde_json::Value {
        let rows = self.rows(&format!("{sql} AS v"), params);
        let row: serde_json::Value = rows[0].parse().unwrap();
        row["v"].clone()
    }

    /// Notifications delivered to this owner's connection so far.
    fn notifications(&mut self) -> Vec<String> {
        let mut seen = Vec::new();
        let mut pending = self.client.notifications();
        let mut it = pending.iter();
        while let Some(n) = it.next().unwrap() {
            seen.push(format!("{} {}", n.channel(), n.payload()));
        }
        seen
    }
}

/// xorshift64*: reproducible choices without another dependency; the seed is printed on failure.
struct Choices(u64);
impl Choices {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

fn assert_nothing_of(other: &Tenant, seen: &[String], context: &str) {
    for text in seen {
        for secret in other.secrets.iter().chain([&other.owner]) {
            assert!(!text.contains(secret.as_str()), "{context}: {text} holds {}'s {secret}", other.label);
        }
    }
}

fn tenants() -> [Tenant; 2] {
    let mut admin = fresh_db(DB);
    create_role(&mut admin, "t_iso_alice", true);
    // Bob is a JWT subject reached through a PostgREST-style gate role.
    admin
        .batch_execute(
            "DROP ROLE IF EXISTS t_iso_gate; DROP ROLE IF EXISTS t_iso_web; CREATE ROLE t_iso_web NOLOGIN;
             SELECT docchat.grant_usage('t_iso_web'); CREATE ROLE t_iso_gate LOGIN; GRANT t_iso_web TO t_iso_gate;
             ALTER DATABASE t_isolation SET docchat.jwt_roles = 't_iso_web'",
        )
        .unwrap();
    let alice = Tenant { label: "alice", client: connect(DB, "t_iso_alice"), jwt: None, owner: "t_iso_alice".into(), live: vec![], secrets: vec![] };
    let bob = Tenant {
        label: "bob",
        client: connect(DB, "t_iso_gate"),
        jwt: Some(("t_iso_web", r#"{"sub":"bob-7f3a","role":"t_iso_web"}"#.into())),
        owner: "jwt:bob-7f3a".into(),
        live: vec![],
        secrets: vec![],
    };
    let mut pair = [alice, bob];
    for t in pair.iter_mut() {
        let channel = t.value("SELECT docchat_ingest_channel()", &[]);
        t.client.batch_execute(&format!("LISTEN \"{}\"", channel.as_str().unwrap())).unwrap();
    }
    pair
}

const SHARED_MEMO: &str = "The shared memo: the office picnic is on Friday at noon.";

fn one_sequence(seed: u64, steps: usize) {
    let mut pick = Choices(seed);
    let mut pair = tenants();
    // Every id either owner has been given: each may try to delete any of them.
    let mut heard_of: Vec<String> = Vec::new();
    for step in 0..steps {
        let who = pick.below(2);
        let (me, other) = if who == 0 {
            let [a, b] = &mut pair;
            (a, b)
        } else {
            let [a, b] = &mut pair;
            (b, a)
        };
        let nonce = format!("zq{}{step}x{seed}", me.label);
        let text = format!(
            "Ledger entry {nonce}: the {} budget of {} is {} euros.",
            ["travel", "hardware", "catering"][pick.below(3)],
            me.label,
            100 + step
        );
        let context = format!("seed {seed} step {step} {}", me.label);
        let seen = match pick.below(7) {
            0 | 1 => {
                let sql = if pick.below(2) == 0 {
                    "SELECT docchat_ingest(convert_to($1, 'UTF8'), $2)::text"
                } else {
                    "SELECT docchat_ingest_async(convert_to($1, 'UTF8'), $2)::text"
                };
                let file = format!("{nonce}.txt");
                let id = me.value(sql, &[&text, &file]).as_str().unwrap().to_string();
                me.secrets.extend([id.clone(), nonce.clone()]);
                me.live.push(id.clone());
                heard_of.push(id.clone());
                vec![id]
            }
            2 => {
                // The same bytes as the other owner: never their document back.
                let id = me.value("SELECT docchat_ingest(convert_to($1, 'UTF8'), 'memo.txt')::text", &[&SHARED_MEMO]).as_str().unwrap().to_string();
                if !me.live.contains(&id) {
                    me.live.push(id.clone());
                    me.secrets.push(id.clone());
                    heard_of.push(id.clone());
                }
                vec![id]
            }
            3 if !heard_of.is_empty() => {
                let id = heard_of[pick.below(heard_of.len())].clone();
                let deleted = me.value("SELECT docchat_delete($1::text::uuid)", &[&id]).as_bool().unwrap();
                assert_eq!(deleted, me.live.contains(&id), "{context}: delete {id}");
                me.live.retain(|d| d != &id);
                vec![]
            }
            4 => {
                // Words both owners' texts hold (the probe may not be a secret: it is logged as
                // the caller's own search).
                let mode = ["hybrid", "semantic", "keyword"][pick.below(3)];
                let query = format!("ledger entry: the budget of {} in euros, and the picnic", other.label);
                let hits = me.rows("SELECT * FROM docchat_search($1, 50, -1, mode => $2)", &[&query, &mode]);
                for hit in &hits {
                    let hit: serde_json::Value = hit.parse().unwrap();
                    assert!(me.secrets.contains(&hit["document_id"].as_str().unwrap().to_string()), "{context}: {hit}");
                }
                hits
            }
            5 => me.rows("SELECT docchat_chat_context($1, '[]', 20)", &[&format!("What is the budget of {} in the ledger?", other.label)]),
            _ => [
                "SELECT * FROM docchat.documents",
                "SELECT document_id, chunk_index, owner, content FROM docchat.chunks",
                "SELECT * FROM docchat.ingest_progress",
                "SELECT * FROM docchat.stats",
                "SELECT * FROM docchat.searches",
                "SELECT docchat_health()",
            ]
            .iter()
            .flat_map(|sql| me.rows(sql, &[]))
            .collect(),
        };
        assert_nothing_of(other, &seen, &context);
        let heard = me.notifications();
        assert_nothing_of(other, &heard, &format!("{context} (notifications)"));
    }
    // Everything queued finishes, and each owner holds exactly the documents they kept.
    for t in pair.iter_mut() {
        let started = std::time::Instant::now();
        while t.value("SELECT (SELECT count(*) FROM docchat.documents WHERE status <> 'ready')", &[]) != 0 {
            assert!(started.elapsed() < Duration::from_secs(120), "{}: queued documents did not finish", t.label);
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut ids: Vec<String> = t
            .rows("SELECT id::text FROM docchat.documents", &[])
            .iter()
            .map(|r| r.parse::<serde_json::Value>().unwrap()["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        let mut live = t.live.clone();
        live.sort();
        assert_eq!(ids, live, "seed {seed}: {}'s documents", t.label);
    }
    for who in 0..2 {
        let [a, b] = &mut pair;
        let (me, other) = if who == 0 { (a, &*b) } else { (b, &*a) };
        let hits = me.rows("SELECT * FROM docchat_search('ledger entry budget euros picnic memo', 100, -1)", &[]);
        assert_nothing_of(other, &hits, &format!("seed {seed} final search"));
        let heard = me.notifications();
        assert_nothing_of(other, &heard, &format!("seed {seed} final notifications"));
    }
}

#[test]
fn random_calls_by_two_owners_never_show_one_the_other() {
    let seeds: Vec<u64> = match std::env::var("DOCCHAT_TEST_SEED") {
        Ok(s) => vec![s.parse().expect("DOCCHAT_TEST_SEED is a number")],
        Err(_) => vec![0x9E37_79B9_7F4A_7C15, 42, 20261203],
    };
    for seed in seeds {
        one_sequence(seed, 40);
    }
}
