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
    /// The version of the DAG the run is created with (a DAG file's content hash); `None` for
    /// DAGs compiled into the binary.
    pub dag_version: Option<String>,
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
    /// The process driving the run, while one does (cleared when the run finishes).
    pub owner: Option<RunOwner>,
    /// The version of its DAG the run was created with (see [`NewRun::dag_version`]).
    pub dag_version: Option<String>,
}

/// The process that holds a run's owner lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunOwner {
    /// Who: `host:pid:start` of the process, for people reading listings.
    pub id: String,
    /// The fencing token of its claim: every take-over increments it.
    pub token: u64,
    /// Until when the run is the owner's without another heartbeat.
    pub lease_until: Timestamp,
}

/// Proof of owning a run, presented with every update the owner makes: an update whose token is
/// no longer the run's (another process took the run over) changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFence {
    pub dag_id: DagId,
    pub run_id: RunId,
    pub owner: String,
    pub token: u64,
}

/// A request to own a run until `lease_until`.
#[derive(Debug, Clone)]
pub struct ClaimRun {
    pub dag_id: DagId,
    pub run_id: RunId,
    pub owner: String,
    pub now: Timestamp,
    pub lease_until: Timestamp,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunClaim {
    /// The run is ours; `resumed` when another owner had held it (its lease had run out).
    Claimed { fence: RunFence, resumed: bool },
    /// Another process holds a live lease on it.
    Held(RunOwner),
    /// The run has finished; there is nothing to drive.
    Finished(RunState),
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
    /// Source rows the writing task read to make this commit: kept, rejected, or outside it
    /// (another interval, another partition of the same load).
    pub rows_in: u64,
    /// Rows written into this partition.
    pub rows_out: u64,
    /// Rows of that read that could not be parsed, kept in the rejects table. A malformed row's
    /// interval is unknown (its time may be what is malformed), so a load's rejects are counted
    /// on each partition it committed.
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

/// A source row that could not be read: the original text, where it was, why, and who read it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectRecord {
    /// The source file (its canonical path).
    pub source: String,
    /// 1-based line (CSV, JSON lines) or row (Parquet) in the source.
    pub line: u64,
    pub raw: String,
    pub reason: String,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub map_index: i64,
    pub try_number: u32,
    pub rejected_at: Timestamp,
}

/// Which rejects to list.
#[derive(Debug, Clone, Default)]
pub struct RejectFilter {
    pub source: Option<String>,
    pub dag_id: Option<String>,
    pub run_id: Option<String>,
}
