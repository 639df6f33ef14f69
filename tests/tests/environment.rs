//! The system packages the corpus and OCR tests rely on, checked directly, so that a machine
//! missing one fails here with the package's name instead of with a changed corpus outcome.
use docchat_tests::shared;
use std::process::Command;

#[test]
fn pdftoppm_renders_cid_keyed_japanese_pages() {
    // pdfjs__vertical.pdf uses an Adobe-Japan1 font without embedding it: poppler needs the
    // CMaps of the poppler-data package (a Recommends that --no-install-recommends leaves out).
    let pdf = shared("corpus/pdf/pdfjs__vertical.pdf");
    let out = Command::new("pdftoppm")
        .args(["-f", "1", "-l", "1", "-r", "50", "-gray", "-singlefile"])
        .arg(&pdf)
        .output()
        .expect("pdftoppm runs (Debian package poppler-utils)");
    assert!(out.status.success(), "pdftoppm failed on {}: {}", pdf.display(), String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("Missing language pack"), "pdftoppm lacks the CJK CMaps: install the Debian package poppler-data ({stderr})");
    assert!(out.stdout.starts_with(b"P5"), "pdftoppm wrote no PGM image");
}

#[test]
fn tesseract_has_english_and_script_detection() {
    let out = Command::new("tesseract").arg("--list-langs").output().expect("tesseract runs (Debian package tesseract-ocr)");
    let langs = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let langs: Vec<&str> = langs.lines().skip(1).map(str::trim).collect();
    for (lang, package) in [("eng", "tesseract-ocr-eng"), ("osd", "tesseract-ocr-osd")] {
        assert!(langs.contains(&lang), "Tesseract has no {lang} traineddata: install the Debian package {package} (has {langs:?})");
    }
}
