//! Spec 110: batch processing patterns. DAG id = the spec entry's filename stem.

pub mod batch_checkpointing;
pub mod batch_retry_strategies;
pub mod batch_validation_gates;
pub mod custom_batch_windows;
pub mod daily_batch_processing;
pub mod date_based_partitioning;
pub mod dead_letter_batch_handling;
pub mod debugging_batch_failures;
pub mod debugging_checkpoint_issues;
pub mod geographic_partitioning;
pub mod hash_based_partitioning;
pub mod hourly_batch_processing;
pub mod id_range_partitioning;
pub mod ignoring_batch_boundaries_antipattern;
pub mod monthly_batch_processing;
pub mod no_batch_idempotency_antipattern;
pub mod partial_batch_failure_handling;
pub mod scatter_gather_pattern;
pub mod size_based_partitioning;
pub mod testing_batch_error_handling;
pub mod testing_parallel;
pub mod unit_testing_batch_logic;
pub mod weekly_batch_aggregation;

use weir_runtime::{DagDef, TaskError};

/// A task's output as JSON; a value that does not serialize is a bug of the task (fatal).
pub(crate) fn to_output(value: &impl serde::Serialize) -> Result<serde_json::Value, TaskError> {
    serde_json::to_value(value)
        .map_err(|e| TaskError::fatal(format!("the output does not serialize: {e}")))
}

/// All section-110 DAGs that exist so far.
pub fn all() -> Vec<DagDef> {
    vec![
        daily_batch_processing::dag(),
        hourly_batch_processing::dag(),
        weekly_batch_aggregation::dag(),
        monthly_batch_processing::dag(),
        custom_batch_windows::dag(),
        date_based_partitioning::dag(),
        id_range_partitioning::dag(),
        hash_based_partitioning::dag(),
        size_based_partitioning::dag(),
        geographic_partitioning::dag(),
        scatter_gather_pattern::dag(),
        no_batch_idempotency_antipattern::dag(),
        ignoring_batch_boundaries_antipattern::dag(),
        partial_batch_failure_handling::dag(),
        batch_retry_strategies::dag(),
        dead_letter_batch_handling::dag(),
        dead_letter_batch_handling::dlq_dag(),
        batch_checkpointing::dag(),
        batch_validation_gates::dag(),
        debugging_batch_failures::dag(),
        debugging_checkpoint_issues::dag(),
        unit_testing_batch_logic::dag(),
        testing_batch_error_handling::dag(),
        testing_parallel::dag(),
    ]
}
