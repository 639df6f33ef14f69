//! What every part needs from Postgres: errors with SQLSTATEs and hints, interrupts, and
//! whether this server is a read-only standby.
pub mod error;
pub mod standby;
