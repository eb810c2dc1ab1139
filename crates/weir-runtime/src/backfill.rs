//! Backfill: run a DAG over a range of logical dates, with reprocessing rules and a dry run.

use std::sync::Arc;

use futures::StreamExt;
use jiff::Timestamp;
use weir_core::ids::RunKind;
use weir_core::{DagId, DagRunInfo, RunId, RunState, TimeRestriction};
use weir_store::{NewRun, RunRecord};

use crate::executor::Executor;
use crate::{Result, RuntimeError};

/// Which existing runs a backfill runs again (Airflow's `reprocess_behavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reprocess {
    /// Only intervals that have no run yet.
    #[default]
    None,
    /// Also intervals whose run failed.
    Failed,
    /// Every interval with a finished run, failed or successful.
    Completed,
}

#[derive(Debug, Clone)]
pub struct BackfillOptions {
    /// First logical date (inclusive).
    pub from: Timestamp,
    /// Last logical date (inclusive).
    pub to: Timestamp,
    pub reprocess: Reprocess,
    /// Runs of this backfill at once; defaults to the DAG's `max_active_runs`.
    pub max_active_runs: Option<u32>,
    pub conf: serde_json::Value,
    /// Hand the runs' tasks to the workers of this queue ([`crate::Dispatcher`]) instead of
    /// running them in this process.
    pub queue: Option<String>,
}

/// What a backfill will do for one interval.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanAction {
    Create,
    Rerun,
    /// An unfinished run (queued, or left running by a process that was killed): taken over and
    /// finished unless its owner is alive.
    Resume,
    Skip,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanEntry {
    pub logical_date: Timestamp,
    pub interval_start: Timestamp,
    pub interval_end: Timestamp,
    pub existing: Option<RunState>,
    pub action: PlanAction,
}

/// The intervals of a backfill and what will happen to each (also the dry-run output).
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackfillPlan {
    pub dag_id: DagId,
    pub entries: Vec<PlanEntry>,
}

/// Progress of a backfill, for progress bars and logs.
#[derive(Debug, Clone)]
pub enum BackfillEvent {
    Started {
        runs: usize,
    },
    RunFinished {
        run_id: RunId,
        logical_date: Timestamp,
        state: RunState,
    },
}

#[derive(Debug, Clone, Default)]
pub struct BackfillReport {
    pub runs: Vec<(RunRecord, RunState)>,
    /// Intervals whose run had already finished (and was not to be reprocessed).
    pub skipped: usize,
    /// Runs an earlier process had left unfinished (queued, or running when it was killed) that
    /// this backfill finished.
    pub resumed: usize,
    /// Unfinished runs whose owner is alive (it renewed its lease): left to it.
    pub held: Vec<RunId>,
}

impl BackfillReport {
    pub fn count(&self, state: RunState) -> usize {
        self.runs.iter().filter(|(_, s)| *s == state).count()
    }
}

/// Lists the intervals in `[from, to]` (by logical date) and what a backfill does with each.
pub async fn plan_backfill(
    ex: &Executor,
    dag_id: &DagId,
    opts: &BackfillOptions,
) -> Result<BackfillPlan> {
    let def = ex.dag(dag_id.as_str())?;
    let zone = def.run_zone(&def.resolve_params(&opts.conf)?);
    let tt = def.schedule_in(&zone).ok_or_else(|| {
        RuntimeError::Invalid(format!(
            "DAG `{dag_id}` has no schedule, so it has no intervals to backfill; trigger single runs with `weir dags run`"
        ))
    })?;
    if opts.to < opts.from {
        return Err(RuntimeError::Invalid(format!(
            "the backfill range is empty: --to {} is before --from {}",
            opts.to, opts.from
        )));
    }
    let restriction = TimeRestriction {
        earliest: Some(opts.from),
        latest: Some(opts.to),
        catchup: true,
    };
    let mut entries = Vec::new();
    let mut last = None;
    let now = ex.clock().now();
    while let Some(DagRunInfo { data_interval, .. }) =
        tt.next_dagrun_info(last.as_ref(), &restriction, now)
    {
        if last
            .as_ref()
            .is_some_and(|l: &weir_core::DataInterval| data_interval.start <= l.start)
        {
            return Err(RuntimeError::Internal(format!(
                "timetable of `{dag_id}` did not advance past {}",
                data_interval.start
            )));
        }
        let existing = ex
            .store()
            .run_at(dag_id, data_interval.start)
            .await?
            .map(|r| r.state);
        let action = match (existing, opts.reprocess) {
            (None, _) => PlanAction::Create,
            (Some(RunState::Failed), Reprocess::Failed | Reprocess::Completed) => PlanAction::Rerun,
            (Some(RunState::Success), Reprocess::Completed) => PlanAction::Rerun,
            (Some(RunState::Queued | RunState::Running), _) => PlanAction::Resume,
            (Some(RunState::Success | RunState::Failed), _) => PlanAction::Skip,
        };
        entries.push(PlanEntry {
            logical_date: data_interval.start,
            interval_start: data_interval.start,
            interval_end: data_interval.end,
            existing,
            action,
        });
        last = Some(data_interval);
    }
    Ok(BackfillPlan {
        dag_id: dag_id.clone(),
        entries,
    })
}

/// Runs the plan: creates or re-queues each interval's run, then runs them, at most
/// `max_active_runs` at a time, oldest first.
pub async fn backfill(
    ex: Arc<Executor>,
    dag_id: &DagId,
    opts: &BackfillOptions,
    mut on_event: impl FnMut(&BackfillEvent),
) -> Result<BackfillReport> {
    let def = ex.dag(dag_id.as_str())?;
    let plan = plan_backfill(&ex, dag_id, opts).await?;
    ex.keep_version(&def).await?;
    let now = ex.clock().now();
    let mut to_run = Vec::new();
    let mut report = BackfillReport::default();
    for entry in &plan.entries {
        match entry.action {
            PlanAction::Skip => report.skipped += 1,
            PlanAction::Resume => to_run.push(existing(&ex, dag_id, entry).await?),
            PlanAction::Create => {
                let (run, _) = ex
                    .store()
                    .create_run(NewRun {
                        dag_id: dag_id.clone(),
                        run_id: RunId::for_logical_date(RunKind::Backfill, entry.logical_date),
                        kind: RunKind::Backfill,
                        logical_date: entry.logical_date,
                        interval_start: entry.interval_start,
                        interval_end: entry.interval_end,
                        run_after: now,
                        conf: opts.conf.clone(),
                        created_at: now,
                        dag_version: def.version.clone(),
                    })
                    .await?;
                to_run.push(run);
            }
            PlanAction::Rerun => {
                let run = existing(&ex, dag_id, entry).await?;
                ex.store()
                    .reset_run(
                        dag_id,
                        &run.run_id,
                        Some(opts.conf.clone()),
                        def.version.as_deref(),
                    )
                    .await?;
                to_run.push(run);
            }
        }
    }
    let resuming: std::collections::HashSet<RunId> = plan
        .entries
        .iter()
        .filter(|e| e.action == PlanAction::Resume)
        .filter_map(|e| to_run.iter().find(|r| r.logical_date == e.logical_date))
        .map(|r| r.run_id.clone())
        .collect();
    on_event(&BackfillEvent::Started { runs: to_run.len() });
    let limit = opts
        .max_active_runs
        .unwrap_or(def.dag.max_active_runs)
        .max(1) as usize;
    let queue = opts.queue.clone();
    let mut results = futures::stream::iter(to_run.into_iter().map(|run| {
        let (ex, queue) = (ex.clone(), queue.clone());
        async move {
            let outcome = match queue {
                None => ex.take_over(&run.dag_id, &run.run_id).await,
                Some(queue) => dispatched(ex, queue, &run).await,
            };
            (outcome, run.run_id)
        }
    }))
    .buffered(limit);
    while let Some((outcome, run_id)) = results.next().await {
        let outcome = match outcome {
            Ok(outcome) => outcome,
            // Held by a live process, or taken over by one while this backfill drove it.
            Err(
                RuntimeError::RunHeld { .. }
                | RuntimeError::Store(weir_store::StoreError::Fenced { .. }),
            ) => {
                report.held.push(run_id);
                continue;
            }
            Err(e) => return Err(e),
        };
        report.resumed += usize::from(resuming.contains(&run_id));
        on_event(&BackfillEvent::RunFinished {
            run_id: outcome.run.run_id.clone(),
            logical_date: outcome.run.logical_date,
            state: outcome.state,
        });
        report.runs.push((outcome.run, outcome.state));
    }
    Ok(report)
}

/// Drives `run` for the workers of `queue` to its end.
async fn dispatched(
    ex: Arc<Executor>,
    queue: String,
    run: &RunRecord,
) -> Result<crate::RunOutcome> {
    let state = crate::Dispatcher::new(ex.clone(), queue).drive(run).await?;
    let run = ex
        .store()
        .get_run(&run.dag_id, &run.run_id)
        .await?
        .ok_or_else(|| RuntimeError::Internal(format!("run {} vanished", run.run_id)))?;
    Ok(crate::RunOutcome {
        run,
        state,
        resumed: false,
    })
}

/// The stored run of a planned interval that the plan found existing.
async fn existing(ex: &Executor, dag_id: &DagId, entry: &PlanEntry) -> Result<RunRecord> {
    ex.store()
        .run_at(dag_id, entry.logical_date)
        .await?
        .ok_or_else(|| {
            RuntimeError::Internal(format!(
                "run at {} vanished during backfill",
                entry.logical_date
            ))
        })
}
