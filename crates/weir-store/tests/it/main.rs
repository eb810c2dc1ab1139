//! Integration tests of weir-store.
