//! Timetables: when a DAG runs and which data interval each run covers.
//!
//! The model is Airflow 3's (`airflow/timetables/`). A run covers `[start, end)`, its logical date
//! is `start`, and it becomes due at `run_after`. The kinds are:
//!
//! * [`CronDataIntervalTimetable`]: window schedules; each run covers one cron period and is due
//!   at its end. weir's `daily`/`hourly`/cron schedules are this kind ([`window_schedule`]).
//! * [`CronTriggerTimetable`]: fires at the cron ticks; the interval is `[tick - interval, tick)`.
//! * [`DeltaDataIntervalTimetable`] / [`DeltaTriggerTimetable`]: fixed exact durations, which
//!   drift on the wall clock across DST ("every 24h" is not "daily").
//! * [`EventsTimetable`]: an explicit list of instants.
//!
//! Everything is pure: instants are UTC [`Timestamp`]s, crons are evaluated on the wall clock of
//! their zone (see `zoned.rs` for the DST rules), and "now" is always an argument.

mod cron;
mod duration;
mod events;
mod interval;
mod parse;
mod trigger;
mod zoned;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub use cron::{CronExpr, CronField, PRESETS};
pub use duration::parse_duration;
pub use events::EventsTimetable;
pub use interval::{CronDataIntervalTimetable, DeltaDataIntervalTimetable};
pub use parse::{parse_start, parse_zone};
pub use trigger::{CronTriggerTimetable, DeltaTriggerTimetable, RunImmediately};

/// The span of data a run covers, `[start, end)`. `start == end` for exact (event) runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DataInterval {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl DataInterval {
    pub fn new(start: Timestamp, end: Timestamp) -> DataInterval {
        DataInterval { start, end }
    }

    /// A zero-length interval at one instant.
    pub fn exact(at: Timestamp) -> DataInterval {
        DataInterval { start: at, end: at }
    }
}

/// What a timetable says about one run: its interval and when it becomes due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DagRunInfo {
    pub data_interval: DataInterval,
    pub run_after: Timestamp,
}

impl DagRunInfo {
    /// A run over `[start, end)` that is due at `end`.
    pub fn interval(start: Timestamp, end: Timestamp) -> DagRunInfo {
        DagRunInfo {
            data_interval: DataInterval { start, end },
            run_after: end,
        }
    }

    /// A run at one instant, due then.
    pub fn exact(at: Timestamp) -> DagRunInfo {
        DagRunInfo::interval(at, at)
    }

    /// Airflow's logical date: the start of the data interval.
    pub fn logical_date(&self) -> Timestamp {
        self.data_interval.start
    }
}

/// Bounds on automated runs: the DAG's start and end dates and whether to catch up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TimeRestriction {
    pub earliest: Option<Timestamp>,
    pub latest: Option<Timestamp>,
    /// Off by default, as in Airflow 3.
    pub catchup: bool,
}

/// When a DAG runs. Also the extension point for user-defined schedules (`Arc<dyn Timetable>`).
pub trait Timetable: Send + Sync + std::fmt::Debug {
    /// Next automated run after `last_automated` within the restriction, or `None` when there is
    /// none. `now` matters only when catchup is off (and, as in Airflow, for a trigger timetable
    /// with neither a start date nor a previous run).
    fn next_dagrun_info(
        &self,
        last_automated: Option<&DataInterval>,
        restriction: &TimeRestriction,
        now: Timestamp,
    ) -> Option<DagRunInfo>;

    /// Interval of a manually triggered run whose `run_after` is given.
    fn infer_manual_data_interval(&self, run_after: Timestamp) -> DataInterval;

    /// A one-line description, e.g. `0 2 * * * (Europe/London)`.
    fn summary(&self) -> String;

    /// The zone the schedule is evaluated in.
    fn time_zone(&self) -> TimeZone {
        TimeZone::UTC
    }

    /// The same schedule on the wall clock of another zone: what a run cut in a zone of its own
    /// (`--conf tz=ZONE`) uses. `None` when the schedule has no zone to change (fixed deltas,
    /// events, most user timetables): such runs keep the schedule's intervals.
    fn in_zone(&self, _tz: &TimeZone) -> Option<Arc<dyn Timetable>> {
        None
    }
}

/// A mistake in a schedule, duration, start date or zone written by a user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "cron expression {expr:?} has {found} fields; expected 5 (minute hour day-of-month month day-of-week) or a preset such as @daily"
    )]
    FieldCount { expr: String, found: usize },
    #[error("invalid {field} field {value:?} in cron expression {expr:?}: {reason}")]
    InvalidCronField {
        expr: String,
        field: CronField,
        value: String,
        reason: String,
    },
    #[error(
        "unknown schedule preset {preset:?}; expected one of @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually"
    )]
    UnknownPreset { preset: String },
    #[error(
        "cron expression {expr:?} never fires: no month in its month field has the day in its day-of-month field"
    )]
    NeverFires { expr: String },
    #[error("invalid duration {input:?}: {reason}")]
    InvalidDuration { input: String, reason: String },
    #[error("{what} must be positive, got {value}")]
    NonPositiveDuration { what: &'static str, value: String },
    #[error("{what} must not be negative, got {value}")]
    NegativeDuration { what: &'static str, value: String },
    #[error(
        "invalid start {input:?}: expected a date like 2026-03-01, a wall-clock time like 2026-03-01T02:30, or an RFC 3339 instant like 2026-03-01T02:30:00Z"
    )]
    InvalidStart { input: String },
    #[error(
        "unknown time zone {name:?}; use an IANA name such as UTC, Europe/London or America/New_York"
    )]
    UnknownZone { name: String },
}

/// The window schedule for a preset or five-field cron, evaluated in `tz`.
pub fn window_schedule(expr: &str, tz: TimeZone) -> Result<Arc<dyn Timetable>, ScheduleError> {
    Ok(Arc::new(CronDataIntervalTimetable::new(expr, tz)?))
}

/// A schedule as a user writes it: `none` (or empty: manual runs only), `every DURATION`
/// (`every 90m`: elapsed time), a preset (`@daily`) or a five-field cron, in `tz`.
pub fn parse_schedule(
    expr: &str,
    tz: TimeZone,
) -> Result<Option<Arc<dyn Timetable>>, ScheduleError> {
    let text = expr.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("none") || text.eq_ignore_ascii_case("@none") {
        return Ok(None);
    }
    if let Some(every) = text.strip_prefix("every ") {
        let delta = parse_duration(every.trim())?;
        return Ok(Some(Arc::new(DeltaDataIntervalTimetable::new(delta)?)));
    }
    window_schedule(text, tz).map(Some)
}

/// The first `count` runs a DAG starting at `start` gets with catchup on.
pub fn preview(tt: &dyn Timetable, start: Timestamp, count: usize) -> Vec<DagRunInfo> {
    let restriction = TimeRestriction {
        earliest: Some(start),
        latest: None,
        catchup: true,
    };
    let mut runs: Vec<DagRunInfo> = Vec::with_capacity(count.min(1024));
    while runs.len() < count {
        let last = runs.last().map(|r| r.data_interval);
        match tt.next_dagrun_info(last.as_ref(), &restriction, start) {
            Some(info) => runs.push(info),
            None => break,
        }
    }
    runs
}

/// A zone's name for summaries: its IANA name, else its fixed offset.
fn zone_label(tz: &TimeZone) -> String {
    if let Some(name) = tz.iana_name() {
        return name.to_string();
    }
    match tz.to_fixed_offset() {
        Ok(offset) => offset.to_string(),
        Err(_) => "custom zone".to_string(),
    }
}
