//! 110.1.5 Custom batch windows (`110_01_05_custom_batch_windows`).

use std::collections::BTreeMap;

use arrow::array::{Array, Int64Array, StringArray};
use jiff::civil::{Date, date};
use jiff::{SignedDuration, Timestamp};
use weir_core::{DataInterval, RunState, TimeRestriction, Timetable};
use weir_patterns::p110::custom_batch_windows::{DAG_ID, ShiftTimetable};

use crate::support::*;

/// The windows a timetable gives from `earliest` to `latest` (catchup on), chained through
/// `next_dagrun_info` as the scheduler does.
fn chain(tt: &dyn Timetable, earliest: Timestamp, latest: Timestamp) -> Vec<DataInterval> {
    let restriction = TimeRestriction {
        earliest: Some(earliest),
        latest: Some(latest),
        catchup: true,
    };
    let mut out: Vec<DataInterval> = Vec::new();
    while let Some(info) = tt.next_dagrun_info(out.last(), &restriction, Timestamp::UNIX_EPOCH) {
        assert_eq!(info.run_after, info.data_interval.end, "due when it ends");
        out.push(info.data_interval);
        assert!(out.len() < 1000, "the chain does not end");
    }
    out
}

/// (local start date, local start hour, window hours) in London.
type Window = (Date, i8, i64);

fn check_chain(earliest: (Date, i8), latest: (Date, i8), expected: &[Window]) {
    let tt = ShiftTimetable::new(tz(LONDON));
    let got = chain(
        &tt,
        local(earliest.0, earliest.1, LONDON),
        local(latest.0, latest.1, LONDON),
    );
    let got: Vec<Window> = got
        .iter()
        .map(|i| {
            let z = i.start.to_zoned(tz(LONDON));
            (z.date(), z.hour(), i.end.duration_since(i.start).as_hours())
        })
        .collect();
    assert_eq!(got, expected);
}

fn weekday(d: Date) -> [Window; 3] {
    [(d, 6, 8), (d, 14, 8), (d, 22, 8)]
}

/// Weekdays are three 8-hour shifts from 06:00, 14:00 and 22:00; the weekend is one window from
/// Saturday 06:00 to Monday 06:00: 48 hours, 47 on the spring-forward weekend (2026-03-28/29)
/// and 49 on the fall-back one (2026-10-24/25). Windows are contiguous.
#[test]
fn shift_timetable_windows() {
    let mut spring = Vec::new();
    for d in 16..=20 {
        spring.extend(weekday(date(2026, 3, d)));
    }
    spring.push((date(2026, 3, 21), 6, 48));
    for d in 23..=27 {
        spring.extend(weekday(date(2026, 3, d)));
    }
    spring.push((date(2026, 3, 28), 6, 47));
    spring.push((date(2026, 3, 30), 6, 8));
    check_chain((date(2026, 3, 16), 6), (date(2026, 3, 30), 6), &spring);

    check_chain(
        (date(2026, 10, 23), 14),
        (date(2026, 10, 26), 14),
        &[
            (date(2026, 10, 23), 14, 8),
            (date(2026, 10, 23), 22, 8),
            (date(2026, 10, 24), 6, 49),
            (date(2026, 10, 26), 6, 8),
            (date(2026, 10, 26), 14, 8),
        ],
    );

    // An earliest date inside a window starts at the next shift start.
    check_chain(
        (date(2026, 3, 29), 12),
        (date(2026, 3, 30), 14),
        &[(date(2026, 3, 30), 6, 8), (date(2026, 3, 30), 14, 8)],
    );

    // Catchup off: the first run is the latest window that has ended, not the start date's.
    let tt = ShiftTimetable::new(tz(LONDON));
    let no_catchup = TimeRestriction {
        earliest: Some(local(date(2026, 3, 2), 6, LONDON)),
        latest: None,
        catchup: false,
    };
    let now = local(date(2026, 3, 25), 15, LONDON);
    let first = tt
        .next_dagrun_info(None, &no_catchup, now)
        .expect("a run")
        .data_interval;
    assert_eq!(
        (first.start, first.end),
        (
            local(date(2026, 3, 25), 6, LONDON),
            local(date(2026, 3, 25), 14, LONDON)
        )
    );
    let next = tt
        .next_dagrun_info(Some(&first), &no_catchup, now)
        .expect("a run");
    assert_eq!(next.data_interval.start, first.end);
    assert_eq!(next.run_after, local(date(2026, 3, 25), 22, LONDON));

    // Contiguity over a long chain: each window starts where the previous ended.
    let long = chain(
        &tt,
        local(date(2026, 3, 2), 6, LONDON),
        local(date(2026, 4, 30), 6, LONDON),
    );
    assert!(long.windows(2).all(|p| p[0].end == p[1].start));
    assert!(
        long.iter()
            .all(|i| [8, 47, 48].contains(&i.end.duration_since(i.start).as_hours()))
    );
}

/// A backfill over the 2026-03-28/29 DST weekend writes one `dt=/shift=` partition per window,
/// each with exactly the rows of its window; the sliding window of every run counts the rows of
/// the trailing 24 hours, and overlapping windows both count their shared rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_writes_shift_partitions_and_sliding_windows() {
    let w = World::new().await;
    let source = w.sample("orders.csv", utc(2026, 3, 25), 7, 20_000, 23);
    let orders = read_orders(&source);
    let output = w.path("out/custom");
    let sliding = w.path("out/custom_sliding");

    let report = w
        .backfill(
            DAG_ID,
            local(date(2026, 3, 26), 22, LONDON),
            local(date(2026, 3, 30), 6, LONDON),
            conf([("source", s(&source)), ("output", s(&output))]),
        )
        .await;
    assert_eq!(report.count(RunState::Success), 6, "{:?}", report.runs);

    // (partition, window start, window end), computed from London civil times.
    let windows = [
        ((26, 22), (27, 6)),
        ((27, 6), (27, 14)),
        ((27, 14), (27, 22)),
        ((27, 22), (28, 6)),
        ((28, 6), (30, 6)),
        ((30, 6), (30, 14)),
    ];
    let mut want = BTreeMap::new();
    let mut spans = Vec::new();
    for ((d0, h0), (d1, h1)) in windows {
        let start = local(date(2026, 3, d0), h0, LONDON);
        let end = local(date(2026, 3, d1), h1, LONDON);
        want.insert(
            format!("dt=2026-03-{d0:02}/shift={h0:02}00"),
            count_in(&orders, start, end),
        );
        spans.push((start, end));
    }
    assert_eq!(partition_rows(&output), want);
    assert_eq!(
        spans[4].1.duration_since(spans[4].0),
        SignedDuration::from_hours(47)
    );
    let weekend = report
        .runs
        .iter()
        .find(|(r, _)| r.interval_start == spans[4].0)
        .expect("the weekend run");
    assert_eq!(weekend.0.interval_end, spans[4].1);
    assert_eq!(
        w.output(&weekend.0, "load_shift").await["window_hours"],
        47.0
    );
    // Shifts tile the range: nothing lost or doubled.
    assert_eq!(
        want.values().sum::<u64>(),
        count_in(&orders, spans[0].0, spans[5].1)
    );

    // Sliding windows: one per run, named by the local window end, counting the trailing 24h.
    let mut got_sliding = BTreeMap::new();
    for (key, rows) in partition_rows(&sliding) {
        let batches = read_partition(&sliding, &key);
        let mut by_region = BTreeMap::new();
        for b in &batches {
            let region = b
                .column_by_name("region")
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            let n = b
                .column_by_name("orders")
                .unwrap()
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            for i in 0..b.num_rows() {
                by_region.insert(region.value(i).to_owned(), n.value(i) as u64);
            }
        }
        assert_eq!(rows as usize, by_region.len());
        got_sliding.insert(key, by_region);
    }
    let mut want_sliding = BTreeMap::new();
    for (_, end) in &spans {
        let z = end.to_zoned(tz(LONDON));
        let key = format!("window_end={}T{:02}{:02}", z.date(), z.hour(), z.minute());
        let mut by_region: BTreeMap<String, u64> = BTreeMap::new();
        for o in in_window(&orders, *end - SignedDuration::from_hours(24), *end) {
            *by_region.entry(o.region.clone()).or_default() += 1;
        }
        want_sliding.insert(key, by_region);
    }
    assert_eq!(got_sliding, want_sliding);

    // Overlapping windows (ending Fri 06:00 and Fri 14:00 share Thu 14:00..Fri 06:00): the shared
    // rows count in both.
    let total = |key: &str| got_sliding[key].values().sum::<u64>();
    let a_end = spans[0].1;
    let b_end = spans[1].1;
    let day = SignedDuration::from_hours(24);
    let shared = count_in(&orders, b_end - day, a_end);
    let union = count_in(&orders, a_end - day, b_end);
    assert!(shared > 0);
    assert_eq!(
        total("window_end=2026-03-27T0600") + total("window_end=2026-03-27T1400"),
        union + shared
    );
    let run_output = w
        .output(
            &report
                .runs
                .iter()
                .find(|(r, _)| r.interval_end == b_end)
                .unwrap()
                .0,
            "sliding_window",
        )
        .await;
    assert_eq!(run_output["hours"], 24);
    assert_eq!(run_output["orders"], total("window_end=2026-03-27T1400"));
}
