//! The operator catalogue: the building blocks every pipeline is made of, each a struct with a
//! serde config, so a DAG written in Rust and a DAG file name the same thing the same way.
//!
//! | operator | does | output (its downstreams read it with `ctx.input::<T>`) |
//! |---|---|---|
//! | [`LoadWindow`] | streams a source, keeps the run's interval, routes rows through a partitioner (date, hash, geo), commits atomically, records manifests and keeps rejects | [`Loaded`] |
//! | [`Partition`] | lays out a whole source with any of the five partitioners (date, hash, geo, id range planned from the data, size learning from each commit), retiring partitions an earlier layout left | [`Loaded`] |
//! | [`PlanRanges`] | plans equal-count ranges of an integer key from the source (a bounded reservoir, recounted exactly), writes `_range_plan.json` | a **list** of [`RangeItem`] a mapped task can `expand` over |
//! | [`Command`] | runs a program with the run's context in `WEIR_*` variables; exit code → outcome, output into the try's log | [`CommandOutput`] |
//! | [`Sql`] | a DataFusion query over named datasets and source files (`local_date(ts, $tz)` cuts local days as `dt=` does), run values bound as typed `$params`; the result committed as a partitioned dataset or returned as rows | [`SqlOutput`]: rows are a **list** a mapped task can `expand` over |
//! | [`Verify`] | reads committed partitions back and compares rows, bytes, files and checksum with their manifests | [`Verified`] |
//! | [`WaitFor`] | a sensor: waits until another DAG's partitions are committed (manifest + folder), poking every `poke_interval` until `timeout`; `reschedule` mode frees its slot between pokes (`up_for_reschedule`) | `{dataset, partitions}` |
//! | [`dlq::ReplayDeadLetters`] | a DLQ processing task: replays a DAG's pending dead letters (records through the task that set them aside, batches by running their instance again), quarantining repeat failures | `ReplayReport` |
//! | [`WriteTable`] | loads a dataset or query result into a SQLite table: bulk insert, transaction batches, upsert by key, index drop/rebuild | [`TableWritten`] |
//!
//! An operator becomes a task with [`task`]; its config is checked when the DAG is built
//! ([`Operator::validate`]), so a bad config is a DAG error, not a failed run.
//!
//! `load_window` and `partition` take quality gates ([`check`]): `input_checks` over the
//! source before it is read, `checks` over the staged partitions before they are published.

pub mod check;
pub mod checkpointed;
mod command;
pub mod dlq;
pub mod load;
mod ranges;
mod sql;
mod table;
pub mod testing;
mod verify;
mod wait;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use weir_runtime::{Task, TaskContext, TaskError, TaskResult};

pub use check::{Check, CheckGate, CheckSeverity, Rule};
pub use command::{Command, CommandOutput};
pub use load::{Landed, Layout, LoadWindow, Loaded, Partition, PartitionBy, window_param_specs};
pub use ranges::{PLAN_FILE, PlanRanges, RangeItem, plan_ranges};
pub use sql::{Sql, SqlOutput, SqlResult, Table, identifier};
pub use table::{TableMode, TableSink, TableWritten, WriteTable};
pub use verify::{Verified, VerifiedPartition, Verify};
pub use wait::{SensorMode, WaitFor};
pub use weir_query::QueryParam;

/// One building block of a pipeline.
#[async_trait]
pub trait Operator: Send + Sync + std::fmt::Debug + 'static {
    /// The name DAG files use for it (`operator = "sql"`).
    fn name(&self) -> &'static str;

    /// Checks the config before any run: every problem, one sentence each.
    fn validate(&self) -> Vec<String> {
        Vec::new()
    }

    /// Does the work of one try.
    async fn execute(&self, ctx: TaskContext) -> TaskResult;

    /// Marks what a batch that went to the dead-letter queue did not write (its partitions, as
    /// incomplete in their manifests); returns what it marked. Default: nothing to mark.
    async fn mark_incomplete(&self, ctx: TaskContext, error: String) -> TaskResult {
        let _ = (ctx, error);
        Ok(serde_json::Value::Null)
    }

    /// Feeds dead letters this task set aside (`ctx` is its run's, as its latest try saw it)
    /// through its transform again, committing what passes; `dry_run` commits nothing. Says
    /// per dead letter where it went or why not. Operators that read sources row by row
    /// replay; the others say to re-run the task.
    async fn replay(
        &self,
        ctx: TaskContext,
        letters: Vec<weir_store::DeadLetter>,
        batch: String,
        dry_run: bool,
    ) -> Result<Vec<weir_store::ReplayOutcome>, TaskError> {
        let _ = (letters, batch, dry_run);
        Err(TaskError::fatal(format!(
            "task `{}` ({} operator) cannot replay dead letters; clear and re-run it instead",
            ctx.task_id,
            self.name()
        )))
    }
}

/// Every operator's config, tagged by name: what a DAG file's `[[task]]` table holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "operator", rename_all = "snake_case")]
pub enum OperatorConfig {
    Command(Command),
    LoadWindow(LoadWindow),
    Partition(Partition),
    PlanRanges(PlanRanges),
    Sql(Sql),
    Verify(Verify),
    WaitFor(WaitFor),
    WriteTable(WriteTable),
    ReplayDeadLetters(dlq::ReplayDeadLetters),
}

impl OperatorConfig {
    pub fn into_operator(self) -> Arc<dyn Operator> {
        match self {
            OperatorConfig::Command(op) => Arc::new(op),
            OperatorConfig::LoadWindow(op) => Arc::new(op),
            OperatorConfig::Partition(op) => Arc::new(op),
            OperatorConfig::PlanRanges(op) => Arc::new(op),
            OperatorConfig::Sql(op) => Arc::new(op),
            OperatorConfig::Verify(op) => Arc::new(op),
            OperatorConfig::WaitFor(op) => Arc::new(op),
            OperatorConfig::WriteTable(op) => Arc::new(op),
            OperatorConfig::ReplayDeadLetters(op) => Arc::new(op),
        }
    }
}

/// A task that runs `op`. A config `validate` refuses makes a task that fails at once with the
/// problems listed (DAG files check them earlier, with `weir dags validate`).
pub fn task(id: impl Into<String>, op: impl Operator) -> Task {
    let op: Arc<dyn Operator> = Arc::new(op);
    task_of(id, op)
}

/// [`task`] for an operator already behind an `Arc` (as [`OperatorConfig::into_operator`] gives).
pub fn task_of(id: impl Into<String>, op: Arc<dyn Operator>) -> Task {
    let id = id.into();
    let problems = op.validate();
    let doc = format!("{} operator", op.name());
    let marker = op.clone();
    Task::new(id.clone())
        .doc(doc)
        .attach(op.clone())
        .on_dead_letter(move |ctx, error| {
            let op = marker.clone();
            async move { op.mark_incomplete(ctx, error).await }
        })
        .run(move |ctx| {
            let op = op.clone();
            let problems = problems.clone();
            let id = id.clone();
            async move {
                if !problems.is_empty() {
                    return Err(TaskError::fatal(format!(
                        "task `{id}`: invalid {} config: {}",
                        op.name(),
                        problems.join("; ")
                    )));
                }
                op.execute(ctx).await
            }
        })
}

/// A path in a config: `{param:NAME}` stands for the run param NAME, then `{home}` (also in
/// the param's value) for the weir home and `{dag_id}` for the DAG's id; a relative path is taken from
/// the current folder.
pub fn expand_path(ctx: &TaskContext, path: &Path) -> PathBuf {
    PathBuf::from(expand_text(ctx, &path.to_string_lossy()))
}

/// A text in a config with [`expand_path`]'s placeholders filled in.
pub fn expand_text(ctx: &TaskContext, source: &str) -> String {
    // One pass: a param's value is inserted as it is, never expanded again (a value that
    // names a param cannot make the expansion loop).
    let mut text = String::with_capacity(source.len());
    let mut rest: &str = source;
    while let Some(at) = rest.find("{param:") {
        let Some(len) = rest[at..].find('}') else {
            break;
        };
        text.push_str(&rest[..at]);
        match ctx.params.get(&rest[at + 7..at + len]) {
            Some(serde_json::Value::String(s)) => text.push_str(s),
            Some(other) => text.push_str(&other.to_string()),
            None => {}
        }
        rest = &rest[at + len + 1..];
    }
    text.push_str(rest);
    text.replace("{home}", &ctx.home().to_string_lossy())
        .replace("{dag_id}", ctx.dag_id.as_str())
}

/// Runs blocking work (file and data IO) off the async threads; its error classifies itself
/// (an I/O hiccup retries, a missing column fails at once).
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, weir_data::DataError> + Send + 'static,
) -> Result<T, TaskError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => Ok(result?),
        Err(e) => Err(TaskError::fatal(format!("blocking work stopped: {e}"))),
    }
}

/// An output as the task's JSON value.
pub(crate) fn to_output(value: &impl Serialize) -> TaskResult {
    serde_json::to_value(value)
        .map_err(|e| TaskError::fatal(format!("the output does not serialize: {e}")))
}
