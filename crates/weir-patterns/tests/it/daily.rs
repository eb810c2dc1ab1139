//! 110.1.1 Daily batch processing (`110_01_01_daily_batch_processing`).

use std::collections::BTreeMap;

use jiff::SignedDuration;
use jiff::civil::{Date, date};
use weir_core::{RunState, TaskState};
use weir_patterns::p110::daily_batch_processing::DAG_ID;

use crate::support::*;

fn week() -> Vec<Date> {
    (2..=8).map(|d| date(2026, 3, d)).collect()
}

/// A backfill of the week 2026-03-02..08 in New York: one `dt=` partition per local day, each
/// holding exactly the rows whose event time falls in that local day; 2026-03-08 (spring forward)
/// is a 23-hour window. Manifests record what landed, stamped with the run and task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn week_backfill_writes_one_partition_per_new_york_day() {
    let w = World::new().await;
    let source = w.sample("orders.csv", utc(2026, 3, 1), 10, 20_000, 7);
    let output = w.path("out/daily");
    let orders = read_orders(&source);

    let report = w
        .backfill(
            DAG_ID,
            midnight(date(2026, 3, 2), NEW_YORK),
            midnight(date(2026, 3, 8), NEW_YORK),
            conf([("source", s(&source)), ("output", s(&output))]),
        )
        .await;
    assert_eq!(report.runs.len(), 7, "one run per day");
    assert_eq!(report.count(RunState::Success), 7, "{:?}", report.runs);

    // Data intervals are local calendar days; 2026-03-08 is 23 hours long in New York.
    let mut runs = report
        .runs
        .iter()
        .map(|(r, _)| r.clone())
        .collect::<Vec<_>>();
    runs.sort_by_key(|r| r.logical_date);
    for (run, day) in runs.iter().zip(week()) {
        assert_eq!(run.interval_start, midnight(day, NEW_YORK), "{day}");
        assert_eq!(
            run.interval_end,
            midnight(day.tomorrow().unwrap(), NEW_YORK),
            "{day}"
        );
        let hours = if day == date(2026, 3, 8) { 23 } else { 24 };
        assert_eq!(
            run.interval_end.duration_since(run.interval_start),
            SignedDuration::from_hours(hours),
            "{day}"
        );
    }

    // One partition per day, counts equal to the independent count of the local day.
    let expected = per_local_date(&orders, NEW_YORK);
    let landed = partition_rows(&output);
    let want: BTreeMap<String, u64> = week()
        .into_iter()
        .map(|d| (format!("dt={d}"), expected[&d]))
        .collect();
    assert_eq!(landed, want);
    // The 23-hour day holds exactly the rows of its 23 hours.
    assert_eq!(
        want["dt=2026-03-08"],
        count_in(
            &orders,
            utc(2026, 3, 8) + SignedDuration::from_hours(5),
            utc(2026, 3, 9) + SignedDuration::from_hours(4),
        )
    );
    // Every row read back lies in its day; nothing was lost or doubled across the week.
    let mut all_ids = Vec::new();
    for day in week() {
        let batches = read_partition(&output, &format!("dt={day}"));
        for t in times(&batches) {
            assert_eq!(
                t.to_zoned(tz(NEW_YORK)).date(),
                day,
                "row at {t} in dt={day}"
            );
        }
        all_ids.extend(i64_column(&batches, "order_id"));
    }
    assert_eq!(duplicates(&all_ids), 0);
    assert_eq!(
        all_ids.len() as u64,
        count_in(
            &orders,
            midnight(date(2026, 3, 2), NEW_YORK),
            midnight(date(2026, 3, 9), NEW_YORK)
        )
    );

    // A manifest per partition: rows, bytes, files and checksum as on disk, stamped with the
    // run and task that committed it.
    let manifests = w.store.manifests(&s(&output)).await.expect("manifests");
    assert_eq!(manifests.len(), 7);
    let infos = weir_data::Dataset::open(&output)
        .unwrap()
        .partitions()
        .unwrap();
    for m in &manifests {
        let info = infos
            .iter()
            .find(|i| i.partition == m.partition)
            .unwrap_or_else(|| panic!("manifest of an unknown partition {}", m.partition));
        assert_eq!(m.rows_out, info.rows, "{}", m.partition);
        // Each day's load read the whole (well-formed) source: rows_in counts what was read,
        // not what was kept.
        assert_eq!(m.rows_in, orders.len() as u64, "{}", m.partition);
        assert_eq!(m.rows_rejected, 0, "{}", m.partition);
        assert_eq!(m.bytes, info.bytes, "{}", m.partition);
        assert_eq!(m.files, 1, "{}", m.partition);
        assert_eq!(m.checksum.len(), 40, "a SHA-1 hex digest: {}", m.checksum);
        assert!(m.checksum.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(m.schema.contains("event_time"), "{}", m.schema);
        assert_eq!(m.dag_id, DAG_ID);
        assert_eq!(m.task_id, "load_day");
        let day: Date = m.partition.trim_start_matches("dt=").parse().unwrap();
        let run = runs
            .iter()
            .find(|r| r.logical_date == midnight(day, NEW_YORK))
            .expect("the run of the day");
        assert_eq!(m.run_id, run.run_id.to_string());
        assert_eq!(m.try_number, 1);
    }
    // The checksum is over the bytes: distinct days, distinct checksums.
    let mut sums: Vec<&str> = manifests.iter().map(|m| m.checksum.as_str()).collect();
    sums.sort();
    sums.dedup();
    assert_eq!(sums.len(), 7);

    // The verify task read every partition back and agreed.
    let verified = w.output(&runs[6], "verify_day").await;
    assert_eq!(verified["partitions"][0]["partition"], "dt=2026-03-08");
    assert_eq!(verified["partitions"][0]["rows"], want["dt=2026-03-08"]);
}

/// `--conf tz=Europe/London` cuts the same calendar days in London: the counts are those of the
/// London days (and differ from the New York ones).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conf_tz_cuts_days_in_london() {
    let w = World::new().await;
    let source = w.sample("orders.csv", utc(2026, 3, 1), 10, 20_000, 11);
    let orders = read_orders(&source);
    let london = per_local_date(&orders, LONDON);
    let new_york = per_local_date(&orders, NEW_YORK);

    for day in [date(2026, 3, 5), date(2026, 3, 8)] {
        let output = w.path(&format!("out/london-{day}"));
        let outcome = w
            .run(
                DAG_ID,
                midnight(day, NEW_YORK),
                conf([
                    ("source", s(&source)),
                    ("output", s(&output)),
                    ("tz", LONDON.to_owned()),
                ]),
            )
            .await;
        assert_states(&w, &outcome, RunState::Success, &[]).await;
        let key = format!("dt={day}");
        assert_eq!(
            partition_rows(&output),
            BTreeMap::from([(key.clone(), london[&day])]),
            "{day}"
        );
        assert_ne!(
            london[&day], new_york[&day],
            "the zone must matter for {day}"
        );
        // London's day is 24 hours (its DST change is on the 29th) starting at 00:00Z.
        assert_eq!(
            london[&day],
            count_in(
                &orders,
                utc(2026, 3, day.day()),
                utc(2026, 3, day.day() + 1)
            )
        );
        for t in times(&read_partition(&output, &key)) {
            assert_eq!(t.to_zoned(tz(LONDON)).date(), day);
        }
    }
}

/// Re-running a day replaces its partition: the same source gives the same count in one file
/// with no duplicated order; a changed source gives the new count (replaced, never appended).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerunning_a_day_replaces_its_partition() {
    let w = World::new().await;
    let first = w.sample("first.csv", utc(2026, 3, 1), 10, 20_000, 3);
    let second = w.sample("second.csv", utc(2026, 3, 1), 10, 12_000, 4);
    let output = w.path("out/daily");
    let day = date(2026, 3, 5);
    let key = "dt=2026-03-05";
    let at = midnight(day, NEW_YORK);
    let expected_first = per_local_date(&read_orders(&first), NEW_YORK)[&day];
    let expected_second = per_local_date(&read_orders(&second), NEW_YORK)[&day];
    assert_ne!(expected_first, expected_second);

    let mut run_ids = Vec::new();
    for (source, expected) in [
        (&first, expected_first),
        (&first, expected_first),
        (&second, expected_second),
    ] {
        let outcome = w
            .run(
                DAG_ID,
                at,
                conf([("source", s(source)), ("output", s(&output))]),
            )
            .await;
        assert_states(&w, &outcome, RunState::Success, &[]).await;
        run_ids.push(outcome.run.run_id.clone());
        assert_eq!(
            partition_rows(&output),
            BTreeMap::from([(key.to_owned(), expected)])
        );
        let (parts, other) = partition_files(&output, key);
        assert_eq!(parts, ["part-00000.parquet"], "other entries: {other:?}");
        let batches = read_partition(&output, key);
        assert_eq!(rows_of(&batches), expected);
        assert_eq!(duplicates(&i64_column(&batches, "order_id")), 0);
        // The latest manifest describes the latest commit.
        let manifests = w.store.manifests(&s(&output)).await.unwrap();
        assert_eq!(manifests.len(), 1);
        assert_eq!(manifests[0].rows_out, expected);
    }
    // A re-run is the same run of the interval, cleared and run again.
    assert!(run_ids.windows(2).all(|p| p[0] == p[1]), "{run_ids:?}");
}

/// A missing source fails the run at once with an error naming the path, and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_source_fails_naming_the_path_and_writes_nothing() {
    let w = World::new().await;
    let missing = w.path("sources/no-such-orders.csv");
    let output = w.path("out/daily");
    let outcome = w
        .run(
            DAG_ID,
            midnight(date(2026, 3, 5), NEW_YORK),
            conf([("source", s(&missing)), ("output", s(&output))]),
        )
        .await;
    assert_states(
        &w,
        &outcome,
        RunState::Failed,
        &[
            ("load_day", TaskState::Failed),
            ("verify_day", TaskState::UpstreamFailed),
        ],
    )
    .await;
    let tis = w.tasks(&outcome.run).await;
    let error = tis["load_day"].error.clone().unwrap_or_default();
    assert!(error.contains(&s(&missing)), "{error}");
    assert!(error.contains("does not exist"), "{error}");
    // Not worth retrying: one try.
    assert_eq!(w.tries(&outcome.run, "load_day").await.len(), 1);
    // Nothing written, nothing recorded.
    assert!(
        !output.exists() || partition_rows(&output).is_empty(),
        "partitions were written"
    );
    assert!(w.store.manifests(&s(&output)).await.unwrap().is_empty());
}
