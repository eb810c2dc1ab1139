//! 110.6.4 Ignoring batch boundaries (anti-pattern) —
//! `110_06_04_ignoring_batch_boundaries_antipattern`.
//!
//! A daily batch owns exactly one local day: `[data_interval_start, data_interval_end)`. Jobs
//! that compute their own window instead — from the time they happen to start, or from "a day
//! is 24 hours" — count rows of a neighbouring batch, or none at all, and nothing fails. Every
//! run of this DAG counts its New York day three ways and puts the numbers side by side.
//!
//! What it demonstrates:
//! - **Show data leakage across batches**: `naive_last_24h` selects `[now - 24h, now)`, where
//!   "now" is when the job started. A real job reads the wall clock there; this one takes it as
//!   an input — the interval's end plus `--conf ran_late_minutes` (default 0) — so the mistake
//!   can be replayed: a run that starts 90 minutes late counts the next day's first 90 minutes
//!   and drops its own. Even on time it is wrong on DST days: on 2026-03-08 (23 hours) its window
//!   starts at 23:00 the evening before, counting an hour the previous batch already counted; on
//!   2026-11-01 (25 hours) it starts at 01:00 and the day's first hour is in no batch at all.
//!   `naive_midnight_plus_24h` gets the start right (local midnight) and the end wrong
//!   (midnight + 24 hours): it counts 00:00-01:00 of 2026-03-09 twice and loses 23:00-24:00 of
//!   2026-11-01. Each reports `from_other_batches`: rows it counted that belong to another day.
//! - **Demonstrate incorrect aggregations**: each approach's day totals (orders and revenue,
//!   `sum(amount)` in exact cents, per region) are what a daily revenue report would show;
//!   `compare` reports, per batch, each approach's orders, revenue, rows taken from other
//!   batches and rows of this batch it missed, and whether it is right. Over a backfill the
//!   naive batches do not add up to the total: rows are doubled or lost.
//! - **Provide boundary handling**: `exact_interval` uses the run's data interval exactly —
//!   `$data_interval_start` and `$data_interval_end`, bound by the `sql` operator, half-open
//!   (`>=` start, `<` end) — so consecutive batches tile time: every row is in exactly one, and
//!   23- and 25-hour days are whole. Time is the run's, never the clock's.
//! - **Include window functions**: the exact batch is one `sql` query with window functions over
//!   the interval — per region, ordered by event time: `ROW_NUMBER()` (`seq_in_region`), the
//!   running revenue `SUM(…) OVER (PARTITION BY region ORDER BY event_time, order_id ROWS
//!   BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)` and `RANK()` by amount — committed to
//!   `OUTPUT/dt=YYYY-MM-DD` (a re-run replaces it). Because the window is the batch, each
//!   region's last running total is its day's revenue; a second query reads it back.
//!
//! Run it: `weir dags backfill 110_06_04_ignoring_batch_boundaries_antipattern --from 2026-03-07
//! --to 2026-03-10` (the 23-hour day), or `--from 2026-10-31 --to 2026-11-03 --conf
//! source=… --conf ran_late_minutes=90` on data of that autumn (the 25-hour day, a late start).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::to_output;
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weir_core::ParamSpec;
use weir_core::timetable::{parse_zone, window_schedule};
use weir_ops::load::{window_param_specs, window_params};
use weir_ops::{Operator, QueryParam, Sql, SqlOutput, identifier};
use weir_runtime::{DagDef, Task, TaskContext, TaskError};

pub const DAG_ID: &str = "110_06_04_ignoring_batch_boundaries_antipattern";
pub const ZONE: &str = "America/New_York";

pub const NAIVE_LAST_24H: &str = "naive_last_24h";
pub const NAIVE_MIDNIGHT_PLUS_24H: &str = "naive_midnight_plus_24h";
pub const EXACT_INTERVAL: &str = "exact_interval";

pub fn dag() -> DagDef {
    let tz = parse_zone(ZONE).expect("a known zone");
    DagDef::builder(DAG_ID)
        .description(
            "'Now minus 24 hours' and 'midnight plus 24 hours' leak rows across batches; the data interval does not",
        )
        .tags(["110.6", "anti-pattern", "batch-window", "intermediate"])
        .schedule(window_schedule("@daily", tz.clone()).expect("a valid schedule"))
        .start_date(
            jiff::civil::date(2026, 3, 1)
                .to_zoned(tz.clone())
                .expect("valid")
                .timestamp(),
        )
        .catchup(false)
        .max_active_runs(4)
        .params(window_param_specs())
        .param(
            ParamSpec::integer(
                "ran_late_minutes",
                0,
                24 * 60,
                "how late after its interval's end the naive job started (its \"now\")",
            )
            .default(0),
        )
        .task(
            Task::new(NAIVE_LAST_24H)
                .doc("Anti-pattern: the window is [now - 24h, now)")
                .retries(2)
                .run(naive_last_24h),
        )
        .task(
            Task::new(NAIVE_MIDNIGHT_PLUS_24H)
                .doc("Anti-pattern: the window is [local midnight, local midnight + 24h)")
                .retries(2)
                .run(naive_midnight_plus_24h),
        )
        .task(
            Task::new(EXACT_INTERVAL)
                .doc("The data interval exactly, with running totals and ranks per region")
                .retries(2)
                .run(exact_interval),
        )
        .task(
            Task::new("compare")
                .after([NAIVE_LAST_24H, NAIVE_MIDNIGHT_PLUS_24H, EXACT_INTERVAL])
                .doc("Per-batch counts and revenue of each approach, side by side")
                .run(compare),
        )
        .build()
        .expect("a valid DAG")
}

/// `amount` in exact cents, whether the source typed it as a float or a decimal.
const CENTS: &str = "CAST(round(CAST(amount AS DOUBLE) * 100) AS BIGINT)";

/// One region's totals in a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionTotals {
    pub orders: u64,
    pub amount_cents: i64,
    /// The exact batch only: the running revenue at the region's last order of the batch, read
    /// back from the committed window-function result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_running_total_cents: Option<i64>,
}

/// What one approach counted for a batch: the output of the three counting tasks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Counted {
    /// The window the approach selected, `[window_start, window_end)`.
    pub window_start: Timestamp,
    pub window_end: Timestamp,
    pub hours: f64,
    pub orders: u64,
    /// `sum(amount)` in exact cents.
    pub amount_cents: i64,
    /// Rows counted whose event time is outside the run's data interval: another batch's rows.
    pub from_other_batches: u64,
    pub by_region: BTreeMap<String, RegionTotals>,
    /// The dataset the exact batch committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<PathBuf>,
}

/// One row of a per-region count.
#[derive(Debug, Deserialize)]
struct RegionRow {
    region: String,
    orders: u64,
    amount_cents: i64,
    #[serde(default)]
    from_other_batches: u64,
    #[serde(default)]
    last_running_total_cents: Option<i64>,
}

impl Counted {
    fn new(from: Timestamp, to: Timestamp, rows: Vec<RegionRow>, dataset: Option<PathBuf>) -> Self {
        Counted {
            window_start: from,
            window_end: to,
            hours: to.duration_since(from).as_secs_f64() / 3600.0,
            orders: rows.iter().map(|r| r.orders).sum(),
            amount_cents: rows.iter().map(|r| r.amount_cents).sum(),
            from_other_batches: rows.iter().map(|r| r.from_other_batches).sum(),
            by_region: rows
                .into_iter()
                .map(|r| {
                    (
                        r.region,
                        RegionTotals {
                            orders: r.orders,
                            amount_cents: r.amount_cents,
                            last_running_total_cents: r.last_running_total_cents,
                        },
                    )
                })
                .collect(),
            dataset,
        }
    }
}

fn region_rows(value: Value, what: &str) -> Result<Vec<RegionRow>, TaskError> {
    serde_json::from_value(value)
        .map_err(|e| TaskError::fatal(format!("reading the per-region counts of {what}: {e}")))
}

/// The orders of `[from, to)` per region, and how many of them are outside the run's interval.
/// Both naive approaches share it: only their windows differ.
async fn count_window(
    ctx: TaskContext,
    what: &str,
    from: Timestamp,
    to: Timestamp,
) -> Result<Value, TaskError> {
    let p = window_params(&ctx).await?;
    let time = identifier("time_column", &p.time_column)?;
    let rows = Sql::new(format!(
        "SELECT coalesce(arrow_cast(region, 'Utf8'), '(null)') AS region, count(*) AS orders, \
                coalesce(sum({CENTS}), 0) AS amount_cents, \
                coalesce(sum(CASE WHEN {time} >= $data_interval_start AND {time} < $data_interval_end \
                                  THEN 0 ELSE 1 END), 0) AS from_other_batches \
         FROM src WHERE {time} >= $window_start AND {time} < $window_end \
         GROUP BY region ORDER BY region"
    ))
    .source("src", &p.source, Some(&p.time_column))
    .bind(
        "window_start",
        QueryParam::TimestampMicros(from.as_microsecond()),
    )
    .bind("window_end", QueryParam::TimestampMicros(to.as_microsecond()))
    .execute(ctx)
    .await?;
    to_output(&Counted::new(from, to, region_rows(rows, what)?, None))
}

/// The anti-pattern as it is usually written: `now() - timedelta(hours=24)`. "Now" is an input
/// here (the interval's end plus `ran_late_minutes`), where a real job would read the clock.
async fn naive_last_24h(ctx: TaskContext) -> Result<Value, TaskError> {
    let late: i64 = ctx.param("ran_late_minutes")?;
    let now = ctx
        .data_interval
        .end
        .checked_add(SignedDuration::from_mins(late))
        .map_err(|e| TaskError::fatal(format!("--conf ran_late_minutes={late}: {e}")))?;
    let from = now
        .checked_sub(SignedDuration::from_hours(24))
        .map_err(|e| TaskError::fatal(format!("the window before {now}: {e}")))?;
    count_window(ctx, NAIVE_LAST_24H, from, now).await
}

/// The other classic: the day starts at local midnight (right) and lasts 24 hours (wrong twice a
/// year in a zone with DST).
async fn naive_midnight_plus_24h(ctx: TaskContext) -> Result<Value, TaskError> {
    let day = ctx.logical_date.to_zoned(ctx.zone.clone()).date();
    let midnight = day
        .to_zoned(ctx.zone.clone())
        .map_err(|e| TaskError::fatal(format!("midnight of {day}: {e}")))?
        .timestamp();
    let end = midnight
        .checked_add(SignedDuration::from_hours(24))
        .map_err(|e| TaskError::fatal(format!("24 hours after {midnight}: {e}")))?;
    count_window(ctx, NAIVE_MIDNIGHT_PLUS_24H, midnight, end).await
}

/// The batch is the data interval, bound as `$data_interval_start`/`$data_interval_end`; the
/// window functions run over exactly its rows. The result (one row per order, with its place
/// in its region's day) is committed to `dt=`; the per-region totals and last running totals
/// are read back from it.
async fn exact_interval(ctx: TaskContext) -> Result<Value, TaskError> {
    let p = window_params(&ctx).await?;
    let time = identifier("time_column", &p.time_column)?;
    let (from, to) = (ctx.data_interval.start, ctx.data_interval.end);
    let by_time = "PARTITION BY region ORDER BY event_time, order_id";
    let written = Sql::new(format!(
        "SELECT order_id, region, event_time, amount_cents, \
                CAST(ROW_NUMBER() OVER ({by_time}) AS BIGINT) AS seq_in_region, \
                SUM(amount_cents) OVER ({by_time} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) \
                    AS running_total_cents, \
                CAST(RANK() OVER (PARTITION BY region ORDER BY amount_cents DESC) AS BIGINT) \
                    AS amount_rank, \
                $ds AS dt \
         FROM ( \
             SELECT order_id, coalesce(arrow_cast(region, 'Utf8'), '(null)') AS region, \
                    {time} AS event_time, {CENTS} AS amount_cents \
             FROM src WHERE {time} >= $data_interval_start AND {time} < $data_interval_end \
         ) AS in_interval"
    ))
    .source("src", &p.source, Some(&p.time_column))
    .into_dataset(&p.output, &["dt"])
    .execute(ctx.clone())
    .await?;
    let written: SqlOutput = serde_json::from_value(written)
        .map_err(|e| TaskError::fatal(format!("the sql output of `{EXACT_INTERVAL}`: {e}")))?;
    let rows = if written.rows == 0 {
        Vec::new()
    } else {
        let totals = Sql::new(
            "SELECT coalesce(arrow_cast(region, 'Utf8'), '(null)') AS region, count(*) AS orders, \
                    coalesce(sum(amount_cents), 0) AS amount_cents, \
                    last_value(running_total_cents ORDER BY seq_in_region) AS last_running_total_cents \
             FROM exact WHERE dt = $ds GROUP BY region ORDER BY region",
        )
        .table("exact", &written.dataset)
        .execute(ctx)
        .await?;
        region_rows(totals, EXACT_INTERVAL)?
    };
    to_output(&Counted::new(from, to, rows, Some(written.dataset)))
}

/// One approach judged against the batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Judged {
    pub window_start: Timestamp,
    pub window_end: Timestamp,
    pub hours: f64,
    pub orders: u64,
    pub amount_cents: i64,
    /// Rows it counted that belong to another batch.
    pub from_other_batches: u64,
    /// Rows of this batch it did not count.
    pub missed: u64,
    /// `orders` minus the batch's orders.
    pub orders_off_by: i64,
    /// `amount_cents` minus the batch's revenue.
    pub amount_cents_off_by: i64,
    /// Exactly the batch's rows.
    pub correct: bool,
    pub by_region: BTreeMap<String, RegionTotals>,
}

/// `compare`'s output: one batch, three approaches.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// The batch's local day.
    pub day: Date,
    pub interval_start: Timestamp,
    pub interval_end: Timestamp,
    /// 24, or 23 / 25 on DST days.
    pub interval_hours: f64,
    pub exact_interval: Judged,
    pub naive_last_24h: Judged,
    pub naive_midnight_plus_24h: Judged,
}

fn judge(c: &Counted, batch: &Counted) -> Judged {
    let own = c.orders.saturating_sub(c.from_other_batches);
    Judged {
        window_start: c.window_start,
        window_end: c.window_end,
        hours: c.hours,
        orders: c.orders,
        amount_cents: c.amount_cents,
        from_other_batches: c.from_other_batches,
        missed: batch.orders.saturating_sub(own),
        orders_off_by: c.orders as i64 - batch.orders as i64,
        amount_cents_off_by: c.amount_cents - batch.amount_cents,
        correct: c.from_other_batches == 0
            && c.orders == batch.orders
            && c.amount_cents == batch.amount_cents,
        by_region: c.by_region.clone(),
    }
}

async fn compare(ctx: TaskContext) -> Result<Value, TaskError> {
    let exact: Counted = ctx.input(EXACT_INTERVAL).await?;
    let last_24h: Counted = ctx.input(NAIVE_LAST_24H).await?;
    let midnight: Counted = ctx.input(NAIVE_MIDNIGHT_PLUS_24H).await?;
    let comparison = Comparison {
        day: ctx.logical_date.to_zoned(ctx.zone.clone()).date(),
        interval_start: ctx.data_interval.start,
        interval_end: ctx.data_interval.end,
        interval_hours: exact.hours,
        exact_interval: judge(&exact, &exact),
        naive_last_24h: judge(&last_24h, &exact),
        naive_midnight_plus_24h: judge(&midnight, &exact),
    };
    for (name, j) in [
        (EXACT_INTERVAL, &comparison.exact_interval),
        (NAIVE_LAST_24H, &comparison.naive_last_24h),
        (NAIVE_MIDNIGHT_PLUS_24H, &comparison.naive_midnight_plus_24h),
    ] {
        tracing::info!(
            approach = name,
            orders = j.orders,
            from_other_batches = j.from_other_batches,
            missed = j.missed,
            amount_cents_off_by = j.amount_cents_off_by,
            correct = j.correct,
            "compared"
        );
    }
    to_output(&comparison)
}
