//! Every docchat setting in one table: name, descriptions, who may set it, unit and range.
//! Defaults are the initial values of the statics in `mod.rs`; the limits (users may only lower
//! them) are in `limits.rs`.
use super::*;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};

enum Value {
    Int(&'static GucSetting<i32>, i32, i32),
    Real(&'static GucSetting<f64>, f64, f64),
    Bool(&'static GucSetting<bool>),
    Text(&'static GucSetting<Option<CString>>),
    Device(&'static GucSetting<DeviceSetting>),
}

struct Def {
    name: &'static CStr,
    short: &'static CStr,
    long: &'static CStr,
    value: Value,
    context: GucContext,
    flags: GucFlags,
}

const fn def(name: &'static CStr, short: &'static CStr, long: &'static CStr, value: Value, context: GucContext) -> Def {
    Def { name, short, long, value, context, flags: GucFlags::empty() }
}

impl Def {
    const fn flags(mut self, flags: GucFlags) -> Def {
        self.flags = flags;
        self
    }
}

use GucContext::{Postmaster, Sighup, Suset, Userset};
use Value::{Bool, Device, Int, Real, Text};

fn table() -> Vec<Def> {
    vec![
        def(
            c"docchat.chunk_size",
            c"Target chunk length in characters.",
            c"Chunks are also capped at the embedding model's sequence length (254 word-pieces).",
            Int(&CHUNK_SIZE, 20, 1_000_000),
            Userset,
        ),
        def(
            c"docchat.chunk_overlap",
            c"Characters that consecutive chunks share.",
            c"Must be smaller than docchat.chunk_size.",
            Int(&CHUNK_OVERLAP, 0, 1_000_000),
            Userset,
        ),
        def(
            c"docchat.threads",
            c"ONNX Runtime intra-op threads per embedding session.",
            c"Takes effect when a session next loads the model.",
            Int(&THREADS, 1, 64),
            Suset,
        ),
        def(
            c"docchat.ocr_languages",
            c"Tesseract languages for OCR, e.g. eng or eng+deu.",
            c"Each needs its traineddata installed (Debian: tesseract-ocr-<lang>).",
            Text(&OCR_LANGUAGES),
            Userset,
        ),
        // Paths load code and data into the server: superuser only.
        def(
            c"docchat.models_dir",
            c"Folder that the relative model folders of docchat.models are in.",
            c"Default: $sharedir/docchat/models.",
            Text(&MODELS_DIR),
            Suset,
        ),
        def(
            c"docchat.model",
            c"Embedding model used when a call names none (a name in docchat.models).",
            c"Empty: the model docchat.models marks as default.",
            Text(&MODEL),
            Userset,
        ),
        def(
            c"docchat.onnxruntime_library",
            c"Path of the ONNX Runtime shared library (1.31 or newer).",
            c"Default: $libdir/docchat/libonnxruntime.so.1.31.1. Read once per backend.",
            Text(&ONNXRUNTIME_LIBRARY),
            Suset,
        ),
        // Whose claims count decides who may act as whom: superuser only.
        def(
            c"docchat.jwt_roles",
            c"Roles that act for the subject of request.jwt.claims (e.g. authenticated), separated by commas.",
            c"Their rows belong to jwt:<sub>. Every other role owns rows as itself, whatever claims it sets.",
            Text(&JWT_ROLES),
            Suset,
        ),
        // Model serving: device and worker threads are read when the worker starts; batch size and wait on every reload.
        def(
            c"docchat.device",
            c"Where embedding models run: auto, cpu or cuda.",
            c"auto uses CUDA when ONNX Runtime was built with it (onnxruntime-gpu) and a GPU answers, else the CPU.",
            Device(&DEVICE),
            Postmaster,
        ),
        def(
            c"docchat.worker_threads",
            c"ONNX Runtime intra-op threads of the model worker (0: one per CPU core).",
            c"",
            Int(&WORKER_THREADS, 0, 256),
            Postmaster,
        ),
        def(
            c"docchat.max_batch",
            c"Most texts the model worker embeds in one run.",
            c"Requests from concurrent sessions share runs up to this size.",
            Int(&MAX_BATCH, 1, 1024),
            Sighup,
        ),
        def(
            c"docchat.batch_wait",
            c"How long a lone request waits for others to batch with.",
            c"0: never wait; requests that arrive during a run are batched together anyway.",
            Int(&BATCH_WAIT_MS, 0, 1000),
            Sighup,
        )
        .flags(GucFlags::UNIT_MS),
        def(
            c"docchat.batch_tokens",
            c"Most padded tokens (texts times the longest) the model worker embeds in one run (0: no cap).",
            c"Search queries have a lane of their own; this keeps the ingest lane's runs short.",
            Int(&BATCH_TOKENS, 0, 1_000_000),
            Sighup,
        ),
        def(
            c"docchat.model_worker",
            c"Embed through the model worker when docchat is preloaded.",
            c"off: every session loads its own copy of the model.",
            Bool(&MODEL_WORKER),
            Suset,
        ),
        def(
            c"docchat.worker_timeout",
            c"How long a session waits for the model worker to (re)start before giving up.",
            c"",
            Int(&WORKER_TIMEOUT_MS, 0, 3_600_000),
            Userset,
        )
        .flags(GucFlags::UNIT_MS),
        // Search.
        def(
            c"docchat.keyword_weight",
            c"Weight of the keyword side in hybrid search (the semantic side has 1): the score is the weighted mean of both sides' scores, each scaled to 0..1 over its hits.",
            c"",
            Real(&KEYWORD_WEIGHT, 0.0, 100.0),
            Userset,
        ),
        def(
            c"docchat.exact_search_limit",
            c"Up to this many visible chunks of a model, semantic search scans them exactly instead of using the HNSW index.",
            c"Exact scans never lose the caller's rows among other owners' in the index.",
            Int(&EXACT_SEARCH_LIMIT, 0, 10_000_000),
            Userset,
        ),
        def(
            c"docchat.bm25_k1",
            c"BM25 term-frequency saturation of keyword search.",
            c"0: a term counts once however often it occurs.",
            Real(&BM25_K1, 0.0, 10.0),
            Userset,
        ),
        def(c"docchat.bm25_b", c"BM25 length normalisation of keyword search (0: none, 1: full).", c"", Real(&BM25_B, 0.0, 1.0), Userset),
        def(
            c"docchat.query_cache_window",
            c"A session reuses the vector of a query it embedded this recently (0: never).",
            c"",
            Int(&QUERY_CACHE_MS, 0, 86_400_000),
            Userset,
        )
        .flags(GucFlags::UNIT_MS),
        def(c"docchat.log_searches", c"Record every docchat_search call in docchat.searches.", c"", Bool(&LOG_SEARCHES), Userset),
        // The chat endpoint. The URL is superuser-only because the API key is sent to it; the
        // key is superuser-only and hidden from everyone else (SHOW, pg_settings).
        def(
            c"docchat.chat_url",
            c"API base of the OpenAI-compatible chat-completions endpoint docchat_chat calls, e.g. https://api.openai.com/v1.",
            c"The full .../chat/completions address works too. Superuser only: the API key is sent there.",
            Text(&CHAT_URL),
            Suset,
        ),
        def(c"docchat.chat_model", c"Model name docchat_chat asks the endpoint for.", c"", Text(&CHAT_MODEL), Userset),
        def(
            c"docchat.chat_api_key",
            c"Bearer token for the chat endpoint.",
            c"Prefer docchat.chat_api_key_file, which keeps the key out of the configuration.",
            Text(&CHAT_API_KEY),
            Suset,
        )
        .flags(GucFlags::SUPERUSER_ONLY.union(GucFlags::NO_SHOW_ALL).union(GucFlags::NO_RESET_ALL)),
        def(
            c"docchat.chat_api_key_file",
            c"Server-side file holding the chat endpoint's API key, read at every call.",
            c"Used when docchat.chat_api_key is empty.",
            Text(&CHAT_API_KEY_FILE),
            Suset,
        ),
        def(
            c"docchat.chat_timeout",
            c"How long docchat_chat waits for the endpoint's whole answer.",
            c"",
            Int(&CHAT_TIMEOUT_MS, 100, 3_600_000),
            Userset,
        )
        .flags(GucFlags::UNIT_MS),
        def(
            c"docchat.chat_max_tokens",
            c"Largest max_tokens a docchat_chat call may ask the endpoint for.",
            c"Superuser only: answers cost the endpoint's owner. Calls without max_tokens leave the length to the endpoint.",
            Int(&CHAT_MAX_TOKENS, 1, 1_000_000),
            Suset,
        ),
        def(
            c"docchat.chat_breaker_failures",
            c"After this many endpoint failures in a row, docchat_chat stops calling the endpoint for docchat.chat_breaker_cooldown.",
            c"Counted across all sessions when docchat is preloaded. 0 turns the breaker off.",
            Int(&CHAT_BREAKER_FAILURES, 0, 1000),
            Suset,
        ),
        def(
            c"docchat.chat_breaker_cooldown",
            c"How long the open breaker refuses docchat_chat calls.",
            c"",
            Int(&CHAT_BREAKER_SECONDS, 1, 86_400),
            Suset,
        )
        .flags(GucFlags::UNIT_S),
        // Background ingest: workers per database, how long they linger, retries of failed jobs.
        def(c"docchat.ingest_workers", c"Ingest workers per database that docchat_ingest_async may start.", c"", Int(&INGEST_WORKERS, 1, 64), Sighup),
        def(
            c"docchat.ingest_naptime",
            c"How often the ingest launcher looks for databases whose queue has no worker.",
            c"",
            Int(&INGEST_NAPTIME_S, 1, 86_400),
            Sighup,
        )
        .flags(GucFlags::UNIT_S),
        def(
            c"docchat.ingest_idle_exit",
            c"An ingest worker with nothing pending for this long exits.",
            c"",
            Int(&INGEST_IDLE_EXIT_S, 1, 86_400),
            Sighup,
        )
        .flags(GucFlags::UNIT_S),
        def(
            c"docchat.ingest_max_attempts",
            c"Attempts at a queued document before it is failed for good.",
            c"",
            Int(&INGEST_MAX_ATTEMPTS, 1, 100),
            Suset,
        ),
        def(
            c"docchat.ingest_retry_delay",
            c"Wait before the second attempt; each later one waits four times longer.",
            c"",
            Int(&INGEST_RETRY_DELAY_MS, 0, 86_400_000),
            Suset,
        )
        .flags(GucFlags::UNIT_MS),
        def(
            c"docchat.launcher_database",
            c"Database the ingest launcher connects to, to list the others.",
            c"",
            Text(&LAUNCHER_DATABASE),
            Postmaster,
        ),
        // Pictures. A model folder is code the server loads: superuser only.
        def(
            c"docchat.clip_model_dir",
            c"Folder with the CLIP model: visual.onnx, textual.onnx and bpe_simple_vocab_16e6.txt.gz (or merges.txt).",
            c"Empty: no CLIP, and no pictures are taken from documents. The README shows how to export ViT-B/32.",
            Text(&CLIP_MODEL_DIR),
            Suset,
        ),
        def(
            c"docchat.image_min_size",
            c"Pictures in documents narrower or shorter than this (pixels) are not stored.",
            c"Icons, bullets and rules are small; an ingested image file is stored whatever its size.",
            Int(&IMAGE_MIN_SIZE, 1, 100_000),
            Userset,
        ),
    ]
}

pub(super) fn define_all() {
    for d in table() {
        let Def { name, short, long, value, context, flags } = d;
        match value {
            Int(s, min, max) => GucRegistry::define_int_guc(name, short, long, s, min, max, context, flags),
            Real(s, min, max) => GucRegistry::define_float_guc(name, short, long, s, min, max, context, flags),
            Bool(s) => GucRegistry::define_bool_guc(name, short, long, s, context, flags),
            Text(s) => GucRegistry::define_string_guc(name, short, long, s, context, flags),
            Device(s) => GucRegistry::define_enum_guc(name, short, long, s, context, flags),
        }
    }
    super::limits::define();
}
