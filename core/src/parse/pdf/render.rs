//! Rendering one PDF page to a greyscale image with poppler's `pdftoppm`, for OCR of pages whose
//! text cannot be read any other way (vector text with broken fonts, mojibake, JBIG2 scans).
//! A separate process on purpose: a renderer crash or runaway on a hostile file kills only that
//! process, never the Postgres backend, and the deadline is enforced by killing it.
use crate::error::{DocError, ErrorKind, Result};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// 300 dpi is what Tesseract is tuned for.
const DPI: &str = "300";
/// A US Letter page at 300 dpi is ~8.4 MB of grey; anything far bigger is refused.
const MAX_IMAGE_BYTES: usize = 64 << 20;

/// The page as a PGM image, or `None` when `pdftoppm` is not installed.
pub fn render_page(pdf: &[u8], page: u32, password: Option<&str>, timeout: Duration, interrupted: &dyn Fn() -> bool) -> Result<Option<Vec<u8>>> {
    let n = page.to_string();
    let mut cmd = Command::new("pdftoppm");
    cmd.args(["-f", &n, "-l", &n, "-r", DPI, "-gray", "-singlefile"]);
    if let Some(pw) = password {
        cmd.args(["-upw", pw]);
    }
    cmd.arg("-").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DocError::new(ErrorKind::ModelUnavailable, format!("cannot run pdftoppm: {e}"))),
    };
    // Feed stdin and drain stdout on threads so neither pipe can fill up and block the other.
    let no_thread = |e: std::io::Error| DocError::new(ErrorKind::Corrupt, format!("cannot start a thread for pdftoppm: {e}"));
    let mut stdin = child.stdin.take().expect("piped");
    let input = pdf.to_vec();
    let writer = crate::threads::spawn(std::thread::Builder::new(), move || {
        let _ = stdin.write_all(&input);
    })
    .map_err(no_thread)?;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = crate::threads::spawn(std::thread::Builder::new(), move || {
        let mut image = Vec::new();
        let _ = (&mut stdout).take(MAX_IMAGE_BYTES as u64 + 1).read_to_end(&mut image);
        image
    })
    .map_err(no_thread)?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| DocError::new(ErrorKind::Corrupt, format!("pdftoppm: {e}")))? {
            break status;
        }
        if interrupted() || started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(if interrupted() {
                DocError::new(ErrorKind::Cancelled, "canceled while rendering a PDF page")
            } else {
                DocError::new(ErrorKind::TooLarge, format!("rendering page {page} for OCR took longer than {} ms", timeout.as_millis()))
                    .with_hint("raise docchat.ocr_page_timeout")
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    let image = reader.join().unwrap_or_default();
    if !status.success() || image.is_empty() || image.len() > MAX_IMAGE_BYTES {
        return Ok(None);
    }
    Ok(Some(image))
}
