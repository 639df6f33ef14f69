//! docchat: the PostgreSQL extension. This crate is the Postgres-facing half over `docchat-core`:
//! `api` (the SQL entry points), `ingest` (pipeline and storage), `embedding` (backends),
//! `workers`, `settings` and `pg` (errors, standby). It is the only code that sees pgrx types.
use pgrx::prelude::*;

mod api;
mod embedding;
mod ingest;
mod pg;
mod settings;
mod workers;

use workers::{ingest_worker, model_worker};

::pgrx::pg_module_magic!(name, version);

// Tables, policies and SQL-language functions live in versioned SQL files.
pgrx::extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
pgrx::extension_sql_file!("../sql/search.sql", name = "search", requires = ["schema"]);
pgrx::extension_sql_file!("../sql/queue.sql", name = "queue", requires = ["schema"]);
pgrx::extension_sql_file!("../sql/functions.sql", name = "functions", finalize);

/// Runs in every process that loads the library, the postmaster included (when preloaded):
/// settings are defined, the model worker and ingest launcher registered and the chat breaker's shared memory
/// requested; models, threads and sessions are created lazily in the processes that use them,
/// never here.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // pgrx puts a captured Rust backtrace into the DETAIL of every Postgres error that passes
    // through Rust (a statement timeout while ingesting, say) when RUST_BACKTRACE is set in the
    // server's environment; users get Postgres' message only. Panics still print their
    // backtrace to the server log. Nothing runs threads yet, here.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    settings::define();
    model_worker::register();
    if model_worker::preloaded() {
        ingest_worker::register_launcher();
    }
    api::init_shared_memory();
}
