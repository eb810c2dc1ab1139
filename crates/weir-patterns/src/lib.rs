//! The reference pattern DAGs of spec 110 (batch processing), one file per spec entry, and the
//! registry the `weir` binary serves them from.
//!
//! Patterns use only the public API a user has: `weir_runtime` to define DAGs, `weir_data` to read
//! sources and commit partitions, `weir_core` for schedules. [`common`] holds the pieces several
//! patterns share (reading their `--conf` params, loading a time window into partitions).

pub mod common;
pub mod p110;

use std::path::{Path, PathBuf};

use weir_runtime::Registry;

/// Where the sample orders live by default: `HOME/data/sample/orders.csv`. Patterns generate it
/// on first use (deterministically) when no `--conf source=...` is given.
pub fn default_sample_path(home: &Path) -> PathBuf {
    home.join("data").join("sample").join("orders.csv")
}

/// Every pattern DAG.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    for dag in p110::all() {
        registry.add(dag);
    }
    registry
}
