//! Runs handed to workers: the dispatcher plans each run with the decision core
//! ([`crate::core::plan`]) and commits the plan — instances become `scheduled`, mapped tasks
//! expand, tasks that will not run settle, finished runs end — for `weir worker` processes,
//! on this host or others, to claim and run ([`crate::worker`]).
//!
//! A dispatcher drives a run only while it holds the run's lease (the same lease and fence the
//! in-process executor takes), so two schedulers never plan one run at once, and a dispatcher
//! that lost its lease changes nothing. It only ever moves instances that no worker holds
//! (`none`, `up_for_retry`, `up_for_reschedule`): a running instance belongs to its worker until
//! it finishes or its lease runs out, when [`CoordinationStore::requeue_expired`] hands it on.
//!
//! [`CoordinationStore::requeue_expired`]: weir_store::CoordinationStore::requeue_expired

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use weir_core::{MapIndex, MapSource, RunState, TaskState};
use weir_store::{
    ClaimRun, NewTaskInstance, RunClaim, RunFence, RunFilter, RunRecord, Store, TaskInstanceRecord,
    TiChange, TiKey, channel,
};

use crate::context::by_map_index;
use crate::core::{Decision, InstanceView, plan};
use crate::definition::DagDef;
use crate::{Executor, Result, RuntimeError};

/// What one pass over a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunPass {
    /// Instances made `scheduled` for the workers.
    pub scheduled: usize,
    /// Set when the run ended in this pass (or had already ended).
    pub finished: Option<RunState>,
    /// The run ended in this pass (not before, nor by another dispatcher).
    pub ended_here: bool,
    /// Another process holds the run: nothing was done.
    pub held: bool,
    /// When a waiting retry of the run is due.
    pub wake_at: Option<Timestamp>,
}

/// Plans runs whose instances workers run.
pub struct Dispatcher {
    ex: Arc<Executor>,
    owner: String,
    /// The queue the instances this dispatcher creates are routed to.
    queue: String,
}

impl Dispatcher {
    /// A dispatcher of `ex`'s DAGs and store, creating instances on `queue`.
    pub fn new(ex: Arc<Executor>, queue: impl Into<String>) -> Self {
        Dispatcher {
            owner: format!("{}/dispatch", crate::process_owner_id()),
            ex,
            queue: queue.into(),
        }
    }

    /// Drives one run to its end: plans, commits, and waits for the workers' news (or a due
    /// retry) between passes. Waits while another process holds the run.
    pub async fn drive(&self, run: &RunRecord) -> Result<RunState> {
        let store = self.ex.store().clone();
        let mut wakeup = store.listen(&[channel::DONE]).await?;
        loop {
            let started = std::time::Instant::now();
            let pass = match self.pass(run).await {
                Ok(pass) => pass,
                // The store away for a moment, or the run taken by another dispatcher after
                // this one's lease ran out: the next pass sees how things stand.
                Err(e) if passing(&e) => {
                    tracing::warn!(run_id = %run.run_id, "pass over the run did not finish: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(state) = pass.finished {
                return Ok(state);
            }
            // A pass reads the whole run: at least as long again is left to the workers before
            // the next, so a run of many short tries costs the dispatcher at most half a core,
            // each pass folding in every try that ended meanwhile.
            tokio::time::sleep(started.elapsed().min(Duration::from_millis(500))).await;
            let mut wait = Duration::from_secs(2);
            if let Some(at) = pass.wake_at {
                wait = wait.min(crate::clock::until(self.ex.clock().as_ref(), at));
            }
            wakeup.wait(wait).await?;
        }
    }

    /// One pass over every unfinished run this dispatcher can hold. Returns the runs that
    /// ended in it.
    pub async fn pass_all(&self) -> Result<Vec<(RunRecord, RunState)>> {
        let store = self.ex.store();
        let runs = store
            .list_runs(&RunFilter {
                states: vec![RunState::Queued, RunState::Running],
                ..RunFilter::default()
            })
            .await?;
        let mut ended = Vec::new();
        for run in runs {
            if self.ex.registry().get(run.dag_id.as_str()).is_none() {
                continue;
            }
            match self.pass(&run).await {
                Ok(RunPass {
                    finished: Some(state),
                    ended_here: true,
                    ..
                }) => ended.push((run, state)),
                Ok(_) => {}
                Err(e) if passing(&e) => {
                    tracing::warn!(run_id = %run.run_id, "pass over the run did not finish: {e}")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(ended)
    }

    /// Plans `run` once and commits the plan, if this dispatcher can hold the run. First the
    /// instances of workers whose lease ran out (of any run) are handed on.
    pub async fn pass(&self, run: &RunRecord) -> Result<RunPass> {
        let store = self.ex.store().clone();
        let now = self.ex.clock().now();
        let requeued = store.requeue_expired(now).await?;
        if !requeued.scheduled.is_empty() {
            store.notify(channel::WORK).await?;
        }
        let lease_until = now.saturating_add(self.ex.options().lease).unwrap_or(now);
        let fence = match store
            .claim_run(ClaimRun {
                dag_id: run.dag_id.clone(),
                run_id: run.run_id.clone(),
                owner: self.owner.clone(),
                now,
                lease_until,
            })
            .await?
        {
            RunClaim::Claimed { fence, .. } => fence,
            RunClaim::Finished(state) => {
                return Ok(RunPass {
                    finished: Some(state),
                    ..RunPass::default()
                });
            }
            RunClaim::Held(_) => {
                return Ok(RunPass {
                    held: true,
                    ..RunPass::default()
                });
            }
        };
        let def = self.ex.dag_of_run(run).await?;
        if run.state == RunState::Queued
            && let Some(current) = store.get_run(&run.dag_id, &run.run_id).await?
            && current.state == RunState::Queued
        {
            self.ex.keep_version(&def).await?;
            store
                .set_dag_limit(run.dag_id.as_str(), def.dag.max_active_tasks, now)
                .await?;
            for (name, &slots) in &def.pools {
                if !store.pools().await?.iter().any(|p| &p.name == name) {
                    store
                        .set_pool(name, slots, &format!("declared by DAG {}", def.id()))
                        .await?;
                }
            }
            store
                .set_run_state(
                    &run.dag_id,
                    &run.run_id,
                    RunState::Queued,
                    RunState::Running,
                    now,
                )
                .await?;
        }
        let run = store
            .get_run(&run.dag_id, &run.run_id)
            .await?
            .ok_or_else(|| RuntimeError::UnknownRun {
                dag: run.dag_id.to_string(),
                run: run.run_id.to_string(),
            })?;
        // Most passes of a big run find nothing to plan (its instances are scheduled or
        // running): the counts per task and state say so without reading every instance.
        let counts = store.instance_counts(&run.dag_id, &run.run_id).await?;
        if !plannable(&def, &counts, now) {
            return Ok(RunPass::default());
        }
        let mut stored = store.task_instances(&run.dag_id, &run.run_id).await?;
        let missing: Vec<NewTaskInstance> = def
            .dag
            .tasks()
            .iter()
            .filter(|spec| !stored.iter().any(|ti| ti.key.task_id == spec.id))
            .map(|spec| self.new_ti(&run, spec, MapIndex::UNMAPPED))
            .collect();
        if !missing.is_empty() {
            store.insert_task_instances(&missing).await?;
            stored = store.task_instances(&run.dag_id, &run.run_id).await?;
        }
        let by_task = group(&def, &stored);
        let views: Vec<Vec<InstanceView>> = by_task
            .iter()
            .map(|tis| {
                tis.iter()
                    .map(|ti| InstanceView {
                        map_index: ti.key.map_index.raw(),
                        state: ti.state,
                        retry_at: ti.retry_at,
                    })
                    .collect()
            })
            .collect();
        let p = plan(&def.dag, &views, now);
        let pools: HashMap<String, u32> = store
            .pools()
            .await?
            .into_iter()
            .map(|p| (p.name, p.slots))
            .collect();
        let mut changes = Vec::new();
        let mut scheduled = 0;
        for decision in &p.decisions {
            match *decision {
                Decision::Schedule { task, map_index } => {
                    let Some(ti) = by_task[task]
                        .iter()
                        .find(|ti| ti.key.map_index.raw() == map_index)
                    else {
                        continue;
                    };
                    // An instance no pool can hold would wait for ever: it fails now, saying why.
                    let spec = &def.dag.tasks()[task];
                    let cannot = match pools.get(&spec.pool) {
                        None => Some(format!(
                            "pool `{}` does not exist; declare it on the DAG or create it with `weir pools set {} SLOTS`",
                            spec.pool, spec.pool
                        )),
                        Some(&slots) if spec.pool_slots > slots => Some(format!(
                            "it needs {} slots of pool `{}`, which has only {slots}; give the pool more slots",
                            spec.pool_slots, spec.pool
                        )),
                        Some(_) => None,
                    };
                    match cannot {
                        Some(reason) => changes.push(change(
                            ti,
                            TaskState::Failed,
                            now,
                            Some(format!("task `{}` cannot start: {reason}", spec.id)),
                        )),
                        None => {
                            changes.push(change(ti, TaskState::Scheduled, now, None));
                            scheduled += 1;
                        }
                    }
                }
                Decision::Settle { task, state } => {
                    for ti in &by_task[task] {
                        changes.push(change(ti, state, now, None));
                    }
                }
                Decision::Expand { task } => {
                    // What came before (its source's state included) is committed first.
                    store
                        .apply_fenced(&fence, &std::mem::take(&mut changes))
                        .await?;
                    scheduled += self
                        .expand(&store, &fence, &def, &run, task, &by_task, now)
                        .await?;
                }
            }
        }
        store.apply_fenced(&fence, &changes).await?;
        if scheduled > 0 {
            store.notify(channel::WORK).await?;
        }
        if let Some(state) = p.finished {
            store.finish_run(&fence, state, now).await?;
            tracing::info!(dag_id = %run.dag_id, run_id = %run.run_id, state = %state, "run finished");
        }
        Ok(RunPass {
            scheduled,
            finished: p.finished,
            ended_here: p.finished.is_some(),
            held: false,
            wake_at: p.wake_at,
        })
    }

    /// Expands the mapped task at `pos` over its source and schedules its instances; a source
    /// that is not a list fails the task, an empty one skips it.
    #[allow(clippy::too_many_arguments)]
    async fn expand(
        &self,
        store: &Arc<dyn Store>,
        fence: &RunFence,
        def: &DagDef,
        run: &RunRecord,
        pos: usize,
        by_task: &[Vec<&TaskInstanceRecord>],
        now: Timestamp,
    ) -> Result<usize> {
        let spec = &def.dag.tasks()[pos];
        let items: std::result::Result<Vec<serde_json::Value>, String> = match &spec.expand {
            Some(MapSource::Literal(items)) => Ok(items.clone()),
            Some(MapSource::Upstream(src)) => {
                let outputs = store
                    .outputs(&run.dag_id, &run.run_id, src.as_str())
                    .await?;
                let src_pos = def.dag.position(src.as_str()).expect("validated source");
                if def.dag.tasks()[src_pos].is_mapped() {
                    Ok(by_map_index(outputs, by_task[src_pos].len()))
                } else {
                    match outputs.into_iter().next().map(|(_, v)| v) {
                        Some(serde_json::Value::Array(items)) => Ok(items),
                        _ => Err(format!(
                            "it expands over the output of `{src}`, which is not a JSON list"
                        )),
                    }
                }
            }
            None => Ok(Vec::new()),
        };
        let items = match items {
            Ok(items) if items.len() > def.dag.max_map_length => Err(format!(
                "its input has {} elements, more than the DAG's max_map_length of {}",
                items.len(),
                def.dag.max_map_length
            )),
            other => other,
        };
        let placeholder: Vec<&TaskInstanceRecord> = by_task[pos].clone();
        match items {
            Err(reason) => {
                let error = format!("cannot expand task `{}`: {reason}", spec.id);
                let changes: Vec<TiChange> = placeholder
                    .iter()
                    .map(|ti| change(ti, TaskState::Failed, now, Some(error.clone())))
                    .collect();
                store.apply_fenced(fence, &changes).await?;
                Ok(0)
            }
            Ok(items) if items.is_empty() => {
                let changes: Vec<TiChange> = placeholder
                    .iter()
                    .map(|ti| change(ti, TaskState::Skipped, now, None))
                    .collect();
                store.apply_fenced(fence, &changes).await?;
                Ok(0)
            }
            Ok(items) => {
                let new = self.new_ti(run, spec, MapIndex::UNMAPPED);
                store.expand_mapped(&new, items.len()).await?;
                let changes: Vec<TiChange> = (0..items.len())
                    .map(|i| TiChange {
                        key: TiKey {
                            map_index: MapIndex::mapped(i),
                            ..new.key.clone()
                        },
                        expect_state: TaskState::None,
                        expect_try: 0,
                        state: TaskState::Scheduled,
                        try_number: 0,
                        at: now,
                        lease_until: None,
                        retry_at: None,
                        error: None,
                        output: None,
                    })
                    .collect();
                store.apply_fenced(fence, &changes).await?;
                Ok(items.len())
            }
        }
    }

    fn new_ti(
        &self,
        run: &RunRecord,
        spec: &weir_core::TaskSpec,
        map_index: MapIndex,
    ) -> NewTaskInstance {
        let mut ti = crate::executor::new_ti(run, spec, map_index);
        ti.queue = self.queue.clone();
        ti
    }
}

/// Whether a failed pass is one to try again rather than an end: the store away for a moment,
/// or the run taken over (or changed) by another process meanwhile.
fn passing(e: &RuntimeError) -> bool {
    match e {
        RuntimeError::Store(s) => {
            weir_core::Transient::is_transient(s)
                || matches!(
                    s,
                    weir_store::StoreError::Fenced { .. } | weir_store::StoreError::Conflict { .. }
                )
        }
        _ => false,
    }
}

/// The instances of each task, by task position; a mapped task that expanded loses its
/// placeholder.
fn group<'a>(def: &DagDef, stored: &'a [TaskInstanceRecord]) -> Vec<Vec<&'a TaskInstanceRecord>> {
    let mut by: HashMap<&str, Vec<&TaskInstanceRecord>> = HashMap::new();
    for ti in stored {
        by.entry(ti.key.task_id.as_str()).or_default().push(ti);
    }
    def.dag
        .tasks()
        .iter()
        .map(|spec| {
            let mut tis = by.remove(spec.id.as_str()).unwrap_or_default();
            tis.sort_by_key(|ti| ti.key.map_index);
            if tis.iter().any(|ti| ti.key.map_index.position().is_some()) {
                tis.retain(|ti| ti.key.map_index.position().is_some());
            }
            tis
        })
        .collect()
}

fn change(
    ti: &TaskInstanceRecord,
    to: TaskState,
    at: Timestamp,
    error: Option<String>,
) -> TiChange {
    TiChange {
        key: ti.key.clone(),
        expect_state: ti.state,
        expect_try: ti.try_number,
        state: to,
        try_number: ti.try_number,
        at,
        lease_until: None,
        retry_at: None,
        error,
        output: None,
    }
}

/// Whether the run has anything to plan, judged from its instance counts: the plan of
/// stand-in instances (one per counted instance, without retry times) decides something or
/// ends the run. A waiting retry counts as plannable, so the full pass computes its time.
fn plannable(def: &DagDef, counts: &[weir_store::InstanceCount], now: Timestamp) -> bool {
    let mut views: Vec<Vec<InstanceView>> = vec![Vec::new(); def.dag.tasks().len()];
    // As the full pass groups them: once a task has mapped instances, its placeholder is gone.
    let expanded: std::collections::HashSet<&str> = counts
        .iter()
        .filter(|c| c.mapped)
        .map(|c| c.task_id.as_str())
        .collect();
    for c in counts {
        if !c.mapped && expanded.contains(c.task_id.as_str()) {
            continue;
        }
        let Some(pos) = def.dag.position(&c.task_id) else {
            return true;
        };
        let view = InstanceView {
            map_index: if c.mapped { 0 } else { -1 },
            state: c.state,
            retry_at: None,
        };
        views[pos].extend(std::iter::repeat_n(view, c.count as usize));
    }
    if views.iter().any(Vec::is_empty) {
        // A task without its instance: the full pass inserts it.
        return true;
    }
    let p = plan(&def.dag, &views, now);
    !p.decisions.is_empty() || p.finished.is_some()
}
