//! Integration tests for weir-data.
