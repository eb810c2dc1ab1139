//! Integration tests of weir-runtime.
