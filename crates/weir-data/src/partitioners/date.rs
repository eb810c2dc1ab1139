//! [`DatePartitioner`]: splits batches by the local date (hour, or month) of a timestamp
//! column in a real time zone, to `dt=YYYY-MM-DD`, `dt=YYYY-MM-DD/hr=HH` or `mo=YYYY-MM`.
//!
//! A thin, configurable front for [`crate::partition_by_local_date`] and
//! [`crate::partition_by_local_hour`], so a pattern can pick the granularity from its config
//! (`"hour"` / `"day"` / `"month"`) instead of calling a different function. DST is handled there: a
//! spring-forward day has no `hr=02`, and both repeated hours of a fall-back day share one `hr=`.

use std::fmt;
use std::str::FromStr;

use arrow::array::RecordBatch;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::window::{
    local_date_keys, partition_by_local_date, partition_by_local_hour, split_by_key,
};
use crate::{DataError, PartitionKey};

/// How finely a [`DatePartitioner`] cuts time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// One partition per local day: `dt=YYYY-MM-DD`.
    #[default]
    Day,
    /// One partition per local hour: `dt=YYYY-MM-DD/hr=HH`.
    Hour,
    /// One partition per local calendar month: `mo=YYYY-MM`.
    Month,
}

impl Granularity {
    /// The config spelling: `"day"` or `"hour"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Day => "day",
            Granularity::Hour => "hour",
            Granularity::Month => "month",
        }
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Granularity {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, DataError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "day" | "daily" => Ok(Granularity::Day),
            "hour" | "hourly" => Ok(Granularity::Hour),
            "month" | "monthly" => Ok(Granularity::Month),
            _ => Err(DataError::InvalidOptions {
                what: "date granularity",
                reason: format!("{s:?} is not a granularity; use \"hour\", \"day\" or \"month\""),
            }),
        }
    }
}

/// Splits batches by the local date (or hour) of `column` in a time zone.
#[derive(Clone, Debug, PartialEq)]
pub struct DatePartitioner {
    column: String,
    tz: TimeZone,
    granularity: Granularity,
}

impl DatePartitioner {
    /// A partitioner over the timestamp column `column`, evaluated in `tz`.
    pub fn new(column: impl Into<String>, tz: TimeZone, granularity: Granularity) -> Self {
        DatePartitioner {
            column: column.into(),
            tz,
            granularity,
        }
    }

    /// The timestamp column it reads.
    pub fn column(&self) -> &str {
        &self.column
    }

    /// The time zone local dates are computed in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// Day or hour.
    pub fn granularity(&self) -> Granularity {
        self.granularity
    }

    /// The partition key of one instant.
    pub fn key_of(&self, ts: Timestamp) -> PartitionKey {
        let local = self.tz.to_datetime(ts);
        match self.granularity {
            Granularity::Day => PartitionKey::date(local.date()),
            Granularity::Hour => PartitionKey::date_hour(local.date(), local.hour()),
            Granularity::Month => month_key(local.date()),
        }
    }

    /// Splits `batch` into one batch per key, in key order; a null time is an error.
    pub fn split(
        &self,
        batch: &RecordBatch,
    ) -> Result<Vec<(PartitionKey, RecordBatch)>, DataError> {
        match self.granularity {
            Granularity::Day => partition_by_local_date(batch, &self.column, &self.tz),
            Granularity::Hour => partition_by_local_hour(batch, &self.column, &self.tz),
            Granularity::Month => {
                let months: Vec<(i16, i8)> = local_date_keys(batch, &self.column, &self.tz)?
                    .into_iter()
                    .map(|d| (d.year(), d.month()))
                    .collect();
                Ok(split_by_key(batch, &months)?
                    .into_iter()
                    .map(|((y, m), rows)| (month_key(jiff::civil::date(y, m, 1)), rows))
                    .collect())
            }
        }
    }
}

/// `mo=YYYY-MM` of the month containing `day`.
pub fn month_key(day: jiff::civil::Date) -> PartitionKey {
    PartitionKey::new([("mo", format!("{:04}-{:02}", day.year(), day.month()))])
        .expect("a valid key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granularity_parses_config_spellings() {
        assert_eq!("day".parse::<Granularity>().unwrap(), Granularity::Day);
        assert_eq!(
            " Hourly ".parse::<Granularity>().unwrap(),
            Granularity::Hour
        );
        assert!("week".parse::<Granularity>().is_err());
        assert_eq!(
            "monthly".parse::<Granularity>().unwrap(),
            Granularity::Month
        );
        assert_eq!(
            serde_json::to_string(&Granularity::Hour).unwrap(),
            "\"hour\""
        );
    }

    #[test]
    fn key_of_uses_the_local_wall_clock() {
        let tz = TimeZone::get("America/New_York").unwrap();
        let ts: Timestamp = "2026-03-08T04:30:00Z".parse().unwrap();
        let day = DatePartitioner::new("t", tz.clone(), Granularity::Day);
        assert_eq!(day.key_of(ts).to_path_string(), "dt=2026-03-07");
        let hour = DatePartitioner::new("t", tz, Granularity::Hour);
        assert_eq!(hour.key_of(ts).to_path_string(), "dt=2026-03-07/hr=23");
    }
}
