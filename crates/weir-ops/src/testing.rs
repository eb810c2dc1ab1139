//! Test helpers for your own DAGs: a temporary weir home with the real store and executor, a
//! manual clock, fixture sources written from literal rows, and assertions that say what
//! differed.
//!
//! Nothing here is a mock. [`TestHome`] is what `weir` runs on — a [`SqlStore`] in a temp
//! folder, a [`Registry`] of the DAGs under test and an [`Executor`] — so a test drives a DAG the
//! way `weir dags run` does: `trigger_run` creates the run (checking its `--conf` against the
//! declared params), the executor runs it with real concurrency, retries, trigger rules and
//! mapping, and every state change lands in the store, where the assertions read it.
//!
//! **Time is an argument.** The executor reads "now" from a [`ManualClock`]: fixed
//! ([`ManualClock::at`]; move it with [`ManualClock::set`] and [`ManualClock::advance`]) or
//! stepping ([`ManualClock::stepping`]: every reading is a fixed step after the previous one).
//! A [`TestHome::new`] home steps an hour per reading, so a retry scheduled "now + 5 minutes" is
//! due at the executor's next reading and a task's five tries run back to back with no real
//! waiting, while `retry_at` still holds the delay Airflow's formula gave.
//!
//! Why not `#[tokio::test(start_paused = true)]`: paused time auto-advances whenever the runtime
//! is idle — including while the SQLite store's sqlx worker thread is answering a query — so the
//! pool's acquire timeout fires (`PoolTimedOut`) on the first store call. A manual clock leaves
//! tokio's timer real and moves only weir's idea of the time.
//!
//! On a fixed clock a retry with a delay never comes due (the executor waits the delay for real,
//! reads the same "now" again, and waits again): use it for runs without delayed retries, or
//! use a stepping clock whose step is at least the longest retry delay.
//!
//! **Sources.** "In memory" means built in the test from literal rows: [`TestHome::source_csv`]
//! writes them as a CSV in the home (with [`TestHome::source_schema`], a `NAME.schema` sidecar
//! declaring column types), and the engine reads that file as it reads any source — the reader,
//! its type rules and its rejects are the real ones. [`TestHome::sample_orders`] writes weir's
//! deterministic generated orders.
//!
//! **One task.** A task's inputs are its upstreams' outputs, so [`TestHome::run_task`] runs the
//! whole run (the task's upstreams, the task, and whatever else the run holds) and returns that
//! task's outcome; for a fast test of one step, give the test a DAG of just the steps it needs.
//! [`TestHome::task_context`] builds the context a try of a task would get, for calling
//! task-level APIs (checkpoints, inputs, params) directly.
//!
//! The helpers panic with a message naming what failed: they are for `#[tokio::test]`s. Read
//! helpers that touch files ([`partitions`], [`read_partition`]) are synchronous; call them
//! between runs, not while one is running.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::record_batch::RecordBatch;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use weir_core::{DagId, RunState, TaskState};
use weir_data::{Dataset, PartitionKey, SampleSpec};
use weir_runtime::{
    BackfillOptions, BackfillReport, ClearSelection, Clock, DagDef, Executor, ExecutorOptions,
    Notification, Registry, Reprocess, RunOutcome, TaskContext, TriggerRequest,
};
use weir_store::{
    DeadLetter, RejectFilter, RunRecord, SqlStore, Store, TaskInstanceRecord, TryRecord,
};

/// Where a [`TestHome::new`] clock starts: 2026-01-01T00:00:00Z.
pub const DEFAULT_START: Timestamp = Timestamp::constant(1_767_225_600, 0);

/// How far a [`TestHome::new`] clock moves per reading: longer than any retry delay a test
/// would configure, so every retry is due at the next reading.
pub const DEFAULT_STEP: SignedDuration = SignedDuration::from_hours(1);

/// A [`Clock`] the test sets: fixed until moved, or stepping a fixed amount per reading.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
    step: SignedDuration,
}

impl ManualClock {
    /// A clock that reads `now` until it is moved.
    pub fn at(now: Timestamp) -> Self {
        ManualClock::stepping(now, SignedDuration::ZERO)
    }

    /// A clock whose first reading is `start` and each later reading `step` after the one
    /// before: time passes only as the engine looks at it, so delays elapse without waiting.
    pub fn stepping(start: Timestamp, step: SignedDuration) -> Self {
        ManualClock {
            now: Mutex::new(start),
            step,
        }
    }

    /// Sets the next reading to `now` (time may go backwards: the engine does not guard it).
    pub fn set(&self, now: Timestamp) {
        *self.lock() = now;
    }

    /// Moves the next reading forward by `by`.
    pub fn advance(&self, by: SignedDuration) {
        let mut now = self.lock();
        *now = now.saturating_add(by).unwrap_or(*now);
    }

    /// What the next reading will be, without taking a step.
    pub fn peek(&self) -> Timestamp {
        *self.lock()
    }

    /// How far each reading moves the clock (zero for a fixed clock).
    pub fn step(&self) -> SignedDuration {
        self.step
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Timestamp> {
        self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        let mut now = self.lock();
        let reading = *now;
        *now = reading.saturating_add(self.step).unwrap_or(reading);
        reading
    }
}

/// How one task of a run ended ([`TestHome::run_task`]).
#[derive(Debug, Clone)]
pub struct TaskOutcome {
    /// How the whole run ended.
    pub run: RunOutcome,
    pub state: TaskState,
    /// Tries the instance had in the run's current attempt (its try number).
    pub tries: u32,
    /// What the task returned, if it stored an output.
    pub output: Option<Value>,
    /// The last try's error, if it failed, was skipped, or is waiting to retry.
    pub error: Option<String>,
}

/// A temporary weir home: a real SQLite store, the DAGs under test and an executor on a
/// [`ManualClock`]. Deleted when dropped.
pub struct TestHome {
    _dir: tempfile::TempDir,
    home: PathBuf,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    ex: Arc<Executor>,
}

impl std::fmt::Debug for TestHome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestHome")
            .field("home", &self.home)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl TestHome {
    /// A home running `dags` on a clock that starts at [`DEFAULT_START`] and steps
    /// [`DEFAULT_STEP`] per reading.
    pub async fn new(dags: impl IntoIterator<Item = DagDef>) -> TestHome {
        TestHome::with_clock(dags, ManualClock::stepping(DEFAULT_START, DEFAULT_STEP)).await
    }

    /// A home running `dags` on `clock`.
    pub async fn with_clock(
        dags: impl IntoIterator<Item = DagDef>,
        clock: ManualClock,
    ) -> TestHome {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        let home = dir.path().join("weir-home");
        std::fs::create_dir_all(&home)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", home.display()));
        let db = home.join("weir.db");
        let store: Arc<dyn Store> = Arc::new(
            SqlStore::open(&db)
                .await
                .unwrap_or_else(|e| panic!("cannot open the store {}: {e}", db.display())),
        );
        let mut registry = Registry::new();
        for dag in dags {
            registry.add(dag);
        }
        let clock = Arc::new(clock);
        let ex = Arc::new(Executor::new(
            store.clone(),
            Arc::new(registry),
            clock.clone(),
            ExecutorOptions {
                parallelism: 8,
                home: home.clone(),
                ..ExecutorOptions::default()
            },
        ));
        TestHome {
            _dir: dir,
            home,
            store,
            clock,
            ex,
        }
    }

    /// The home folder (what tasks see as `ctx.home()` and `{home}`).
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// A path under the home (not created).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.home.join(rel)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn executor(&self) -> &Arc<Executor> {
        &self.ex
    }

    /// The executor's clock, to move it between runs.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    // -----------------------------------------------------------------------------------------
    // Sources.

    /// Writes `HOME/sources/NAME`: the `header` line, then `rows`, one line each — a fixture
    /// source built in the test, read by the engine as any file is.
    pub fn source_csv(&self, name: &str, header: &str, rows: &[&str]) -> PathBuf {
        let path = self.source_path(name);
        let mut text = String::with_capacity(
            header.len() + 1 + rows.iter().map(|r| r.len() + 1).sum::<usize>(),
        );
        text.push_str(header);
        text.push('\n');
        for row in rows {
            text.push_str(row);
            text.push('\n');
        }
        std::fs::write(&path, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// Writes the schema sidecar of source `NAME` (`orders.csv` → `orders.schema`): `column:
    /// type` lines (`amount: decimal(12,2) not null`) that loads use instead of inferring.
    pub fn source_schema(&self, name: &str, text: &str) -> PathBuf {
        let path = weir_data::source::schema_sidecar(&self.source_path(name));
        std::fs::write(&path, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// Writes weir's generated orders as `HOME/sources/NAME`, with their schema sidecar.
    pub fn sample_orders(&self, name: &str, spec: SampleSpec) -> PathBuf {
        let path = self.source_path(name);
        weir_data::write_orders_csv(&spec, &path)
            .unwrap_or_else(|e| panic!("cannot write the sample {}: {e}", path.display()));
        weir_data::write_orders_schema(&path)
            .unwrap_or_else(|e| panic!("cannot write the schema of {}: {e}", path.display()));
        path
    }

    fn source_path(&self, name: &str) -> PathBuf {
        let dir = self.home.join("sources");
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        dir.join(name)
    }

    // -----------------------------------------------------------------------------------------
    // Running.

    /// `weir dags run DAG --logical-date AT --conf …` without running it: creates the run (or
    /// clears a finished one at the same date).
    pub async fn trigger(&self, dag: &str, logical_date: Timestamp, conf: Value) -> RunRecord {
        weir_runtime::trigger_run(
            &self.ex,
            TriggerRequest {
                dag_id: dag_id(dag),
                logical_date: Some(logical_date),
                conf,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("cannot trigger {dag} at {logical_date}: {e}"))
    }

    /// `weir dags run DAG --logical-date AT --conf …`: creates the run and runs it to its end.
    pub async fn run(&self, dag: &str, logical_date: Timestamp, conf: Value) -> RunOutcome {
        let run = self.trigger(dag, logical_date, conf).await;
        self.ex
            .run(&run.dag_id, &run.run_id)
            .await
            .unwrap_or_else(|e| panic!("the executor could not run {}: {e}", run.run_id))
    }

    /// Runs a run of `dag` and returns how its (unmapped) task `task` ended. The whole run runs:
    /// see the module docs.
    pub async fn run_task(
        &self,
        dag: &str,
        task: &str,
        logical_date: Timestamp,
        conf: Value,
    ) -> TaskOutcome {
        let run = self.run(dag, logical_date, conf).await;
        let ti = self.instance(&run.run, task, None).await;
        let output = self
            .store
            .outputs(&run.run.dag_id, &run.run.run_id, task)
            .await
            .unwrap_or_else(|e| panic!("cannot read the output of {task}: {e}"))
            .into_iter()
            .next()
            .map(|(_, v)| v);
        TaskOutcome {
            run,
            state: ti.state,
            tries: ti.try_number,
            output,
            error: ti.error,
        }
    }

    /// `weir dags backfill DAG --from FROM --to TO --conf …` (logical dates, inclusive).
    pub async fn backfill(
        &self,
        dag: &str,
        from: Timestamp,
        to: Timestamp,
        conf: Value,
    ) -> BackfillReport {
        let opts = BackfillOptions {
            from,
            to,
            reprocess: Reprocess::None,
            max_active_runs: None,
            conf,
            queue: None,
        };
        weir_runtime::backfill(self.ex.clone(), &dag_id(dag), &opts, |_| {})
            .await
            .unwrap_or_else(|e| panic!("the backfill of {dag} from {from} to {to} failed: {e}"))
    }

    /// `weir tasks clear RUN TASK [--failed-only] --downstream`, then runs the run again (the
    /// cleared instances start over with a new clear number; the others keep their state).
    pub async fn rerun(&self, run: &RunRecord, task: &str, failed_only: bool) -> RunOutcome {
        let registry = self.ex.registry();
        let def = registry
            .get(run.dag_id.as_str())
            .unwrap_or_else(|| panic!("DAG {} is not in this home", run.dag_id));
        let tis = self.task_instances(run).await;
        let sel = ClearSelection::of(def, &tis, Some(task), None, failed_only, true)
            .unwrap_or_else(|e| panic!("cannot clear {task} of {}: {e}", run.run_id));
        self.store
            .clear_tasks(&run.dag_id, &run.run_id, &sel.whole, &sel.instances)
            .await
            .unwrap_or_else(|e| panic!("cannot clear {task} of {}: {e}", run.run_id));
        self.ex
            .take_over(&run.dag_id, &run.run_id)
            .await
            .unwrap_or_else(|e| panic!("the executor could not run {} again: {e}", run.run_id))
    }

    /// The context a try of `task` (instance `map_index`, `None` when unmapped) of `run` gets,
    /// as its latest try saw it (try number 0 before any try): for calling task-level APIs —
    /// `ctx.checkpoint`, `ctx.resume`, `ctx.param`, `ctx.input` — directly.
    pub async fn task_context(
        &self,
        run: &RunRecord,
        task: &str,
        map_index: Option<usize>,
    ) -> TaskContext {
        let (ctx, _) = weir_runtime::task_context(
            self.store.clone(),
            &self.ex.registry(),
            self.home.clone(),
            self.clock.clone(),
            &run.dag_id,
            &run.run_id,
            task,
            raw_index(map_index),
        )
        .await
        .unwrap_or_else(|e| panic!("no context for {task} of {}: {e}", run.run_id));
        ctx
    }

    // -----------------------------------------------------------------------------------------
    // Reading what happened.

    /// The run as the store has it now.
    pub async fn run_record(&self, run: &RunRecord) -> RunRecord {
        self.store
            .get_run(&run.dag_id, &run.run_id)
            .await
            .unwrap_or_else(|e| panic!("cannot read run {}: {e}", run.run_id))
            .unwrap_or_else(|| panic!("run {} does not exist", run.run_id))
    }

    /// Every task instance of a run.
    pub async fn task_instances(&self, run: &RunRecord) -> Vec<TaskInstanceRecord> {
        self.store
            .task_instances(&run.dag_id, &run.run_id)
            .await
            .unwrap_or_else(|e| panic!("cannot read the task instances of {}: {e}", run.run_id))
    }

    /// One task instance (`map_index` `None` for an unmapped task).
    pub async fn instance(
        &self,
        run: &RunRecord,
        task: &str,
        map_index: Option<usize>,
    ) -> TaskInstanceRecord {
        let tis = self.task_instances(run).await;
        let want = raw_index(map_index);
        match tis
            .iter()
            .find(|ti| ti.key.task_id.as_str() == task && ti.key.map_index.raw() == want)
        {
            Some(ti) => ti.clone(),
            None => panic!(
                "run {} has no instance {task}[{want}]; it has {}",
                run.run_id,
                summary(&tis)
            ),
        }
    }

    /// Every finished try of `task` in `run` (all instances, all attempts), in order.
    pub async fn tries(&self, run: &RunRecord, task: &str) -> Vec<TryRecord> {
        self.store
            .tries(&run.dag_id, &run.run_id)
            .await
            .unwrap_or_else(|e| panic!("cannot read the tries of {}: {e}", run.run_id))
            .into_iter()
            .filter(|t| t.task_id.as_str() == task)
            .collect()
    }

    /// What `task` returned in `run`: its output, or for a mapped task the list of its
    /// instances' outputs in map-index order (null where one stored none). Panics, naming the
    /// task's state, when it stored no output.
    pub async fn output(&self, run: &RunRecord, task: &str) -> Value {
        let outputs = self
            .store
            .outputs(&run.dag_id, &run.run_id, task)
            .await
            .unwrap_or_else(|e| panic!("cannot read the output of {task}: {e}"));
        let tis = self.task_instances(run).await;
        let mine: Vec<&TaskInstanceRecord> = tis
            .iter()
            .filter(|ti| ti.key.task_id.as_str() == task)
            .collect();
        let mapped = mine.iter().any(|ti| ti.key.map_index.raw() >= 0);
        if mapped {
            let mut values = vec![Value::Null; mine.len()];
            for (index, value) in outputs {
                if let Some(slot) = usize::try_from(index).ok().and_then(|i| values.get_mut(i)) {
                    *slot = value;
                }
            }
            return Value::Array(values);
        }
        match outputs.into_iter().next() {
            Some((_, value)) => value,
            None => panic!(
                "task {task} of {} stored no output; tasks: {}",
                run.run_id,
                summary(&tis)
            ),
        }
    }

    /// The dead letters `dag`'s tasks set aside (malformed rows, dead-lettered batches), by id.
    pub async fn dead_letters(&self, dag: &str) -> Vec<DeadLetter> {
        self.store
            .dead_letters(&RejectFilter {
                dag_id: Some(dag.to_owned()),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("cannot read the dead letters of {dag}: {e}"))
    }

    // -----------------------------------------------------------------------------------------
    // Assertions.

    /// Asserts the run (as the store has it now) is in `state`; otherwise panics listing every
    /// task instance with its state and error.
    pub async fn assert_run_state(&self, run: &RunRecord, state: RunState) {
        let now = self.run_record(run).await;
        if now.state != state {
            let tis = self.task_instances(run).await;
            panic!(
                "run {} is {:?}, expected {state:?}; tasks: {}",
                run.run_id,
                now.state,
                summary(&tis)
            );
        }
    }

    /// Asserts instance `task[map_index]` (`None`: unmapped) is in `state`, naming its error
    /// and every other instance otherwise.
    pub async fn assert_task_state(
        &self,
        run: &RunRecord,
        task: &str,
        map_index: Option<usize>,
        state: TaskState,
    ) {
        let ti = self.instance(run, task, map_index).await;
        if ti.state != state {
            let tis = self.task_instances(run).await;
            panic!(
                "{task}[{}] of {} is {:?} (error: {:?}), expected {state:?}; tasks: {}",
                raw_index(map_index),
                run.run_id,
                ti.state,
                ti.error,
                summary(&tis)
            );
        }
    }

    /// Asserts `task` had `n` finished tries in the run's current attempt (since its last
    /// clear), listing them otherwise.
    pub async fn assert_tries(&self, run: &RunRecord, task: &str, n: usize) {
        let clear = self.run_record(run).await.clear_number;
        let tries: Vec<TryRecord> = self
            .tries(run, task)
            .await
            .into_iter()
            .filter(|t| t.clear_number == clear)
            .collect();
        if tries.len() != n {
            let listed: Vec<String> = tries
                .iter()
                .map(|t| {
                    format!(
                        "try {} [{}]: {:?} {:?}",
                        t.try_number, t.map_index, t.state, t.error
                    )
                })
                .collect();
            panic!(
                "{task} of {} had {} tries in attempt {clear}, expected {n}: {listed:#?}",
                run.run_id,
                tries.len()
            );
        }
    }
}

/// Rows of every committed partition of the dataset at `output`, by partition path
/// (`dt=2026-03-08` → rows).
pub fn partitions(output: &Path) -> BTreeMap<String, u64> {
    Dataset::open(output)
        .and_then(|d| d.partitions())
        .unwrap_or_else(|e| panic!("cannot list the partitions of {}: {e}", output.display()))
        .into_iter()
        .map(|p| (p.partition, p.rows))
        .collect()
}

/// Asserts partition `partition` of the dataset at `output` holds `rows` rows, listing every
/// partition otherwise.
pub fn assert_partition_rows(output: &Path, partition: &str, rows: u64) {
    let all = partitions(output);
    match all.get(partition) {
        Some(n) if *n == rows => {}
        Some(n) => panic!(
            "{partition} of {} holds {n} rows, expected {rows}; partitions: {all:?}",
            output.display()
        ),
        None => panic!(
            "{} has no partition {partition} (expected {rows} rows); it has {all:?}",
            output.display()
        ),
    }
}

/// The record batches of partition `partition` (`dt=2026-03-08`) of the dataset at `output`,
/// partition columns restored.
pub fn read_partition(output: &Path, partition: &str) -> Vec<RecordBatch> {
    let key = PartitionKey::parse(partition)
        .unwrap_or_else(|e| panic!("{partition:?} is not a partition path: {e}"));
    Dataset::open(output)
        .and_then(|d| d.read_partition(&key))
        .unwrap_or_else(|e| panic!("cannot read {partition} of {}: {e}", output.display()))
}

/// The notifications a `LogFileNotifier` wrote to `path`, in order (none if it wrote none).
pub fn read_notifications(path: &Path) -> Vec<Notification> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: {l:?} is not a notification: {e}", path.display()))
        })
        .collect()
}

fn dag_id(id: &str) -> DagId {
    DagId::new(id).unwrap_or_else(|e| panic!("{id:?} is not a DAG id: {e}"))
}

fn raw_index(map_index: Option<usize>) -> i64 {
    map_index.map_or(-1, |i| i as i64)
}

/// One line per task instance: `task[index] state (error)`.
fn summary(tis: &[TaskInstanceRecord]) -> String {
    let lines: Vec<String> = tis
        .iter()
        .map(|ti| {
            format!(
                "\n  {}[{}] {:?} try {}{}",
                ti.key.task_id,
                ti.key.map_index.raw(),
                ti.state,
                ti.try_number,
                ti.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    lines.concat()
}
