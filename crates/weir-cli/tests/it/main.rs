//! Integration tests of weir-cli.
