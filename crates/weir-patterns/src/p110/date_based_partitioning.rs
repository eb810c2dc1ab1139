//! 110.2.1 Date-based partitioning — `110_02_01_date_based_partitioning`.
//!
//! What it demonstrates:
//! - **Partition data by date columns**: rows go to `dt=YYYY-MM-DD` (or `dt=/hr=` with
//!   `--conf granularity=hour`) by the local date of `--conf time_column` in `--conf tz`
//!   (default UTC; the run's interval is then that zone's day): the `load_window` operator by date.
//! - **Use execution_date for partition**: each run writes the partitions of its own data interval
//!   (the logical date's day), never "today", so backfills and re-runs land in the right place.
//! - **Handle partition path generation**: Hive paths built from `PartitionKey`, whose values are
//!   escaped so no value can leave its folder; writes are atomic and a re-run replaces.
//! - **Implement partition discovery**: `discover_partitions` lists every committed partition of
//!   the dataset with rows, bytes and files, and reports the days missing between the first and
//!   the last (gaps a backfill should fill).
//!
//! Run it: `weir dags backfill 110_02_01_date_based_partitioning --from 2026-03-01 --to 2026-03-07`.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use weir_core::ParamSpec;
use weir_core::timetable::window_schedule;
use weir_data::Dataset;
use weir_data::partitioners::Granularity;
use weir_runtime::{DagDef, Task, TaskContext, TaskError};

use weir_ops::blocking;
use weir_ops::load::{output_dir, window_param_specs};
use weir_ops::{LoadWindow, Operator};

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

/// The `load_window` operator by date (or hour): the run's interval, cut in the run's zone
/// (`--conf tz`, else UTC), every partition of it written even when empty.
async fn partition_by_date(ctx: TaskContext) -> Result<Value, TaskError> {
    let granularity: Granularity = ctx.param::<String>("granularity")?.parse()?;
    let day = ctx.data_interval.start.to_zoned(ctx.zone.clone()).date();
    let mut out = LoadWindow::by_date(granularity).execute(ctx).await?;
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
