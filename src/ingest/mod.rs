//! Ingest: one pipeline (`pipeline`), one module that owns every statement on docchat's tables
//! (`storage`), the background job an ingest worker runs (`job`), and parsing on an isolated
//! thread (`isolate`).
pub mod isolate;
pub mod job;
pub mod pipeline;
pub mod storage;
