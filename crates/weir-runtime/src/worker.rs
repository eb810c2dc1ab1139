//! `weir worker`: claims scheduled task instances from the store, runs them with its own
//! registry (compiled DAGs and DAG files) and reports how each try ended — under the fencing
//! token of its claim, so a worker whose lease ran out (cut off, paused, thought dead) changes
//! nothing once its instances were handed on.
//!
//! Claims go in batches of the free slots; pools, queues and each DAG's `max_active_tasks` are
//! counted by the store in the claim itself ([`CoordinationStore::claim_tasks`]). An idle
//! worker sleeps on the store's notifications (PostgreSQL `LISTEN`), with a slow poll as the
//! fallback; SQLite, a single host, has only the poll.
//!
//! [`CoordinationStore::claim_tasks`]: weir_store::CoordinationStore::claim_tasks

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt as _;
use tokio::task::JoinSet;
use tracing::Instrument;
use weir_core::TaskState;
use weir_store::{ClaimTasks, ClaimedTask, Store, StoreError, TiFence, TryEnd, channel};

use crate::{Executor, Result, TaskError};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Only instances routed to these queues; empty takes every queue.
    pub queues: Vec<String>,
    /// At most this many tries at once.
    pub concurrency: usize,
    /// How often an idle worker looks for work without being told.
    pub poll: Duration,
}

/// What a worker did before it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerReport {
    pub succeeded: usize,
    pub failed: usize,
    /// Tries whose claim was handed on before they ended: their result was dropped.
    pub lost: usize,
}

/// A worker process's loop.
pub struct Worker {
    ex: Arc<Executor>,
    owner: String,
    opts: WorkerOptions,
}

struct Done {
    fence: TiFence,
    end: TryEnd,
}

/// The claims a worker holds, by the task running each.
type Held = Arc<Mutex<HashMap<tokio::task::Id, (TiFence, tokio::task::AbortHandle)>>>;

/// How long a worker waits before asking a store that did not answer again.
const BACKOFF: Duration = Duration::from_secs(1);

/// Waits for a notification, or sleeps `pause` without a listener.
async fn wait(wakeup: &mut Option<Box<dyn weir_store::Wakeup>>, pause: Duration) -> Result<bool> {
    match wakeup {
        Some(w) => Ok(w.wait(pause).await?),
        None => {
            tokio::time::sleep(pause).await;
            Ok(false)
        }
    }
}

/// Renews the leases of the claims held, every third of a lease; a claim that was handed on
/// (its lease ran out) has its try stopped.
async fn heartbeat(ex: Arc<Executor>, held: Held, lost: Arc<AtomicUsize>) {
    let lease = ex.options().lease;
    let every = (lease / 3).unsigned_abs().max(Duration::from_millis(100));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let fences: Vec<TiFence> = held
            .lock()
            .expect("held leases")
            .values()
            .map(|(f, _)| f.clone())
            .collect();
        if fences.is_empty() {
            continue;
        }
        let now = ex.clock().now();
        match ex
            .store()
            .renew_tasks(&fences, now.saturating_add(lease).unwrap_or(now))
            .await
        {
            Ok(gone) => {
                let mut held = held.lock().expect("held leases");
                for g in gone {
                    let id = held.iter().find(|(_, (f, _))| f == &g).map(|(id, _)| *id);
                    if let Some((f, handle)) = id.and_then(|id| held.remove(&id)) {
                        handle.abort();
                        tracing::warn!(task_id = %f.key.task_id, map_index = f.key.map_index.raw(),
                            "lost the claim of a running try (its lease ran out); stopped it");
                        lost.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Err(e) => tracing::warn!("cannot renew the leases of {} tries: {e}", fences.len()),
        }
    }
}

impl Worker {
    pub fn new(ex: Arc<Executor>, opts: WorkerOptions) -> Self {
        Worker {
            owner: format!("{}/worker", crate::process_owner_id()),
            ex,
            opts,
        }
    }

    /// The owner name this worker claims under.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Claims and runs until `stop` resolves, then finishes the tries it has started.
    ///
    /// A store that is down for a while (a restart, a network cut) does not stop the worker:
    /// claims wait, renewals are tried again, and a finished try's report is kept and sent when
    /// the store answers (if its lease ran out meanwhile, the report is refused and the
    /// instance runs again elsewhere). Only a store that cannot be opened at all is an error.
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>) -> Result<WorkerReport> {
        let store = self.ex.store().clone();
        let mut wakeup = self.listen().await;
        let lease = self.ex.options().lease;
        let held: Held = Arc::default();
        let lost = Arc::new(AtomicUsize::new(0));
        // Leases are renewed by a task of their own: a slow claim or report never holds them up.
        let heartbeat = tokio::spawn(heartbeat(self.ex.clone(), held.clone(), lost.clone()));
        let mut running: JoinSet<Done> = JoinSet::new();
        let mut unreported: Vec<Done> = Vec::new();
        let mut report = WorkerReport::default();
        let mut stop = std::pin::pin!(stop);
        let mut stopping = false;
        let mut backoff = false;
        loop {
            // Reports the store could not take before go first.
            if !unreported.is_empty() {
                let refused = self
                    .report(&store, std::mem::take(&mut unreported), &mut report)
                    .await;
                if !refused.is_empty() {
                    unreported = refused;
                    backoff = true;
                }
            }
            let free = self
                .opts
                .concurrency
                .saturating_sub(running.len() + unreported.len());
            if !stopping && free > 0 && !backoff {
                let now = self.ex.clock().now();
                match store
                    .claim_tasks(&ClaimTasks {
                        owner: self.owner.clone(),
                        queues: self.opts.queues.clone(),
                        limit: free as u32,
                        now,
                        lease_until: now.saturating_add(lease).unwrap_or(now),
                    })
                    .await
                {
                    Ok(claimed) => {
                        let mut held = held.lock().expect("held leases");
                        for claim in claimed {
                            let fence = claim.fence.clone();
                            let handle = running.spawn(self.try_of(claim));
                            held.insert(handle.id(), (fence, handle));
                        }
                    }
                    Err(e) => {
                        tracing::warn!("cannot claim work: {e}; trying again");
                        backoff = true;
                    }
                }
            }
            if stopping && running.is_empty() && unreported.is_empty() {
                heartbeat.abort();
                report.lost += lost.load(Ordering::Relaxed);
                return Ok(report);
            }
            let full = running.len() >= self.opts.concurrency;
            let pause = if backoff { BACKOFF } else { self.opts.poll };
            tokio::select! {
                () = &mut stop, if !stopping => {
                    tracing::info!(running = running.len(), "worker stopping: finishing the tries it started");
                    stopping = true;
                }
                Some(joined) = running.join_next_with_id(), if !running.is_empty() => {
                    // The tries that finished meanwhile are reported with it, in one commit.
                    let mut batch = Vec::new();
                    batch.extend(self.done_of(joined, &held));
                    while let Some(joined) = running.try_join_next_with_id() {
                        batch.extend(self.done_of(joined, &held));
                    }
                    let refused = self.report(&store, batch, &mut report).await;
                    if !refused.is_empty() {
                        unreported.extend(refused);
                        backoff = true;
                    }
                }
                woke = wait(&mut wakeup, pause), if (!full || backoff) && !stopping => {
                    backoff = false;
                    if let Err(e) = woke {
                        tracing::warn!("lost the store's notifications: {e}; listening again");
                        wakeup = self.listen().await;
                    }
                }
                () = tokio::time::sleep(BACKOFF), if stopping && !unreported.is_empty() => {}
            }
        }
    }

    /// The store's notifications of new work, or none (the poll alone) while it cannot listen.
    async fn listen(&self) -> Option<Box<dyn weir_store::Wakeup>> {
        match self.ex.store().listen(&[channel::WORK]).await {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("cannot listen for new work: {e}; polling");
                None
            }
        }
    }

    /// A joined try as its report: a try task that panicked outside the task's own code fails
    /// its try; one the heartbeat stopped (its claim was handed on) has none.
    fn done_of(
        &self,
        joined: std::result::Result<(tokio::task::Id, Done), tokio::task::JoinError>,
        held: &Held,
    ) -> Option<Done> {
        match joined {
            Ok((id, done)) => {
                held.lock().expect("held leases").remove(&id);
                Some(done)
            }
            Err(e) => {
                let (fence, _) = held.lock().expect("held leases").remove(&e.id())?;
                Some(Done {
                    end: TryEnd {
                        state: TaskState::Failed,
                        at: self.ex.clock().now(),
                        error: Some(format!("the try's worker task failed: {e}")),
                        retry_at: None,
                        output: None,
                        log: None,
                    },
                    fence,
                })
            }
        }
    }

    /// Reports finished tries in one commit; gives back those the store could not take (to
    /// try again).
    async fn report(
        &self,
        store: &Arc<dyn Store>,
        batch: Vec<Done>,
        report: &mut WorkerReport,
    ) -> Vec<Done> {
        if batch.is_empty() {
            return batch;
        }
        // In key order, so that two commits touching the same rows take their locks alike.
        let mut batch = batch;
        batch.sort_by(|a, b| {
            let key = |d: &Done| {
                (
                    d.fence.key.dag_id.to_string(),
                    d.fence.key.run_id.to_string(),
                    d.fence.key.task_id.to_string(),
                    d.fence.key.map_index.raw(),
                )
            };
            key(a).cmp(&key(b))
        });
        let pairs: Vec<(TiFence, TryEnd)> = batch
            .iter()
            .map(|d| (d.fence.clone(), d.end.clone()))
            .collect();
        let results = match store.finish_tasks(&pairs).await {
            Ok(results) => results,
            Err(e) if weir_core::Transient::is_transient(&e) => {
                tracing::warn!("cannot report {} tries yet: {e}; trying again", batch.len());
                return batch;
            }
            Err(e) if batch.len() > 1 => {
                // One try's report (a log the database refuses, say) failed the commit of
                // them all: each is reported alone, so only that one is lost.
                tracing::warn!(
                    "the store refused a batch of {} reports ({e}); reporting them one by one",
                    batch.len()
                );
                let mut refused = Vec::new();
                for done in batch {
                    refused.extend(Box::pin(self.report(store, vec![done], report)).await);
                }
                return refused;
            }
            Err(e) => {
                // Not the store being away: the instance runs again once its lease ends.
                tracing::error!(task_id = %batch[0].fence.key.task_id, "the store refused a try's report: {e}");
                report.lost += 1;
                return Vec::new();
            }
        };
        for (done, result) in batch.into_iter().zip(results) {
            match result {
                Ok(()) => match done.end.state {
                    TaskState::Success | TaskState::Skipped => report.succeeded += 1,
                    _ => report.failed += 1,
                },
                Err(StoreError::FencedTask(what)) => {
                    tracing::warn!("the result of {what} was dropped: its claim was handed on");
                    report.lost += 1;
                }
                Err(e) => {
                    tracing::error!(task_id = %done.fence.key.task_id, "the store refused a try's report: {e}");
                    report.lost += 1;
                }
            }
        }
        Vec::new()
    }

    /// Runs one claimed try to its end (never fails: an error becomes the try's end).
    fn try_of(
        &self,
        claim: ClaimedTask,
    ) -> impl std::future::Future<Output = Done> + Send + 'static {
        let ex = self.ex.clone();
        async move {
            let fence = claim.fence;
            let end = run_try(&ex, &fence).await;
            Done { fence, end }
        }
    }
}

async fn run_try(ex: &Arc<Executor>, fence: &TiFence) -> TryEnd {
    let key = &fence.key;
    let store: Arc<dyn Store> = ex.store().clone();
    let clock = ex.clock().clone();
    // The retry policy of the task as this worker knows it, for failures before the run's own
    // version is at hand.
    let known = ex
        .registry()
        .get(key.dag_id.as_str())
        .and_then(|d| d.dag.task(key.task_id.as_str()).cloned());
    let failed = |error: String, retry: bool, spec: Option<&weir_core::TaskSpec>, logical_date| {
        let now = clock.now();
        let retry_at = if retry {
            spec.or(known.as_ref()).and_then(|s| {
                crate::core::retry_at(s, key.dag_id.as_str(), logical_date, fence.try_number, now)
            })
        } else {
            None
        };
        TryEnd {
            state: if retry_at.is_some() {
                TaskState::UpForRetry
            } else {
                TaskState::Failed
            },
            at: now,
            error: Some(error),
            retry_at,
            output: None,
            log: None,
        }
    };
    let run = match store.get_run(&key.dag_id, &key.run_id).await {
        Ok(Some(run)) => run,
        Ok(None) => {
            return failed(
                format!("run `{}` does not exist", key.run_id),
                false,
                None,
                clock.now(),
            );
        }
        // The store did not answer: a retry may find it back.
        Err(e) => return failed(e.to_string(), true, None, clock.now()),
    };
    let registry = ex.registry();
    // The worker runs its own code: an instance of a DAG version it does not hold is refused.
    let def = match &run.dag_version {
        Some(v) => registry.get_version(key.dag_id.as_str(), v).cloned(),
        None => registry.get(key.dag_id.as_str()).cloned(),
    };
    let Some(def) = def else {
        let has = registry
            .get(key.dag_id.as_str())
            .map(|d| d.version.clone().unwrap_or_else(|| "compiled in".into()));
        let error = match (has, &run.dag_version) {
            (Some(mine), Some(v)) => format!(
                "worker {} holds version {mine} of DAG `{}`, but the run was created with version {v}; deploy the same DAG files to every worker",
                crate::process_owner_id(),
                key.dag_id
            ),
            _ => format!(
                "worker {} does not have DAG `{}`; deploy its DAG file (or binary) to every worker",
                crate::process_owner_id(),
                key.dag_id
            ),
        };
        tracing::warn!("{error}");
        return failed(error, true, None, run.logical_date);
    };
    let spec = def.dag.task(key.task_id.as_str()).cloned();
    let Some(spec) = spec else {
        return failed(
            format!("DAG `{}` has no task `{}`", key.dag_id, key.task_id),
            false,
            None,
            run.logical_date,
        );
    };
    let (ctx, def) = match crate::replay::task_context_of_try(
        store.clone(),
        &registry,
        ex.home().to_path_buf(),
        clock.clone(),
        &key.dag_id,
        &key.run_id,
        key.task_id.as_str(),
        key.map_index.raw(),
        Some(fence.try_number),
    )
    .await
    {
        Ok(found) => found,
        Err(e) => {
            let retry = matches!(e, crate::RuntimeError::Store(_));
            return failed(e.to_string(), retry, Some(&spec), run.logical_date);
        }
    };
    let pos = def.dag.position(key.task_id.as_str()).expect("found above");
    let span = tracing::info_span!(
        crate::logs::TRY_SPAN,
        dag_id = %key.dag_id, run_id = %key.run_id, task_id = %key.task_id,
        map_index = key.map_index.raw(), try_number = fence.try_number,
        clear_number = run.clear_number
    );
    span.in_scope(|| {
        tracing::info!(
            "try {} of {} started on worker {} (data interval {} .. {})",
            fence.try_number,
            spec.retry.retries + 1,
            crate::process_owner_id(),
            run.interval_start,
            run.interval_end
        )
    });
    let fut = def.task_at(pos).call(ctx).instrument(span.clone());
    let guarded = AssertUnwindSafe(fut).catch_unwind();
    let outcome = match spec.execution_timeout {
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
    let now = clock.now();
    let end = match result {
        Ok(output) => TryEnd {
            state: TaskState::Success,
            at: now,
            error: None,
            retry_at: None,
            output: Some(output),
            log: None,
        },
        Err(TaskError::Skip(reason)) => TryEnd {
            state: TaskState::Skipped,
            at: now,
            error: Some(reason),
            retry_at: None,
            output: None,
            log: None,
        },
        Err(TaskError::Reschedule { at, reason }) => TryEnd {
            state: TaskState::UpForReschedule,
            at: now,
            error: Some(reason),
            retry_at: Some(at.max(now)),
            output: None,
            log: None,
        },
        Err(TaskError::Retryable(message)) => failed(message, true, Some(&spec), run.logical_date),
        Err(TaskError::Fatal(message)) => failed(message, false, Some(&spec), run.logical_date),
    };
    span.in_scope(|| tracing::info!("try {} ended {}", fence.try_number, end.state));
    // The try's log goes to the store with its end: `weir tasks logs` on any host shows it.
    let path = crate::logs::try_log_path(
        &ex.home().join("logs"),
        key.dag_id.as_str(),
        key.run_id.as_str(),
        key.task_id.as_str(),
        key.map_index.raw(),
        run.clear_number,
        fence.try_number,
    );
    let mut end = end;
    if let Ok(text) = std::fs::read_to_string(&path) {
        end.log = Some(weir_store::TryLog {
            key: key.clone(),
            clear_number: run.clear_number,
            try_number: fence.try_number,
            host: crate::process_owner_id(),
            text,
            saved_at: clock.now(),
        });
    }
    end
}
