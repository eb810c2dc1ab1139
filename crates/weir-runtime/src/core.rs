//! The decision core of a run: what happens next, from the DAG and the states of its task
//! instances alone — no IO, no clock (the time is an argument). The in-process executor takes
//! its trigger, retry and outcome rules from here, and the dispatcher that hands instances to
//! workers ([`crate::dispatch`]) plans whole runs with [`plan`]; the IO around them claims,
//! commits and starts.

use jiff::{SignedDuration, Timestamp};
use weir_core::retry::TryKey;
use weir_core::trigger::TriggerDecision;
use weir_core::{Dag, RunState, TaskSpec, TaskState, UpstreamCounts};

/// How many instances of one task are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: usize,
    pub success: usize,
    pub failed: usize,
    pub upstream_failed: usize,
    pub skipped: usize,
}

impl Counts {
    /// Counts one instance that entered `state`.
    pub fn add(&mut self, state: TaskState) {
        match state {
            TaskState::Success => self.success += 1,
            TaskState::Failed => self.failed += 1,
            TaskState::UpstreamFailed => self.upstream_failed += 1,
            TaskState::Skipped => self.skipped += 1,
            _ => {}
        }
    }

    pub fn of(states: impl IntoIterator<Item = TaskState>) -> Self {
        let mut c = Counts::default();
        for s in states {
            c.total += 1;
            c.add(s);
        }
        c
    }
}

/// What the trigger rule of the task at `pos` says, given the counts of every task.
pub fn trigger(dag: &Dag, pos: usize, counts: &[Counts]) -> TriggerDecision {
    let spec = &dag.tasks()[pos];
    let mut up = UpstreamCounts::default();
    for upstream in &spec.upstream {
        let u = dag.position(upstream.as_str()).expect("validated upstream");
        let c = counts[u];
        up.total += c.total;
        up.success += c.success;
        up.failed += c.failed;
        up.upstream_failed += c.upstream_failed;
        up.skipped += c.skipped;
        if dag.tasks()[u].is_setup {
            up.setup_unsuccessful += c.failed + c.upstream_failed + c.skipped;
        }
    }
    spec.trigger_rule.evaluate(&up)
}

/// Airflow's rule for a finished run: it failed when any leaf task has an instance that failed
/// or is upstream_failed. `states(pos)` lists the states of a task's instances.
pub fn outcome<I: IntoIterator<Item = TaskState>>(
    dag: &Dag,
    mut states: impl FnMut(usize) -> I,
) -> RunState {
    let failed = (0..dag.tasks().len()).any(|pos| {
        dag.downstream_of(pos).is_empty()
            && states(pos)
                .into_iter()
                .any(|s| matches!(s, TaskState::Failed | TaskState::UpstreamFailed))
    });
    if failed {
        RunState::Failed
    } else {
        RunState::Success
    }
}

/// A try that ended in an error a retry may cure: retried after the policy's delay while tries
/// are left, else failed. Returns the retry time, or `None` for a failure.
pub fn retry_at(
    spec: &TaskSpec,
    dag_id: &str,
    logical_date: Timestamp,
    try_number: u32,
    now: Timestamp,
) -> Option<Timestamp> {
    if !spec.retry.should_retry(try_number) {
        return None;
    }
    let delay: SignedDuration = spec.retry.delay_after(TryKey {
        dag_id,
        task_id: spec.id.as_str(),
        logical_date,
        try_number,
    });
    Some(now.saturating_add(delay).unwrap_or(now))
}

/// One instance as the core sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceView {
    /// -1 for an unmapped task, or a mapped task's placeholder before it expands.
    pub map_index: i64,
    pub state: TaskState,
    pub retry_at: Option<Timestamp>,
}

/// What to do next with a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The instance may start: it becomes `scheduled`, for an executor or a worker to claim.
    Schedule { task: usize, map_index: i64 },
    /// The mapped task's upstreams are done: expand it over its source (the IO reads the
    /// items and stores the instances), after which the next plan schedules them.
    Expand { task: usize },
    /// Every instance of the task ends in `state` (skipped or upstream_failed) without running.
    Settle { task: usize, state: TaskState },
}

/// The next steps of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub decisions: Vec<Decision>,
    /// Set when every instance has finished: the run ends in this state.
    pub finished: Option<RunState>,
    /// The earliest time a waiting retry becomes due, if one waits.
    pub wake_at: Option<Timestamp>,
}

/// Plans a run from its instances, `instances[pos]` being those of the task at `pos` (a
/// task with none has not been created yet and is treated as one instance in `none`).
pub fn plan(dag: &Dag, instances: &[Vec<InstanceView>], now: Timestamp) -> Plan {
    let tasks = dag.tasks();
    let mut plan = Plan::default();
    // States as the decisions made so far leave them: a settled task counts as settled for
    // its downstreams in the same pass (tasks come in a topological order).
    let mut counts: Vec<Counts> = Vec::with_capacity(tasks.len());
    let mut all_done = true;
    for (pos, spec) in tasks.iter().enumerate() {
        let insts = instances.get(pos).map(Vec::as_slice).unwrap_or(&[]);
        let untouched = insts.iter().all(|i| i.state == TaskState::None);
        let expanded = insts.iter().any(|i| i.map_index >= 0);
        let mut c = Counts::of(insts.iter().map(|i| i.state));
        if insts.is_empty() {
            c.total = 1;
        }
        if untouched && !(spec.is_mapped() && expanded) {
            match trigger(dag, pos, &counts) {
                TriggerDecision::Wait => {}
                TriggerDecision::Run if spec.is_mapped() => {
                    plan.decisions.push(Decision::Expand { task: pos })
                }
                TriggerDecision::Run => plan.decisions.push(Decision::Schedule {
                    task: pos,
                    map_index: -1,
                }),
                d @ (TriggerDecision::Skip | TriggerDecision::UpstreamFailed) => {
                    let state = if d == TriggerDecision::Skip {
                        TaskState::Skipped
                    } else {
                        TaskState::UpstreamFailed
                    };
                    plan.decisions.push(Decision::Settle { task: pos, state });
                    c = Counts::default();
                    c.total = insts.len().max(1);
                    for _ in 0..c.total {
                        c.add(state);
                    }
                    counts.push(c);
                    continue;
                }
            }
            all_done = false;
            counts.push(c);
            continue;
        }
        for inst in insts {
            match inst.state {
                // An expanded task's instances not yet scheduled (the expansion committed, the
                // scheduling not yet).
                TaskState::None => plan.decisions.push(Decision::Schedule {
                    task: pos,
                    map_index: inst.map_index,
                }),
                TaskState::UpForRetry | TaskState::UpForReschedule => match inst.retry_at {
                    Some(at) if at > now => {
                        plan.wake_at = Some(plan.wake_at.map_or(at, |w| w.min(at)))
                    }
                    _ => plan.decisions.push(Decision::Schedule {
                        task: pos,
                        map_index: inst.map_index,
                    }),
                },
                _ => {}
            }
            if !inst.state.is_terminal() {
                all_done = false;
            }
        }
        counts.push(c);
    }
    if all_done && plan.decisions.is_empty() {
        plan.finished = Some(outcome(dag, |pos| {
            instances
                .get(pos)
                .into_iter()
                .flatten()
                .map(|i| i.state)
                .collect::<Vec<_>>()
        }));
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use weir_core::{DagId, MapSource, TaskId, TriggerRule};

    const RULES: [TriggerRule; 6] = [
        TriggerRule::AllSuccess,
        TriggerRule::AllDone,
        TriggerRule::AllFailed,
        TriggerRule::OneSuccess,
        TriggerRule::OneFailed,
        TriggerRule::NoneFailed,
    ];

    /// A DAG of `shape`: per task, its upstreams (among the earlier tasks), rule, retries and
    /// how many items it maps over (0: unmapped).
    fn dag_of(shape: &[(Vec<usize>, usize, u32, usize)]) -> Dag {
        let mut b = Dag::builder(DagId::new("p").unwrap());
        for (i, (ups, rule, retries, items)) in shape.iter().enumerate() {
            let mut t = TaskSpec::new(TaskId::new(format!("t{i}")).unwrap());
            let mut ups: Vec<usize> = ups
                .iter()
                .map(|u| u % i.max(1))
                .filter(|&u| u < i)
                .collect();
            ups.sort_unstable();
            ups.dedup();
            t.upstream = ups
                .iter()
                .map(|u| TaskId::new(format!("t{u}")).unwrap())
                .collect();
            t.trigger_rule = RULES[rule % RULES.len()];
            t.retry.retries = *retries;
            t.retry.retry_delay = SignedDuration::from_secs(60);
            if *items > 0 {
                t.expand = Some(MapSource::Literal(
                    (0..*items).map(|n| serde_json::json!(n)).collect(),
                ));
            }
            b = b.task(t);
        }
        b.build().unwrap()
    }

    fn shapes() -> impl Strategy<Value = Vec<(Vec<usize>, usize, u32, usize)>> {
        prop::collection::vec(
            (
                prop::collection::vec(0usize..8, 0..3),
                0usize..6,
                0u32..3,
                prop_oneof![3 => Just(0usize), 1 => 0usize..4],
            ),
            1..8,
        )
    }

    proptest! {
        /// Runs the core as a scheduler would, with tries that succeed or fail by `luck`, and
        /// checks what Airflow promises: an all_success task starts only after every upstream
        /// instance succeeded, no instance runs more than its tries, every run ends with every
        /// instance finished, and the outcome follows the leaf rule.
        #[test]
        fn a_simulated_run_keeps_the_rules(shape in shapes(), luck in prop::collection::vec(any::<bool>(), 64)) {
            let dag = dag_of(&shape);
            let n = dag.tasks().len();
            let mut insts: Vec<Vec<InstanceView>> = (0..n)
                .map(|_| vec![InstanceView { map_index: -1, state: TaskState::None, retry_at: None }])
                .collect();
            let mut tries: std::collections::HashMap<(usize, i64), u32> = Default::default();
            let mut now = Timestamp::from_second(1_800_000_000).unwrap();
            let mut draws = luck.iter().cycle();
            let mut finished = None;
            for _ in 0..500 {
                let p = plan(&dag, &insts, now);
                // A function of the states alone: a restarted or second dispatcher repeats it.
                prop_assert_eq!(&plan(&dag, &insts, now), &p);
                if let Some(state) = p.finished {
                    finished = Some(state);
                    break;
                }
                // A plan is never empty while the run is unfinished and nothing runs: it
                // decides, or waits for a retry.
                prop_assert!(!p.decisions.is_empty() || p.wake_at.is_some(), "stuck: {insts:?}");
                for d in &p.decisions {
                    match *d {
                        Decision::Expand { task } => {
                            let Some(MapSource::Literal(items)) = &dag.tasks()[task].expand else { unreachable!() };
                            insts[task] = (0..items.len() as i64)
                                .map(|i| InstanceView { map_index: i, state: TaskState::None, retry_at: None })
                                .collect();
                            if items.is_empty() {
                                insts[task] = vec![InstanceView { map_index: -1, state: TaskState::Skipped, retry_at: None }];
                            }
                        }
                        Decision::Settle { task, state } => {
                            for i in &mut insts[task] { i.state = state; }
                        }
                        Decision::Schedule { task, map_index } => {
                            let spec = &dag.tasks()[task];
                            if spec.trigger_rule == TriggerRule::AllSuccess {
                                for u in &spec.upstream {
                                    let u = dag.position(u.as_str()).unwrap();
                                    prop_assert!(insts[u].iter().all(|i| i.state == TaskState::Success),
                                        "t{task} started before its upstream t{u} succeeded");
                                }
                            }
                            let t = tries.entry((task, map_index)).or_default();
                            *t += 1;
                            prop_assert!(*t <= spec.retry.retries + 1, "t{task}[{map_index}] ran {t} times");
                            let ok = *draws.next().unwrap();
                            let inst = insts[task].iter_mut().find(|i| i.map_index == map_index).unwrap();
                            if ok {
                                inst.state = TaskState::Success;
                            } else if let Some(at) = retry_at(spec, "p", now, *t, now) {
                                inst.state = TaskState::UpForRetry;
                                inst.retry_at = Some(at);
                            } else {
                                inst.state = TaskState::Failed;
                            }
                        }
                    }
                }
                if p.decisions.is_empty() {
                    now = p.wake_at.unwrap();
                }
            }
            let finished = finished.expect("the run finished");
            prop_assert!(insts.iter().flatten().all(|i| i.state.is_terminal()));
            let leaf_failed = (0..n).any(|pos| dag.downstream_of(pos).is_empty()
                && insts[pos].iter().any(|i| matches!(i.state, TaskState::Failed | TaskState::UpstreamFailed)));
            prop_assert_eq!(finished == RunState::Failed, leaf_failed);
        }
    }
}
