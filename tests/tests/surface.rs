//! The public surface, pinned: every function's signature, defaults, result columns, volatility
//! and privileges, every table, column, index and policy, every setting (type, unit, context,
//! range, default) and the error of each kind of bad argument, compared line by line with
//! tests/expected/surface.txt. An intended change is accepted with
//! `DOCCHAT_BLESS=1 make test` (or the quick runner) and shows in the commit's diff.
use docchat_tests::*;
use postgres::Client;

fn settings(c: &mut Client) -> Vec<String> {
    c.query(
        "SELECT format('setting %s %s unit %s | %s | %s..%s | default %s%s | %s', name, vartype, coalesce(unit, '-'), context,
                       coalesce(min_val, '-'), coalesce(max_val, '-'), boot_val,
                       coalesce(' | ' || array_to_string(enumvals, ', '), ''), short_desc)
         FROM pg_settings WHERE name LIKE 'docchat.%' ORDER BY name",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// One call per kind of bad argument: its SQLSTATE and message.
fn errors(c: &mut Client) -> Vec<String> {
    let calls = [
        "SELECT docchat_search('')",
        "SELECT docchat_search('x', 0)",
        "SELECT docchat_search('x', 8, 2)",
        "SELECT docchat_search('x', mode => 'fuzzy')",
        "SELECT docchat_search('x', filter => '[]')",
        "SELECT docchat_search('x', filter => '{\"document_ids\": [1]}')",
        "SELECT docchat_search('x', model => 'nope')",
        "SELECT docchat_search_images('')",
        "SELECT docchat_search_images('x', 1001)",
        "SELECT docchat_chat_context('')",
        "SELECT docchat_chat_context('x', '{}')",
        "SELECT docchat_chat_context('x', max_context_tokens => 0)",
        "SELECT docchat_chat_context('x', k => 0)",
        "SELECT docchat_ingest(NULL)",
        "SELECT docchat_ingest('\\x00010203'::bytea, 'x.bin')",
        "SELECT docchat_ingest(convert_to('hi', 'UTF8'), chunk_size => 0)",
        "SELECT docchat_embed('x', 'nope')",
        "SET docchat.chunk_sise = 10",
        "SET docchat.max_pages = -1",
    ];
    calls
        .iter()
        .map(|sql| {
            let outcome = match c.batch_execute(sql) {
                Ok(()) => "ok".to_string(),
                Err(e) => {
                    let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e}"));
                    format!("{} {}{}", db.code().code(), db.message(), db.hint().map(|h| format!(" | hint: {h}")).unwrap_or_default())
                }
            };
            format!("error {sql} -> {outcome}")
        })
        .collect()
}

#[test]
fn the_public_surface_is_the_pinned_one() {
    let mut c = fresh_db("t_surface");
    let mut actual: Vec<String> = catalog(&mut c).into_iter().filter(|l| !l.starts_with("body ")).collect();
    actual.extend(settings(&mut c));
    actual.extend(errors(&mut c));
    let text = actual.join("\n") + "\n";
    let expected_path = repo().join("tests/expected/surface.txt");
    if std::env::var("DOCCHAT_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(expected_path.parent().unwrap()).unwrap();
        std::fs::write(&expected_path, &text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    if expected != text {
        let actual_path = repo().join("target/surface.actual.txt");
        std::fs::write(&actual_path, &text).unwrap();
        let want: Vec<&str> = expected.lines().collect();
        let got: Vec<&str> = text.lines().collect();
        let gone: Vec<&&str> = want.iter().filter(|l| !got.contains(l)).collect();
        let new: Vec<&&str> = got.iter().filter(|l| !want.contains(l)).collect();
        panic!(
            "the SQL surface changed (all of it: {}); if intended, rerun with DOCCHAT_BLESS=1, and give a released version an upgrade script\n\
             gone:\n  {}\nnew:\n  {}",
            actual_path.display(),
            gone.iter().map(|l| l.to_string()).collect::<Vec<_>>().join("\n  "),
            new.iter().map(|l| l.to_string()).collect::<Vec<_>>().join("\n  ")
        );
    }
}
