//! Tests of the operator catalogue: each operator run as a task of a real DAG through the
//! executor and the SQLite store, as a user's pipeline runs it, bad configs included.

mod checks;
mod command;
mod load;
mod sql;
mod table;
mod wait;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::Value;
use tempfile::TempDir;
use weir_core::timetable::window_schedule;
use weir_core::{DagId, ParamSpec, TaskState};
use weir_data::{Dataset, PartitionKey, WriteOptions};
use weir_runtime::{
    DagDef, Executor, ExecutorOptions, Registry, RunOutcome, Task, TokioClock, TriggerRequest,
};
use weir_store::{SqlStore, Store, TaskInstanceRecord};

/// A one-DAG world: a store and home in a temp dir.
pub struct World {
    pub dir: TempDir,
    pub ex: Executor,
}

/// What one run of the DAG did to its task `task`.
pub struct Ran {
    pub outcome: RunOutcome,
    pub ti: TaskInstanceRecord,
    pub output: Option<Value>,
    pub home: PathBuf,
}

impl World {
    /// A daily (UTC) DAG `ops` of the given tasks, with a `region` text param.
    pub async fn new(tasks: Vec<Task>) -> World {
        World::dags(vec![("ops", tasks)]).await
    }

    /// Several such DAGs on one store.
    pub async fn dags(dags: Vec<(&str, Vec<Task>)>) -> World {
        World::declaring(dags, vec![ParamSpec::text("region", "a region")]).await
    }

    /// DAGs declaring `params`.
    pub async fn declaring(dags: Vec<(&str, Vec<Task>)>, params: Vec<ParamSpec>) -> World {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqlStore::open(&dir.path().join("weir.db")).await.unwrap());
        let mut registry = Registry::new();
        for (id, tasks) in dags {
            let mut dag = DagDef::builder(id)
                .schedule(window_schedule("@daily", TimeZone::UTC).unwrap())
                .params(params.clone());
            for t in tasks {
                dag = dag.task(t);
            }
            registry.add(dag.build().unwrap());
        }
        let ex = Executor::new(
            store,
            Arc::new(registry),
            Arc::new(TokioClock::system()),
            ExecutorOptions {
                home: dir.path().join("home"),
                ..ExecutorOptions::default()
            },
        );
        World { dir, ex }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs `ops` for the UTC day containing `day` with `conf`, and reports on `task`.
    pub async fn run(&self, day: Timestamp, conf: Value, task: &str) -> Ran {
        self.run_dag("ops", day, conf, task).await
    }

    pub async fn run_dag(&self, dag: &str, day: Timestamp, conf: Value, task: &str) -> Ran {
        let run = weir_runtime::trigger_run(
            &self.ex,
            TriggerRequest {
                dag_id: DagId::new(dag).unwrap(),
                logical_date: Some(day),
                conf,
            },
        )
        .await
        .unwrap();
        let outcome = self.ex.take_over(&run.dag_id, &run.run_id).await.unwrap();
        let store = self.ex.store();
        let ti = store
            .task_instances(&run.dag_id, &run.run_id)
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.key.task_id.as_str() == task)
            .unwrap();
        let output = store
            .outputs(&run.dag_id, &run.run_id, task)
            .await
            .unwrap()
            .into_iter()
            .next()
            .map(|(_, v)| v);
        Ran {
            outcome,
            ti,
            output,
            home: self.dir.path().join("home"),
        }
    }
}

impl Ran {
    pub fn assert_failed_on_try(&self, try_number: u32, needle: &str) {
        assert_eq!(self.ti.state, TaskState::Failed, "{:?}", self.ti.error);
        assert_eq!(self.ti.try_number, try_number, "{:?}", self.ti.error);
        let error = self.ti.error.clone().unwrap_or_default();
        assert!(error.contains(needle), "{error:?} lacks {needle:?}");
    }
}

pub fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// Orders with a UTC `ts`, a `region` and an `amount`, written as `dt=` partitions of `dir`:
/// three on 2026-03-01 (EU, EU, US), two on 2026-03-02 (US, APAC).
pub fn write_orders(dir: &Path) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("region", DataType::Utf8, false),
        Field::new("amount", DataType::Int64, false),
    ]));
    let days = [
        (
            "2026-03-01",
            vec![
                (1, "2026-03-01T01:00:00Z", "EU", 10),
                (2, "2026-03-01T12:00:00Z", "EU", 20),
                (3, "2026-03-01T23:59:59Z", "US", 30),
            ],
        ),
        (
            "2026-03-02",
            vec![
                (4, "2026-03-02T00:00:00Z", "US", 40),
                (5, "2026-03-02T08:00:00Z", "APAC", 50),
            ],
        ),
    ];
    let dataset = Dataset::open(dir).unwrap();
    for (day, rows) in days {
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.0).collect::<Vec<i64>>(),
                )),
                Arc::new(
                    TimestampMicrosecondArray::from(
                        rows.iter()
                            .map(|r| ts(r.1).as_microsecond())
                            .collect::<Vec<_>>(),
                    )
                    .with_timezone("UTC"),
                ),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.3).collect::<Vec<i64>>(),
                )),
            ],
        )
        .unwrap();
        dataset
            .write_partition(
                &PartitionKey::date(day.parse().unwrap()),
                schema.clone(),
                [&batch],
                WriteOptions::default(),
            )
            .unwrap();
    }
}

/// A config as a DAG file gives it: JSON here, TOML in DAG files (same serde).
#[test]
fn configs_are_named_by_operator_and_refuse_unknown_fields() {
    let config: weir_ops::OperatorConfig = serde_json::from_value(serde_json::json!({
        "operator": "sql",
        "query": "SELECT 1",
        "result": {"kind": "dataset", "path": "{home}/data/x", "partition_by": ["dt"]},
    }))
    .unwrap();
    assert!(matches!(config, weir_ops::OperatorConfig::Sql(_)));
    let typo = serde_json::from_value::<weir_ops::OperatorConfig>(serde_json::json!({
        "operator": "command", "program": "true", "argz": ["x"],
    }))
    .unwrap_err();
    assert!(typo.to_string().contains("unknown field `argz`"), "{typo}");
    let unknown = serde_json::from_value::<weir_ops::OperatorConfig>(serde_json::json!({
        "operator": "spark_submit",
    }))
    .unwrap_err();
    assert!(
        unknown
            .to_string()
            .contains("unknown variant `spark_submit`"),
        "{unknown}"
    );
}
