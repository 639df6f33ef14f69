//! docchat_ingest and docchat_search end to end: formats, text fidelity, search by meaning,
//! and bad input that must fail cleanly.
use docchat_tests::*;
use postgres::Client;

#[test]
fn crazyones_pdf_text_matches_and_is_found() {
    let mut c = fresh_db("t_crazyones");
    ingest(&mut c, include_bytes!("../../examples/sample.md"), "sample.md").unwrap();
    let id = ingest(&mut c, &read_shared("corpus/pdf/pypdf__crazyones.pdf"), "crazyones.pdf").unwrap();
    let expected = squash(&nfkc(&String::from_utf8(read_shared("corpus/pdf/pypdf__crazyones.txt")).unwrap()));
    assert_eq!(document_text(&mut c, &id), expected);

    let doc = c
        .query_one("SELECT mime_type, size, n_chunks, status, metadata->>'format', (metadata->>'pages')::int, page FROM docchat.documents d JOIN docchat.chunks ch ON ch.document_id = d.id WHERE d.id = $1::text::uuid LIMIT 1", &[&id])
        .unwrap();
    assert_eq!(doc.get::<_, String>(0), "application/pdf");
    assert_eq!(doc.get::<_, i64>(1), 11448);
    assert!(doc.get::<_, i32>(2) >= 1);
    assert_eq!(doc.get::<_, String>(3), "ready");
    assert_eq!(doc.get::<_, String>(4), "pdf");
    assert_eq!(doc.get::<_, i32>(5), 1);
    assert_eq!(doc.get::<_, Option<i32>>(6), Some(1));

    let hits = c
        .query(
            "SELECT document_id::text, similarity, filename FROM docchat_search('the ones who see things differently, the misfits and rebels', 3)",
            &[],
        )
        .unwrap();
    assert_eq!(hits[0].get::<_, String>(0), id);
    assert_eq!(hits[0].get::<_, String>(2), "crazyones.pdf");
    let sims: Vec<f64> = hits.iter().map(|r| r.get(1)).collect();
    assert!(sims.windows(2).all(|w| w[0] >= w[1]), "best first: {sims:?}");
    assert!(sims[0] > 0.5, "phrase from the document scores {}", sims[0]);
}

const TEXT_DOC: &str = "Lighthouse keepers once lived at the edge of the sea.\n\nEvery evening the keeper climbed the tower, trimmed the wick and wound the clockwork that turned the lens, so that ships could find their way past the rocks at night.";
const MARKDOWN_DOC: &str = "# Caring for a cast-iron pan\n\nAfter cooking, wash the **skillet** with hot water, dry it on the stove and rub in a thin film of oil.\n\n- Avoid soaking it.\n- Re-season it in the oven when food starts to stick.\n";
const HTML_DOC: &str = "<!DOCTYPE html><html><head><title>Migration</title><style>body{color:red}</style><script>var secret = 'tracking pixel';</script></head><body><h1>Bird migration</h1><p>Every autumn, swallows fly thousands of kilometres south to Africa, navigating by the sun, the stars and the Earth's magnetic field.</p></body></html>";

#[test]
fn text_markdown_and_html_are_found_by_meaning() {
    let mut c = fresh_db("t_formats");
    let text_id = ingest(&mut c, TEXT_DOC.as_bytes(), "lighthouse.txt").unwrap();
    let md_id = ingest(&mut c, MARKDOWN_DOC.as_bytes(), "pan.md").unwrap();
    let html_id = ingest(&mut c, HTML_DOC.as_bytes(), "birds.html").unwrap();
    let formats: Vec<(String, String)> =
        c.query("SELECT filename, mime_type FROM docchat.documents ORDER BY filename", &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        formats,
        [("birds.html".into(), "text/html".into()), ("lighthouse.txt".into(), "text/plain".into()), ("pan.md".into(), "text/markdown".into())]
    );
    // Markup and scripts are gone from what is stored.
    let html_text: String =
        c.query_one("SELECT string_agg(content, ' ') FROM docchat.chunks WHERE document_id = $1::text::uuid", &[&html_id]).unwrap().get(0);
    assert_eq!(html_text, "Bird migration\n\nEvery autumn, swallows fly thousands of kilometres south to Africa, navigating by the sun, the stars and the Earth's magnetic field.");
    let md_text: String =
        c.query_one("SELECT string_agg(content, ' ') FROM docchat.chunks WHERE document_id = $1::text::uuid", &[&md_id]).unwrap().get(0);
    assert!(!md_text.contains("**") && md_text.starts_with("Caring for a cast-iron pan\n\nAfter cooking"), "{md_text}");

    for (question, expected) in [
        ("who tended the lamp that warned sailors?", &text_id),
        ("how do I look after my frying pan so it does not rust", &md_id),
        ("which animals travel to warmer countries in winter", &html_id),
    ] {
        let top: String = c.query_one("SELECT document_id::text FROM docchat_search($1, 1)", &[&question]).unwrap().get(0);
        assert_eq!(&top, expected, "top hit for {question:?}");
    }
    let logged: i64 = c.query_one("SELECT count(*) FROM docchat.searches WHERE n_results = 1", &[]).unwrap().get(0);
    assert_eq!(logged, 3);
}

#[test]
fn chunks_respect_size_overlap_and_token_bound() {
    let mut c = fresh_db("t_chunks");
    let book = &read_shared("corpus/office/pandoc__MANUAL.md")[..80_000];
    let id: String =
        c.query_one("SELECT docchat_ingest($1, 'manual.md', chunk_size => 600, chunk_overlap => 100)::text", &[&book.to_vec()]).unwrap().get(0);
    let row = c
        .query_one(
            "SELECT count(*), max(n_tokens), max(char_end - char_start), min(char_end - char_start) FROM docchat.chunks WHERE document_id = $1::text::uuid",
            &[&id],
        )
        .unwrap();
    let (n, max_tokens, max_chars): (i64, i32, i32) = (row.get(0), row.get(1), row.get(2));
    assert!(n > 120, "{n} chunks");
    assert!(max_tokens <= 254, "a chunk has {max_tokens} word-pieces");
    assert!(max_chars <= 600, "a chunk has {max_chars} characters");
    // Consecutive chunks overlap by at most chunk_overlap characters and leave no text out.
    let bad: i64 = c
        .query_one(
            "SELECT count(*) FROM (SELECT char_start, lag(char_end) OVER (ORDER BY chunk_index) AS prev_end FROM docchat.chunks WHERE document_id = $1::text::uuid) s
             WHERE prev_end IS NOT NULL AND (prev_end - char_start > 100 OR char_start - prev_end > 3)",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(bad, 0);
    // GUC defaults apply when no arguments are given.
    c.batch_execute("SET docchat.chunk_size = 300; SET docchat.chunk_overlap = 0").unwrap();
    let id2 = ingest(&mut c, &book[..20_000], "manual-head.md").unwrap();
    let max_chars: i32 =
        c.query_one("SELECT max(char_end - char_start) FROM docchat.chunks WHERE document_id = $1::text::uuid", &[&id2]).unwrap().get(0);
    assert!(max_chars <= 300);
    let err = c.query_one("SELECT docchat_ingest('some text'::bytea, chunk_size => 100, chunk_overlap => 100)", &[]).unwrap_err();
    assert_eq!(sqlstate(&err), "22023");
}

#[test]
fn bad_input_fails_cleanly_and_stores_nothing() {
    let mut c = fresh_db("t_bad_input");
    let crazyones = read_shared("corpus/pdf/pypdf__crazyones.pdf");
    let cases: Vec<(&str, Option<Vec<u8>>, &str, &str)> = vec![
        ("null", None, "22004", "null.bin: document content is NULL"),
        ("empty", Some(vec![]), "22023", "empty.bin: document is empty (0 bytes)"),
        ("random", Some((0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect()), "22000", "random.bin: unrecognised binary data"),
        ("damaged-utf8", Some(b"caf\xc3\xa9 au \xe9".to_vec()), "22021", "damaged-utf8.bin: text is not valid UTF-8 (invalid byte at offset 9)"),
        ("truncated", Some(crazyones[..crazyones.len() / 2].to_vec()), "22P03", "truncated.bin: "),
        ("fuzzed", Some(read_shared("corpus/pdf/pdfjs__poppler-395-0-fuzzed.pdf")), "22P03", "fuzzed.bin: "),
        ("brokenxref", Some(read_shared("corpus/pdf/pdfjs__poppler-85140-0.pdf")), "22P03", "brokenxref.bin: "),
        ("gzip", Some(b"\x1f\x8b\x08\x00\x00\x00\x00\x00".to_vec()), "22000", "gzip.bin: gzip archive is not a supported document format"),
        (
            "legacy-doc",
            Some(read_shared("corpus/office/tika__testComment.doc")),
            "22000",
            "legacy-doc.bin: legacy Word 97-2003 document (.doc) is not a supported document format",
        ),
    ];
    for (name, bytes, state, message) in cases {
        let filename = format!("{name}.bin");
        let err = c.query_one("SELECT docchat_ingest($1, $2)", &[&bytes, &filename]).unwrap_err();
        assert_eq!(sqlstate(&err), state, "{name}: {err:?}");
        let db = err.as_db_error().unwrap();
        assert!(db.message().starts_with(message), "{name}: message {:?}", db.message());
        if state != "22004" {
            assert!(db.hint().is_some_and(|h| !h.is_empty()), "{name}: no hint");
        }
        // Nothing stored, and the session still works.
        let (docs, chunks): (i64, i64) = {
            let r = c.query_one("SELECT (SELECT count(*) FROM docchat.documents), (SELECT count(*) FROM docchat.chunks)", &[]).unwrap();
            (r.get(0), r.get(1))
        };
        assert_eq!((docs, chunks), (0, 0), "{name} stored something");
    }
    // Limits: pages, then time (statement_timeout stops a long parse with Postgres's own error).
    let book = read_shared("corpus/pdf/pdfjs__freeculture.pdf");
    c.batch_execute("SET docchat.max_pages = 100").unwrap();
    let err = ingest(&mut c, &book, "book.pdf").unwrap_err();
    assert_eq!(
        (sqlstate(&err).as_str(), err.as_db_error().unwrap().message()),
        ("54000", "book.pdf: document has 352 pages, more than the limit of 100")
    );
    c.batch_execute("RESET docchat.max_pages; SET statement_timeout = '300ms'").unwrap();
    let err = ingest(&mut c, &book, "book.pdf").unwrap_err();
    assert_eq!(sqlstate(&err), "57014");
    c.batch_execute("RESET statement_timeout; SET docchat.max_document_size = 0").unwrap();
    assert_eq!(sqlstate(&ingest(&mut c, b"tiny", "tiny.txt").unwrap_err()), "54000");
    c.batch_execute("RESET docchat.max_document_size").unwrap();
    ingest(&mut c, b"still working after all those errors", "ok.txt").unwrap();
    let err = c.query_one("SELECT * FROM docchat_search('', 3)", &[]).unwrap_err();
    assert_eq!(sqlstate(&err), "22023");
    let err = c.query_one("SELECT * FROM docchat_search('x', 0)", &[]).unwrap_err();
    assert_eq!(sqlstate(&err), "22023");
    let err = c.query_one("SELECT docchat_ingest('hello'::bytea, metadata => '[1]')", &[]).unwrap_err();
    assert_eq!(sqlstate(&err), "22023");
}

#[test]
fn a_failure_inside_a_transaction_rolls_back_everything() {
    let mut c = fresh_db("t_txn");
    let mut tx = c.transaction().unwrap();
    tx.query_one("SELECT docchat_ingest('first document'::bytea, 'a.txt')", &[]).unwrap();
    tx.query_one("SELECT docchat_ingest('\\x1f8b08000000'::bytea, 'b.bin')", &[]).unwrap_err();
    drop(tx);
    let n: i64 = c.query_one("SELECT count(*) FROM docchat.documents", &[]).unwrap().get(0);
    assert_eq!(n, 0);
    let deleted = ingest(&mut c, b"to be deleted", "d.txt").unwrap();
    c.execute("DELETE FROM docchat.documents WHERE id = $1::text::uuid", &[&deleted]).unwrap();
    let n: i64 = c.query_one("SELECT count(*) FROM docchat.chunks", &[]).unwrap().get(0);
    assert_eq!(n, 0, "deleting a document deletes its chunks");
}

#[test]
fn documents_are_embedded_and_searched_with_their_model() {
    let mut c = fresh_db("t_models");
    let ingest_with = |c: &mut postgres::Client, text: &str, name: &str, model: Option<&str>| -> String {
        c.query_one("SELECT docchat_ingest(convert_to($1, 'UTF8'), $2, model => $3)::text", &[&text, &name, &model]).unwrap().get(0)
    };
    let minilm = ingest_with(&mut c, TEXT_DOC, "lighthouse.txt", None);
    let mpnet = ingest_with(&mut c, HTML_DOC, "birds.html", Some("all-mpnet-base-v2"));
    let stored: Vec<(String, String, i32)> = c
        .query("SELECT d.id::text, c.model, vector_dims(c.embedding) FROM docchat.chunks c JOIN docchat.documents d ON d.id = c.document_id AND d.model = c.model ORDER BY 3", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(stored, [(minilm.clone(), "all-MiniLM-L6-v2".into(), 384), (mpnet.clone(), "all-mpnet-base-v2".into(), 768)]);
    // Each search sees only the chunks of its model.
    let hits = |c: &mut postgres::Client, model: Option<&str>| -> Vec<String> {
        c.query("SELECT document_id::text FROM docchat_search('which animals travel to warmer countries in winter', 5, -1, model => $1)", &[&model])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    assert_eq!(hits(&mut c, None), [minilm]);
    assert_eq!(hits(&mut c, Some("all-mpnet-base-v2")), [mpnet]);
    // The per-model query shape is the one the model's partial HNSW index serves.
    c.batch_execute("SET enable_seqscan = off").unwrap();
    let plan: Vec<String> = c
        .query(
            "EXPLAIN SELECT document_id FROM docchat.chunks WHERE model = 'all-mpnet-base-v2' \
             ORDER BY embedding::vector(768) <=> docchat_embed('x', 'all-mpnet-base-v2') LIMIT 5",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(plan.iter().any(|l| l.contains("chunks_hnsw_all_mpnet_base_v2")), "{plan:#?}");
}

#[test]
fn identical_bytes_are_ingested_once_per_owner_and_model_unless_forced() {
    let mut c = fresh_db("t_ingest_dedup");
    let bytes: &[u8] = b"The same memo, uploaded twice by mistake.";
    let first = ingest(&mut c, bytes, "memo.txt").unwrap();
    assert_eq!(ingest(&mut c, bytes, "memo-copy.txt").unwrap(), first, "the existing document's id");
    let count = |c: &mut Client| -> i64 { c.query_one("SELECT count(*) FROM docchat.documents", &[]).unwrap().get(0) };
    assert_eq!(count(&mut c), 1);
    let forced: String = c.query_one("SELECT docchat_ingest($1, 'memo-again.txt', force => true)::text", &[&bytes]).unwrap().get(0);
    assert_ne!(forced, first);
    let other_model: String = c.query_one("SELECT docchat_ingest($1, 'memo.txt', model => 'all-MiniLM-L6-v2-fp32')::text", &[&bytes]).unwrap().get(0);
    assert_ne!(other_model, first, "another model embeds it anew");
    assert_eq!(count(&mut c), 3);
    // Another owner's identical upload is its own document, which the first owner cannot delete.
    create_role(&mut c, "dedup_other", true);
    let mut other = connect("t_ingest_dedup", "dedup_other");
    let theirs = ingest(&mut other, bytes, "memo.txt").unwrap();
    assert_ne!(theirs, first);
    let deleted = |c: &mut Client, id: &str| -> bool { c.query_one("SELECT docchat_delete($1::text::uuid)", &[&id]).unwrap().get(0) };
    assert!(!deleted(&mut other, &first));
    assert!(deleted(&mut c, &first));
    assert!(!deleted(&mut c, &first), "already gone");
    let chunks: i64 = c.query_one("SELECT count(*) FROM docchat.chunks WHERE document_id = $1::text::uuid", &[&first]).unwrap().get(0);
    assert_eq!(chunks, 0);
    assert_eq!(count(&mut c), 3, "the forced copy, the other model's and the other owner's remain");
}

#[test]
fn a_known_encrypted_file_still_needs_its_password() {
    let mut c = fresh_db("t_ingest_dedup_password");
    let bytes = read_shared("corpus/pdf/pypdf__crazyones-encrypted-256.pdf");
    let id: String = c.query_one("SELECT docchat_ingest($1, 'c.pdf', password => 'password')::text", &[&bytes]).unwrap().get(0);
    let err = c.query_one("SELECT docchat_ingest($1, 'c.pdf')", &[&bytes]).unwrap_err();
    assert_eq!(sqlstate(&err), "22023");
    let again: String = c.query_one("SELECT docchat_ingest($1, 'c.pdf', password => 'password')::text", &[&bytes]).unwrap().get(0);
    assert_eq!(again, id);
}

#[test]
fn a_statement_timeout_while_ingesting_is_postgres_own_error() {
    let mut c = fresh_db("t_ingest_timeout");
    c.batch_execute("SET statement_timeout = '300ms'").unwrap();
    let e = ingest(&mut c, &read_shared("corpus/pdf/pdfjs__freeculture.pdf"), "freeculture.pdf").unwrap_err();
    let db = e.as_db_error().unwrap();
    // The cluster runs with RUST_BACKTRACE=1 (scripts/cluster.sh): none of it reaches the user.
    assert_eq!((db.code().code(), db.message(), db.detail()), ("57014", "canceling statement due to statement timeout", None));
    c.batch_execute("RESET statement_timeout").unwrap();
    let n: i64 = c.query_one("SELECT count(*) FROM docchat.documents", &[]).unwrap().get(0);
    assert_eq!(n, 0);
}
