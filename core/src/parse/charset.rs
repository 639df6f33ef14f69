//! Text encodings: BOMs, HTML meta charsets, UTF-16, single-byte code pages.
