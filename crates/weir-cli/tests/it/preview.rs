//! `weir schedule preview`: the first runs a DAG with a schedule and start date gets.

use crate::{json_lines, weir};

fn preview(args: &[&str]) -> Vec<(String, String, String)> {
    let home = tempfile::tempdir().unwrap();
    let out = weir(home.path())
        .args(["schedule", "preview"])
        .args(args)
        .arg("--json")
        .assert()
        .success();
    json_lines(&out.get_output().stdout)
        .into_iter()
        .map(|v| {
            (
                v["data_interval_start"].as_str().unwrap().to_owned(),
                v["data_interval_end"].as_str().unwrap().to_owned(),
                v["run_after"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn daily_cron_in_new_york_moves_the_missing_2am_forward_by_the_gap() {
    let runs = preview(&[
        "--cron",
        "0 2 * * *",
        "--tz",
        "America/New_York",
        "--start",
        "2026-03-06",
        "--count",
        "3",
    ]);
    assert_eq!(
        runs,
        vec![
            (
                "2026-03-06T02:00:00-05:00".into(),
                "2026-03-07T02:00:00-05:00".into(),
                "2026-03-07T02:00:00-05:00".into()
            ),
            (
                "2026-03-07T02:00:00-05:00".into(),
                "2026-03-08T03:00:00-04:00".into(),
                "2026-03-08T03:00:00-04:00".into()
            ),
            (
                "2026-03-08T03:00:00-04:00".into(),
                "2026-03-09T02:00:00-04:00".into(),
                "2026-03-09T02:00:00-04:00".into()
            ),
        ]
    );
}

#[test]
fn daily_preset_in_london_has_a_25_hour_window_in_autumn() {
    let runs = preview(&[
        "--cron",
        "@daily",
        "--tz",
        "Europe/London",
        "--start",
        "2026-10-24",
        "--count",
        "2",
    ]);
    assert_eq!(runs[1].0, "2026-10-25T00:00:00+01:00");
    assert_eq!(runs[1].1, "2026-10-26T00:00:00+00:00");
}

#[test]
fn repeated_time_fires_once_at_the_second_occurrence() {
    let runs = preview(&[
        "--cron",
        "30 1 * * *",
        "--tz",
        "Europe/London",
        "--start",
        "2026-10-24",
        "--count",
        "2",
    ]);
    assert_eq!(runs[0].1, "2026-10-25T01:30:00+00:00");
    assert_eq!(runs[1].1, "2026-10-26T01:30:00+00:00");
}

#[test]
fn fixed_durations_step_exact_time_and_drift_on_the_wall_clock() {
    let runs = preview(&[
        "--every",
        "24h",
        "--tz",
        "America/New_York",
        "--start",
        "2026-03-07T00:00",
        "--count",
        "2",
    ]);
    assert_eq!(
        runs[0],
        (
            "2026-03-07T00:00:00-05:00".into(),
            "2026-03-08T00:00:00-05:00".into(),
            "2026-03-08T00:00:00-05:00".into()
        )
    );
    assert_eq!(runs[1].1, "2026-03-09T01:00:00-04:00");
}

#[test]
fn trigger_kind_with_an_interval_covers_the_hour_before_each_tick() {
    let runs = preview(&[
        "--cron",
        "0 6 * * *",
        "--tz",
        "UTC",
        "--start",
        "2026-01-01",
        "--count",
        "1",
        "--kind",
        "trigger",
        "--interval",
        "1h",
    ]);
    assert_eq!(
        runs,
        vec![(
            "2026-01-01T05:00:00+00:00".into(),
            "2026-01-01T06:00:00+00:00".into(),
            "2026-01-01T06:00:00+00:00".into()
        )]
    );
}

#[test]
fn human_output_has_one_line_per_run() {
    let home = tempfile::tempdir().unwrap();
    let out = weir(home.path())
        .args([
            "schedule",
            "preview",
            "--cron",
            "@hourly",
            "--tz",
            "Australia/Lord_Howe",
            "--start",
            "2026-10-04T01:00",
            "--count",
            "3",
        ])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert_eq!(text.lines().count(), 3, "{text}");
    // Lord Howe springs forward 30 minutes at 02:00: local 02:00 never happens, so the window
    // that starts at 01:00 (+10:30) ends at the next tick that exists, 03:00 (+11:00).
    assert!(
        text.starts_with("2026-10-04T01:00:00+10:30  ->  2026-10-04T03:00:00+11:00"),
        "{text}"
    );
}
