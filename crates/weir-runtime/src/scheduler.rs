//! The scheduler: creates runs when they are due, runs them, resumes what a killed process left.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::task::JoinSet;
use weir_core::ids::RunKind;
use weir_core::{DagId, DagRunInfo, DataInterval, RunId, RunState, TimeRestriction, Timetable};
use weir_store::{NewRun, RunFilter, RunRecord};

use crate::executor::{Executor, RunOutcome};
use crate::{Result, RuntimeError};

/// A manual run of a DAG (`weir dags run`).
#[derive(Debug, Clone)]
pub struct TriggerRequest {
    pub dag_id: DagId,
    /// The instant the run's data interval should cover; `None` means now.
    pub logical_date: Option<Timestamp>,
    pub conf: serde_json::Value,
}

/// The data interval a run "for" `at` covers: for a window schedule, the window containing `at`
/// (a boundary starts its window); for other timetables, their inferred manual interval.
pub(crate) fn interval_for(tt: &dyn Timetable, at: Timestamp) -> DataInterval {
    let restriction = TimeRestriction {
        earliest: Some(at),
        latest: None,
        catchup: true,
    };
    match tt.next_dagrun_info(None, &restriction, at) {
        Some(info) if info.data_interval.start == at => info.data_interval,
        Some(info)
            if info.data_interval.start > at
                && info.data_interval.end > info.data_interval.start =>
        {
            let guess = tt.infer_manual_data_interval(info.data_interval.start);
            if guess.start <= at && at < guess.end {
                guess
            } else {
                tt.infer_manual_data_interval(at)
            }
        }
        _ => tt.infer_manual_data_interval(at),
    }
}

/// Creates a manual run (or clears and re-queues the finished run at the same logical date, so
/// re-running an interval replaces its results) and returns it, queued. An unfinished run of the
/// interval is returned as it is: [`Executor::take_over`] then finishes it if its owner is gone.
///
/// The conf is checked against the DAG's declared params first: a bad value creates no run. The
/// interval is the schedule's on the wall clock of the run's zone ([`DagDef::run_zone`]), so
/// `--conf tz=America/New_York` with a logical date of New York's 2013-06-15 00:00 is New York's
/// day 2013-06-15, whatever the DAG's own zone.
pub async fn trigger_run(ex: &Executor, req: TriggerRequest) -> Result<RunRecord> {
    let def = ex.dag(req.dag_id.as_str())?;
    let params = def.resolve_params(&req.conf)?;
    let zone = def.run_zone(&params);
    let now = ex.clock().now();
    let at = req.logical_date.unwrap_or(now);
    let interval = match def.schedule_in(&zone) {
        Some(tt) => interval_for(tt.as_ref(), at),
        None => DataInterval { start: at, end: at },
    };
    let store = ex.store();
    ex.keep_version(&def).await?;
    if let Some(existing) = store.run_at(&req.dag_id, interval.start).await? {
        if !existing.state.is_terminal() {
            return Ok(existing);
        }
        store
            .reset_run(
                &existing.dag_id,
                &existing.run_id,
                Some(req.conf.clone()),
                def.version.as_deref(),
            )
            .await?;
        return store
            .get_run(&existing.dag_id, &existing.run_id)
            .await?
            .ok_or_else(|| RuntimeError::Internal("a reset run vanished".to_owned()));
    }
    let (run, _) = store
        .create_run(NewRun {
            dag_id: req.dag_id.clone(),
            run_id: RunId::for_logical_date(RunKind::Manual, interval.start),
            kind: RunKind::Manual,
            logical_date: interval.start,
            interval_start: interval.start,
            interval_end: interval.end,
            run_after: now,
            conf: req.conf,
            created_at: now,
            dag_version: def.version.clone(),
        })
        .await?;
    Ok(run)
}

/// Creates due runs of scheduled DAGs and runs queued runs.
#[derive(Debug, Clone)]
pub struct Scheduler {
    ex: Arc<Executor>,
}

impl Scheduler {
    pub fn new(ex: Arc<Executor>) -> Self {
        Scheduler { ex }
    }

    /// Creates the runs that are due at `now` for every scheduled DAG, honouring catchup,
    /// start/end dates, the grace period and `max_active_runs`. Returns the runs created.
    pub async fn create_due_runs(&self, now: Timestamp) -> Result<Vec<RunRecord>> {
        let store = self.ex.store();
        let mut created = Vec::new();
        for def in self.ex.registry().dags() {
            let dag = &def.dag;
            let Some(tt) = &dag.schedule else { continue };
            let filter = RunFilter {
                dag_id: Some(dag.id.clone()),
                states: vec![RunState::Queued, RunState::Running],
                ..Default::default()
            };
            let mut active = store.list_runs(&filter).await?.len() as u32;
            let mut last = store
                .last_scheduled_run(&dag.id)
                .await?
                .map(|r| DataInterval {
                    start: r.interval_start,
                    end: r.interval_end,
                });
            let restriction = TimeRestriction {
                earliest: dag.start_date,
                latest: dag.end_date,
                catchup: dag.catchup,
            };
            while active < dag.max_active_runs {
                let Some(DagRunInfo {
                    data_interval,
                    run_after,
                }) = tt.next_dagrun_info(last.as_ref(), &restriction, now)
                else {
                    break;
                };
                let due_at = run_after.saturating_add(dag.grace).unwrap_or(run_after);
                if due_at > now {
                    break;
                }
                self.ex.keep_version(def).await?;
                let (run, was_created) = store
                    .create_run(NewRun {
                        dag_id: dag.id.clone(),
                        run_id: RunId::for_logical_date(RunKind::Scheduled, data_interval.start),
                        kind: RunKind::Scheduled,
                        logical_date: data_interval.start,
                        interval_start: data_interval.start,
                        interval_end: data_interval.end,
                        run_after,
                        conf: serde_json::Value::Object(Default::default()),
                        created_at: now,
                        dag_version: def.version.clone(),
                    })
                    .await?;
                last = Some(data_interval);
                if was_created {
                    active += 1;
                    created.push(run);
                }
            }
        }
        Ok(created)
    }

    /// Creates the runs due at `now`, then lists the unfinished ones.
    async fn due_and_pending(&self, now: Timestamp) -> Result<Vec<RunRecord>> {
        self.create_due_runs(now).await?;
        let filter = RunFilter {
            states: vec![RunState::Queued, RunState::Running],
            ..Default::default()
        };
        Ok(self.ex.store().list_runs(&filter).await?)
    }

    /// Runs the scheduler: every `poll`, creates due runs and runs every queued or running run
    /// (resuming those a stopped process left behind). With `once`, stops when nothing is left
    /// to run; otherwise runs until `shutdown` completes.
    pub async fn serve(
        &self,
        poll: Duration,
        once: bool,
        shutdown: impl std::future::Future<Output = ()>,
        mut on_finished: impl FnMut(&RunOutcome),
    ) -> Result<()> {
        tokio::pin!(shutdown);
        let mut in_flight: HashSet<(DagId, RunId)> = HashSet::new();
        // Runs another live process drives: left to it (retried at the next poll unless `once`).
        let mut held: HashSet<(DagId, RunId)> = HashSet::new();
        let mut runs: JoinSet<(DagId, RunId, Result<RunOutcome>)> = JoinSet::new();
        loop {
            let now = self.ex.clock().now();
            let mut pending = match self.due_and_pending(now).await {
                Ok(pending) => pending,
                // The store busy or away for a moment (a long write of another process):
                // the scheduler waits and tries again instead of stopping.
                Err(RuntimeError::Store(e)) if weir_core::Transient::is_transient(&e) && !once => {
                    tracing::warn!("cannot read the store's runs: {e}; trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(poll.max(Duration::from_secs(1))) => continue,
                        _ = &mut shutdown => return Ok(()),
                    }
                }
                Err(e) => return Err(e),
            };
            pending.reverse(); // oldest logical date first
            for run in pending {
                let registry = self.ex.registry();
                let pinned = run
                    .dag_version
                    .as_ref()
                    .is_some_and(|v| registry.get_version(run.dag_id.as_str(), v).is_some());
                if registry.get(run.dag_id.as_str()).is_none() && !pinned {
                    continue;
                }
                let key = (run.dag_id.clone(), run.run_id.clone());
                if once && held.contains(&key) {
                    continue;
                }
                if in_flight.insert(key.clone()) {
                    let ex = self.ex.clone();
                    runs.spawn(async move {
                        let outcome = ex.run(&key.0, &key.1).await;
                        (key.0, key.1, outcome)
                    });
                }
            }
            if once && runs.is_empty() {
                return Ok(());
            }
            tokio::select! {
                Some(joined) = runs.join_next(), if !runs.is_empty() => {
                    let (dag, run, outcome) = joined.map_err(|e| RuntimeError::Internal(format!("run task failed: {e}")))?;
                    in_flight.remove(&(dag.clone(), run.clone()));
                    match outcome {
                        Ok(outcome) => {
                            if !outcome.state.is_terminal() {
                                // Its sensors wait: poked again at the next pass.
                                held.insert((dag, run));
                            }
                            on_finished(&outcome)
                        }
                        Err(e @ RuntimeError::RunHeld { .. }) => {
                            tracing::info!("{e}");
                            held.insert((dag, run));
                        }
                        // One run's trouble (taken over by another process, a conf that no
                        // longer fits its DAG, a busy store) does not stop the others: it is
                        // reported and tried again at the next pass.
                        Err(e) => {
                            tracing::error!(dag_id = %dag, run_id = %run, "{e}");
                            held.insert((dag, run));
                        }
                    }
                }
                _ = tokio::time::sleep(poll), if !once => {}
                _ = &mut shutdown => return Ok(()),
            }
        }
    }
}
