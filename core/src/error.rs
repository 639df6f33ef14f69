//! One error type for every stage. The SQL layer maps `ErrorKind` to a SQLSTATE.
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A format we recognise but cannot (yet) read, or bytes we do not recognise at all.
    Unsupported,
    /// Text that is not valid in its encoding.
    InvalidEncoding,
    /// A damaged or truncated file of a supported format.
    Corrupt,
    /// A well-formed document with nothing to index.
    NoText,
    /// An encrypted document without the right password.
    Encrypted,
    /// A required argument is NULL.
    NullValue,
    /// A bad argument (empty content, chunk sizes out of range).
    InvalidArgument,
    /// The model or the ONNX Runtime library is missing or cannot be loaded.
    ModelUnavailable,
    /// The model failed while running.
    ModelFailure,
    /// Over a configured limit (bytes, pages, decompressed size, OCR time).
    TooLarge,
    /// The caller asked to stop (query cancel, statement timeout).
    Cancelled,
    /// The model worker is not running or did not answer.
    WorkerUnavailable,
    /// docchat.chat_url or docchat.chat_model is not set (or not a URL).
    ChatUnconfigured,
    /// The chat endpoint cannot be reached (DNS, connection refused).
    ChatUnreachable,
    /// The chat endpoint did not answer within docchat.chat_timeout.
    ChatTimeout,
    /// The chat endpoint refused the API key (HTTP 401/403).
    ChatRejected,
    /// The chat endpoint refused this request (another 4xx, a redirect).
    ChatRefused,
    /// The chat endpoint failed (429, 5xx) or its reply is not a chat completion.
    ChatFailed,
    /// The breaker is open after repeated endpoint failures.
    ChatCircuitOpen,
    /// The caller may not do this (a JWT role without a subject, another owner's job).
    Forbidden,
}

const KIND_NAMES: [(ErrorKind, &str); 20] = [
    (ErrorKind::Unsupported, "unsupported"),
    (ErrorKind::InvalidEncoding, "invalid_encoding"),
    (ErrorKind::Corrupt, "corrupt"),
    (ErrorKind::NoText, "no_text"),
    (ErrorKind::Encrypted, "encrypted"),
    (ErrorKind::NullValue, "null_value"),
    (ErrorKind::InvalidArgument, "invalid_argument"),
    (ErrorKind::ModelUnavailable, "model_unavailable"),
    (ErrorKind::ModelFailure, "model_failure"),
    (ErrorKind::TooLarge, "too_large"),
    (ErrorKind::Cancelled, "cancelled"),
    (ErrorKind::WorkerUnavailable, "worker_unavailable"),
    (ErrorKind::ChatUnconfigured, "chat_unconfigured"),
    (ErrorKind::ChatUnreachable, "chat_unreachable"),
    (ErrorKind::ChatTimeout, "chat_timeout"),
    (ErrorKind::ChatRejected, "chat_rejected"),
    (ErrorKind::ChatRefused, "chat_refused"),
    (ErrorKind::ChatFailed, "chat_failed"),
    (ErrorKind::ChatCircuitOpen, "chat_circuit_open"),
    (ErrorKind::Forbidden, "forbidden"),
];

impl ErrorKind {
    /// Whether trying again may help (a missing or failing model, the worker away, a cancel),
    /// rather than the input itself being at fault.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::ModelUnavailable | ErrorKind::ModelFailure | ErrorKind::WorkerUnavailable | ErrorKind::Cancelled)
    }
    /// A stable name, for errors that cross a process boundary.
    pub fn name(self) -> &'static str {
        KIND_NAMES.iter().find(|(k, _)| *k == self).map(|(_, n)| *n).expect("every kind is named")
    }
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        KIND_NAMES.iter().find(|(_, n)| *n == name).map(|(k, _)| *k)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocError {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
}

impl DocError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        DocError { kind, message: message.into(), hint: None }
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for DocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DocError {}

pub type Result<T> = std::result::Result<T, DocError>;
