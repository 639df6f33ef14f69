//! The model worker: one background process per cluster owns the embedding models and serves
//! every session over a Unix socket in the data directory, batching concurrent requests.
//! Postgres is only touched from this process's main thread; the serving threads are plain Rust.
use crate::settings;
use docchat_core::embed::RunOptions;
use docchat_core::serve::models::WorkerModel;
use docchat_core::serve::server::{self, Lane};
use docchat_core::serve::stats::{LoadedModel, Stats};
use docchat_core::serve::wire::ModelKey;
use docchat_core::serve::SOCKET;
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags};
use pgrx::prelude::*;
use serde_json::json;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const BACKEND_TYPE: &str = "docchat model worker";

/// ONNX Runtime threads of the query lane: one text needs no more, and it leaves the rest to
/// ingests.
const QUERY_THREADS: usize = 1;

static PRELOADED: AtomicBool = AtomicBool::new(false);

/// Called from _PG_init: registers the worker when docchat is in shared_preload_libraries.
/// Sessions forked afterwards inherit the flag and use the worker.
pub fn register() {
    // SAFETY: a flag the postmaster sets while it loads shared_preload_libraries.
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    PRELOADED.store(true, Ordering::Relaxed);
    BackgroundWorkerBuilder::new(BACKEND_TYPE)
        .set_type(BACKEND_TYPE)
        .set_library("docchat")
        .set_function("docchat_model_worker_main")
        // A (database-less) connection makes it visible in pg_stat_activity.
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::ConsistentState)
        .set_restart_time(Some(Duration::from_secs(1)))
        .load();
}

pub fn preloaded() -> bool {
    PRELOADED.load(Ordering::Relaxed)
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn docchat_model_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi(None, None);
    // SAFETY: registered once, in this process; runs after shared memory is released.
    unsafe { pg_sys::on_proc_exit(Some(exit_without_destructors), pg_sys::Datum::from(0)) };

    let run = settings::worker_run_options();
    let runtime = settings::runtime_library();
    let stats = Arc::new(Stats::default());
    let load = {
        let (runtime, stats) = (runtime.clone(), stats.clone());
        move |key: &ModelKey, lane: Lane| {
            let started = Instant::now();
            let opts = match lane {
                Lane::Queries => RunOptions { threads: QUERY_THREADS, ..run },
                Lane::Bulk => run,
            };
            let model = WorkerModel::load(key, &runtime, opts)?;
            stats.model_loaded(LoadedModel {
                dir: key.dir.clone(),
                dimension: model.dimension(),
                device: model.device(),
                load_ms: started.elapsed().as_millis() as u64,
            });
            Ok(model)
        }
    };
    let server = server::start(Path::new(SOCKET), settings::batch_config(), stats, load)
        .unwrap_or_else(|e| error!("docchat model worker: cannot listen on {SOCKET}: {e}"));
    let describe = |server: &server::Server| {
        let batch = *server.batch.lock();
        *server.info.lock() = json!({
            "device_setting": format!("{:?}", run.device).to_lowercase(),
            "threads": run.threads,
            "query_threads": QUERY_THREADS,
            "max_batch": batch.max_batch,
            "batch_wait_ms": batch.max_wait.as_millis() as u64,
            "batch_tokens": batch.max_tokens,
            "runtime_library": runtime.display().to_string(),
        });
    };
    describe(&server);
    server.preload(settings::shipped_default_model());
    log!("docchat model worker: serving on {SOCKET} ({} threads, device {:?})", run.threads, run.device);

    while BackgroundWorker::wait_latch(Some(Duration::from_secs(1))) {
        if BackgroundWorker::sighup_received() {
            // SAFETY: the documented way for a background worker to reread postgresql.conf.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
            *server.batch.lock() = settings::batch_config();
            describe(&server);
        }
        if !server.alive() {
            error!("docchat model worker: the batcher thread stopped; restarting");
        }
    }
    // SIGTERM (pg_terminate_backend, shutdown) or postmaster death. No new connections from
    // here on: sessions that reconnect wait for the next worker. Exit status 1 means the
    // postmaster starts that worker after restart_time, unless the server is shutting down.
    let _ = std::fs::remove_file(SOCKET);
    unsafe { pg_sys::proc_exit(1) }
}

/// Last step of proc_exit: leave without running C++ static destructors, which ONNX Runtime's
/// still-running thread pools would race with.
unsafe extern "C-unwind" fn exit_without_destructors(code: std::ffi::c_int, _arg: pg_sys::Datum) {
    // SAFETY: shared memory is already detached; nothing else needs to run.
    unsafe { libc::_exit(code) }
}
