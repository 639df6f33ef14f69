//! Releases: each released version's install script is frozen in sql/releases/; the library's
//! own script for a released version must install exactly the frozen catalog, and every older
//! release upgrades (ALTER EXTENSION docchat UPDATE, through sql/docchat--A--B.sql) to a catalog
//! equal to a fresh install's, keeping its documents and their search results.
use docchat_tests::*;
use postgres::Client;
use std::path::PathBuf;

fn current_version(c: &mut Client) -> String {
    c.query_one("SELECT default_version FROM pg_available_extensions WHERE name = 'docchat'", &[]).unwrap().get(0)
}

/// Released versions, oldest first (by their numbers).
fn releases() -> Vec<String> {
    let mut versions: Vec<String> = std::fs::read_dir(repo().join("sql/releases"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|f| Some(f.strip_prefix("docchat--")?.strip_suffix(".sql")?.to_string()))
        .collect();
    let number = |v: &String| v.split('.').map(|p| p.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>();
    versions.sort_by_key(number);
    versions
}

fn frozen(version: &str) -> PathBuf {
    repo().join(format!("sql/releases/docchat--{version}.sql"))
}

fn extension_dir(c: &mut Client) -> PathBuf {
    let share: String = c.query_one("SELECT setting FROM pg_config WHERE name = 'SHAREDIR'", &[]).unwrap().get(0);
    PathBuf::from(share).join("extension")
}

fn new_db(name: &str) -> Client {
    let mut admin = connect("postgres", "postgres");
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    connect(name, "postgres")
}

/// Lines of `a` missing from `b` and the other way round, for the failure message.
fn difference(a: &[String], b: &[String]) -> String {
    let only = |x: &[String], y: &[String]| x.iter().filter(|l| !y.contains(l)).cloned().collect::<Vec<_>>().join("\n  ");
    format!("only in the first:\n  {}\nonly in the second:\n  {}", only(a, b), only(b, a))
}

#[test]
fn a_released_versions_script_installs_its_frozen_catalog() {
    let mut fresh = fresh_db("t_release_fresh");
    let version = current_version(&mut fresh);
    if !frozen(&version).exists() {
        // An unreleased version: the upgrade test below holds it to the last release.
        assert!(releases().iter().all(|r| r != &version));
        return;
    }
    // The frozen file installed under another version name, so both can be created side by side.
    let alias = format!("{version}-frozen-check");
    let dir = extension_dir(&mut fresh);
    let alias_file = dir.join(format!("docchat--{alias}.sql"));
    std::fs::copy(frozen(&version), &alias_file).unwrap();
    let mut c = new_db("t_release_frozen");
    let created = c.batch_execute(&format!("CREATE EXTENSION docchat VERSION '{alias}' CASCADE"));
    let _ = std::fs::remove_file(&alias_file);
    created.unwrap();
    let (want, got) = (catalog(&mut c), catalog(&mut fresh));
    assert!(
        want == got,
        "docchat {version} is released, but the library's install script differs from sql/releases/docchat--{version}.sql: \
         bump the version in Cargo.toml and write sql/docchat--{version}--<new>.sql\n{}",
        difference(&want, &got)
    );
}

/// Documents stored under an old release, searched before and after the update.
fn store_and_search(c: &mut Client) -> Vec<(String, i32, f64)> {
    let search = |c: &mut Client| -> Vec<(String, i32, f64)> {
        // Semantic: what ranks the stored vectors (a release may rank keywords and fuse differently).
        c.query("SELECT filename, chunk_index, score FROM docchat_search('when does the ferry leave', 5, -1, mode => 'semantic')", &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    };
    if c.query_one("SELECT count(*) FROM docchat.documents", &[]).unwrap().get::<_, i64>(0) == 0 {
        ingest(c, b"The ferry leaves the harbour at seven every morning. Tickets are sold on board.", "ferry.txt").unwrap();
        ingest(c, &read_shared("corpus/office/tika__testWORD_embedded_pics.docx"), "pics.docx").unwrap();
    }
    search(c)
}

#[test]
fn every_release_upgrades_to_a_fresh_install_keeping_its_documents() {
    let mut fresh = fresh_db("t_upgrade_fresh");
    let version = current_version(&mut fresh);
    let fresh_catalog = catalog(&mut fresh);
    let dir = extension_dir(&mut fresh);
    let older: Vec<String> = releases().into_iter().filter(|r| r != &version).collect();
    for old in older {
        assert!(dir.join(format!("docchat--{old}.sql")).exists(), "make install puts sql/releases/docchat--{old}.sql beside the extension");
        let mut c = new_db("t_upgrade");
        c.batch_execute(&format!("CREATE EXTENSION docchat VERSION '{old}' CASCADE")).unwrap();
        let before = store_and_search(&mut c);
        let documents: i64 = c.query_one("SELECT count(*) FROM docchat.documents", &[]).unwrap().get(0);
        c.batch_execute("ALTER EXTENSION docchat UPDATE").unwrap_or_else(|e| panic!("{old} -> {version}: {e} (no upgrade script?)"));
        let upgraded: String = c.query_one("SELECT extversion FROM pg_extension WHERE extname = 'docchat'", &[]).unwrap().get(0);
        assert_eq!(upgraded, version);
        let got = catalog(&mut c);
        assert!(got == fresh_catalog, "{old} upgraded to {version} is not a fresh {version}:\n{}", difference(&got, &fresh_catalog));
        let after = store_and_search(&mut c);
        let keyword: Vec<String> = c
            .query("SELECT filename FROM docchat_search('when does the ferry leave', 5, -1, mode => 'keyword')", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(keyword, ["ferry.txt"], "{old} -> {version}: the keyword side knows the old chunks");
        assert_eq!(c.query_one("SELECT count(*) FROM docchat.documents", &[]).unwrap().get::<_, i64>(0), documents);
        assert_eq!(before.len(), after.len());
        for (b, a) in before.iter().zip(&after) {
            assert_eq!((&b.0, b.1), (&a.0, a.1), "{old} -> {version}");
            assert!((b.2 - a.2).abs() < 1e-6, "{old} -> {version}: {b:?} vs {a:?}");
        }
    }
}
