//! 110.2.2 ID range partitioning — `110_02_02_id_range_partitioning`.
//!
//! What it demonstrates:
//! - **Partition data by ID ranges**: rows go to `range=NN` (zero-padded) by `--conf key`
//!   (default `customer_id`), each range an inclusive `[lo, hi]`.
//! - **Calculate range boundaries**: `plan_ranges` streams the key column and cuts equal-count
//!   quantiles (weir-data's `RangePlanBuilder`), written next to the partitions as
//!   `_range_plan.json` with each range's inclusive bounds and exact row count.
//! - **Plan in bounded memory**: the first pass keeps only a row count, the min and max, and a
//!   seeded reservoir sample of at most `--conf sample` keys (default 1,000,000, 8 MB), so memory
//!   does not grow with the source. When every key fits in the sample the plan is exact; when not,
//!   the boundaries come from the sample's quantiles and a second streaming pass (`RangeCounter`)
//!   counts each range's rows exactly, so the plan file's counts are always true counts.
//! - **Handle uneven distributions**: customer ids are heavily skewed (a few customers place most
//!   orders), so equal-width ranges would leave one range with most rows; quantile ranges stay
//!   balanced, and one key is never split across two ranges.
//! - **Implement range-based queries**: `write_range` is mapped over the ranges (one task instance
//!   per range, in parallel), and each is one `sql` query over the source with its range's bounds
//!   bound as parameters — `WHERE key >= $lo AND key <= $hi` — streamed into its `range=NN`
//!   partition; `check_ranges` verifies every row landed in exactly one range.
//!
//! Run it: `weir dags run 110_02_02_id_range_partitioning --conf partitions=8` (add
//! `--conf sample=100000` to cap the planning sample at 100,000 keys, 800 KB).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weir_core::ParamSpec;
use weir_data::partitioners::DEFAULT_SAMPLE_CAPACITY;
use weir_ops::{
    Operator, PlanRanges, QueryParam, RangeItem, Sql, SqlOutput, SqlResult, identifier,
};
use weir_runtime::{DagDef, Task, TaskContext, TaskError};

use weir_ops::blocking;
use weir_ops::load::{retire_others, window_param_specs, window_params};

pub const DAG_ID: &str = "110_02_02_id_range_partitioning";
pub use weir_ops::PLAN_FILE;

pub fn dag() -> DagDef {
    DagDef::builder(DAG_ID)
        .description(
            "Equal-count id ranges from the key's real distribution, written range by range",
        )
        .tags(["110.2", "partitioning", "intermediate"])
        .max_active_tasks(4)
        .params(window_param_specs())
        .param(
            ParamSpec::text("key", "integer column the ranges are cut on").default("customer_id"),
        )
        .param(ParamSpec::integer("partitions", 1, 4096, "number of ranges").default(8))
        .param(
            ParamSpec::integer(
                "sample",
                1,
                100_000_000,
                "keys kept in the reservoir the ranges are planned from (8 bytes each)",
            )
            .default(DEFAULT_SAMPLE_CAPACITY as i64),
        )
        .task(Task::new("plan_ranges").run(plan_ranges))
        .task(
            Task::new("write_range")
                .expand("plan_ranges")
                .retries(2)
                .run(write_range),
        )
        .task(
            Task::new("check_ranges")
                .after(["write_range"])
                .run(check_ranges),
        )
        .build()
        .expect("a valid DAG")
}

pub use weir_data::partitioners::range_key;

/// The `plan_ranges` operator with the run's key, count and sample: one mapped item per range,
/// the plan file next to the partitions.
async fn plan_ranges(ctx: TaskContext) -> Result<Value, TaskError> {
    PlanRanges {
        key: ctx.param("key")?,
        partitions: ctx.param("partitions")?,
        sample: ctx.param("sample")?,
        source: None,
        output: None,
    }
    .execute(ctx)
    .await
}

/// What each `write_range` instance returns.
#[derive(Debug, Serialize, Deserialize)]
struct WrittenRange {
    partition: String,
    rows: u64,
    lo: i64,
    hi: i64,
}

/// One range, as a query: the source rows whose key is in `[lo, hi]`, committed to `range=NN`
/// in the run's format; the count must be the plan's.
async fn write_range(ctx: TaskContext) -> Result<Value, TaskError> {
    let p = window_params(&ctx).await?;
    let key: String = ctx.param("key")?;
    let item: RangeItem = ctx.mapped_item()?;
    let partition = range_key(item.index, item.count);
    let column = identifier("key", &key)?;
    let mut query = Sql::new(format!(
        "SELECT *, $range AS range FROM src WHERE {column} >= $lo AND {column} <= $hi"
    ))
    .source("src", &p.source, None)
    .bind("lo", QueryParam::Int(item.lo))
    .bind("hi", QueryParam::Int(item.hi))
    .bind("range", QueryParam::Text(item.range.clone()))
    .into_dataset(&p.output, &["range"]);
    if let SqlResult::Dataset { format, .. } = &mut query.result {
        *format = Some(ctx.param::<String>("format")?);
    }
    let written: SqlOutput = serde_json::from_value(query.execute(ctx).await?)
        .map_err(|e| TaskError::fatal(format!("the sql output: {e}")))?;
    if written.rows != item.rows {
        return Err(TaskError::fatal(format!(
            "range {} holds {} rows but the plan counted {}; the source changed during the run, run it again",
            item.index, written.rows, item.rows
        )));
    }
    let written = WrittenRange {
        partition: partition.to_path_string(),
        rows: written.rows,
        lo: item.lo,
        hi: item.hi,
    };
    Ok(serde_json::to_value(written).expect("a written range serializes"))
}

async fn check_ranges(ctx: TaskContext) -> Result<Value, TaskError> {
    let p = window_params(&ctx).await?;
    let ranges: Vec<WrittenRange> = ctx.input("write_range").await?;
    let rows: Vec<u64> = ranges.iter().map(|r| r.rows).collect();
    let total: u64 = rows.iter().sum();
    let keep: Vec<String> = ranges.iter().map(|r| r.partition.clone()).collect();
    let output = p.output.clone();
    let retired = blocking(move || retire_others(&output, &keep)).await?;
    let mean = total as f64 / rows.len().max(1) as f64;
    let max = rows.iter().copied().max().unwrap_or(0) as f64;
    Ok(json!({
        "ranges": rows.len(),
        "rows": total,
        "rows_per_range": rows,
        "balance_max_over_mean": if mean > 0.0 { max / mean } else { 0.0 },
        "retired_stale_partitions": retired,
    }))
}
