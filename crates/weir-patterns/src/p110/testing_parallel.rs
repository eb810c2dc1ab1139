//! 110.7.3 Testing parallel batch processing — `110_07_03_testing_parallel`.
//!
//! A day's orders counted per region by mapped instances that run at once, and an aggregate of
//! their results — the pipeline whose parallel behaviour the suite in
//! `crates/weir-patterns/tests/it/testing_parallel.rs` checks, next to the coordination suite of
//! the store (`crates/weir-store/tests/it/coordination.rs`) and the workers' tests
//! (`crates/weir-cli/tests/it/workers.rs`).
//!
//! What it demonstrates:
//! - **Test concurrent execution**: the regions' instances share the `per_region` pool (3
//!   slots); the suite reads each try's start and end from the store and checks that
//!   instances overlapped, and never more than 3 at once.
//! - **Validate result aggregation**: `aggregate` sums the instances' outputs; the suite checks
//!   the sum against its own count of the source and against the instances' outputs.
//! - **Test race conditions**: provoked on purpose — a second executor asking for a run a live
//!   one drives is refused; a process whose lease ran out is fenced off, its late changes
//!   refused while the one that took over finishes the run; `--conf stagger_ms=N` makes the
//!   instances finish in reverse order, `--conf flaky_index=I` fails instance I's first try.
//! - **Verify ordering guarantees** — what weir promises, and the suite checks:
//!   1. a task starts only once its upstreams are in the states its trigger rule needs (by
//!      default, all succeeded): `aggregate` starts after every `count` instance ended;
//!   2. the instances of a mapped task run in no promised order, but a downstream reads their
//!      outputs in map-index order, whatever order they finished in;
//!   3. the tries of one instance never overlap: try N+1 starts after try N ended;
//!   4. workers claim the oldest logical date first, then instances in creation order (map
//!      index order for one task) — an order of starting, not of finishing.
//!
//! Run it: `weir dags run 110_07_03_testing_parallel --logical-date 2026-03-08`; its suite:
//! `cargo test -p weir-patterns --test it testing_parallel`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use weir_core::ParamSpec;
use weir_core::timetable::{parse_zone, window_schedule};
use weir_ops::load::{window_param_specs, window_params};
use weir_ops::{Operator, QueryParam, Sql};
use weir_runtime::{DagDef, Task, TaskContext, TaskError};

use super::to_output;

pub const DAG_ID: &str = "110_07_03_testing_parallel";
pub const ZONE: &str = "America/New_York";
pub const POOL: &str = "per_region";
pub const POOL_SLOTS: u32 = 3;

pub fn dag() -> DagDef {
    let tz = parse_zone(ZONE).expect("a known zone");
    DagDef::builder(DAG_ID)
        .description("Per-region counts in parallel and their aggregate, with a suite for its parallel behaviour")
        .tags(["110.7", "testing", "parallel", "intermediate"])
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
                "stagger_ms",
                0,
                10_000,
                "instance I of N waits (N-1-I) × this many ms first, so they finish in reverse order",
            )
            .default(0),
        )
        .param(
            ParamSpec::integer(
                "flaky_index",
                -1,
                10_000,
                "the instance whose first try fails (retryable); -1: none",
            )
            .default(-1),
        )
        .pool(POOL, POOL_SLOTS)
        .task(
            Task::new("regions")
                .doc("The regions with orders in the day, sorted: the list `count` maps over")
                .run(regions),
        )
        .task(
            Task::new("count")
                .expand("regions")
                .pool(POOL, 1)
                .retries(2)
                .retry_delay(jiff::SignedDuration::ZERO)
                .doc("One region's orders and exact revenue for the day")
                .run(count),
        )
        .task(
            Task::new("aggregate")
                .after(["count"])
                .doc("The day's totals from the regions' counts, read in map-index order")
                .run(aggregate),
        )
        .build()
        .expect("a valid DAG")
}

/// What one `count` instance returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionCount {
    pub region: String,
    pub orders: u64,
    pub amount_cents: i64,
}

/// The aggregate's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aggregate {
    pub orders: u64,
    pub amount_cents: i64,
    /// The regions in the order the aggregate received the counts (map-index order).
    pub received: Vec<String>,
    pub per_region: BTreeMap<String, u64>,
}

/// `amount` in exact cents, whether the source typed it as a float or a decimal.
const CENTS: &str = "CAST(round(CAST(amount AS DOUBLE) * 100) AS BIGINT)";

fn time_column(name: &str) -> Result<&str, TaskError> {
    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(name)
    } else {
        Err(TaskError::fatal(format!(
            "--conf time_column={name:?} is not a plain column name"
        )))
    }
}

async fn regions(ctx: TaskContext) -> Result<Value, TaskError> {
    let p = window_params(&ctx).await?;
    let time = time_column(&p.time_column)?;
    let rows = Sql::new(format!(
        "SELECT DISTINCT coalesce(arrow_cast(region, 'Utf8'), '(null)') AS region FROM src \
         WHERE \"{time}\" >= $data_interval_start AND \"{time}\" < $data_interval_end ORDER BY region"
    ))
    .source("src", &p.source, Some(&p.time_column))
    .execute(ctx)
    .await?;
    let rows: Vec<BTreeMap<String, Value>> = serde_json::from_value(rows)
        .map_err(|e| TaskError::fatal(format!("the regions query returned another shape: {e}")))?;
    let regions: Vec<String> = rows
        .into_iter()
        .filter_map(|r| r.get("region").and_then(Value::as_str).map(str::to_owned))
        .collect();
    to_output(&regions)
}

async fn count(ctx: TaskContext) -> Result<Value, TaskError> {
    let region: String = ctx.mapped_item()?;
    let index = ctx.map_index.raw();
    let flaky: i64 = ctx.param("flaky_index")?;
    if flaky == index && ctx.try_number == 1 {
        return Err(TaskError::retryable(format!(
            "instance {index} fails its first try on purpose (--conf flaky_index={flaky})"
        )));
    }
    let stagger: u64 = ctx.param("stagger_ms")?;
    let n = ctx.input::<Vec<String>>("regions").await?.len() as i64;
    let wait = stagger * (n - 1 - index).max(0) as u64;
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    let p = window_params(&ctx).await?;
    let time = time_column(&p.time_column)?;
    let rows = Sql::new(format!(
        "SELECT count(*) AS orders, coalesce(sum({CENTS}), 0) AS amount_cents FROM src \
         WHERE \"{time}\" >= $data_interval_start AND \"{time}\" < $data_interval_end \
           AND coalesce(arrow_cast(region, 'Utf8'), '(null)') = $region"
    ))
    .source("src", &p.source, Some(&p.time_column))
    .bind("region", QueryParam::Text(region.clone()))
    .execute(ctx)
    .await?;
    let row = rows.get(0).cloned().unwrap_or(Value::Null);
    to_output(&RegionCount {
        region,
        orders: row["orders"].as_u64().unwrap_or(0),
        amount_cents: row["amount_cents"].as_i64().unwrap_or(0),
    })
}

async fn aggregate(ctx: TaskContext) -> Result<Value, TaskError> {
    let counts: Vec<RegionCount> = ctx.input("count").await?;
    let mut out = Aggregate {
        orders: 0,
        amount_cents: 0,
        received: Vec::new(),
        per_region: BTreeMap::new(),
    };
    for c in counts {
        out.orders += c.orders;
        out.amount_cents += c.amount_cents;
        out.per_region.insert(c.region.clone(), c.orders);
        out.received.push(c.region);
    }
    to_output(&out)
}
