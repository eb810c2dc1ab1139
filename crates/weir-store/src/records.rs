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
    /// How many times the run was cleared (re-run): 0 until then. Checkpoints of an earlier
    /// attempt are never resumed by a later one.
    pub clear_number: u32,
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
    /// The worker queue it is routed to ([`DEFAULT_QUEUE`] unless the task names one).
    pub queue: String,
}

/// The queue of task instances that name none.
pub const DEFAULT_QUEUE: &str = "default";

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
    /// Who claimed it through [`CoordinationStore::claim_tasks`](crate::CoordinationStore), while
    /// it runs under that claim (an executor's own instances have none: the run is its).
    pub owner: Option<String>,
    /// The worker queue it is routed to.
    pub queue: String,
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
    /// Why the partition is incomplete (its batch went to the dead-letter queue after its
    /// retries); `None` for a complete commit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
}

/// A source row (or a batch) that could not be processed: the original text, where it was,
/// why, and who read it. What a task hands the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectRecord {
    /// The source file (its canonical path), or a batch's location.
    pub source: String,
    /// 1-based line (CSV, JSON lines) or row (Parquet) in the source; 0 for a whole batch.
    pub line: u64,
    /// The payload: the raw line, the row as JSON, or the batch's location.
    pub raw: String,
    pub reason: String,
    /// What kind of failure: `parse` (the reader could not read it), `check` (a quality
    /// rule failed), `batch` (a batch failed after its retries).
    pub error_class: String,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub map_index: i64,
    pub try_number: u32,
    pub rejected_at: Timestamp,
}

/// Where a dead letter is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterStatus {
    /// Waiting for a replay (as stored, or as corrected).
    Pending,
    /// A replay took it and has not said how it went (a crash in between is resolved by the
    /// next replay, from what the dataset holds).
    Replaying,
    /// Committed into its partition by a replay.
    Replayed,
    /// Failed its replays too often; left alone until someone corrects it.
    Quarantined,
}

impl DeadLetterStatus {
    pub const ALL: [DeadLetterStatus; 4] = [
        DeadLetterStatus::Pending,
        DeadLetterStatus::Replaying,
        DeadLetterStatus::Replayed,
        DeadLetterStatus::Quarantined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterStatus::Pending => "pending",
            DeadLetterStatus::Replaying => "replaying",
            DeadLetterStatus::Replayed => "replayed",
            DeadLetterStatus::Quarantined => "quarantined",
        }
    }

    pub fn parse(s: &str) -> Option<DeadLetterStatus> {
        DeadLetterStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for DeadLetterStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An entry of the dead-letter queue, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    /// Stable for its source position (`weir dlq show ID`).
    pub id: i64,
    pub source: String,
    pub line: u64,
    /// The payload as it was read.
    pub raw: String,
    /// The payload as someone corrected it (`weir dlq edit`); a replay uses it instead of `raw`.
    pub corrected: Option<String>,
    pub reason: String,
    pub error_class: String,
    /// The run, task, instance and try that last set it aside.
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub map_index: i64,
    pub try_number: u32,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub status: DeadLetterStatus,
    /// Replays tried (successful or not).
    pub replays: u32,
    /// Why the last replay failed.
    pub last_error: Option<String>,
    /// The replay that took it (while `replaying`, and after).
    pub replay_batch: Option<String>,
    /// `DATASET/PARTITION` a replay committed it into.
    pub replayed_into: Option<String>,
    pub replayed_at: Option<Timestamp>,
}

impl DeadLetter {
    /// What a replay feeds the task: the correction if there is one, else the payload as read.
    pub fn payload(&self) -> &str {
        self.corrected.as_deref().unwrap_or(&self.raw)
    }
}

/// Which dead letters to list; every set field must match.
#[derive(Debug, Clone, Default)]
pub struct RejectFilter {
    pub source: Option<String>,
    pub dag_id: Option<String>,
    pub run_id: Option<String>,
    pub task_id: Option<String>,
    pub status: Option<DeadLetterStatus>,
    pub replay_batch: Option<String>,
    /// At most this many, lowest ids first.
    pub limit: Option<u32>,
}

/// How one dead letter's replay went.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplayOutcome {
    /// Committed into `into` (`DATASET/PARTITION`).
    Replayed { id: i64, into: String },
    /// Failed again, for `reason`.
    Failed { id: i64, reason: String },
    /// Not tried after all (its task could not run the replay): back to pending, uncounted.
    Released { id: i64 },
}

/// Where a quality gate runs: on a batch before it is processed, or on the staged partitions
/// before they are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckGate {
    /// The source, before a load reads it into partitions.
    Input,
    /// The staged partitions, before they are swapped in.
    Output,
}

impl CheckGate {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckGate::Input => "input",
            CheckGate::Output => "output",
        }
    }

    pub fn parse(s: &str) -> Option<CheckGate> {
        [CheckGate::Input, CheckGate::Output]
            .into_iter()
            .find(|g| g.as_str() == s)
    }
}

impl std::fmt::Display for CheckGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a failed check does: `error` blocks (the task fails and its batch publishes nothing),
/// `warn` is recorded and the task goes on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckSeverity {
    #[default]
    Error,
    Warn,
}

impl CheckSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckSeverity::Error => "error",
            CheckSeverity::Warn => "warn",
        }
    }

    pub fn parse(s: &str) -> Option<CheckSeverity> {
        [CheckSeverity::Error, CheckSeverity::Warn]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for CheckSeverity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of one quality check of one try: which rule, whether it passed, how many rows
/// failed it and a sample of them. Kept whether the check passed or not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub map_index: i64,
    pub try_number: u32,
    pub gate: CheckGate,
    /// The check's name (its config's `name`, else one made from the rule and its column).
    pub name: String,
    /// The rule as configured (`{"rule": "range", "column": "amount", "max": 10000.0}`).
    pub rule: serde_json::Value,
    pub severity: CheckSeverity,
    pub passed: bool,
    /// Rows that failed the rule; a rule over the whole batch (row count, freshness) counts 1
    /// when it fails.
    pub failing: u64,
    /// What the rule saw, when it measures something: the row count, the newest time.
    pub observed: Option<String>,
    /// Up to the check's `sample` failing rows, as JSON objects.
    pub sample: Vec<serde_json::Value>,
    pub checked_at: Timestamp,
}

/// Which check results to list; every set field must match.
#[derive(Debug, Clone, Default)]
pub struct CheckFilter {
    pub dag_id: Option<String>,
    pub run_id: Option<String>,
    pub task_id: Option<String>,
    /// Only checks that failed.
    pub failed_only: bool,
    /// At most this many: the newest, listed oldest first.
    pub limit: Option<u32>,
}

/// A run's instances of one task in one state (see `TaskInstanceStore::instance_counts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceCount {
    pub task_id: String,
    pub state: TaskState,
    /// Instances of an expanded mapped task (map index ≥ 0).
    pub mapped: bool,
    pub count: u64,
}
