//! docchat-core errors → SQL errors.
use docchat_core::{DocError, ErrorKind};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{function_name, PgLogLevel, PgSqlErrorCode};

/// Document problems are class 22, endpoint and worker failures classes 38, 55 and 58: never
/// 08, 28 or 57P, which connection pools read as a dead connection or a failed login.
pub fn sqlstate(kind: ErrorKind) -> PgSqlErrorCode {
    use PgSqlErrorCode::*;
    match kind {
        ErrorKind::Unsupported => ERRCODE_DATA_EXCEPTION,
        ErrorKind::InvalidEncoding => ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
        ErrorKind::Corrupt => ERRCODE_INVALID_BINARY_REPRESENTATION,
        ErrorKind::NoText => ERRCODE_NO_DATA_FOUND,
        // The password argument is missing or wrong.
        ErrorKind::Encrypted => ERRCODE_INVALID_PARAMETER_VALUE,
        ErrorKind::NullValue => ERRCODE_NULL_VALUE_NOT_ALLOWED,
        ErrorKind::InvalidArgument => ERRCODE_INVALID_PARAMETER_VALUE,
        ErrorKind::ModelUnavailable => ERRCODE_UNDEFINED_FILE,
        ErrorKind::ModelFailure => ERRCODE_EXTERNAL_ROUTINE_EXCEPTION,
        ErrorKind::TooLarge => ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        ErrorKind::Cancelled => ERRCODE_QUERY_CANCELED,
        ErrorKind::WorkerUnavailable => ERRCODE_SYSTEM_ERROR,
        ErrorKind::ChatUnconfigured => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        ErrorKind::ChatUnreachable | ErrorKind::ChatTimeout => ERRCODE_IO_ERROR,
        ErrorKind::ChatRejected | ErrorKind::ChatRefused | ErrorKind::ChatFailed => ERRCODE_EXTERNAL_ROUTINE_EXCEPTION,
        ErrorKind::ChatCircuitOpen => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        ErrorKind::Forbidden => ERRCODE_INSUFFICIENT_PRIVILEGE,
    }
}

/// Raises `e` as an ERROR; `context` (e.g. the file name) prefixes the message.
pub fn raise(e: DocError, context: Option<&str>) -> ! {
    if e.kind == ErrorKind::Cancelled {
        // Let Postgres report the cancel or timeout itself, with its own message.
        pgrx::pg_sys::check_for_interrupts!();
    }
    let message = match context {
        Some(c) => format!("{c}: {}", e.message),
        None => e.message,
    };
    let mut report = ErrorReport::new(sqlstate(e.kind), message, function_name!());
    if let Some(hint) = e.hint {
        report = report.set_hint(hint);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

pub trait OrRaise<T> {
    fn or_raise(self, context: Option<&str>) -> T;
}

/// Whether Postgres wants the current statement stopped (cancel, statement_timeout, terminate).
pub fn stop_requested() -> bool {
    // SAFETY: plain reads of flags that signal handlers set; main thread only.
    unsafe {
        std::ptr::read_volatile(std::ptr::addr_of!(pgrx::pg_sys::QueryCancelPending)) != 0
            || std::ptr::read_volatile(std::ptr::addr_of!(pgrx::pg_sys::ProcDiePending)) != 0
    }
}

/// Serves pending interrupts while a statement waits: a cancel, statement_timeout or shutdown
/// raises its ERROR from here (unwinding the caller); the others (e.g. the procsignal barrier
/// every DROP DATABASE sends) are handled and the wait goes on. Main thread only.
pub fn serve_interrupts() {
    // SAFETY: a plain read of a flag that signal handlers set.
    if unsafe { std::ptr::read_volatile(std::ptr::addr_of!(pgrx::pg_sys::InterruptPending)) } != 0 {
        pgrx::pg_sys::check_for_interrupts!();
    }
}

impl<T> OrRaise<T> for Result<T, DocError> {
    fn or_raise(self, context: Option<&str>) -> T {
        self.unwrap_or_else(|e| raise(e, context))
    }
}
