//! Executable DAG definitions: what each task does, attached to the pure model of weir-core.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use weir_core::dag::TaskSpec;
use weir_core::{
    CoreError, Dag, DagId, DagProblem, MapSource, ParamKind, ParamSpec, ParamSpecs, TaskId,
    Timetable, Transient, TriggerRule,
};
use weir_store::TiKey;

use crate::context::TaskContext;
use crate::notify::{Notifier, NotifyEvent, NotifyRule};

/// What a task returns: a small JSON output (Airflow's XCom), or why it failed.
pub type TaskResult = Result<serde_json::Value, TaskError>;
pub type TaskFuture = Pin<Box<dyn Future<Output = TaskResult> + Send + 'static>>;
type TaskFn = Arc<dyn Fn(TaskContext) -> TaskFuture + Send + Sync>;
type CallbackFn = Arc<dyn Fn(&CallbackContext) + Send + Sync>;
/// What a task does when its batch goes to the dead-letter queue: its context and the error;
/// returns what it marked (say, the partitions it recorded as incomplete).
pub type DeadLetterFn = Arc<dyn Fn(TaskContext, String) -> TaskFuture + Send + Sync>;

/// Why a try did not succeed: with `Ok(output)`, the closed set of a try's outcomes (success,
/// failed and retryable, failed for good, skipped). A failed task is data: it flows into the
/// store like success does.
///
/// `?` classifies: any error that says whether it is [`Transient`] converts into
/// [`TaskError::Retryable`] or [`TaskError::Fatal`] accordingly (a busy database or an
/// interrupted read retries; a missing column or a source that is a folder fails at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskError {
    /// A failure of the environment that another try may not meet; retried while tries are left.
    Retryable(String),
    /// A mistake in the input, the config or the code; the task fails now, whatever retries are
    /// left, because trying again cannot fix it.
    Fatal(String),
    /// The task decided it has nothing to do: it ends `skipped` (Airflow's
    /// `AirflowSkipException`).
    Skip(String),
    /// A sensor's condition is not met yet: the instance gives its slot back, waits in
    /// `up_for_reschedule` until `at`, then pokes again in the same try (no retry is used).
    Reschedule { at: Timestamp, reason: String },
}

impl TaskError {
    /// A failure that retries may fix (a flaky source, a timeout).
    pub fn retryable(message: impl Into<String>) -> Self {
        TaskError::Retryable(message.into())
    }

    /// A failure that retrying cannot fix; the task fails now.
    pub fn fatal(message: impl Into<String>) -> Self {
        TaskError::Fatal(message.into())
    }

    /// Ends the task as skipped.
    pub fn skip(reason: impl Into<String>) -> Self {
        TaskError::Skip(reason.into())
    }

    /// Asks to poke again at `at` (see [`TaskError::Reschedule`]).
    pub fn reschedule(at: Timestamp, reason: impl Into<String>) -> Self {
        TaskError::Reschedule {
            at,
            reason: reason.into(),
        }
    }

    pub fn message(&self) -> &str {
        match self {
            TaskError::Retryable(m) | TaskError::Fatal(m) | TaskError::Skip(m) => m,
            TaskError::Reschedule { reason, .. } => reason,
        }
    }

    /// The same outcome with `context` (what the task was doing) put before the message.
    pub fn context(self, context: impl fmt::Display) -> Self {
        match self {
            TaskError::Retryable(m) => TaskError::Retryable(format!("{context}: {m}")),
            TaskError::Fatal(m) => TaskError::Fatal(format!("{context}: {m}")),
            TaskError::Skip(m) => TaskError::Skip(format!("{context}: {m}")),
            TaskError::Reschedule { at, reason } => TaskError::Reschedule {
                at,
                reason: format!("{context}: {reason}"),
            },
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// Errors that know whether a retry can help convert by that knowledge, so task code can use `?`.
impl<E: Transient> From<E> for TaskError {
    fn from(e: E) -> Self {
        if e.is_transient() {
            TaskError::Retryable(e.to_string())
        } else {
            TaskError::Fatal(e.to_string())
        }
    }
}

/// What a callback sees about the try that triggered it.
#[derive(Debug, Clone)]
pub struct CallbackContext {
    pub key: TiKey,
    pub try_number: u32,
    pub logical_date: Timestamp,
    pub error: Option<String>,
    /// When the next try may start (retry callbacks only).
    pub retry_at: Option<Timestamp>,
    /// When the try's end was handled: a retry's delay is `retry_at - at`.
    pub at: Timestamp,
}

/// A task of a [`DagDef`]: its settings and the async function that does the work.
#[derive(Clone)]
pub struct Task {
    id: String,
    upstream: Vec<String>,
    expand_from: Option<String>,
    expand_literal: Option<Vec<serde_json::Value>>,
    spec: TaskSpec,
    run: Option<TaskFn>,
    /// What the layer that made the task hangs on it (weir-ops: the operator), found again
    /// with [`Task::attachment`] — to replay its dead letters, say.
    attachment: Option<Arc<dyn std::any::Any + Send + Sync>>,
    pub(crate) on_success: Option<CallbackFn>,
    pub(crate) on_retry: Option<CallbackFn>,
    pub(crate) on_failure: Option<CallbackFn>,
    /// When its last try fails: send the batch to the dead-letter queue and succeed with a
    /// warning ([`Task::dead_letter_on_exhaustion`]) instead of failing.
    pub(crate) dead_letter: bool,
    /// What marks a dead-lettered batch (an operator's incomplete partitions).
    pub(crate) dead_letter_hook: Option<DeadLetterFn>,
    /// Where this task's events are sent besides the DAG's rules ([`Task::notify`]).
    pub(crate) notify: Vec<NotifyRule>,
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl Task {
    /// A task that does nothing until [`Task::run`] says what.
    pub fn new(id: impl Into<String>) -> Self {
        Task {
            id: id.into(),
            upstream: Vec::new(),
            expand_from: None,
            expand_literal: None,
            spec: TaskSpec::new(TaskId::new("placeholder").expect("valid id")),
            run: None,
            attachment: None,
            on_success: None,
            on_retry: None,
            on_failure: None,
            dead_letter: false,
            dead_letter_hook: None,
            notify: Vec::new(),
        }
    }

    /// The work: an async function of the task's context returning its JSON output.
    pub fn run<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = TaskResult> + Send + 'static,
    {
        self.run = Some(Arc::new(move |ctx| Box::pin(f(ctx))));
        self
    }

    /// Hangs a value on the task for the layer that built it (see [`Task::attachment`]).
    pub fn attach<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.attachment = Some(Arc::new(value));
        self
    }

    /// The value [`Task::attach`] hung on the task, if it is a `T`.
    pub fn attachment<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.attachment.as_deref()?.downcast_ref::<T>()
    }

    /// The task's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Upstream tasks that must finish (per the trigger rule) before this one runs.
    pub fn after<I, S>(mut self, upstream: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.upstream.extend(upstream.into_iter().map(Into::into));
        self
    }

    pub fn trigger_rule(mut self, rule: TriggerRule) -> Self {
        self.spec.trigger_rule = rule;
        self
    }

    pub fn retries(mut self, retries: u32) -> Self {
        self.spec.retry.retries = retries;
        self
    }

    pub fn retry_delay(mut self, delay: SignedDuration) -> Self {
        self.spec.retry.retry_delay = delay;
        self
    }

    /// Exponential backoff with this multiplier (Airflow's `retry_exponential_backoff`).
    pub fn backoff(mut self, multiplier: f64) -> Self {
        self.spec.retry.backoff_multiplier = Some(multiplier);
        self
    }

    pub fn max_retry_delay(mut self, max: SignedDuration) -> Self {
        self.spec.retry.max_retry_delay = Some(max);
        self
    }

    /// Runs in the named pool, taking `slots` of its slots while running.
    pub fn pool(mut self, name: impl Into<String>, slots: u32) -> Self {
        self.spec.pool = name.into();
        self.spec.pool_slots = slots;
        self
    }

    pub fn execution_timeout(mut self, timeout: SignedDuration) -> Self {
        self.spec.execution_timeout = Some(timeout);
        self
    }

    /// One instance per element of the upstream task's JSON-array output (Airflow's `expand`).
    /// The upstream is added to [`Task::after`] if it is not there.
    pub fn expand(mut self, upstream: impl Into<String>) -> Self {
        let upstream = upstream.into();
        if !self.upstream.contains(&upstream) {
            self.upstream.push(upstream.clone());
        }
        self.expand_from = Some(upstream);
        self
    }

    /// One instance per element of a literal list.
    pub fn expand_over(mut self, items: Vec<serde_json::Value>) -> Self {
        self.expand_literal = Some(items);
        self
    }

    /// Fixed arguments for every instance (Airflow's `partial`): a JSON object.
    pub fn partial(mut self, args: serde_json::Value) -> Self {
        self.spec.partial = args;
        self
    }

    pub fn setup(mut self) -> Self {
        self.spec.is_setup = true;
        self
    }

    pub fn doc(mut self, doc: impl Into<String>) -> Self {
        self.spec.doc = doc.into();
        self
    }

    pub fn on_success(mut self, f: impl Fn(&CallbackContext) + Send + Sync + 'static) -> Self {
        self.on_success = Some(Arc::new(f));
        self
    }

    pub fn on_retry(mut self, f: impl Fn(&CallbackContext) + Send + Sync + 'static) -> Self {
        self.on_retry = Some(Arc::new(f));
        self
    }

    /// On retry exhaustion (the last try failed, or a try failed for good), send the batch to
    /// the dead-letter queue — its run, task, map index, item, interval and error, keyed by
    /// its position so a re-run does not add a second — and succeed with a warning, instead of
    /// failing and failing everything downstream. The output says `dead_lettered: true`.
    pub fn dead_letter_on_exhaustion(mut self) -> Self {
        self.dead_letter = true;
        self
    }

    /// What runs when the batch goes to the dead-letter queue (see
    /// [`Task::dead_letter_on_exhaustion`], which this does not turn on): an operator marks
    /// the partitions it did not write as incomplete in their manifests.
    pub fn on_dead_letter<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(TaskContext, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = TaskResult> + Send + 'static,
    {
        self.dead_letter_hook = Some(Arc::new(move |ctx, e| Box::pin(f(ctx, e))));
        self
    }

    pub fn on_failure(mut self, f: impl Fn(&CallbackContext) + Send + Sync + 'static) -> Self {
        self.on_failure = Some(Arc::new(f));
        self
    }

    /// Sends this task's events `on` to `notifier` (a [`crate::Webhook`], a
    /// [`crate::CommandNotifier`], a [`crate::LogFileNotifier`]…), besides the DAG's rules
    /// ([`DagDefBuilder::notify`]). Sent once the event is committed; a notifier that fails is
    /// logged and never fails the task.
    pub fn notify(mut self, notifier: Arc<dyn Notifier>, on: &[NotifyEvent]) -> Self {
        self.notify.push(NotifyRule::new(notifier, on));
        self
    }

    pub(crate) fn call(&self, ctx: TaskContext) -> TaskFuture {
        match &self.run {
            Some(f) => f(ctx),
            None => Box::pin(async { Ok(serde_json::Value::Null) }),
        }
    }
}

/// A DAG with its tasks' code: what the executor runs.
#[derive(Debug)]
pub struct DagDef {
    pub dag: Dag,
    /// Task code by position in `dag.tasks()`.
    pub(crate) tasks: Vec<Task>,
    /// Pools this DAG needs, created with these slots if the store does not have them.
    pub pools: BTreeMap<String, u32>,
    /// Which version of its source this is (a DAG file's content hash), stored with every run
    /// created from it; `None` for a DAG compiled into the binary.
    pub version: Option<String>,
    /// The source text of that version (a DAG file's), kept in the store with the first run
    /// created from it so that the run can be resumed as it started.
    pub source: Option<Arc<str>>,
    /// Where every task's events are sent ([`DagDefBuilder::notify`]).
    pub(crate) notify: Vec<NotifyRule>,
}

impl DagDef {
    pub fn builder(id: impl Into<String>) -> DagDefBuilder {
        DagDefBuilder {
            id: id.into(),
            description: String::new(),
            tags: Vec::new(),
            schedule: None,
            start_date: None,
            end_date: None,
            catchup: false,
            max_active_runs: 16,
            max_active_tasks: 16,
            max_map_length: 1_000_000,
            grace: SignedDuration::ZERO,
            params: ParamSpecs::new(),
            pools: BTreeMap::new(),
            tasks: Vec::new(),
            version: None,
            source: None,
            notify: Vec::new(),
        }
    }

    pub fn id(&self) -> &DagId {
        &self.dag.id
    }

    pub(crate) fn task_at(&self, position: usize) -> &Task {
        &self.tasks[position]
    }

    /// The DAG's own notification rules: they apply to every task.
    pub fn notify_rules(&self) -> &[NotifyRule] {
        &self.notify
    }

    /// The notification rules of task `task_id`: the DAG's, then the task's own (empty for a
    /// task the DAG does not have).
    pub fn notify_rules_of(&self, task_id: &str) -> Vec<&NotifyRule> {
        match self.dag.position(task_id) {
            Some(position) => self.notify_rules_at(position).collect(),
            None => Vec::new(),
        }
    }

    /// The notification rules of the task at `position`: the DAG's, then the task's own.
    pub(crate) fn notify_rules_at(&self, position: usize) -> impl Iterator<Item = &NotifyRule> {
        self.notify.iter().chain(self.tasks[position].notify.iter())
    }

    /// The task `id`, with its code.
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.tasks.get(self.dag.position(id)?)
    }

    /// A run's params: the declared defaults overridden by its conf, each value checked and typed.
    /// A value that does not fit its declaration, or a name the DAG does not declare, is an error
    /// naming the param, the value and what is accepted.
    pub fn resolve_params(
        &self,
        conf: &serde_json::Value,
    ) -> Result<BTreeMap<String, serde_json::Value>, weir_core::ParamError> {
        self.dag.params.resolve(self.dag.id.as_str(), conf)
    }

    /// The zone a run with these (resolved) params is cut in: its [`ZONE_PARAM`] when the DAG
    /// declares one and the run sets it, else the schedule's zone (UTC without a schedule).
    pub fn run_zone(&self, params: &BTreeMap<String, serde_json::Value>) -> TimeZone {
        let declared = self
            .dag
            .params
            .get(ZONE_PARAM)
            .is_some_and(|p| p.kind == ParamKind::Zone);
        params
            .get(ZONE_PARAM)
            .filter(|_| declared)
            .and_then(|v| v.as_str())
            .and_then(|name| TimeZone::get(name).ok())
            .unwrap_or_else(|| self.schedule_zone())
    }

    /// The zone of the DAG's schedule (UTC without a schedule).
    pub fn schedule_zone(&self) -> TimeZone {
        self.dag
            .schedule
            .as_ref()
            .map(|tt| tt.time_zone())
            .unwrap_or(TimeZone::UTC)
    }

    /// The DAG's schedule on the wall clock of `zone`: the intervals of runs cut in that zone.
    /// Schedules without a zone of their own (fixed deltas, events) are returned as they are.
    pub fn schedule_in(&self, zone: &TimeZone) -> Option<Arc<dyn Timetable>> {
        let tt = self.dag.schedule.as_ref()?;
        if tt.time_zone() == *zone {
            return Some(tt.clone());
        }
        Some(tt.in_zone(zone).unwrap_or_else(|| tt.clone()))
    }
}

/// The param that, declared with [`ParamKind::Zone`], sets the zone a run is cut in: its data
/// interval, the dates on the command line, and the windows its tasks read.
pub const ZONE_PARAM: &str = "tz";

/// Collects a DAG definition; [`DagDefBuilder::build`] validates it all at once.
#[derive(Debug)]
pub struct DagDefBuilder {
    id: String,
    description: String,
    tags: Vec<String>,
    schedule: Option<Arc<dyn Timetable>>,
    start_date: Option<Timestamp>,
    end_date: Option<Timestamp>,
    catchup: bool,
    max_active_runs: u32,
    max_active_tasks: u32,
    max_map_length: usize,
    grace: SignedDuration,
    params: ParamSpecs,
    pools: BTreeMap<String, u32>,
    tasks: Vec<Task>,
    version: Option<String>,
    source: Option<Arc<str>>,
    notify: Vec<NotifyRule>,
}

impl DagDefBuilder {
    /// The version of the DAG's source (a DAG file's content hash), stored with its runs.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// The source text the DAG was read from (a DAG file's): with a [`Registry::set_loader`],
    /// a later process can rebuild this version from it.
    pub fn source_text(mut self, text: impl Into<Arc<str>>) -> Self {
        self.source = Some(text.into());
        self
    }

    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    pub fn tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    pub fn schedule(mut self, timetable: Arc<dyn Timetable>) -> Self {
        self.schedule = Some(timetable);
        self
    }

    pub fn start_date(mut self, start: Timestamp) -> Self {
        self.start_date = Some(start);
        self
    }

    pub fn end_date(mut self, end: Timestamp) -> Self {
        self.end_date = Some(end);
        self
    }

    pub fn catchup(mut self, catchup: bool) -> Self {
        self.catchup = catchup;
        self
    }

    pub fn max_active_runs(mut self, n: u32) -> Self {
        self.max_active_runs = n;
        self
    }

    pub fn max_active_tasks(mut self, n: u32) -> Self {
        self.max_active_tasks = n;
        self
    }

    pub fn max_map_length(mut self, n: usize) -> Self {
        self.max_map_length = n;
        self
    }

    /// Extra wait after an interval ends before its run is due, for late-arriving data.
    pub fn grace(mut self, grace: SignedDuration) -> Self {
        self.grace = grace;
        self
    }

    /// Declares a param a run's `--conf NAME=VALUE` may set: its type, bounds, default and doc.
    /// A param named [`ZONE_PARAM`] of the zone kind sets the zone the run is cut in.
    pub fn param(mut self, spec: ParamSpec) -> Self {
        self.params.push(spec);
        self
    }

    /// Declares several params at once (a shared set such as an operator's).
    pub fn params(mut self, specs: impl IntoIterator<Item = ParamSpec>) -> Self {
        for spec in specs {
            self.params.push(spec);
        }
        self
    }

    /// Declares a pool this DAG uses, created with `slots` if the store does not have it yet.
    pub fn pool(mut self, name: impl Into<String>, slots: u32) -> Self {
        self.pools.insert(name.into(), slots);
        self
    }

    pub fn task(mut self, task: Task) -> Self {
        self.tasks.push(task);
        self
    }

    /// Sends the events `on` of every task of this DAG to `notifier` (a [`crate::Webhook`], a
    /// [`crate::CommandNotifier`], a [`crate::LogFileNotifier`]…); [`Task::notify`] adds rules
    /// for one task. Sent once the event is committed; a notifier that fails is logged and
    /// never fails the task.
    pub fn notify(mut self, notifier: Arc<dyn Notifier>, on: &[NotifyEvent]) -> Self {
        self.notify.push(NotifyRule::new(notifier, on));
        self
    }

    /// Validates ids, dependencies, mappings and settings, reporting every problem at once.
    pub fn build(self) -> Result<DagDef, CoreError> {
        let dag_id = DagId::new(self.id.clone())?;
        let mut problems = Vec::new();
        let mut specs = Vec::new();
        for task in &self.tasks {
            let id = match TaskId::new(task.id.clone()) {
                Ok(id) => id,
                Err(e) => {
                    problems.push(DagProblem::InvalidSetting {
                        task: Some(task.id.clone()),
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            let mut spec = task.spec.clone();
            spec.id = id;
            spec.upstream = Vec::new();
            for up in &task.upstream {
                match TaskId::new(up.clone()) {
                    Ok(up) => spec.upstream.push(up),
                    Err(_) => problems.push(DagProblem::UnknownUpstream {
                        task: task.id.clone(),
                        upstream: up.clone(),
                    }),
                }
            }
            spec.expand = match (&task.expand_from, &task.expand_literal) {
                (Some(_), Some(_)) => {
                    problems.push(DagProblem::InvalidMapping {
                        task: task.id.clone(),
                        reason: "expand over an upstream or over a literal list, not both"
                            .to_owned(),
                    });
                    None
                }
                (Some(from), None) => TaskId::new(from.clone()).ok().map(MapSource::Upstream),
                (None, Some(items)) => Some(MapSource::Literal(items.clone())),
                (None, None) => None,
            };
            specs.push(spec);
        }
        let mut builder = Dag::builder(dag_id.clone());
        builder.description = self.description;
        builder.tags = self.tags;
        builder.schedule = self.schedule;
        builder.start_date = self.start_date;
        builder.end_date = self.end_date;
        builder.catchup = self.catchup;
        builder.max_active_runs = self.max_active_runs;
        builder.max_active_tasks = self.max_active_tasks;
        builder.max_map_length = self.max_map_length;
        builder.grace = self.grace;
        builder.params = self.params;
        builder.tasks = specs;
        let dag = match builder.build() {
            Ok(dag) if problems.is_empty() => dag,
            Ok(_) => {
                return Err(CoreError::InvalidDag {
                    dag: dag_id.to_string(),
                    problems,
                });
            }
            Err(CoreError::InvalidDag { problems: more, .. }) => {
                problems.extend(more);
                return Err(CoreError::InvalidDag {
                    dag: dag_id.to_string(),
                    problems,
                });
            }
            Err(e) => return Err(e),
        };
        let mut by_id: BTreeMap<String, Task> =
            self.tasks.into_iter().map(|t| (t.id.clone(), t)).collect();
        let tasks = dag
            .tasks()
            .iter()
            .map(|spec| by_id.remove(spec.id.as_str()).expect("validated task"))
            .collect();
        Ok(DagDef {
            dag,
            tasks,
            pools: self.pools,
            version: self.version,
            source: self.source,
            notify: self.notify,
        })
    }
}

/// The DAGs a binary knows, by id.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    dags: BTreeMap<DagId, Arc<DagDef>>,
    /// Every version of a versioned DAG this registry has held: a run keeps the version it
    /// was created with while its file changes.
    versions: BTreeMap<(DagId, String), Arc<DagDef>>,
    /// Rebuilds a DAG from a stored source text (the DAG-file parser).
    loader: Option<Loader>,
}

/// Parses a DAG from source text; the error lists its problems.
pub type LoadFn = dyn Fn(&str) -> Result<DagDef, String> + Send + Sync;

/// Rebuilds a DAG from its stored source text.
#[derive(Clone)]
pub struct Loader(pub Arc<LoadFn>);

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Loader")
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a DAG; a second DAG with the same id replaces the first (as the current version;
    /// the earlier version stays reachable with [`Registry::get_version`]).
    pub fn add(&mut self, dag: DagDef) -> &mut Self {
        let dag = Arc::new(dag);
        if let Some(version) = &dag.version {
            self.versions
                .insert((dag.dag.id.clone(), version.clone()), dag.clone());
        }
        self.dags.insert(dag.dag.id.clone(), dag);
        self
    }

    /// The DAG `id` at `version`, if this registry (or one it kept versions of) held it.
    pub fn get_version(&self, id: &str, version: &str) -> Option<&Arc<DagDef>> {
        let id = DagId::new(id).ok()?;
        self.versions.get(&(id, version.to_owned()))
    }

    /// How to rebuild a versioned DAG from its stored source (a run resumed by a process that
    /// never loaded that version).
    pub fn set_loader(&mut self, loader: Loader) -> &mut Self {
        self.loader = Some(loader);
        self
    }

    pub fn loader(&self) -> Option<&Loader> {
        self.loader.as_ref()
    }

    /// Keeps every version `earlier` held that this registry does not (a reload keeps the
    /// versions runs in flight were created with).
    pub fn keep_versions_of(&mut self, earlier: &Registry) {
        for (key, dag) in &earlier.versions {
            self.versions
                .entry(key.clone())
                .or_insert_with(|| dag.clone());
        }
    }

    pub fn get(&self, id: &str) -> Option<&Arc<DagDef>> {
        self.dags.get(id)
    }

    pub fn dags(&self) -> impl Iterator<Item = &Arc<DagDef>> {
        self.dags.values()
    }
}
