//! CLIP through SQL with the generated CLIP-shaped model (scripts/clip_fixture.sh): embeddings
//! equal ONNX Runtime's reference vectors in the worker and in the backend, pictures are stored
//! from image files, DOCX and PDF, and text-to-image search is exact and private to each owner.
use docchat_tests::*;
use postgres::Client;
use serde_json::Value;
use std::path::PathBuf;

fn fixture() -> PathBuf {
    PathBuf::from(std::env::var("DOCCHAT_TEST_CLIP_FIXTURE").expect("DOCCHAT_TEST_CLIP_FIXTURE (make test sets it)"))
}

fn reference() -> Value {
    serde_json::from_slice(&std::fs::read(fixture().join("reference/embeddings.json")).unwrap()).unwrap()
}

fn vector(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn image_vector(c: &mut Client, bytes: &[u8]) -> Vec<f32> {
    c.query_one("SELECT docchat_embed_image($1)::real[]", &[&bytes]).unwrap().get(0)
}

fn text_vector(c: &mut Client, text: &str) -> Vec<f32> {
    c.query_one("SELECT docchat_embed_image_query($1)::real[]", &[&text]).unwrap().get(0)
}

#[test]
fn embeddings_match_the_reference_in_worker_and_backend() {
    let mut c = fresh_db("t_clip_embed");
    let refs = reference();
    let chelsea = read_shared("corpus/images/skimage__chelsea.png");
    let want_image = vector(&refs["images"]["skimage__chelsea.png"]);
    let want_text = vector(&refs["texts"].as_array().unwrap().iter().find(|t| t["text"] == "A photo of a cat").unwrap()["vector"]);

    // Not configured: a clear error, and health says so.
    let e = c.query_one("SELECT docchat_embed_image_query('a cat')", &[]).unwrap_err();
    assert_eq!(sqlstate(&e), "58P01");
    assert!(e.as_db_error().unwrap().message().contains("docchat.clip_model_dir is empty"), "{e}");
    let health: Value = c.query_one("SELECT docchat_health()::text", &[]).map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap()).unwrap();
    assert_eq!(health["clip"], serde_json::json!({"configured": false}));

    c.batch_execute("SET docchat.clip_model_dir = '/nonexistent/clip'").unwrap();
    let e = c.query_one("SELECT docchat_embed_image($1)", &[&chelsea]).unwrap_err();
    let db = e.as_db_error().unwrap();
    assert_eq!(
        (db.code().code(), db.message()),
        ("58P01", "the CLIP model folder \"/nonexistent/clip\" lacks visual.onnx, textual.onnx, bpe_simple_vocab_16e6.txt.gz or merges.txt")
    );
    assert!(db.hint().unwrap().contains("README"));
    let health: Value = c.query_one("SELECT docchat_health()::text", &[]).map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap()).unwrap();
    assert_eq!(health["clip"]["ok"], false);
    assert_eq!(health["clip"]["missing"].as_array().unwrap().len(), 3);

    c.batch_execute(&format!("SET docchat.clip_model_dir = '{}'", clip_model_dir())).unwrap();
    for worker in ["on", "off"] {
        c.batch_execute(&format!("SET docchat.model_worker = {worker}")).unwrap();
        let v = image_vector(&mut c, &chelsea);
        assert_eq!(v.len(), 512);
        assert!(cosine(&v, &want_image) > 0.99999, "worker {worker}: {}", cosine(&v, &want_image));
        let t = text_vector(&mut c, "A photo of a cat");
        assert!(cosine(&t, &want_text) > 0.99999, "worker {worker}: {}", cosine(&t, &want_text));
        let typ: String = c
            .query_one("SELECT pg_typeof(docchat_embed_image($1))::text || ' ' || vector_dims(docchat_embed_image_query('x'))", &[&chelsea])
            .unwrap()
            .get(0);
        assert_eq!(typ, "vector 512");
    }
    let health: Value = c.query_one("SELECT docchat_health()::text", &[]).map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap()).unwrap();
    assert_eq!(health["clip"]["ok"], true);

    let null: Option<Vec<f32>> = c.query_one("SELECT docchat_embed_image(NULL)::real[]", &[]).unwrap().get(0);
    assert!(null.is_none());
    let e = c.query_one("SELECT docchat_embed_image('not an image'::bytea)", &[]).unwrap_err();
    assert_eq!(sqlstate(&e), "22000", "{e}");
    let e = c.query_one("SELECT docchat_embed_image($1)", &[&&chelsea[..chelsea.len() / 2]]).unwrap_err();
    assert_eq!(sqlstate(&e), "22P03", "{e}");
}

fn images_of(c: &mut Client, id: &str) -> Vec<(i32, Option<i32>, String, String, i32, i32)> {
    c.query(
        "SELECT image_index, page, name, mime_type, width, height FROM docchat.images WHERE document_id = $1::text::uuid ORDER BY image_index",
        &[&id],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
    .collect()
}

#[test]
fn pictures_are_stored_and_searched_per_owner() {
    let mut admin = fresh_db("t_clip_search");
    create_role(&mut admin, "clip_alice", true);
    create_role(&mut admin, "clip_bob", true);
    for role in ["clip_alice", "clip_bob"] {
        admin.batch_execute(&format!("ALTER ROLE {role} SET docchat.clip_model_dir = '{}'", clip_model_dir())).unwrap();
    }
    let mut alice = connect("t_clip_search", "clip_alice");
    let mut bob = connect("t_clip_search", "clip_bob");

    // A photo: no text to find, so only its picture is stored.
    let chelsea = read_shared("corpus/images/skimage__chelsea.png");
    let photo = ingest(&mut alice, &chelsea, "chelsea.png").unwrap();
    assert_eq!(images_of(&mut alice, &photo), vec![(0, None, "document".into(), "image/png".into(), 451, 300)]);
    let stored: Vec<u8> = alice.query_one("SELECT content FROM docchat.images WHERE document_id = $1::text::uuid", &[&photo]).unwrap().get(0);
    assert_eq!(stored, chelsea);
    let docx = ingest(&mut alice, &read_shared("corpus/office/tika__testWORD_embedded_pics.docx"), "pics.docx").unwrap();
    assert_eq!(
        images_of(&mut alice, &docx),
        vec![
            (0, None, "word/media/image1.jpeg".into(), "image/jpeg".into(), 100, 75),
            (1, None, "word/media/image2.jpeg".into(), "image/jpeg".into(), 100, 75)
        ]
    );
    let pdf = ingest(&mut alice, &read_shared("corpus/pdf/pypdf__jpeg.pdf"), "jpeg.pdf").unwrap();
    assert_eq!(images_of(&mut alice, &pdf), vec![(0, Some(1), "page 1 image 1".into(), "image/jpeg".into(), 800, 600)]);
    ingest(&mut bob, &read_shared("corpus/images/skimage__astronaut.png"), "astronaut.png").unwrap();

    // The stored vector is the image's embedding (read by an admin: users cannot select vectors).
    admin.batch_execute(&format!("SET docchat.clip_model_dir = '{}'", clip_model_dir())).unwrap();
    let e = alice.query("SELECT embedding FROM docchat.images", &[]).unwrap_err();
    assert_eq!(sqlstate(&e), "42501");
    let same: f64 = admin
        .query_one("SELECT 1 - (embedding <=> docchat_embed_image(content)) FROM docchat.images WHERE document_id = $1::text::uuid", &[&photo])
        .unwrap()
        .get(0);
    assert!(same > 0.99999, "{same}");

    // Search ranks exactly by cosine to the query's CLIP text vector, among the caller's pictures only.
    let q = "a tabby cat";
    let hits: Vec<(String, i32, f64)> = alice
        .query("SELECT filename, image_index, similarity FROM docchat_search_images($1, 8)", &[&q])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expected: Vec<(String, i32, f64)> = admin
        .query(
            "SELECT d.filename, i.image_index, 1 - (i.embedding <=> docchat_embed_image_query($1)) AS s \
             FROM docchat.images i JOIN docchat.documents d ON d.id = i.document_id WHERE i.owner = 'clip_alice' \
             ORDER BY s DESC, i.document_id, i.image_index",
            &[&q],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(hits.len(), 4);
    assert_eq!(hits.iter().map(|h| (&h.0, h.1)).collect::<Vec<_>>(), expected.iter().map(|h| (&h.0, h.1)).collect::<Vec<_>>());
    for (h, e) in hits.iter().zip(&expected) {
        assert!((h.2 - e.2).abs() < 1e-6);
    }
    assert_eq!(alice.query("SELECT * FROM docchat_search_images($1, 2)", &[&q]).unwrap().len(), 2);
    let bobs: Vec<String> = bob.query("SELECT filename FROM docchat_search_images($1)", &[&q]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(bobs, vec!["astronaut.png"]);
    let seen: i64 = bob.query_one("SELECT count(*) FROM docchat.images", &[]).unwrap().get(0);
    assert_eq!(seen, 1);

    // Picture searches are logged like chunk searches, with the best similarity found.
    let logged: (String, String, i32, f64) = alice
        .query_one("SELECT mode, model, n_results, top_similarity FROM docchat.searches WHERE query = $1 ORDER BY id DESC LIMIT 1", &[&q])
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .unwrap();
    assert_eq!((logged.0.as_str(), logged.1.as_str(), logged.2), ("images", "clip", 2));
    assert!((logged.3 - expected[0].2).abs() < 1e-6, "{logged:?}");
    // docchat_search returns chunks only: pictures come from docchat_search_images.
    let none = alice.query("SELECT * FROM docchat_search('pictures', 5, -1) WHERE chunk_index IS NULL", &[]).unwrap();
    assert!(none.is_empty());

    let e = alice.query("SELECT * FROM docchat_search_images('', 3)", &[]).unwrap_err();
    assert_eq!(sqlstate(&e), "22023");
    let e = alice.query("SELECT * FROM docchat_search_images('cat', 0)", &[]).unwrap_err();
    assert_eq!(sqlstate(&e), "22023");

    // Deleting the document deletes its pictures.
    let gone: bool = alice.query_one("SELECT docchat_delete($1::text::uuid)", &[&docx]).unwrap().get(0);
    assert!(gone);
    assert!(images_of(&mut alice, &docx).is_empty());
}
