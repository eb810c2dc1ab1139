//! Spec 110: batch processing patterns. DAG id = the spec entry's filename stem.

pub mod custom_batch_windows;
pub mod daily_batch_processing;
pub mod hourly_batch_processing;
pub mod monthly_batch_processing;
pub mod weekly_batch_aggregation;

use weir_runtime::DagDef;

/// All section-110 DAGs that exist so far.
pub fn all() -> Vec<DagDef> {
    vec![
        daily_batch_processing::dag(),
        hourly_batch_processing::dag(),
        weekly_batch_aggregation::dag(),
        monthly_batch_processing::dag(),
        custom_batch_windows::dag(),
    ]
}
