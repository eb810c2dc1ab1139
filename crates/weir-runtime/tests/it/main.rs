//! Integration tests of weir-runtime: every test drives the real executor over a real SQLite
//! store in a temp dir, on a paused tokio clock, and asserts what a user would see in the store.

mod backfill;
mod mapping;
mod notify;
mod pools;
mod recovery;
mod retries;
mod scheduler;
mod sensors;
mod support;
mod trigger_rules;
mod typed;
mod validation;
