//! The SQL functions. Each turns SQL arguments into calls on `docchat-core` and its errors
//! into SQL errors with a SQLSTATE and a hint.
mod chat;
mod chat_context;
mod clip;
mod embed;
mod error;
mod health;
mod ingest;
mod ingest_async;
mod ingest_job;
mod isolate;
mod models;
mod owner;
mod search;
mod standby;
mod worker_client;

pub use chat::init_shared_memory;
pub use ingest_job::{in_transaction, run_next_job};
