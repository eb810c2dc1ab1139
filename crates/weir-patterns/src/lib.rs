//! The reference pattern DAGs of spec 110 (batch processing), one file per spec entry, and the
//! registry the `weir` binary serves them from.
//!
//! Patterns use only the public API a user has: `weir_runtime` to define DAGs, `weir_data` to read
//! sources and commit partitions, `weir_core` for schedules, and the operators of `weir_ops`
//! (loading a window, SQL, verification) for the steps every pipeline has.

pub mod p110;

use weir_runtime::Registry;

pub use weir_ops::load::default_sample_path;

/// Every pattern DAG.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    for dag in p110::all() {
        registry.add(dag);
    }
    registry
}
