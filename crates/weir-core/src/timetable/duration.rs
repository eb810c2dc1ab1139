//! Parsing the short durations users write in schedules and flags: `90m`, `1h30m`, `2d`.
//!
//! Units are exact: `d` is 24 hours of elapsed time, `w` seven of those. A calendar "daily" is a
//! cron (`@daily`), not a duration.

use jiff::SignedDuration;

use super::ScheduleError;

/// Parses one or more `<number><unit>` parts (units `w d h m s`), optionally space-separated.
pub fn parse_duration(input: &str) -> Result<SignedDuration, ScheduleError> {
    let err = |reason: &str| ScheduleError::InvalidDuration {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    let text = input.trim();
    if text.is_empty() {
        return Err(err(
            "it is empty; write a number and a unit, like 90m or 1h30m",
        ));
    }
    let mut total: i64 = 0;
    let mut rest = text;
    let mut seen = String::new();
    while !rest.is_empty() {
        rest = rest.trim_start();
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(err(
                "expected a number followed by a unit w, d, h, m or s, like 90m or 1h30m",
            ));
        }
        let number: i64 = rest[..digits]
            .parse()
            .map_err(|_| err("the number is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        let seconds: i64 = match unit {
            "w" => 7 * 86_400,
            "d" => 86_400,
            "h" => 3_600,
            "m" => 60,
            "s" => 1,
            "" => return Err(err("a number needs a unit: w, d, h, m or s")),
            _ => return Err(err("units are w, d, h, m and s")),
        };
        if seen.contains(unit) {
            return Err(err("a unit appears twice"));
        }
        seen.push_str(unit);
        rest = &rest[unit_len..];
        total = number
            .checked_mul(seconds)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| err("the duration is too large"))?;
    }
    Ok(SignedDuration::from_secs(total))
}
