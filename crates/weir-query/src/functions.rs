//! SQL functions weir adds to DataFusion, so a query cuts time the way the partitioners do.
//!
//! `local_date(ts, zone)`: the calendar date of the instant `ts` on the wall clock of the IANA
//! zone `zone` (a `DATE`), computed with the same zone rules as `dt=` partitions, so
//! `GROUP BY local_date(event_time, $tz)` counts exactly the rows a `dt=` partition of that day
//! holds — also across DST changes. `ts` is any timestamp (a zone-less one is read as UTC);
//! `zone` is a constant, usually the run's `$tz`.
//!
//! `hash_bucket(key, buckets)`: the `bucket=` a hash layout of `buckets` buckets puts `key` in
//! (xxh64, jump consistent hashing; an integer or text key), so a query can count a key's
//! buckets before any data is written. A null key is an error, as in the layout.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Date32Array, Int64Array, RecordBatch, UInt32Array};
use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Every function of this module, to register on a session.
pub(crate) fn all() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(LocalDate::new()),
        ScalarUDF::new_from_impl(HashBucket::new()),
    ]
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct LocalDate {
    signature: Signature,
}

impl LocalDate {
    fn new() -> Self {
        LocalDate {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for LocalDate {
    fn name(&self) -> &str {
        "local_date"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match &args[0] {
            DataType::Timestamp(_, _) | DataType::Null => Ok(DataType::Date32),
            other => plan_err!(
                "local_date(ts, zone) takes a timestamp, not {other}; name a timestamp column (a source's time column is one)"
            ),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let zone = match &args.args[1] {
            ColumnarValue::Scalar(
                ScalarValue::Utf8(Some(z))
                | ScalarValue::LargeUtf8(Some(z))
                | ScalarValue::Utf8View(Some(z)),
            ) => z.clone(),
            _ => return exec_err!("local_date(ts, zone): zone must be a constant text, say $tz"),
        };
        let tz = TimeZone::get(&zone).map_err(|e| {
            DataFusionError::Execution(format!(
                "local_date: {zone:?} is not a time zone ({e}); use an IANA name such as Europe/London"
            ))
        })?;
        let array = match &args.args[0] {
            ColumnarValue::Array(a) => a.clone(),
            ColumnarValue::Scalar(s) => s.to_array()?,
        };
        let dates = local_dates(&array, &tz)?;
        Ok(match &args.args[0] {
            ColumnarValue::Scalar(_) => {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&dates, 0)?)
            }
            ColumnarValue::Array(_) => ColumnarValue::Array(dates),
        })
    }
}

fn local_dates(array: &ArrayRef, tz: &TimeZone) -> Result<ArrayRef> {
    let unit = match array.data_type() {
        DataType::Timestamp(unit, _) => *unit,
        DataType::Null => return Ok(Arc::new(Date32Array::new_null(array.len()))),
        other => return exec_err!("local_date(ts, zone) takes a timestamp, not {other}"),
    };
    let values = Int64Array::from(
        array
            .to_data()
            .into_builder()
            .data_type(DataType::Int64)
            .build()?,
    );
    let epoch = jiff::civil::date(1970, 1, 1);
    let mut out = Vec::with_capacity(values.len());
    for i in 0..values.len() {
        if values.is_null(i) {
            out.push(None);
            continue;
        }
        let v = values.value(i);
        let ts = match unit {
            TimeUnit::Second => Timestamp::from_second(v),
            TimeUnit::Millisecond => Timestamp::from_millisecond(v),
            TimeUnit::Microsecond => Timestamp::from_microsecond(v),
            TimeUnit::Nanosecond => Timestamp::from_nanosecond(i128::from(v)),
        }
        .map_err(|e| DataFusionError::Execution(format!("local_date: {e}")))?;
        let date = tz.to_datetime(ts).date();
        let days = (date - epoch).get_days();
        out.push(Some(days));
    }
    Ok(Arc::new(Date32Array::from(out)))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct HashBucket {
    signature: Signature,
}

impl HashBucket {
    fn new() -> Self {
        HashBucket {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for HashBucket {
    fn name(&self) -> &str {
        "hash_bucket"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let buckets = match &args.args[1] {
            ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Int64)? {
                ScalarValue::Int64(Some(n)) if (1..=i64::from(u32::MAX)).contains(&n) => n as u32,
                other => {
                    return exec_err!(
                        "hash_bucket(key, buckets): buckets must be a whole number from 1, not {other}"
                    );
                }
            },
            ColumnarValue::Array(_) => {
                return exec_err!("hash_bucket(key, buckets): buckets must be a constant");
            }
        };
        let (array, scalar) = match &args.args[0] {
            ColumnarValue::Array(a) => (a.clone(), false),
            ColumnarValue::Scalar(s) => (s.to_array()?, true),
        };
        let field = arrow::datatypes::Field::new("key", array.data_type().clone(), true);
        let batch = RecordBatch::try_new(
            Arc::new(arrow::datatypes::Schema::new(vec![field])),
            vec![array],
        )?;
        let partitioner = weir_data::partitioners::HashPartitioner::new(
            "key",
            buckets,
            weir_data::partitioners::BucketScheme::Jump,
        )
        .and_then(|p| p.assign(&batch))
        .map_err(|e| DataFusionError::Execution(format!("hash_bucket: {e}")))?;
        let out: ArrayRef = Arc::new(UInt32Array::from(partitioner));
        Ok(if scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }
}
