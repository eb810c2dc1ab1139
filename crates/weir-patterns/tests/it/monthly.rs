//! 110.1.4 Monthly batch processing (`110_01_04_monthly_batch_processing`).

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{Array, Int64Array, StringArray, UInt32Array};
use jiff::civil::{Date, date};
use weir_core::{RunState, TaskState};
use weir_patterns::p110::monthly_batch_processing::DAG_ID;

use crate::support::*;

/// Copies an orders CSV without the rows whose New York date is in `drop`.
fn copy_without_days(src: &Path, dst: &Path, drop: &[Date]) {
    let mut reader = csv::Reader::from_path(src).unwrap();
    let headers = reader.headers().unwrap().clone();
    let time = headers.iter().position(|h| h == "event_time").unwrap();
    let mut writer = csv::Writer::from_path(dst).unwrap();
    writer.write_record(&headers).unwrap();
    for record in reader.records() {
        let record = record.unwrap();
        let t: jiff::Timestamp = record[time].parse().unwrap();
        if !drop.contains(&t.to_zoned(tz(NEW_YORK)).date()) {
            writer.write_record(&record).unwrap();
        }
    }
    writer.flush().unwrap();
}

/// The close record of a month: (month, days_in_month, orders, first_day, last_day).
fn close_record(root: &Path, month: &str) -> (String, u32, i64, String, String) {
    let batches = read_partition(root, &format!("mo={month}"));
    assert_eq!(rows_of(&batches), 1);
    let b = &batches[0];
    let text = |name: &str| {
        b.column_by_name(name)
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .value(0)
            .to_owned()
    };
    let days = b
        .column_by_name("days_in_month")
        .unwrap()
        .as_any()
        .downcast_ref::<UInt32Array>()
        .unwrap()
        .value(0);
    let orders = b
        .column_by_name("orders")
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0);
    (
        text("month"),
        days,
        orders,
        text("first_day"),
        text("last_day"),
    )
}

/// Runs one month end to end and checks the load: the `mo=` partition holds exactly the rows of
/// the local month, and the run reports the calendar's days and the zone's hours.
async fn run_month(
    w: &World,
    first: Date,
    source: &Path,
    days: i64,
    hours: i64,
) -> (weir_runtime::RunOutcome, u64) {
    let output = w.path("out/monthly");
    let orders = read_orders(source);
    let next = first.last_of_month().tomorrow().unwrap();
    let expected = count_in(&orders, midnight(first, NEW_YORK), midnight(next, NEW_YORK));
    let outcome = w
        .run(
            DAG_ID,
            midnight(first, NEW_YORK),
            conf([("source", s(source)), ("output", s(&output))]),
        )
        .await;
    let month = format!("{:04}-{:02}", first.year(), first.month());
    assert_eq!(
        outcome
            .run
            .interval_end
            .duration_since(outcome.run.interval_start),
        jiff::SignedDuration::from_hours(hours)
    );
    let loaded = w.output(&outcome.run, "load_month").await;
    assert_eq!(loaded["month"], month.as_str());
    assert_eq!(loaded["days_in_month"], days);
    assert_eq!(loaded["hours_in_month"], hours);
    assert_eq!(loaded["rows"], expected);
    // Per-day counts are those of the local days.
    let per_day: BTreeMap<String, u64> = per_local_date(&orders, NEW_YORK)
        .into_iter()
        .filter(|(d, _)| (first..next).contains(d))
        .map(|(d, n)| (d.to_string(), n))
        .collect();
    assert_eq!(loaded["per_day"], serde_json::json!(per_day));
    let rows = partition_rows(&output);
    assert_eq!(
        rows.get(&format!("mo={month}")),
        Some(&expected),
        "{rows:?}"
    );
    for t in times(&read_partition(&output, &format!("mo={month}"))) {
        let d = t.to_zoned(tz(NEW_YORK)).date();
        assert!((first..next).contains(&d), "row at {t} in mo={month}");
    }
    (outcome, expected)
}

/// March 2026 in New York: 31 days, 743 hours (spring forward); the month loads, every day has
/// data, and the close record is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn march_loads_and_closes() {
    let w = World::new().await;
    let source = w.sample("march.csv", utc(2026, 3, 1), 32, 20_000, 13);
    let (outcome, expected) = run_month(&w, date(2026, 3, 1), &source, 31, 743).await;
    assert_states(
        &w,
        &outcome,
        RunState::Success,
        &[
            ("load_month", TaskState::Success),
            ("check_month_complete", TaskState::Success),
            ("close_month", TaskState::Success),
        ],
    )
    .await;
    let close = close_record(&w.path("out/monthly_close"), "2026-03");
    assert_eq!(
        close,
        (
            "2026-03".to_owned(),
            31,
            expected as i64,
            "2026-03-01".to_owned(),
            "2026-03-31".to_owned()
        )
    );
    let manifests = w.store.manifests(&s(&w.path("out/monthly"))).await.unwrap();
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[0].rows_out, expected);
}

/// A month with empty days is loaded but never closed: `check_month_complete` fails naming the
/// empty days and `close_month` ends `upstream_failed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn month_with_empty_days_is_not_closed() {
    let w = World::new().await;
    let full = w.sample("march.csv", utc(2026, 3, 1), 32, 20_000, 17);
    let gappy = w.path("sources/march-gappy.csv");
    let empty = [date(2026, 3, 10), date(2026, 3, 11), date(2026, 3, 31)];
    copy_without_days(&full, &gappy, &empty);
    let (outcome, _) = run_month(&w, date(2026, 3, 1), &gappy, 31, 743).await;
    assert_states(
        &w,
        &outcome,
        RunState::Failed,
        &[
            ("load_month", TaskState::Success),
            ("check_month_complete", TaskState::Failed),
            ("close_month", TaskState::UpstreamFailed),
        ],
    )
    .await;
    let error = w.tasks(&outcome.run).await["check_month_complete"]
        .error
        .clone()
        .unwrap_or_default();
    assert!(
        error.contains("3 of 31") && error.contains("2026-03-10, 2026-03-11, 2026-03-31"),
        "{error}"
    );
    assert!(!error.contains("2026-03-09"), "{error}");
    let close = w.path("out/monthly_close");
    assert!(!close.exists() || partition_rows(&close).is_empty());
}

/// February 2026: 28 days, 672 hours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn february_has_28_days() {
    let w = World::new().await;
    let source = w.sample("february.csv", utc(2026, 2, 1), 29, 20_000, 19);
    let (outcome, expected) = run_month(&w, date(2026, 2, 1), &source, 28, 672).await;
    assert_states(&w, &outcome, RunState::Success, &[]).await;
    let close = close_record(&w.path("out/monthly_close"), "2026-02");
    assert_eq!(
        close,
        (
            "2026-02".to_owned(),
            28,
            expected as i64,
            "2026-02-01".to_owned(),
            "2026-02-28".to_owned()
        )
    );
}
