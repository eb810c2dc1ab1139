//! 110.1.4 Monthly batch processing — `110_01_04_monthly_batch_processing`.
//!
//! What it demonstrates:
//! - **Process a full month of data**: an `@monthly` window schedule in the DAG's zone
//!   (America/New_York; `--conf tz` overrides); the run for March covers March 1 00:00 to April 1
//!   00:00 local and is due when the month is over.
//! - **Handle variable month lengths**: the window comes from the calendar, never "30 days": 28,
//!   29, 30 or 31 days, and 743 or 745 hours in the months with a DST change. The run reports
//!   `days_in_month` and per-day row counts.
//! - **Implement month-end processing**: `load_month` commits `OUTPUT/mo=YYYY-MM`;
//!   `close_month` writes the month's close record (orders, days, first and last day with data)
//!   to `OUTPUT_close/mo=YYYY-MM`.
//! - **Add month-close dependencies**: `check_month_complete` gates the close: every calendar day
//!   of the month must have data, otherwise it fails naming the empty days and `close_month`
//!   (all_success) ends `upstream_failed` — a month is never closed on partial data.
//!
//! Run it: `weir dags run 110_01_04_monthly_batch_processing --logical-date 2026-03-01`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, Int64Array, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weir_core::timetable::{parse_zone, window_schedule};
use weir_data::{DataError, Dataset, PartitionKey, WriteOptions, local_date_keys};
use weir_runtime::{DagDef, Task, TaskContext, TaskError};

use weir_ops::blocking;
use weir_ops::load::{
    Loaded, load_window, output_dir, record_commits, window_param_specs, window_params,
};

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

/// `mo=YYYY-MM`.
pub fn month_key(first_day: Date) -> PartitionKey {
    PartitionKey::new([(
        "mo",
        format!("{:04}-{:02}", first_day.year(), first_day.month()),
    )])
    .expect("a valid key")
}

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

async fn load_month(ctx: TaskContext) -> Result<Value, TaskError> {
    let p = window_params(&ctx).await?;
    // The data interval is the calendar month on the wall clock of the run's zone.
    let (from, to) = (ctx.data_interval.start, ctx.data_interval.end);
    let first = from.to_zoned(p.tz.clone()).date().first_of_month();
    let days_in_month = first.days_in_month() as u32;
    let key = month_key(first);
    let per_day: Arc<Mutex<BTreeMap<Date, u64>>> = Arc::default();
    let (params, counts, tz, column) = (
        p.clone(),
        per_day.clone(),
        p.tz.clone(),
        p.time_column.clone(),
    );
    let loaded = blocking(move || {
        let k = key.clone();
        load_window(&params, from, to, std::slice::from_ref(&key), move |b| {
            let mut counts = counts.lock().expect("per-day counts");
            for day in local_date_keys(b, &column, &tz)? {
                *counts.entry(day).or_default() += 1;
            }
            Ok(vec![(k.clone(), b.clone())])
        })
    })
    .await?;
    record_commits(&ctx, &p.output, &loaded).await?;
    let per_day = per_day.lock().expect("per-day counts").clone();
    let month = LoadedMonth {
        loaded,
        month: format!("{:04}-{:02}", first.year(), first.month()),
        days_in_month,
        hours_in_month: to.duration_since(from).as_hours(),
        per_day,
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

async fn close_month(ctx: TaskContext) -> Result<Value, TaskError> {
    let loaded: LoadedMonth = ctx.input("load_month").await?;
    let month = loaded.month;
    let orders = loaded.loaded.rows as i64;
    let days = loaded.days_in_month;
    let day_text = |d: Option<&Date>| d.map(|d| d.to_string()).unwrap_or_default();
    let first_day = day_text(loaded.per_day.keys().next());
    let last_day = day_text(loaded.per_day.keys().next_back());
    let base = output_dir(&ctx)?;
    let close_dir = base.with_file_name(format!(
        "{}_close",
        base.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| DAG_ID.to_owned())
    ));
    let key =
        PartitionKey::new([("mo", month.clone())]).map_err(|e| TaskError::fatal(e.to_string()))?;
    let (dir, m) = (close_dir.clone(), month.clone());
    let commit = blocking(move || {
        let schema = Arc::new(Schema::new(vec![
            Field::new("month", DataType::Utf8, false),
            Field::new("days_in_month", DataType::UInt32, false),
            Field::new("orders", DataType::Int64, false),
            Field::new("first_day", DataType::Utf8, false),
            Field::new("last_day", DataType::Utf8, false),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![m.as_str()])),
            Arc::new(UInt32Array::from(vec![days])),
            Arc::new(Int64Array::from(vec![orders])),
            Arc::new(StringArray::from(vec![first_day.as_str()])),
            Arc::new(StringArray::from(vec![last_day.as_str()])),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| DataError::arrow("building the close record", e))?;
        Dataset::open(&dir)?.write_partition(&key, schema, [&batch], WriteOptions::default())
    })
    .await?;
    Ok(
        json!({"month": month, "orders": orders, "days_in_month": days, "closed": commit.partition, "close_dataset": close_dir}),
    )
}
