//! Time windows and partitioning of record batches: keep the rows of `[start, end)`, compute each
//! row's local date (and hour) in a real time zone, and split a batch into one batch per key.
//!
//! Filtering uses Arrow compute kernels over the whole column; only the local-time keys need a
//! per-row loop, because converting an instant to a wall clock depends on the zone's rules (a DST
//! day has 23 or 25 local hours, and the repeated hour of a fall-back day maps to one `hr=` value).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, UInt32Array};
use arrow::compute::kernels::cmp::{gt_eq, lt};
use arrow::compute::{and, filter_record_batch, take_record_batch};
use arrow::datatypes::{DataType, TimeUnit};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::{DataError, PartitionKey};

/// Returns the rows of `batch` whose `time_column` value `t` satisfies `start <= t < end`.
///
/// The column may be any Arrow `Timestamp` unit (its values are UTC instants whatever the zone
/// label). Rows with a null time are dropped. Boundaries are exact: a value in a coarser unit than
/// the bounds is kept when the instant it denotes is inside the window.
pub fn filter_time_window(
    batch: &RecordBatch,
    time_column: &str,
    start: Timestamp,
    end: Timestamp,
) -> Result<RecordBatch, DataError> {
    let (values, unit) = timestamp_values(batch, time_column)?;
    // t (in `unit`) denotes t * unit; t*unit >= start  <=>  t >= ceil(start / unit), same for end.
    let lo = Int64Array::new_scalar(ceil_in_unit(start, unit));
    let hi = Int64Array::new_scalar(ceil_in_unit(end, unit));
    let ge =
        gt_eq(&values, &lo).map_err(|e| DataError::arrow("comparing with the window start", e))?;
    let lt = lt(&values, &hi).map_err(|e| DataError::arrow("comparing with the window end", e))?;
    let mask = and(&ge, &lt).map_err(|e| DataError::arrow("combining window bounds", e))?;
    filter_record_batch(batch, &mask).map_err(|e| DataError::arrow("filtering a time window", e))
}

/// The local `(date, hour)` in `tz` of every row's `time_column` value, in row order.
///
/// On a fall-back day both repeated local hours give the same `(date, hour)`; on a spring-forward
/// day the skipped hour never appears. A null time is an error.
pub fn local_date_hour_keys(
    batch: &RecordBatch,
    time_column: &str,
    tz: &TimeZone,
) -> Result<Vec<(Date, i8)>, DataError> {
    map_local(batch, time_column, tz, |dt| (dt.date(), dt.hour()))
}

/// The local date in `tz` of every row's `time_column` value, in row order.
pub fn local_date_keys(
    batch: &RecordBatch,
    time_column: &str,
    tz: &TimeZone,
) -> Result<Vec<Date>, DataError> {
    map_local(batch, time_column, tz, |dt| dt.date())
}

/// Splits `batch` into one batch per distinct key, where `keys[i]` is the key of row `i`.
///
/// Groups come back in key order and keep the rows' relative order (built with
/// `arrow::compute::take`).
pub fn split_by_key<K: Ord + Clone>(
    batch: &RecordBatch,
    keys: &[K],
) -> Result<Vec<(K, RecordBatch)>, DataError> {
    if keys.len() != batch.num_rows() {
        return Err(DataError::InvalidOptions {
            what: "partition keys",
            reason: format!(
                "{} keys were given for a batch of {} rows; give exactly one key per row",
                keys.len(),
                batch.num_rows()
            ),
        });
    }
    let mut groups: BTreeMap<&K, Vec<u32>> = BTreeMap::new();
    for (row, key) in keys.iter().enumerate() {
        let row = u32::try_from(row).map_err(|_| DataError::InvalidOptions {
            what: "batch size",
            reason: "a batch has more than 4 billion rows; split it first".into(),
        })?;
        groups.entry(key).or_default().push(row);
    }
    if groups.len() == 1 {
        let key = keys[0].clone();
        return Ok(vec![(key, batch.clone())]);
    }
    groups
        .into_iter()
        .map(|(key, rows)| {
            let indices = UInt32Array::from(rows);
            let part = take_record_batch(batch, &indices)
                .map_err(|e| DataError::arrow("taking the rows of one partition", e))?;
            Ok((key.clone(), part))
        })
        .collect()
}

/// Splits `batch` by the local hour of `time_column` in `tz`: keys `dt=YYYY-MM-DD/hr=HH`.
pub fn partition_by_local_hour(
    batch: &RecordBatch,
    time_column: &str,
    tz: &TimeZone,
) -> Result<Vec<(PartitionKey, RecordBatch)>, DataError> {
    let keys = local_date_hour_keys(batch, time_column, tz)?;
    Ok(split_by_key(batch, &keys)?
        .into_iter()
        .map(|((date, hour), b)| (PartitionKey::date_hour(date, hour), b))
        .collect())
}

/// Splits `batch` by the local date of `time_column` in `tz`: keys `dt=YYYY-MM-DD`.
pub fn partition_by_local_date(
    batch: &RecordBatch,
    time_column: &str,
    tz: &TimeZone,
) -> Result<Vec<(PartitionKey, RecordBatch)>, DataError> {
    let keys = local_date_keys(batch, time_column, tz)?;
    Ok(split_by_key(batch, &keys)?
        .into_iter()
        .map(|(date, b)| (PartitionKey::date(date), b))
        .collect())
}

fn map_local<T>(
    batch: &RecordBatch,
    time_column: &str,
    tz: &TimeZone,
    f: impl Fn(jiff::civil::DateTime) -> T,
) -> Result<Vec<T>, DataError> {
    let (values, unit) = timestamp_values(batch, time_column)?;
    let mut out = Vec::with_capacity(values.len());
    for row in 0..values.len() {
        if values.is_null(row) {
            return Err(DataError::NullValue {
                column: time_column.to_owned(),
                row,
            });
        }
        let ts = timestamp_from_unit(values.value(row), unit).ok_or_else(|| {
            DataError::InvalidOptions {
                what: "timestamp",
                reason: format!(
                    "row {row} of column {time_column:?} is outside the supported range (years -9999 to 9999)"
                ),
            }
        })?;
        out.push(f(tz.to_datetime(ts)));
    }
    Ok(out)
}

/// The raw i64 values of a timestamp column (a zero-copy view) and its unit.
pub(crate) fn timestamp_values(
    batch: &RecordBatch,
    column: &str,
) -> Result<(Int64Array, TimeUnit), DataError> {
    let schema = batch.schema();
    let index = schema
        .index_of(column)
        .map_err(|_| DataError::MissingColumn {
            column: column.to_owned(),
            place: "the batch".into(),
            available: schema.fields().iter().map(|f| f.name().clone()).collect(),
        })?;
    let array: &ArrayRef = batch.column(index);
    let DataType::Timestamp(unit, _) = array.data_type() else {
        return Err(DataError::ColumnType {
            column: column.to_owned(),
            place: "the batch".into(),
            found: array.data_type().to_string(),
            expected: "a Timestamp".into(),
        });
    };
    let data = array
        .to_data()
        .into_builder()
        .data_type(DataType::Int64)
        .build()
        .map_err(|e| DataError::arrow("viewing a timestamp column as integers", e))?;
    Ok((Int64Array::from(data), *unit))
}

/// Converts a raw value in `unit` to a `Timestamp`, if in jiff's range.
pub(crate) fn timestamp_from_unit(value: i64, unit: TimeUnit) -> Option<Timestamp> {
    match unit {
        TimeUnit::Second => Timestamp::from_second(value).ok(),
        TimeUnit::Millisecond => Timestamp::from_millisecond(value).ok(),
        TimeUnit::Microsecond => Timestamp::from_microsecond(value).ok(),
        TimeUnit::Nanosecond => Timestamp::from_nanosecond(i128::from(value)).ok(),
    }
}

/// `ceil(ts / unit)` as an i64, saturating.
fn ceil_in_unit(ts: Timestamp, unit: TimeUnit) -> i64 {
    let ns = ts.as_nanosecond();
    let per: i128 = match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    };
    let q = ns.div_euclid(per) + i128::from(ns.rem_euclid(per) != 0);
    i64::try_from(q).unwrap_or(if q < 0 { i64::MIN } else { i64::MAX })
}

/// Wraps an i64 microsecond array as `Timestamp(Microsecond, "UTC")`.
pub(crate) fn utc_micros_array(values: arrow::array::TimestampMicrosecondArray) -> ArrayRef {
    Arc::new(values.with_timezone(crate::UTC_TZ))
}
