//! Parsing a user's start date and time zone.
//!
//! A start written without an offset is a wall-clock time in the DAG's zone, resolved like
//! Airflow's pendulum start dates: a time inside a spring-forward gap moves forward by the gap, a
//! time inside a fall-back fold means its second occurrence. A start with an offset or `Z` is
//! exactly that instant.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;

use super::ScheduleError;

/// Parses `2026-03-01`, `2026-03-01T02:30`, `2026-03-01T02:30:00` or `2026-03-01 02:30` as wall
/// clock in `tz`, or an RFC 3339 instant such as `2026-03-01T02:30:00Z` / `...+01:00`.
pub fn parse_start(s: &str, tz: &TimeZone) -> Result<Timestamp, ScheduleError> {
    let text = s.trim();
    let invalid = || ScheduleError::InvalidStart {
        input: s.to_string(),
    };
    let has_offset = {
        // An offset or `Z` can only follow the time part.
        let time_part = text.get(10..).unwrap_or("");
        time_part.contains(['Z', 'z', '+']) || time_part.get(1..).is_some_and(|t| t.contains('-'))
    };
    if has_offset {
        return text.parse::<Timestamp>().map_err(|_| invalid());
    }
    let civil = if text.len() == 10 {
        text.parse::<Date>().map_err(|_| invalid())?.at(0, 0, 0, 0)
    } else {
        text.parse::<DateTime>().map_err(|_| invalid())?
    };
    tz.to_ambiguous_timestamp(civil)
        .later()
        .map_err(|_| invalid())
}

/// Looks up an IANA zone name (`UTC`, `Europe/London`).
pub fn parse_zone(name: &str) -> Result<TimeZone, ScheduleError> {
    TimeZone::get(name.trim()).map_err(|_| ScheduleError::UnknownZone {
        name: name.to_string(),
    })
}
