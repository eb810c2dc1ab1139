//! Integration tests of weir-runtime: every test drives the real executor over a real SQLite
//! store in a temp dir, on a paused tokio clock, and asserts what a user would see in the store.

mod backfill;
mod mapping;
mod pools;
mod recovery;
mod retries;
mod scheduler;
mod support;
mod trigger_rules;
mod validation;
