//! The metadata store: what runs exist, what every task instance did, pools, outputs, manifests.
//!
//! One concern per trait ([`RunStore`], [`TaskInstanceStore`], [`PoolStore`], [`ManifestStore`],
//! [`RejectStore`], [`CheckStore`]);
//! [`Store`] is all of them, used as `Arc<dyn Store>`. [`SqlStore`] implements them on SQLite
//! (the embedded default) and on PostgreSQL, both held to one conformance suite
//! (`tests/it/conformance.rs`).
//!
//! Every method that changes state commits before it returns: the caller may act on a change as
//! soon as the call succeeds, and a killed process loses nothing that was acknowledged.

mod checkpoint;
mod commit;
mod coord;
mod records;
mod sql;

use async_trait::async_trait;
use jiff::Timestamp;

pub use checkpoint::*;
pub use commit::*;
pub use coord::*;
pub use records::*;
pub use sql::{Backend, SqlStore};

use weir_core::{DagId, RunId, RunState, TaskState};

/// The error type of weir-store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or a statement failed.
    #[error("metadata store error: {0}")]
    Database(#[from] sqlx::Error),
    /// A row that does not decode into the model: the store was written by something else.
    #[error("metadata store holds an invalid value: {0}")]
    Corrupt(String),
    /// A compare-and-set update found the row in another state: someone else changed it.
    #[error("{what} was changed concurrently (expected {expected}); it was left as is")]
    Conflict { what: String, expected: String },
    /// An update by a process whose ownership of the run was taken over: nothing was changed.
    #[error(
        "run `{run}` of DAG `{dag}` was taken over by another process after this one's lease ran out; this process stopped driving it"
    )]
    Fenced { dag: String, run: String },
    /// A change to a claimed task instance by an owner whose claim ran out and was handed on.
    #[error(
        "task instance {0} was handed to another worker after this one's lease ran out; this worker's change was not applied"
    )]
    FencedTask(String),
    /// The named run or task instance does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// A store URL that weir cannot use.
    #[error("unsupported store URL `{0}`: use sqlite://PATH or postgres://USER@HOST:PORT/DATABASE")]
    UnsupportedUrl(String),
}

impl From<weir_core::CoreError> for StoreError {
    fn from(e: weir_core::CoreError) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

impl weir_core::Transient for StoreError {
    /// A database that is busy, locked or unreachable may answer the next try; anything the
    /// store refused on purpose will refuse again.
    fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(e) => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                // Busy or locked: another process holds the database for a moment. On
                // PostgreSQL: a serialization failure or deadlock (class 40), or a server that
                // is shutting down or out of connections (classes 08, 53, 57P).
                sqlx::Error::Database(db) => {
                    let m = db.message();
                    let code = db.code().unwrap_or_default();
                    m.contains("locked")
                        || m.contains("busy")
                        || ["40", "08", "53", "57P"]
                            .iter()
                            .any(|c| code.starts_with(c))
                }
                _ => false,
            },
            StoreError::Corrupt(_)
            | StoreError::Conflict { .. }
            | StoreError::Fenced { .. }
            | StoreError::FencedTask(_)
            | StoreError::NotFound(_)
            | StoreError::UnsupportedUrl(_) => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// DAG runs: creation (idempotent per logical date), state, listing.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Creates the run unless one exists for the same DAG and logical date; returns the stored run
    /// and whether it was created now.
    async fn create_run(&self, run: NewRun) -> Result<(RunRecord, bool)>;
    async fn get_run(&self, dag_id: &DagId, run_id: &RunId) -> Result<Option<RunRecord>>;
    async fn run_at(&self, dag_id: &DagId, logical_date: Timestamp) -> Result<Option<RunRecord>>;
    /// Runs, newest logical date first.
    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>>;
    /// The scheduled run with the latest logical date (the scheduler continues after it).
    async fn last_scheduled_run(&self, dag_id: &DagId) -> Result<Option<RunRecord>>;
    /// Moves a run from `from` to `to` (compare-and-set), stamping start/end times.
    async fn set_run_state(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        from: RunState,
        to: RunState,
        at: Timestamp,
    ) -> Result<()>;
    /// Takes ownership of an unfinished run that has no live owner: none, one whose lease ended
    /// at or before `now`, or the claimant itself. Every successful claim increments the run's fencing
    /// token, so the previous owner's later updates are refused.
    async fn claim_run(&self, claim: ClaimRun) -> Result<RunClaim>;
    /// Extends the owner's lease; [`StoreError::Conflict`] when the fence is no longer the run's.
    async fn renew_run(&self, fence: &RunFence, lease_until: Timestamp) -> Result<()>;
    /// Gives the run up unfinished (its sensors wait for a later poke): it keeps its state, has
    /// no owner, and the next process to run it claims it at once.
    async fn release_run(&self, fence: &RunFence) -> Result<()>;
    /// Ends the run in `to` and releases its ownership, if the fence still holds.
    async fn finish_run(&self, fence: &RunFence, to: RunState, at: Timestamp) -> Result<()>;
    /// Clears a run so it runs again: deletes its task instances and outputs (their history of
    /// tries is kept) and queues it. Used by re-runs and backfill reprocessing.
    /// `dag_version` becomes the run's: a re-run runs the DAG as it is now.
    async fn reset_run(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        conf: Option<serde_json::Value>,
        dag_version: Option<&str>,
    ) -> Result<()>;
    /// Clears part of a finished run so that part runs again (Airflow's `tasks clear`): every
    /// instance of the `whole` tasks is deleted (the run loop creates them again), each of
    /// `instances` (task, map index) goes back to `none` with no tries; their outputs go. The
    /// run is queued again with its clear number raised (the tries' history stays apart).
    async fn clear_tasks(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        whole: &[String],
        instances: &[(String, i64)],
    ) -> Result<()>;
    /// Keeps the source text of version `version` of DAG `dag_id` (once: a version's text
    /// never changes).
    async fn save_dag_version(
        &self,
        dag_id: &DagId,
        version: &str,
        source: &str,
        at: Timestamp,
    ) -> Result<()>;
    /// The source text of a version [`RunStore::save_dag_version`] kept.
    async fn dag_version_source(&self, dag_id: &DagId, version: &str) -> Result<Option<String>>;
}

/// Task instances, their tries and outputs.
#[async_trait]
pub trait TaskInstanceStore: Send + Sync {
    /// Inserts task instances (all of a run's unmapped tasks, or the expansion of a mapped one).
    /// Existing keys are left untouched, so expansion after a crash is idempotent.
    async fn insert_task_instances(&self, tis: &[NewTaskInstance]) -> Result<()>;
    /// Replaces a mapped task's placeholder instance (map index -1, state none) with `count`
    /// instances 0..count in one transaction. Idempotent: an expanded task is left as it is.
    async fn expand_mapped(&self, placeholder: &NewTaskInstance, count: usize) -> Result<()>;
    async fn task_instances(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
    ) -> Result<Vec<TaskInstanceRecord>>;
    /// How many instances of each task are in each state, and whether they are mapped
    /// (map index ≥ 0): what a dispatcher needs to see whether a run has anything to plan,
    /// without reading every instance.
    async fn instance_counts(&self, dag_id: &DagId, run_id: &RunId) -> Result<Vec<InstanceCount>> {
        let mut counts: std::collections::BTreeMap<(String, TaskState, bool), u64> =
            Default::default();
        for ti in self.task_instances(dag_id, run_id).await? {
            *counts
                .entry((
                    ti.key.task_id.to_string(),
                    ti.state,
                    ti.key.map_index.raw() >= 0,
                ))
                .or_default() += 1;
        }
        Ok(counts
            .into_iter()
            .map(|((task_id, state, mapped), count)| InstanceCount {
                task_id,
                state,
                mapped,
                count,
            })
            .collect())
    }
    /// Applies a batch of changes in one transaction; each is a compare-and-set on the instance's
    /// state and try number, so a stale writer (a worker whose lease was taken over) changes nothing.
    async fn apply(&self, changes: &[TiChange]) -> Result<()>;
    /// [`TaskInstanceStore::apply`] by the run's owner: refused whole, with
    /// [`StoreError::Conflict`], when `fence` is no longer the run's (another process took it over).
    async fn apply_fenced(&self, fence: &RunFence, changes: &[TiChange]) -> Result<()>;
    /// Extends the lease of running instances owned by this process.
    async fn renew_leases(&self, keys: &[TiKey], lease_until: Timestamp) -> Result<()>;
    /// Running instances whose lease ended before `now`: their worker is gone.
    async fn orphaned(&self, now: Timestamp) -> Result<Vec<TaskInstanceRecord>>;
    /// Outputs of one task in a run, in map-index order (one entry for an unmapped task).
    async fn outputs(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        task_id: &str,
    ) -> Result<Vec<(i64, serde_json::Value)>>;
    /// Every finished try of a run's task instances, in order.
    async fn tries(&self, dag_id: &DagId, run_id: &RunId) -> Result<Vec<TryRecord>>;
}

/// Named pools of slots.
#[async_trait]
pub trait PoolStore: Send + Sync {
    async fn set_pool(&self, name: &str, slots: u32, description: &str) -> Result<()>;
    async fn pools(&self) -> Result<Vec<PoolRecord>>;
}

/// Manifests of committed partition writes.
#[async_trait]
pub trait ManifestStore: Send + Sync {
    async fn record_manifest(&self, manifest: &PartitionManifest) -> Result<()>;
    /// The latest manifest of every partition of a dataset, by partition path.
    async fn manifests(&self, dataset: &str) -> Result<Vec<PartitionManifest>>;
}

/// The dead-letter queue: source rows (and batches) that could not be processed, kept whole with
/// where they came from and who read them, until a replay commits them or a purge drops them.
#[async_trait]
pub trait RejectStore: Send + Sync {
    /// Records rejects; a source position already recorded is updated (payload, reason, who
    /// and when last seen), never doubled. Its id, status, replays and correction stay.
    async fn record_rejects(&self, rejects: &[RejectRecord]) -> Result<()>;
    /// Dead letters matching the filter, by id.
    async fn dead_letters(&self, filter: &RejectFilter) -> Result<Vec<DeadLetter>>;
    async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetter>>;
    /// Sets (or with `None` removes) the corrected payload. A quarantined entry becomes
    /// pending again: someone looked at it. [`StoreError::Conflict`] for one already replayed.
    async fn correct_dead_letter(&self, id: i64, payload: Option<&str>) -> Result<()>;
    /// Marks pending entries as taken by replay `batch` (committed before the replay writes);
    /// returns the ids it took — not those another replay took first.
    async fn begin_replay(&self, ids: &[i64], batch: &str) -> Result<Vec<i64>>;
    /// Records how a replay went: replayed entries are done; failed ones count a replay and go
    /// back to pending, or to quarantined once they have failed `max_replays` times; released
    /// ones go back to pending uncounted.
    async fn finish_replay(
        &self,
        outcomes: &[ReplayOutcome],
        max_replays: u32,
        at: Timestamp,
    ) -> Result<()>;
    /// Puts replayed entries of `source` at `lines` back to pending: a re-read rejected those
    /// lines again and their replayed payload no longer reads, so their rows are not in the
    /// partition any more.
    async fn reopen_dead_letters(&self, source: &str, lines: &[u64]) -> Result<()>;
    /// Deletes entries in one of `statuses` last seen before `before`; returns how many.
    async fn purge_dead_letters(
        &self,
        before: Timestamp,
        statuses: &[DeadLetterStatus],
    ) -> Result<u64>;
}

/// Results of quality checks: every check a gate ran, passed or failed, per try.
#[async_trait]
pub trait CheckStore: Send + Sync {
    /// Keeps the results (each try's results are new rows: a re-run keeps the earlier ones).
    async fn record_checks(&self, results: &[CheckResult]) -> Result<()>;
    /// Results matching the filter, oldest first.
    async fn checks(&self, filter: &CheckFilter) -> Result<Vec<CheckResult>>;
}

/// The whole store, as the runtime uses it.
pub trait Store:
    RunStore
    + TaskInstanceStore
    + PoolStore
    + ManifestStore
    + RejectStore
    + CheckpointStore
    + CheckStore
    + CoordinationStore
    + DatasetCommitStore
{
}
impl<
    T: RunStore
        + TaskInstanceStore
        + PoolStore
        + ManifestStore
        + RejectStore
        + CheckpointStore
        + CheckStore
        + CoordinationStore
        + DatasetCommitStore,
> Store for T
{
}

/// Opens the store a URL names: `sqlite://PATH` (the file is created if missing) or
/// `postgres://…` / `postgresql://…` (the database must exist; its tables are created).
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        return Ok(std::sync::Arc::new(
            SqlStore::open(std::path::Path::new(path)).await?,
        ));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(std::sync::Arc::new(SqlStore::connect_postgres(url).await?));
    }
    Err(StoreError::UnsupportedUrl(url.to_owned()))
}

/// PostgreSQL for tests: every test gets a schema of its own in the server the tests share.
pub mod testing {
    use std::sync::atomic::{AtomicU32, Ordering};

    /// The environment variable naming the tests' PostgreSQL database (`.ci/postgres` starts
    /// the server and prints it).
    pub const POSTGRES_URL_VAR: &str = "WEIR_TEST_POSTGRES_URL";

    /// A `postgres://` URL whose connections use a new, empty schema. Panics, saying how to
    /// start the server, when there is none: a test that needs PostgreSQL never skips.
    pub async fn postgres_schema_url() -> String {
        let base = std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
            panic!(
                "{POSTGRES_URL_VAR} is not set: these tests need a PostgreSQL server; start one with `eval \"$(.ci/postgres)\"`"
            )
        });
        fresh_schema_url(&base, "t").await.unwrap_or_else(|e| {
            panic!("cannot reach the tests' PostgreSQL at {base} ({POSTGRES_URL_VAR}): {e}; start it with `eval \"$(.ci/postgres)\"`")
        })
    }

    /// A URL for the database `base` names whose connections use a new, empty schema
    /// `PREFIX_PID_N_NANOS` (for tests and benchmarks that must not see earlier data).
    pub async fn fresh_schema_url(base: &str, prefix: &str) -> Result<String, sqlx::Error> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let schema = format!(
            "{prefix}_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(base).await?;
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut conn)
            .await?;
        let sep = if base.contains('?') { '&' } else { '?' };
        Ok(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
    }
}
