//! What a running task sees: its identity, its run's data interval and params, its inputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::de::DeserializeOwned;
use weir_core::{DagId, DataInterval, MapIndex, ParamSpecs, RunId, TaskId};
use weir_store::{PartitionManifest, RejectRecord, Store};

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
    /// How many times the run was cleared (re-run) before this try: checkpoints are kept per
    /// clear number, so a re-run starts over instead of resuming an earlier attempt.
    pub clear_number: u32,
    pub max_tries: u32,
    /// The start of the data interval (Airflow's `logical_date`).
    pub logical_date: Timestamp,
    pub data_interval: DataInterval,
    /// When the run first started (kept across resumes): what a sensor's timeout counts from.
    pub run_started_at: Timestamp,
    /// The run's params: the DAG's declared defaults overridden by the run's conf, checked and
    /// typed when the run was created.
    pub params: Arc<BTreeMap<String, serde_json::Value>>,
    /// The zone the run is cut in (`--conf tz`, else the schedule's): the data interval's
    /// boundaries are midnights (or hours) on this wall clock.
    pub zone: TimeZone,
    /// This instance's element of the expanded list, for a mapped task.
    pub item: Option<serde_json::Value>,
    /// Fixed arguments of a mapped task (`partial`).
    pub partial: Arc<serde_json::Value>,
    pub(crate) home: Arc<PathBuf>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Mapped upstream tasks and their instance counts.
    pub(crate) mapped_upstreams: Arc<Vec<(TaskId, usize)>>,
    /// This task's direct upstreams: the only outputs it may read.
    pub(crate) upstream: Arc<Vec<TaskId>>,
    /// The DAG's param declarations.
    pub(crate) declared: Arc<ParamSpecs>,
    /// The DAGs of the process running the try (a task that works on other DAGs' runs, such
    /// as a dead-letter replay, finds their tasks here).
    pub(crate) registry: Arc<crate::definition::Registry>,
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
    /// Whether the DAG declares the param `name`.
    pub fn declares(&self, name: &str) -> bool {
        self.declared.get(name).is_some()
    }

    /// A declared param the run has a value for (its conf's, or the declared default), read
    /// into `T`. Reading an undeclared param, or one that is not set and has no default, is an
    /// error that names it; never a silent default.
    pub fn param<T: DeserializeOwned>(&self, name: &str) -> Result<T, TaskError> {
        self.param_opt(name)?.ok_or_else(|| {
            let accepts = self
                .declared
                .get(name)
                .map(|p| p.accepts())
                .unwrap_or_default();
            TaskError::fatal(format!(
                "param `{name}` is not set; pass --conf {name}=VALUE ({accepts})"
            ))
        })
    }

    /// A declared param, or `None` when it is not set and has no default.
    pub fn param_opt<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, TaskError> {
        if self.declared.get(name).is_none() {
            return Err(TaskError::fatal(format!(
                "task `{}` reads param `{name}`, which DAG `{}` does not declare (a bug in the DAG: declare it with DagDefBuilder::param)",
                self.task_id, self.dag_id
            )));
        }
        match self.params.get(name) {
            None => Ok(None),
            Some(value) => T::deserialize(value).map(Some).map_err(|e| {
                TaskError::fatal(format!(
                    "param `{name}` = {value} cannot be read by task `{}`: {e} (a bug in the DAG: its declaration and its reader disagree)",
                    self.task_id
                ))
            }),
        }
    }

    /// This mapped instance's element of the expanded list, read into `T`; an error naming the
    /// task when it is not mapped or the element has another shape.
    pub fn mapped_item<T: DeserializeOwned>(&self) -> Result<T, TaskError> {
        let item = self.item.as_ref().ok_or_else(|| {
            TaskError::fatal(format!(
                "task `{}` reads a mapped item but is not mapped (a bug in DAG `{}`: give it .expand)",
                self.task_id, self.dag_id
            ))
        })?;
        T::deserialize(item).map_err(|e| {
            TaskError::fatal(format!(
                "item {} of task `{}` is not what it reads: {e}",
                self.map_index, self.task_id
            ))
        })
    }

    /// All the run's params read into one serde struct (field names are param names).
    pub fn params<P: DeserializeOwned>(&self) -> Result<P, TaskError> {
        let map: serde_json::Map<String, serde_json::Value> = self
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        P::deserialize(serde_json::Value::Object(map)).map_err(|e| {
            TaskError::fatal(format!(
                "the params of DAG `{}` cannot be read by task `{}`: {e}",
                self.dag_id, self.task_id
            ))
        })
    }

    /// The weir home folder (`--home`, `$WEIR_HOME` or `./.weir`).
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The metadata store, e.g. to record partition manifests.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The DAGs this process knows.
    pub fn registry(&self) -> &Arc<crate::definition::Registry> {
        &self.registry
    }

    /// The clock the try runs on.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The output of an upstream task in this run, read into `T`: for a mapped upstream, the
    /// list of its instances' outputs in map-index order. Reading a task that is not an upstream
    /// of this one, an upstream that stored no output, or an output of another shape is a fatal
    /// error naming both tasks: never `null` or a default.
    pub async fn input<T: DeserializeOwned>(&self, task_id: &str) -> Result<T, TaskError> {
        if !self.upstream.iter().any(|u| u.as_str() == task_id) {
            let ups: Vec<&str> = self.upstream.iter().map(|u| u.as_str()).collect();
            return Err(TaskError::fatal(format!(
                "task `{}` reads the output of `{task_id}`, which is not one of its upstreams ({}); a bug in DAG `{}`",
                self.task_id,
                if ups.is_empty() {
                    "it has none".to_owned()
                } else {
                    ups.join(", ")
                },
                self.dag_id
            )));
        }
        let outputs = self
            .store
            .outputs(&self.dag_id, &self.run_id, task_id)
            .await
            .map_err(|e| {
                TaskError::from(e).context(format!("reading the output of `{task_id}`"))
            })?;
        let value = match self
            .mapped_upstreams
            .iter()
            .find(|(t, _)| t.as_str() == task_id)
        {
            Some((_, count)) => serde_json::Value::Array(by_map_index(outputs, *count)),
            None => match outputs.into_iter().next() {
                Some((_, v)) => v,
                None => {
                    return T::deserialize(serde_json::Value::Null).map_err(|_| {
                        TaskError::fatal(format!(
                            "task `{}` reads the output of `{task_id}`, which stored none (it was skipped, or returned nothing)",
                            self.task_id
                        ))
                    });
                }
            },
        };
        T::deserialize(&value).map_err(|e| {
            TaskError::fatal(format!(
                "the output of `{task_id}` is not what task `{}` reads: {e}",
                self.task_id
            ))
        })
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
            TaskError::from(e).context(format!("recording the manifest of {}", manifest.partition))
        })
    }
}

impl TaskContext {
    /// Keeps source rows this try could not read, stamped with this try; a source position
    /// already kept (the same file read again) is updated, not doubled.
    pub async fn record_rejects(&self, mut rejects: Vec<RejectRecord>) -> Result<(), TaskError> {
        let now = self.clock.now();
        for r in &mut rejects {
            r.dag_id = self.dag_id.to_string();
            r.run_id = self.run_id.to_string();
            r.task_id = self.task_id.to_string();
            r.map_index = self.map_index.raw();
            r.try_number = self.try_number;
            r.rejected_at = now;
        }
        self.store
            .record_rejects(&rejects)
            .await
            .map_err(|e| TaskError::from(e).context("keeping the rejected rows"))
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
