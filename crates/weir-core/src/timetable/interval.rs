//! Data-interval timetables: each run covers one period and is due when the period ends.
//!
//! Mirrors Airflow's `_DataIntervalTimetable`, `CronDataIntervalTimetable` and
//! `DeltaDataIntervalTimetable` (`airflow/timetables/interval.py`), including the alignment of an
//! off-tick start date and the "skip to latest" rule used when catchup is off.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::cron::CronExpr;
use super::zoned::ZonedCron;
use super::{DagRunInfo, DataInterval, ScheduleError, TimeRestriction, Timetable, zone_label};

/// The period arithmetic a data-interval timetable needs.
trait Periods {
    fn get_next(&self, current: Timestamp) -> Option<Timestamp>;
    fn get_prev(&self, current: Timestamp) -> Option<Timestamp>;
    fn align_to_next(&self, current: Timestamp) -> Option<Timestamp>;
    fn align_to_prev(&self, current: Timestamp) -> Option<Timestamp>;
    /// The earliest start allowed when catchup is off.
    fn skip_to_latest(&self, earliest: Option<Timestamp>, now: Timestamp) -> Option<Timestamp>;
}

/// Airflow's `_DataIntervalTimetable.next_dagrun_info`.
fn next_interval(
    p: &impl Periods,
    last: Option<&DataInterval>,
    restriction: &TimeRestriction,
    now: Timestamp,
) -> Option<DagRunInfo> {
    let earliest = if !restriction.catchup {
        Some(p.skip_to_latest(restriction.earliest, now)?)
    } else {
        match restriction.earliest {
            Some(e) => Some(p.align_to_next(e)?),
            None => None,
        }
    };
    let start = match last {
        // First run: the first aligned time, with its interval created retrospectively.
        None => earliest?,
        Some(last) => {
            // Aligning matters when the schedule changed since the last run.
            let aligned = p.align_to_prev(last.end)?;
            match earliest {
                Some(e) => aligned.max(e),
                None => aligned,
            }
        }
    };
    if restriction.latest.is_some_and(|latest| start > latest) {
        return None;
    }
    let end = p.get_next(start)?;
    Some(DagRunInfo::interval(start, end))
}

/// Runs each covering one cron period `[tick, next tick)`, due at the period's end.
///
/// This is weir's window schedule: `@daily` in `Europe/London` gives 23- and 25-hour windows on
/// the DST days, and the run for a day is due when the day is over.
#[derive(Debug, Clone)]
pub struct CronDataIntervalTimetable {
    cron: ZonedCron,
}

impl CronDataIntervalTimetable {
    /// `expr` is a preset (`@daily`) or a five-field cron, evaluated on the wall clock of `tz`.
    pub fn new(expr: &str, tz: TimeZone) -> Result<CronDataIntervalTimetable, ScheduleError> {
        Ok(CronDataIntervalTimetable {
            cron: ZonedCron {
                cron: CronExpr::parse(expr)?,
                tz,
            },
        })
    }

    pub fn cron(&self) -> &CronExpr {
        &self.cron.cron
    }
}

impl Periods for CronDataIntervalTimetable {
    fn get_next(&self, current: Timestamp) -> Option<Timestamp> {
        self.cron.get_next(current)
    }

    fn get_prev(&self, current: Timestamp) -> Option<Timestamp> {
        self.cron.get_prev(current)
    }

    fn align_to_next(&self, current: Timestamp) -> Option<Timestamp> {
        self.cron.align_to_next(current)
    }

    fn align_to_prev(&self, current: Timestamp) -> Option<Timestamp> {
        self.cron.align_to_prev(current)
    }

    /// The start of the latest *complete* period before `now` (or `now` itself when it is on a
    /// boundary, the period that starts right now), but never before the aligned start date.
    fn skip_to_latest(&self, earliest: Option<Timestamp>, now: Timestamp) -> Option<Timestamp> {
        let last_start = self.get_prev(now)?;
        let next_start = self.get_next(last_start)?;
        let new_start = if next_start == now {
            last_start
        } else {
            // Between boundaries. (Airflow asserts next_start is never earlier than now; should a
            // zone's history make it so, stepping back one more period is the safe choice.)
            self.get_prev(last_start)?
        };
        match earliest {
            None => Some(new_start),
            Some(e) => Some(new_start.max(self.align_to_next(e)?)),
        }
    }
}

impl Timetable for CronDataIntervalTimetable {
    fn next_dagrun_info(
        &self,
        last_automated: Option<&DataInterval>,
        restriction: &TimeRestriction,
        now: Timestamp,
    ) -> Option<DagRunInfo> {
        next_interval(self, last_automated, restriction, now)
    }

    /// The last complete period before `run_after`: a daily DAG triggered at 01:00 on the 25th
    /// covers the 24th.
    fn infer_manual_data_interval(&self, run_after: Timestamp) -> DataInterval {
        let interval = self
            .align_to_prev(run_after)
            .and_then(|end| Some(DataInterval::new(self.get_prev(end)?, end)));
        interval.unwrap_or(DataInterval::exact(run_after))
    }

    fn summary(&self) -> String {
        format!("{} ({})", self.cron.cron, zone_label(&self.cron.tz))
    }

    fn time_zone(&self) -> TimeZone {
        self.cron.tz.clone()
    }

    fn in_zone(&self, tz: &TimeZone) -> Option<std::sync::Arc<dyn Timetable>> {
        let mut other = self.clone();
        other.cron.tz = tz.clone();
        Some(std::sync::Arc::new(other))
    }
}

/// Runs each covering a fixed exact duration, `[start, start + delta)`.
///
/// The duration is elapsed time, so "every 24h" drifts by an hour on the wall clock across DST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaDataIntervalTimetable {
    delta: SignedDuration,
}

impl DeltaDataIntervalTimetable {
    /// Fails unless `delta` is positive.
    pub fn new(delta: SignedDuration) -> Result<DeltaDataIntervalTimetable, ScheduleError> {
        if !delta.is_positive() {
            return Err(ScheduleError::NonPositiveDuration {
                what: "a schedule delta",
                value: format!("{delta:#}"),
            });
        }
        Ok(DeltaDataIntervalTimetable { delta })
    }

    pub fn delta(&self) -> SignedDuration {
        self.delta
    }
}

/// `t` rounded down to a multiple of `delta` since the Unix epoch (Airflow's `_round`).
pub(crate) fn round_down(t: Timestamp, delta: SignedDuration) -> Option<Timestamp> {
    let step = delta.as_nanos();
    let ns = t.as_nanosecond();
    Timestamp::from_nanosecond(ns - ns.rem_euclid(step)).ok()
}

impl Periods for DeltaDataIntervalTimetable {
    fn get_next(&self, current: Timestamp) -> Option<Timestamp> {
        current.checked_add(self.delta).ok()
    }

    fn get_prev(&self, current: Timestamp) -> Option<Timestamp> {
        current.checked_sub(self.delta).ok()
    }

    fn align_to_next(&self, current: Timestamp) -> Option<Timestamp> {
        Some(current)
    }

    fn align_to_prev(&self, current: Timestamp) -> Option<Timestamp> {
        Some(current)
    }

    /// One delta before `now` rounded down to a multiple of the delta since the epoch, but never
    /// before the start date (which is not aligned: a delta schedule has no ticks).
    fn skip_to_latest(&self, earliest: Option<Timestamp>, now: Timestamp) -> Option<Timestamp> {
        let new_start = self.get_prev(round_down(now, self.delta)?)?;
        Some(earliest.map_or(new_start, |e| new_start.max(e)))
    }
}

impl Timetable for DeltaDataIntervalTimetable {
    fn next_dagrun_info(
        &self,
        last_automated: Option<&DataInterval>,
        restriction: &TimeRestriction,
        now: Timestamp,
    ) -> Option<DagRunInfo> {
        next_interval(self, last_automated, restriction, now)
    }

    fn infer_manual_data_interval(&self, run_after: Timestamp) -> DataInterval {
        match self.get_prev(run_after) {
            Some(start) => DataInterval::new(start, run_after),
            None => DataInterval::exact(run_after),
        }
    }

    fn summary(&self) -> String {
        format!("every {:#}", self.delta)
    }
}
