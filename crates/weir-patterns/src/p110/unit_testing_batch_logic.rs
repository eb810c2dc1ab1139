//! 110.7.1 Unit testing batch logic — `110_07_01_unit_testing_batch_logic`.
//!
//! A small daily pipeline whose logic is worth testing — `load` cuts New York calendar days into
//! `dt=` partitions, `aggregate` sums each region's orders and revenue for the day — and the pure
//! functions behind it, with their reference suite in
//! `crates/weir-patterns/tests/it/unit_testing.rs`, written with [`weir_ops::testing`]: a temp
//! home with the real store and executor, a manual clock, fixture sources from literal rows.
//!
//! What it demonstrates:
//! - **Test partition logic**: the suite loads literal rows around both 2026 DST changes and
//!   checks each lands in the `dt=` partition of its New York date — 2026-03-08 is a 23-hour
//!   partition, 2026-11-01 a 25-hour one holding both 01:30s — against dates it computes with
//!   jiff; [`day_partition`] is the rule as a pure function.
//! - **Validate aggregation functions**: [`region_totals`] is the per-region aggregation over
//!   Arrow batches (orders, exact revenue in cents); the suite checks it on literal batches
//!   against hand-computed totals, and the `aggregate` SQL over the committed partition against
//!   the same totals.
//! - **Test boundary handling**: [`local_day_bounds`] gives a local day's `[start, end)` as UTC
//!   instants (23 or 25 hours on DST days; a day whose midnight does not exist starts at
//!   01:00), and the suite checks a row at an interval's start is in it and one at its end is
//!   in the next.
//! - **Mock data sources**: nothing is mocked: the test writes ~20 literal rows as a CSV in the
//!   test home ([`weir_ops::testing::TestHome::source_csv`], with a schema sidecar) and the
//!   engine reads it as it reads any source — so the test also covers the reader's types and
//!   rejects.
//!
//! Run it: `weir dags run 110_07_01_unit_testing_batch_logic --logical-date 2026-03-08`; its
//! suite: `cargo test -p weir-patterns --test it unit_testing`.

use std::collections::BTreeMap;

use arrow::array::{Array, Decimal128Array, RecordBatch, StringArray};
use arrow::datatypes::DataType;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Deserialize;
use weir_core::timetable::{parse_zone, window_schedule};
use weir_data::DataError;
use weir_data::partitioners::Granularity;
use weir_ops::load::window_param_specs;
use weir_ops::{LoadWindow, Sql};
use weir_runtime::DagDef;

pub const DAG_ID: &str = "110_07_01_unit_testing_batch_logic";
pub const ZONE: &str = "America/New_York";

/// The day's orders and revenue per region, in exact cents (`amount` has two decimals).
pub const AGGREGATE_SQL: &str = "SELECT arrow_cast(region, 'Utf8') AS region, count(*) AS orders, \
        sum(CAST(round(CAST(amount AS DOUBLE) * 100) AS BIGINT)) AS revenue_cents \
     FROM orders WHERE dt = $ds GROUP BY region ORDER BY region";

pub fn dag() -> DagDef {
    let tz = parse_zone(ZONE).expect("a known zone");
    DagDef::builder(DAG_ID)
        .description(
            "A daily load and a per-region aggregate, with the pure functions a unit test checks",
        )
        .tags(["110.7", "testing", "intermediate"])
        .schedule(window_schedule("@daily", tz.clone()).expect("a valid schedule"))
        .start_date(
            jiff::civil::date(2026, 3, 1)
                .to_zoned(tz)
                .expect("valid")
                .timestamp(),
        )
        .catchup(false)
        .max_active_runs(4)
        .params(window_param_specs())
        .task(
            weir_ops::task("load", LoadWindow::by_date(Granularity::Day))
                .doc("The run's New York day of the source into dt=YYYY-MM-DD"),
        )
        .task(
            weir_ops::task("aggregate", Sql::new(AGGREGATE_SQL).input("orders", "load"))
                .after(["load"])
                .doc("Orders and revenue (cents) per region of the day, as rows"),
        )
        .build()
        .expect("a valid DAG")
}

/// `[start, end)` of the calendar day `day` in `zone`, as UTC instants: from the day's first
/// instant to the next day's. 24 hours on most days, 23 on a spring-forward day, 25 on a
/// fall-back day; a day whose midnight does not exist (a DST change at 00:00) starts at the
/// first local time it has.
pub fn local_day_bounds(day: Date, zone: &TimeZone) -> Result<(Timestamp, Timestamp), jiff::Error> {
    let start = day.to_zoned(zone.clone())?.start_of_day()?;
    let end = day.tomorrow()?.to_zoned(zone.clone())?.start_of_day()?;
    Ok((start.timestamp(), end.timestamp()))
}

/// The `dt=YYYY-MM-DD` partition an event at `t` belongs to: its calendar date in `zone`.
pub fn day_partition(t: Timestamp, zone: &TimeZone) -> String {
    format!("dt={}", t.to_zoned(zone.clone()).date())
}

/// One region's orders and revenue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegionTotals {
    pub orders: u64,
    /// The sum of `amount`, in exact cents.
    pub revenue_cents: i128,
}

/// Orders and revenue per region over `batches` (columns `region`, any string type, and
/// `amount`: a decimal, an integer or a float, rounded to cents). A null region or amount is
/// an error naming its row: a total silently short of one order is worse than none.
pub fn region_totals(batches: &[RecordBatch]) -> Result<BTreeMap<String, RegionTotals>, DataError> {
    let mut out: BTreeMap<String, RegionTotals> = BTreeMap::new();
    for batch in batches {
        let region = column(batch, "region", &DataType::Utf8)?;
        let region = region
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| {
                DataError::Internal("region cast to Utf8 is not a string array".into())
            })?;
        let amount = column(batch, "amount", &DataType::Decimal128(38, 2))?;
        let amount = amount
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .ok_or_else(|| {
                DataError::Internal("amount cast to Decimal128 is not a decimal array".into())
            })?;
        for row in 0..batch.num_rows() {
            for (name, valid) in [
                ("region", region.is_valid(row)),
                ("amount", amount.is_valid(row)),
            ] {
                if !valid {
                    return Err(DataError::NullValue {
                        column: name.to_owned(),
                        row,
                    });
                }
            }
            let totals = out.entry(region.value(row).to_owned()).or_default();
            totals.orders += 1;
            totals.revenue_cents += amount.value(row);
        }
    }
    Ok(out)
}

/// Column `name` of `batch`, cast to `to`.
fn column(
    batch: &RecordBatch,
    name: &str,
    to: &DataType,
) -> Result<arrow::array::ArrayRef, DataError> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| DataError::MissingColumn {
            column: name.to_owned(),
            place: "the batch".to_owned(),
            available: batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect(),
        })?;
    arrow::compute::cast(col, to)
        .map_err(|e| DataError::arrow(format!("casting {name} to {to}"), e))
}

/// One row of `aggregate`'s output.
#[derive(Debug, Deserialize)]
struct AggregateRow {
    region: String,
    orders: u64,
    revenue_cents: i64,
}

/// `aggregate`'s output (its rows) as totals per region.
pub fn aggregate_totals(
    output: serde_json::Value,
) -> Result<BTreeMap<String, RegionTotals>, serde_json::Error> {
    let rows: Vec<AggregateRow> = serde_json::from_value(output)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.region,
                RegionTotals {
                    orders: r.orders,
                    revenue_cents: i128::from(r.revenue_cents),
                },
            )
        })
        .collect())
}
