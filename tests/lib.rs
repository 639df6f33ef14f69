//! see tests/tests
