//! 110.2.1 Date-based partitioning — `110_02_01_date_based_partitioning`.
//!
//! What it demonstrates:
//! - **Partition data by date columns**: rows go to `dt=YYYY-MM-DD` (or `dt=/hr=` with
//!   `--conf granularity=hour`) by the local date of `--conf time_column` in `--conf tz`
//!   (default UTC; the run's interval is then that zone's day), through weir-data's `DatePartitioner`.
//! - **Use execution_date for partition**: each run writes the partitions of its own data interval
//!   (the logical date's day), never "today", so backfills and re-runs land in the right place.
//! - **Handle partition path generation**: Hive paths built from `PartitionKey`, whose values are
//!   escaped so no value can leave its folder; writes are atomic and a re-run replaces.
//! - **Implement partition discovery**: `discover_partitions` lists every committed partition of
//!   the dataset with rows, bytes and files, and reports the days missing between the first and
//!   the last (gaps a backfill should fill).
//!
//! Run it: `weir dags backfill 110_02_01_date_based_partitioning --from 2026-03-01 --to 2026-03-07`.

use std::sync::Arc;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use weir_core::ParamSpec;
use weir_core::timetable::window_schedule;
use weir_data::Dataset;
use weir_data::partitioners::{DatePartitioner, Granularity};
use weir_runtime::{DagDef, Task, TaskContext, TaskError};

use weir_ops::blocking;
use weir_ops::load::{load_window, output_dir, record_commits, window_param_specs, window_params};

pub const DAG_ID: &str = "110_02_01_date_based_partitioning";

pub fn dag() -> DagDef {
    DagDef::builder(DAG_ID)
        .description(
            "Partition each day's rows by date (or hour) and discover the partitions that exist",
        )
        .tags(["110.2", "partitioning", "beginner"])
        .schedule(window_schedule("@daily", TimeZone::UTC).expect("a valid schedule"))
        .start_date(
            jiff::civil::date(2026, 3, 1)
                .to_zoned(TimeZone::UTC)
                .expect("valid")
                .timestamp(),
        )
        .catchup(false)
        .max_active_runs(4)
        .params(window_param_specs())
        .param(
            ParamSpec::choice(
                "granularity",
                ["day", "hour"],
                "dt= partitions, or dt=/hr= partitions",
            )
            .default("day"),
        )
        .task(
            Task::new("partition_by_date")
                .retries(2)
                .run(partition_by_date),
        )
        .task(
            Task::new("discover_partitions")
                .after(["partition_by_date"])
                .run(discover_partitions),
        )
        .build()
        .expect("a valid DAG")
}

async fn partition_by_date(ctx: TaskContext) -> Result<Value, TaskError> {
    let p = window_params(&ctx).await?;
    let granularity: Granularity = ctx.param::<String>("granularity")?.parse()?;
    let partitioner = Arc::new(DatePartitioner::new(
        p.time_column.clone(),
        p.tz.clone(),
        granularity,
    ));
    // The run's day is its data interval, cut in the run's zone (`--conf tz`, else UTC); and
    // the partitions it must (re)write even when empty.
    let (from, to) = (ctx.data_interval.start, ctx.data_interval.end);
    let day = from.to_zoned(p.tz.clone()).date();
    let mut expected = Vec::new();
    match granularity {
        Granularity::Day => expected.push(partitioner.key_of(from)),
        Granularity::Hour => {
            let mut t = from;
            while t < to {
                let key = partitioner.key_of(t);
                if !expected.contains(&key) {
                    expected.push(key);
                }
                t = t
                    .saturating_add(jiff::SignedDuration::from_mins(30))
                    .map_err(|e| TaskError::fatal(e.to_string()))?;
            }
        }
    }
    let params = p.clone();
    let loaded =
        blocking(move || load_window(&params, from, to, &expected, move |b| partitioner.split(b)))
            .await?;
    record_commits(&ctx, &p.output, &loaded).await?;
    let mut out = loaded.to_json();
    out["day"] = json!(day.to_string());
    out["granularity"] = json!(granularity.as_str());
    Ok(out)
}

async fn discover_partitions(ctx: TaskContext) -> Result<Value, TaskError> {
    let dir = output_dir(&ctx)?;
    blocking(move || {
        let partitions = Dataset::open(&dir)?.partitions()?;
        let days: std::collections::BTreeSet<Date> =
            partitions.iter().filter_map(|p| p.key.get("dt").and_then(|d| d.parse().ok())).collect();
        let mut missing = Vec::new();
        if let (Some(first), Some(last)) = (days.first(), days.last()) {
            let mut d = *first;
            while d < *last {
                if !days.contains(&d) {
                    missing.push(d.to_string());
                }
                d = d.tomorrow().expect("in range");
            }
        }
        let listed: Vec<Value> = partitions
            .iter()
            .map(|p| json!({"partition": p.partition, "rows": p.rows, "bytes": p.bytes, "files": p.files}))
            .collect();
        Ok(json!({
            "partitions": listed.len(),
            "rows": partitions.iter().map(|p| p.rows).sum::<u64>(),
            "missing_days": missing,
            "listing": listed,
        }))
    })
    .await
}
