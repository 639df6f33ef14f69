//! Embedding backends over the model registry: the model worker's client, or models this
//! session loads itself; sentence models (`text`) and CLIP (`clip`).
pub mod clip;
pub mod models;
pub mod slot;
pub mod text;
pub mod worker_client;
