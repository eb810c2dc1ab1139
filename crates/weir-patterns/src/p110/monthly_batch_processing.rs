//! 110.1.4 Monthly batch processing — `110_01_04_monthly_batch_processing`.
//!
//! What it demonstrates:
//! - **Process a full month of data**: an `@monthly` window schedule in the DAG's zone
//!   (America/New_York; `--conf tz` overrides); the run for March covers March 1 00:00 to April 1
//!   00:00 local and is due when the month is over.
//! - **Handle variable month lengths**: the window comes from the calendar, never "30 days": 28,
//!   29, 30 or 31 days, and 743 or 745 hours in the months with a DST change. The run reports
//!   `days_in_month` and per-day row counts.
//! - **Implement month-end processing**: `load_month` is the `load_window` operator with a
//!   month granularity: it commits `OUTPUT/mo=YYYY-MM`, then one `sql` query counts the rows of
//!   each local day of the committed month (`local_date(event_time, $tz)`, the same zone rules
//!   as `dt=` partitions). `close_month` is a `sql` query too: the month's close record (orders,
//!   calendar days, first and last day with data) committed to `OUTPUT_close/mo=YYYY-MM`.
//! - **Add month-close dependencies**: `check_month_complete` gates the close: every calendar day
//!   of the month must have data, otherwise it fails naming the empty days and `close_month`
//!   (all_success) ends `upstream_failed` — a month is never closed on partial data.
//!
//! Run it: `weir dags run 110_01_04_monthly_batch_processing --logical-date 2026-03-01`.

use std::collections::BTreeMap;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weir_core::timetable::{parse_zone, window_schedule};
use weir_data::partitioners::Granularity;
use weir_ops::load::{Loaded, output_dir, sibling_dir, window_param_specs};
use weir_ops::{LoadWindow, Operator, Sql, identifier};
use weir_runtime::{DagDef, Task, TaskContext, TaskError};

pub const DAG_ID: &str = "110_01_04_monthly_batch_processing";
pub const ZONE: &str = "America/New_York";

pub fn dag() -> DagDef {
    let tz = parse_zone(ZONE).expect("a known zone");
    DagDef::builder(DAG_ID)
        .description(
            "Load each calendar month into mo=YYYY-MM and close it once every day has data",
        )
        .tags(["110.1", "batch-window", "intermediate"])
        .schedule(window_schedule("@monthly", tz.clone()).expect("a valid schedule"))
        .start_date(
            jiff::civil::date(2026, 3, 1)
                .to_zoned(tz.clone())
                .expect("valid")
                .timestamp(),
        )
        .catchup(false)
        .max_active_runs(1)
        .params(window_param_specs())
        .task(Task::new("load_month").retries(2).run(load_month))
        .task(
            Task::new("check_month_complete")
                .after(["load_month"])
                .run(check_month_complete),
        )
        .task(
            Task::new("close_month")
                .after(["load_month", "check_month_complete"])
                .run(close_month),
        )
        .build()
        .expect("a valid DAG")
}

/// The month of the run, `YYYY-MM`, as SQL: the logical date is the month's first local day.
const MONTH: &str = "to_char(to_date($ds), '%Y-%m')";

/// The output of `load_month`: what landed and the rows of each local day.
#[derive(Debug, Serialize, Deserialize)]
struct LoadedMonth {
    #[serde(flatten)]
    loaded: Loaded,
    /// `YYYY-MM`.
    month: String,
    days_in_month: u32,
    hours_in_month: i64,
    per_day: BTreeMap<Date, u64>,
}

/// One row of the per-day count.
#[derive(Debug, Deserialize)]
struct DayRows {
    day: Date,
    rows: u64,
}

async fn load_month(ctx: TaskContext) -> Result<Value, TaskError> {
    // The data interval is the calendar month on the wall clock of the run's zone.
    let (from, to) = (ctx.data_interval.start, ctx.data_interval.end);
    let first = from.to_zoned(ctx.zone.clone()).date().first_of_month();
    let loaded: Loaded = serde_json::from_value(
        LoadWindow::by_date(Granularity::Month)
            .execute(ctx.clone())
            .await?,
    )
    .map_err(|e| TaskError::fatal(format!("the load_window output: {e}")))?;
    let time = identifier("time_column", &ctx.param::<String>("time_column")?)?;
    let days = Sql::new(format!(
        "SELECT arrow_cast(local_date({time}, $tz), 'Utf8') AS day, count(*) AS rows \
         FROM month WHERE mo = {MONTH} GROUP BY day ORDER BY day"
    ))
    .table("month", output_dir(&ctx)?)
    .execute(ctx.clone())
    .await?;
    let days: Vec<DayRows> = serde_json::from_value(days)
        .map_err(|e| TaskError::fatal(format!("the per-day counts: {e}")))?;
    let month = LoadedMonth {
        loaded,
        month: format!("{:04}-{:02}", first.year(), first.month()),
        days_in_month: first.days_in_month() as u32,
        hours_in_month: to.duration_since(from).as_hours(),
        per_day: days.into_iter().map(|d| (d.day, d.rows)).collect(),
    };
    Ok(serde_json::to_value(month).expect("a month serializes"))
}

async fn check_month_complete(ctx: TaskContext) -> Result<Value, TaskError> {
    let loaded: LoadedMonth = ctx.input("load_month").await?;
    let month = loaded.month;
    let first: Date = format!("{month}-01")
        .parse()
        .map_err(|e| TaskError::fatal(format!("month `{month}`: {e}")))?;
    let empty: Vec<String> = (0..first.days_in_month())
        .map(|i| {
            first
                .checked_add(jiff::Span::new().days(i))
                .expect("in month")
        })
        .filter(|d| loaded.per_day.get(d).copied().unwrap_or(0) == 0)
        .map(|d| d.to_string())
        .collect();
    if !empty.is_empty() {
        return Err(TaskError::fatal(format!(
            "month {month} cannot close: {} of {} days have no data ({}); load those days and run the month again",
            empty.len(),
            first.days_in_month(),
            empty.join(", ")
        )));
    }
    Ok(json!({"month": month, "complete": true, "days": first.days_in_month()}))
}

/// The close record is one `sql` query over the committed month: orders, the calendar's days
/// (the day before the next month's first), and the first and last local day with data,
/// committed to `OUTPUT_close/mo=YYYY-MM` (a re-run replaces it).
async fn close_month(ctx: TaskContext) -> Result<Value, TaskError> {
    let time = identifier("time_column", &ctx.param::<String>("time_column")?)?;
    let day = format!("local_date({time}, $tz)");
    Sql::new(format!(
        "SELECT {MONTH} AS month, {MONTH} AS mo, \
                CAST(date_part('day', to_date($ds) + INTERVAL '1 month' - INTERVAL '1 day') AS INT UNSIGNED) AS days_in_month, \
                count(*) AS orders, \
                arrow_cast(min({day}), 'Utf8') AS first_day, arrow_cast(max({day}), 'Utf8') AS last_day \
         FROM month WHERE mo = {MONTH}"
    ))
    .table("month", output_dir(&ctx)?)
    .into_dataset(sibling_dir(&ctx, "_close")?, &["mo"])
    .execute(ctx)
    .await
}
