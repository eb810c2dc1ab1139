//! Trigger timetables: runs fire at the schedule's ticks, like POSIX cron.
//!
//! Mirrors Airflow 3's `CronTriggerTimetable` and `DeltaTriggerTimetable`
//! (`airflow/timetables/trigger.py`): a run fires at its tick, its data interval is
//! `[tick - interval, tick)` (zero-length by default), and with catchup off the scheduler jumps
//! straight to the latest tick that has passed.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::cron::CronExpr;
use super::zoned::ZonedCron;
use super::{DagRunInfo, DataInterval, ScheduleError, TimeRestriction, Timetable, zone_label};

/// Where the first run goes when a trigger timetable has neither a start date nor a previous run
/// (Airflow's `run_immediately`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunImmediately {
    /// Run the most recent tick at once.
    Always,
    /// Run the most recent tick if it passed at most this long ago, else wait for the next.
    Within(SignedDuration),
    /// Airflow's default (`run_immediately=False`, which its code treats like `None`): run the
    /// most recent tick if it passed within 10% of the gap between ticks (at least 5 minutes).
    #[default]
    Heuristic,
}

/// The tick arithmetic a trigger timetable needs.
trait Ticks {
    fn interval(&self) -> SignedDuration;
    fn get_next(&self, current: Timestamp) -> Option<Timestamp>;
    fn align_to_next(&self, current: Timestamp) -> Option<Timestamp>;
    fn align_to_prev(&self, current: Timestamp) -> Option<Timestamp>;
    fn first_run(&self, now: Timestamp) -> Option<Timestamp>;
}

/// Airflow's `_TriggerTimetable.next_dagrun_info`.
fn next_trigger(
    t: &impl Ticks,
    last: Option<&DataInterval>,
    restriction: &TimeRestriction,
    now: Timestamp,
) -> Option<DagRunInfo> {
    let next_start = if restriction.catchup {
        match (last, restriction.earliest) {
            (Some(last), _) => t.get_next(last.end)?,
            (None, None) => t.first_run(now)?,
            (None, Some(earliest)) => t.align_to_next(earliest)?,
        }
    } else {
        let mut candidate = t.align_to_prev(now)?;
        match (last, restriction.earliest) {
            (Some(last), _) => candidate = candidate.max(t.get_next(last.end)?),
            // Run-immediately has no effect when there is a start date.
            (None, None) => candidate = candidate.max(t.first_run(now)?),
            (None, Some(_)) => {}
        }
        if let Some(earliest) = restriction.earliest {
            candidate = candidate.max(t.align_to_next(earliest)?);
        }
        candidate
    };
    if restriction.latest.is_some_and(|latest| latest < next_start) {
        return None;
    }
    let start = next_start.checked_sub(t.interval()).ok()?;
    Some(DagRunInfo::interval(start, next_start))
}

fn manual(interval: SignedDuration, run_after: Timestamp) -> DataInterval {
    match run_after.checked_sub(interval) {
        Ok(start) => DataInterval::new(start, run_after),
        Err(_) => DataInterval::exact(run_after),
    }
}

fn check_interval(interval: SignedDuration) -> Result<(), ScheduleError> {
    if interval.is_negative() {
        return Err(ScheduleError::NegativeDuration {
            what: "a trigger's data interval",
            value: format!("{interval:#}"),
        });
    }
    Ok(())
}

/// Runs that fire at the ticks of a cron, covering `[tick - interval, tick)`.
#[derive(Debug, Clone)]
pub struct CronTriggerTimetable {
    cron: ZonedCron,
    interval: SignedDuration,
    run_immediately: RunImmediately,
}

impl CronTriggerTimetable {
    /// `interval` is the length of each run's data interval (`SignedDuration::ZERO` for none).
    pub fn new(
        expr: &str,
        tz: TimeZone,
        interval: SignedDuration,
    ) -> Result<CronTriggerTimetable, ScheduleError> {
        check_interval(interval)?;
        Ok(CronTriggerTimetable {
            cron: ZonedCron {
                cron: CronExpr::parse(expr)?,
                tz,
            },
            interval,
            run_immediately: RunImmediately::default(),
        })
    }

    /// Where the first run goes when there is no start date (see [`RunImmediately`]).
    pub fn with_run_immediately(mut self, run_immediately: RunImmediately) -> Self {
        self.run_immediately = run_immediately;
        self
    }

    pub fn cron(&self) -> &CronExpr {
        &self.cron.cron
    }
}

impl Ticks for CronTriggerTimetable {
    fn interval(&self) -> SignedDuration {
        self.interval
    }

    fn get_next(&self, current: Timestamp) -> Option<Timestamp> {
        self.cron.get_next(current)
    }

    fn align_to_next(&self, current: Timestamp) -> Option<Timestamp> {
        self.cron.align_to_next(current)
    }

    fn align_to_prev(&self, current: Timestamp) -> Option<Timestamp> {
        self.cron.align_to_prev(current)
    }

    /// Airflow's `CronTriggerTimetable._calc_first_run`.
    fn first_run(&self, now: Timestamp) -> Option<Timestamp> {
        let past = self.align_to_prev(now)?;
        let next = self.align_to_next(now)?;
        let buffer = match self.run_immediately {
            RunImmediately::Always => return Some(past),
            RunImmediately::Within(d) => d,
            RunImmediately::Heuristic => {
                let gap = next.duration_since(past);
                (gap / 10).max(SignedDuration::from_mins(5))
            }
        };
        if now.duration_since(past) <= buffer {
            Some(past)
        } else {
            Some(next)
        }
    }
}

impl Timetable for CronTriggerTimetable {
    fn next_dagrun_info(
        &self,
        last_automated: Option<&DataInterval>,
        restriction: &TimeRestriction,
        now: Timestamp,
    ) -> Option<DagRunInfo> {
        next_trigger(self, last_automated, restriction, now)
    }

    fn infer_manual_data_interval(&self, run_after: Timestamp) -> DataInterval {
        manual(self.interval, run_after)
    }

    fn summary(&self) -> String {
        let base = format!("{} ({})", self.cron.cron, zone_label(&self.cron.tz));
        if self.interval.is_zero() {
            base
        } else {
            format!("{base}, interval {:#}", self.interval)
        }
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

/// Runs that fire every fixed exact duration, covering `[tick - interval, tick)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaTriggerTimetable {
    delta: SignedDuration,
    interval: SignedDuration,
}

impl DeltaTriggerTimetable {
    /// Fails unless `delta` is positive and `interval` is not negative.
    pub fn new(
        delta: SignedDuration,
        interval: SignedDuration,
    ) -> Result<DeltaTriggerTimetable, ScheduleError> {
        if !delta.is_positive() {
            return Err(ScheduleError::NonPositiveDuration {
                what: "a schedule delta",
                value: format!("{delta:#}"),
            });
        }
        check_interval(interval)?;
        Ok(DeltaTriggerTimetable { delta, interval })
    }
}

impl Ticks for DeltaTriggerTimetable {
    fn interval(&self) -> SignedDuration {
        self.interval
    }

    fn get_next(&self, current: Timestamp) -> Option<Timestamp> {
        current.checked_add(self.delta).ok()
    }

    fn align_to_next(&self, current: Timestamp) -> Option<Timestamp> {
        Some(current)
    }

    fn align_to_prev(&self, current: Timestamp) -> Option<Timestamp> {
        Some(current)
    }

    fn first_run(&self, now: Timestamp) -> Option<Timestamp> {
        Some(now)
    }
}

impl Timetable for DeltaTriggerTimetable {
    fn next_dagrun_info(
        &self,
        last_automated: Option<&DataInterval>,
        restriction: &TimeRestriction,
        now: Timestamp,
    ) -> Option<DagRunInfo> {
        next_trigger(self, last_automated, restriction, now)
    }

    fn infer_manual_data_interval(&self, run_after: Timestamp) -> DataInterval {
        manual(self.interval, run_after)
    }

    fn summary(&self) -> String {
        if self.interval.is_zero() {
            format!("every {:#}", self.delta)
        } else {
            format!("every {:#}, interval {:#}", self.delta, self.interval)
        }
    }
}
