//! The harness every pattern test drives the DAGs through, the way a user would: a temporary weir
//! home with a real SQLite store, the pattern registry and a real executor on the system clock;
//! runs made with `trigger_run` (`weir dags run --conf ...`) or `backfill`.
//!
//! Expected values never come from pattern or weir-data code: sources are read back here with the
//! `csv` crate and `jiff`, windows are computed from civil times here, and partitions are read
//! back from the Parquet files.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use jiff::Timestamp;
use jiff::civil::{Date, date};
use jiff::tz::TimeZone;
use serde_json::{Map, Value};
use weir_core::{DagId, RunState, TaskState};
use weir_data::{Dataset, PartitionKey, SampleSpec};
use weir_runtime::{
    BackfillOptions, BackfillReport, Clock, Executor, ExecutorOptions, Reprocess, RunOutcome,
    TokioClock, TriggerRequest,
};
use weir_store::{RunRecord, SqlStore, Store, TaskInstanceRecord, TryRecord};

pub const NEW_YORK: &str = "America/New_York";
pub const LONDON: &str = "Europe/London";

pub fn tz(name: &str) -> TimeZone {
    TimeZone::get(name).expect("a known zone")
}

/// The instant of a local civil time.
pub fn local(d: Date, hour: i8, zone: &str) -> Timestamp {
    d.at(hour, 0, 0, 0)
        .to_zoned(tz(zone))
        .expect("a valid local time")
        .timestamp()
}

/// Local midnight starting `d`.
pub fn midnight(d: Date, zone: &str) -> Timestamp {
    local(d, 0, zone)
}

/// `00:00Z` of a UTC date.
pub fn utc(y: i16, m: i8, d: i8) -> Timestamp {
    date(y, m, d)
        .to_zoned(TimeZone::UTC)
        .expect("valid")
        .timestamp()
}

/// `--conf`-style params: a JSON object of strings.
pub fn conf<K: AsRef<str>, V: AsRef<str>>(pairs: impl IntoIterator<Item = (K, V)>) -> Value {
    let mut map = Map::new();
    for (k, v) in pairs {
        map.insert(k.as_ref().to_owned(), Value::String(v.as_ref().to_owned()));
    }
    Value::Object(map)
}

pub fn s(path: &Path) -> String {
    path.display().to_string()
}

/// A weir home with its store and executor.
pub struct World {
    _tmp: tempfile::TempDir,
    pub home: PathBuf,
    pub store: Arc<dyn Store>,
    pub ex: Arc<Executor>,
}

impl World {
    pub async fn new() -> World {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let home = tmp.path().join("weir-home");
        std::fs::create_dir_all(&home).expect("home");
        let store: Arc<dyn Store> = Arc::new(
            SqlStore::open(&home.join("weir.db"))
                .await
                .expect("open the store"),
        );
        let ex = Arc::new(Executor::new(
            store.clone(),
            Arc::new(weir_patterns::registry()),
            Arc::new(TokioClock::system()),
            ExecutorOptions {
                parallelism: 8,
                home: home.clone(),
                ..ExecutorOptions::default()
            },
        ));
        World {
            _tmp: tmp,
            home,
            store,
            ex,
        }
    }

    /// Another executor over the same home, store and registry, with its own clock.
    pub fn executor_with_clock(&self, clock: Arc<dyn Clock>) -> Arc<Executor> {
        Arc::new(Executor::new(
            self.store.clone(),
            Arc::new(weir_patterns::registry()),
            clock,
            ExecutorOptions {
                parallelism: 8,
                home: self.home.clone(),
                ..ExecutorOptions::default()
            },
        ))
    }

    /// A path under the home (not created).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.home.join(rel)
    }

    /// Writes a generated orders CSV (no malformed rows, so every row has a parseable time and
    /// amount and the independent count needs no knowledge of the reader's reject rules).
    pub fn sample(&self, name: &str, start: Timestamp, days: u32, rows: u64, seed: u64) -> PathBuf {
        let dir = self.path("sources");
        std::fs::create_dir_all(&dir).expect("sources dir");
        let path = dir.join(name);
        let spec = SampleSpec {
            rows,
            start,
            days,
            seed,
            malformed_ratio: 0.0,
            ..SampleSpec::default()
        };
        weir_data::write_orders_csv(&spec, &path).expect("write the sample");
        path
    }

    /// `weir dags run DAG --logical-date AT --conf ...`: creates (or clears) the run and runs it.
    pub async fn run(&self, dag: &str, at: Timestamp, conf: Value) -> RunOutcome {
        let run = self.trigger(dag, at, conf).await;
        self.ex
            .run(&run.dag_id, &run.run_id)
            .await
            .expect("the executor runs the run")
    }

    /// Creates (or clears) a manual run without running it.
    pub async fn trigger(&self, dag: &str, at: Timestamp, conf: Value) -> RunRecord {
        trigger_on(&self.ex, dag, at, conf).await
    }

    /// `weir dags backfill DAG --from FROM --to TO --conf ...` (logical dates, inclusive).
    pub async fn backfill(
        &self,
        dag: &str,
        from: Timestamp,
        to: Timestamp,
        conf: Value,
    ) -> BackfillReport {
        let opts = BackfillOptions {
            from,
            to,
            reprocess: Reprocess::None,
            max_active_runs: None,
            conf,
            queue: None,
        };
        weir_runtime::backfill(self.ex.clone(), &dag_id(dag), &opts, |_| {})
            .await
            .expect("the backfill runs")
    }

    /// Task instances of a run by task id.
    pub async fn tasks(&self, run: &RunRecord) -> BTreeMap<String, TaskInstanceRecord> {
        self.store
            .task_instances(&run.dag_id, &run.run_id)
            .await
            .expect("task instances")
            .into_iter()
            .map(|ti| (ti.key.task_id.to_string(), ti))
            .collect()
    }

    /// Finished tries of one task of a run, in order.
    pub async fn tries(&self, run: &RunRecord, task: &str) -> Vec<TryRecord> {
        self.store
            .tries(&run.dag_id, &run.run_id)
            .await
            .expect("tries")
            .into_iter()
            .filter(|t| t.task_id.as_str() == task)
            .collect()
    }

    /// The output of a task in a run.
    pub async fn output(&self, run: &RunRecord, task: &str) -> Value {
        self.store
            .outputs(&run.dag_id, &run.run_id, task)
            .await
            .expect("outputs")
            .into_iter()
            .next()
            .map(|(_, v)| v)
            .unwrap_or(Value::Null)
    }
}

/// Creates (or clears) a manual run on `ex` without running it.
pub async fn trigger_on(ex: &Executor, dag: &str, at: Timestamp, conf: Value) -> RunRecord {
    weir_runtime::trigger_run(
        ex,
        TriggerRequest {
            dag_id: dag_id(dag),
            logical_date: Some(at),
            conf,
        },
    )
    .await
    .expect("trigger the run")
}

pub fn dag_id(id: &str) -> DagId {
    DagId::new(id).expect("a valid dag id")
}

/// Asserts a run and each named task ended as expected, printing every task's error otherwise.
pub async fn assert_states(
    w: &World,
    outcome: &RunOutcome,
    run: RunState,
    tasks: &[(&str, TaskState)],
) {
    let tis = w.tasks(&outcome.run).await;
    let summary: Vec<String> = tis
        .iter()
        .map(|(id, ti)| format!("{id}: {:?} {:?}", ti.state, ti.error))
        .collect();
    assert_eq!(
        outcome.state, run,
        "run {} ended {:?}; tasks: {summary:#?}",
        outcome.run.run_id, outcome.state
    );
    for (task, state) in tasks {
        assert_eq!(
            tis.get(*task).map(|ti| ti.state),
            Some(*state),
            "task {task}; tasks: {summary:#?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The source, read independently.

/// One order as the source file holds it.
#[derive(Debug, Clone)]
pub struct Order {
    pub order_id: i64,
    pub customer_id: i64,
    pub region: String,
    pub event_time: Timestamp,
    /// `amount` as exact cents, parsed from the decimal text.
    pub amount_cents: i64,
}

/// Every row of an orders CSV, parsed with the `csv` crate and jiff (not weir-data).
pub fn read_orders(path: &Path) -> Vec<Order> {
    let mut reader = csv::Reader::from_path(path).expect("open the source");
    let headers = reader.headers().expect("a header").clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("column {name}"))
    };
    let (id, cust, region, time, amount) = (
        col("order_id"),
        col("customer_id"),
        col("region"),
        col("event_time"),
        col("amount"),
    );
    reader
        .records()
        .map(|r| {
            let r = r.expect("a well-formed record");
            Order {
                order_id: r[id].parse().expect("order_id"),
                customer_id: r[cust].parse().expect("customer_id"),
                region: r[region].to_owned(),
                event_time: r[time].parse().expect("an RFC 3339 event_time"),
                amount_cents: parse_cents(&r[amount]),
            }
        })
        .collect()
}

/// `"123.4"` / `"123.45"` → 12345, exactly.
pub fn parse_cents(text: &str) -> i64 {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    assert!(frac.len() <= 2, "amount {text} has more than 2 decimals");
    let frac = format!("{frac:0<2}");
    whole.parse::<i64>().expect("amount") * 100 + frac.parse::<i64>().expect("amount")
}

/// Orders with `from <= event_time < to`.
pub fn in_window(orders: &[Order], from: Timestamp, to: Timestamp) -> Vec<&Order> {
    orders
        .iter()
        .filter(|o| from <= o.event_time && o.event_time < to)
        .collect()
}

pub fn count_in(orders: &[Order], from: Timestamp, to: Timestamp) -> u64 {
    in_window(orders, from, to).len() as u64
}

/// Orders per local date in `zone`.
pub fn per_local_date(orders: &[Order], zone: &str) -> BTreeMap<Date, u64> {
    let tz = tz(zone);
    let mut out = BTreeMap::new();
    for o in orders {
        *out.entry(o.event_time.to_zoned(tz.clone()).date())
            .or_default() += 1;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// What landed, read back from the Parquet files.

/// Rows of every committed partition of a dataset, from the Parquet footers.
pub fn partition_rows(root: &Path) -> BTreeMap<String, u64> {
    Dataset::open(root)
        .expect("open the dataset")
        .partitions()
        .expect("list partitions")
        .into_iter()
        .map(|p| (p.partition, p.rows))
        .collect()
}

/// The record batches of one partition.
pub fn read_partition(root: &Path, partition: &str) -> Vec<RecordBatch> {
    Dataset::open(root)
        .expect("open the dataset")
        .read_partition(&PartitionKey::parse(partition).expect("a partition path"))
        .expect("read the partition")
}

pub fn rows_of(batches: &[RecordBatch]) -> u64 {
    batches.iter().map(|b| b.num_rows() as u64).sum()
}

/// An Int64 column of a partition.
pub fn i64_column(batches: &[RecordBatch], name: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for b in batches {
        let col = b
            .column_by_name(name)
            .unwrap_or_else(|| panic!("column {name}"));
        let col = col
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap_or_else(|| panic!("{name} is {:?}, not Int64", col.data_type()));
        out.extend(col.iter().map(|v| v.expect("not null")));
    }
    out
}

/// The normalized `event_time` column of a partition.
pub fn times(batches: &[RecordBatch]) -> Vec<Timestamp> {
    let mut out = Vec::new();
    for b in batches {
        let col = b.column_by_name("event_time").expect("event_time");
        let col = col
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .expect("event_time as Timestamp(µs)");
        out.extend(
            col.iter()
                .map(|v| Timestamp::from_microsecond(v.expect("not null")).expect("in range")),
        );
    }
    out
}

/// The data files of a partition folder (`part-*.parquet`), and every other entry in it.
pub fn partition_files(root: &Path, partition: &str) -> (Vec<String>, Vec<String>) {
    let dir = root.join(partition);
    let mut parts = Vec::new();
    let mut other = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("list the partition folder") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("utf-8");
        if name.starts_with("part-") && name.ends_with(".parquet") {
            parts.push(name);
        } else {
            other.push(name);
        }
    }
    parts.sort();
    (parts, other)
}

/// How many of `order_ids` appear more than once.
pub fn duplicates(order_ids: &[i64]) -> usize {
    let mut seen: HashMap<i64, usize> = HashMap::new();
    for id in order_ids {
        *seen.entry(*id).or_default() += 1;
    }
    seen.values().filter(|n| **n > 1).count()
}
