//! Working on a task instance outside its run loop: the context a dead-letter replay hands the
//! task that set the records aside, built as the run loop builds it for a try.

use std::path::PathBuf;
use std::sync::Arc;

use weir_core::{DagId, DataInterval, MapIndex, MapSource, RunId, TaskId};
use weir_store::Store;

use crate::clock::Clock;
use crate::context::{TaskContext, by_map_index};
use crate::definition::{DagDef, Registry};
use crate::{Result, RuntimeError};

/// The context of task `task_id` (instance `map_index`) of an existing run, as its latest try
/// saw it: the run's interval, params and zone, the mapped item, the try number. The DAG is
/// the version the run was created with when the registry holds it, else the current one.
#[allow(clippy::too_many_arguments)]
pub async fn task_context(
    store: Arc<dyn Store>,
    registry: &Arc<Registry>,
    home: PathBuf,
    clock: Arc<dyn Clock>,
    dag_id: &DagId,
    run_id: &RunId,
    task_id: &str,
    map_index: i64,
) -> Result<(TaskContext, Arc<DagDef>)> {
    task_context_of_try(
        store, registry, home, clock, dag_id, run_id, task_id, map_index, None,
    )
    .await
}

/// [`task_context`] for try `try_number` when it is known (a worker's claim): the run's other
/// instances are then read only when a mapped upstream needs counting, not for every try.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn task_context_of_try(
    store: Arc<dyn Store>,
    registry: &Arc<Registry>,
    home: PathBuf,
    clock: Arc<dyn Clock>,
    dag_id: &DagId,
    run_id: &RunId,
    task_id: &str,
    map_index: i64,
    try_number: Option<u32>,
) -> Result<(TaskContext, Arc<DagDef>)> {
    let run = store
        .get_run(dag_id, run_id)
        .await?
        .ok_or_else(|| RuntimeError::UnknownRun {
            dag: dag_id.to_string(),
            run: run_id.to_string(),
        })?;
    let def = run
        .dag_version
        .as_deref()
        .and_then(|v| registry.get_version(dag_id.as_str(), v))
        .or_else(|| registry.get(dag_id.as_str()))
        .cloned()
        .ok_or_else(|| RuntimeError::UnknownDag(dag_id.to_string()))?;
    let pos = def.dag.position(task_id).ok_or_else(|| {
        RuntimeError::Invalid(format!(
            "DAG `{dag_id}` has no task `{task_id}` (any more); `weir dags show {dag_id}` lists its tasks"
        ))
    })?;
    let spec = &def.dag.tasks()[pos];
    let params = def.resolve_params(&run.conf)?;
    let zone = def.run_zone(&params);
    let is_mapped = |t: &TaskId| {
        def.dag
            .position(t.as_str())
            .is_some_and(|p| def.dag.tasks()[p].is_mapped())
    };
    let counts_needed = spec.upstream.iter().any(is_mapped)
        || matches!(&spec.expand, Some(MapSource::Upstream(src)) if is_mapped(src));
    let instances = if counts_needed || try_number.is_none() {
        store.task_instances(dag_id, run_id).await?
    } else {
        Vec::new()
    };
    let count_of = |t: &TaskId| {
        instances
            .iter()
            .filter(|i| &i.key.task_id == t && i.key.map_index.raw() >= 0)
            .count()
    };
    let try_number = try_number.unwrap_or_else(|| {
        instances
            .iter()
            .find(|i| i.key.task_id.as_str() == task_id && i.key.map_index.raw() == map_index)
            .map(|i| i.try_number)
            .unwrap_or(0)
    });
    let item = match &spec.expand {
        None => None,
        Some(MapSource::Literal(items)) => usize::try_from(map_index)
            .ok()
            .and_then(|i| items.get(i).cloned()),
        Some(MapSource::Upstream(src)) => {
            let outputs = store.outputs(dag_id, run_id, src.as_str()).await?;
            let src_mapped = def
                .dag
                .position(src.as_str())
                .is_some_and(|p| def.dag.tasks()[p].is_mapped());
            let items = if src_mapped {
                by_map_index(outputs, count_of(src))
            } else {
                match outputs.into_iter().next().map(|(_, v)| v) {
                    Some(serde_json::Value::Array(items)) => items,
                    _ => Vec::new(),
                }
            };
            usize::try_from(map_index)
                .ok()
                .and_then(|i| items.get(i).cloned())
        }
    };
    let mapped_upstreams = spec
        .upstream
        .iter()
        .filter(|u| {
            def.dag
                .position(u.as_str())
                .is_some_and(|p| def.dag.tasks()[p].is_mapped())
        })
        .map(|u| (u.clone(), count_of(u)))
        .collect();
    let ctx = TaskContext {
        dag_id: dag_id.clone(),
        run_id: run_id.clone(),
        task_id: spec.id.clone(),
        map_index: MapIndex::from_raw(map_index)?,
        try_number,
        clear_number: run.clear_number,
        max_tries: spec.retry.retries + 1,
        logical_date: run.logical_date,
        data_interval: DataInterval {
            start: run.interval_start,
            end: run.interval_end,
        },
        run_started_at: run.started_at.unwrap_or(run.created_at),
        params: Arc::new(params),
        zone,
        item,
        partial: Arc::new(spec.partial.clone()),
        home: Arc::new(home),
        store,
        clock,
        mapped_upstreams: Arc::new(mapped_upstreams),
        upstream: Arc::new(spec.upstream.clone()),
        declared: Arc::new(def.dag.params.clone()),
        registry: registry.clone(),
    };
    Ok((ctx, def))
}
