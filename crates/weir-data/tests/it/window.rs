//! Time windows (start inclusive, end exclusive), local date/hour keys across DST, and splitting.

use std::sync::Arc;

use arrow::array::{
    Array, Int64Array, RecordBatch, TimestampMicrosecondArray, TimestampNanosecondArray,
    TimestampSecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use jiff::Timestamp;
use jiff::civil::date;
use jiff::tz::TimeZone;
use weir_data::{
    ReadOptions, SampleSpec, filter_time_window, local_date_hour_keys, open_source,
    partition_by_local_hour, split_by_key, write_orders_csv,
};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn micros_batch(values: Vec<Option<i64>>) -> RecordBatch {
    let n = values.len() as i64;
    let schema = Schema::new(vec![
        Field::new(
            "t",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("row", DataType::Int64, false),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC")),
            Arc::new(Int64Array::from_iter_values(0..n)),
        ],
    )
    .unwrap()
}

fn rows(batch: &RecordBatch) -> Vec<i64> {
    batch
        .column(1)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .values()
        .to_vec()
}

#[test]
fn window_includes_start_and_excludes_end() {
    let start = ts("2026-03-08T00:00:00Z");
    let end = ts("2026-03-09T00:00:00Z");
    let (s, e) = (start.as_microsecond(), end.as_microsecond());
    let batch = micros_batch(vec![
        Some(s - 1),
        Some(s),
        Some(s + 1),
        Some(e - 1),
        Some(e),
        Some(e + 1),
        None,
    ]);
    let out = filter_time_window(&batch, "t", start, end).unwrap();
    assert_eq!(rows(&out), vec![1, 2, 3]);
}

#[test]
fn window_bounds_are_exact_in_coarser_and_finer_units() {
    let start = ts("2026-03-08T00:00:00.5Z");
    let end = ts("2026-03-08T00:00:02.5Z");
    let secs = ts("2026-03-08T00:00:00Z").as_second();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("t", DataType::Timestamp(TimeUnit::Second, None), false),
            Field::new("row", DataType::Int64, false),
        ])),
        vec![
            Arc::new(TimestampSecondArray::from(vec![
                secs,
                secs + 1,
                secs + 2,
                secs + 3,
            ])),
            Arc::new(Int64Array::from(vec![0, 1, 2, 3])),
        ],
    )
    .unwrap();
    // 00:00:00 < start; 00:00:01 and 00:00:02 inside; 00:00:03 >= end.
    assert_eq!(
        rows(&filter_time_window(&batch, "t", start, end).unwrap()),
        vec![1, 2]
    );

    let ns = start.as_nanosecond() as i64;
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("+00:00".into())),
                false,
            ),
            Field::new("row", DataType::Int64, false),
        ])),
        vec![
            Arc::new(
                TimestampNanosecondArray::from(vec![ns - 1, ns, ns + 1]).with_timezone("+00:00"),
            ),
            Arc::new(Int64Array::from(vec![0, 1, 2])),
        ],
    )
    .unwrap();
    assert_eq!(
        rows(&filter_time_window(&batch, "t", start, end).unwrap()),
        vec![1, 2]
    );
}

#[test]
fn window_count_matches_an_independent_count_on_sample_data() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("orders.csv");
    write_orders_csv(
        &SampleSpec {
            rows: 20_000,
            ..SampleSpec::default()
        },
        &path,
    )
    .unwrap();
    let opts = ReadOptions {
        time_column: Some("event_time".into()),
        batch_size: 3000,
        ..ReadOptions::default()
    };
    let start = ts("2026-03-08T05:00:00Z");
    let end = ts("2026-03-09T05:00:00Z");
    let (mut filtered, mut counted) = (0usize, 0usize);
    for batch in open_source(&path, &opts).unwrap() {
        let batch = batch.unwrap();
        filtered += filter_time_window(&batch, "event_time", start, end)
            .unwrap()
            .num_rows();
        let t = batch
            .column(4)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        counted += t
            .values()
            .iter()
            .filter(|v| (start.as_microsecond()..end.as_microsecond()).contains(v))
            .count();
    }
    assert!(
        counted > 300,
        "the window should hold a day of rows, got {counted}"
    );
    assert_eq!(filtered, counted);
}

#[test]
fn local_hours_follow_dst_in_new_york() {
    let tz = TimeZone::get("America/New_York").unwrap();
    let times = [
        "2026-03-08T06:30:00Z", // 01:30 EST
        "2026-03-08T07:30:00Z", // 03:30 EDT (02:xx does not exist)
        "2026-11-01T05:30:00Z", // 01:30 EDT
        "2026-11-01T06:30:00Z", // 01:30 EST, the repeated hour
        "2026-11-01T07:30:00Z", // 02:30 EST
    ];
    let batch = micros_batch(times.iter().map(|s| Some(ts(s).as_microsecond())).collect());
    let keys = local_date_hour_keys(&batch, "t", &tz).unwrap();
    assert_eq!(
        keys,
        vec![
            (date(2026, 3, 8), 1),
            (date(2026, 3, 8), 3),
            (date(2026, 11, 1), 1),
            (date(2026, 11, 1), 1),
            (date(2026, 11, 1), 2),
        ]
    );
    let parts = partition_by_local_hour(&batch, "t", &tz).unwrap();
    let names: Vec<String> = parts.iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(
        names,
        [
            "dt=2026-03-08/hr=01",
            "dt=2026-03-08/hr=03",
            "dt=2026-11-01/hr=01",
            "dt=2026-11-01/hr=02"
        ]
    );
    assert_eq!(
        rows(&parts[2].1),
        vec![2, 3],
        "both repeated 01:xx hours go to one partition"
    );
}

#[test]
fn split_by_key_groups_rows_in_order() {
    let batch = micros_batch((0..10).map(Some).collect());
    let keys: Vec<u8> = vec![2, 0, 1, 2, 0, 1, 2, 0, 1, 2];
    let groups = split_by_key(&batch, &keys).unwrap();
    let got: Vec<(u8, Vec<i64>)> = groups.iter().map(|(k, b)| (*k, rows(b))).collect();
    assert_eq!(
        got,
        vec![
            (0, vec![1, 4, 7]),
            (1, vec![2, 5, 8]),
            (2, vec![0, 3, 6, 9])
        ]
    );
    assert!(split_by_key(&batch, &keys[..3]).is_err());
}
