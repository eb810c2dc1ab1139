//! Replaying the dead-letter queue: every pending dead letter goes back through the task that
//! set it aside — the operator's own transform, with its run's params and interval — and what
//! passes is committed into the partition it belongs to; see [`replay`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use weir_core::{DagId, RunId};
use weir_runtime::{Clock, Registry, task_context};
use weir_store::{DeadLetter, DeadLetterStatus, RejectFilter, ReplayOutcome, Store};

use crate::Operator;

/// Which dead letters a replay takes, and how.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub dag: Option<String>,
    pub run: Option<String>,
    /// At most this many pending dead letters (lowest ids first).
    pub limit: Option<u32>,
    /// Route and report; commit nothing and change nothing in the store.
    pub dry_run: bool,
    /// A dead letter that has failed this many replays is quarantined.
    pub max_replays: u32,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            dag: None,
            run: None,
            limit: None,
            dry_run: false,
            max_replays: 3,
        }
    }
}

/// What a replay did, per dead letter.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayReport {
    /// This replay's id: the marker its commits carry.
    pub batch: String,
    pub dry_run: bool,
    /// Committed (or, in a dry run, would be): id and `DATASET/PARTITION`.
    pub replayed: Vec<(i64, String)>,
    /// Failed again: id, why, and whether it is now quarantined.
    pub failed: Vec<(i64, String, bool)>,
    /// Not tried: the task could not replay (id, why); they stay pending.
    pub skipped: Vec<(i64, String)>,
}

/// Replays pending dead letters (and finishes replays a killed process left `replaying`): per
/// task instance that set them aside, its operator reads each payload — the correction if
/// there is one — with the source's schema, routes it, and adds it to its partition as a new
/// part file in one atomic commit. The store marks them `replaying` before anything is written
/// and records the outcome after; a dead letter that fails `max_replays` times is quarantined.
pub async fn replay(
    store: Arc<dyn Store>,
    registry: &Registry,
    home: PathBuf,
    clock: Arc<dyn Clock>,
    opts: &ReplayOptions,
) -> Result<ReplayReport, String> {
    let now = clock.now();
    let batch = format!(
        "{}-{}",
        now.strftime("%Y%m%dT%H%M%S%6f"),
        std::process::id()
    );
    let filter = |status| RejectFilter {
        dag_id: opts.dag.clone(),
        run_id: opts.run.clone(),
        status: Some(status),
        ..Default::default()
    };
    let mut letters = store
        .dead_letters(&filter(DeadLetterStatus::Replaying))
        .await
        .map_err(|e| e.to_string())?;
    letters.extend(
        store
            .dead_letters(&RejectFilter {
                limit: opts.limit,
                ..filter(DeadLetterStatus::Pending)
            })
            .await
            .map_err(|e| e.to_string())?,
    );
    let mut groups: BTreeMap<(String, String, String, i64), Vec<DeadLetter>> = BTreeMap::new();
    for d in letters {
        groups
            .entry((
                d.dag_id.clone(),
                d.run_id.clone(),
                d.task_id.clone(),
                d.map_index,
            ))
            .or_default()
            .push(d);
    }
    let mut report = ReplayReport {
        batch: batch.clone(),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    for ((dag, run, task, map_index), letters) in groups {
        let ids: Vec<i64> = letters.iter().map(|d| d.id).collect();
        let skip = |report: &mut ReplayReport, why: String| {
            for id in &ids {
                report.skipped.push((*id, why.clone()));
            }
        };
        let (Ok(dag_id), Ok(run_id)) = (DagId::new(&dag), RunId::new(&run)) else {
            skip(
                &mut report,
                format!("`{dag}` / `{run}` is not a DAG and run id"),
            );
            continue;
        };
        let (ctx, def) = match task_context(
            store.clone(),
            registry,
            home.clone(),
            clock.clone(),
            &dag_id,
            &run_id,
            &task,
            map_index,
        )
        .await
        {
            Ok(found) => found,
            Err(e) => {
                skip(&mut report, e.to_string());
                continue;
            }
        };
        let Some(op) = def
            .task(&task)
            .and_then(|t| t.attachment::<Arc<dyn Operator>>())
            .cloned()
        else {
            skip(
                &mut report,
                format!(
                    "task `{task}` of DAG `{dag}` is code, not an operator weir can feed again; clear and re-run it"
                ),
            );
            continue;
        };
        let pending: Vec<i64> = letters
            .iter()
            .filter(|d| d.status == DeadLetterStatus::Pending)
            .map(|d| d.id)
            .collect();
        if !opts.dry_run {
            store
                .begin_replay(&pending, &batch)
                .await
                .map_err(|e| e.to_string())?;
        }
        let outcomes = match op.replay(ctx, letters, batch.clone(), opts.dry_run).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                if !opts.dry_run {
                    let released: Vec<ReplayOutcome> = pending
                        .iter()
                        .map(|&id| ReplayOutcome::Released { id })
                        .collect();
                    store
                        .finish_replay(&released, opts.max_replays, clock.now())
                        .await
                        .map_err(|e| e.to_string())?;
                }
                skip(&mut report, e.message().to_owned());
                continue;
            }
        };
        if !opts.dry_run {
            store
                .finish_replay(&outcomes, opts.max_replays, clock.now())
                .await
                .map_err(|e| e.to_string())?;
        }
        for outcome in outcomes {
            match outcome {
                ReplayOutcome::Replayed { id, into } => report.replayed.push((id, into)),
                ReplayOutcome::Failed { id, reason } => {
                    let quarantined = !opts.dry_run
                        && store
                            .dead_letter(id)
                            .await
                            .map_err(|e| e.to_string())?
                            .is_some_and(|d| d.status == DeadLetterStatus::Quarantined);
                    report.failed.push((id, reason, quarantined));
                }
                ReplayOutcome::Released { id } => report.skipped.push((id, "released".to_owned())),
            }
        }
    }
    report.replayed.sort();
    report.failed.sort();
    Ok(report)
}
