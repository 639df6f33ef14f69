//! docchat's pipeline stages as plain Rust: bytes → pages of text → chunks → vectors.
//! Nothing here knows about Postgres, so every stage is unit-tested with `cargo test`.
pub mod bm25;
pub mod chat;
pub mod chunk;
pub mod clip;
pub mod detect;
pub mod embed;
pub mod error;
pub mod owner;
pub mod parse;
pub mod serve;
pub mod threads;

pub use error::{DocError, ErrorKind};
