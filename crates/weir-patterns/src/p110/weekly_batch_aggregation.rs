//! 110.1.3 Weekly batch aggregation — `110_01_03_weekly_batch_aggregation`.
//!
//! What it demonstrates:
//! - **Aggregate daily data weekly**: reads the seven `dt=` partitions the daily DAG
//!   (`110_01_01_daily_batch_processing`) committed, not the raw source again.
//! - **Handle week boundary logic**: ISO weeks, Monday 00:00 to Monday 00:00 in the zone
//!   (`0 0 * * 1`, not Airflow's Sunday-based `@weekly`); the partition is `wk=YYYY-Www` with the
//!   ISO week-year, so 2026-12-28..2027-01-03 is `wk=2026-W53`; a DST week has 167 or 169 hours
//!   and still exactly seven days.
//! - **Implement weekly rollups**: per group (`--conf group_by=region`): orders, the sum of
//!   `--conf measure=amount` as an exact decimal, distinct customers, and days with data, written
//!   to `OUTPUT/wk=YYYY-Www` by an atomic commit (a re-run replaces it).
//! - **Coordinate with daily DAGs**: `wait_for_daily` is a sensor: it succeeds only when all seven
//!   daily partitions are committed (a manifest in the store and the folder on disk) and otherwise
//!   retries every 5 minutes for an hour, then fails naming the missing days. The week is never
//!   aggregated from six days.
//!
//! Run it after the daily backfill: `weir dags run 110_01_03_weekly_batch_aggregation
//! --logical-date 2026-03-02` (params: `daily_output=DIR`, `output=DIR`, `group_by`, `measure`).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Decimal128Array, Int64Array, StringArray, UInt32Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use jiff::SignedDuration;
use jiff::civil::Date;
use serde_json::{Value, json};
use weir_core::ParamSpec;
use weir_core::timetable::{CronDataIntervalTimetable, parse_zone};
use weir_data::{DataError, Dataset, PartitionKey, WriteOptions};
use weir_runtime::{DagDef, Task, TaskContext, TaskError};

use crate::common::{Loaded, blocking, dataset_name, output_dir, record_commits};
use crate::p110::daily_batch_processing;

pub const DAG_ID: &str = "110_01_03_weekly_batch_aggregation";

pub fn dag() -> DagDef {
    let tz = parse_zone(daily_batch_processing::ZONE).expect("a known zone");
    let schedule = CronDataIntervalTimetable::new("0 0 * * 1", tz.clone()).expect("a valid cron");
    let tz_wait = tz.clone();
    DagDef::builder(DAG_ID)
        .description("Roll seven committed daily partitions up into an ISO-week partition")
        .tags(["110.1", "batch-window", "intermediate"])
        .schedule(Arc::new(schedule))
        .start_date(
            jiff::civil::date(2026, 3, 2)
                .to_zoned(tz.clone())
                .expect("valid")
                .timestamp(),
        )
        .catchup(false)
        .max_active_runs(2)
        .param(ParamSpec::path(
            "output",
            "dataset folder of the weekly rollups (default: HOME/data/DAG_ID)",
        ))
        .param(ParamSpec::path(
            "daily_output",
            "dataset folder of the daily partitions to roll up (default: the daily DAG's)",
        ))
        .param(ParamSpec::text("group_by", "column to group the week by").default("region"))
        .param(ParamSpec::text("measure", "decimal column to sum").default("amount"))
        .task(
            Task::new("wait_for_daily")
                .doc("Sensor: all seven daily partitions of the week are committed")
                .retries(12)
                .retry_delay(SignedDuration::from_mins(5))
                .run(move |ctx| wait_for_daily(ctx, tz_wait.clone())),
        )
        .task(
            Task::new("aggregate_week")
                .after(["wait_for_daily"])
                .retries(1)
                .run(move |ctx| aggregate_week(ctx, tz.clone())),
        )
        .build()
        .expect("a valid DAG")
}

/// The seven local dates of the ISO week a run covers, Monday first.
pub fn week_days(ctx: &TaskContext, tz: &jiff::tz::TimeZone) -> Vec<Date> {
    let monday = ctx.logical_date.to_zoned(tz.clone()).date();
    (0..7)
        .map(|i| {
            monday
                .checked_add(jiff::Span::new().days(i))
                .expect("in range")
        })
        .collect()
}

/// `wk=YYYY-Www` of the ISO week containing `day`.
pub fn week_key(day: Date) -> PartitionKey {
    let iso = day.iso_week_date();
    PartitionKey::new([("wk", format!("{:04}-W{:02}", iso.year(), iso.week()))])
        .expect("a valid key")
}

fn daily_dir(ctx: &TaskContext) -> Result<PathBuf, TaskError> {
    Ok(ctx
        .param_opt::<PathBuf>("daily_output")?
        .unwrap_or_else(|| ctx.home().join("data").join(daily_batch_processing::DAG_ID)))
}

async fn wait_for_daily(ctx: TaskContext, tz: jiff::tz::TimeZone) -> Result<Value, TaskError> {
    let dir = daily_dir(&ctx)?;
    let committed: HashSet<String> = ctx
        .store()
        .manifests(&dataset_name(&dir))
        .await?
        .into_iter()
        .map(|m| m.partition)
        .collect();
    let days = week_days(&ctx, &tz);
    let missing: Vec<String> = days
        .iter()
        .map(|d| PartitionKey::date(*d).to_path_string())
        .filter(|p| !committed.contains(p) || !dir.join(p).is_dir())
        .collect();
    if !missing.is_empty() {
        return Err(TaskError::retryable(format!(
            "waiting for the daily DAG: {} of 7 daily partitions are not committed in {} ({}); run `weir dags backfill {}` for those days",
            missing.len(),
            dir.display(),
            missing.join(", "),
            daily_batch_processing::DAG_ID
        )));
    }
    Ok(json!({"days": days.iter().map(|d| d.to_string()).collect::<Vec<_>>()}))
}

#[derive(Default)]
struct Group {
    orders: i64,
    measure: i128,
    customers: HashSet<i64>,
    days: BTreeSet<Date>,
}

async fn aggregate_week(ctx: TaskContext, tz: jiff::tz::TimeZone) -> Result<Value, TaskError> {
    let days = week_days(&ctx, &tz);
    let daily = daily_dir(&ctx)?;
    let output = output_dir(&ctx)?;
    let group_by: String = ctx.param("group_by")?;
    let measure: String = ctx.param("measure")?;
    let key = week_key(days[0]);
    let out = output.clone();
    let (loaded, groups) = blocking(move || {
        let source = Dataset::open(&daily)?;
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        for day in &days {
            for batch in source.read_partition(&PartitionKey::date(*day))? {
                accumulate(&batch, &group_by, &measure, *day, &mut groups)?;
            }
        }
        let week = key.get("wk").unwrap_or_default().to_owned();
        let schema = Arc::new(Schema::new(vec![
            Field::new("week", DataType::Utf8, false),
            Field::new(group_by.as_str(), DataType::Utf8, false),
            Field::new("orders", DataType::Int64, false),
            Field::new(format!("{measure}_sum"), DataType::Decimal128(38, 2), false),
            Field::new("customers", DataType::Int64, false),
            Field::new("days_with_data", DataType::UInt32, false),
        ]));
        let n = groups.len();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![week.as_str(); n])),
            Arc::new(StringArray::from(
                groups.keys().map(String::as_str).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                groups.values().map(|g| g.orders).collect::<Vec<_>>(),
            )),
            Arc::new(
                Decimal128Array::from(groups.values().map(|g| g.measure).collect::<Vec<_>>())
                    .with_precision_and_scale(38, 2)
                    .map_err(|e| DataError::arrow("building the rollup", e))?,
            ),
            Arc::new(Int64Array::from(
                groups
                    .values()
                    .map(|g| g.customers.len() as i64)
                    .collect::<Vec<_>>(),
            )),
            Arc::new(UInt32Array::from(
                groups
                    .values()
                    .map(|g| g.days.len() as u32)
                    .collect::<Vec<_>>(),
            )),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| DataError::arrow("building the rollup", e))?;
        let commit = Dataset::open(&out)?.write_partition(
            &key,
            schema,
            [&batch],
            WriteOptions::default(),
        )?;
        let summary: BTreeMap<String, i64> =
            groups.iter().map(|(k, g)| (k.clone(), g.orders)).collect();
        Ok((Loaded::new(vec![commit.clone()], commit.rows, 0), summary))
    })
    .await?;
    record_commits(&ctx, &output, &loaded).await?;
    let mut result = loaded.to_json();
    result["orders_by_group"] = json!(groups);
    Ok(result)
}

fn accumulate(
    batch: &RecordBatch,
    group_by: &str,
    measure: &str,
    day: Date,
    groups: &mut BTreeMap<String, Group>,
) -> Result<(), DataError> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .cloned()
            .ok_or_else(|| DataError::MissingColumn {
                column: name.to_owned(),
                place: format!("the daily partition of {day}"),
                available: batch
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect(),
            })
    };
    let keys = cast(&column(group_by)?, &DataType::Utf8)
        .map_err(|e| DataError::arrow("reading the group column", e))?;
    let keys = keys
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("cast to Utf8");
    let values = cast(&column(measure)?, &DataType::Decimal128(38, 2))
        .map_err(|e| DataError::arrow("reading the measure as a decimal", e))?;
    let values = values
        .as_any()
        .downcast_ref::<Decimal128Array>()
        .expect("cast to Decimal128");
    let customers = match batch.column_by_name("customer_id") {
        Some(c) => Some(
            cast(c, &DataType::Int64).map_err(|e| DataError::arrow("reading customer_id", e))?,
        ),
        None => None,
    };
    let customers = customers
        .as_ref()
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>().cloned());
    for row in 0..batch.num_rows() {
        let key = if keys.is_null(row) {
            "(null)".to_owned()
        } else {
            keys.value(row).to_owned()
        };
        let g = groups.entry(key).or_default();
        g.orders += 1;
        if !values.is_null(row) {
            g.measure += values.value(row);
        }
        if let Some(c) = &customers {
            if !c.is_null(row) {
                g.customers.insert(c.value(row));
            }
        }
        g.days.insert(day);
    }
    Ok(())
}
