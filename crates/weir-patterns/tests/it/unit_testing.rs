//! 110.7.1 Unit testing batch logic (`110_07_01_unit_testing_batch_logic`): the reference suite,
//! written with `weir_ops::testing`. Sources are literal rows written in the test home; every
//! expected value is computed here — from the literal rows, with jiff's civil-time arithmetic,
//! or by hand — never read back from weir.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Decimal128Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use jiff::Timestamp;
use jiff::civil::{Date, date};
use weir_core::{RunState, TaskState};
use weir_ops::testing::{TestHome, partitions, read_partition};
use weir_patterns::p110::unit_testing_batch_logic::{self as unit, RegionTotals};

use crate::support::{LONDON, NEW_YORK, conf, i64_column, midnight, s, tz};

const HEADER: &str = "order_id,region,event_time,amount";

/// Declared types: `amount` is exact, so revenue sums to the cent.
const SCHEMA: &str = "order_id: int not null\n\
                      region: string not null\n\
                      event_time: timestamp not null\n\
                      amount: decimal(12,2) not null\n";

/// (order_id, region, event_time, amount): 20 orders around New York's 2026-03-05, a 24-hour
/// EST day from 05:00Z to 05:00Z the next day.
const DAY_ROWS: [(i64, &str, &str, &str); 20] = [
    (1, "NAM", "2026-03-05T05:00:00Z", "10.00"), // the day's first instant: in
    (2, "NAM", "2026-03-05T12:30:00Z", "25.50"),
    (3, "EU", "2026-03-05T09:15:00Z", "7.25"),
    (4, "EU", "2026-03-05T16:45:00Z", "100.00"),
    (5, "APAC", "2026-03-05T23:59:59Z", "3.99"),
    (6, "APAC", "2026-03-06T04:59:59Z", "12.01"), // the day's last second: in
    (7, "NAM", "2026-03-06T05:00:00Z", "999.99"), // the interval's end: the next day
    (8, "EU", "2026-03-05T04:59:59Z", "888.88"),  // 23:59:59 on the 4th
    (9, "LATAM", "2026-03-05T14:00:00Z", "45.00"),
    (10, "LATAM", "2026-03-05T14:00:01Z", "5.00"),
    (11, "NAM", "2026-03-05T20:00:00Z", "0.01"),
    (12, "EU", "2026-03-05T21:10:00Z", "19.99"),
    (13, "APAC", "2026-03-05T06:00:00Z", "250.00"),
    (14, "NAM", "2026-03-04T12:00:00Z", "50.00"),
    (15, "LATAM", "2026-03-06T12:00:00Z", "60.00"),
    (16, "EU", "2026-03-05T10:00:00Z", "0.50"),
    (17, "NAM", "2026-03-05T18:18:18Z", "18.18"),
    (18, "APAC", "2026-03-05T07:07:07Z", "7.07"),
    (19, "LATAM", "2026-03-06T01:00:00Z", "1.00"), // 20:00 on the 5th in New York: in
    (20, "EU", "2026-03-05T05:00:01Z", "2.00"),
];

fn lines(rows: &[(i64, &str, &str, &str)]) -> Vec<String> {
    rows.iter()
        .map(|(id, region, time, amount)| format!("{id},{region},{time},{amount}"))
        .collect()
}

fn refs(lines: &[String]) -> Vec<&str> {
    lines.iter().map(String::as_str).collect()
}

/// `"12.50"` / `"-5.00"` → exact cents.
fn cents(text: &str) -> i128 {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    assert!(frac.len() <= 2, "{text} has more than two decimals");
    let frac = format!("{frac:0<2}");
    sign * (whole.parse::<i128>().unwrap() * 100 + frac.parse::<i128>().unwrap())
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn totals(orders: u64, revenue_cents: i128) -> RegionTotals {
    RegionTotals {
        orders,
        revenue_cents,
    }
}

/// The whole DAG over a source of literal rows: the day's partition holds the rows of its
/// interval, and the `aggregate` SQL, `region_totals` over the committed partition and the
/// hand-computed totals agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dag_over_literal_rows_totals_each_region_as_computed_by_hand() {
    let home = TestHome::new([unit::dag()]).await;
    let rows = lines(&DAY_ROWS);
    let source = home.source_csv("orders.csv", HEADER, &refs(&rows));
    home.source_schema("orders.csv", SCHEMA);
    let out = home.path("out/unit");
    let day = date(2026, 3, 5);
    let (from, to) = (
        midnight(day, NEW_YORK),
        midnight(day.tomorrow().unwrap(), NEW_YORK),
    );

    // What the day holds, from the literal rows...
    let mut expected: BTreeMap<String, RegionTotals> = BTreeMap::new();
    for (_, region, time, amount) in DAY_ROWS {
        let t = ts(time);
        if (from..to).contains(&t) {
            let e = expected.entry(region.to_owned()).or_default();
            e.orders += 1;
            e.revenue_cents += cents(amount);
        }
    }
    // ...and by hand (so the filter above is checked too).
    let by_hand = BTreeMap::from([
        ("APAC".to_owned(), totals(4, 399 + 1201 + 25_000 + 707)),
        ("EU".to_owned(), totals(5, 725 + 10_000 + 1999 + 50 + 200)),
        ("LATAM".to_owned(), totals(3, 4500 + 500 + 100)),
        ("NAM".to_owned(), totals(4, 1000 + 2550 + 1 + 1818)),
    ]);
    assert_eq!(expected, by_hand);
    assert_eq!(by_hand["EU"].revenue_cents, 12_974);
    let in_day: u64 = by_hand.values().map(|t| t.orders).sum();
    assert_eq!(in_day, 16);

    let load = home
        .run_task(
            unit::DAG_ID,
            "load",
            from,
            conf([("source", s(&source)), ("output", s(&out))]),
        )
        .await;
    assert_eq!(load.state, TaskState::Success, "{:?}", load.error);
    assert_eq!(load.tries, 1);
    home.assert_run_state(&load.run.run, RunState::Success)
        .await;
    assert_eq!(
        load.output.as_ref().map(|o| o["rows"].clone()),
        Some(serde_json::json!(in_day))
    );
    assert_eq!(
        partitions(&out),
        BTreeMap::from([("dt=2026-03-05".to_owned(), in_day)])
    );

    let aggregated = unit::aggregate_totals(home.output(&load.run.run, "aggregate").await)
        .expect("aggregate's rows");
    assert_eq!(aggregated, expected, "the aggregate SQL");
    let batches = read_partition(&out, "dt=2026-03-05");
    assert_eq!(
        unit::region_totals(&batches).expect("totals"),
        expected,
        "region_totals over the committed partition"
    );
}

/// Partition logic on both DST days of 2026 in New York: each row lands in the `dt=` of its
/// local date (computed here with jiff), a row at an interval's start is in it and one at its
/// end in the next day, and the days are 23 and 25 hours long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_dst_days_land_in_their_local_date_and_interval_edges_are_exact() {
    let home = TestHome::new([unit::dag()]).await;
    let rows: [(i64, &str, &str, &str); 12] = [
        // 2026-03-08: 00:00 EST (05:00Z) to 00:00 EDT (04:00Z); 02:00–03:00 does not exist.
        (101, "NAM", "2026-03-08T04:59:59Z", "1.00"), // 23:59:59 on the 7th
        (102, "NAM", "2026-03-08T05:00:00Z", "1.00"), // the interval's start
        (103, "NAM", "2026-03-08T06:59:59Z", "1.00"), // 01:59:59 EST
        (104, "NAM", "2026-03-08T07:00:00Z", "1.00"), // 03:00 EDT, one second later
        (105, "NAM", "2026-03-09T03:59:59Z", "1.00"), // 23:59:59 EDT
        (106, "NAM", "2026-03-09T04:00:00Z", "1.00"), // the interval's end: the 9th
        // 2026-11-01: 00:00 EDT (04:00Z) to 00:00 EST (05:00Z); 01:00–02:00 happens twice.
        (201, "EU", "2026-11-01T03:59:59Z", "1.00"), // 23:59:59 on Oct 31
        (202, "EU", "2026-11-01T04:00:00Z", "1.00"), // the interval's start
        (203, "EU", "2026-11-01T05:30:00Z", "1.00"), // the first 01:30 (EDT)
        (204, "EU", "2026-11-01T06:30:00Z", "1.00"), // the second 01:30 (EST)
        (205, "EU", "2026-11-02T04:59:59Z", "1.00"), // 23:59:59 EST
        (206, "EU", "2026-11-02T05:00:00Z", "1.00"), // the interval's end: Nov 2
    ];
    let text = lines(&rows);
    let source = home.source_csv("dst.csv", HEADER, &refs(&text));
    home.source_schema("dst.csv", SCHEMA);
    let out = home.path("out/dst");
    let c = conf([("source", s(&source)), ("output", s(&out))]);

    // Expected: each row's local date, with jiff.
    let ny = tz(NEW_YORK);
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for (_, _, time, _) in rows {
        let local: Date = ts(time).to_zoned(ny.clone()).date();
        *expected.entry(format!("dt={local}")).or_default() += 1;
    }
    assert_eq!(
        expected,
        BTreeMap::from([
            ("dt=2026-03-07".to_owned(), 1),
            ("dt=2026-03-08".to_owned(), 4),
            ("dt=2026-03-09".to_owned(), 1),
            ("dt=2026-10-31".to_owned(), 1),
            ("dt=2026-11-01".to_owned(), 4),
            ("dt=2026-11-02".to_owned(), 1),
        ])
    );

    let mut hours: BTreeMap<Date, i64> = BTreeMap::new();
    for (first, last) in [
        (date(2026, 3, 7), date(2026, 3, 9)),
        (date(2026, 10, 31), date(2026, 11, 2)),
    ] {
        let report = home
            .backfill(
                unit::DAG_ID,
                midnight(first, NEW_YORK),
                midnight(last, NEW_YORK),
                c.clone(),
            )
            .await;
        assert_eq!(report.count(RunState::Success), 3, "{:?}", report.runs);
        for (run, _) in &report.runs {
            let day = run.logical_date.to_zoned(ny.clone()).date();
            hours.insert(
                day,
                run.interval_end
                    .duration_since(run.interval_start)
                    .as_hours(),
            );
        }
    }
    assert_eq!(hours[&date(2026, 3, 8)], 23, "{hours:?}");
    assert_eq!(hours[&date(2026, 11, 1)], 25, "{hours:?}");
    assert_eq!(hours[&date(2026, 3, 7)], 24, "{hours:?}");
    assert_eq!(partitions(&out), expected);

    // The edges: start in, end out (it is in the next day's partition).
    let ids = |partition: &str| {
        let mut ids = i64_column(&read_partition(&out, partition), "order_id");
        ids.sort_unstable();
        ids
    };
    assert_eq!(ids("dt=2026-03-08"), [102, 103, 104, 105]);
    assert_eq!(ids("dt=2026-03-09"), [106]);
    assert_eq!(ids("dt=2026-11-01"), [202, 203, 204, 205]);
    assert_eq!(ids("dt=2026-11-02"), [206]);
}

fn batch(regions: &[&str], amount_cents: &[Option<i128>]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("region", DataType::Utf8, false),
        Field::new("amount", DataType::Decimal128(12, 2), true),
    ]));
    let amount = Decimal128Array::from(amount_cents.to_vec())
        .with_precision_and_scale(12, 2)
        .unwrap();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(regions.to_vec())) as ArrayRef,
            Arc::new(amount) as ArrayRef,
        ],
    )
    .unwrap()
}

/// The aggregation function over literal batches: counts and exact sums (negative amounts, a
/// zero, a region spread over two batches) equal the hand-computed ones; whole-unit integer
/// amounts are cents × 100; a null amount is an error naming the column, not a silent zero.
#[test]
fn region_totals_over_literal_batches_equal_hand_computed_totals() {
    let batches = [
        batch(&["EU", "NAM", "EU"], &[Some(1050), Some(1), Some(-250)]),
        batch(&["NAM", "APAC"], &[Some(99_999), Some(0)]),
    ];
    assert_eq!(
        unit::region_totals(&batches).unwrap(),
        BTreeMap::from([
            ("APAC".to_owned(), totals(1, 0)),
            ("EU".to_owned(), totals(2, 800)),
            ("NAM".to_owned(), totals(2, 100_000)),
        ])
    );
    assert_eq!(unit::region_totals(&[]).unwrap(), BTreeMap::new());

    let whole_units = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("region", DataType::Utf8, false),
            Field::new("amount", DataType::Int64, false),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["LATAM", "LATAM"])) as ArrayRef,
            Arc::new(Int64Array::from(vec![12, 3])) as ArrayRef,
        ],
    )
    .unwrap();
    assert_eq!(
        unit::region_totals(&[whole_units]).unwrap(),
        BTreeMap::from([("LATAM".to_owned(), totals(2, 1500))])
    );

    let with_null = batch(&["EU", "EU"], &[Some(100), None]);
    match unit::region_totals(&[with_null]) {
        Err(weir_data::DataError::NullValue { column, row }) => {
            assert_eq!((column.as_str(), row), ("amount", 1));
        }
        other => panic!("a null amount must be an error, got {other:?}"),
    }
}

/// `local_day_bounds` on ordinary and DST days, in three zones, against literal UTC instants:
/// 23- and 25-hour days, and Havana's 2026-03-08, whose midnight does not exist (clocks jump
/// from 00:00 to 01:00), starting at 01:00.
#[test]
fn local_day_bounds_on_dst_days_are_23_and_25_hours() {
    let cases = [
        (
            date(2026, 3, 5),
            NEW_YORK,
            "2026-03-05T05:00:00Z",
            "2026-03-06T05:00:00Z",
            24,
        ),
        (
            date(2026, 3, 8),
            NEW_YORK,
            "2026-03-08T05:00:00Z",
            "2026-03-09T04:00:00Z",
            23,
        ),
        (
            date(2026, 11, 1),
            NEW_YORK,
            "2026-11-01T04:00:00Z",
            "2026-11-02T05:00:00Z",
            25,
        ),
        (
            date(2026, 3, 29),
            LONDON,
            "2026-03-29T00:00:00Z",
            "2026-03-29T23:00:00Z",
            23,
        ),
        (
            date(2026, 10, 25),
            LONDON,
            "2026-10-24T23:00:00Z",
            "2026-10-26T00:00:00Z",
            25,
        ),
        (
            date(2026, 3, 8),
            "America/Havana",
            "2026-03-08T05:00:00Z",
            "2026-03-09T04:00:00Z",
            23,
        ),
        (
            date(2026, 11, 1),
            "America/Havana",
            "2026-11-01T04:00:00Z",
            "2026-11-02T05:00:00Z",
            25,
        ),
    ];
    for (day, zone, start, end, hours) in cases {
        let (s, e) = unit::local_day_bounds(day, &tz(zone)).unwrap();
        assert_eq!((s, e), (ts(start), ts(end)), "{day} in {zone}");
        assert_eq!(e.duration_since(s).as_hours(), hours, "{day} in {zone}");
    }
    let (havana_start, _) =
        unit::local_day_bounds(date(2026, 3, 8), &tz("America/Havana")).unwrap();
    assert_eq!(
        havana_start.to_zoned(tz("America/Havana")).time(),
        jiff::civil::time(1, 0, 0, 0),
        "the day starts at its first local time"
    );
}

/// `day_partition`: both 01:30s of the fall-back night are on 2026-11-01; one second before
/// New York's midnight is the previous day.
#[test]
fn day_partition_follows_the_local_calendar() {
    let ny = tz(NEW_YORK);
    assert_eq!(
        unit::day_partition(ts("2026-11-01T05:30:00Z"), &ny),
        "dt=2026-11-01"
    );
    assert_eq!(
        unit::day_partition(ts("2026-11-01T06:30:00Z"), &ny),
        "dt=2026-11-01"
    );
    assert_eq!(
        unit::day_partition(ts("2026-03-08T04:59:59Z"), &ny),
        "dt=2026-03-07"
    );
    assert_eq!(
        unit::day_partition(ts("2026-03-08T05:00:00Z"), &ny),
        "dt=2026-03-08"
    );
    assert_eq!(
        unit::day_partition(ts("2026-03-08T04:59:59Z"), &tz(LONDON)),
        "dt=2026-03-08"
    );
}
