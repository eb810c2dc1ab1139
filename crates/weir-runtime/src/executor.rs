//! The executor: runs one DAG run to completion, in-process, with real concurrency.
//!
//! One loop per run owns the run's in-memory state. Each turn it (1) takes the results of
//! finished tries, (2) decides what they unblock (trigger rules, mapping, skips), (3) commits all
//! of those state changes in one transaction, and only then (4) claims the next ready instances
//! (another commit) and starts them. Batching the commits keeps the per-instance cost in
//! microseconds; committing before acting keeps a killed process from losing or repeating work.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;
use weir_core::trigger::TriggerDecision;
use weir_core::{DagId, DataInterval, MapIndex, MapSource, RunId, RunState, TaskState};
use weir_store::{
    ClaimRun, NewTaskInstance, RunClaim, RunFence, RunRecord, Store, StoreError, TiChange, TiKey,
};

use crate::clock::{Clock, until};
use crate::context::{TaskContext, by_map_index};
use crate::definition::{CallbackContext, DagDef, Registry, TaskError, TaskResult};
use crate::notify::{Notification, NotifyEvent, NotifyRule};
use crate::{Result, RuntimeError};

/// Settings of an executor.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// Task instances running at once in this process, across all runs.
    pub parallelism: usize,
    /// How long a claimed instance is ours without a heartbeat; a killed process's instances
    /// are recovered once their lease has run out.
    pub lease: SignedDuration,
    /// The weir home folder handed to tasks.
    pub home: PathBuf,
    /// Who this process is in the store's run-owner leases (`host:pid:start`); the lease length
    /// is [`ExecutorOptions::lease`] too.
    pub owner: String,
    /// When all a run has left is sensors waiting in `up_for_reschedule`, give the run up
    /// (unfinished, without an owner) instead of waiting: what `weir scheduler --once` wants,
    /// so it returns while sensors wait and a later pass pokes them.
    pub yield_waiting_sensors: bool,
}

/// A name for this process in owner leases: host, pid and start time, unique across restarts.
pub fn process_owner_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        Timestamp::now().as_microsecond()
    )
}

impl Default for ExecutorOptions {
    fn default() -> Self {
        ExecutorOptions {
            parallelism: 64,
            lease: SignedDuration::from_secs(30),
            home: PathBuf::from(".weir"),
            owner: process_owner_id(),
            yield_waiting_sensors: false,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub run: RunRecord,
    pub state: RunState,
    /// The run had been left unfinished by another process (killed: its lease ran out) and this
    /// one took it over.
    pub resumed: bool,
}

/// Runs DAG runs; shares pools, per-DAG task limits and global parallelism across them.
pub struct Executor {
    store: Arc<dyn Store>,
    /// The DAGs, swapped whole when DAG files change ([`Executor::set_registry`]).
    registry: std::sync::RwLock<Arc<Registry>>,
    clock: Arc<dyn Clock>,
    opts: ExecutorOptions,
    home: Arc<PathBuf>,
    parallelism: Arc<Semaphore>,
    pools: Mutex<HashMap<String, (u32, Arc<Semaphore>)>>,
    dag_limits: Mutex<HashMap<DagId, Arc<Semaphore>>>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("opts", &self.opts)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// One task instance as the run loop tracks it.
#[derive(Debug, Clone)]
struct Inst {
    state: TaskState,
    try_number: u32,
}

use crate::core::Counts;

#[derive(Debug)]
struct TaskRt {
    insts: Vec<Inst>,
    /// Mapped and expanded: `insts[i]` is map index `i`.
    expanded: bool,
    /// The trigger rule has been applied (the task runs, or was skipped / upstream_failed).
    decided: bool,
    counts: Counts,
    items: Option<Arc<Vec<serde_json::Value>>>,
}

/// The result of one try, sent back to the run loop.
struct Finished {
    pos: usize,
    idx: usize,
    try_number: u32,
    result: TaskResult,
    /// The try failed with no try left and its batch went to the dead-letter queue: the
    /// success it reports is incomplete (notified as `retry_exhausted`).
    dead_lettered: Option<String>,
}

struct Permits {
    _global: OwnedSemaphorePermit,
    _dag: OwnedSemaphorePermit,
    _pool: OwnedSemaphorePermit,
}

impl Executor {
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        clock: Arc<dyn Clock>,
        opts: ExecutorOptions,
    ) -> Self {
        Executor {
            store,
            registry: std::sync::RwLock::new(registry),
            clock,
            home: Arc::new(opts.home.clone()),
            parallelism: Arc::new(Semaphore::new(opts.parallelism.max(1))),
            opts,
            pools: Mutex::new(HashMap::new()),
            dag_limits: Mutex::new(HashMap::new()),
        }
    }

    /// The weir home: logs and local data.
    pub fn home(&self) -> &std::path::Path {
        &self.home
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The DAGs as they are now.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the DAGs (DAG files changed). Runs in flight keep the definition they hold;
    /// a run created with a version the new registry still knows keeps that version.
    pub fn set_registry(&self, registry: Arc<Registry>) {
        *self.registry.write().unwrap_or_else(|p| p.into_inner()) = registry;
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn options(&self) -> &ExecutorOptions {
        &self.opts
    }

    /// See [`ExecutorOptions::yield_waiting_sensors`].
    pub fn set_yield_waiting_sensors(&mut self, yield_: bool) {
        self.opts.yield_waiting_sensors = yield_;
    }

    pub(crate) fn dag(&self, dag_id: &str) -> Result<Arc<DagDef>> {
        self.registry()
            .get(dag_id)
            .cloned()
            .ok_or_else(|| RuntimeError::UnknownDag(dag_id.to_owned()))
    }

    /// Keeps the source of a versioned DAG's version in the store, before a run refers to it.
    pub(crate) async fn keep_version(&self, def: &DagDef) -> Result<()> {
        if let (Some(version), Some(source)) = (&def.version, &def.source) {
            self.store
                .save_dag_version(&def.dag.id, version, source, self.clock.now())
                .await?;
        }
        Ok(())
    }

    /// The definition a run was created with: its stored version when the registry still has
    /// it, else the current one (a version this process never loaded, say after a restart on
    /// a changed file: said in the log).
    pub(crate) async fn dag_of_run(&self, run: &RunRecord) -> Result<Arc<DagDef>> {
        if let Some(version) = &run.dag_version {
            // The run's own version first: it runs even while its file is gone or broken.
            let registry = self.registry();
            if let Some(pinned) = registry.get_version(run.dag_id.as_str(), version) {
                return Ok(pinned.clone());
            }
            // A version this process never loaded: rebuilt from the source kept in the store.
            if let Some(loader) = registry.loader()
                && let Some(text) = self.store.dag_version_source(&run.dag_id, version).await?
            {
                match (loader.0)(&text) {
                    Ok(def) => return Ok(Arc::new(def)),
                    Err(e) => tracing::warn!(
                        dag_id = %run.dag_id, "the stored version {version} does not load: {e}"
                    ),
                }
            }
        }
        let current = self.dag(run.dag_id.as_str())?;
        let Some(version) = &run.dag_version else {
            return Ok(current);
        };
        tracing::warn!(
            dag_id = %run.dag_id, run_id = %run.run_id,
            "run was created with version {version} of its DAG, which this process does not hold; it runs with version {}",
            current.version.as_deref().unwrap_or("?")
        );
        Ok(current)
    }

    /// Creates the pools a DAG declares that the store does not have, and loads pool sizes.
    async fn load_pools(&self, dag: &DagDef) -> Result<()> {
        let mut existing: HashMap<String, u32> = self
            .store
            .pools()
            .await?
            .into_iter()
            .map(|p| (p.name, p.slots))
            .collect();
        for (name, &slots) in &dag.pools {
            if !existing.contains_key(name) {
                self.store
                    .set_pool(name, slots, &format!("declared by DAG {}", dag.id()))
                    .await?;
                existing.insert(name.clone(), slots);
            }
        }
        let mut pools = self.pools.lock().expect("pool map lock");
        for (name, slots) in existing {
            pools
                .entry(name)
                .or_insert_with(|| (slots, Arc::new(Semaphore::new(slots as usize))));
        }
        Ok(())
    }

    fn pool(&self, name: &str) -> Option<(u32, Arc<Semaphore>)> {
        self.pools.lock().expect("pool map lock").get(name).cloned()
    }

    fn dag_limit(&self, dag: &DagDef) -> Arc<Semaphore> {
        self.dag_limits
            .lock()
            .expect("dag limit lock")
            .entry(dag.id().clone())
            .or_insert_with(|| Arc::new(Semaphore::new(dag.dag.max_active_tasks as usize)))
            .clone()
    }

    /// Runs a queued or running DAG run until every task instance is finished, and returns how
    /// the run ended. The run is first claimed in the store (its owner lease): a run another live
    /// process drives is refused with [`RuntimeError::RunHeld`]; a run whose owner's lease ran
    /// out (a killed process) is taken over and resumed where it stopped.
    pub async fn run(&self, dag_id: &DagId, run_id: &RunId) -> Result<RunOutcome> {
        self.run_claimed(dag_id, run_id, false).await
    }

    /// [`Executor::run`], but a run held by another process is watched for one lease: if its
    /// owner does not renew the lease in that time it is dead, and the run is taken over; if it
    /// does, the run is refused with [`RuntimeError::RunHeld`]. What `weir dags run` and
    /// `weir dags backfill` do with runs a killed process left.
    pub async fn take_over(&self, dag_id: &DagId, run_id: &RunId) -> Result<RunOutcome> {
        self.run_claimed(dag_id, run_id, true).await
    }

    async fn run_claimed(&self, dag_id: &DagId, run_id: &RunId, wait: bool) -> Result<RunOutcome> {
        let def = self
            .dag_of_run(&self.get_run(dag_id, run_id).await?)
            .await?;
        let mut watched: Option<weir_store::RunOwner> = None;
        let (fence, resumed) = loop {
            let now = self.clock.now();
            let claim = self
                .store
                .claim_run(ClaimRun {
                    dag_id: dag_id.clone(),
                    run_id: run_id.clone(),
                    owner: self.opts.owner.clone(),
                    now,
                    lease_until: now.saturating_add(self.opts.lease).unwrap_or(now),
                })
                .await?;
            match claim {
                RunClaim::Claimed { fence, resumed } => break (fence, resumed),
                RunClaim::Finished(_) => {
                    let run = self.get_run(dag_id, run_id).await?;
                    return Ok(RunOutcome {
                        state: run.state,
                        run,
                        resumed: false,
                    });
                }
                RunClaim::Held(owner) => {
                    let renewed = watched
                        .as_ref()
                        .is_some_and(|w| w.id == owner.id && owner.lease_until > w.lease_until);
                    if !wait || renewed || watched.as_ref().is_some_and(|w| w.id != owner.id) {
                        return Err(RuntimeError::RunHeld {
                            dag: dag_id.to_string(),
                            run: run_id.to_string(),
                            owner: owner.id,
                            lease_until: owner.lease_until,
                        });
                    }
                    tracing::info!(
                        dag_id = %dag_id, run_id = %run_id, owner = %owner.id, lease_until = %owner.lease_until,
                        "run is held by another process; waiting one lease to see whether it is alive"
                    );
                    // To the end of the lease: a live owner renews every third of a lease, so by
                    // then it has moved the end; a dead one has not.
                    tokio::time::sleep(until(self.clock.as_ref(), owner.lease_until)).await;
                    watched = Some(owner);
                }
            }
        };
        let mut run = self.get_run(dag_id, run_id).await?;
        self.load_pools(&def).await?;
        if run.state == RunState::Queued {
            self.store
                .set_run_state(
                    dag_id,
                    run_id,
                    RunState::Queued,
                    RunState::Running,
                    self.clock.now(),
                )
                .await?;
            // Read back: `started_at` is what sensors count their timeout from.
            run = self.get_run(dag_id, run_id).await?;
        }
        if resumed {
            tracing::info!(dag_id = %dag_id, run_id = %run_id, "took over a run whose owner's lease ran out");
        }
        let span = tracing::info_span!("run", dag_id = %dag_id, run_id = %run_id);
        let state = async {
            tracing::info!(resumed, "run started");
            let mut lp = RunLoop::load(self, def, run, fence).await?;
            let state = lp.drive().await;
            // However the run ended, the notifications it started are delivered before `run`
            // returns: a process that exits after the run does not drop them.
            lp.notified().await;
            let state = state?;
            tracing::info!(state = %state, "run finished");
            Ok::<_, RuntimeError>(state)
        }
        .instrument(span)
        .await?;
        let run = self.get_run(dag_id, run_id).await?;
        Ok(RunOutcome {
            run,
            state,
            resumed,
        })
    }

    async fn get_run(&self, dag_id: &DagId, run_id: &RunId) -> Result<RunRecord> {
        self.store
            .get_run(dag_id, run_id)
            .await?
            .ok_or_else(|| RuntimeError::UnknownRun {
                dag: dag_id.to_string(),
                run: run_id.to_string(),
            })
    }
}

struct RunLoop<'e> {
    ex: &'e Executor,
    def: Arc<DagDef>,
    run: RunRecord,
    fence: RunFence,
    params: Arc<BTreeMap<String, serde_json::Value>>,
    zone: jiff::tz::TimeZone,
    declared: Arc<weir_core::ParamSpecs>,
    tasks: Vec<TaskRt>,
    ready: VecDeque<(usize, usize)>,
    retries: BinaryHeap<Reverse<(Timestamp, usize, usize)>>,
    /// Instances found running at load, owned by another (perhaps dead) process, by lease end.
    foreign: BinaryHeap<Reverse<(Timestamp, usize, usize)>>,
    running: JoinSet<Finished>,
    running_keys: HashMap<(usize, usize), TiKey>,
    /// The `try` span of each running try: its log lines (start, outcome) are written in it.
    running_spans: HashMap<(usize, usize), tracing::Span>,
    changes: Vec<TiChange>,
    callbacks: Vec<(usize, CallbackKind, CallbackContext)>,
    /// Notifications being delivered: started after their commit, awaited when the run ends.
    notifying: JoinSet<()>,
    dag_limit: Arc<Semaphore>,
}

#[derive(Clone, Copy)]
enum CallbackKind {
    Success,
    Retry,
    Failure,
    /// A success whose batch went to the dead-letter queue after its last try.
    DeadLettered,
}

impl<'e> RunLoop<'e> {
    async fn load(
        ex: &'e Executor,
        def: Arc<DagDef>,
        run: RunRecord,
        fence: RunFence,
    ) -> Result<Self> {
        let dag = &def.dag;
        let params = def.resolve_params(&run.conf)?;
        let zone = def.run_zone(&params);
        let mut stored = ex.store.task_instances(&run.dag_id, &run.run_id).await?;
        if stored.is_empty() {
            let fresh: Vec<NewTaskInstance> = dag
                .tasks()
                .iter()
                .map(|spec| new_ti(&run, spec, MapIndex::UNMAPPED))
                .collect();
            ex.store.insert_task_instances(&fresh).await?;
            stored = ex.store.task_instances(&run.dag_id, &run.run_id).await?;
        }
        let mut tasks: Vec<TaskRt> = dag
            .tasks()
            .iter()
            .map(|_| TaskRt {
                insts: Vec::new(),
                expanded: false,
                decided: false,
                counts: Counts::default(),
                items: None,
            })
            .collect();
        let mut foreign = BinaryHeap::new();
        let mut retries = BinaryHeap::new();
        let mut ready = VecDeque::new();
        let mut by_task: HashMap<&str, Vec<&weir_store::TaskInstanceRecord>> = HashMap::new();
        for ti in &stored {
            by_task.entry(ti.key.task_id.as_str()).or_default().push(ti);
        }
        for (pos, spec) in dag.tasks().iter().enumerate() {
            let mut rows = by_task.remove(spec.id.as_str()).unwrap_or_default();
            if rows.is_empty() {
                // A task added to the DAG after the run started.
                let ti = new_ti(&run, spec, MapIndex::UNMAPPED);
                ex.store
                    .insert_task_instances(std::slice::from_ref(&ti))
                    .await?;
                rows = Vec::new();
                tasks[pos].insts.push(Inst {
                    state: TaskState::None,
                    try_number: 0,
                });
            }
            rows.sort_by_key(|ti| ti.key.map_index);
            let rt = &mut tasks[pos];
            rt.expanded =
                spec.is_mapped() && rows.iter().any(|ti| ti.key.map_index.position().is_some());
            for ti in rows
                .iter()
                .filter(|ti| !rt.expanded || ti.key.map_index.position().is_some())
            {
                let idx = rt.insts.len();
                rt.insts.push(Inst {
                    state: ti.state,
                    try_number: ti.try_number,
                });
                match ti.state {
                    TaskState::Running => {
                        let lease = ti.lease_until.unwrap_or(run.created_at);
                        foreign.push(Reverse((lease, pos, idx)));
                    }
                    TaskState::UpForRetry | TaskState::UpForReschedule => {
                        retries.push(Reverse((ti.retry_at.unwrap_or(run.created_at), pos, idx)));
                    }
                    TaskState::Scheduled | TaskState::Queued => ready.push_back((pos, idx)),
                    TaskState::None
                    | TaskState::Success
                    | TaskState::Failed
                    | TaskState::UpstreamFailed
                    | TaskState::Skipped
                    | TaskState::Removed => {}
                }
            }
            rt.decided = rt.expanded || rt.insts.iter().any(|i| i.state != TaskState::None);
            if rt.expanded && rt.insts.iter().any(|i| i.state == TaskState::None) {
                ready.extend(
                    rt.insts
                        .iter()
                        .enumerate()
                        .filter(|(_, i)| i.state == TaskState::None)
                        .map(|(i, _)| (pos, i)),
                );
            }
            rt.counts.total = rt.insts.len();
            for inst in &rt.insts {
                rt.counts.add(inst.state);
            }
        }
        let dag_limit = ex.dag_limit(&def);
        Ok(RunLoop {
            ex,
            fence,
            zone,
            declared: Arc::new(def.dag.params.clone()),
            params: Arc::new(params),
            def,
            run,
            tasks,
            ready,
            retries,
            foreign,
            running: JoinSet::new(),
            running_keys: HashMap::new(),
            running_spans: HashMap::new(),
            changes: Vec::new(),
            callbacks: Vec::new(),
            notifying: JoinSet::new(),
            dag_limit,
        })
    }

    fn key(&self, pos: usize, idx: usize) -> TiKey {
        let rt = &self.tasks[pos];
        TiKey {
            dag_id: self.run.dag_id.clone(),
            run_id: self.run.run_id.clone(),
            task_id: self.def.dag.tasks()[pos].id.clone(),
            map_index: if rt.expanded {
                MapIndex::mapped(idx)
            } else {
                MapIndex::UNMAPPED
            },
        }
    }

    /// Records a state change in memory and queues it for the next commit.
    fn set_state(
        &mut self,
        pos: usize,
        idx: usize,
        to: TaskState,
        change: impl FnOnce(&mut TiChange),
    ) {
        let key = self.key(pos, idx);
        let inst = &mut self.tasks[pos].insts[idx];
        let mut c = TiChange {
            key,
            expect_state: inst.state,
            expect_try: inst.try_number,
            state: to,
            try_number: inst.try_number,
            at: self.ex.clock.now(),
            lease_until: None,
            retry_at: None,
            error: None,
            output: None,
        };
        change(&mut c);
        inst.state = to;
        inst.try_number = c.try_number;
        self.tasks[pos].counts.add(to);
        self.changes.push(c);
    }

    async fn flush(&mut self) -> Result<()> {
        if self.changes.is_empty() {
            return Ok(());
        }
        let changes = std::mem::take(&mut self.changes);
        self.ex.store.apply_fenced(&self.fence, &changes).await?;
        // Told once committed: what the log says happened, the store holds.
        if tracing::enabled!(tracing::Level::INFO) {
            for c in &changes {
                tracing::info!(
                    task_id = %c.key.task_id, map_index = c.key.map_index.raw(), try_number = c.try_number,
                    from = %c.expect_state, to = %c.state, error = c.error.as_deref(), "task state"
                );
            }
        }
        let callbacks = std::mem::take(&mut self.callbacks);
        let mut notices = Vec::new();
        for (pos, kind, ctx) in callbacks {
            let task = self.def.task_at(pos);
            let f = match kind {
                CallbackKind::Success | CallbackKind::DeadLettered => &task.on_success,
                CallbackKind::Retry => &task.on_retry,
                CallbackKind::Failure => &task.on_failure,
            };
            if let Some(f) = f {
                f(&ctx);
            }
            self.notices_of(pos, kind, &ctx, &mut notices);
        }
        self.send_notices(notices);
        Ok(())
    }

    /// The notifications a committed callback event makes, each with the rules that want it:
    /// a failure on the last try of a task with retries is also `retry_exhausted`.
    fn notices_of(
        &self,
        pos: usize,
        kind: CallbackKind,
        ctx: &CallbackContext,
        out: &mut Vec<(Vec<NotifyRule>, Notification)>,
    ) {
        let rules: Vec<&NotifyRule> = self.def.notify_rules_at(pos).collect();
        if rules.is_empty() {
            return;
        }
        let max_tries = self.def.dag.tasks()[pos].retry.retries + 1;
        let events: &[NotifyEvent] = match kind {
            CallbackKind::Success => &[NotifyEvent::Success],
            CallbackKind::DeadLettered => &[NotifyEvent::RetryExhausted],
            CallbackKind::Retry => &[NotifyEvent::Retry],
            CallbackKind::Failure if max_tries > 1 && ctx.try_number >= max_tries => {
                &[NotifyEvent::Failure, NotifyEvent::RetryExhausted]
            }
            CallbackKind::Failure => &[NotifyEvent::Failure],
        };
        let at = ctx.at;
        for &event in events {
            let wanted: Vec<NotifyRule> = rules
                .iter()
                .copied()
                .filter(|r| r.wants(event))
                .cloned()
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let n = Notification {
                event,
                dag_id: ctx.key.dag_id.clone(),
                run_id: ctx.key.run_id.clone(),
                task_id: ctx.key.task_id.clone(),
                map_index: ctx.key.map_index.raw(),
                try_number: ctx.try_number,
                max_tries,
                logical_date: ctx.logical_date,
                error: ctx.error.clone(),
                retry_at: ctx.retry_at,
                at,
            };
            out.push((wanted, n));
        }
    }

    /// Starts delivering the notifications of one commit, in order, without waiting for them.
    fn send_notices(&mut self, notices: Vec<(Vec<NotifyRule>, Notification)>) {
        if notices.is_empty() {
            return;
        }
        // Forget the deliveries that are done (a failed one has logged itself).
        while self.notifying.try_join_next().is_some() {}
        let home = self.ex.home.clone();
        self.notifying.spawn(
            async move {
                for (rules, n) in &notices {
                    crate::notify::deliver(rules, n, home.as_path()).await;
                }
            }
            .in_current_span(),
        );
    }

    /// Waits for every notification this run started; each is bounded by its notifier's
    /// timeout, so this ends.
    async fn notified(&mut self) {
        while let Some(joined) = self.notifying.join_next().await {
            if let Err(e) = joined {
                tracing::warn!("a notification delivery stopped before it finished: {e}");
            }
        }
    }

    /// Applies trigger rules to every undecided task whose upstreams allow a decision, cascading
    /// skips and upstream failures, expanding mapped tasks, and queueing what may run.
    async fn decide(&mut self) -> Result<()> {
        loop {
            let mut progressed = false;
            for pos in 0..self.tasks.len() {
                if self.tasks[pos].decided {
                    continue;
                }
                let counts: Vec<Counts> = self.tasks.iter().map(|t| t.counts).collect();
                match crate::core::trigger(&self.def.dag, pos, &counts) {
                    TriggerDecision::Wait => continue,
                    TriggerDecision::Skip => self.finish_unstarted(pos, TaskState::Skipped, None),
                    TriggerDecision::UpstreamFailed => {
                        self.finish_unstarted(pos, TaskState::UpstreamFailed, None)
                    }
                    TriggerDecision::Run => self.schedule(pos).await?,
                }
                self.tasks[pos].decided = true;
                progressed = true;
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    fn finish_unstarted(&mut self, pos: usize, state: TaskState, error: Option<String>) {
        for idx in 0..self.tasks[pos].insts.len() {
            let error = error.clone();
            self.set_state(pos, idx, state, |c| c.error = error);
        }
    }

    async fn schedule(&mut self, pos: usize) -> Result<()> {
        let def = self.def.clone();
        let spec = &def.dag.tasks()[pos];
        let Some(source) = &spec.expand else {
            self.ready.push_back((pos, 0));
            return Ok(());
        };
        if matches!(source, MapSource::Upstream(_)) {
            // The source's output may be in the uncommitted batch: commit it first.
            self.flush().await?;
        }
        let items = self.source_items(pos).await?;
        let items = match items {
            Ok(items) if items.len() > self.def.dag.max_map_length => Err(format!(
                "its input has {} elements, more than the DAG's max_map_length of {}",
                items.len(),
                self.def.dag.max_map_length
            )),
            other => other,
        };
        match items {
            Err(reason) => {
                self.finish_unstarted(
                    pos,
                    TaskState::Failed,
                    Some(format!("cannot expand task `{}`: {reason}", spec.id)),
                );
            }
            Ok(items) if items.is_empty() => self.finish_unstarted(pos, TaskState::Skipped, None),
            Ok(items) => {
                // Commit what came before, then the expansion, before any instance starts.
                self.flush().await?;
                let placeholder = new_ti(&self.run, spec, MapIndex::UNMAPPED);
                self.ex
                    .store
                    .expand_mapped(&placeholder, items.len())
                    .await?;
                let rt = &mut self.tasks[pos];
                rt.expanded = true;
                rt.insts = vec![
                    Inst {
                        state: TaskState::None,
                        try_number: 0
                    };
                    items.len()
                ];
                rt.counts = Counts {
                    total: items.len(),
                    ..Counts::default()
                };
                rt.items = Some(Arc::new(items));
                self.ready.extend((0..rt.insts.len()).map(|i| (pos, i)));
            }
        }
        Ok(())
    }

    /// The list a mapped task expands over: its literal, the JSON-list output of an unmapped
    /// source, or the outputs of a mapped source in map-index order. `Err` says why the source's
    /// output is not a list.
    async fn source_items(
        &self,
        pos: usize,
    ) -> Result<std::result::Result<Vec<serde_json::Value>, String>> {
        let src = match &self.def.dag.tasks()[pos].expand {
            Some(MapSource::Literal(items)) => return Ok(Ok(items.clone())),
            Some(MapSource::Upstream(src)) => src,
            None => return Ok(Ok(Vec::new())),
        };
        let src_pos = self
            .def
            .dag
            .position(src.as_str())
            .expect("validated source");
        let outputs = self
            .ex
            .store
            .outputs(&self.run.dag_id, &self.run.run_id, src.as_str())
            .await?;
        if self.def.dag.tasks()[src_pos].is_mapped() {
            return Ok(Ok(by_map_index(outputs, self.tasks[src_pos].insts.len())));
        }
        Ok(match outputs.into_iter().next().map(|(_, v)| v) {
            Some(serde_json::Value::Array(items)) => Ok(items),
            Some(serde_json::Value::Null) | None => Err(format!(
                "it expands over the output of `{src}`, which returned nothing; return a JSON list"
            )),
            Some(other) => Err(format!(
                "it expands over the output of `{src}`, which is {} and not a JSON list",
                json_kind(&other)
            )),
        })
    }

    /// Items of an expanded task, loading them again after a restart.
    async fn items(&mut self, pos: usize) -> Result<Option<Arc<Vec<serde_json::Value>>>> {
        if !self.tasks[pos].expanded {
            return Ok(None);
        }
        if self.tasks[pos].items.is_none() {
            // The expansion succeeded before the restart, so the source is a list.
            let items = self.source_items(pos).await?.unwrap_or_default();
            self.tasks[pos].items = Some(Arc::new(items));
        }
        Ok(self.tasks[pos].items.clone())
    }

    fn try_permits(&self, pos: usize) -> std::result::Result<Option<Permits>, String> {
        let spec = &self.def.dag.tasks()[pos];
        let (size, pool) = self.pool_for(pos)?;
        if spec.pool_slots > size {
            return Err(format!(
                "it needs {} slots of pool `{}`, which has only {size}; give the pool more slots",
                spec.pool_slots, spec.pool
            ));
        }
        let Ok(global) = self.ex.parallelism.clone().try_acquire_owned() else {
            return Ok(None);
        };
        let Ok(dag) = self.dag_limit.clone().try_acquire_owned() else {
            return Ok(None);
        };
        let Ok(pool) = pool.try_acquire_many_owned(spec.pool_slots) else {
            return Ok(None);
        };
        Ok(Some(Permits {
            _global: global,
            _dag: dag,
            _pool: pool,
        }))
    }

    fn pool_for(&self, pos: usize) -> std::result::Result<(u32, Arc<Semaphore>), String> {
        let spec = &self.def.dag.tasks()[pos];
        self.ex.pool(&spec.pool).ok_or_else(|| {
            format!(
                "pool `{}` does not exist; declare it on the DAG or create it with `weir pools set {} SLOTS`",
                spec.pool, spec.pool
            )
        })
    }

    /// Claims as many ready instances as permits allow, commits the claims, then starts them.
    async fn launch(&mut self, first: Option<((usize, usize), Permits)>) -> Result<()> {
        let mut batch: Vec<((usize, usize), Permits)> = first.into_iter().collect();
        while let Some(&(pos, idx)) = self.ready.front() {
            match self.try_permits(pos) {
                Ok(Some(permits)) => {
                    self.ready.pop_front();
                    batch.push(((pos, idx), permits));
                }
                Ok(None) => break,
                Err(reason) => {
                    self.ready.pop_front();
                    let error = format!(
                        "task `{}` cannot start: {reason}",
                        self.def.dag.tasks()[pos].id
                    );
                    self.set_state(pos, idx, TaskState::Failed, |c| c.error = Some(error));
                }
            }
        }
        if batch.is_empty() {
            return self.flush().await;
        }
        let now = self.ex.clock.now();
        let lease_until = now.saturating_add(self.ex.opts.lease).unwrap_or(now);
        for &((pos, idx), _) in &batch {
            // A rescheduled sensor pokes again in the same try; anything else starts a new one.
            let inst = &self.tasks[pos].insts[idx];
            let next_try = match inst.state {
                TaskState::UpForReschedule => inst.try_number,
                _ => inst.try_number + 1,
            };
            self.set_state(pos, idx, TaskState::Running, |c| {
                c.try_number = next_try;
                c.lease_until = Some(lease_until);
            });
        }
        self.flush().await?;
        for ((pos, idx), permits) in batch {
            self.start(pos, idx, permits).await?;
        }
        Ok(())
    }

    async fn start(&mut self, pos: usize, idx: usize, permits: Permits) -> Result<()> {
        let items = self.items(pos).await?;
        let spec = &self.def.dag.tasks()[pos];
        let key = self.key(pos, idx);
        let inst = &self.tasks[pos].insts[idx];
        let mapped_upstreams = spec
            .upstream
            .iter()
            .filter_map(|u| {
                let u_pos = self.def.dag.position(u.as_str())?;
                // A mapped upstream that never expanded (empty input, failed expansion) has
                // zero instances: its downstreams read `[]`, not null.
                let rt = &self.tasks[u_pos];
                let count = if rt.expanded { rt.insts.len() } else { 0 };
                self.def.dag.tasks()[u_pos]
                    .is_mapped()
                    .then(|| (u.clone(), count))
            })
            .collect();
        let ctx = TaskContext {
            dag_id: key.dag_id.clone(),
            run_id: key.run_id.clone(),
            task_id: key.task_id.clone(),
            map_index: key.map_index,
            try_number: inst.try_number,
            clear_number: self.run.clear_number,
            max_tries: spec.retry.retries + 1,
            logical_date: self.run.logical_date,
            data_interval: DataInterval {
                start: self.run.interval_start,
                end: self.run.interval_end,
            },
            run_started_at: self.run.started_at.unwrap_or_else(|| self.ex.clock.now()),
            params: self.params.clone(),
            zone: self.zone.clone(),
            item: items.and_then(|items| items.get(idx).cloned()),
            partial: Arc::new(spec.partial.clone()),
            home: self.ex.home.clone(),
            store: self.ex.store.clone(),
            clock: self.ex.clock.clone(),
            mapped_upstreams: Arc::new(mapped_upstreams),
            upstream: Arc::new(spec.upstream.clone()),
            declared: self.declared.clone(),
            registry: self.ex.registry(),
        };
        let try_number = inst.try_number;
        let timeout = spec.execution_timeout;
        let span = tracing::info_span!(
            crate::logs::TRY_SPAN,
            dag_id = %key.dag_id, run_id = %key.run_id, task_id = %key.task_id,
            map_index = key.map_index.raw(), try_number = inst.try_number,
            clear_number = self.run.clear_number
        );
        span.in_scope(|| {
            tracing::info!(
                "try {} of {} started (data interval {} .. {})",
                inst.try_number,
                spec.retry.retries + 1,
                self.run.interval_start,
                self.run.interval_end
            )
        });
        self.running_spans.insert((pos, idx), span.clone());
        let task = self.def.task_at(pos);
        let dead_letter = task
            .dead_letter
            .then(|| (ctx.clone(), task.dead_letter_hook.clone()));
        let last_try = try_number > spec.retry.retries;
        let dl_span = span.clone();
        let fut = self.def.task_at(pos).call(ctx).instrument(span);
        self.running_keys.insert((pos, idx), key);
        self.running.spawn(async move {
            let _permits = permits;
            let guarded = AssertUnwindSafe(fut).catch_unwind();
            let outcome = match timeout {
                Some(limit) => match tokio::time::timeout(limit.unsigned_abs(), guarded).await {
                    Ok(outcome) => outcome,
                    Err(_) => Ok(Err(TaskError::retryable(format!(
                        "timed out after {limit:#} (execution_timeout)"
                    )))),
                },
                None => guarded.await,
            };
            let result = outcome.unwrap_or_else(|panic| {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                Err(TaskError::fatal(format!("the task panicked: {message}")))
            });
            let (result, dead_lettered) = match (result, dead_letter) {
                (Err(e), Some((ctx, hook)))
                    if matches!(e, TaskError::Fatal(_))
                        || (matches!(e, TaskError::Retryable(_)) && last_try) =>
                {
                    let error = e.message().to_owned();
                    let result = crate::dead_letter::batch(ctx, hook, e)
                        .instrument(dl_span)
                        .await;
                    (result, Some(error))
                }
                (result, _) => (result, None),
            };
            Finished {
                pos,
                idx,
                try_number,
                result,
                dead_lettered,
            }
        });
        Ok(())
    }

    fn finish(&mut self, done: Finished) {
        let Finished {
            pos,
            idx,
            try_number,
            result,
            dead_lettered,
        } = done;
        let Some(key) = self.running_keys.remove(&(pos, idx)) else {
            return;
        };
        let span = self.running_spans.remove(&(pos, idx));
        if let Some(span) = &span {
            span.in_scope(|| match &result {
                Ok(_) => tracing::info!("try {try_number} succeeded"),
                Err(TaskError::Skip(reason)) => {
                    tracing::info!("try {try_number} skipped: {reason}")
                }
                // Info, not error: the command reports failed runs its own way; these lines are
                // for the try's log (and `--log info`).
                Err(TaskError::Retryable(e)) => {
                    tracing::info!("try {try_number} failed (retryable): {e}")
                }
                Err(TaskError::Fatal(e)) => {
                    tracing::info!("try {try_number} failed (not retryable): {e}")
                }
                Err(TaskError::Reschedule { at, reason }) => {
                    tracing::info!("try {try_number} rescheduled to {at}: {reason}")
                }
            });
        }
        let spec = &self.def.dag.tasks()[pos];
        let now = self.ex.clock.now();
        let cb = |error: Option<String>, retry_at: Option<Timestamp>| CallbackContext {
            key: key.clone(),
            try_number,
            logical_date: self.run.logical_date,
            error,
            retry_at,
            at: now,
        };
        match result {
            Ok(output) => {
                let kind = match dead_lettered {
                    Some(_) => CallbackKind::DeadLettered,
                    None => CallbackKind::Success,
                };
                let ctx = cb(dead_lettered, None);
                self.set_state(pos, idx, TaskState::Success, |c| c.output = Some(output));
                self.callbacks.push((pos, kind, ctx));
            }
            Err(TaskError::Skip(reason)) => {
                self.set_state(pos, idx, TaskState::Skipped, |c| c.error = Some(reason));
            }
            Err(TaskError::Reschedule { at, reason }) => {
                // The slot is given back now (the permits drop with the finished try); the same
                // try pokes again at `at`.
                let at = at.max(now);
                self.set_state(pos, idx, TaskState::UpForReschedule, |c| {
                    c.error = Some(reason);
                    c.retry_at = Some(at);
                });
                self.retries.push(Reverse((at, pos, idx)));
            }
            Err(TaskError::Retryable(message))
                if let Some(retry_at) = crate::core::retry_at(
                    spec,
                    self.run.dag_id.as_str(),
                    self.run.logical_date,
                    try_number,
                    now,
                ) =>
            {
                let ctx = cb(Some(message.clone()), Some(retry_at));
                self.set_state(pos, idx, TaskState::UpForRetry, |c| {
                    c.error = Some(message);
                    c.retry_at = Some(retry_at);
                });
                self.retries.push(Reverse((retry_at, pos, idx)));
                self.callbacks.push((pos, CallbackKind::Retry, ctx));
            }
            Err(TaskError::Retryable(message) | TaskError::Fatal(message)) => {
                let ctx = cb(Some(message.clone()), None);
                self.set_state(pos, idx, TaskState::Failed, |c| c.error = Some(message));
                self.callbacks.push((pos, CallbackKind::Failure, ctx));
            }
        }
    }

    /// An instance found running when the run was loaded whose lease has ended: its process is
    /// gone, so the try failed; retry it if it has tries left.
    async fn adopt_orphan(&mut self, pos: usize, idx: usize) -> Result<()> {
        let spec = &self.def.dag.tasks()[pos];
        let inst = &self.tasks[pos].insts[idx];
        if inst.state != TaskState::Running {
            return Ok(());
        }
        let try_number = inst.try_number;
        let error = format!(
            "try {try_number} was running in a process that stopped (killed or crashed) and its lease ran out"
        );
        let now = self.ex.clock.now();
        let key = self.key(pos, idx);
        let cb = |retry_at: Option<Timestamp>| CallbackContext {
            key: key.clone(),
            try_number,
            logical_date: self.run.logical_date,
            error: Some(error.clone()),
            retry_at,
            at: now,
        };
        if spec.retry.should_retry(try_number) {
            let ctx = cb(Some(now));
            self.set_state(pos, idx, TaskState::UpForRetry, |c| {
                c.error = Some(error.clone());
                c.retry_at = Some(now);
            });
            self.retries.push(Reverse((now, pos, idx)));
            self.callbacks.push((pos, CallbackKind::Retry, ctx));
        } else {
            let ctx = cb(None);
            self.set_state(pos, idx, TaskState::Failed, |c| {
                c.error = Some(error.clone())
            });
            self.callbacks.push((pos, CallbackKind::Failure, ctx));
        }
        match self.flush().await {
            Err(RuntimeError::Store(StoreError::Conflict { .. })) => {
                // Nothing happened to it here: no callback either.
                self.callbacks.retain(|(_, _, c)| c.key != key);
                // The owner finished after all: take the stored state.
                let stored = self
                    .ex
                    .store
                    .task_instances(&self.run.dag_id, &self.run.run_id)
                    .await?;
                let key = self.key(pos, idx);
                if let Some(ti) = stored.into_iter().find(|ti| ti.key == key) {
                    self.tasks[pos].insts[idx] = Inst {
                        state: ti.state,
                        try_number: ti.try_number,
                    };
                    self.tasks[pos].counts = Counts {
                        total: self.tasks[pos].insts.len(),
                        ..Counts::default()
                    };
                    for i in 0..self.tasks[pos].insts.len() {
                        let state = self.tasks[pos].insts[i].state;
                        self.tasks[pos].counts.add(state);
                    }
                }
                Ok(())
            }
            other => other,
        }
    }

    /// All that is left is sensors waiting in `up_for_reschedule` (and this executor yields).
    fn only_sensors_wait(&self) -> bool {
        self.ex.opts.yield_waiting_sensors
            && self.running.is_empty()
            && self.ready.is_empty()
            && self.foreign.is_empty()
            && self
                .retries
                .peek()
                .is_some_and(|Reverse((at, _, _))| *at > self.ex.clock.now())
            && self.retries.iter().all(|Reverse((_, pos, idx))| {
                self.tasks[*pos].insts[*idx].state == TaskState::UpForReschedule
            })
    }

    async fn drive(&mut self) -> Result<RunState> {
        let heartbeat_every = (self.ex.opts.lease / 3)
            .unsigned_abs()
            .max(std::time::Duration::from_millis(100));
        let mut heartbeat = tokio::time::interval(heartbeat_every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.decide().await?;
            self.launch(None).await?;
            if self.only_sensors_wait() {
                // Nothing to do until a sensor's next poke: give the run up unfinished, so
                // `weir scheduler --once` returns; a later pass claims it and pokes again.
                self.flush().await?;
                self.ex.store.release_run(&self.fence).await?;
                tracing::info!("only sensors wait; the run is left for a later pass");
                return Ok(RunState::Running);
            }
            if self.running.is_empty()
                && self.ready.is_empty()
                && self.retries.is_empty()
                && self.foreign.is_empty()
            {
                break;
            }
            let next_retry = self.retries.peek().map(|Reverse((at, _, _))| *at);
            let next_foreign = self.foreign.peek().map(|Reverse((at, _, _))| *at);
            // launch() has just failed any instance whose pool cannot hold it, so the head's pool
            // exists and is large enough.
            let wanted = self.ready.front().and_then(|&(pos, _)| {
                let (_, pool) = self.pool_for(pos).ok()?;
                Some(Wanted {
                    global: self.ex.parallelism.clone(),
                    dag: self.dag_limit.clone(),
                    pool,
                    slots: self.def.dag.tasks()[pos].pool_slots,
                })
            });
            let waiting_for_permits = wanted.is_some();
            let clock = self.ex.clock.clone();
            tokio::select! {
                Some(joined) = self.running.join_next(), if !self.running.is_empty() => {
                    let finished = joined.map_err(|e| RuntimeError::Internal(format!("task join failed: {e}")))?;
                    self.finish(finished);
                    while let Some(joined) = self.running.try_join_next() {
                        let finished = joined.map_err(|e| RuntimeError::Internal(format!("task join failed: {e}")))?;
                        self.finish(finished);
                    }
                    // Committed at the top of the loop together with the claims they unblock.
                }
                permits = acquire(wanted), if waiting_for_permits => {
                    if let Some(permits) = permits {
                        let head = self.ready.pop_front().expect("head was present");
                        self.launch(Some((head, permits))).await?;
                    }
                }
                _ = tokio::time::sleep(until(clock.as_ref(), next_retry.unwrap_or_else(|| clock.now()))), if next_retry.is_some() => {
                    let now = self.ex.clock.now();
                    while let Some(&Reverse((at, pos, idx))) = self.retries.peek() {
                        if at > now {
                            break;
                        }
                        self.retries.pop();
                        self.ready.push_back((pos, idx));
                    }
                }
                _ = tokio::time::sleep(until(clock.as_ref(), next_foreign.unwrap_or_else(|| clock.now()))), if next_foreign.is_some() => {
                    let now = self.ex.clock.now();
                    while let Some(&Reverse((at, pos, idx))) = self.foreign.peek() {
                        if at > now {
                            break;
                        }
                        self.foreign.pop();
                        self.adopt_orphan(pos, idx).await?;
                    }
                }
                _ = heartbeat.tick() => {
                    let now = self.ex.clock.now();
                    let until = now.saturating_add(self.ex.opts.lease).unwrap_or(now);
                    // Losing the run (another process took it over after our lease ran out)
                    // ends this loop with the error; the running tries are dropped with it.
                    self.ex.store.renew_run(&self.fence, until).await?;
                    let keys: Vec<TiKey> = self.running_keys.values().cloned().collect();
                    if !keys.is_empty() {
                        self.ex.store.renew_leases(&keys, until).await?;
                    }
                }
            }
        }
        self.flush().await?;
        // Airflow's rule: a run fails when any leaf task instance failed or is upstream_failed.
        let state = crate::core::outcome(&self.def.dag, |pos| {
            self.tasks[pos].insts.iter().map(|i| i.state)
        });
        self.ex
            .store
            .finish_run(&self.fence, state, self.ex.clock.now())
            .await?;
        Ok(state)
    }
}

/// What the instance at the head of the ready queue must wait for.
struct Wanted {
    global: Arc<Semaphore>,
    dag: Arc<Semaphore>,
    pool: Arc<Semaphore>,
    slots: u32,
}

/// Waits for the permits the instance at the head of the ready queue needs.
async fn acquire(wanted: Option<Wanted>) -> Option<Permits> {
    let w = wanted?;
    let global = w.global.acquire_owned().await.ok()?;
    let dag = w.dag.acquire_owned().await.ok()?;
    let pool = w.pool.acquire_many_owned(w.slots).await.ok()?;
    Some(Permits {
        _global: global,
        _dag: dag,
        _pool: pool,
    })
}

pub(crate) fn new_ti(
    run: &RunRecord,
    spec: &weir_core::TaskSpec,
    map_index: MapIndex,
) -> NewTaskInstance {
    NewTaskInstance {
        key: TiKey {
            dag_id: run.dag_id.clone(),
            run_id: run.run_id.clone(),
            task_id: spec.id.clone(),
            map_index,
        },
        state: TaskState::None,
        max_tries: spec.retry.retries + 1,
        pool: spec.pool.clone(),
        pool_slots: spec.pool_slots,
        queue: weir_store::DEFAULT_QUEUE.to_owned(),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}
