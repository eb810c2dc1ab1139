//! SQL functions weir adds to DataFusion, so a query cuts time the way the partitioners do.
//!
//! `local_date(ts, zone)`: the calendar date of the instant `ts` on the wall clock of the IANA
//! zone `zone` (a `DATE`), computed with the same zone rules as `dt=` partitions, so
//! `GROUP BY local_date(event_time, $tz)` counts exactly the rows a `dt=` partition of that day
//! holds — also across DST changes. `ts` is any timestamp (a zone-less one is read as UTC);
//! `zone` is a constant, usually the run's `$tz`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Date32Array, Int64Array};
use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Every function of this module, to register on a session.
pub(crate) fn all() -> Vec<ScalarUDF> {
    vec![ScalarUDF::new_from_impl(LocalDate::new())]
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
