//! 110.1.3 Weekly batch aggregation — `110_01_03_weekly_batch_aggregation`.
//!
//! What it demonstrates:
//! - **Aggregate daily data weekly**: reads the seven `dt=` partitions the daily DAG
//!   (`110_01_01_daily_batch_processing`) committed, not the raw source again.
//! - **Handle week boundary logic**: ISO weeks, Monday 00:00 to Monday 00:00 in the zone
//!   (`0 0 * * 1`, not Airflow's Sunday-based `@weekly`); the partition is `wk=YYYY-Www` with the
//!   ISO week-year, so 2026-12-28..2027-01-03 is `wk=2026-W53`; a DST week has 167 or 169 hours
//!   and still exactly seven days.
//! - **Implement weekly rollups**: one `sql` operator query per week — per group
//!   (`--conf group_by=region`): orders, the sum of `--conf measure=amount` as an exact decimal,
//!   distinct customers, and days with data — committed to `OUTPUT/wk=YYYY-Www` atomically (a
//!   re-run replaces it), the week's bounds bound as query parameters.
//! - **Coordinate with daily DAGs**: `wait_for_daily` is the `wait_for` sensor over the daily
//!   DAG's dataset: it succeeds only when the `dt=` partitions of all seven days of the week are
//!   committed (a manifest in the store and the folder on disk). Until then it pokes every 5
//!   minutes in `reschedule` mode — giving its slot back between pokes, waiting in
//!   `up_for_reschedule` — and after an hour fails naming the missing days. The week is never
//!   aggregated from six days.
//!
//! Run it after the daily backfill: `weir dags run 110_01_03_weekly_batch_aggregation
//! --logical-date 2026-03-02` (params: `daily_output=DIR`, `output=DIR`, `group_by`, `measure`).

use std::path::Path;
use std::sync::Arc;

use jiff::civil::Date;
use serde_json::Value;
use weir_core::ParamSpec;
use weir_core::timetable::{CronDataIntervalTimetable, parse_zone};
use weir_data::PartitionKey;
use weir_ops::{Operator, SensorMode, Sql, WaitFor, expand_path, identifier};
use weir_runtime::{DagDef, Task, TaskContext, TaskError};

use weir_ops::load::output_dir;

use crate::p110::daily_batch_processing;

pub const DAG_ID: &str = "110_01_03_weekly_batch_aggregation";

pub fn dag() -> DagDef {
    let tz = parse_zone(daily_batch_processing::ZONE).expect("a known zone");
    let schedule = CronDataIntervalTimetable::new("0 0 * * 1", tz.clone()).expect("a valid cron");
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
        .param(
            ParamSpec::path(
                "daily_output",
                "dataset folder of the daily partitions to roll up (default: the daily DAG's)",
            )
            .default(DAILY_OUTPUT),
        )
        .param(ParamSpec::text("group_by", "column to group the week by").default("region"))
        .param(ParamSpec::text("measure", "decimal column to sum").default("amount"))
        .task(
            weir_ops::task(
                "wait_for_daily",
                WaitFor {
                    // No `partitions`: the `dt=` of every local day of the week.
                    poke_interval: "5m".to_owned(),
                    timeout: "1h".to_owned(),
                    mode: SensorMode::Reschedule,
                    ..WaitFor::new(DAILY_DATASET)
                },
            )
            .doc("Sensor: all seven daily partitions of the week are committed"),
        )
        .task(
            Task::new("aggregate_week")
                .after(["wait_for_daily"])
                .retries(1)
                .run(aggregate_week),
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

/// Where the daily DAG commits its partitions, unless `--conf daily_output` says otherwise.
pub const DAILY_OUTPUT: &str = "{home}/data/110_01_01_daily_batch_processing";
/// The dataset the sensor and the rollup read: the `daily_output` param.
const DAILY_DATASET: &str = "{param:daily_output}";

/// The rollup is SQL over the committed daily partitions of the run's week (`dt` prunes to its
/// seven), committed to `wk=YYYY-Www` (ISO week-year and week of the Monday).
async fn aggregate_week(ctx: TaskContext) -> Result<Value, TaskError> {
    let group_by: String = ctx.param("group_by")?;
    let measure: String = ctx.param("measure")?;
    let (g, m) = (
        identifier("group_by", &group_by)?,
        identifier("measure", &measure)?,
    );
    let m_sum = identifier("measure", &format!("{measure}_sum"))?;
    let query = format!(
        "SELECT to_char(to_date($ds), '%G-W%V') AS week, to_char(to_date($ds), '%G-W%V') AS wk, \
                arrow_cast({g}, 'Utf8') AS {g}, count(*) AS orders, arrow_cast(sum({m}), 'Decimal128(38, 2)') AS {m_sum}, \
                count(DISTINCT customer_id) AS customers, \
                CAST(count(DISTINCT dt) AS INT UNSIGNED) AS days_with_data \
         FROM daily WHERE dt >= $data_interval_start_ds AND dt < $data_interval_end_ds \
         GROUP BY {g} ORDER BY {g}"
    );
    Sql::new(query)
        .table("daily", expand_path(&ctx, Path::new(DAILY_DATASET)))
        .into_dataset(output_dir(&ctx)?, &["wk"])
        .execute(ctx)
        .await
}
