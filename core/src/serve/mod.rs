//! Serving embeddings from one process to many: the model worker's side (a Unix-socket server,
//! a dynamic batcher that owns the models) and the client a backend uses. Plain threads and
//! std I/O; nothing here calls Postgres, so the worker may run it on threads of its own.
pub mod batcher;
pub mod client;
pub mod models;
pub mod server;
pub mod stats;
pub mod wire;

/// The socket's path relative to the data directory, which is every server process's working
/// directory. pg_stat_tmp is private to the cluster's OS user and skipped by base backups.
pub const SOCKET: &str = "pg_stat_tmp/docchat_model.sock";
