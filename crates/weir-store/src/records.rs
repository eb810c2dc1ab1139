//! Plain records that cross the store boundary.

use jiff::Timestamp;
use serde::Serialize;
use weir_core::ids::RunKind;
use weir_core::{DagId, MapIndex, RunId, RunState, TaskId, TaskState};

/// A run to create.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub dag_id: DagId,
    pub run_id: RunId,
    pub kind: RunKind,
    pub logical_date: Timestamp,
    pub interval_start: Timestamp,
    pub interval_end: Timestamp,
    pub run_after: Timestamp,
    pub conf: serde_json::Value,
    pub created_at: Timestamp,
}

/// A stored DAG run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub dag_id: DagId,
    pub run_id: RunId,
    pub kind: RunKind,
    pub state: RunState,
    pub logical_date: Timestamp,
    pub interval_start: Timestamp,
    pub interval_end: Timestamp,
    pub run_after: Timestamp,
    pub conf: serde_json::Value,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub dag_id: Option<DagId>,
    pub states: Vec<RunState>,
    pub logical_date_from: Option<Timestamp>,
    pub logical_date_to: Option<Timestamp>,
    pub limit: Option<u32>,
}

/// The key of a task instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct TiKey {
    pub dag_id: DagId,
    pub run_id: RunId,
    pub task_id: TaskId,
    pub map_index: MapIndex,
}

/// A task instance to create.
#[derive(Debug, Clone)]
pub struct NewTaskInstance {
    pub key: TiKey,
    pub state: TaskState,
    pub max_tries: u32,
    pub pool: String,
    pub pool_slots: u32,
}

/// A stored task instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskInstanceRecord {
    pub key: TiKey,
    pub state: TaskState,
    pub try_number: u32,
    pub max_tries: u32,
    pub pool: String,
    pub pool_slots: u32,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub retry_at: Option<Timestamp>,
    pub lease_until: Option<Timestamp>,
    pub error: Option<String>,
}

/// One change to a task instance, applied only if it is still in `expect_state` at `expect_try`.
#[derive(Debug, Clone)]
pub struct TiChange {
    pub key: TiKey,
    pub expect_state: TaskState,
    pub expect_try: u32,
    pub state: TaskState,
    pub try_number: u32,
    pub at: Timestamp,
    /// Set when a try starts: until when the instance is ours.
    pub lease_until: Option<Timestamp>,
    /// Set when a try fails with tries left: when the next may start.
    pub retry_at: Option<Timestamp>,
    pub error: Option<String>,
    /// The result of a successful try (stored when not null).
    pub output: Option<serde_json::Value>,
}

/// One finished try.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TryRecord {
    /// How many times the run had been cleared (re-run) when this try ran: 0 for the first run.
    pub clear_number: u32,
    pub task_id: TaskId,
    pub map_index: MapIndex,
    pub try_number: u32,
    pub state: TaskState,
    pub started_at: Option<Timestamp>,
    pub ended_at: Timestamp,
    pub error: Option<String>,
}

/// A named pool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolRecord {
    pub name: String,
    pub slots: u32,
    pub description: String,
}

/// What one committed partition write holds and who wrote it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartitionManifest {
    pub dataset: String,
    pub partition: String,
    pub rows_in: u64,
    pub rows_out: u64,
    pub rows_rejected: u64,
    pub bytes: u64,
    pub files: u32,
    pub checksum: String,
    pub schema: String,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub map_index: i64,
    pub try_number: u32,
    pub committed_at: Timestamp,
}
