//! The weir runtime: runs DAG runs to completion, schedules due runs, backfills date ranges.
//!
//! [`DagDef`] attaches what each task does to the pure [`weir_core::Dag`]; the [`Executor`] runs a
//! DAG run in-process with real concurrency (dependency order, trigger rules, dynamic mapping,
//! pools, `max_active_tasks`, retries with backoff, timeouts, callbacks) and records every state
//! change in the store *before* acting on it; the [`Scheduler`] creates runs when they are due and
//! recovers task instances orphaned by a killed process; [`backfill`] runs a range of intervals.
//! A task's retries, failures and successes can be sent to a [`Notifier`] (a [`Webhook`], a
//! [`CommandNotifier`], a [`LogFileNotifier`]) once they are committed.

mod backfill;
mod checkpoint;
mod clear;
mod clock;
mod context;
pub mod core;
mod dead_letter;
mod definition;
mod diagnose;
pub mod dispatch;
mod executor;
mod logs;
mod notify;
mod replay;
mod scheduler;
pub mod worker;

pub use backfill::{
    BackfillEvent, BackfillOptions, BackfillPlan, BackfillReport, PlanAction, PlanEntry, Reprocess,
    backfill, plan_backfill,
};
pub use checkpoint::{
    CHECKPOINT_VERSION, OnDamage, Resume, SourceIdentity, checkpoint_checksum, verify_checkpoint,
};
pub use clear::ClearSelection;
pub use clock::{Clock, TokioClock};
pub use context::TaskContext;
pub use dead_letter::batch_position;
pub use definition::{
    CallbackContext, DagDef, DagDefBuilder, DeadLetterFn, Loader, Registry, Task, TaskError,
    TaskFuture, TaskResult, ZONE_PARAM,
};
pub use diagnose::{Diagnosis, ErrorClass, RootCause, diagnose, error_class, error_classes};
pub use dispatch::Dispatcher;
pub use executor::{Executor, ExecutorOptions, RunOutcome, process_owner_id};
pub use logs::{TRY_SPAN, TryLogLayer, try_log_path};
pub use notify::{
    CommandNotifier, DEFAULT_NOTIFY_TIMEOUT, LogFileNotifier, Notification, Notifier, NotifyEvent,
    NotifyRule, Webhook, deliver,
};
pub use replay::task_context;
pub use scheduler::{Scheduler, TriggerRequest, trigger_run};
pub use worker::{Worker, WorkerOptions, WorkerReport};

/// The error type of weir-runtime: failures of the engine itself, never of a task (a failed task
/// is data: it ends in the `failed` state).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Store(#[from] weir_store::StoreError),
    #[error(transparent)]
    Core(#[from] weir_core::CoreError),
    /// A DAG id that the registry does not hold.
    #[error("no DAG named `{0}`; `weir dags list` shows the DAGs this binary knows")]
    UnknownDag(String),
    /// A run's conf that does not fit the DAG's declared params: the run was not created.
    #[error(transparent)]
    Param(#[from] weir_core::ParamError),
    /// Another live process drives the run (it holds the run's owner lease and renews it).
    #[error(
        "run `{run}` of DAG `{dag}` is being run by another process ({owner}, lease renewed until {lease_until}); wait for it to finish, or stop that process"
    )]
    RunHeld {
        dag: String,
        run: String,
        owner: String,
        lease_until: jiff::Timestamp,
    },
    /// A run id that does not exist for the DAG.
    #[error("DAG `{dag}` has no run `{run}`; `weir runs list --dag {dag}` shows its runs")]
    UnknownRun { dag: String, run: String },
    /// A request that cannot be honoured as asked, e.g. a manual run of a DAG without a schedule
    /// at a date that is not given.
    #[error("{0}")]
    Invalid(String),
    /// A bug in weir.
    #[error("internal error (a bug in weir): {0}")]
    Internal(String),
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
