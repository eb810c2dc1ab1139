//! 110.1.5 Custom batch windows — `110_01_05_custom_batch_windows`.
//!
//! What it demonstrates:
//! - **Define custom batch periods**: business shifts in Europe/London — on weekdays three
//!   8-hour shifts starting 06:00, 14:00 and 22:00; the weekend is one window from Saturday 06:00
//!   to Monday 06:00.
//! - **Use custom timetables**: [`ShiftTimetable`] implements weir's `Timetable` trait (the
//!   equivalent of an Airflow timetable plugin): next run after the last automated interval
//!   within the start/end dates and catchup, and the interval of a manual run.
//! - **Handle irregular intervals**: windows are 8 or 48 hours, and on the DST weekends 47 or 49;
//!   each run loads exactly its window into `OUTPUT/dt=YYYY-MM-DD/shift=HHMM` (local start) with
//!   the `load_window` operator (an interval layout: one partition per run).
//! - **Implement sliding windows**: `sliding_window` is one `sql` query over the source file:
//!   the trailing `--conf slide_hours` (default 24) hours ending at the run's interval end, per
//!   region, committed to `OUTPUT_sliding/window_end=YYYY-MM-DDTHHMM`: windows overlap, so a row
//!   counts in every window that covers it, and re-running one replaces only that window.
//!
//! Run it: `weir dags backfill 110_01_05_custom_batch_windows --from 2026-03-06 --to 2026-03-09`.

use std::sync::Arc;

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use weir_core::timetable::parse_zone;
use weir_core::{DagRunInfo, DataInterval, ParamSpec, TimeRestriction, Timetable};
use weir_ops::load::{sibling_dir, window_param_specs, window_params};
use weir_ops::{LoadWindow, Operator, PartitionBy, QueryParam, Sql, identifier};
use weir_runtime::{DagDef, Task, TaskContext, TaskError};

pub const DAG_ID: &str = "110_01_05_custom_batch_windows";
pub const ZONE: &str = "Europe/London";

/// Business shifts: weekdays at 06:00, 14:00 and 22:00; Saturday 06:00 opens the weekend window,
/// which runs to Monday 06:00.
#[derive(Debug, Clone)]
pub struct ShiftTimetable {
    tz: TimeZone,
}

impl ShiftTimetable {
    pub fn new(tz: TimeZone) -> Self {
        ShiftTimetable { tz }
    }

    fn starts_on(day: Date) -> &'static [i8] {
        match day.weekday() {
            Weekday::Monday
            | Weekday::Tuesday
            | Weekday::Wednesday
            | Weekday::Thursday
            | Weekday::Friday => &[6, 14, 22],
            Weekday::Saturday => &[6],
            Weekday::Sunday => &[],
        }
    }

    fn boundary(&self, day: Date, hour: i8) -> Timestamp {
        day.at(hour, 0, 0, 0)
            .to_zoned(self.tz.clone())
            .expect("shift start in range")
            .timestamp()
    }

    /// The first shift start at or after `t` (strictly after when `strict`).
    fn next_start(&self, t: Timestamp, strict: bool) -> Timestamp {
        let mut day = t
            .to_zoned(self.tz.clone())
            .date()
            .yesterday()
            .expect("in range");
        loop {
            for &h in Self::starts_on(day) {
                let b = self.boundary(day, h);
                if b > t || (!strict && b == t) {
                    return b;
                }
            }
            day = day.tomorrow().expect("in range");
        }
    }

    /// The last shift start at or before `t` (strictly before when `strict`).
    fn prev_start(&self, t: Timestamp, strict: bool) -> Timestamp {
        let mut day = t
            .to_zoned(self.tz.clone())
            .date()
            .tomorrow()
            .expect("in range");
        loop {
            for &h in Self::starts_on(day).iter().rev() {
                let b = self.boundary(day, h);
                if b < t || (!strict && b == t) {
                    return b;
                }
            }
            day = day.yesterday().expect("in range");
        }
    }
}

impl Timetable for ShiftTimetable {
    fn next_dagrun_info(
        &self,
        last_automated: Option<&DataInterval>,
        restriction: &TimeRestriction,
        now: Timestamp,
    ) -> Option<DagRunInfo> {
        let mut start = match (last_automated, restriction.earliest) {
            (Some(last), _) => last.end,
            (None, Some(earliest)) => self.next_start(earliest, false),
            (None, None) => self.prev_start(self.prev_start(now, false), true),
        };
        if let Some(earliest) = restriction.earliest {
            start = start.max(self.next_start(earliest, false));
        }
        if !restriction.catchup {
            // The latest window that has already ended.
            start = start.max(self.prev_start(self.prev_start(now, false), true));
        }
        if restriction.latest.is_some_and(|latest| start > latest) {
            return None;
        }
        Some(DagRunInfo::interval(start, self.next_start(start, true)))
    }

    fn infer_manual_data_interval(&self, run_after: Timestamp) -> DataInterval {
        let end = self.prev_start(run_after, false);
        DataInterval::new(self.prev_start(end, true), end)
    }

    fn summary(&self) -> String {
        format!(
            "shifts 06:00/14:00/22:00 Mon-Fri, weekend Sat 06:00-Mon 06:00 ({})",
            self.tz.iana_name().unwrap_or("?")
        )
    }

    fn time_zone(&self) -> TimeZone {
        self.tz.clone()
    }
}

pub fn dag() -> DagDef {
    let tz = parse_zone(ZONE).expect("a known zone");
    DagDef::builder(DAG_ID)
        .description("Irregular business-shift windows from a custom timetable, plus a trailing sliding window")
        .tags(["110.1", "batch-window", "intermediate"])
        .schedule(Arc::new(ShiftTimetable::new(tz.clone())))
        .start_date(jiff::civil::date(2026, 3, 2).at(6, 0, 0, 0).to_zoned(tz.clone()).expect("valid").timestamp())
        .catchup(false)
        .max_active_runs(3)
        .params(window_param_specs())
        .param(ParamSpec::integer("slide_hours", 1, 24 * 366, "length of the trailing sliding window").default(24))
        .task(Task::new("load_shift").retries(2).run(load_shift))
        .task(Task::new("sliding_window").retries(2).run(sliding_window))
        .build()
        .expect("a valid DAG")
}

/// The run's shift, whole, in `dt=/shift=`: `load_window` with an interval layout, plus the
/// window's length in hours (8, or 47 to 49 for a weekend).
async fn load_shift(ctx: TaskContext) -> Result<Value, TaskError> {
    let (from, to) = (ctx.data_interval.start, ctx.data_interval.end);
    let mut out = LoadWindow::new(PartitionBy::Interval {
        name: "shift".to_owned(),
    })
    .execute(ctx)
    .await?;
    out["window_hours"] = json!(to.duration_since(from).as_secs_f64() / 3600.0);
    Ok(out)
}

/// The trailing window is SQL over the source file (its time column parsed as `load_window`
/// parses it), the window's bounds bound as parameters; the result replaces
/// `window_end=YYYY-MM-DDTHHMM`, and a second query reads the window's total back.
async fn sliding_window(ctx: TaskContext) -> Result<Value, TaskError> {
    let p = window_params(&ctx).await?;
    let hours: i64 = ctx.param("slide_hours")?;
    let end = ctx.data_interval.end;
    let start = end
        .saturating_sub(SignedDuration::from_hours(hours))
        .map_err(|e| TaskError::fatal(e.to_string()))?;
    let local_end = end.to_zoned(ctx.zone.clone());
    let window_end = format!(
        "{}T{:02}{:02}",
        local_end.date(),
        local_end.hour(),
        local_end.minute()
    );
    let time = identifier("time_column", &p.time_column)?;
    let dir = sibling_dir(&ctx, "_sliding")?;
    Sql::new(format!(
        "SELECT coalesce(arrow_cast(region, 'Utf8'), '(null)') AS region, count(*) AS orders, \
                $window_end AS window_end \
         FROM src WHERE {time} >= $window_start AND {time} < $data_interval_end \
         GROUP BY region ORDER BY region"
    ))
    .source("src", &p.source, Some(&p.time_column))
    .bind(
        "window_start",
        QueryParam::TimestampMicros(start.as_microsecond()),
    )
    .bind("window_end", QueryParam::Text(window_end.clone()))
    .into_dataset(&dir, &["window_end"])
    .execute(ctx.clone())
    .await?;
    let total =
        Sql::new("SELECT region, orders FROM w WHERE window_end = $window_end ORDER BY region")
            .table("w", &dir)
            .bind("window_end", QueryParam::Text(window_end))
            .execute(ctx)
            .await?;
    let rows: Vec<RegionOrders> = serde_json::from_value(total)
        .map_err(|e| TaskError::fatal(format!("reading the window back: {e}")))?;
    let orders: u64 = rows.iter().map(|r| r.orders).sum();
    let by_region: std::collections::BTreeMap<String, u64> =
        rows.into_iter().map(|r| (r.region, r.orders)).collect();
    Ok(json!({
        "window_start": start.to_string(),
        "window_end": end.to_string(),
        "hours": hours,
        "orders": orders,
        "by_region": by_region,
        "dataset": dir,
    }))
}

/// One row of a sliding window, as read back.
#[derive(Debug, serde::Deserialize)]
struct RegionOrders {
    region: String,
    orders: u64,
}
