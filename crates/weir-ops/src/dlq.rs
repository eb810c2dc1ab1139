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
    /// Only the dead letters this task set aside (with `run`: one batch's failed records).
    pub task: Option<String>,
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
            task: None,
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
    registry: &Arc<Registry>,
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
        task_id: opts.task.clone(),
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
        let (batches, letters): (Vec<DeadLetter>, Vec<DeadLetter>) =
            letters.into_iter().partition(|d| d.error_class == "batch");
        if !batches.is_empty() {
            replay_batch(
                &store,
                registry,
                &home,
                &clock,
                opts,
                &batch,
                &dag_id,
                &run_id,
                &task,
                map_index,
                batches,
                &mut report,
            )
            .await?;
        }
        if letters.is_empty() {
            continue;
        }
        let ids: Vec<i64> = letters.iter().map(|d| d.id).collect();
        let skip = |report: &mut ReplayReport, why: String| {
            for id in &ids {
                report.skipped.push((*id, why.clone()));
            }
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
        // Only while the task that set them aside is done: a live try may still be writing
        // (and re-rejecting) the same lines.
        if let Some(why) = still_live(&store, &dag_id, &run_id, &task, map_index).await? {
            skip(&mut report, why);
            continue;
        }
        let mut pending: Vec<i64> = letters
            .iter()
            .filter(|d| d.status == DeadLetterStatus::Pending)
            .map(|d| d.id)
            .collect();
        let mut letters = letters;
        if !opts.dry_run {
            // Another replay may have taken some first: replay only what this one took.
            pending = store
                .begin_replay(&pending, &batch)
                .await
                .map_err(|e| e.to_string())?;
            letters.retain(|d| {
                d.status == DeadLetterStatus::Replaying || pending.binary_search(&d.id).is_ok()
            });
            if letters.is_empty() {
                continue;
            }
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

/// Replays a batch dead letter (a task instance whose last try failed): clears the instance
/// and everything downstream of it and runs the run again, here; the dead letter is replayed
/// when the instance then succeeds without going to the dead-letter queue again.
#[allow(clippy::too_many_arguments)]
async fn replay_batch(
    store: &Arc<dyn Store>,
    registry: &Arc<Registry>,
    home: &std::path::Path,
    clock: &Arc<dyn Clock>,
    opts: &ReplayOptions,
    batch: &str,
    dag_id: &DagId,
    run_id: &RunId,
    task: &str,
    map_index: i64,
    letters: Vec<DeadLetter>,
    report: &mut ReplayReport,
) -> Result<(), String> {
    let into = format!(
        "run {run_id} task {task}{}",
        if map_index >= 0 {
            format!("[{map_index}]")
        } else {
            String::new()
        }
    );
    let pending: Vec<i64> = letters.iter().map(|d| d.id).collect();
    let skip = |report: &mut ReplayReport, why: String| {
        for id in &pending {
            report.skipped.push((*id, why.clone()));
        }
    };
    let Some(def) = registry.get(dag_id.as_str()).cloned() else {
        skip(report, format!("no DAG named `{dag_id}` in this binary"));
        return Ok(());
    };
    let tis = store
        .task_instances(dag_id, run_id)
        .await
        .map_err(|e| e.to_string())?;
    let index = (map_index >= 0).then_some(map_index);
    let sel = match weir_runtime::ClearSelection::of(&def, &tis, Some(task), index, false, true) {
        Ok(sel) => sel,
        Err(why) => {
            skip(report, why);
            return Ok(());
        }
    };
    if opts.dry_run {
        for id in &pending {
            report
                .replayed
                .push((*id, format!("{into} (cleared and run again)")));
        }
        return Ok(());
    }
    if let Some(why) = still_live(store, dag_id, run_id, task, map_index).await? {
        skip(report, why);
        return Ok(());
    }
    let pending = store
        .begin_replay(&pending, batch)
        .await
        .map_err(|e| e.to_string())?;
    if pending.is_empty() {
        return Ok(());
    }
    if let Err(e) = store
        .clear_tasks(dag_id, run_id, &sel.whole, &sel.instances)
        .await
    {
        let released: Vec<ReplayOutcome> = pending
            .iter()
            .map(|&id| ReplayOutcome::Released { id })
            .collect();
        store
            .finish_replay(&released, opts.max_replays, clock.now())
            .await
            .map_err(|e| e.to_string())?;
        skip(report, format!("cannot clear {into}: {e}"));
        return Ok(());
    }
    let ex = weir_runtime::Executor::new(
        store.clone(),
        registry.clone(),
        clock.clone(),
        weir_runtime::ExecutorOptions {
            home: home.to_path_buf(),
            ..Default::default()
        },
    );
    let ran = ex
        .take_over(dag_id, run_id)
        .await
        .map_err(|e| e.to_string());
    let tis = store
        .task_instances(dag_id, run_id)
        .await
        .map_err(|e| e.to_string())?;
    let ti = tis
        .iter()
        .find(|t| t.key.task_id.as_str() == task && t.key.map_index.raw() == map_index.max(-1));
    let output = store
        .outputs(dag_id, run_id, task)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|(i, _)| *i == map_index)
        .map(|(_, v)| v);
    let outcome = match (ran, ti) {
        (Err(e), _) => Err(format!("running {into} again failed: {e}")),
        (Ok(_), Some(ti)) if ti.state == weir_core::TaskState::Success => {
            match output.as_ref().map(|o| o["dead_lettered"] == true) {
                Some(true) => Err(format!(
                    "{into} went to the dead-letter queue again: {}",
                    output
                        .as_ref()
                        .and_then(|o| o["error"].as_str())
                        .unwrap_or("")
                )),
                _ => Ok(()),
            }
        }
        (Ok(_), Some(ti)) => Err(format!(
            "{into} ended {} again: {}",
            ti.state,
            ti.error.as_deref().unwrap_or("no error recorded")
        )),
        (Ok(_), None) => Err(format!("{into} has no instance after the re-run")),
    };
    let outcomes: Vec<ReplayOutcome> = pending
        .iter()
        .map(|&id| match &outcome {
            Ok(()) => ReplayOutcome::Replayed {
                id,
                into: into.clone(),
            },
            Err(reason) => ReplayOutcome::Failed {
                id,
                reason: reason.clone(),
            },
        })
        .collect();
    store
        .finish_replay(&outcomes, opts.max_replays, clock.now())
        .await
        .map_err(|e| e.to_string())?;
    for o in outcomes {
        match o {
            ReplayOutcome::Replayed { id, into } => report.replayed.push((id, into)),
            ReplayOutcome::Failed { id, reason } => {
                let quarantined = store
                    .dead_letter(id)
                    .await
                    .map_err(|e| e.to_string())?
                    .is_some_and(|d| d.status == DeadLetterStatus::Quarantined);
                report.failed.push((id, reason, quarantined));
            }
            ReplayOutcome::Released { .. } => {}
        }
    }
    Ok(())
}

/// `replay_dead_letters`: a DLQ processing task. Replays the pending dead letters of DAG `dag`
/// (every run, or `run`): records through the task that set them aside, batches by running
/// their task instance again; what fails again stays, and is quarantined after `max_replays`.
/// Its output is the [`ReplayReport`]; it fails only when the replay itself cannot run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayDeadLetters {
    pub dag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replays: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[async_trait::async_trait]
impl Operator for ReplayDeadLetters {
    fn name(&self) -> &'static str {
        "replay_dead_letters"
    }

    fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.dag.is_empty() {
            problems.push(
                "replay_dead_letters needs the `dag` whose dead letters it replays".to_owned(),
            );
        }
        if self.max_replays == Some(0) {
            problems.push(
                "max_replays = 0 would quarantine every dead letter; give at least 1".to_owned(),
            );
        }
        problems
    }

    async fn execute(&self, ctx: weir_runtime::TaskContext) -> weir_runtime::TaskResult {
        if ctx.registry().get(&self.dag).is_none() {
            return Err(weir_runtime::TaskError::fatal(format!(
                "replay_dead_letters: no DAG named `{}`; `weir dags list` shows them",
                self.dag
            )));
        }
        let opts = ReplayOptions {
            dag: Some(self.dag.clone()),
            run: self.run.clone(),
            task: None,
            limit: self.limit,
            dry_run: false,
            max_replays: self.max_replays.unwrap_or(3),
        };
        let report = replay(
            ctx.store().clone(),
            ctx.registry(),
            ctx.home().to_path_buf(),
            ctx.clock().clone(),
            &opts,
        )
        .await
        .map_err(weir_runtime::TaskError::retryable)?;
        tracing::info!(
            replayed = report.replayed.len(),
            failed = report.failed.len(),
            skipped = report.skipped.len(),
            "dead letters replayed"
        );
        crate::to_output(&report)
    }
}

/// Why the instance that set dead letters aside is not done yet, if it is not: a replay waits
/// for it (its run may also be resumed by another process).
async fn still_live(
    store: &Arc<dyn Store>,
    dag_id: &DagId,
    run_id: &RunId,
    task: &str,
    map_index: i64,
) -> Result<Option<String>, String> {
    let tis = store
        .task_instances(dag_id, run_id)
        .await
        .map_err(|e| e.to_string())?;
    let state = tis
        .iter()
        .find(|t| t.key.task_id.as_str() == task && t.key.map_index.raw() == map_index)
        .map(|t| t.state);
    Ok(match state {
        Some(s) if !s.is_terminal() => Some(format!(
            "task `{task}` of run `{run_id}` is {s}; replay its dead letters once it has finished"
        )),
        _ => None,
    })
}
