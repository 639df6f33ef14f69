//! The processes behind docchat_ingest_async. Each database gets up to docchat.ingest_workers
//! dynamic background workers (`docchat ingest worker`), started by the session that queues a
//! document and by the launcher (`docchat ingest launcher`, with the server), which looks every
//! docchat.ingest_naptime for databases whose queue has no worker, after a restart too.
//! A worker leaves after docchat.ingest_idle_exit with nothing pending.
use crate::ingest::job::{in_transaction, run_next_job};
use crate::settings;
use pgrx::bgworkers::{BackgroundWorkerBuilder, BgWorkerStartTime};
use pgrx::prelude::*;
use std::time::{Duration, Instant};

pub const WORKER_TYPE: &str = "docchat ingest worker";
const LAUNCHER_TYPE: &str = "docchat ingest launcher";
const POLL: Duration = Duration::from_millis(200);

/// From _PG_init, when preloading.
pub fn register_launcher() {
    BackgroundWorkerBuilder::new(LAUNCHER_TYPE)
        .set_type(LAUNCHER_TYPE)
        .set_library("docchat")
        .set_function("docchat_ingest_launcher_main")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

/// When this session last started workers: a started worker takes a moment to show up in
/// pg_stat_activity, so a burst of calls would otherwise start workers for every call.
static LAST_START: parking_lot::Mutex<Option<Instant>> = parking_lot::Mutex::new(None);
const START_SPACING: Duration = Duration::from_secs(2);
/// Marks the workers the launcher starts to look for queued documents.
const SWEEP: &str = "sweep";

/// From a session that queued a document: workers for its database, if it has too few. It runs
/// with definer rights (docchat_ingest_async), so it counts every role's workers.
pub fn ensure_workers() {
    let mut last = LAST_START.lock();
    if last.is_some_and(|t| t.elapsed() < START_SPACING) {
        return;
    }
    // SAFETY: the id of the database this backend is connected to.
    let database = unsafe { pg_sys::MyDatabaseId };
    let running = Spi::get_one_with_args::<i64>(
        &format!("SELECT count(*) FROM pg_stat_activity WHERE backend_type = '{WORKER_TYPE}' AND datid = $1"),
        &[database.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(0);
    if running < settings::ingest_workers() as i64 {
        *last = Some(Instant::now());
    }
    for _ in running..settings::ingest_workers() as i64 {
        if !start_worker(database, "") {
            warning!("docchat: no background worker slot is free (max_worker_processes); the document stays queued until one is");
            break;
        }
    }
}

/// `extra` is SWEEP for the launcher's workers.
fn start_worker(database: pg_sys::Oid, extra: &str) -> bool {
    BackgroundWorkerBuilder::new(WORKER_TYPE)
        .set_type(WORKER_TYPE)
        .set_library("docchat")
        .set_function("docchat_ingest_worker_main")
        .set_argument(Some(pg_sys::Datum::from(u32::from(database))))
        .set_extra(extra)
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(None)
        .load_dynamic()
        .is_ok()
}

// PostgreSQL 18 names the backend's pqsignal pqsignal_be (a macro keeps the old name in C).
#[cfg(not(feature = "pg18"))]
use pg_sys::pqsignal;
#[cfg(feature = "pg18")]
use pg_sys::pqsignal_be as pqsignal;

// The C handlers themselves (pg_sys wraps them as Rust functions, which signals cannot call).
unsafe extern "C-unwind" {
    #[link_name = "die"]
    fn pg_die(signal: libc::c_int);
    #[link_name = "SignalHandlerForConfigReload"]
    fn pg_reload_handler(signal: libc::c_int);
}

/// Postgres' own handlers: SIGTERM ends the process at the next interrupt check (mid-job too,
/// the job is retried), SIGHUP rereads the configuration.
fn attach_signals() {
    // SAFETY: standard handlers, installed before signals are unblocked.
    unsafe {
        pqsignal(libc::SIGHUP, Some(pg_reload_handler));
        pqsignal(libc::SIGTERM, Some(pg_die));
        pg_sys::BackgroundWorkerUnblockSignals();
    }
}

/// Sleeps until the timeout or a latch set; serves SIGTERM (exits) and SIGHUP.
fn nap(timeout: Duration) {
    // SAFETY: the process latch, main thread.
    unsafe {
        pg_sys::WaitLatch(
            pg_sys::MyLatch,
            (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
            timeout.as_millis() as libc::c_long,
            pg_sys::PG_WAIT_EXTENSION,
        );
        pg_sys::ResetLatch(pg_sys::MyLatch);
    }
    pg_sys::check_for_interrupts!();
    // SAFETY: a flag the SIGHUP handler sets.
    if unsafe { std::ptr::read_volatile(std::ptr::addr_of!(pg_sys::ConfigReloadPending)) } != 0 {
        unsafe {
            pg_sys::ConfigReloadPending = 0;
            pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP);
        }
    }
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn docchat_ingest_launcher_main(_arg: pg_sys::Datum) {
    attach_signals();
    pgrx::bgworkers::BackgroundWorker::connect_worker_to_spi(Some(&settings::launcher_database()), None);
    loop {
        let orphaned: Vec<u32> = in_transaction(|| {
            Spi::connect(|client| {
                client
                    .select(
                        &format!(
                            "SELECT d.oid::int8 FROM pg_database d WHERE d.datallowconn AND NOT d.datistemplate AND d.datconnlimit <> -2 \
                             AND NOT EXISTS (SELECT FROM pg_stat_activity a WHERE a.backend_type = '{WORKER_TYPE}' AND a.datid = d.oid)"
                        ),
                        None,
                        &[],
                    )?
                    .map(|row| row.get::<i64>(1).map(|oid| oid.unwrap_or(0) as u32))
                    .collect::<Result<Vec<_>, _>>()
            })
            .unwrap_or_else(|e| error!("docchat ingest launcher: listing databases failed: {e}"))
        });
        // A worker for a database without docchat, or with nothing queued, leaves at once.
        for oid in orphaned {
            start_worker(pg_sys::Oid::from(oid), SWEEP);
        }
        nap(settings::ingest_naptime());
    }
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn docchat_ingest_worker_main(arg: pg_sys::Datum) {
    attach_signals();
    let database = pg_sys::Oid::from(arg.value() as u32);
    pgrx::bgworkers::BackgroundWorker::connect_worker_to_spi_by_oid(Some(database), None);
    // The launcher starts one in every database now and then: one with nothing queued leaves at
    // once, so that many databases never hold many worker slots (parallel query needs them too).
    // One a session started stays: the job it was started for may not be committed yet.
    let sweep = pgrx::bgworkers::BackgroundWorker::get_extra() == SWEEP;
    if !in_transaction(take_slot) || (sweep && in_transaction(pending_jobs) == 0) {
        return;
    }
    let mut idle_since = Instant::now();
    loop {
        pg_sys::check_for_interrupts!();
        if run_next_job() {
            idle_since = Instant::now();
            continue;
        }
        if idle_since.elapsed() >= settings::ingest_idle_exit() && in_transaction(pending_jobs) == 0 {
            return;
        }
        nap(POLL);
    }
}

/// This database has docchat's queue (a version with it) and this worker is one of the first
/// docchat.ingest_workers of it to have started. Every worker ranks itself among the live ones
/// the same way, so two that start together agree on who leaves; no lock is involved that a
/// user could take to keep workers out.
fn take_slot() -> bool {
    let installed = Spi::get_one::<bool>("SELECT to_regprocedure('docchat.claim_ingest_job()') IS NOT NULL").ok().flatten() == Some(true);
    installed
        && Spi::get_one_with_args::<bool>(
            "SELECT count(*) < $2 FROM pg_stat_activity a, pg_stat_activity me \
             WHERE me.pid = pg_backend_pid() AND a.backend_type = $1 AND a.datid = me.datid \
               AND (a.backend_start, a.pid) < (me.backend_start, me.pid)",
            &[WORKER_TYPE.into(), (settings::ingest_workers() as i64).into()],
        )
        .ok()
        .flatten()
            == Some(true)
}

fn pending_jobs() -> i64 {
    Spi::get_one::<i64>("SELECT docchat.pending_jobs()").ok().flatten().unwrap_or(0)
}
