//! Clearing part of a finished run (Airflow's `tasks clear`): which instances a request takes.

use std::collections::BTreeSet;

use weir_core::TaskState;

use crate::definition::DagDef;

/// What a clear (`weir tasks clear`) takes of a finished run: whole tasks, and single instances
/// (a mapped one that failed alone is cleared alone, its siblings keep their state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearSelection {
    pub whole: Vec<String>,
    pub instances: Vec<(String, i64)>,
}

impl ClearSelection {
    /// The selection of `task` (every task when `None`), of one `map_index`, of only what
    /// failed or was upstream_failed, and with every task downstream of those; an error
    /// sentence when it names nothing.
    pub fn of(
        def: &DagDef,
        tis: &[weir_store::TaskInstanceRecord],
        task: Option<&str>,
        map_index: Option<i64>,
        failed_only: bool,
        downstream: bool,
    ) -> Result<ClearSelection, String> {
        let dag = &def.dag;
        if let Some(t) = task
            && dag.position(t).is_none()
        {
            return Err(format!(
                "DAG `{}` has no task `{t}`; `weir dags show {}` lists its tasks",
                dag.id, dag.id
            ));
        }
        let failed = |ti: &&weir_store::TaskInstanceRecord| {
            matches!(ti.state, TaskState::Failed | TaskState::UpstreamFailed)
        };
        let mut whole: BTreeSet<usize> = BTreeSet::new();
        let mut instances: BTreeSet<(String, i64)> = BTreeSet::new();
        for ti in tis {
            let t = ti.key.task_id.as_str();
            if task.is_some_and(|want| want != t) || (failed_only && !failed(&ti)) {
                continue;
            }
            // A task the DAG no longer has (its file changed since the run) is left alone.
            let Some(pos) = dag.position(t) else {
                continue;
            };
            match map_index {
                Some(i) if ti.key.map_index.raw() == i => {
                    instances.insert((t.to_owned(), i));
                }
                Some(_) => {}
                // A mapped instance that failed alone is cleared alone; anything else whole.
                None if failed_only && ti.key.map_index.raw() >= 0 => {
                    instances.insert((t.to_owned(), ti.key.map_index.raw()));
                }
                None => {
                    whole.insert(pos);
                }
            }
        }
        if let (Some(t), Some(i)) = (task, map_index)
            && instances.is_empty()
        {
            return Err(format!(
                "task `{t}` of this run has no instance with map index {i}; `weir tasks list` shows them"
            ));
        }
        if downstream {
            let mut todo: Vec<usize> = whole.iter().copied().collect();
            todo.extend(instances.iter().filter_map(|(t, _)| dag.position(t)));
            while let Some(pos) = todo.pop() {
                for &d in dag.downstream_of(pos) {
                    if whole.insert(d) {
                        todo.push(d);
                    }
                }
            }
        }
        let whole: Vec<String> = whole
            .into_iter()
            .map(|p| dag.tasks()[p].id.to_string())
            .collect();
        instances.retain(|(t, _)| !whole.contains(t));
        if whole.is_empty() && instances.is_empty() {
            return Err(format!(
                "nothing to clear{}: no instance matches",
                if failed_only { " (no task failed)" } else { "" }
            ));
        }
        Ok(ClearSelection {
            whole,
            instances: instances.into_iter().collect(),
        })
    }
}
