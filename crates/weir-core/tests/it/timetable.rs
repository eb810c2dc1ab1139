//! Timetables against pinned Airflow 3 behaviour: DST transitions of three zones, catchup off,
//! alignment, events, cron and duration parsing, and a property over random crons and zones.

use std::sync::Arc;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use weir_core::timetable::{
    CronDataIntervalTimetable, CronTriggerTimetable, DeltaDataIntervalTimetable,
    DeltaTriggerTimetable, EventsTimetable, RunImmediately, ScheduleError, parse_duration,
    parse_start, parse_zone, preview, window_schedule,
};
use weir_core::{DagRunInfo, DataInterval, TimeRestriction, Timetable};

const NY: &str = "America/New_York";
const LONDON: &str = "Europe/London";
const LORD_HOWE: &str = "Australia/Lord_Howe";

fn zone(name: &str) -> TimeZone {
    parse_zone(name).unwrap()
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// Builds a timetable from a short spec: `window <cron>`, `trigger <cron>`,
/// `trigger+<dur> <cron>`, `delta <dur>`, `delta-trigger <dur>`.
fn build(spec: &str, zone_name: &str) -> Arc<dyn Timetable> {
    let (kind, rest) = spec.split_once(' ').unwrap();
    let tz = zone(zone_name);
    match kind {
        "window" => window_schedule(rest, tz).unwrap(),
        "trigger" => Arc::new(CronTriggerTimetable::new(rest, tz, SignedDuration::ZERO).unwrap()),
        "delta" => {
            Arc::new(DeltaDataIntervalTimetable::new(parse_duration(rest).unwrap()).unwrap())
        }
        "delta-trigger" => Arc::new(
            DeltaTriggerTimetable::new(parse_duration(rest).unwrap(), SignedDuration::ZERO)
                .unwrap(),
        ),
        k if k.starts_with("trigger+") => {
            let interval = parse_duration(&k["trigger+".len()..]).unwrap();
            Arc::new(CronTriggerTimetable::new(rest, tz, interval).unwrap())
        }
        other => panic!("unknown spec kind {other}"),
    }
}

fn render(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

fn render_run(r: &DagRunInfo, tz: &TimeZone) -> (String, String, String) {
    (
        render(r.data_interval.start, tz),
        render(r.data_interval.end, tz),
        render(r.run_after, tz),
    )
}

type Run = (&'static str, &'static str, &'static str);

/// The one helper every table goes through: preview `spec` in `zone_name` from `start` and
/// compare (data_interval_start, data_interval_end, run_after), rendered in the zone.
fn check_preview(spec: &str, zone_name: &str, start: &str, expected: &[Run]) {
    let tt = build(spec, zone_name);
    let tz = zone(zone_name);
    let start_ts = parse_start(start, &tz).unwrap();
    let actual: Vec<_> = preview(&*tt, start_ts, expected.len())
        .iter()
        .map(|r| render_run(r, &tz))
        .collect();
    let expected: Vec<_> = expected
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(
        actual, expected,
        "{spec} in {zone_name} from {start}: actual (left) vs expected (right)"
    );
}

fn check_table(cases: &[(&str, &str, &str, &[Run])]) {
    for (spec, zone_name, start, runs) in cases {
        check_preview(spec, zone_name, start, runs);
    }
}

#[test]
fn dst_dates_of_the_pinned_zones_are_as_the_tables_assume() {
    let cases: &[(&str, &[&str])] = &[
        (
            NY,
            &["2026-03-08T03:00:00-04:00", "2026-11-01T01:00:00-05:00"],
        ),
        (
            LONDON,
            &["2026-03-29T02:00:00+01:00", "2026-10-25T01:00:00+00:00"],
        ),
        // Back 30 minutes at 02:00 (to 01:30), forward 30 minutes at 02:00 (to 02:30).
        (
            LORD_HOWE,
            &["2026-04-05T01:30:00+10:30", "2026-10-04T02:30:00+11:00"],
        ),
    ];
    for (name, expected) in cases {
        let tz = zone(name);
        let got: Vec<String> = tz
            .following(ts("2026-01-01T00:00:00Z"))
            .take(2)
            .map(|t| render(t.timestamp(), &tz))
            .collect();
        assert_eq!(&got, expected, "{name}");
    }
}

#[test]
#[rustfmt::skip]
fn daily_windows_are_23_and_25_hours_on_dst_days() {
    check_table(&[
        ("window @daily", NY, "2026-03-07", &[
            ("2026-03-07T00:00:00-05:00", "2026-03-08T00:00:00-05:00", "2026-03-08T00:00:00-05:00"),
            ("2026-03-08T00:00:00-05:00", "2026-03-09T00:00:00-04:00", "2026-03-09T00:00:00-04:00"),
            ("2026-03-09T00:00:00-04:00", "2026-03-10T00:00:00-04:00", "2026-03-10T00:00:00-04:00"),
        ]),
        ("window @daily", NY, "2026-10-31", &[
            ("2026-10-31T00:00:00-04:00", "2026-11-01T00:00:00-04:00", "2026-11-01T00:00:00-04:00"),
            ("2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00", "2026-11-02T00:00:00-05:00"),
            ("2026-11-02T00:00:00-05:00", "2026-11-03T00:00:00-05:00", "2026-11-03T00:00:00-05:00"),
        ]),
        ("window @daily", LONDON, "2026-03-28", &[
            ("2026-03-28T00:00:00+00:00", "2026-03-29T00:00:00+00:00", "2026-03-29T00:00:00+00:00"),
            ("2026-03-29T00:00:00+00:00", "2026-03-30T00:00:00+01:00", "2026-03-30T00:00:00+01:00"),
        ]),
        ("window @daily", LONDON, "2026-10-24", &[
            ("2026-10-24T00:00:00+01:00", "2026-10-25T00:00:00+01:00", "2026-10-25T00:00:00+01:00"),
            ("2026-10-25T00:00:00+01:00", "2026-10-26T00:00:00+00:00", "2026-10-26T00:00:00+00:00"),
        ]),
        // Lord Howe shifts by 30 minutes: 24.5 h and 23.5 h days.
        ("window @daily", LORD_HOWE, "2026-04-04", &[
            ("2026-04-04T00:00:00+11:00", "2026-04-05T00:00:00+11:00", "2026-04-05T00:00:00+11:00"),
            ("2026-04-05T00:00:00+11:00", "2026-04-06T00:00:00+10:30", "2026-04-06T00:00:00+10:30"),
        ]),
        ("window @daily", LORD_HOWE, "2026-10-03", &[
            ("2026-10-03T00:00:00+10:30", "2026-10-04T00:00:00+10:30", "2026-10-04T00:00:00+10:30"),
            ("2026-10-04T00:00:00+10:30", "2026-10-05T00:00:00+11:00", "2026-10-05T00:00:00+11:00"),
        ]),
    ]);
}

#[test]
#[rustfmt::skip]
fn nonexistent_fire_times_move_forward_and_repeated_ones_take_the_second() {
    check_table(&[
        // Observed in Airflow 3.3.2: New York `0 2 * * *` on 2026-03-08 fires at 03:00 EDT.
        ("window 0 2 * * *", NY, "2026-03-07", &[
            ("2026-03-07T02:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:00:00-04:00"),
            ("2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00", "2026-03-09T02:00:00-04:00"),
        ]),
        ("window 0 2 * * *", NY, "2026-10-31", &[
            ("2026-10-31T02:00:00-04:00", "2026-11-01T02:00:00-05:00", "2026-11-01T02:00:00-05:00"),
            ("2026-11-01T02:00:00-05:00", "2026-11-02T02:00:00-05:00", "2026-11-02T02:00:00-05:00"),
        ]),
        // Observed in Airflow 3.3.2: London `30 1 * * *` on 2026-10-25 fires once, at 01:30 GMT.
        ("window 30 1 * * *", LONDON, "2026-10-24", &[
            ("2026-10-24T01:30:00+01:00", "2026-10-25T01:30:00+00:00", "2026-10-25T01:30:00+00:00"),
            ("2026-10-25T01:30:00+00:00", "2026-10-26T01:30:00+00:00", "2026-10-26T01:30:00+00:00"),
        ]),
        ("window 30 1 * * *", LONDON, "2026-03-28", &[
            ("2026-03-28T01:30:00+00:00", "2026-03-29T02:30:00+01:00", "2026-03-29T02:30:00+01:00"),
            ("2026-03-29T02:30:00+01:00", "2026-03-30T01:30:00+01:00", "2026-03-30T01:30:00+01:00"),
        ]),
        ("window 0 2 * * *", LORD_HOWE, "2026-10-03", &[
            ("2026-10-03T02:00:00+10:30", "2026-10-04T02:30:00+11:00", "2026-10-04T02:30:00+11:00"),
            ("2026-10-04T02:30:00+11:00", "2026-10-05T02:00:00+11:00", "2026-10-05T02:00:00+11:00"),
        ]),
        ("window 30 1 * * *", LORD_HOWE, "2026-04-04", &[
            ("2026-04-04T01:30:00+11:00", "2026-04-05T01:30:00+10:30", "2026-04-05T01:30:00+10:30"),
            ("2026-04-05T01:30:00+10:30", "2026-04-06T01:30:00+10:30", "2026-04-06T01:30:00+10:30"),
        ]),
    ]);
}

#[test]
#[rustfmt::skip]
fn hourly_crons_fire_in_both_repeated_hours_and_skip_missing_ones() {
    check_table(&[
        ("window 0 * * * *", NY, "2026-11-01T00:00", &[
            ("2026-11-01T00:00:00-04:00", "2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-04:00"),
            ("2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T01:00:00-05:00"),
            ("2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00", "2026-11-01T02:00:00-05:00"),
        ]),
        ("window 0 * * * *", NY, "2026-03-08T00:00", &[
            ("2026-03-08T00:00:00-05:00", "2026-03-08T01:00:00-05:00", "2026-03-08T01:00:00-05:00"),
            ("2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:00:00-04:00"),
            ("2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00", "2026-03-08T04:00:00-04:00"),
        ]),
        ("window 30 * * * *", LONDON, "2026-10-25T00:00", &[
            ("2026-10-25T00:30:00+01:00", "2026-10-25T01:30:00+01:00", "2026-10-25T01:30:00+01:00"),
            ("2026-10-25T01:30:00+01:00", "2026-10-25T01:30:00+00:00", "2026-10-25T01:30:00+00:00"),
            ("2026-10-25T01:30:00+00:00", "2026-10-25T02:30:00+00:00", "2026-10-25T02:30:00+00:00"),
        ]),
        ("window 30 * * * *", LONDON, "2026-03-29T00:00", &[
            ("2026-03-29T00:30:00+00:00", "2026-03-29T02:30:00+01:00", "2026-03-29T02:30:00+01:00"),
            ("2026-03-29T02:30:00+01:00", "2026-03-29T03:30:00+01:00", "2026-03-29T03:30:00+01:00"),
        ]),
        // 30-minute fold: 01:30-01:59 happens twice, so `30 *` fires 30 minutes apart.
        ("window 30 * * * *", LORD_HOWE, "2026-04-05T00:00", &[
            ("2026-04-05T00:30:00+11:00", "2026-04-05T01:30:00+11:00", "2026-04-05T01:30:00+11:00"),
            ("2026-04-05T01:30:00+11:00", "2026-04-05T01:30:00+10:30", "2026-04-05T01:30:00+10:30"),
            ("2026-04-05T01:30:00+10:30", "2026-04-05T02:30:00+10:30", "2026-04-05T02:30:00+10:30"),
        ]),
        ("window 0 * * * *", LORD_HOWE, "2026-04-05T00:00", &[
            ("2026-04-05T00:00:00+11:00", "2026-04-05T01:00:00+11:00", "2026-04-05T01:00:00+11:00"),
            ("2026-04-05T01:00:00+11:00", "2026-04-05T02:00:00+10:30", "2026-04-05T02:00:00+10:30"),
        ]),
        // 30-minute gap: 02:00-02:29 does not exist.
        ("window 30 * * * *", LORD_HOWE, "2026-10-04T00:00", &[
            ("2026-10-04T00:30:00+10:30", "2026-10-04T01:30:00+10:30", "2026-10-04T01:30:00+10:30"),
            ("2026-10-04T01:30:00+10:30", "2026-10-04T02:30:00+11:00", "2026-10-04T02:30:00+11:00"),
            ("2026-10-04T02:30:00+11:00", "2026-10-04T03:30:00+11:00", "2026-10-04T03:30:00+11:00"),
        ]),
        ("window 0 * * * *", LORD_HOWE, "2026-10-04T00:00", &[
            ("2026-10-04T00:00:00+10:30", "2026-10-04T01:00:00+10:30", "2026-10-04T01:00:00+10:30"),
            ("2026-10-04T01:00:00+10:30", "2026-10-04T03:00:00+11:00", "2026-10-04T03:00:00+11:00"),
        ]),
    ]);
}

#[test]
#[rustfmt::skip]
fn weekly_and_monthly_windows_start_at_the_first_tick_at_or_after_the_start() {
    check_table(&[
        ("window @weekly", "UTC", "2026-03-02", &[
            ("2026-03-08T00:00:00+00:00", "2026-03-15T00:00:00+00:00", "2026-03-15T00:00:00+00:00"),
            ("2026-03-15T00:00:00+00:00", "2026-03-22T00:00:00+00:00", "2026-03-22T00:00:00+00:00"),
        ]),
        // 2026-03-01 is a Sunday: the start itself is a tick.
        ("window @weekly", NY, "2026-03-01", &[
            ("2026-03-01T00:00:00-05:00", "2026-03-08T00:00:00-05:00", "2026-03-08T00:00:00-05:00"),
            ("2026-03-08T00:00:00-05:00", "2026-03-15T00:00:00-04:00", "2026-03-15T00:00:00-04:00"),
        ]),
        ("window @monthly", "UTC", "2026-03-02T10:00", &[
            ("2026-04-01T00:00:00+00:00", "2026-05-01T00:00:00+00:00", "2026-05-01T00:00:00+00:00"),
            ("2026-05-01T00:00:00+00:00", "2026-06-01T00:00:00+00:00", "2026-06-01T00:00:00+00:00"),
        ]),
        ("window @monthly", LONDON, "2026-03-01", &[
            ("2026-03-01T00:00:00+00:00", "2026-04-01T00:00:00+01:00", "2026-04-01T00:00:00+01:00"),
            ("2026-04-01T00:00:00+01:00", "2026-05-01T00:00:00+01:00", "2026-05-01T00:00:00+01:00"),
        ]),
        // An off-tick start aligns forward to the next tick.
        ("window 0 2 * * *", "UTC", "2026-03-01T05:00", &[(
                "2026-03-02T02:00:00+00:00",
                "2026-03-03T02:00:00+00:00",
                "2026-03-03T02:00:00+00:00",
            )],
        ),
        ("window 15,45 9-17 * * MON-FRI", "UTC", "2026-03-06T17:30", &[
            ("2026-03-06T17:45:00+00:00", "2026-03-09T09:15:00+00:00", "2026-03-09T09:15:00+00:00"),
            ("2026-03-09T09:15:00+00:00", "2026-03-09T09:45:00+00:00", "2026-03-09T09:45:00+00:00"),
        ]),
    ]);
}

#[test]
#[rustfmt::skip]
fn trigger_timetables_fire_at_ticks_with_optional_intervals() {
    check_table(&[
        ("trigger 0 2 * * *", NY, "2026-03-07", &[
            ("2026-03-07T02:00:00-05:00", "2026-03-07T02:00:00-05:00", "2026-03-07T02:00:00-05:00"),
            ("2026-03-08T03:00:00-04:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:00:00-04:00"),
            ("2026-03-09T02:00:00-04:00", "2026-03-09T02:00:00-04:00", "2026-03-09T02:00:00-04:00"),
        ]),
        ("trigger+1h 30 1 * * *", LONDON, "2026-10-24", &[
            ("2026-10-24T00:30:00+01:00", "2026-10-24T01:30:00+01:00", "2026-10-24T01:30:00+01:00"),
            // The interval is exact time: one hour before 01:30 GMT is 01:30 BST.
            ("2026-10-25T01:30:00+01:00", "2026-10-25T01:30:00+00:00", "2026-10-25T01:30:00+00:00"),
            ("2026-10-26T00:30:00+00:00", "2026-10-26T01:30:00+00:00", "2026-10-26T01:30:00+00:00"),
        ]),
        ("trigger+1d @daily", NY, "2026-03-08", &[
            ("2026-03-07T00:00:00-05:00", "2026-03-08T00:00:00-05:00", "2026-03-08T00:00:00-05:00"),
            ("2026-03-07T23:00:00-05:00", "2026-03-09T00:00:00-04:00", "2026-03-09T00:00:00-04:00"),
        ]),
        ("trigger 0 * * * *", NY, "2026-11-01T00:30", &[
            ("2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-04:00"),
            ("2026-11-01T01:00:00-05:00", "2026-11-01T01:00:00-05:00", "2026-11-01T01:00:00-05:00"),
        ]),
    ]);
}

#[test]
#[rustfmt::skip]
fn delta_timetables_step_exact_time_and_drift_across_dst() {
    check_table(&[
        ("delta 24h", NY, "2026-03-07", &[
            ("2026-03-07T00:00:00-05:00", "2026-03-08T00:00:00-05:00", "2026-03-08T00:00:00-05:00"),
            ("2026-03-08T00:00:00-05:00", "2026-03-09T01:00:00-04:00", "2026-03-09T01:00:00-04:00"),
            ("2026-03-09T01:00:00-04:00", "2026-03-10T01:00:00-04:00", "2026-03-10T01:00:00-04:00"),
        ]),
        ("delta 1d", LONDON, "2026-10-24T12:00", &[(
                "2026-10-24T12:00:00+01:00",
                "2026-10-25T11:00:00+00:00",
                "2026-10-25T11:00:00+00:00",
            )],
        ),
        ("delta-trigger 24h", NY, "2026-10-31T06:00", &[
            ("2026-10-31T06:00:00-04:00", "2026-10-31T06:00:00-04:00", "2026-10-31T06:00:00-04:00"),
            ("2026-11-01T05:00:00-05:00", "2026-11-01T05:00:00-05:00", "2026-11-01T05:00:00-05:00"),
        ]),
        ("delta 90m", LORD_HOWE, "2026-10-04T00:00", &[
            ("2026-10-04T00:00:00+10:30", "2026-10-04T01:30:00+10:30", "2026-10-04T01:30:00+10:30"),
            ("2026-10-04T01:30:00+10:30", "2026-10-04T03:30:00+11:00", "2026-10-04T03:30:00+11:00"),
        ]),
    ]);
}

fn restriction(earliest: Option<&str>, latest: Option<&str>, catchup: bool) -> TimeRestriction {
    TimeRestriction {
        earliest: earliest.map(ts),
        latest: latest.map(ts),
        catchup,
    }
}

fn interval(start: &str, end: &str) -> DataInterval {
    DataInterval::new(ts(start), ts(end))
}

/// (timetable, last automated interval, restriction, now) -> expected (start, end, run_after).
fn check_next(
    tt: &dyn Timetable,
    last: Option<DataInterval>,
    r: TimeRestriction,
    now: &str,
    expected: Option<(&str, &str, &str)>,
) {
    let got = tt.next_dagrun_info(last.as_ref(), &r, ts(now));
    let want = expected.map(|(a, b, c)| DagRunInfo {
        data_interval: interval(a, b),
        run_after: ts(c),
    });
    assert_eq!(got, want, "{} last={last:?} {r:?} now={now}", tt.summary());
}

#[test]
fn catchup_off_skips_to_the_latest_complete_interval() {
    let daily = build("window @daily", "UTC");
    let since_jan = restriction(Some("2026-01-01T00:00:00Z"), None, false);
    let mar9 = (
        "2026-03-09T00:00:00Z",
        "2026-03-10T00:00:00Z",
        "2026-03-10T00:00:00Z",
    );
    check_next(&*daily, None, since_jan, "2026-03-10T15:00:00Z", Some(mar9));
    // On a boundary, the interval that ends now.
    check_next(&*daily, None, since_jan, "2026-03-10T00:00:00Z", Some(mar9));
    let last = interval("2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z");
    check_next(
        &*daily,
        Some(last),
        since_jan,
        "2026-03-10T15:00:00Z",
        Some(mar9),
    );
    // A start date in the future wins, aligned to the next tick.
    let future = restriction(Some("2026-04-01T12:00:00Z"), None, false);
    let apr2 = (
        "2026-04-02T00:00:00Z",
        "2026-04-03T00:00:00Z",
        "2026-04-03T00:00:00Z",
    );
    check_next(&*daily, None, future, "2026-03-10T15:00:00Z", Some(apr2));
    // With catchup on, the scheduler resumes right after the last run.
    let catchup = restriction(Some("2026-01-01T00:00:00Z"), None, true);
    let mar2 = (
        "2026-03-02T00:00:00Z",
        "2026-03-03T00:00:00Z",
        "2026-03-03T00:00:00Z",
    );
    check_next(
        &*daily,
        Some(last),
        catchup,
        "2026-03-10T15:00:00Z",
        Some(mar2),
    );
    // Past the end date: nothing.
    let ended = restriction(
        Some("2026-01-01T00:00:00Z"),
        Some("2026-03-01T12:00:00Z"),
        true,
    );
    check_next(&*daily, Some(last), ended, "2026-03-10T15:00:00Z", None);
    let at_end = restriction(
        Some("2026-01-01T00:00:00Z"),
        Some("2026-03-02T00:00:00Z"),
        true,
    );
    check_next(
        &*daily,
        Some(last),
        at_end,
        "2026-03-10T15:00:00Z",
        Some(mar2),
    );
    // No start date and no previous run with catchup on: nothing to anchor to.
    check_next(
        &*daily,
        None,
        restriction(None, None, true),
        "2026-03-10T15:00:00Z",
        None,
    );

    let hourly_delta = build("delta 1h", "UTC");
    check_next(
        &*hourly_delta,
        None,
        since_jan,
        "2026-03-10T15:20:00Z",
        Some((
            "2026-03-10T14:00:00Z",
            "2026-03-10T15:00:00Z",
            "2026-03-10T15:00:00Z",
        )),
    );
}

#[test]
fn trigger_catchup_off_runs_the_latest_passed_tick() {
    let tt = build("trigger 0 2 * * *", "UTC");
    let since_jan = restriction(Some("2026-01-01T00:00:00Z"), None, false);
    let at = |s: &'static str| Some((s, s, s));
    check_next(
        &*tt,
        None,
        since_jan,
        "2026-03-10T15:00:00Z",
        at("2026-03-10T02:00:00Z"),
    );
    let last = DataInterval::exact(ts("2026-03-10T02:00:00Z"));
    check_next(
        &*tt,
        Some(last),
        since_jan,
        "2026-03-10T15:00:00Z",
        at("2026-03-11T02:00:00Z"),
    );
    let last = DataInterval::exact(ts("2026-03-01T02:00:00Z"));
    check_next(
        &*tt,
        Some(last),
        since_jan,
        "2026-03-10T15:00:00Z",
        at("2026-03-10T02:00:00Z"),
    );
    // No start date: Airflow's run_immediately default runs the last tick only if it passed
    // within 10% of the period (at least 5 minutes).
    let open = restriction(None, None, false);
    check_next(
        &*tt,
        None,
        open,
        "2026-03-10T02:03:00Z",
        at("2026-03-10T02:00:00Z"),
    );
    check_next(
        &*tt,
        None,
        open,
        "2026-03-10T05:00:00Z",
        at("2026-03-11T02:00:00Z"),
    );
    let always = CronTriggerTimetable::new("0 2 * * *", TimeZone::UTC, SignedDuration::ZERO)
        .unwrap()
        .with_run_immediately(RunImmediately::Always);
    check_next(
        &always,
        None,
        open,
        "2026-03-10T05:00:00Z",
        at("2026-03-10T02:00:00Z"),
    );
    let within = CronTriggerTimetable::new("0 2 * * *", TimeZone::UTC, SignedDuration::ZERO)
        .unwrap()
        .with_run_immediately(RunImmediately::Within(SignedDuration::from_hours(4)));
    check_next(
        &within,
        None,
        open,
        "2026-03-10T05:00:00Z",
        at("2026-03-10T02:00:00Z"),
    );
    check_next(
        &within,
        None,
        open,
        "2026-03-10T07:00:00Z",
        at("2026-03-11T02:00:00Z"),
    );
}

#[test]
fn events_run_exactly_at_each_event() {
    let events = vec![
        ts("2026-03-20T09:00:00Z"),
        ts("2026-03-01T09:00:00Z"),
        ts("2026-03-05T09:00:00Z"),
        ts("2026-03-05T09:00:00Z"),
    ];
    let tt = EventsTimetable::new(events, true);
    assert_eq!(tt.summary(), "3 events");
    let runs = preview(&tt, ts("2026-03-02T00:00:00Z"), 5);
    let got: Vec<_> = runs.iter().map(|r| render_run(r, &TimeZone::UTC)).collect();
    let at = |s: &str| (s.to_string(), s.to_string(), s.to_string());
    assert_eq!(
        got,
        vec![
            at("2026-03-05T09:00:00+00:00"),
            at("2026-03-20T09:00:00+00:00")
        ]
    );
    // Catchup off: the next event at or after now.
    let r = restriction(Some("2026-01-01T00:00:00Z"), None, false);
    let next = tt
        .next_dagrun_info(None, &r, ts("2026-03-10T00:00:00Z"))
        .unwrap();
    assert_eq!(next, DagRunInfo::exact(ts("2026-03-20T09:00:00Z")));
    // Manual runs snap to the most recent event, or the first.
    assert_eq!(
        tt.infer_manual_data_interval(ts("2026-03-10T00:00:00Z")),
        DataInterval::exact(ts("2026-03-05T09:00:00Z"))
    );
    assert_eq!(
        tt.infer_manual_data_interval(ts("2026-02-01T00:00:00Z")),
        DataInterval::exact(ts("2026-03-01T09:00:00Z"))
    );
    let free = EventsTimetable::new(vec![ts("2026-03-01T09:00:00Z")], false);
    assert_eq!(
        free.infer_manual_data_interval(ts("2026-03-10T00:00:00Z")),
        DataInterval::exact(ts("2026-03-10T00:00:00Z"))
    );
}

#[test]
fn manual_runs_cover_the_last_complete_period() {
    let daily = build("window @daily", "UTC");
    let day24 = interval("2026-03-24T00:00:00Z", "2026-03-25T00:00:00Z");
    assert_eq!(
        daily.infer_manual_data_interval(ts("2026-03-25T01:00:00Z")),
        day24
    );
    assert_eq!(
        daily.infer_manual_data_interval(ts("2026-03-25T00:00:00Z")),
        day24
    );
    let ny = build("window @daily", NY);
    assert_eq!(
        ny.infer_manual_data_interval(ts("2026-03-09T12:00:00Z")),
        interval("2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z")
    );
    let delta = build("delta 1h", "UTC");
    assert_eq!(
        delta.infer_manual_data_interval(ts("2026-03-25T15:20:00Z")),
        interval("2026-03-25T14:20:00Z", "2026-03-25T15:20:00Z")
    );
    let trig = build("trigger+1h 0 2 * * *", "UTC");
    assert_eq!(
        trig.infer_manual_data_interval(ts("2026-03-25T15:20:00Z")),
        interval("2026-03-25T14:20:00Z", "2026-03-25T15:20:00Z")
    );
}

#[test]
fn summaries_name_the_schedule_and_zone() {
    assert_eq!(
        build("window 0 2 * * *", LONDON).summary(),
        "0 2 * * * (Europe/London)"
    );
    assert_eq!(build("window @daily", "UTC").summary(), "@daily (UTC)");
    assert_eq!(build("window @daily", NY).time_zone().iana_name(), Some(NY));
    assert_eq!(
        build("trigger+1h 0 2 * * *", "UTC").summary(),
        "0 2 * * * (UTC), interval 1h"
    );
    assert_eq!(build("delta 90m", "UTC").summary(), "every 1h 30m");
}

#[test]
#[rustfmt::skip]
fn cron_syntax_covers_lists_ranges_steps_names_and_the_day_or_rule() {
    check_table(&[
        ("window */20 1-5/2 * * *", "UTC", "2026-03-01T05:30", &[
            ("2026-03-01T05:40:00+00:00", "2026-03-02T01:00:00+00:00", "2026-03-02T01:00:00+00:00"),
            ("2026-03-02T01:00:00+00:00", "2026-03-02T01:20:00+00:00", "2026-03-02T01:20:00+00:00"),
        ]),
        // Day 1 of the month OR a Friday (both restricted: Vixie/croniter OR rule).
        ("window 0 0 1 * FRI", "UTC", "2026-05-28", &[
            ("2026-05-29T00:00:00+00:00", "2026-06-01T00:00:00+00:00", "2026-06-01T00:00:00+00:00"),
            ("2026-06-01T00:00:00+00:00", "2026-06-05T00:00:00+00:00", "2026-06-05T00:00:00+00:00"),
        ]),
        // 7 is Sunday; names are case-insensitive.
        ("window 0 12 * jan,Jul 7", "UTC", "2026-01-01", &[(
                "2026-01-04T12:00:00+00:00",
                "2026-01-11T12:00:00+00:00",
                "2026-01-11T12:00:00+00:00",
            )],
        ),
        ("window 0 0 29 2 *", "UTC", "2026-01-01", &[(
                "2028-02-29T00:00:00+00:00",
                "2032-02-29T00:00:00+00:00",
                "2032-02-29T00:00:00+00:00",
            )],
        ),
        ("window @yearly", "UTC", "2026-06-01", &[(
                "2027-01-01T00:00:00+00:00",
                "2028-01-01T00:00:00+00:00",
                "2028-01-01T00:00:00+00:00",
            )],
        ),
    ]);
}

#[test]
fn bad_crons_name_the_field_and_value() {
    let cases: &[(&str, &str)] = &[
        ("61 * * * *", "minute field \"61\""),
        ("*/0 * * * *", "minute field \"*/0\""),
        ("5,,6 * * * *", "minute field \"5,,6\""),
        ("1-2-3 * * * *", "minute field \"1-2-3\""),
        ("* 24 * * *", "hour field \"24\""),
        ("* * 0 * *", "day-of-month field \"0\""),
        ("* * 32 * *", "day-of-month field \"32\""),
        ("* * L * *", "day-of-month field \"L\""),
        ("* * * 13 *", "month field \"13\""),
        ("* * * FOO *", "month field \"FOO\""),
        ("* * * * 8", "day-of-week field \"8\""),
        ("* * * * MOO", "day-of-week field \"MOO\""),
        ("* * * * 1#2", "day-of-week field \"1#2\""),
        ("* * * *", "has 4 fields"),
        ("0 0 * * * *", "has 6 fields"),
        ("", "has 0 fields"),
        ("@fortnightly", "unknown schedule preset \"@fortnightly\""),
        ("0 0 30 2 *", "never fires"),
    ];
    for (expr, needle) in cases {
        let err = CronDataIntervalTimetable::new(expr, TimeZone::UTC).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(needle),
            "{expr:?}: {msg:?} should contain {needle:?}"
        );
        assert!(!msg.contains('\n'), "{expr:?}: one sentence, got {msg:?}");
    }
    assert!(matches!(
        window_schedule("* * * * 8", TimeZone::UTC).unwrap_err(),
        ScheduleError::InvalidCronField { .. }
    ));
    assert!(
        CronTriggerTimetable::new("@daily", TimeZone::UTC, SignedDuration::from_hours(-1)).is_err()
    );
    assert!(DeltaDataIntervalTimetable::new(SignedDuration::ZERO).is_err());
    assert!(
        DeltaTriggerTimetable::new(SignedDuration::from_secs(-5), SignedDuration::ZERO).is_err()
    );
}

#[test]
fn parse_duration_accepts_short_forms() {
    let ok: &[(&str, i64)] = &[
        ("90m", 5_400),
        ("1h", 3_600),
        ("86400s", 86_400),
        ("2d", 172_800),
        ("1h30m", 5_400),
        ("1h 30m", 5_400),
        ("1w", 604_800),
        ("0s", 0),
    ];
    for (input, secs) in ok {
        assert_eq!(
            parse_duration(input).unwrap(),
            SignedDuration::from_secs(*secs),
            "{input}"
        );
    }
    for bad in ["", "90", "m", "1x", "-1h", "1h1h", "1.5h", "h1"] {
        let err = parse_duration(bad).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("invalid duration {bad:?}")),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn parse_start_reads_wall_clock_in_the_zone_or_an_explicit_instant() {
    let ny = zone(NY);
    let cases: &[(&str, &str)] = &[
        ("2026-03-01", "2026-03-01T05:00:00Z"),
        ("2026-03-01T02:30", "2026-03-01T07:30:00Z"),
        ("2026-03-01T02:30:00", "2026-03-01T07:30:00Z"),
        ("2026-03-01 02:30", "2026-03-01T07:30:00Z"),
        ("2026-03-01T02:30:00Z", "2026-03-01T02:30:00Z"),
        ("2026-03-01T02:30:00+01:00", "2026-03-01T01:30:00Z"),
        ("2026-03-01T02:30:00-03:00", "2026-03-01T05:30:00Z"),
        // In the spring-forward gap: moved forward by the gap (03:30 EDT).
        ("2026-03-08T02:30", "2026-03-08T07:30:00Z"),
        // In the fall-back fold: the second occurrence (01:30 EST).
        ("2026-11-01T01:30", "2026-11-01T06:30:00Z"),
    ];
    for (input, want) in cases {
        assert_eq!(parse_start(input, &ny).unwrap(), ts(want), "{input}");
    }
    for bad in ["yesterday", "2026-13-01", "2026-03-01T25:00", ""] {
        assert!(
            matches!(
                parse_start(bad, &ny),
                Err(ScheduleError::InvalidStart { .. })
            ),
            "{bad}"
        );
    }
    let err = parse_zone("Mars/Olympus_Mons").unwrap_err();
    assert!(err.to_string().contains("Mars/Olympus_Mons"), "{err}");
    assert_eq!(parse_zone("UTC").unwrap(), TimeZone::UTC);
}

const ZONES: &[&str] = &[
    "UTC",
    NY,
    LONDON,
    LORD_HOWE,
    "Asia/Kolkata",
    "Pacific/Chatham",
    "America/Sao_Paulo",
    "Australia/Adelaide",
    "America/Santiago",
];

fn cron_strategy() -> impl Strategy<Value = String> {
    let minute = prop::sample::select(vec!["0", "30", "*/15", "5,35", "*/7", "59", "*"]);
    let hour = prop::sample::select(vec!["*", "0", "2", "1", "*/2", "1-3", "22-2", "9-17/4"]);
    let dom = prop::sample::select(vec!["*", "*", "1", "15,31", "*/10", "29"]);
    let month = prop::sample::select(vec!["*", "*", "3,10", "FEB-APR", "11"]);
    let dow = prop::sample::select(vec!["*", "*", "0", "MON-FRI", "6,7"]);
    (minute, hour, dom, month, dow).prop_map(|(a, b, c, d, e)| format!("{a} {b} {c} {d} {e}"))
}

/// A start shortly before one of the zone's DST transitions, so most cases cross one.
fn start_near_transition(tz: &TimeZone, secs: i64, jitter_mins: i64) -> Timestamp {
    let t = Timestamp::from_second(secs).unwrap();
    let anchor = tz.following(t).next().map_or(t, |tr| tr.timestamp());
    anchor - SignedDuration::from_mins(jitter_mins)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn preview_windows_are_contiguous_and_increasing(
        expr in prop_oneof![
            cron_strategy(),
            prop::sample::select(vec!["@hourly", "@daily", "@weekly", "@monthly", "@yearly"])
                .prop_map(str::to_string),
        ],
        zone_name in prop::sample::select(ZONES.to_vec()),
        start_secs in 1_700_000_000i64..1_900_000_000i64,
        jitter in 0i64..2_880,
    ) {
        let tz = zone(zone_name);
        let tt = window_schedule(&expr, tz.clone()).unwrap();
        let start = start_near_transition(&tz, start_secs, jitter);
        let runs = preview(&*tt, start, 12);
        prop_assert_eq!(runs.len(), 12);
        prop_assert!(runs[0].data_interval.start >= start);
        for r in &runs {
            prop_assert!(r.data_interval.start < r.data_interval.end, "{:?}", r);
            prop_assert_eq!(r.run_after, r.data_interval.end);
        }
        for w in runs.windows(2) {
            prop_assert_eq!(w[0].data_interval.end, w[1].data_interval.start, "{:?}", w);
        }
    }

    #[test]
    fn trigger_fires_are_strictly_increasing(
        expr in cron_strategy(),
        zone_name in prop::sample::select(ZONES.to_vec()),
        start_secs in 1_700_000_000i64..1_900_000_000i64,
        jitter in 0i64..2_880,
    ) {
        let tz = zone(zone_name);
        let tt = CronTriggerTimetable::new(&expr, tz.clone(), SignedDuration::ZERO).unwrap();
        let runs = preview(&tt, start_near_transition(&tz, start_secs, jitter), 12);
        prop_assert_eq!(runs.len(), 12);
        for w in runs.windows(2) {
            prop_assert!(w[0].run_after < w[1].run_after, "{:?}", w);
        }
    }
}
