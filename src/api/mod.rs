//! The SQL entry points, one file per area: thin `#[pg_extern]` functions over `ingest`,
//! `embedding` and `docchat-core`.
mod chat;
mod chat_context;
mod clip;
mod embed;
mod health;
mod ingest;
mod owner;
mod search;
mod standby;

pub use chat::init_shared_memory;
pub use owner::current_owner;
