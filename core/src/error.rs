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
