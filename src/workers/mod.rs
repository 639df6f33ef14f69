//! The background workers: one model worker per cluster, ingest workers per database.
pub mod ingest_worker;
pub mod model_worker;
