//! A five-field cron expression and its naive (wall-clock) next/previous fire times.
//!
//! The grammar and matching rules follow croniter, the library Airflow evaluates crons with:
//! `*`, `?` (day fields only), lists, ranges (a range whose end is below its start wraps around,
//! `FRI-MON`), steps (`*/15`, `1-5/2`, `10/5` meaning `10-59/5`), month and weekday names, `7` for
//! Sunday, and the presets `@hourly @daily @midnight @weekly @monthly @yearly @annually`. When both
//! day-of-month and day-of-week are restricted a day matches if *either* matches (the Vixie cron
//! OR rule). Everything here is naive: time zones and DST live in `zoned.rs`.
//!
//! Next/previous skip whole months, days and hours, so an expression that fires once every four
//! years (`0 0 29 2 *`) costs a few hundred steps, not millions of minutes.

use std::fmt;

use jiff::civil::{Date, DateTime, Time};

use super::ScheduleError;

/// One of the five fields of a cron expression, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CronField {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl CronField {
    const ALL: [CronField; 5] = [
        CronField::Minute,
        CronField::Hour,
        CronField::DayOfMonth,
        CronField::Month,
        CronField::DayOfWeek,
    ];

    /// Smallest and largest value written in the field (day-of-week accepts 7 for Sunday).
    fn bounds(self) -> (u32, u32) {
        match self {
            CronField::Minute => (0, 59),
            CronField::Hour => (0, 23),
            CronField::DayOfMonth => (1, 31),
            CronField::Month => (1, 12),
            CronField::DayOfWeek => (0, 7),
        }
    }

    /// The range values live in after aliasing (7 becomes 0 in day-of-week).
    fn cycle(self) -> (u32, u32) {
        match self {
            CronField::DayOfWeek => (0, 6),
            other => other.bounds(),
        }
    }

    fn alias(self, value: u32) -> u32 {
        match (self, value) {
            (CronField::DayOfWeek, 7) => 0,
            _ => value,
        }
    }

    fn name_value(self, name: &str) -> Option<u32> {
        const MONTHS: [&str; 12] = [
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
        let lower = name.to_ascii_lowercase();
        let table: &[&str] = match self {
            CronField::Month => &MONTHS,
            CronField::DayOfWeek => &DAYS,
            _ => return None,
        };
        let index = table.iter().position(|n| *n == lower)?;
        let index = u32::try_from(index).ok()?;
        Some(if self == CronField::Month {
            index + 1
        } else {
            index
        })
    }
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CronField::Minute => "minute",
            CronField::Hour => "hour",
            CronField::DayOfMonth => "day-of-month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day-of-week",
        })
    }
}

/// The presets Airflow (and croniter) accept, with the expression each stands for.
pub const PRESETS: [(&str, &str); 7] = [
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
];

/// A parsed five-field cron expression.
#[derive(Clone, PartialEq, Eq)]
pub struct CronExpr {
    source: String,
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    /// croniter's `*` after normalisation: an unrestricted day field takes no part in the OR rule.
    dom_unrestricted: bool,
    dow_unrestricted: bool,
}

impl fmt::Debug for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CronExpr").field(&self.source).finish()
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// The expression, as written, and one field of it.
struct FieldCtx<'a> {
    expr: &'a str,
    field: CronField,
    text: &'a str,
}

impl FieldCtx<'_> {
    fn err(&self, reason: impl Into<String>) -> ScheduleError {
        ScheduleError::InvalidCronField {
            expr: self.expr.to_string(),
            field: self.field,
            value: self.text.to_string(),
            reason: reason.into(),
        }
    }

    fn value(&self, token: &str) -> Result<u32, ScheduleError> {
        let (min, max) = self.field.bounds();
        let value = if token.bytes().all(|b| b.is_ascii_digit()) && !token.is_empty() {
            token
                .parse::<u32>()
                .map_err(|_| self.err(format!("{token} is out of range {min}-{max}")))?
        } else if let Some(v) = self.field.name_value(token) {
            v
        } else {
            let hint = match self.field {
                CronField::Month => " (use 1-12 or JAN-DEC)",
                CronField::DayOfWeek => " (use 0-7 or SUN-SAT)",
                _ => "",
            };
            return Err(self.err(format!("{token:?} is not a number{hint}")));
        };
        if value < min || value > max {
            return Err(self.err(format!("{value} is out of range {min}-{max}")));
        }
        Ok(value)
    }
}

fn full_mask(field: CronField) -> u64 {
    let (lo, hi) = field.cycle();
    let mut mask = 0u64;
    for v in lo..=hi {
        mask |= 1 << v;
    }
    mask
}

/// Expands one comma-separated field into a bit set; the flag says a bare `*` (or `?`) was used.
fn parse_field(expr: &str, field: CronField, text: &str) -> Result<(u64, bool), ScheduleError> {
    let ctx = FieldCtx { expr, field, text };
    let (cmin, cmax) = field.cycle();
    let (_, bmax) = field.bounds();
    if text == "?" {
        return match field {
            CronField::DayOfMonth | CronField::DayOfWeek => Ok((full_mask(field), true)),
            _ => Err(ctx.err("\"?\" is only allowed in the day-of-month and day-of-week fields")),
        };
    }
    let mut mask = 0u64;
    let mut star = false;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(ctx.err("it has an empty list item"));
        }
        if item == "*" {
            star = true;
            mask |= full_mask(field);
            continue;
        }
        let day_field = matches!(field, CronField::DayOfMonth | CronField::DayOfWeek);
        if item.contains('#') || (day_field && item.ends_with(['L', 'l', 'W', 'w'])) {
            return Err(ctx.err(format!("the {item:?} extension (L, W, #) is not supported")));
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .map_err(|_| ctx.err(format!("step {step:?} is not a positive number")))?;
                if step == 0 {
                    return Err(ctx.err("a step must be at least 1"));
                }
                (range, Some(step))
            }
            None => (item, None),
        };
        let (low, high) = if range == "*" {
            (cmin, cmax)
        } else if let Some((a, b)) = range.split_once('-') {
            let (low, high) = (ctx.value(a)?, ctx.value(b)?);
            let (low, high) = (field.alias(low), field.alias(high));
            if low == high && !a.eq_ignore_ascii_case(b) {
                // croniter: a range whose two ends alias to the same value (`0-7`, `SUN-7`)
                // is the whole cycle.
                (cmin, cmax)
            } else {
                (low, high)
            }
        } else {
            let v = field.alias(ctx.value(range)?);
            // `a/step` means `a-max/step`.
            if step.is_some() {
                (v, field.alias(bmax).max(cmax))
            } else {
                (v, v)
            }
        };
        let step = step.unwrap_or(1);
        if low <= high {
            let mut v = low;
            while v <= high {
                mask |= 1 << v;
                v += step;
            }
        } else {
            // Wrapping range, e.g. `FRI-MON` or `22-2`: croniter's cadence across the wrap.
            let mut v = low;
            let mut last = low;
            while v <= cmax {
                mask |= 1 << v;
                last = v;
                v += step;
            }
            let size = cmax - cmin + 1;
            let already = cmax - last;
            let curpos = last - cmin;
            let skip = if curpos + step > size && already < step {
                step - already
            } else {
                0
            };
            let mut v = cmin + skip;
            while v <= high {
                mask |= 1 << v;
                v += step;
            }
        }
    }
    Ok((mask, star))
}

fn days_in_month(year: i16, month: u32) -> u32 {
    match month {
        2 => {
            let y = i32::from(year);
            if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
                29
            } else {
                28
            }
        }
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Lowest set bit at or above `from`.
fn next_bit(mask: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let shifted = mask >> from;
    (shifted != 0).then(|| from + shifted.trailing_zeros())
}

/// Highest set bit at or below `upto`.
fn prev_bit(mask: u64, upto: u32) -> Option<u32> {
    let keep = if upto >= 63 {
        u64::MAX
    } else {
        (1u64 << (upto + 1)) - 1
    };
    let m = mask & keep;
    (m != 0).then(|| 63 - m.leading_zeros())
}

/// How far [`CronExpr::next_after`] and [`CronExpr::prev_before`] look before giving up.
const MAX_YEARS: i16 = 100;

fn u32_of(v: i8) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

fn i8_of(v: u32) -> i8 {
    i8::try_from(v).unwrap_or(0)
}

impl CronExpr {
    /// Parses a preset or a five-field expression; the error names the bad field and value.
    pub fn parse(expr: &str) -> Result<CronExpr, ScheduleError> {
        let trimmed = expr.trim();
        let body = if trimmed.starts_with('@') {
            let lower = trimmed.to_ascii_lowercase();
            match PRESETS.iter().find(|(name, _)| *name == lower) {
                Some((_, body)) => *body,
                None => {
                    return Err(ScheduleError::UnknownPreset {
                        preset: trimmed.to_string(),
                    });
                }
            }
        } else {
            trimmed
        };
        let parts: Vec<&str> = body.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(ScheduleError::FieldCount {
                expr: trimmed.to_string(),
                found: parts.len(),
            });
        }
        let mut masks = [0u64; 5];
        let mut stars = [false; 5];
        for (i, field) in CronField::ALL.into_iter().enumerate() {
            let (mask, star) = parse_field(trimmed, field, parts[i])?;
            masks[i] = mask;
            stars[i] = star;
        }
        // croniter normalises a day field listing every value to `*`, but only when the other
        // day field is written with a `*` in it.
        let dom_full = masks[2] == full_mask(CronField::DayOfMonth);
        let dow_full = masks[4] == full_mask(CronField::DayOfWeek);
        let dom_unrestricted = stars[2] || (dom_full && parts[4].contains('*'));
        let dow_unrestricted = stars[4] || (dow_full && parts[2].contains('*'));
        let cron = CronExpr {
            source: trimmed.to_string(),
            minutes: masks[0],
            hours: masks[1],
            days_of_month: masks[2],
            months: masks[3],
            days_of_week: masks[4],
            dom_unrestricted,
            dow_unrestricted,
        };
        if !cron.can_fire() {
            return Err(ScheduleError::NeverFires {
                expr: trimmed.to_string(),
            });
        }
        Ok(cron)
    }

    /// The expression as written (presets stay presets).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether every hour of the day is in the hour field (Airflow's `_covers_every_hour`), which
    /// switches the DST handling to "every matching wall-clock instant fires".
    pub fn covers_every_hour(&self) -> bool {
        self.hours == full_mask(CronField::Hour)
    }

    fn can_fire(&self) -> bool {
        if !self.dow_unrestricted {
            // Every weekday occurs in every month, whether day-of-week decides alone or OR-ed.
            return true;
        }
        (1..=12u32).any(|m| {
            self.months & (1 << m) != 0
                && (1..=days_in_month(2000, m)).any(|d| self.days_of_month & (1 << d) != 0)
        })
    }

    fn month_matches(&self, month: u32) -> bool {
        self.months & (1 << month) != 0
    }

    fn day_matches(&self, date: Date) -> bool {
        let dom = self.days_of_month & (1 << u32_of(date.day())) != 0;
        let weekday = u32_of(date.weekday().to_sunday_zero_offset());
        let dow = self.days_of_week & (1 << weekday) != 0;
        match (self.dom_unrestricted, self.dow_unrestricted) {
            (true, true) => true,
            (false, true) => dom,
            (true, false) => dow,
            (false, false) => dom || dow,
        }
    }

    /// Whether the expression fires at this wall-clock minute (seconds must be zero).
    pub fn matches(&self, dt: DateTime) -> bool {
        dt.second() == 0
            && dt.subsec_nanosecond() == 0
            && self.month_matches(u32_of(dt.month()))
            && self.day_matches(dt.date())
            && self.hours & (1 << u32_of(dt.hour())) != 0
            && self.minutes & (1 << u32_of(dt.minute())) != 0
    }

    /// The first fire time strictly after `after`, on the naive wall clock.
    pub fn next_after(&self, after: DateTime) -> Option<DateTime> {
        let mut date = after.date();
        let mut hour = u32_of(after.hour());
        let mut minute = u32_of(after.minute()) + 1;
        if minute == 60 {
            minute = 0;
            hour += 1;
            if hour == 24 {
                hour = 0;
                date = date.tomorrow().ok()?;
            }
        }
        let limit = after.year().saturating_add(MAX_YEARS);
        loop {
            if date.year() > limit {
                return None;
            }
            let month = u32_of(date.month());
            if !self.month_matches(month) {
                date = match next_bit(self.months, month + 1).filter(|m| *m <= 12) {
                    Some(m) => Date::new(date.year(), i8_of(m), 1).ok()?,
                    None => {
                        let first = next_bit(self.months, 1)?;
                        Date::new(date.year().checked_add(1)?, i8_of(first), 1).ok()?
                    }
                };
                hour = 0;
                minute = 0;
                continue;
            }
            if !self.day_matches(date) {
                date = date.tomorrow().ok()?;
                hour = 0;
                minute = 0;
                continue;
            }
            match next_bit(self.hours, hour).filter(|h| *h < 24) {
                None => {
                    date = date.tomorrow().ok()?;
                    hour = 0;
                    minute = 0;
                    continue;
                }
                Some(h) if h != hour => {
                    hour = h;
                    minute = 0;
                }
                Some(_) => {}
            }
            match next_bit(self.minutes, minute).filter(|m| *m < 60) {
                None => {
                    minute = 0;
                    hour += 1;
                    if hour == 24 {
                        hour = 0;
                        date = date.tomorrow().ok()?;
                    }
                    continue;
                }
                Some(m) => minute = m,
            }
            let time = Time::new(i8_of(hour), i8_of(minute), 0, 0).ok()?;
            return Some(DateTime::from_parts(date, time));
        }
    }

    /// The last fire time strictly before `before`, on the naive wall clock.
    pub fn prev_before(&self, before: DateTime) -> Option<DateTime> {
        let mut date = before.date();
        let mut hour = u32_of(before.hour());
        let mut minute = u32_of(before.minute());
        if before.second() == 0 && before.subsec_nanosecond() == 0 {
            // On a whole minute: that minute itself is not "before".
            if minute == 0 {
                minute = 59;
                if hour == 0 {
                    hour = 23;
                    date = date.yesterday().ok()?;
                } else {
                    hour -= 1;
                }
            } else {
                minute -= 1;
            }
        }
        let limit = before.year().saturating_sub(MAX_YEARS);
        loop {
            if date.year() < limit {
                return None;
            }
            let month = u32_of(date.month());
            if !self.month_matches(month) {
                let (year, m) = match prev_bit(self.months, month - 1).filter(|m| *m >= 1) {
                    Some(m) => (date.year(), m),
                    None => (date.year().checked_sub(1)?, prev_bit(self.months, 12)?),
                };
                let day = days_in_month(year, m);
                date = Date::new(year, i8_of(m), i8_of(day)).ok()?;
                hour = 23;
                minute = 59;
                continue;
            }
            if !self.day_matches(date) {
                date = date.yesterday().ok()?;
                hour = 23;
                minute = 59;
                continue;
            }
            match prev_bit(self.hours, hour) {
                None => {
                    date = date.yesterday().ok()?;
                    hour = 23;
                    minute = 59;
                    continue;
                }
                Some(h) if h != hour => {
                    hour = h;
                    minute = 59;
                }
                Some(_) => {}
            }
            match prev_bit(self.minutes, minute) {
                None => {
                    minute = 59;
                    if hour == 0 {
                        hour = 23;
                        date = date.yesterday().ok()?;
                    } else {
                        hour -= 1;
                    }
                    continue;
                }
                Some(m) => minute = m,
            }
            let time = Time::new(i8_of(hour), i8_of(minute), 0, 0).ok()?;
            return Some(DateTime::from_parts(date, time));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn next(expr: &str, from: DateTime) -> DateTime {
        CronExpr::parse(expr).unwrap().next_after(from).unwrap()
    }

    fn prev(expr: &str, from: DateTime) -> DateTime {
        CronExpr::parse(expr).unwrap().prev_before(from).unwrap()
    }

    #[test]
    fn next_and_prev_are_strict() {
        let t = date(2026, 3, 1).at(0, 0, 0, 0);
        assert_eq!(next("0 0 * * *", t), date(2026, 3, 2).at(0, 0, 0, 0));
        assert_eq!(prev("0 0 * * *", t), date(2026, 2, 28).at(0, 0, 0, 0));
        let t = date(2026, 3, 1).at(0, 0, 30, 0);
        assert_eq!(prev("0 0 * * *", t), date(2026, 3, 1).at(0, 0, 0, 0));
        assert_eq!(next("* * * * *", t), date(2026, 3, 1).at(0, 1, 0, 0));
    }

    #[test]
    fn leap_day_is_found_years_away() {
        let t = date(2097, 3, 1).at(0, 0, 0, 0);
        assert_eq!(next("0 0 29 2 *", t), date(2104, 2, 29).at(0, 0, 0, 0));
        assert_eq!(prev("0 0 29 2 *", t), date(2096, 2, 29).at(0, 0, 0, 0));
    }

    #[test]
    fn wrapping_ranges_follow_croniter() {
        let c = CronExpr::parse("0 0 * * FRI-MON").unwrap();
        assert_eq!(c.days_of_week, 0b110_0011);
        let c = CronExpr::parse("0 0 * * 5-7").unwrap();
        assert_eq!(c.days_of_week, 0b110_0001);
        let c = CronExpr::parse("0 22-2 * * *").unwrap();
        assert_eq!(c.hours, (1 << 22) | (1 << 23) | 0b111);
        let c = CronExpr::parse("0 0 * * 0-7").unwrap();
        assert!(c.dow_unrestricted);
    }
}
