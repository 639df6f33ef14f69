//! docchat's settings (GUCs) and the paths and sizes derived from them. The settings are
//! defined from one table (`table.rs`); the limits users may only lower are in `limits.rs`.
use docchat_core::chunk::ChunkConfig;
use docchat_core::embed::{Device, RunOptions, SPECIAL_TOKENS};
use docchat_core::parse::embedded_images::ImageLimits;
use docchat_core::parse::{defaults, Options};
use docchat_core::serve::batcher::BatchConfig;
use docchat_core::serve::wire::ModelKey;
use pgrx::guc::{GucSetting, PostgresGucEnum};
use pgrx::pg_sys;
use std::ffi::{CStr, CString};
use std::path::PathBuf;

static CHUNK_SIZE: GucSetting<i32> = GucSetting::<i32>::new(1000);
static CHUNK_OVERLAP: GucSetting<i32> = GucSetting::<i32>::new(200);
static THREADS: GucSetting<i32> = GucSetting::<i32>::new(1);
static MAX_DOCUMENT_MB: GucSetting<i32> = GucSetting::<i32>::new(100);
static MAX_PAGES: GucSetting<i32> = GucSetting::<i32>::new(defaults::MAX_PAGES);
static MAX_DECOMPRESSED_MB: GucSetting<i32> = GucSetting::<i32>::new(defaults::MAX_DECOMPRESSED_MB);
static MAX_OCR_PAGES: GucSetting<i32> = GucSetting::<i32>::new(defaults::MAX_OCR_PAGES);
static OCR_PAGE_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(defaults::OCR_PAGE_TIMEOUT_MS);
static PARSE_TIMEOUT_S: GucSetting<i32> = GucSetting::<i32>::new(600);
static OCR_LANGUAGES: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(defaults::OCR_LANGUAGES));
static MODELS_DIR: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static MODEL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static ONNXRUNTIME_LIBRARY: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static DEVICE: GucSetting<DeviceSetting> = GucSetting::<DeviceSetting>::new(DeviceSetting::Auto);
static WORKER_THREADS: GucSetting<i32> = GucSetting::<i32>::new(0);
static MAX_BATCH: GucSetting<i32> = GucSetting::<i32>::new(32);
static BATCH_WAIT_MS: GucSetting<i32> = GucSetting::<i32>::new(0);
static BATCH_TOKENS: GucSetting<i32> = GucSetting::<i32>::new(0);
static MODEL_WORKER: GucSetting<bool> = GucSetting::<bool>::new(true);
static WORKER_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(30_000);
// Read by docchat_search (SQL) through docchat.search_settings().
static KEYWORD_WEIGHT: GucSetting<f64> = GucSetting::<f64>::new(1.0);
static EXACT_SEARCH_LIMIT: GucSetting<i32> = GucSetting::<i32>::new(10_000);
static BM25_K1: GucSetting<f64> = GucSetting::<f64>::new(1.2);
static BM25_B: GucSetting<f64> = GucSetting::<f64>::new(0.75);
static LOG_SEARCHES: GucSetting<bool> = GucSetting::<bool>::new(true);
static QUERY_CACHE_MS: GucSetting<i32> = GucSetting::<i32>::new(60_000);
static INGEST_WORKERS: GucSetting<i32> = GucSetting::<i32>::new(2);
static INGEST_NAPTIME_S: GucSetting<i32> = GucSetting::<i32>::new(30);
static INGEST_IDLE_EXIT_S: GucSetting<i32> = GucSetting::<i32>::new(60);
static INGEST_MAX_ATTEMPTS: GucSetting<i32> = GucSetting::<i32>::new(3);
static INGEST_RETRY_DELAY_MS: GucSetting<i32> = GucSetting::<i32>::new(10_000);
static LAUNCHER_DATABASE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"postgres"));
static CHAT_URL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static CHAT_MODEL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static CHAT_API_KEY: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static CHAT_API_KEY_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static CHAT_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(60_000);
static CHAT_MAX_TOKENS: GucSetting<i32> = GucSetting::<i32>::new(4096);
static CHAT_BREAKER_FAILURES: GucSetting<i32> = GucSetting::<i32>::new(5);
static CHAT_BREAKER_SECONDS: GucSetting<i32> = GucSetting::<i32>::new(30);
static JWT_ROLES: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static CLIP_MODEL_DIR: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static IMAGE_MIN_SIZE: GucSetting<i32> = GucSetting::<i32>::new(64);
static MAX_IMAGES: GucSetting<i32> = GucSetting::<i32>::new(100);

#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum DeviceSetting {
    #[name = c"auto"]
    Auto,
    #[name = c"cpu"]
    Cpu,
    #[name = c"cuda"]
    Cuda,
}

/// Model and runtime live beside the extension: `$sharedir/docchat/models/<name>/` and
/// `$libdir/docchat/`. `make install` puts them there. The worker loads the shipped default
/// model (docchat.models' default row) at start.
const SHIPPED_DEFAULT_MODEL: (&str, usize) = ("all-MiniLM-L6-v2-int8", 256);
pub const ORT_FILE: &str = "libonnxruntime.so.1.31.1";

mod limits;
mod table;

pub fn define() {
    table::define_all();
    // A misspelt docchat.* setting is an error, not a silent placeholder; placeholders a user
    // set before the library loaded are dropped.
    // SAFETY: called once per process from _PG_init, after every docchat setting is defined.
    unsafe { pg_sys::MarkGUCPrefixReserved(c"docchat".as_ptr()) };
}

/// The CLIP folder, when docchat.clip_model_dir is set.
pub fn clip_files() -> Option<docchat_core::clip::ClipFiles> {
    setting_path(&CLIP_MODEL_DIR).map(|dir| docchat_core::clip::ClipFiles { runtime: runtime_library(), dir })
}

fn image_limits() -> Option<ImageLimits> {
    let max_images = MAX_IMAGES.get() as usize;
    (clip_files().is_some() && max_images > 0).then(|| ImageLimits { min_side: IMAGE_MIN_SIZE.get() as u32, max_images })
}

pub struct SearchSettings {
    pub keyword_weight: f64,
    pub exact_search_limit: i32,
    pub log_searches: bool,
    pub bm25_k1: f64,
    pub bm25_b: f64,
}

pub fn search() -> SearchSettings {
    SearchSettings {
        keyword_weight: KEYWORD_WEIGHT.get(),
        exact_search_limit: EXACT_SEARCH_LIMIT.get(),
        log_searches: LOG_SEARCHES.get(),
        bm25_k1: BM25_K1.get(),
        bm25_b: BM25_B.get(),
    }
}

pub fn query_cache_window() -> std::time::Duration {
    std::time::Duration::from_millis(QUERY_CACHE_MS.get() as u64)
}

pub fn ingest_workers() -> i32 {
    INGEST_WORKERS.get()
}

pub fn ingest_naptime() -> std::time::Duration {
    std::time::Duration::from_secs(INGEST_NAPTIME_S.get() as u64)
}

pub fn ingest_idle_exit() -> std::time::Duration {
    std::time::Duration::from_secs(INGEST_IDLE_EXIT_S.get() as u64)
}

/// (max attempts, delay before the second attempt in ms) for documents queued now.
pub fn ingest_retries() -> (i32, i32) {
    (INGEST_MAX_ATTEMPTS.get(), INGEST_RETRY_DELAY_MS.get())
}

pub fn launcher_database() -> String {
    LAUNCHER_DATABASE.get().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "postgres".into())
}

pub struct ChatSettings {
    pub url: Option<String>,
    pub model: Option<String>,
    pub api_key: Option<String>,
    pub api_key_file: Option<PathBuf>,
    pub timeout: std::time::Duration,
    pub max_tokens: i32,
    pub breaker_failures: u64,
    pub breaker_cooldown: std::time::Duration,
    /// Whether this session waits as long as the server's configuration says: only then does a
    /// timeout say the endpoint is slow, rather than that the session asked for little time.
    pub timeout_is_the_servers: bool,
}

pub fn chat() -> ChatSettings {
    let text = |s: &GucSetting<Option<CString>>| s.get().map(|v| v.to_string_lossy().trim().to_string()).filter(|v| !v.is_empty());
    ChatSettings {
        url: text(&CHAT_URL),
        model: text(&CHAT_MODEL),
        api_key: text(&CHAT_API_KEY),
        api_key_file: setting_path(&CHAT_API_KEY_FILE),
        timeout: std::time::Duration::from_millis(CHAT_TIMEOUT_MS.get() as u64),
        max_tokens: CHAT_MAX_TOKENS.get(),
        breaker_failures: CHAT_BREAKER_FAILURES.get() as u64,
        breaker_cooldown: std::time::Duration::from_secs(CHAT_BREAKER_SECONDS.get() as u64),
        timeout_is_the_servers: CHAT_TIMEOUT_MS.get() >= configured_int(c"docchat.chat_timeout").unwrap_or(i32::MAX),
    }
}

/// An int setting's value from the server's configuration (postgresql.conf, ALTER SYSTEM, the
/// command line or ALTER DATABASE), never from SET or a role's own ALTER ROLE ... SET: those
/// leave the built-in default.
fn configured_int(name: &CStr) -> Option<i32> {
    let option = limits::int_option(name)?;
    // SAFETY: an entry of the GUC table, which lives as long as the process.
    unsafe {
        let trusted = (*option).gen_.reset_source <= pg_sys::GucSource::PGC_S_DATABASE;
        Some(if trusted { (*option).reset_val } else { (*option).boot_val })
    }
}

pub fn jwt_roles() -> Vec<String> {
    JWT_ROLES.get().map(|s| docchat_core::owner::parse_role_list(&s.to_string_lossy())).unwrap_or_default()
}

pub fn device() -> Device {
    match DEVICE.get() {
        DeviceSetting::Auto => Device::Auto,
        DeviceSetting::Cpu => Device::Cpu,
        DeviceSetting::Cuda => Device::Cuda,
    }
}

/// How a session that embeds by itself runs the model.
pub fn backend_run_options() -> RunOptions {
    RunOptions { device: device(), threads: THREADS.get() as usize }
}

/// How the model worker runs the model: all cores unless docchat.worker_threads says otherwise.
pub fn worker_run_options() -> RunOptions {
    let threads = match WORKER_THREADS.get() {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n as usize,
    };
    RunOptions { device: device(), threads }
}

pub fn batch_config() -> BatchConfig {
    BatchConfig {
        max_batch: MAX_BATCH.get() as usize,
        max_wait: std::time::Duration::from_millis(BATCH_WAIT_MS.get() as u64),
        max_tokens: BATCH_TOKENS.get() as usize,
    }
}

pub fn use_worker() -> bool {
    MODEL_WORKER.get()
}

pub fn worker_timeout() -> std::time::Duration {
    std::time::Duration::from_millis(WORKER_TIMEOUT_MS.get() as u64)
}

/// `max_seq_len`: the embedding model's input limit, special tokens included.
pub fn chunk_config(size: Option<i32>, overlap: Option<i32>, max_seq_len: usize) -> ChunkConfig {
    let non_negative = |v: i32| v.max(0) as usize;
    ChunkConfig {
        max_chars: non_negative(size.unwrap_or_else(|| CHUNK_SIZE.get())),
        overlap_chars: non_negative(overlap.unwrap_or_else(|| CHUNK_OVERLAP.get())),
        max_tokens: max_seq_len - SPECIAL_TOKENS,
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
        ocr_languages: languages.unwrap_or_else(|| defaults::OCR_LANGUAGES.to_string_lossy().into_owned()),
        password: password.map(str::to_owned),
        images: image_limits(),
    }
}

fn setting_path(setting: &GucSetting<Option<CString>>) -> Option<PathBuf> {
    setting.get().map(|s| PathBuf::from(s.to_string_lossy().into_owned())).filter(|p| !p.as_os_str().is_empty())
}

/// Where relative model folders are.
pub fn models_dir() -> PathBuf {
    setting_path(&MODELS_DIR).unwrap_or_else(|| share_dir().join("docchat/models"))
}

pub fn runtime_library() -> PathBuf {
    setting_path(&ONNXRUNTIME_LIBRARY).unwrap_or_else(|| lib_dir().join("docchat").join(ORT_FILE))
}

/// How long reading one document may take (docchat.parse_timeout), if limited.
pub fn parse_timeout() -> Option<std::time::Duration> {
    Some(PARSE_TIMEOUT_S.get()).filter(|s| *s > 0).map(|s| std::time::Duration::from_secs(s as u64))
}

/// The model the worker loads before anyone asks.
pub fn shipped_default_model() -> ModelKey {
    let (name, max_seq_len) = SHIPPED_DEFAULT_MODEL;
    ModelKey::sentence(models_dir().join(name).to_string_lossy(), max_seq_len)
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
