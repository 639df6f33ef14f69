//! Row-level security: each role, and each JWT subject behind one PostgREST role, sees and
//! searches only its own documents, chunks and searches.
use docchat_tests::*;
use postgres::Client;

fn visible(c: &mut Client) -> (Vec<String>, i64, i64) {
    let files = c.query("SELECT filename FROM docchat.documents ORDER BY filename", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    let chunks = c.query_one("SELECT count(DISTINCT document_id) FROM docchat.chunks", &[]).unwrap().get(0);
    let searches = c.query_one("SELECT count(*) FROM docchat.searches", &[]).unwrap().get(0);
    (files, chunks, searches)
}

fn search_files(c: &mut Client, q: &str) -> Vec<String> {
    c.query("SELECT DISTINCT filename FROM docchat_search($1, 10, -1.0) ORDER BY 1", &[&q]).unwrap().iter().map(|r| r.get(0)).collect()
}

#[test]
fn login_roles_see_only_their_own_rows() {
    let mut admin = fresh_db("t_rls_roles");
    drop(admin);
    admin = connect("t_rls_roles", "postgres");
    create_role(&mut admin, "rls_alice", true);
    create_role(&mut admin, "rls_bob", true);
    let mut alice = connect("t_rls_roles", "rls_alice");
    let mut bob = connect("t_rls_roles", "rls_bob");
    ingest(&mut alice, b"Alice's garden has tomatoes, basil and a fig tree.", "alice-garden.txt").unwrap();
    ingest(&mut alice, b"Alice keeps her bicycle in the shed.", "alice-bike.txt").unwrap();
    ingest(&mut bob, b"Bob's garden grows potatoes and leeks.", "bob-garden.txt").unwrap();

    assert_eq!(search_files(&mut alice, "what grows in the garden"), ["alice-bike.txt", "alice-garden.txt"]);
    assert_eq!(search_files(&mut bob, "what grows in the garden"), ["bob-garden.txt"]);
    assert_eq!(visible(&mut alice), (vec!["alice-bike.txt".into(), "alice-garden.txt".into()], 2, 1));
    assert_eq!(visible(&mut bob), (vec!["bob-garden.txt".into()], 1, 1));

    let owners: Vec<(String, i64)> = admin
        .query("SELECT owner, count(*) FROM docchat.documents GROUP BY owner ORDER BY owner", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(owners, [("rls_alice".into(), 2), ("rls_bob".into(), 1)]);

    // Bob can neither change nor delete Alice's rows, nor write rows in her name.
    assert_eq!(bob.execute("DELETE FROM docchat.documents WHERE filename LIKE 'alice%'", &[]).unwrap(), 0);
    // Users write only through docchat's functions: no table grant lets them change a chunk.
    assert_eq!(sqlstate(&bob.execute("UPDATE docchat.chunks SET content = 'x' WHERE owner = 'rls_alice'", &[]).unwrap_err()), "42501");
    let err =
        bob.execute("INSERT INTO docchat.documents (owner, mime_type, size, sha256) VALUES ('rls_alice', 'text/plain', 0, '')", &[]).unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    assert_eq!(visible(&mut alice).0.len(), 2);

    // The model registry is read-only to them: a model is code the server loads.
    let n: i64 = bob.query_one("SELECT count(*) FROM docchat.models", &[]).unwrap().get(0);
    assert_eq!(n, 3);
    for sql in [
        "INSERT INTO docchat.models (name, dimension, max_seq_length, dir) VALUES ('evil', 3, 8, '/tmp')",
        "UPDATE docchat.models SET dir = '/tmp'",
        "DELETE FROM docchat.models",
    ] {
        assert_eq!(sqlstate(&bob.execute(sql, &[]).unwrap_err()), "42501", "{sql}");
    }
}

#[test]
fn jwt_subjects_behind_one_role_are_separated() {
    let mut admin = fresh_db("t_rls_jwt");
    create_role(&mut admin, "rls_web", false);
    admin.batch_execute("ALTER DATABASE t_rls_jwt SET docchat.jwt_roles = 'rls_web'").unwrap();
    admin
        .batch_execute("DROP ROLE IF EXISTS rls_authenticator; CREATE ROLE rls_authenticator LOGIN NOINHERIT; GRANT rls_web TO rls_authenticator")
        .unwrap();
    let mut api = connect("t_rls_jwt", "rls_authenticator");
    // What PostgREST does for every request.
    let as_user = |c: &mut Client, sub: &str, sql: &str| -> Vec<String> {
        let mut tx = c.transaction().unwrap();
        tx.execute("SET LOCAL ROLE rls_web", &[]).unwrap();
        tx.execute("SELECT set_config('request.jwt.claims', $1, true)", &[&format!("{{\"sub\":\"{sub}\",\"role\":\"rls_web\"}}")]).unwrap();
        let rows: Vec<String> = tx.query(sql, &[]).unwrap().iter().map(|r| r.get(0)).collect();
        tx.commit().unwrap();
        rows
    };
    as_user(
        &mut api,
        "user-1",
        "SELECT docchat_ingest(convert_to('The quarterly report shows revenue grew by ten percent.', 'UTF8'), 'u1-report.txt')::text",
    );
    as_user(
        &mut api,
        "user-2",
        "SELECT docchat_ingest(convert_to('Minutes of the hiking club: next trip is to the mountains.', 'UTF8'), 'u2-hike.txt')::text",
    );

    assert_eq!(as_user(&mut api, "user-1", "SELECT filename FROM docchat_search('how much did sales increase', 10, -1.0)"), ["u1-report.txt"]);
    assert_eq!(as_user(&mut api, "user-2", "SELECT filename FROM docchat_search('how much did sales increase', 10, -1.0)"), ["u2-hike.txt"]);
    assert_eq!(as_user(&mut api, "user-1", "SELECT owner FROM docchat.documents"), ["jwt:user-1"]);
    assert_eq!(as_user(&mut api, "user-2", "SELECT owner || '=' || count(*) FROM docchat.chunks GROUP BY owner"), ["jwt:user-2=1"]);
    assert_eq!(as_user(&mut api, "user-2", "SELECT owner || '=' || count(*) FROM docchat.searches GROUP BY owner"), ["jwt:user-2=1"]);
    assert!(as_user(&mut api, "user-3", "SELECT filename FROM docchat.documents").is_empty());
    // Without a subject, a JWT role is nobody: an error, not an owner that every such request shares.
    let mut tx = api.transaction().unwrap();
    tx.execute("SET LOCAL ROLE rls_web", &[]).unwrap();
    let e = tx.query_one("SELECT count(*) FROM docchat.documents", &[]).unwrap_err();
    assert_eq!(sqlstate(&e), "42501");
    assert_eq!(e.as_db_error().unwrap().message(), "role \"rls_web\" is a JWT role (docchat.jwt_roles), but request.jwt.claims has no \"sub\"");
}
