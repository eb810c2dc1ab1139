//! Integration tests of weir-query.
mod functions;
mod pruning;
