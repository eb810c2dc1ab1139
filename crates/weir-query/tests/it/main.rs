//! Integration tests of weir-query.
mod pruning;
