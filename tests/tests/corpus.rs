//! Every PDF and office file of the shared corpus goes through docchat_ingest: each yields text
//! or fails with the SQLSTATE recorded in tests/fixtures/corpus_outcomes.tsv, and the backend
//! survives every one of them. A changed outcome fails the test and writes the new table to
//! target/corpus_outcomes.actual.tsv for review.
use docchat_tests::*;
use std::collections::BTreeMap;

const FIXTURE: &str = include_str!("../fixtures/corpus_outcomes.tsv");

fn corpus_files() -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for dir in ["corpus/pdf", "corpus/office"] {
        for entry in std::fs::read_dir(shared(dir)).unwrap() {
            let path = entry.unwrap().path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            // Ground-truth companions, not documents.
            if !matches!(ext, "txt" | "native") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_corpus_file_yields_text_or_its_recorded_error() {
    let mut c = fresh_db("t_corpus");
    let mut actual = BTreeMap::new();
    for path in corpus_files() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let outcome = match ingest(&mut c, &bytes, &name) {
            Ok(id) => {
                let row = c.query_one("SELECT n_chars, n_chunks FROM docchat.documents WHERE id = $1::text::uuid", &[&id]).unwrap();
                let (chars, chunks): (i32, i32) = (row.get(0), row.get(1));
                assert!(chars > 0 && chunks > 0, "{name}: stored without text");
                "text".to_string()
            }
            Err(e) => format!("ERROR {}", sqlstate(&e)),
        };
        // The backend is still there (a crash would have closed the connection).
        let alive: i32 = c.query_one("SELECT 1", &[]).unwrap_or_else(|e| panic!("backend died on {name}: {e}")).get(0);
        assert_eq!(alive, 1);
        actual.insert(name, outcome);
    }
    let expected: BTreeMap<String, String> = FIXTURE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (f, o) = l.split_once('\t').expect("file<TAB>outcome");
            (f.to_string(), o.to_string())
        })
        .collect();
    let table: String = actual.iter().map(|(f, o)| format!("{f}\t{o}\n")).collect();
    let out = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/corpus_outcomes.actual.tsv");
    std::fs::write(&out, &table).unwrap();
    let changed: Vec<String> = actual
        .iter()
        .filter(|(f, o)| expected.get(*f) != Some(o))
        .map(|(f, o)| format!("{f}: expected {:?}, got {o}", expected.get(f)))
        .chain(expected.keys().filter(|f| !actual.contains_key(*f)).map(|f| format!("{f}: in the fixture but not in the corpus")))
        .collect();
    assert!(changed.is_empty(), "corpus outcomes changed (new table in {}):\n{}", out.display(), changed.join("\n"));
    let texts = actual.values().filter(|o| *o == "text").count();
    eprintln!("{} corpus files: {texts} with text, {} errors", actual.len(), actual.len() - texts);
}

/// The encrypted PDFs of the corpus README with a password that opens each (user or owner)
/// and what the opened file gives: a text fragment, or the SQLSTATE of a file with no text.
const ENCRYPTED: &[(&str, &str, Result<&str, &str>)] = &[
    ("pypdf__crazyones-encrypted-256.pdf", "password", Ok("The Crazy Ones")),
    ("samplefiles__005-libreoffice-writer-password.pdf", "openpassword", Ok("Lorem ipsum dolor sit amet")),
    ("samplefiles__005-libreoffice-writer-password.pdf", "permissionpassword", Ok("Lorem ipsum dolor sit amet")),
    ("pdfjs__saslprep-r6.pdf", "S\u{aa}SL\u{ad}prep", Ok("Hello pdf.js world")),
    ("pdfjs__issue6010_1.pdf", "abc", Ok("Issue 6010")),
    ("pdfjs__print_protection.pdf", "1234", Ok("Hello World")),
    ("pdfjs__encrypted-attachment.pdf", "000000", Ok("Example")),
    // Opens, but the page holds only a shading (no fonts): no text is the right answer.
    ("pdfjs__bug1782186.pdf", "Hello", Err("P0002")),
];

#[test]
fn encrypted_pdfs_open_with_their_passwords_only() {
    let mut c = fresh_db("t_encrypted");
    for (name, password, expected) in ENCRYPTED {
        let bytes = read_shared(&format!("corpus/pdf/{name}"));
        for given in [None, Some("not-the-password")] {
            let err = c.query_one("SELECT docchat_ingest($1, $2, password => $3)", &[&bytes, name, &given]).unwrap_err();
            assert_eq!(sqlstate(&err), "22023", "{name} with {given:?}");
            let db = err.as_db_error().unwrap();
            assert!(db.hint().is_some_and(|h| h.contains("password")), "{name}: hint {:?}", db.hint());
        }
        let opened = c.query_one("SELECT docchat_ingest($1, $2, password => $3)::text", &[&bytes, name, password]);
        match (opened, expected) {
            (Ok(row), Ok(fragment)) => {
                let text = document_text(&mut c, &row.get::<_, String>(0));
                assert!(text.contains(fragment), "{name} with {password:?}: {text:?}");
            }
            (Err(e), Err(state)) => assert_eq!(sqlstate(&e), *state, "{name} with {password:?}: {e}"),
            (got, _) => panic!("{name} with {password:?}: expected {expected:?}, got {got:?}"),
        }
    }
    let crazy =
        c.query_one("SELECT count(*) FROM docchat.documents WHERE filename = 'pypdf__crazyones-encrypted-256.pdf'", &[]).unwrap().get::<_, i64>(0);
    assert_eq!(crazy, 1);
}

/// RC4-40 with an empty user password opens like in any reader, with or without the owner's.
#[test]
fn owner_password_only_pdf_opens_without_a_password() {
    let mut c = fresh_db("t_owner_only");
    let bytes = read_shared("corpus/pdf/pypdf__r2-owner-password.pdf");
    for given in [None, Some("asdfzxcv")] {
        let id: String = c.query_one("SELECT docchat_ingest($1, 'r2.pdf', password => $2)::text", &[&bytes, &given]).unwrap().get(0);
        assert_eq!(squash(&document_text(&mut c, &id)), "pdf encryption test password: asdfzxcv", "with {given:?}");
    }
}

/// Encrypted OOXML (password 'tika' in the corpus README) through the same `password` argument.
#[test]
fn encrypted_office_files_open_with_their_password_only() {
    let mut c = fresh_db("t_encrypted_office");
    let files = [
        ("tika__testWORD_protected_passtika.docx", "This is an encrypted Word 2007 File."),
        ("tika__testEXCEL_protected_passtika.xlsx", "This is an Encrypted Excel spreadsheet."),
        ("tika__testPPT_protected_passtika.pptx", "This is an encrypted PowerPoint 2007 slide."),
    ];
    for (name, sentence) in files {
        let bytes = read_shared(&format!("corpus/office/{name}"));
        for given in [None, Some("not-tika")] {
            let err = c.query_one("SELECT docchat_ingest($1, $2, password => $3)", &[&bytes, &name, &given]).unwrap_err();
            assert_eq!(sqlstate(&err), "22023", "{name} with {given:?}");
            assert!(err.as_db_error().unwrap().hint().is_some_and(|h| h.contains("password")));
        }
        let id: String = c.query_one("SELECT docchat_ingest($1, $2, password => 'tika')::text", &[&bytes, &name]).unwrap().get(0);
        assert!(squash(&document_text(&mut c, &id)).contains(sentence), "{name}");
    }
    let stored: i64 = c.query_one("SELECT count(*) FROM docchat.documents", &[]).unwrap().get(0);
    assert_eq!(stored, 3, "failed attempts store nothing");
}
