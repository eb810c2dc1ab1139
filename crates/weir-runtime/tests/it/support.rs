//! Shared harness: a real SQLite store in a temp dir, an executor on a paused tokio clock, and
//! helpers to read back what a user would see in the store.
//!
//! Why the store is wrapped: under `start_paused = true`, tokio advances virtual time whenever
//! the runtime is idle. sqlx's SQLite driver does its IO on its own thread, so while a query is
//! in flight the runtime *is* idle and the clock would jump to the next timer (a task's sleep,
//! the lease heartbeat, even sqlx's 30 s acquire timeout, which then fails the call). Running
//! each store call on the blocking pool inhibits auto-advance until it returns, so a store call
//! takes no virtual time and the timings asserted below are exact. The calls still go to the
//! real [`SqlStore`] unchanged.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use tempfile::TempDir;
use weir_core::{DagId, RunId, RunState, TaskState};
use weir_runtime::{
    DagDef, Executor, ExecutorOptions, Registry, RunOutcome, TokioClock, TriggerRequest,
    trigger_run,
};
use weir_store::{
    ClaimRun, DeadLetter, DeadLetterStatus, ManifestStore, NewRun, NewTaskInstance,
    PartitionManifest, PoolRecord, PoolStore, RejectFilter, RejectRecord, RejectStore,
    ReplayOutcome, RunClaim, RunFence, RunFilter, RunRecord, RunStore, SqlStore, Store,
    TaskInstanceRecord, TaskInstanceStore, TiChange, TiKey, TryRecord,
};

/// The instant every test's clock starts at: Monday 2026-03-02 09:00 UTC.
pub fn t0() -> Timestamp {
    ts("2026-03-02T09:00:00Z")
}

pub fn ts(text: &str) -> Timestamp {
    text.parse().expect("a valid RFC 3339 instant")
}

pub fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

/// Runs a store future on the blocking pool so that paused virtual time stands still meanwhile.
async fn off_clock<T, F, Fut>(call: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(call()))
        .await
        .expect("store call panicked")
}

/// The real SQLite store, each call made off the paused clock (see the module docs).
#[derive(Debug, Clone)]
pub struct OffClockStore(Arc<SqlStore>);

#[async_trait]
impl RunStore for OffClockStore {
    async fn create_run(&self, run: NewRun) -> weir_store::Result<(RunRecord, bool)> {
        let s = self.0.clone();
        off_clock(move || async move { s.create_run(run).await }).await
    }
    async fn get_run(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
    ) -> weir_store::Result<Option<RunRecord>> {
        let (s, d, r) = (self.0.clone(), dag_id.clone(), run_id.clone());
        off_clock(move || async move { s.get_run(&d, &r).await }).await
    }
    async fn run_at(
        &self,
        dag_id: &DagId,
        logical_date: Timestamp,
    ) -> weir_store::Result<Option<RunRecord>> {
        let (s, d) = (self.0.clone(), dag_id.clone());
        off_clock(move || async move { s.run_at(&d, logical_date).await }).await
    }
    async fn list_runs(&self, filter: &RunFilter) -> weir_store::Result<Vec<RunRecord>> {
        let (s, f) = (self.0.clone(), filter.clone());
        off_clock(move || async move { s.list_runs(&f).await }).await
    }
    async fn last_scheduled_run(&self, dag_id: &DagId) -> weir_store::Result<Option<RunRecord>> {
        let (s, d) = (self.0.clone(), dag_id.clone());
        off_clock(move || async move { s.last_scheduled_run(&d).await }).await
    }
    async fn set_run_state(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        from: RunState,
        to: RunState,
        at: Timestamp,
    ) -> weir_store::Result<()> {
        let (s, d, r) = (self.0.clone(), dag_id.clone(), run_id.clone());
        off_clock(move || async move { s.set_run_state(&d, &r, from, to, at).await }).await
    }
    async fn claim_run(&self, claim: ClaimRun) -> weir_store::Result<RunClaim> {
        let s = self.0.clone();
        off_clock(move || async move { s.claim_run(claim).await }).await
    }
    async fn renew_run(&self, fence: &RunFence, lease_until: Timestamp) -> weir_store::Result<()> {
        let (s, f) = (self.0.clone(), fence.clone());
        off_clock(move || async move { s.renew_run(&f, lease_until).await }).await
    }
    async fn release_run(&self, fence: &RunFence) -> weir_store::Result<()> {
        let (s, f) = (self.0.clone(), fence.clone());
        off_clock(move || async move { s.release_run(&f).await }).await
    }
    async fn finish_run(
        &self,
        fence: &RunFence,
        to: RunState,
        at: Timestamp,
    ) -> weir_store::Result<()> {
        let (s, f) = (self.0.clone(), fence.clone());
        off_clock(move || async move { s.finish_run(&f, to, at).await }).await
    }
    async fn clear_tasks(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        whole: &[String],
        instances: &[(String, i64)],
    ) -> weir_store::Result<()> {
        let (s, d, r, w, i) = (
            self.0.clone(),
            dag_id.clone(),
            run_id.clone(),
            whole.to_vec(),
            instances.to_vec(),
        );
        off_clock(move || async move { s.clear_tasks(&d, &r, &w, &i).await }).await
    }
    async fn reset_run(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        conf: Option<serde_json::Value>,
        dag_version: Option<&str>,
    ) -> weir_store::Result<()> {
        let (s, d, r) = (self.0.clone(), dag_id.clone(), run_id.clone());
        let v = dag_version.map(str::to_owned);
        off_clock(move || async move { s.reset_run(&d, &r, conf, v.as_deref()).await }).await
    }
    async fn save_dag_version(
        &self,
        dag_id: &DagId,
        version: &str,
        source: &str,
        at: Timestamp,
    ) -> weir_store::Result<()> {
        let (s, d, v, t) = (
            self.0.clone(),
            dag_id.clone(),
            version.to_owned(),
            source.to_owned(),
        );
        off_clock(move || async move { s.save_dag_version(&d, &v, &t, at).await }).await
    }
    async fn dag_version_source(
        &self,
        dag_id: &DagId,
        version: &str,
    ) -> weir_store::Result<Option<String>> {
        let (s, d, v) = (self.0.clone(), dag_id.clone(), version.to_owned());
        off_clock(move || async move { s.dag_version_source(&d, &v).await }).await
    }
}

#[async_trait]
impl TaskInstanceStore for OffClockStore {
    async fn insert_task_instances(&self, tis: &[NewTaskInstance]) -> weir_store::Result<()> {
        let (s, t) = (self.0.clone(), tis.to_vec());
        off_clock(move || async move { s.insert_task_instances(&t).await }).await
    }
    async fn expand_mapped(
        &self,
        placeholder: &NewTaskInstance,
        count: usize,
    ) -> weir_store::Result<()> {
        let (s, p) = (self.0.clone(), placeholder.clone());
        off_clock(move || async move { s.expand_mapped(&p, count).await }).await
    }
    async fn task_instances(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
    ) -> weir_store::Result<Vec<TaskInstanceRecord>> {
        let (s, d, r) = (self.0.clone(), dag_id.clone(), run_id.clone());
        off_clock(move || async move { s.task_instances(&d, &r).await }).await
    }
    async fn apply(&self, changes: &[TiChange]) -> weir_store::Result<()> {
        let (s, c) = (self.0.clone(), changes.to_vec());
        off_clock(move || async move { s.apply(&c).await }).await
    }
    async fn apply_fenced(&self, fence: &RunFence, changes: &[TiChange]) -> weir_store::Result<()> {
        let (s, f, c) = (self.0.clone(), fence.clone(), changes.to_vec());
        off_clock(move || async move { s.apply_fenced(&f, &c).await }).await
    }
    async fn renew_leases(&self, keys: &[TiKey], lease_until: Timestamp) -> weir_store::Result<()> {
        let (s, k) = (self.0.clone(), keys.to_vec());
        off_clock(move || async move { s.renew_leases(&k, lease_until).await }).await
    }
    async fn orphaned(&self, now: Timestamp) -> weir_store::Result<Vec<TaskInstanceRecord>> {
        let s = self.0.clone();
        off_clock(move || async move { s.orphaned(now).await }).await
    }
    async fn outputs(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        task_id: &str,
    ) -> weir_store::Result<Vec<(i64, serde_json::Value)>> {
        let (s, d, r, t) = (
            self.0.clone(),
            dag_id.clone(),
            run_id.clone(),
            task_id.to_owned(),
        );
        off_clock(move || async move { s.outputs(&d, &r, &t).await }).await
    }
    async fn tries(&self, dag_id: &DagId, run_id: &RunId) -> weir_store::Result<Vec<TryRecord>> {
        let (s, d, r) = (self.0.clone(), dag_id.clone(), run_id.clone());
        off_clock(move || async move { s.tries(&d, &r).await }).await
    }
}

#[async_trait]
impl PoolStore for OffClockStore {
    async fn set_pool(&self, name: &str, slots: u32, description: &str) -> weir_store::Result<()> {
        let (s, n, d) = (self.0.clone(), name.to_owned(), description.to_owned());
        off_clock(move || async move { s.set_pool(&n, slots, &d).await }).await
    }
    async fn pools(&self) -> weir_store::Result<Vec<PoolRecord>> {
        let s = self.0.clone();
        off_clock(move || async move { s.pools().await }).await
    }
}

#[async_trait]
impl ManifestStore for OffClockStore {
    async fn record_manifest(&self, manifest: &PartitionManifest) -> weir_store::Result<()> {
        let (s, m) = (self.0.clone(), manifest.clone());
        off_clock(move || async move { s.record_manifest(&m).await }).await
    }
    async fn manifests(&self, dataset: &str) -> weir_store::Result<Vec<PartitionManifest>> {
        let (s, d) = (self.0.clone(), dataset.to_owned());
        off_clock(move || async move { s.manifests(&d).await }).await
    }
}

#[async_trait]
impl weir_store::CheckpointStore for OffClockStore {
    async fn save_checkpoint(&self, c: &weir_store::CheckpointRecord) -> weir_store::Result<()> {
        let (s, c) = (self.0.clone(), c.clone());
        off_clock(move || async move { s.save_checkpoint(&c).await }).await
    }
    async fn checkpoints(
        &self,
        f: &weir_store::CheckpointFilter,
    ) -> weir_store::Result<Vec<weir_store::CheckpointRecord>> {
        let (s, f) = (self.0.clone(), f.clone());
        off_clock(move || async move { s.checkpoints(&f).await }).await
    }
    async fn delete_checkpoints(
        &self,
        f: &weir_store::CheckpointFilter,
        keep_last: u32,
    ) -> weir_store::Result<u64> {
        let (s, f) = (self.0.clone(), f.clone());
        off_clock(move || async move { s.delete_checkpoints(&f, keep_last).await }).await
    }
}

#[async_trait]
impl weir_store::CheckStore for OffClockStore {
    async fn record_checks(&self, results: &[weir_store::CheckResult]) -> weir_store::Result<()> {
        let (s, r) = (self.0.clone(), results.to_vec());
        off_clock(move || async move { weir_store::CheckStore::record_checks(&*s, &r).await }).await
    }
    async fn checks(
        &self,
        filter: &weir_store::CheckFilter,
    ) -> weir_store::Result<Vec<weir_store::CheckResult>> {
        let (s, f) = (self.0.clone(), filter.clone());
        off_clock(move || async move { weir_store::CheckStore::checks(&*s, &f).await }).await
    }
}

#[async_trait]
impl weir_store::CoordinationStore for OffClockStore {
    async fn set_dag_limit(
        &self,
        dag_id: &str,
        max_active_tasks: u32,
        at: Timestamp,
    ) -> weir_store::Result<()> {
        let (s, d) = (self.0.clone(), dag_id.to_owned());
        off_clock(move || async move { s.set_dag_limit(&d, max_active_tasks, at).await }).await
    }
    async fn claim_tasks(
        &self,
        claim: &weir_store::ClaimTasks,
    ) -> weir_store::Result<Vec<weir_store::ClaimedTask>> {
        let (s, c) = (self.0.clone(), claim.clone());
        off_clock(move || async move { s.claim_tasks(&c).await }).await
    }
    async fn renew_tasks(
        &self,
        fences: &[weir_store::TiFence],
        lease_until: Timestamp,
    ) -> weir_store::Result<Vec<weir_store::TiFence>> {
        let (s, f) = (self.0.clone(), fences.to_vec());
        off_clock(move || async move { s.renew_tasks(&f, lease_until).await }).await
    }
    async fn finish_task(
        &self,
        fence: &weir_store::TiFence,
        end: &weir_store::TryEnd,
    ) -> weir_store::Result<()> {
        let (s, f, e) = (self.0.clone(), fence.clone(), end.clone());
        off_clock(move || async move { s.finish_task(&f, &e).await }).await
    }
    async fn requeue_expired(&self, now: Timestamp) -> weir_store::Result<weir_store::Requeued> {
        let s = self.0.clone();
        off_clock(move || async move { s.requeue_expired(now).await }).await
    }
    async fn save_try_log(&self, log: &weir_store::TryLog) -> weir_store::Result<()> {
        let (s, l) = (self.0.clone(), log.clone());
        off_clock(move || async move { s.save_try_log(&l).await }).await
    }
    async fn try_log(
        &self,
        key: &TiKey,
        clear_number: u32,
        try_number: u32,
    ) -> weir_store::Result<Option<weir_store::TryLog>> {
        let (s, k) = (self.0.clone(), key.clone());
        off_clock(move || async move { s.try_log(&k, clear_number, try_number).await }).await
    }
    async fn notify(&self, channel: &str) -> weir_store::Result<()> {
        self.0.notify(channel).await
    }
    async fn listen(&self, channels: &[&str]) -> weir_store::Result<Box<dyn weir_store::Wakeup>> {
        self.0.listen(channels).await
    }
}

/// Dataset commits are not used by the runtime's tests: passed straight through.
#[async_trait]
impl weir_store::DatasetCommitStore for OffClockStore {
    async fn begin_commit(&self, b: &weir_store::BeginCommit) -> weir_store::Result<()> {
        self.0.begin_commit(b).await
    }
    async fn record_commit_file(
        &self,
        commit_id: &str,
        path: &str,
        lease_until: Timestamp,
    ) -> weir_store::Result<()> {
        self.0
            .record_commit_file(commit_id, path, lease_until)
            .await
    }
    async fn commit_partition(
        &self,
        commit_id: &str,
        files: &[weir_store::CommitFile],
        base: weir_store::CommitBase,
        mode: weir_store::CommitMode,
        at: Timestamp,
    ) -> weir_store::Result<weir_store::PartitionHead> {
        self.0
            .commit_partition(commit_id, files, base, mode, at)
            .await
    }
    async fn partition_head(
        &self,
        dataset: &str,
        partition: &str,
    ) -> weir_store::Result<Option<weir_store::PartitionHead>> {
        self.0.partition_head(dataset, partition).await
    }
    async fn partition_heads(
        &self,
        dataset: &str,
    ) -> weir_store::Result<Vec<weir_store::PartitionHead>> {
        self.0.partition_heads(dataset).await
    }
    async fn roll_back_commit(
        &self,
        commit_id: &str,
        at: Timestamp,
        only_if_expired: bool,
    ) -> weir_store::Result<Option<weir_store::DatasetCommit>> {
        self.0
            .roll_back_commit(commit_id, at, only_if_expired)
            .await
    }
    async fn roll_back_expired_commits(
        &self,
        dataset: &str,
        now: Timestamp,
    ) -> weir_store::Result<Vec<weir_store::DatasetCommit>> {
        self.0.roll_back_expired_commits(dataset, now).await
    }
    async fn collectable_commits(
        &self,
        dataset: &str,
        superseded_before: Timestamp,
    ) -> weir_store::Result<Vec<weir_store::DatasetCommit>> {
        self.0.collectable_commits(dataset, superseded_before).await
    }
    async fn forget_commit(&self, commit_id: &str) -> weir_store::Result<()> {
        self.0.forget_commit(commit_id).await
    }
    async fn dataset_commits(
        &self,
        dataset: &str,
    ) -> weir_store::Result<Vec<weir_store::DatasetCommit>> {
        self.0.dataset_commits(dataset).await
    }
}

#[async_trait]
impl RejectStore for OffClockStore {
    async fn record_rejects(&self, rejects: &[RejectRecord]) -> weir_store::Result<()> {
        let (s, r) = (self.0.clone(), rejects.to_vec());
        off_clock(move || async move { s.record_rejects(&r).await }).await
    }
    async fn dead_letters(&self, filter: &RejectFilter) -> weir_store::Result<Vec<DeadLetter>> {
        let (s, f) = (self.0.clone(), filter.clone());
        off_clock(move || async move { s.dead_letters(&f).await }).await
    }
    async fn dead_letter(&self, id: i64) -> weir_store::Result<Option<DeadLetter>> {
        let s = self.0.clone();
        off_clock(move || async move { s.dead_letter(id).await }).await
    }
    async fn correct_dead_letter(&self, id: i64, payload: Option<&str>) -> weir_store::Result<()> {
        let (s, p) = (self.0.clone(), payload.map(str::to_owned));
        off_clock(move || async move { s.correct_dead_letter(id, p.as_deref()).await }).await
    }
    async fn begin_replay(&self, ids: &[i64], batch: &str) -> weir_store::Result<Vec<i64>> {
        let (s, i, b) = (self.0.clone(), ids.to_vec(), batch.to_owned());
        off_clock(move || async move { s.begin_replay(&i, &b).await }).await
    }
    async fn finish_replay(
        &self,
        outcomes: &[ReplayOutcome],
        max_replays: u32,
        at: Timestamp,
    ) -> weir_store::Result<()> {
        let (s, o) = (self.0.clone(), outcomes.to_vec());
        off_clock(move || async move { s.finish_replay(&o, max_replays, at).await }).await
    }
    async fn reopen_dead_letters(&self, source: &str, lines: &[u64]) -> weir_store::Result<()> {
        let (s, src, l) = (self.0.clone(), source.to_owned(), lines.to_vec());
        off_clock(move || async move { s.reopen_dead_letters(&src, &l).await }).await
    }
    async fn purge_dead_letters(
        &self,
        before: Timestamp,
        statuses: &[DeadLetterStatus],
    ) -> weir_store::Result<u64> {
        let (s, st) = (self.0.clone(), statuses.to_vec());
        off_clock(move || async move { s.purge_dead_letters(before, &st).await }).await
    }
}

/// One test's world: a store file in a temp dir, the DAGs, and an executor whose clock reads
/// [`t0`] when the world is made.
pub struct World {
    pub dir: TempDir,
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub ex: Arc<Executor>,
}

/// Options with a parallelism high enough not to be the limit under test.
pub fn options(dir: &TempDir) -> ExecutorOptions {
    ExecutorOptions {
        parallelism: 64,
        lease: secs(30),
        home: dir.path().join("home"),
        owner: "test-process".to_owned(),
        yield_waiting_sensors: false,
    }
}

impl World {
    pub async fn new(dags: impl IntoIterator<Item = DagDef>) -> World {
        World::with(dags, |_| {}).await
    }

    /// A world whose executor options are adjusted by `tune`.
    pub async fn with(
        dags: impl IntoIterator<Item = DagDef>,
        tune: impl FnOnce(&mut ExecutorOptions),
    ) -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("weir.db");
        let sqlite = off_clock(move || async move { SqlStore::open(&path).await })
            .await
            .expect("open the store");
        let store: Arc<dyn Store> = Arc::new(OffClockStore(Arc::new(sqlite)));
        let mut registry = Registry::new();
        for dag in dags {
            registry.add(dag);
        }
        let registry = Arc::new(registry);
        let mut opts = options(&dir);
        tune(&mut opts);
        let ex = Arc::new(Executor::new(
            store.clone(),
            registry.clone(),
            Arc::new(TokioClock::starting_at(t0())),
            opts,
        ));
        World {
            dir,
            store,
            registry,
            ex,
        }
    }

    /// Another executor (a restarted process: another owner) on the same store and DAGs, its
    /// clock at `now`.
    pub fn executor_at(&self, now: Timestamp) -> Executor {
        self.executor_as("restarted-process", now)
    }

    /// Another process named `owner` on the same store and DAGs, its clock at `now`.
    pub fn executor_as(&self, owner: &str, now: Timestamp) -> Executor {
        let mut opts = options(&self.dir);
        opts.owner = owner.to_owned();
        Executor::new(
            self.store.clone(),
            self.registry.clone(),
            Arc::new(TokioClock::starting_at(now)),
            opts,
        )
    }

    /// A manual run of `dag` for [`t0`] with the given conf, queued.
    pub async fn trigger(&self, dag: &str, conf: serde_json::Value) -> RunRecord {
        trigger_run(
            &self.ex,
            TriggerRequest {
                dag_id: DagId::new(dag).expect("dag id"),
                logical_date: Some(t0()),
                conf,
            },
        )
        .await
        .expect("trigger the run")
    }

    /// Triggers a run of `dag` for [`t0`] and runs it to the end.
    pub async fn run(&self, dag: &str) -> (RunRecord, RunOutcome) {
        let run = self.trigger(dag, serde_json::json!({})).await;
        let outcome = self
            .ex
            .run(&run.dag_id, &run.run_id)
            .await
            .expect("the executor runs the run");
        (run, outcome)
    }

    pub async fn tis(&self, run: &RunRecord) -> Vec<TaskInstanceRecord> {
        self.store
            .task_instances(&run.dag_id, &run.run_id)
            .await
            .expect("task instances")
    }

    /// The instance of an unmapped task.
    pub async fn ti(&self, run: &RunRecord, task: &str) -> TaskInstanceRecord {
        let mut found: Vec<_> = self
            .tis(run)
            .await
            .into_iter()
            .filter(|ti| ti.key.task_id.as_str() == task)
            .collect();
        assert_eq!(found.len(), 1, "task `{task}` has one instance: {found:?}");
        found.remove(0)
    }

    /// States of every instance by (task, map index).
    pub async fn states(&self, run: &RunRecord) -> BTreeMap<(String, i64), TaskState> {
        self.tis(run)
            .await
            .into_iter()
            .map(|ti| {
                (
                    (ti.key.task_id.to_string(), ti.key.map_index.raw()),
                    ti.state,
                )
            })
            .collect()
    }

    /// Finished tries of one task instance, by try number.
    pub async fn tries(&self, run: &RunRecord, task: &str) -> Vec<TryRecord> {
        let mut tries: Vec<TryRecord> = self
            .store
            .tries(&run.dag_id, &run.run_id)
            .await
            .expect("tries")
            .into_iter()
            .filter(|t| t.task_id.as_str() == task)
            .collect();
        tries.sort_by_key(|t| (t.map_index, t.try_number));
        tries
    }

    pub async fn outputs(&self, run: &RunRecord, task: &str) -> Vec<(i64, serde_json::Value)> {
        self.store
            .outputs(&run.dag_id, &run.run_id, task)
            .await
            .expect("outputs")
    }
}

/// Counts how many holders are inside at once and the most there ever were.
#[derive(Debug, Default)]
pub struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Gauge {
    pub fn new() -> Arc<Gauge> {
        Arc::new(Gauge::default())
    }

    pub fn enter(self: &Arc<Self>) -> GaugeGuard {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        GaugeGuard(self.clone())
    }

    pub fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

pub struct GaugeGuard(Arc<Gauge>);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A shared call counter for callbacks and task bodies.
#[derive(Debug, Default)]
pub struct Calls(AtomicUsize);

impl Calls {
    pub fn new() -> Arc<Calls> {
        Arc::new(Calls::default())
    }

    /// Counts one call and returns how many there were before it.
    pub fn hit(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst)
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}
