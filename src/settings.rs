//! docchat's settings (GUCs) and the paths and sizes derived from them.
use docchat_core::chunk::ChunkConfig;
use docchat_core::embed::{ModelFiles, MAX_SEQ_LEN, SPECIAL_TOKENS};
use docchat_core::parse::Options;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use std::ffi::{CStr, CString};
use std::path::PathBuf;

pub static CHUNK_SIZE: GucSetting<i32> = GucSetting::<i32>::new(1000);
pub static CHUNK_OVERLAP: GucSetting<i32> = GucSetting::<i32>::new(200);
pub static THREADS: GucSetting<i32> = GucSetting::<i32>::new(1);
pub static MAX_DOCUMENT_MB: GucSetting<i32> = GucSetting::<i32>::new(100);
pub static MAX_PAGES: GucSetting<i32> = GucSetting::<i32>::new(5000);
pub static MAX_DECOMPRESSED_MB: GucSetting<i32> = GucSetting::<i32>::new(512);
pub static MAX_OCR_PAGES: GucSetting<i32> = GucSetting::<i32>::new(200);
pub static OCR_PAGE_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(60_000);
pub static OCR_LANGUAGES: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"eng"));
pub static MODEL_DIR: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static ONNXRUNTIME_LIBRARY: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// Model and runtime live beside the extension: `$sharedir/docchat/models/<name>/` and
/// `$libdir/docchat/`. `make install` puts them there.
const DEFAULT_MODEL: &str = "all-MiniLM-L6-v2";
pub const ORT_FILE: &str = "libonnxruntime.so.1.31.1";

pub fn define() {
    GucRegistry::define_int_guc(
        c"docchat.chunk_size",
        c"Target chunk length in characters.",
        c"Chunks are also capped at the embedding model's sequence length (254 word-pieces).",
        &CHUNK_SIZE,
        20,
        1_000_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"docchat.chunk_overlap",
        c"Characters that consecutive chunks share.",
        c"Must be smaller than docchat.chunk_size.",
        &CHUNK_OVERLAP,
        0,
        1_000_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"docchat.threads",
        c"ONNX Runtime intra-op threads per embedding session.",
        c"Takes effect when a session next loads the model.",
        &THREADS,
        1,
        64,
        GucContext::Suset,
        GucFlags::default(),
    );
    let limits: [(&'static CStr, &'static CStr, &'static GucSetting<i32>, i32); 5] = [
        (c"docchat.max_document_mb", c"Largest document docchat_ingest accepts, in MB.", &MAX_DOCUMENT_MB, 1024),
        (c"docchat.max_pages", c"Most pages (or slides, sheets) a document may have.", &MAX_PAGES, 1_000_000),
        (c"docchat.max_decompressed_mb", c"Most MB a document's compressed parts may expand to (zip bombs stop here).", &MAX_DECOMPRESSED_MB, 65_536),
        (c"docchat.max_ocr_pages", c"Most pages of one document that go through OCR.", &MAX_OCR_PAGES, 1_000_000),
        (c"docchat.ocr_page_timeout", c"Most milliseconds OCR may spend on one page.", &OCR_PAGE_TIMEOUT_MS, 3_600_000),
    ];
    for (name, short, setting, max) in limits {
        GucRegistry::define_int_guc(name, short, c"", setting, 0, max, GucContext::Userset, GucFlags::default());
    }
    GucRegistry::define_string_guc(
        c"docchat.ocr_languages",
        c"Tesseract languages for OCR, e.g. eng or eng+deu.",
        c"Each needs its traineddata installed (Debian: tesseract-ocr-<lang>).",
        &OCR_LANGUAGES,
        GucContext::Userset,
        GucFlags::default(),
    );
    // Paths load code and data into the server: superuser only.
    GucRegistry::define_string_guc(
        c"docchat.model_dir",
        c"Folder with the embedding model (model.onnx, tokenizer.json).",
        c"Default: $sharedir/docchat/models/all-MiniLM-L6-v2.",
        &MODEL_DIR,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"docchat.onnxruntime_library",
        c"Path of the ONNX Runtime shared library (1.31 or newer).",
        c"Default: $libdir/docchat/libonnxruntime.so.1.31.1. Read once per backend.",
        &ONNXRUNTIME_LIBRARY,
        GucContext::Suset,
        GucFlags::default(),
    );
}

pub fn chunk_config(size: Option<i32>, overlap: Option<i32>) -> ChunkConfig {
    let non_negative = |v: i32| v.max(0) as usize;
    ChunkConfig {
        max_chars: non_negative(size.unwrap_or_else(|| CHUNK_SIZE.get())),
        overlap_chars: non_negative(overlap.unwrap_or_else(|| CHUNK_OVERLAP.get())),
        max_tokens: MAX_SEQ_LEN - SPECIAL_TOKENS,
    }
}

pub fn max_document_bytes() -> usize {
    MAX_DOCUMENT_MB.get() as usize * 1024 * 1024
}

pub fn parse_options(password: Option<&str>) -> Options {
    let languages = OCR_LANGUAGES.get().map(|s| s.to_string_lossy().into_owned()).filter(|s| !s.trim().is_empty());
    Options {
        max_pages: MAX_PAGES.get() as usize,
        max_decompressed_bytes: MAX_DECOMPRESSED_MB.get() as u64 * 1024 * 1024,
        max_ocr_pages: MAX_OCR_PAGES.get() as usize,
        ocr_timeout_ms: OCR_PAGE_TIMEOUT_MS.get() as u64,
        ocr_languages: languages.unwrap_or_else(|| "eng".into()),
        password: password.map(str::to_owned),
    }
}

pub fn threads() -> usize {
    THREADS.get() as usize
}

fn setting_path(setting: &GucSetting<Option<CString>>) -> Option<PathBuf> {
    setting.get().map(|s| PathBuf::from(s.to_string_lossy().into_owned())).filter(|p| !p.as_os_str().is_empty())
}

pub fn model_files() -> ModelFiles {
    let dir = setting_path(&MODEL_DIR).unwrap_or_else(|| share_dir().join("docchat/models").join(DEFAULT_MODEL));
    let runtime = setting_path(&ONNXRUNTIME_LIBRARY).unwrap_or_else(|| lib_dir().join("docchat").join(ORT_FILE));
    ModelFiles { runtime, model: dir.join("model.onnx"), tokenizer: dir.join("tokenizer.json") }
}

fn share_dir() -> PathBuf {
    let mut buf = vec![0 as std::ffi::c_char; pg_sys::MAXPGPATH as usize];
    // SAFETY: my_exec_path is set at process start; get_share_path writes at most MAXPGPATH bytes.
    unsafe {
        pg_sys::get_share_path(std::ptr::addr_of!(pg_sys::my_exec_path) as *const std::ffi::c_char, buf.as_mut_ptr());
        PathBuf::from(CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned())
    }
}

fn lib_dir() -> PathBuf {
    // SAFETY: pkglib_path is a NUL-terminated path set at process start.
    unsafe { PathBuf::from(CStr::from_ptr(std::ptr::addr_of!(pg_sys::pkglib_path) as *const std::ffi::c_char).to_string_lossy().into_owned()) }
}
