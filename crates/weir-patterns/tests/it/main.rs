//! Integration tests of weir-patterns.
