//! 110.7.4 Testing batch error handling — `110_07_04_testing_batch_error_handling`.
//!
//! A daily pipeline with every error path a batch has, each one switched on by its data or by
//! a declared param, and the reference suite that drives them in
//! `crates/weir-patterns/tests/it/error_testing.rs`, written with [`weir_ops::testing`]:
//! - `load`: the day's rows in checkpointed chunks; malformed rows go to the dead-letter queue.
//! - `regions` → `post_region`: one mapped instance per region of the day posts its totals to a
//!   ledger that refuses negative amounts — a region with one fails alone.
//! - `publish`: waits for a downstream's ready flag (`--conf ready_marker=PATH`), retried with
//!   exponential backoff and dead-lettered when its tries run out.
//!
//! What it demonstrates:
//! - **Test partial failure handling**: a region with a negative amount fails its `post_region`
//!   instance (fatal: the data must be corrected, a retry cannot help) while the other regions
//!   post; the run fails, and a selective clear re-runs only the failed instance.
//! - **Validate retry behavior**: `publish` has `retries(3)`, a 1-minute `retry_delay`,
//!   `backoff(2.0)` and a 5-minute cap; on the suite's stepping clock its four tries run back to
//!   back, and each retry's delay (from the notifications, `HOME/notifications/DAG_ID.jsonl`) is
//!   checked against Airflow's bounds: try n waits at least 60·2^(n−1) s and less than twice
//!   that, capped at 300 s.
//! - **Test checkpoint recovery**: `load` commits each chunk of `--conf checkpoint_every`
//!   source rows and checkpoints it; `--conf fail_at_chunk=K` injects a retryable failure into
//!   chunk K of the first try (what a flaky disk or network share would do), so the retry must
//!   resume from checkpoint K−1 and the partition must still hold every row once.
//! - **Verify DLQ routing**: malformed rows are dead letters of class `parse` with their source
//!   line and text; a `publish` that ran out of tries is one dead letter of class `batch`
//!   carrying its run, task and try, and the task succeeds incomplete so the run goes on.
//!
//! Why the fault is injected in the load's router rather than in the source: a checkpoint is a
//! position in one version of the source (path, size, modification time), so a retry may only
//! resume if the file is unchanged — a test that truncated or swapped the file would be testing
//! the start-over path instead. The fault is an I/O error of a transient kind raised while chunk
//! K is routed, before any of it is written: exactly what the retry has to recover from.
//!
//! Run it: `weir dags run 110_07_04_testing_batch_error_handling --logical-date 2026-03-05
//! --conf checkpoint_every=20000 --conf fail_at_chunk=3`; its suite: `cargo test -p
//! weir-patterns --test it error_testing`.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;
use jiff::SignedDuration;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weir_core::ParamSpec;
use weir_core::timetable::{parse_zone, window_schedule};
use weir_data::partitioners::{DatePartitioner, Granularity};
use weir_data::{DataError, ReadOptions};
use weir_ops::checkpointed::{CheckpointPolicy, Route, load_checkpointed};
use weir_ops::load::{window_param_specs, window_params};
use weir_ops::{Loaded, Sql};
use weir_runtime::{DagDef, LogFileNotifier, NotifyEvent, OnDamage, Task, TaskContext, TaskError};

pub const DAG_ID: &str = "110_07_04_testing_batch_error_handling";
pub const ZONE: &str = "America/New_York";
/// `publish`'s retries: four tries in all.
pub const RETRIES: u32 = 3;
/// The base delay before `publish`'s first retry.
pub const RETRY_DELAY: SignedDuration = SignedDuration::from_mins(1);
/// No retry of `publish` waits longer.
pub const MAX_RETRY_DELAY: SignedDuration = SignedDuration::from_mins(5);
/// Where the retry notifications go (`{home}`, `{dag_id}` filled in).
pub const NOTIFICATIONS: &str = "{home}/notifications/{dag_id}.jsonl";

/// Per region of the day: orders, revenue in cents, and how many orders have a negative amount.
const REGIONS_SQL: &str = "SELECT arrow_cast(region, 'Utf8') AS region, count(*) AS orders, \
        sum(CAST(round(CAST(amount AS DOUBLE) * 100) AS BIGINT)) AS revenue_cents, \
        sum(CASE WHEN CAST(amount AS DOUBLE) < 0 THEN 1 ELSE 0 END) AS negative \
     FROM orders WHERE dt = $ds GROUP BY region ORDER BY region";

pub fn dag() -> DagDef {
    let tz = parse_zone(ZONE).expect("a known zone");
    DagDef::builder(DAG_ID)
        .description("Every error path of a daily batch — DLQ, partial failure, backoff, checkpoint resume — for a test suite to drive")
        .tags(["110.7", "testing", "error-handling", "intermediate"])
        .schedule(window_schedule("@daily", tz.clone()).expect("a valid schedule"))
        .start_date(
            jiff::civil::date(2026, 3, 1)
                .to_zoned(tz)
                .expect("valid")
                .timestamp(),
        )
        .catchup(false)
        .params(window_param_specs())
        .param(
            ParamSpec::integer(
                "checkpoint_every",
                1,
                1_000_000_000,
                "good source rows per chunk and checkpoint of the load",
            )
            .default(50_000),
        )
        .param(ParamSpec::integer(
            "fail_at_chunk",
            1,
            1_000_000_000,
            "inject a retryable failure into this chunk of the load's first try (its retry must resume from the checkpoint before it)",
        ))
        .param(ParamSpec::path(
            "ready_marker",
            "a file publish waits for (a downstream's ready flag): each try fails retryably while it is absent; unset, no wait",
        ))
        .notify(
            Arc::new(LogFileNotifier::new(NOTIFICATIONS)),
            &[NotifyEvent::Retry, NotifyEvent::RetryExhausted],
        )
        .task(
            Task::new("load")
                .retries(2)
                .retry_delay(SignedDuration::from_secs(10))
                .doc("The day in checkpointed chunks; malformed rows to the dead-letter queue")
                .run(load),
        )
        .task(
            weir_ops::task("regions", Sql::new(REGIONS_SQL).input("orders", "load"))
                .after(["load"])
                .doc("One posting batch per region of the day"),
        )
        .task(
            Task::new("post_region")
                .expand("regions")
                .doc("Post one region's day to the ledger, which refuses negative amounts")
                .run(post_region),
        )
        .task(
            Task::new("publish")
                .after(["load"])
                .retries(RETRIES)
                .retry_delay(RETRY_DELAY)
                .backoff(2.0)
                .max_retry_delay(MAX_RETRY_DELAY)
                .dead_letter_on_exhaustion()
                .doc("Publish the day once the downstream is ready; backoff, then the dead-letter queue")
                .run(publish),
        )
        .build()
        .expect("a valid DAG")
}

/// The day's rows in checkpointed chunks of `checkpoint_every` good rows (the reader's batch
/// size is the chunk, so chunk K is the K-th batch routed), through the same machinery as
/// `load_window`'s `checkpoint` — with a fault injected into chunk `fail_at_chunk` of try 1.
async fn load(ctx: TaskContext) -> Result<Value, TaskError> {
    let p = window_params(&ctx).await?;
    let every: u64 = ctx.param("checkpoint_every")?;
    let fault = match ctx.try_number {
        1 => ctx.param_opt::<u64>("fail_at_chunk")?,
        _ => None,
    };
    let (from, to) = (ctx.data_interval.start, ctx.data_interval.end);
    let days = DatePartitioner::new(p.time_column.clone(), p.tz.clone(), Granularity::Day);
    // The day's partition is committed even when it has no rows: a re-run replaces stale data.
    let expected = vec![days.key_of(from)];
    let (column, source) = (p.time_column.clone(), p.source.clone());
    let mut chunk = 0u64;
    let route: Route = Box::new(move |batch: &RecordBatch| {
        chunk += 1;
        if fault == Some(chunk) {
            return Err(DataError::io(
                "read",
                source.clone(),
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("injected fault in chunk {chunk} of the first try (fail_at_chunk)"),
                ),
            ));
        }
        let window = weir_data::filter_time_window(batch, &column, from, to)?;
        if window.num_rows() == 0 {
            return Ok(Vec::new());
        }
        days.split(&window)
    });
    let opts = ReadOptions {
        time_column: Some(p.time_column.clone()),
        batch_size: usize::try_from(every).unwrap_or(usize::MAX),
        ..p.read.clone()
    };
    let policy = CheckpointPolicy {
        every,
        on_damage: OnDamage::Previous,
        keep: 0,
    };
    load_checkpointed(&ctx, &p, opts, policy, route, expected, false).await
}

/// One region's day, as `regions` computed it: what `post_region` is mapped over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionBatch {
    pub region: String,
    pub orders: u64,
    pub revenue_cents: i64,
    /// Orders with a negative amount.
    pub negative: u64,
}

/// What a posted region returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posted {
    pub region: String,
    pub orders: u64,
    pub revenue_cents: i64,
}

/// Posts one region's totals; the ledger refuses a day with a negative amount in it, and only
/// corrected data can change that, so the failure is fatal.
async fn post_region(ctx: TaskContext) -> Result<Value, TaskError> {
    let batch: RegionBatch = ctx.mapped_item()?;
    if batch.negative > 0 {
        return Err(TaskError::fatal(format!(
            "region {}: {} of its {} orders have a negative amount, which the ledger refuses; correct them in the source, then clear this instance (the other regions are posted)",
            batch.region, batch.negative, batch.orders
        )));
    }
    serde_json::to_value(Posted {
        region: batch.region,
        orders: batch.orders,
        revenue_cents: batch.revenue_cents,
    })
    .map_err(|e| TaskError::fatal(format!("the posting does not serialize: {e}")))
}

/// Publishes the day's partitions once the downstream's ready flag exists; until then each try
/// fails retryably.
async fn publish(ctx: TaskContext) -> Result<Value, TaskError> {
    let loaded: Loaded = ctx.input("load").await?;
    if let Some(marker) = ctx.param_opt::<PathBuf>("ready_marker")? {
        let marker = weir_ops::expand_path(&ctx, &marker);
        if !marker.exists() {
            return Err(TaskError::retryable(format!(
                "the downstream is not ready: {} does not exist yet (try {} of {})",
                marker.display(),
                ctx.try_number,
                ctx.max_tries
            )));
        }
    }
    let partitions: Vec<&str> = loaded
        .partitions
        .iter()
        .map(|l| l.partition.as_str())
        .collect();
    Ok(json!({ "published": partitions, "rows": loaded.rows }))
}
