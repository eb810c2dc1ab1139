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
//!   each run loads exactly its window into `OUTPUT/dt=YYYY-MM-DD/shift=HHMM` (local start).
//! - **Implement sliding windows**: `sliding_window` aggregates the trailing
//!   `--conf slide_hours` (default 24) hours ending at the run's interval end, per region, into
//!   `OUTPUT_sliding/window_end=YYYY-MM-DDTHHMM`: windows overlap, so a row counts in every
//!   window that covers it, and re-running one replaces only that window.
//!
//! Run it: `weir dags backfill 110_01_05_custom_batch_windows --from 2026-03-06 --to 2026-03-09`.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use weir_core::timetable::parse_zone;
use weir_core::{DagRunInfo, DataInterval, ParamSpec, TimeRestriction, Timetable};
use weir_data::{DataError, Dataset, PartitionKey, ReadOptions, WriteOptions, open_source};
use weir_runtime::{DagDef, Task, TaskContext, TaskError};

use weir_ops::blocking;
use weir_ops::load::{
    WindowParams, load_window, output_dir, record_commits, window_param_specs, window_params,
};

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
    let tz_sliding = tz.clone();
    DagDef::builder(DAG_ID)
        .description("Irregular business-shift windows from a custom timetable, plus a trailing sliding window")
        .tags(["110.1", "batch-window", "intermediate"])
        .schedule(Arc::new(ShiftTimetable::new(tz.clone())))
        .start_date(jiff::civil::date(2026, 3, 2).at(6, 0, 0, 0).to_zoned(tz.clone()).expect("valid").timestamp())
        .catchup(false)
        .max_active_runs(3)
        .params(window_param_specs())
        .param(ParamSpec::integer("slide_hours", 1, 24 * 366, "length of the trailing sliding window").default(24))
        .task(Task::new("load_shift").retries(2).run(move |ctx| load_shift(ctx, tz.clone())))
        .task(Task::new("sliding_window").retries(2).run(move |ctx| sliding_window(ctx, tz_sliding.clone())))
        .build()
        .expect("a valid DAG")
}

/// `dt=YYYY-MM-DD/shift=HHMM` of a window starting at `start`.
pub fn shift_key(start: Timestamp, tz: &TimeZone) -> PartitionKey {
    let local = start.to_zoned(tz.clone());
    PartitionKey::new([
        ("dt", local.date().to_string()),
        ("shift", format!("{:02}{:02}", local.hour(), local.minute())),
    ])
    .expect("a valid key")
}

async fn load_shift(ctx: TaskContext, dag_tz: TimeZone) -> Result<Value, TaskError> {
    let p = window_params(&ctx).await?;
    let (from, to) = (ctx.data_interval.start, ctx.data_interval.end);
    let key = shift_key(from, &dag_tz);
    let params = p.clone();
    let loaded = blocking(move || {
        let k = key.clone();
        load_window(&params, from, to, std::slice::from_ref(&key), move |b| {
            Ok(vec![(k.clone(), b.clone())])
        })
    })
    .await?;
    record_commits(&ctx, &p.output, &loaded).await?;
    let mut out = loaded.to_json();
    out["window_hours"] = json!(to.duration_since(from).as_secs_f64() / 3600.0);
    Ok(out)
}

async fn sliding_window(ctx: TaskContext, dag_tz: TimeZone) -> Result<Value, TaskError> {
    let p: WindowParams = window_params(&ctx).await?;
    let hours: i64 = ctx.param("slide_hours")?;
    let end = ctx.data_interval.end;
    let start = end
        .saturating_sub(SignedDuration::from_hours(hours))
        .map_err(|e| TaskError::fatal(e.to_string()))?;
    let local_end = end.to_zoned(dag_tz.clone());
    let key = PartitionKey::new([(
        "window_end",
        format!(
            "{}T{:02}{:02}",
            local_end.date(),
            local_end.hour(),
            local_end.minute()
        ),
    )])
    .map_err(|e| TaskError::fatal(e.to_string()))?;
    let base = output_dir(&ctx)?;
    let dir = base.with_file_name(format!(
        "{}_sliding",
        base.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| DAG_ID.to_owned())
    ));
    let out_dir = dir.clone();
    let counts = blocking(move || {
        let opts = ReadOptions {
            time_column: Some(p.time_column.clone()),
            ..ReadOptions::default()
        };
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for batch in open_source(&p.source, &opts)? {
            let window = weir_data::filter_time_window(&batch?, &p.time_column, start, end)?;
            let Some(region) = window.column_by_name("region") else {
                *counts.entry("(all)".to_owned()).or_default() += window.num_rows() as i64;
                continue;
            };
            let region =
                cast(region, &DataType::Utf8).map_err(|e| DataError::arrow("reading region", e))?;
            let region = region
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("cast to Utf8");
            for i in 0..region.len() {
                let r = if region.is_null(i) {
                    "(null)"
                } else {
                    region.value(i)
                };
                *counts.entry(r.to_owned()).or_default() += 1;
            }
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("region", DataType::Utf8, false),
            Field::new("orders", DataType::Int64, false),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(
                counts.keys().map(String::as_str).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                counts.values().copied().collect::<Vec<_>>(),
            )),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| DataError::arrow("building the window", e))?;
        let commit = Dataset::open(&out_dir)?.write_partition(
            &key,
            schema,
            [&batch],
            WriteOptions::default(),
        )?;
        Ok((counts, commit))
    })
    .await?;
    let (counts, commit) = counts;
    let total: i64 = counts.values().sum();
    let loaded = weir_ops::Loaded::new(vec![commit.clone()], commit.rows, 0);
    record_commits(&ctx, &dir, &loaded).await?;
    Ok(
        json!({"window_start": start.to_string(), "window_end": end.to_string(), "hours": hours, "orders": total, "by_region": counts, "dataset": dir}),
    )
}
