//! docchat's settings (GUCs) and the paths and sizes derived from them.
use docchat_core::chunk::ChunkConfig;
use docchat_core::embed::{Device, RunOptions, SPECIAL_TOKENS};
use docchat_core::serve::wire::ModelKey;
use docchat_core::serve::batcher::BatchConfig;
use docchat_core::parse::embedded_images::ImageLimits;
use docchat_core::parse::Options;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};
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
static PARSE_TIMEOUT_S: GucSetting<i32> = GucSetting::<i32>::new(600);
pub static OCR_LANGUAGES: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"eng"));
pub static MODELS_DIR: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static MODEL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static ONNXRUNTIME_LIBRARY: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static DEVICE: GucSetting<DeviceSetting> = GucSetting::<DeviceSetting>::new(DeviceSetting::Auto);
pub static WORKER_THREADS: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static MAX_BATCH: GucSetting<i32> = GucSetting::<i32>::new(32);
pub static BATCH_WAIT_MS: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static MODEL_WORKER: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static WORKER_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(30_000);
// Read by docchat_search (SQL) through docchat.search_settings().
static KEYWORD_WEIGHT: GucSetting<f64> = GucSetting::<f64>::new(1.0);
static EXACT_SEARCH_LIMIT: GucSetting<i32> = GucSetting::<i32>::new(10_000);
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
    define_limit::<0>();
    define_limit::<1>();
    define_limit::<2>();
    define_limit::<3>();
    define_limit::<4>();
    define_limit::<5>();
    define_limit::<6>();
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
        c"docchat.models_dir",
        c"Folder that the relative model folders of docchat.models are in.",
        c"Default: $sharedir/docchat/models.",
        &MODELS_DIR,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"docchat.model",
        c"Embedding model used when a call names none (a name in docchat.models).",
        c"Empty: the model docchat.models marks as default.",
        &MODEL,
        GucContext::Userset,
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
    // Whose claims count decides who may act as whom: superuser only.
    GucRegistry::define_string_guc(
        c"docchat.jwt_roles",
        c"Roles that act for the subject of request.jwt.claims (e.g. authenticated), separated by commas.",
        c"Their rows belong to jwt:<sub>. Every other role owns rows as itself, whatever claims it sets.",
        &JWT_ROLES,
        GucContext::Suset,
        GucFlags::default(),
    );
    define_serving();
    define_search();
    define_chat();
    define_queue();
    define_images();
    // A misspelt docchat.* setting is an error, not a silent placeholder; placeholders a user
    // set before the library loaded are dropped.
    // SAFETY: called once per process from _PG_init, after every docchat setting is defined.
    unsafe { pg_sys::MarkGUCPrefixReserved(c"docchat".as_ptr()) };
}

/// A resource limit. Anyone may lower one for a session; only the server's configuration, a
/// superuser, or a superuser's ALTER ROLE/DATABASE SET may raise it (see check_limit).
struct Limit {
    name: &'static CStr,
    short: &'static CStr,
    setting: &'static GucSetting<i32>,
    max: i32,
    unit: GucFlags,
    /// 0 means "no limit" (the timeouts), so it counts as above any other value.
    zero_is_none: bool,
}

const fn limit(name: &'static CStr, short: &'static CStr, setting: &'static GucSetting<i32>, max: i32) -> Limit {
    Limit { name, short, setting, max, unit: GucFlags::empty(), zero_is_none: false }
}

const LIMITS: [Limit; 7] = [
    Limit { unit: GucFlags::UNIT_MB, ..limit(c"docchat.max_document_size", c"Largest document docchat_ingest accepts.", &MAX_DOCUMENT_MB, 1024) },
    limit(c"docchat.max_pages", c"Most pages (or slides, sheets) a document may have.", &MAX_PAGES, 1_000_000),
    Limit { unit: GucFlags::UNIT_MB,
            ..limit(c"docchat.max_decompressed_size", c"Most a document's compressed parts may expand to (zip bombs stop here).", &MAX_DECOMPRESSED_MB, 65_536) },
    limit(c"docchat.max_ocr_pages", c"Most pages of one document that go through OCR.", &MAX_OCR_PAGES, 1_000_000),
    Limit { unit: GucFlags::UNIT_MS, zero_is_none: true,
            ..limit(c"docchat.ocr_page_timeout", c"Most time OCR may spend on one page (0: no limit).", &OCR_PAGE_TIMEOUT_MS, 3_600_000) },
    limit(c"docchat.max_images", c"Most pictures stored from one document; 0 turns picture extraction off.", &MAX_IMAGES, 100_000),
    Limit { unit: GucFlags::UNIT_S, zero_is_none: true,
            ..limit(c"docchat.parse_timeout", c"Most time reading one document may take, OCR included (0: no limit).", &PARSE_TIMEOUT_S, 86_400) },
];

fn define_limit<const I: usize>() {
    let l = &LIMITS[I];
    // SAFETY: static strings and setting; called from _PG_init.
    unsafe {
        pg_sys::DefineCustomIntVariable(
            l.name.as_ptr(),
            l.short.as_ptr(),
            c"Users may lower it; raising it takes a superuser (postgresql.conf, ALTER SYSTEM, or ALTER ROLE/DATABASE ... SET by a superuser).".as_ptr(),
            l.setting.as_ptr(),
            l.setting.get(),
            0,
            l.max,
            GucContext::Userset as isize as _,
            l.unit.bits(),
            Some(check_limit::<I>),
            None,
            None,
        )
    }
}

/// The GUC table's entry of one of docchat's int settings.
fn int_option(name: &CStr) -> Option<*mut pg_sys::config_int> {
    // SAFETY: find_option only reads the GUC table; the type is checked before the cast.
    unsafe {
        let option = pg_sys::find_option(name.as_ptr(), false, true, pg_sys::DEBUG1 as i32);
        (!option.is_null() && (*option).vartype == pg_sys::config_type::PGC_INT).then(|| option.cast())
    }
}

/// A value above the session's reset value (what the server and a superuser configured) is
/// refused unless a superuser sets it.
unsafe extern "C-unwind" fn check_limit<const I: usize>(newval: *mut i32, _extra: *mut *mut std::ffi::c_void, source: pg_sys::GucSource::Type) -> bool {
    // Settings from the configuration files and from pg_db_role_setting (validated against
    // the privileges of whoever stored them) are trusted.
    if source <= pg_sys::GucSource::PGC_S_DATABASE_USER || pg_sys::superuser() {
        return true;
    }
    let l = &LIMITS[I];
    let Some(option) = int_option(l.name) else { return false };
    let ceiling = (*option).reset_val;
    let rank = |v: i32| if l.zero_is_none && v == 0 { i64::MAX } else { v as i64 };
    if rank(*newval) <= rank(ceiling) {
        return true;
    }
    let detail = CString::new(format!("{} is {ceiling} here; only a superuser may raise it", l.name.to_string_lossy())).expect("no NUL");
    pg_sys::GUC_check_errcode(pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE as i32);
    pg_sys::GUC_check_errdetail_string = pg_sys::pstrdup(detail.as_ptr());
    false
}

/// Pictures: the CLIP model and which pictures of a document are stored.
fn define_images() {
    // A model folder is code the server loads: superuser only.
    GucRegistry::define_string_guc(
        c"docchat.clip_model_dir",
        c"Folder with the CLIP model: visual.onnx, textual.onnx and bpe_simple_vocab_16e6.txt.gz (or merges.txt).",
        c"Empty: no CLIP, and no pictures are taken from documents. The README shows how to export ViT-B/32.",
        &CLIP_MODEL_DIR,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"docchat.image_min_size",
        c"Pictures in documents narrower or shorter than this (pixels) are not stored.",
        c"Icons, bullets and rules are small; an ingested image file is stored whatever its size.",
        &IMAGE_MIN_SIZE,
        1,
        100_000,
        GucContext::Userset,
        GucFlags::default(),
    );
}

/// The CLIP folder, when docchat.clip_model_dir is set.
pub fn clip_files() -> Option<docchat_core::clip::ClipFiles> {
    setting_path(&CLIP_MODEL_DIR).map(|dir| docchat_core::clip::ClipFiles { runtime: runtime_library(), dir })
}

fn image_limits() -> Option<ImageLimits> {
    let max_images = MAX_IMAGES.get() as usize;
    (clip_files().is_some() && max_images > 0).then(|| ImageLimits { min_side: IMAGE_MIN_SIZE.get() as u32, max_images })
}

/// Background ingest: workers per database, how long they linger, retries of failed jobs.
fn define_queue() {
    let ints = [
        (c"docchat.ingest_workers", c"Ingest workers per database that docchat_ingest_async may start.", &INGEST_WORKERS, 1, 64, GucContext::Sighup, GucFlags::default()),
        (c"docchat.ingest_naptime", c"How often the ingest launcher looks for databases whose queue has no worker.", &INGEST_NAPTIME_S, 1, 86_400, GucContext::Sighup, GucFlags::UNIT_S),
        (c"docchat.ingest_idle_exit", c"An ingest worker with nothing pending for this long exits.", &INGEST_IDLE_EXIT_S, 1, 86_400, GucContext::Sighup, GucFlags::UNIT_S),
        (c"docchat.ingest_max_attempts", c"Attempts at a queued document before it is failed for good.", &INGEST_MAX_ATTEMPTS, 1, 100, GucContext::Suset, GucFlags::default()),
        (c"docchat.ingest_retry_delay", c"Wait before the second attempt; each later one waits four times longer.", &INGEST_RETRY_DELAY_MS, 0, 86_400_000, GucContext::Suset, GucFlags::UNIT_MS),
    ];
    for (name, short, setting, min, max, context, flags) in ints {
        GucRegistry::define_int_guc(name, short, c"", setting, min, max, context, flags);
    }
    GucRegistry::define_string_guc(
        c"docchat.launcher_database",
        c"Database the ingest launcher connects to, to list the others.",
        c"",
        &LAUNCHER_DATABASE,
        GucContext::Postmaster,
        GucFlags::default(),
    );
}

pub fn log_searches() -> bool {
    LOG_SEARCHES.get()
}

pub struct SearchSettings {
    pub keyword_weight: f64,
    pub exact_search_limit: i32,
    pub log_searches: bool,
}

pub fn search() -> SearchSettings {
    SearchSettings { keyword_weight: KEYWORD_WEIGHT.get(), exact_search_limit: EXACT_SEARCH_LIMIT.get(), log_searches: LOG_SEARCHES.get() }
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

/// Model serving: where models run and how the worker batches. Device and worker threads are
/// read when the worker starts; batch size and wait on every reload.
fn define_serving() {
    GucRegistry::define_enum_guc(
        c"docchat.device",
        c"Where embedding models run: auto, cpu or cuda.",
        c"auto uses CUDA when ONNX Runtime was built with it (onnxruntime-gpu) and a GPU answers, else the CPU.",
        &DEVICE,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"docchat.worker_threads",
        c"ONNX Runtime intra-op threads of the model worker (0: one per CPU core).",
        c"",
        &WORKER_THREADS,
        0,
        256,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"docchat.max_batch",
        c"Most texts the model worker embeds in one run.",
        c"Requests from concurrent sessions share runs up to this size.",
        &MAX_BATCH,
        1,
        1024,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"docchat.batch_wait",
        c"How long a lone request waits for others to batch with.",
        c"0: never wait; requests that arrive during a run are batched together anyway.",
        &BATCH_WAIT_MS,
        0,
        1000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_bool_guc(
        c"docchat.model_worker",
        c"Embed through the model worker when docchat is preloaded.",
        c"off: every session loads its own copy of the model.",
        &MODEL_WORKER,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"docchat.worker_timeout",
        c"How long a session waits for the model worker to (re)start before giving up.",
        c"",
        &WORKER_TIMEOUT_MS,
        0,
        3_600_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
}

fn define_search() {
    GucRegistry::define_float_guc(
        c"docchat.keyword_weight",
        c"Weight of the keyword side in hybrid search's reciprocal rank fusion (the semantic side has 1).",
        c"",
        &KEYWORD_WEIGHT,
        0.0,
        100.0,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"docchat.exact_search_limit",
        c"Up to this many visible chunks of a model, semantic search scans them exactly instead of using the HNSW index.",
        c"Exact scans never lose the caller's rows among other owners' in the index.",
        &EXACT_SEARCH_LIMIT,
        0,
        10_000_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"docchat.query_cache_window",
        c"A session reuses the vector of a query it embedded this recently (0: never).",
        c"",
        &QUERY_CACHE_MS,
        0,
        86_400_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_bool_guc(
        c"docchat.log_searches",
        c"Record every docchat_search call in docchat.searches.",
        c"",
        &LOG_SEARCHES,
        GucContext::Userset,
        GucFlags::default(),
    );
}

/// The chat endpoint. The URL is superuser-only because the API key is sent to it; the key is
/// superuser-only and hidden from everyone else (SHOW, pg_settings).
fn define_chat() {
    let string_gucs = [
        (c"docchat.chat_url", c"API base of the OpenAI-compatible chat-completions endpoint docchat_chat calls, e.g. https://api.openai.com/v1.",
         c"The full .../chat/completions address works too. Superuser only: the API key is sent there.", &CHAT_URL, GucContext::Suset, GucFlags::default()),
        (c"docchat.chat_model", c"Model name docchat_chat asks the endpoint for.", c"", &CHAT_MODEL, GucContext::Userset, GucFlags::default()),
        (c"docchat.chat_api_key", c"Bearer token for the chat endpoint.", c"Prefer docchat.chat_api_key_file, which keeps the key out of the configuration.",
         &CHAT_API_KEY, GucContext::Suset, GucFlags::SUPERUSER_ONLY | GucFlags::NO_SHOW_ALL | GucFlags::NO_RESET_ALL),
        (c"docchat.chat_api_key_file", c"Server-side file holding the chat endpoint's API key, read at every call.",
         c"Used when docchat.chat_api_key is empty.", &CHAT_API_KEY_FILE, GucContext::Suset, GucFlags::default()),
    ];
    for (name, short, long, setting, context, flags) in string_gucs {
        GucRegistry::define_string_guc(name, short, long, setting, context, flags);
    }
    GucRegistry::define_int_guc(
        c"docchat.chat_timeout",
        c"How long docchat_chat waits for the endpoint's whole answer.",
        c"",
        &CHAT_TIMEOUT_MS,
        100,
        3_600_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"docchat.chat_max_tokens",
        c"Largest max_tokens a docchat_chat call may ask the endpoint for.",
        c"Superuser only: answers cost the endpoint's owner. Calls without max_tokens leave the length to the endpoint.",
        &CHAT_MAX_TOKENS,
        1,
        1_000_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"docchat.chat_breaker_failures",
        c"After this many endpoint failures in a row, docchat_chat stops calling the endpoint for docchat.chat_breaker_cooldown.",
        c"Counted across all sessions when docchat is preloaded. 0 turns the breaker off.",
        &CHAT_BREAKER_FAILURES,
        0,
        1000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"docchat.chat_breaker_cooldown",
        c"How long the open breaker refuses docchat_chat calls.",
        c"",
        &CHAT_BREAKER_SECONDS,
        1,
        86_400,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
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
    let text = |s: &GucSetting<Option<CString>>| {
        s.get().map(|v| v.to_string_lossy().trim().to_string()).filter(|v| !v.is_empty())
    };
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
    let option = int_option(name)?;
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
    BatchConfig { max_batch: MAX_BATCH.get() as usize, max_wait: std::time::Duration::from_millis(BATCH_WAIT_MS.get() as u64) }
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
        ocr_languages: languages.unwrap_or_else(|| "eng".into()),
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
