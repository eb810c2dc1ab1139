//! A cron evaluated in an IANA zone: next/previous fire instants with Airflow's DST rules.
//!
//! This mirrors Airflow's `CronMixin` (`airflow/timetables/_cron.py`). The cron is evaluated on
//! the naive wall clock of the zone, then turned back into an instant:
//!
//! * If the hour field does **not** cover every hour (`0 2 * * *`, `@daily`, `0 */2 * * *`), the
//!   naive fire time is localised the way Airflow's `make_aware` does with pendulum (`fold=1`):
//!   a wall time that does not exist moves forward by the gap (New York `02:00` on 2026-03-08
//!   becomes `03:00 EDT`), and a wall time that occurs twice resolves to its *second* occurrence
//!   (London `01:30` on 2026-10-25 is `01:30 GMT`). That is jiff's `Disambiguation::Later`.
//!   One deliberate difference: Airflow's `_get_prev` can return a time at or after its
//!   argument (`0 2 * * *` in New York: the previous tick of `03:00 EDT` on 2026-03-08 is
//!   `02:00`, localised to `03:00 EDT` again); weir steps back to the tick before, so previous
//!   is always strictly earlier and windows stay contiguous.
//! * If the hour field covers every hour (`0 * * * *`, `*/10 * * * *`), every instant whose wall
//!   time matches fires: hourly crons fire in both repeated hours of a fall-back and skip the
//!   wall times a spring-forward removes. Airflow gets this by adding the naive distance to the
//!   next wall time as exact elapsed time, which gives the same instants for whole-hour shifts
//!   within a day; weir walks the zone's offset segments instead, so that half-hour shifts
//!   (Australia/Lord_Howe) and day-restricted hourly crons (`0 * 1 * *`) still land on matching
//!   wall times, where Airflow's shortcut can produce a non-matching instant.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// How many offset segments (DST periods) a search crosses before giving up.
const MAX_SEGMENTS: usize = 1024;

use super::cron::CronExpr;

/// A cron expression bound to the zone it is evaluated in.
#[derive(Debug, Clone)]
pub(crate) struct ZonedCron {
    pub(crate) cron: CronExpr,
    pub(crate) tz: TimeZone,
}

impl ZonedCron {
    /// First fire instant strictly after `current` (Airflow's `_get_next`).
    pub(crate) fn get_next(&self, current: Timestamp) -> Option<Timestamp> {
        if self.cron.covers_every_hour() {
            return self.next_matching(current);
        }
        let mut naive = self.tz.to_datetime(current);
        loop {
            let scheduled = self.cron.next_after(naive)?;
            let instant = self.tz.to_ambiguous_timestamp(scheduled).later().ok()?;
            if instant > current {
                return Some(instant);
            }
            naive = scheduled;
        }
    }

    /// Last fire instant strictly before `current` (Airflow's `_get_prev`).
    pub(crate) fn get_prev(&self, current: Timestamp) -> Option<Timestamp> {
        if self.cron.covers_every_hour() {
            return self.prev_matching(current);
        }
        let mut naive = self.tz.to_datetime(current);
        loop {
            let scheduled = self.cron.prev_before(naive)?;
            let instant = self.tz.to_ambiguous_timestamp(scheduled).later().ok()?;
            // A tick moved forward out of a gap (or resolved to a fold's second occurrence) can
            // land at or after `current`; Airflow returns it, weir keeps "previous" strict.
            if instant < current {
                return Some(instant);
            }
            naive = scheduled;
        }
    }

    /// `current` if it is a fire time, else the next one (Airflow's `_align_to_next`).
    pub(crate) fn align_to_next(&self, current: Timestamp) -> Option<Timestamp> {
        let next = self.get_next(current)?;
        if self.get_prev(next) == Some(current) {
            Some(current)
        } else {
            Some(next)
        }
    }

    /// `current` if it is a fire time, else the previous one (Airflow's `_align_to_prev`).
    pub(crate) fn align_to_prev(&self, current: Timestamp) -> Option<Timestamp> {
        let prev = self.get_prev(current)?;
        if self.get_next(prev) == Some(current) {
            Some(current)
        } else {
            Some(prev)
        }
    }

    /// The first instant strictly after `current` whose wall time matches the cron, walking the
    /// zone's constant-offset segments forward.
    fn next_matching(&self, current: Timestamp) -> Option<Timestamp> {
        let mut transitions = self.tz.following(current);
        let mut seg_start = current;
        let mut first = true;
        for _ in 0..MAX_SEGMENTS {
            let offset = self.tz.to_offset(seg_start);
            let seg_end = transitions.next().map(|t| t.timestamp());
            let wall_start = offset.to_datetime(seg_start);
            let tick = if first {
                self.cron.next_after(wall_start)?
            } else {
                // Inclusive: the first tick at or after the segment's first wall time.
                let just_before = wall_start.checked_sub(SignedDuration::from_nanos(1)).ok()?;
                self.cron.next_after(just_before)?
            };
            let instant = offset.to_timestamp(tick).ok()?;
            match seg_end {
                Some(end) if instant >= end => {
                    seg_start = end;
                    first = false;
                }
                _ => return Some(instant),
            }
        }
        None
    }

    /// The last instant strictly before `current` whose wall time matches the cron, walking the
    /// zone's constant-offset segments backward.
    fn prev_matching(&self, current: Timestamp) -> Option<Timestamp> {
        let mut transitions = self.tz.preceding(current);
        let mut seg_end = current;
        for _ in 0..MAX_SEGMENTS {
            let last_in_segment = seg_end.checked_sub(SignedDuration::from_nanos(1)).ok()?;
            let offset = self.tz.to_offset(last_in_segment);
            let seg_start = transitions.next().map(|t| t.timestamp());
            let tick = self.cron.prev_before(offset.to_datetime(seg_end))?;
            let instant = offset.to_timestamp(tick).ok()?;
            match seg_start {
                Some(start) if instant < start => seg_end = start,
                _ => return Some(instant),
            }
        }
        None
    }
}
