//! What a running task sees: its identity, its run's data interval and params, its inputs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use weir_core::{DagId, DataInterval, MapIndex, RunId, TaskId};
use weir_store::{PartitionManifest, Store};

use crate::clock::Clock;
use crate::definition::TaskError;

/// Handed to every try of a task.
#[derive(Clone)]
pub struct TaskContext {
    pub dag_id: DagId,
    pub run_id: RunId,
    pub task_id: TaskId,
    pub map_index: MapIndex,
    /// 1 for the first try.
    pub try_number: u32,
    pub max_tries: u32,
    /// The start of the data interval (Airflow's `logical_date`).
    pub logical_date: Timestamp,
    pub data_interval: DataInterval,
    /// The DAG's default params overridden by the run's conf.
    pub params: Arc<serde_json::Map<String, serde_json::Value>>,
    /// This instance's element of the expanded list, for a mapped task.
    pub item: Option<serde_json::Value>,
    /// Fixed arguments of a mapped task (`partial`).
    pub partial: Arc<serde_json::Value>,
    pub(crate) home: Arc<PathBuf>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Mapped upstream tasks and their instance counts.
    pub(crate) mapped_upstreams: Arc<Vec<(TaskId, usize)>>,
}

impl std::fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskContext")
            .field("dag_id", &self.dag_id)
            .field("run_id", &self.run_id)
            .field("task_id", &self.task_id)
            .field("map_index", &self.map_index)
            .field("try_number", &self.try_number)
            .finish_non_exhaustive()
    }
}

impl TaskContext {
    /// A param from the run's conf or the DAG's defaults.
    pub fn param(&self, name: &str) -> Option<&serde_json::Value> {
        self.params.get(name)
    }

    /// A param as text: strings as they are, other JSON values rendered.
    pub fn param_str(&self, name: &str) -> Option<String> {
        self.params.get(name).map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// A param parsed from its text, with a clear error naming it when it does not parse.
    pub fn param_parse<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, TaskError>
    where
        T::Err: std::fmt::Display,
    {
        match self.param_str(name) {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|e| {
                TaskError::fatal(format!(
                    "param `{name}` = `{text}` is invalid: {e}; fix the --conf value"
                ))
            }),
        }
    }

    /// The weir home folder (`--home`, `$WEIR_HOME` or `./.weir`).
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The metadata store, e.g. to record partition manifests.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The output of an upstream task in this run: its JSON value, or for a mapped upstream the
    /// array of its instances' outputs in map-index order (null where an instance produced none).
    pub async fn input(&self, task_id: &str) -> Result<serde_json::Value, TaskError> {
        let outputs = self
            .store
            .outputs(&self.dag_id, &self.run_id, task_id)
            .await
            .map_err(|e| TaskError::retryable(format!("reading the output of `{task_id}`: {e}")))?;
        if let Some((_, count)) = self
            .mapped_upstreams
            .iter()
            .find(|(t, _)| t.as_str() == task_id)
        {
            Ok(serde_json::Value::Array(by_map_index(outputs, *count)))
        } else {
            Ok(outputs
                .into_iter()
                .next()
                .map(|(_, v)| v)
                .unwrap_or(serde_json::Value::Null))
        }
    }

    /// Records what a committed partition write holds, stamped with this try.
    pub async fn record_manifest(&self, mut manifest: PartitionManifest) -> Result<(), TaskError> {
        manifest.dag_id = self.dag_id.to_string();
        manifest.run_id = self.run_id.to_string();
        manifest.task_id = self.task_id.to_string();
        manifest.map_index = self.map_index.raw();
        manifest.try_number = self.try_number;
        manifest.committed_at = self.clock.now();
        self.store.record_manifest(&manifest).await.map_err(|e| {
            TaskError::retryable(format!(
                "recording the manifest of {}: {e}",
                manifest.partition
            ))
        })
    }
}

/// The outputs of a mapped task's `count` instances in map-index order, null where an instance
/// stored none.
pub(crate) fn by_map_index(
    outputs: Vec<(i64, serde_json::Value)>,
    count: usize,
) -> Vec<serde_json::Value> {
    let mut values = vec![serde_json::Value::Null; count];
    for (index, value) in outputs {
        if let Some(slot) = usize::try_from(index).ok().and_then(|i| values.get_mut(i)) {
            *slot = value;
        }
    }
    values
}
