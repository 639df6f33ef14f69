//! Tesseract OCR through the C APIs of Tesseract 5 and Leptonica (leptess's raw `capi` bindings:
//! its safe wrapper has no progress monitor, orientation detection or usable error detail).
//!
//! Runs inside a Postgres backend, so: no threads of our own, OpenMP kept on the calling thread,
//! Tesseract's and Leptonica's console chatter silenced, every C object freed on every path.
use super::Options;
use crate::error::{DocError, ErrorKind, Result};
use leptess::capi as c;
use std::cell::{Cell, RefCell};
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};
use std::time::{Duration, Instant};

/// Images with more pixels are refused before decoding: 100 MP is an A3 page at 600 dpi.
pub const MAX_PIXELS: u64 = 100_000_000;
/// Tesseract reads text best with letters 20+ pixels high; images smaller than this (in their
/// longer side) are scaled up, since they are usually screenshots or crops with tiny text.
const MIN_LONG_SIDE: i32 = 1000;
/// Mean word confidence of a good read; upside-down pages read at 30-50.
const CONFIDENT_READ: i32 = 70;
/// Tesseract's own `min_orientation_margin`: below it, OSD's verdict is a guess.
const MIN_ORIENTATION_CONFIDENCE: f32 = 7.0;

/// An owned Leptonica image.
#[derive(Debug)]
pub struct Pix(NonNull<c::PIX>);

impl Pix {
    /// Takes ownership of a PIX that Leptonica returned; `None` when it returned null (failure).
    pub(crate) fn from_raw(raw: *mut c::PIX) -> Option<Pix> {
        NonNull::new(raw).map(Pix)
    }

    pub(crate) fn as_ptr(&self) -> *mut c::PIX {
        self.0.as_ptr()
    }

    pub fn width(&self) -> u32 {
        unsafe { c::pixGetWidth(self.as_ptr()) as u32 }
    }

    pub fn height(&self) -> u32 {
        unsafe { c::pixGetHeight(self.as_ptr()) as u32 }
    }

    /// Applies a Leptonica operation that returns a new image.
    pub(crate) fn derive(&self, what: &str, op: impl FnOnce(*mut c::PIX) -> *mut c::PIX) -> Result<Pix> {
        Pix::from_raw(op(self.as_ptr())).ok_or_else(|| DocError::new(ErrorKind::ModelFailure, format!("image preparation for OCR failed ({what})")))
    }
}

impl Drop for Pix {
    fn drop(&mut self) {
        let mut raw = self.as_ptr();
        unsafe { c::pixDestroy(&mut raw) };
    }
}

/// OCRs one image file (PNG, JPEG, TIFF (first frame), GIF, BMP, WebP, JPEG 2000, PNM).
pub fn ocr_image(bytes: &[u8], options: &Options, interrupted: &dyn Fn() -> bool) -> Result<String> {
    ocr_pix(&read_image(bytes)?, options, interrupted)
}

/// Decodes an image file with Leptonica after checking its size from the header.
pub fn read_image(bytes: &[u8]) -> Result<Pix> {
    quiet_leptonica();
    let jp2 = jp2_for_leptonica(bytes);
    let data = jp2.as_deref().unwrap_or(bytes);
    let (w, h) = header_size(data).ok_or_else(|| corrupt("unrecognised or damaged image data"))?;
    check_pixels(w, h)?;
    Pix::from_raw(unsafe { c::pixReadMem(data.as_ptr(), data.len()) }).ok_or_else(|| corrupt("damaged image data: cannot decode it"))
}

pub(crate) fn check_pixels(w: u64, h: u64) -> Result<()> {
    if w == 0 || h == 0 {
        return Err(corrupt(format!("image has no pixels ({w}x{h})")));
    }
    if w.saturating_mul(h) > MAX_PIXELS {
        return Err(DocError::new(
            ErrorKind::TooLarge,
            format!("image is {w}x{h} pixels, more than OCR's limit of {} megapixels", MAX_PIXELS / 1_000_000),
        )
        .with_hint("scale it down before ingesting it: 300 dpi is plenty for OCR"));
    }
    Ok(())
}

pub(crate) fn corrupt(msg: impl Into<String>) -> DocError {
    DocError::new(ErrorKind::Corrupt, msg).with_hint("the image is truncated or not in a format Leptonica can read")
}

/// Width and height from the header. Leptonica reads BMP and GIF in full to learn their size,
/// so those two are read here.
fn header_size(b: &[u8]) -> Option<(u64, u64)> {
    let le16 = |o: usize| b.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]) as u64);
    let le32 = |o: usize| b.get(o..o + 4).map(|s| i32::from_le_bytes([s[0], s[1], s[2], s[3]]).unsigned_abs() as u64);
    if b.starts_with(b"GIF8") {
        return Some((le16(6)?, le16(8)?));
    }
    if b.starts_with(b"BM") {
        return if le32(14)? == 12 { Some((le16(18)?, le16(20)?)) } else { Some((le32(18)?, le32(22)?)) };
    }
    let (mut format, mut w, mut h) = (0, 0, 0);
    let failed = unsafe { c::pixReadHeaderMem(b.as_ptr(), b.len(), &mut format, &mut w, &mut h, ptr::null_mut(), ptr::null_mut(), ptr::null_mut()) };
    (failed == 0).then_some((w.max(0) as u64, h.max(0) as u64))
}

/// Leptonica 1.82 finds the JPEG 2000 header only when its 'ihdr' box starts at a 4-byte aligned
/// offset, and cannot read bare codestreams (what PDFs usually embed). So any JPEG 2000 input is
/// rewrapped as a minimal JP2 file around its codestream, the header rebuilt from the SIZ marker.
fn jp2_for_leptonica(b: &[u8]) -> Option<Vec<u8>> {
    let cs = if b.starts_with(b"\xFF\x4F\xFF\x51") {
        b
    } else if b.get(4..12) == Some(b"jP  \r\n\x87\n") {
        jp2_codestream(b)?
    } else {
        return None;
    };
    let be32 = |o: usize| cs.get(o..o + 4).map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
    let (w, h) = (be32(8)?.checked_sub(be32(16)?)?, be32(12)?.checked_sub(be32(20)?)?);
    let components = u16::from_be_bytes([*cs.get(40)?, *cs.get(41)?]);
    let bits = cs.get(42)? & 0x7F;
    let colour: u32 = match components {
        1 => 17, // greyscale
        4 => 12, // CMYK
        _ => 16, // sRGB
    };
    let mut out = b"\0\0\0\x0CjP  \r\n\x87\n\0\0\0\x14ftypjp2 \0\0\0\0jp2 \0\0\0\x2Djp2h\0\0\0\x16ihdr".to_vec();
    out.extend(h.to_be_bytes().into_iter().chain(w.to_be_bytes()).chain(components.to_be_bytes()));
    out.extend([bits, 7, 0, 0]);
    out.extend(b"\0\0\0\x0Fcolr\x01\0\0");
    out.extend(colour.to_be_bytes());
    out.extend((cs.len() as u32 + 8).to_be_bytes());
    out.extend(b"jp2c");
    out.extend(cs);
    Some(out)
}

/// The contents of a JP2 file's top-level 'jp2c' box.
fn jp2_codestream(b: &[u8]) -> Option<&[u8]> {
    let mut at = 0;
    while at + 8 <= b.len() {
        let len32 = u32::from_be_bytes(b[at..at + 4].try_into().ok()?) as usize;
        let (len, header) = match len32 {
            0 => (b.len() - at, 8),
            1 => (u64::from_be_bytes(b.get(at + 8..at + 16)?.try_into().ok()?).try_into().ok()?, 16),
            n => (n, 8),
        };
        if len < header {
            return None;
        }
        if &b[at + 4..at + 8] == b"jp2c" {
            return b.get(at + header..at.checked_add(len)?.min(b.len()));
        }
        at = at.checked_add(len)?;
    }
    None
}

/// OCRs a decoded image: deskew, recognise, and if the result looks like an upside-down read,
/// turn the page the way OSD says and read it again, all within `options.ocr_timeout_ms`.
/// `interrupted` is polled while Tesseract works; it must only read a flag (no Postgres error
/// may be raised from inside Tesseract's C++ frames).
pub fn ocr_pix(pix: &Pix, options: &Options, interrupted: &dyn Fn() -> bool) -> Result<String> {
    if interrupted() {
        return Err(cancelled());
    }
    let dir = tessdata_dir()?;
    let langs = check_languages(&options.ocr_languages, &dir)?;
    // 0 disables the limit, like Postgres' own timeouts.
    let deadline = (options.ocr_timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(options.ocr_timeout_ms));
    let page = prepare(pix)?.derive("deskew", |p| unsafe { c::pixFindSkewAndDeskew(p, 0, ptr::null_mut(), ptr::null_mut()) })?;
    let read = |pix: &Pix| with_engine(&dir, &langs, |engine| engine.recognise(pix, deadline, options, interrupted))?;
    let first = read(&page)?;
    // Tesseract's layout analysis copes with pages turned by 90° itself; upside-down text reads as
    // low-confidence gibberish. OSD costs about as much as recognition, so only doubtful reads pay it.
    if first.1 >= CONFIDENT_READ {
        return Ok(first.0);
    }
    // OSD's handle is not cached: it is needed rarely and its legacy model takes ~30 MB.
    let osd = dir.join("osd.traineddata").is_file().then(|| Engine::load(&dir, "osd", String::new()).ok()).flatten();
    let turns = match osd {
        Some(mut osd) => {
            single_threaded_openmp();
            osd.quarter_turns(&page)
        }
        None => 2, // without OSD, try upside down
    };
    if turns == 0 {
        return Ok(first.0);
    }
    let second = read(&page.derive("rotate", |p| unsafe { c::pixRotateOrth(p, turns) })?)?;
    Ok(if second.1 > first.1 { second.0 } else { first.0 })
}

/// 8-bit grey without alpha (transparent areas become white), small images scaled up.
fn prepare(pix: &Pix) -> Result<Pix> {
    let opaque = if unsafe { c::pixGetSpp(pix.as_ptr()) } == 4 {
        pix.derive("remove alpha", |p| unsafe { c::pixAlphaBlendUniform(p, 0xFFFF_FF00) })?
    } else {
        pix.derive("copy", |p| unsafe { c::pixClone(p) })?
    };
    let grey = opaque.derive("convert to grey", |p| unsafe { c::pixConvertTo8(p, 0) })?;
    let long_side = grey.width().max(grey.height()) as i32;
    if long_side >= MIN_LONG_SIDE {
        return Ok(grey);
    }
    let factor = (MIN_LONG_SIDE as f32 / long_side as f32).min(4.0);
    grey.derive("scale up", |p| unsafe { c::pixScale(p, factor, factor) })
}

/// The tessdata folder: $TESSDATA_PREFIX (Tesseract 5 meaning: the folder itself), else the
/// usual install locations. Passed to Tesseract explicitly so our file checks and its loading agree.
fn tessdata_dir() -> Result<PathBuf> {
    let env = std::env::var_os("TESSDATA_PREFIX").map(PathBuf::from);
    let defaults = ["/usr/share/tesseract-ocr/5/tessdata", "/usr/local/share/tessdata", "/usr/share/tessdata"].map(PathBuf::from);
    env.into_iter().chain(defaults).find(|d| d.is_dir()).ok_or_else(|| {
        DocError::new(ErrorKind::ModelUnavailable, "no Tesseract language data folder (tessdata) found")
            .with_hint("install tesseract-ocr-eng (Debian/Ubuntu) or set TESSDATA_PREFIX for the Postgres server")
    })
}

/// For health checks: Tesseract's version and installed languages, or why `languages` (the
/// docchat.ocr_languages list) cannot be used.
pub fn status(languages: &str) -> Result<(String, Vec<String>)> {
    let dir = tessdata_dir()?;
    check_languages(languages, &dir)?;
    // SAFETY: a static NUL-terminated string owned by libtesseract.
    let version = unsafe { CStr::from_ptr(c::TessVersion()) }.to_string_lossy().into_owned();
    Ok((version, installed_languages(&dir)))
}

/// Validates "eng+deu"-style language lists and that each language's model is installed.
fn check_languages(spec: &str, dir: &Path) -> Result<String> {
    let langs: Vec<&str> = spec.split('+').map(str::trim).collect();
    for lang in &langs {
        if lang.is_empty() || !lang.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-') {
            return Err(DocError::new(ErrorKind::InvalidArgument, format!("invalid OCR language list {spec:?}"))
                .with_hint("docchat.ocr_languages takes Tesseract language codes joined by '+', e.g. eng or eng+deu"));
        }
        if !dir.join(format!("{lang}.traineddata")).is_file() {
            let package = format!("tesseract-ocr-{}", lang.to_lowercase().replace('_', "-"));
            return Err(DocError::new(
                ErrorKind::ModelUnavailable,
                format!("Tesseract language data for {lang:?} is not installed (no {lang}.traineddata in {})", dir.display()),
            )
            .with_hint(format!(
                "install the {package} package (apt-get install {package}) on the database server, or set docchat.ocr_languages to installed ones: {}",
                installed_languages(dir).join(", ")
            )));
        }
    }
    Ok(langs.join("+"))
}

fn installed_languages(dir: &Path) -> Vec<String> {
    let mut langs: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".traineddata").map(str::to_owned))
        .filter(|l| l != "osd")
        .collect();
    langs.sort();
    langs
}

/// A Tesseract handle for one language list (or "osd").
struct Engine {
    api: NonNull<c::TessBaseAPI>,
    /// Data folder and languages, to tell whether a cached handle fits.
    key: String,
}

thread_local! {
    /// Loading a model takes a third of a small page's OCR time, so the last recognition handle
    /// (~20 MB for eng) is kept per thread: a Postgres backend has one thread, test threads each
    /// get their own. It is taken out while in use, so nothing is shared.
    static CACHED: RefCell<Option<Engine>> = const { RefCell::new(None) };
}

/// Runs `f` with the cached (or a newly loaded) handle for `langs`, then caches that one.
fn with_engine<T>(dir: &Path, langs: &str, f: impl FnOnce(&mut Engine) -> T) -> Result<T> {
    let key = format!("{}\0{langs}", dir.display());
    let cached = CACHED.with(|c| c.borrow_mut().take()).filter(|e| e.key == key);
    let mut engine = match cached {
        Some(engine) => engine,
        None => Engine::load(dir, langs, key)?,
    };
    single_threaded_openmp();
    let out = f(&mut engine);
    CACHED.with(|c| *c.borrow_mut() = Some(engine));
    Ok(out)
}

impl Engine {
    fn load(dir: &Path, langs: &str, key: String) -> Result<Engine> {
        quiet_leptonica();
        let api = NonNull::new(unsafe { c::TessBaseAPICreate() })
            .ok_or_else(|| DocError::new(ErrorKind::ModelFailure, "cannot create a Tesseract handle"))?;
        let engine = Engine { api, key };
        let (dir_c, langs_c) = (CString::new(dir.as_os_str().as_bytes()), CString::new(langs));
        let (Ok(dir_c), Ok(langs_c)) = (dir_c, langs_c) else {
            return Err(DocError::new(ErrorKind::InvalidArgument, "OCR language or data path contains a NUL byte"));
        };
        // The legacy engine is the only one OSD has; recognition uses what the model offers (LSTM).
        let oem = if langs == "osd" { c::TessOcrEngineMode_OEM_TESSERACT_ONLY } else { c::TessOcrEngineMode_OEM_DEFAULT };
        let loaded = unsafe {
            // A global setting: tprintf output (resolution estimates, warnings) goes nowhere
            // instead of the server log. Set before Init, which already prints.
            c::TessBaseAPISetVariable(engine.api(), c"debug_file".as_ptr(), c"/dev/null".as_ptr());
            c::TessBaseAPIInit2(engine.api(), dir_c.as_ptr(), langs_c.as_ptr(), oem) == 0
        };
        if !loaded {
            return Err(DocError::new(ErrorKind::ModelUnavailable, format!("Tesseract cannot load language data {langs:?} from {}", dir.display()))
                .with_hint(
                    "the .traineddata file may be damaged or from an incompatible Tesseract version; reinstall the tesseract-ocr-<lang> package",
                ));
        }
        unsafe { c::TessBaseAPISetPageSegMode(engine.api(), c::TessPageSegMode_PSM_AUTO) };
        Ok(engine)
    }

    fn api(&self) -> *mut c::TessBaseAPI {
        self.api.as_ptr()
    }

    /// How many clockwise quarter turns make the page upright (0 when OSD is unsure).
    fn quarter_turns(&mut self, pix: &Pix) -> i32 {
        let (mut degrees, mut confidence) = (0, 0.0f32);
        let found = unsafe {
            c::TessBaseAPISetImage2(self.api(), pix.as_ptr());
            let found = c::TessBaseAPIDetectOrientationScript(self.api(), &mut degrees, &mut confidence, ptr::null_mut(), ptr::null_mut());
            c::TessBaseAPIClear(self.api());
            found
        };
        // OSD reports how far the page is turned clockwise; turning on to 360° undoes it.
        if found != 0 && confidence >= MIN_ORIENTATION_CONFIDENCE {
            (4 - degrees.rem_euclid(360) / 90) % 4
        } else {
            0
        }
    }

    /// Recognises `pix`; returns the text (lines and blank-line paragraphs) and mean word confidence.
    fn recognise(&mut self, pix: &Pix, deadline: Option<Instant>, options: &Options, interrupted: &dyn Fn() -> bool) -> Result<(String, i32)> {
        let too_slow = || {
            DocError::new(ErrorKind::TooLarge, format!("OCR of a page took longer than {} ms", options.ocr_timeout_ms))
                .with_hint("raise docchat.ocr_page_timeout (milliseconds per page; 0 disables it) or lower the scan resolution")
        };
        let remaining = match deadline {
            Some(d) => Some(d.checked_duration_since(Instant::now()).filter(|r| !r.is_zero()).ok_or_else(too_slow)?),
            None => None,
        };
        let cancel = CancelCheck { interrupted, hit: Cell::new(false) };
        let monitor = Monitor::new(&cancel, remaining)?;
        let failed = unsafe {
            c::TessBaseAPISetImage2(self.api(), pix.as_ptr());
            c::TessBaseAPIRecognize(self.api(), monitor.0.as_ptr()) != 0
        };
        let result = if cancel.hit.get() {
            Err(cancelled())
        } else if failed && deadline.is_some_and(|d| Instant::now() >= d) {
            Err(too_slow())
        } else if failed {
            Err(DocError::new(ErrorKind::ModelFailure, "Tesseract failed to recognise the image"))
        } else {
            unsafe {
                let raw = c::TessBaseAPIGetUTF8Text(self.api());
                let text = if raw.is_null() { String::new() } else { CStr::from_ptr(raw).to_string_lossy().into_owned() };
                c::TessDeleteText(raw);
                Ok((text, c::TessBaseAPIMeanTextConf(self.api())))
            }
        };
        unsafe { c::TessBaseAPIClear(self.api()) };
        result
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        unsafe { c::TessBaseAPIDelete(self.api()) };
    }
}

/// What Tesseract's cancel callback consults, once per word.
struct CancelCheck<'a> {
    interrupted: &'a dyn Fn() -> bool,
    hit: Cell<bool>,
}

unsafe extern "C" fn cancel_callback(this: *mut c_void, _words: c_int) -> bool {
    let check = unsafe { &*(this as *const CancelCheck) };
    // A panic must not unwind into C++; treat it as a request to stop.
    let stop = catch_unwind(AssertUnwindSafe(|| (check.interrupted)())).unwrap_or(true);
    check.hit.set(check.hit.get() || stop);
    stop
}

/// Tesseract's progress monitor (ETEXT_DESC): deadline and cancel callback.
struct Monitor(NonNull<c::ETEXT_DESC>);

impl Monitor {
    fn new(cancel: &CancelCheck, remaining: Option<Duration>) -> Result<Monitor> {
        let monitor = Monitor(
            NonNull::new(unsafe { c::TessMonitorCreate() })
                .ok_or_else(|| DocError::new(ErrorKind::ModelFailure, "cannot create a Tesseract monitor"))?,
        );
        unsafe {
            c::TessMonitorSetCancelFunc(monitor.0.as_ptr(), Some(cancel_callback));
            c::TessMonitorSetCancelThis(monitor.0.as_ptr(), cancel as *const CancelCheck as *mut c_void);
            if let Some(r) = remaining {
                c::TessMonitorSetDeadlineMSecs(monitor.0.as_ptr(), r.as_millis().clamp(1, i32::MAX as u128) as c_int);
            }
        }
        Ok(monitor)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        unsafe { c::TessMonitorDelete(self.0.as_ptr()) };
    }
}

fn cancelled() -> DocError {
    DocError::new(ErrorKind::Cancelled, "canceled during OCR")
}

/// Leptonica reports every failed read on stderr (the server log); our errors say it better.
fn quiet_leptonica() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| unsafe {
        c::setMsgSeverity(c::L_SEVERITY_NONE as c_int);
    });
}

/// Debian's libtesseract uses OpenMP, whose worker pool would otherwise start threads inside the
/// Postgres backend (and on a busy machine made a page 5-7x slower in wall time). Setting
/// OMP_THREAD_LIMIT with std::env::set_var would not help: libgomp reads it once, when it is
/// loaded with libtesseract, before any of our code runs. Instead the calling thread's
/// max-active-levels is set to 0, which makes every parallel region run on that thread alone.
/// Looked up at run time so a Tesseract built without OpenMP needs nothing.
fn single_threaded_openmp() {
    extern "C" {
        fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    }
    static SET_MAX_ACTIVE_LEVELS: std::sync::OnceLock<Option<extern "C" fn(c_int)>> = std::sync::OnceLock::new();
    let set = SET_MAX_ACTIVE_LEVELS.get_or_init(|| {
        // RTLD_DEFAULT (a null handle on glibc): search every loaded library.
        let f = unsafe { dlsym(ptr::null_mut(), c"omp_set_max_active_levels".as_ptr()) };
        (!f.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, extern "C" fn(c_int)>(f) })
    });
    if let Some(set) = set {
        set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(name: &str) -> Vec<u8> {
        crate::parse::shared_file(&format!("corpus/ocr/{name}"))
    }

    /// Character error rate: Levenshtein distance / truth length, whitespace squashed.
    fn cer(text: &str, truth: &str) -> f64 {
        let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").chars().collect::<Vec<_>>();
        let (a, b) = (squash(text), squash(truth));
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.iter().enumerate() {
            let mut diag = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let next = (diag + usize::from(ca != cb)).min(row[j] + 1).min(row[j + 1] + 1);
                diag = row[j + 1];
                row[j + 1] = next;
            }
        }
        row[b.len()] as f64 / b.len() as f64
    }

    fn read(name: &str, options: &Options) -> Result<String> {
        ocr_image(&corpus(name), options, &|| false)
    }

    fn check_cer(image: &str, truth: &str, limit: f64) -> String {
        let truth = String::from_utf8(corpus(truth)).unwrap();
        let start = Instant::now();
        read(image, &Options::default()).unwrap();
        let cold = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let text = read(image, &Options::default()).unwrap();
        let rate = cer(&text, &truth);
        eprintln!("{image}: CER {rate:.4}; {:.2} s/page ({cold:.2} s with model loading)", start.elapsed().as_secs_f64());
        assert!(rate <= limit, "{image}: CER {rate:.4} > {limit}\n{text}");
        text
    }

    #[test]
    fn phototest_matches_ground_truth() {
        let text = check_cer("tess__phototest.tif", "tess__phototest.gold.txt", 0.01);
        // Lines and paragraphs survive.
        assert!(text.contains("test the\nocr code"), "{text}");
        assert!(text.contains("file format.\n\nThe quick"), "{text}");
    }

    #[test]
    fn eurotext_matches_ground_truth() {
        check_cer("tess__eurotext.tif", "tess__eurotext.txt", 0.03);
    }

    #[test]
    fn upside_down_page_is_turned() {
        check_cer("tess__phototest-rotated-180.png", "tess__phototest.gold.txt", 0.02);
    }

    #[test]
    fn quarter_turned_page_is_turned() {
        let truth = String::from_utf8(corpus("tess__phototest.gold.txt")).unwrap();
        let page = read_image(&corpus("tess__phototest.tif")).unwrap();
        for quads in [1, 3] {
            let turned = page.derive("rotate", |p| unsafe { c::pixRotateOrth(p, quads) }).unwrap();
            let text = ocr_pix(&turned, &Options::default(), &|| false).unwrap();
            assert!(cer(&text, &truth) <= 0.02, "{quads} quarter turns: {text}");
        }
    }

    #[test]
    fn every_leptonica_format_is_read() {
        let page = read_image(&corpus("tess__phototest.tif")).unwrap();
        let grey = page.derive("grey", |p| unsafe { c::pixConvertTo8(p, 0) }).unwrap();
        let colour = page.derive("rgb", |p| unsafe { c::pixConvertTo32(p) }).unwrap();
        let formats = [
            ("png", c::IFF_PNG, &grey),
            ("jpeg", c::IFF_JFIF_JPEG, &grey),
            ("gif", c::IFF_GIF, &grey),
            ("bmp", c::IFF_BMP, &grey),
            ("webp", c::IFF_WEBP, &colour),
            ("jp2", c::IFF_JP2, &colour),
            ("pnm", c::IFF_PNM, &grey),
        ];
        for (name, format, pix) in formats {
            let bytes = unsafe {
                let (mut data, mut size) = (ptr::null_mut(), 0usize);
                assert_eq!(c::pixWriteMem(&mut data, &mut size, pix.as_ptr(), format as i32), 0, "{name}");
                let bytes = std::slice::from_raw_parts(data, size).to_vec();
                c::lept_free(data.cast());
                bytes
            };
            let read = read_image(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!((read.width(), read.height()), (640, 480), "{name}");
        }
    }

    #[test]
    fn garbage_is_corrupt() {
        let err = ocr_image(b"definitely not an image, just bytes", &Options::default(), &|| false).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Corrupt, "{err}");
        let png = corpus("tess__phototest-rotated-180.png");
        let err = ocr_image(&png[..png.len() / 3], &Options::default(), &|| false).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Corrupt, "{err}");
    }

    #[test]
    fn huge_image_is_refused_from_its_header() {
        // A PNG header claiming 20000 x 20000 pixels, with no image data behind it.
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend(20_000u32.to_be_bytes().into_iter().chain(20_000u32.to_be_bytes()));
        png.extend([8, 0, 0, 0, 0, 0, 0, 0, 0]);
        png.resize(64, 0);
        let err = ocr_image(&png, &Options::default(), &|| false).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TooLarge, "{err}");
    }

    #[test]
    fn timeout_is_too_large() {
        let options = Options { ocr_timeout_ms: 1, ..Options::default() };
        let err = read("tess__eurotext.tif", &options).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TooLarge, "{err}");
        assert!(err.hint.unwrap().contains("docchat.ocr_page_timeout"));
        // The monitor's deadline, not only the check before recognition, stops Tesseract.
        let dir = tessdata_dir().unwrap();
        let pix = prepare(&read_image(&corpus("tess__eurotext.tif")).unwrap()).unwrap();
        let deadline = Some(Instant::now() + Duration::from_millis(20));
        let err = with_engine(&dir, "eng", |e| e.recognise(&pix, deadline, &options, &|| false)).unwrap().unwrap_err();
        assert_eq!(err.kind, ErrorKind::TooLarge, "{err}");
    }

    #[test]
    fn cancel_stops_recognition() {
        let calls = Cell::new(0);
        let interrupted = || {
            calls.set(calls.get() + 1);
            calls.get() > 1 // the check before OCR passes; Tesseract's callback then stops it
        };
        let err = ocr_image(&corpus("tess__eurotext.tif"), &Options::default(), &interrupted).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Cancelled, "{err}");
        assert!(calls.get() >= 2);
    }

    #[test]
    fn missing_language_is_model_unavailable() {
        let options = Options { ocr_languages: "eng+xxx".into(), ..Options::default() };
        let err = read("tess__phototest.tif", &options).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ModelUnavailable, "{err}");
        assert!(err.hint.as_deref().unwrap().contains("tesseract-ocr-xxx"), "{err:?}");
        let options = Options { ocr_languages: "../eng".into(), ..Options::default() };
        assert_eq!(read("tess__phototest.tif", &options).unwrap_err().kind, ErrorKind::InvalidArgument);
    }
}
