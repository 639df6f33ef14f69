//! On a hot standby docchat reads (search, chat, embeddings, health, the views) and refuses
//! every write with the primary's address in the hint.
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::{function_name, PgLogLevel, PgSqlErrorCode};

pub fn is_standby() -> bool {
    // SAFETY: reads shared recovery state; main thread only.
    unsafe { pg_sys::RecoveryInProgress() }
}

/// Raises 25006 when this server is a standby; `what` names the refused call.
pub fn refuse_writes(what: &str) {
    if !is_standby() {
        return;
    }
    let primary = primary_address().map(|a| format!(" ({a})")).unwrap_or_default();
    ErrorReport::new(PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION, format!("{what}: this server is a read-only standby"), function_name!())
        .set_hint(format!("ingest and delete on the primary{primary}; searches, chat and embeddings work here"))
        .report(PgLogLevel::ERROR);
}

/// host:port of primary_conninfo, never the rest (it may hold a password).
fn primary_address() -> Option<String> {
    // SAFETY: a static name; the returned string lives in the GUC table for this call.
    let raw = unsafe { pg_sys::GetConfigOption(c"primary_conninfo".as_ptr(), true, false) };
    if raw.is_null() {
        return None;
    }
    // SAFETY: GetConfigOption returns a NUL-terminated string.
    let conninfo = unsafe { std::ffi::CStr::from_ptr(raw) }.to_string_lossy().into_owned();
    let field =
        |key: &str| conninfo.split_whitespace().find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')).map(|v| v.trim_matches('\'').to_string());
    let host = field("host").or_else(|| field("hostaddr"))?;
    Some(format!("{host}:{}", field("port").unwrap_or_else(|| "5432".into())))
}

/// One value of a read-only query. Spi::get_one marks the transaction as writing (it assigns a
/// transaction id), which a standby refuses; reads go through here.
pub fn select_one<T: pgrx::FromDatum + pgrx::IntoDatum>(sql: &str, args: &[pgrx::datum::DatumWithOid]) -> Result<Option<T>, pgrx::spi::Error> {
    Spi::connect(|client| client.select(sql, Some(1), args)?.first().get_one::<T>())
}
