//! Bad input gets one clear sentence on stderr and a non-zero exit, never a panic.

use crate::weir;

/// One line on stderr (see [`crate::fails_with`]) and nothing on stdout.
fn fails_with(args: &[&str], needle: &str) {
    let home = tempfile::tempdir().unwrap();
    let out = crate::fails_with_output(home.path(), args, needle);
    assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
}

#[test]
fn unknown_dag() {
    fails_with(
        &["dags", "run", "no_such_dag"],
        "no DAG named `no_such_dag`",
    );
    fails_with(&["dags", "show", "no_such_dag"], "weir dags list");
}

#[test]
fn bad_dates() {
    fails_with(
        &[
            "dags",
            "run",
            "110_01_01_daily_batch_processing",
            "--logical-date",
            "2026-13-45",
        ],
        "--logical-date",
    );
    fails_with(
        &[
            "dags",
            "backfill",
            "110_01_01_daily_batch_processing",
            "--from",
            "2026-03-09",
            "--to",
            "2026-03-02",
        ],
        "before --from",
    );
}

#[test]
fn bad_cron_names_the_field() {
    fails_with(
        &[
            "schedule",
            "preview",
            "--cron",
            "0 25 * * *",
            "--tz",
            "UTC",
            "--start",
            "2026-01-01",
            "--count",
            "1",
        ],
        "hour",
    );
    fails_with(
        &[
            "schedule",
            "preview",
            "--cron",
            "0 0 * *",
            "--tz",
            "UTC",
            "--start",
            "2026-01-01",
            "--count",
            "1",
        ],
        "expected 5",
    );
}

#[test]
fn unknown_zone() {
    fails_with(
        &[
            "schedule",
            "preview",
            "--cron",
            "@daily",
            "--tz",
            "Mars/Olympus",
            "--start",
            "2026-01-01",
            "--count",
            "1",
        ],
        "Mars/Olympus",
    );
}

#[test]
fn bad_duration_and_conf() {
    fails_with(
        &[
            "schedule",
            "preview",
            "--every",
            "ninety",
            "--tz",
            "UTC",
            "--start",
            "2026-01-01",
            "--count",
            "1",
        ],
        "--every",
    );
    fails_with(
        &[
            "dags",
            "run",
            "110_01_01_daily_batch_processing",
            "--conf",
            "no-equals-sign",
        ],
        "NAME=VALUE",
    );
}

#[test]
fn usage_errors_exit_2() {
    let home = tempfile::tempdir().unwrap();
    weir(home.path())
        .args(["dags", "backfill"])
        .assert()
        .code(2);
}
