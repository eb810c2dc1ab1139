//! What a new user ran into, pinned: bad params fail before any task starts, data mistakes fail
//! on their first try, dates mean the run's zone, a closed stdout is not an error, and a killed
//! `weir` leaves runs that the same command, run again, finishes.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command as StdCommand, Stdio};

use jiff::civil::date;
use jiff::tz::TimeZone;
use serde_json::Value;

use crate::{fails_with, json_lines, kill_after, spawn_weir, weir};

fn runs(home: &Path, store: &[&str], dag: &str) -> Vec<Value> {
    let out = weir(home)
        .args(store)
        .args(["runs", "list", "--dag", dag, "--json"])
        .assert()
        .success();
    json_lines(&out.get_output().stdout)
}

fn task_instances(home: &Path, run_id: &str) -> Vec<Value> {
    let out = weir(home)
        .args(["tasks", "list", run_id, "--json"])
        .assert()
        .success();
    json_lines(&out.get_output().stdout)
}

#[test]
fn a_bad_param_fails_before_any_run_is_created() {
    let home = tempfile::tempdir().unwrap();
    let dag = "110_02_03_hash_based_partitioning";
    fails_with(
        home.path(),
        &["dags", "run", dag, "--conf", "partitions=100000000"],
        "--conf partitions=100000000 is invalid: `partitions` takes a whole number from 1 to 4096",
    );
    fails_with(
        home.path(),
        &["dags", "run", dag, "--conf", "partiton=8"],
        "--conf partiton is not a param of DAG `110_02_03_hash_based_partitioning`",
    );
    fails_with(
        home.path(),
        &["dags", "run", dag, "--conf", "format=xlsx"],
        "`format` takes one of parquet, csv, jsonl",
    );
    fails_with(
        home.path(),
        &[
            "dags",
            "backfill",
            "110_01_01_daily_batch_processing",
            "--from",
            "2026-03-02",
            "--to",
            "2026-03-03",
            "--conf",
            "tz=Mars/Olympus",
        ],
        "`tz` takes an IANA time zone name",
    );
    assert!(runs(home.path(), &[], dag).is_empty(), "no run was created");
    assert!(
        runs(home.path(), &[], "110_01_01_daily_batch_processing").is_empty(),
        "no backfill run was created"
    );
}

#[test]
fn dags_show_lists_the_declared_params() {
    let home = tempfile::tempdir().unwrap();
    let out = weir(home.path())
        .args([
            "dags",
            "show",
            "110_02_03_hash_based_partitioning",
            "--json",
        ])
        .assert()
        .success();
    let shown = &json_lines(&out.get_output().stdout)[0];
    let params = shown["params"].as_array().unwrap();
    let partitions = params.iter().find(|p| p["name"] == "partitions").unwrap();
    assert_eq!(partitions["default"], 8);
    assert_eq!(partitions["accepts"], "a whole number from 1 to 4096");
    assert_eq!(partitions["doc"], "number of buckets");
    let names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
    for name in [
        "source",
        "time_column",
        "tz",
        "output",
        "format",
        "key",
        "max_skew",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let text = weir(home.path())
        .args(["dags", "show", "110_02_03_hash_based_partitioning"])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&text.get_output().stdout).into_owned();
    assert!(
        text.contains("--conf partitions       a whole number from 1 to 4096 = 8"),
        "{text}"
    );
}

/// The one failed run of `dags run`: its first task failed on try 1 of 3, with no retry.
fn assert_failed_on_first_try(home: &Path, dag: &str, task: &str, stderr: &str) {
    let runs = runs(home, &[], dag);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["state"], "failed");
    let tis = task_instances(home, runs[0]["run_id"].as_str().unwrap());
    let ti = tis.iter().find(|t| t["key"]["task_id"] == task).unwrap();
    assert_eq!(ti["state"], "failed", "{ti}");
    assert_eq!(ti["try_number"], 1, "failed at once, not retried: {ti}");
    assert_eq!(ti["max_tries"], 3, "it had retries left: {ti}");
    assert!(
        stderr.contains(&format!("task {task} failed on try 1 of 3")),
        "{stderr}"
    );
}

#[test]
fn a_source_that_is_a_folder_fails_on_the_first_try() {
    let home = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    let dag = "110_02_01_date_based_partitioning";
    let source = format!("source={}", folder.path().display());
    let stderr = fails_with(
        home.path(),
        &[
            "dags",
            "run",
            dag,
            "--logical-date",
            "2026-03-02",
            "--conf",
            &source,
        ],
        "is a folder, not a file",
    );
    assert_failed_on_first_try(home.path(), dag, "partition_by_date", &stderr);
}

#[test]
fn a_missing_partition_column_fails_on_the_first_try() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("orders.csv");
    std::fs::write(
        &source,
        "order_id,region,event_time\n1,EU,2026-03-02T10:00:00Z\n2,US,2026-03-02T11:00:00Z\n",
    )
    .unwrap();
    let dag = "110_02_05_geographic_partitioning";
    let stderr = fails_with(
        home.path(),
        &[
            "dags",
            "run",
            dag,
            "--conf",
            &format!("source={}", source.display()),
            "--conf",
            "key=no_such_column",
        ],
        "no_such_column",
    );
    assert_failed_on_first_try(home.path(), dag, "split_regions", &stderr);
}

/// Regression: `--logical-date 2013-06-15 --conf tz=America/New_York` on a UTC DAG wrote
/// `dt=2013-06-14`, cutting the UTC day and filing it under New York's date.
#[test]
fn the_logical_date_is_the_start_of_the_interval_in_the_runs_zone() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("flights.csv");
    std::fs::write(
        &source,
        "flight,time_hour\n\
         1,2013-06-15T03:59:59Z\n\
         2,2013-06-15T04:00:00Z\n\
         3,2013-06-15T16:00:00Z\n\
         4,2013-06-16T03:59:59Z\n\
         5,2013-06-16T04:00:00Z\n",
    )
    .unwrap();
    let output = dir.path().join("out");
    let out = weir(home.path())
        .args([
            "dags",
            "run",
            "110_02_01_date_based_partitioning",
            "--logical-date",
            "2013-06-15",
            "--conf",
            "tz=America/New_York",
            "--conf",
            &format!("source={}", source.display()),
            "--conf",
            "time_column=time_hour",
            "--conf",
            &format!("output={}", output.display()),
            "--json",
        ])
        .assert()
        .success();
    let run = &json_lines(&out.get_output().stdout)[0];
    assert_eq!(run["data_interval_start"], "2013-06-15T00:00:00-04:00");
    assert_eq!(run["data_interval_end"], "2013-06-16T00:00:00-04:00");
    let ls = weir(home.path())
        .args(["data", "ls", output.to_str().unwrap(), "--json"])
        .assert()
        .success();
    let parts = json_lines(&ls.get_output().stdout);
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert_eq!(parts[0]["partition"], "dt=2013-06-15");
    assert_eq!(
        parts[0]["rows"], 3,
        "flights 2, 3 and 4 are New York's 2013-06-15"
    );
}

/// Regression: `weir runs list --json | head -1` panicked on the closed pipe with a backtrace.
#[test]
fn a_closed_stdout_ends_the_command_quietly_with_success() {
    let home = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("weir");
    // Far more output than a pipe buffers, so the writer meets the closed pipe.
    let mut child = StdCommand::new(bin)
        .arg("--home")
        .arg(home.path())
        .args(["schedule", "preview", "--cron", "* * * * *", "--tz", "UTC"])
        .args(["--start", "2026-01-01", "--count", "200000", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("logical_date"), "{first}");
    // The reader is gone now (`head -1` exits).
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "exit {status:?}, stderr: {stderr}");
    assert_eq!(stderr, "", "nothing on stderr, no panic");
}

/// One CSV of orders: `per_day` rows in each of `days` New York days from 2026-03-01 (one a
/// minute from local midnight), plus `filler` rows in April that no March run keeps, so that
/// every run reads a while.
pub(crate) fn write_orders(path: &Path, days: i32, per_day: i64, filler: i64) {
    let ny = TimeZone::get("America/New_York").unwrap();
    let mut text = String::from("order_id,event_time,amount\n");
    let mut id = 0;
    for d in 0..days {
        let start = date(2026, 3, 1 + d as i8)
            .to_zoned(ny.clone())
            .unwrap()
            .timestamp();
        for i in 0..per_day {
            id += 1;
            let t = start + jiff::SignedDuration::from_mins(i);
            text.push_str(&format!("{id},{t},{}.50\n", i % 90));
        }
    }
    let april = date(2026, 4, 15).to_zoned(ny).unwrap().timestamp();
    for i in 0..filler {
        id += 1;
        let t = april + jiff::SignedDuration::from_secs(i);
        text.push_str(&format!("{id},{t},1.00\n"));
    }
    std::fs::write(path, text).unwrap();
}

fn count_states(runs: &[Value]) -> (usize, usize) {
    let done = runs.iter().filter(|r| r["state"] == "success").count();
    let unfinished = runs
        .iter()
        .filter(|r| r["state"] == "queued" || r["state"] == "running")
        .count();
    (done, unfinished)
}

/// Regression: a backfill killed with `kill -9` and run again printed "0 runs succeeded, 20
/// skipped (already run)" and left its queued and running runs to nobody.
#[test]
fn a_killed_backfill_run_again_resumes_and_finishes_every_run() {
    killed_backfill_run_again_finishes(&[]);
}

/// The same on PostgreSQL: the run leases, fences and takeovers are the store's, not SQLite's.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_killed_backfill_on_postgres_run_again_resumes_and_finishes_every_run() {
    let url = weir_store::testing::postgres_schema_url().await;
    tokio::task::spawn_blocking(move || killed_backfill_run_again_finishes(&["--store", &url]))
        .await
        .unwrap();
}

/// `store` goes before every command: `--store URL`, or nothing for the home's SQLite file.
fn killed_backfill_run_again_finishes(store: &[&str]) {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("orders.csv");
    write_orders(&source, 20, 1000, 100_000);
    let output = dir.path().join("daily");
    let dag = "110_01_01_daily_batch_processing";
    let source_conf = format!("source={}", source.display());
    let output_conf = format!("output={}", output.display());
    let args: Vec<&str> = [
        "--lease",
        "1s",
        "dags",
        "backfill",
        dag,
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-20",
        "--max-active-runs",
        "2",
        "--conf",
        &source_conf,
        "--conf",
        &output_conf,
    ]
    .into_iter()
    .chain(store.iter().copied())
    .collect();
    let mut first: Vec<&str> = vec!["--log", "info"];
    first.extend(&args);
    kill_after(
        spawn_weir(home.path(), &first),
        &["run finished", "state=success"],
        4,
    );
    let before = runs(home.path(), store, dag);
    assert_eq!(
        before.len(),
        20,
        "the backfill creates all its runs up front"
    );
    let (done, unfinished) = count_states(&before);
    assert!(done >= 4, "{done} runs had finished");
    assert!(
        unfinished > 0 && done + unfinished == 20,
        "the kill left runs unfinished: {done} done, {unfinished} unfinished"
    );

    let again = weir(home.path()).args(&args).assert().success();
    let stdout = String::from_utf8_lossy(&again.get_output().stdout).into_owned();
    let summary = format!(
        "{} runs succeeded, 0 failed, {} resumed, {} skipped (already run)",
        20 - done,
        20 - done,
        done
    );
    assert!(
        stdout.contains(&summary),
        "expected {summary:?} in {stdout}"
    );
    let after = runs(home.path(), store, dag);
    assert_eq!(count_states(&after), (20, 0));
    assert!(
        after.iter().all(|r| r["owner"].is_null()),
        "no run keeps an owner"
    );
    // Every day landed exactly once: 1000 rows each, as written, nothing doubled.
    let ls = weir(home.path())
        .args(["data", "ls", output.to_str().unwrap(), "--json"])
        .assert()
        .success();
    let parts = json_lines(&ls.get_output().stdout);
    assert_eq!(parts.len(), 20);
    for (d, part) in parts.iter().enumerate() {
        assert_eq!(part["partition"], format!("dt=2026-03-{:02}", d + 1));
        assert_eq!(part["rows"], 1000, "{part}");
    }
}

/// Regression: `weir dags run` of an interval whose process was killed answered "run … is
/// still running; wait for it to finish" forever.
#[test]
fn a_killed_dags_run_run_again_takes_the_run_over() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("orders.csv");
    write_orders(&source, 10, 1000, 300_000);
    let output = dir.path().join("daily");
    let dag = "110_01_01_daily_batch_processing";
    let source_conf = format!("source={}", source.display());
    let output_conf = format!("output={}", output.display());
    let args = [
        "--lease",
        "1s",
        "dags",
        "run",
        dag,
        "--logical-date",
        "2026-03-08",
        "--conf",
        &source_conf,
        "--conf",
        &output_conf,
    ];
    let mut first: Vec<&str> = vec!["--log", "info"];
    first.extend(args);
    kill_after(
        spawn_weir(home.path(), &first),
        &["task state", "task_id=load_day", "to=running"],
        1,
    );
    let before = runs(home.path(), &[], dag);
    assert_eq!(before.len(), 1);
    assert_eq!(before[0]["state"], "running", "killed mid-run");

    let again = weir(home.path()).args(args).assert().success();
    let stdout = String::from_utf8_lossy(&again.get_output().stdout).into_owned();
    assert!(
        stdout.contains("success") && stdout.contains("(resumed"),
        "{stdout}"
    );
    let tis = task_instances(home.path(), before[0]["run_id"].as_str().unwrap());
    let load = tis
        .iter()
        .find(|t| t["key"]["task_id"] == "load_day")
        .unwrap();
    assert_eq!(load["state"], "success");
    assert_eq!(
        load["try_number"], 2,
        "the killed try counts as failed: {load}"
    );
    let ls = weir(home.path())
        .args(["data", "ls", output.to_str().unwrap(), "--json"])
        .assert()
        .success();
    let parts = json_lines(&ls.get_output().stdout);
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0]["partition"], "dt=2026-03-08");
    assert_eq!(parts[0]["rows"], 1000);
}

/// Regression: manifests copied `rows_in` from `rows_out` and said 0 rejected, and rejected rows
/// were only counted. Now a commit records what was read, written and set aside, and every
/// reject is kept once per source position, however often the source is read.
#[test]
fn manifests_tell_the_truth_and_rejects_are_kept_once() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("orders.csv");
    std::fs::write(
        &source,
        "order_id,event_time,amount\n\
         1,2026-03-08T06:00:00Z,1.50\n\
         2,2026-03-08T12:00:00Z,2.50\n\
         3,2026-03-09T03:59:59Z,3.50\n\
         4,2026-03-09T04:00:00Z,4.50\n\
         5,yesterday at noon,5.50\n\
         6,2026-02-30T10:00:00Z,6.50\n",
    )
    .unwrap();
    let output = dir.path().join("daily");
    let args = [
        "dags",
        "run",
        "110_01_01_daily_batch_processing",
        "--logical-date",
        "2026-03-08",
        "--conf",
        &format!("source={}", source.display()),
        "--conf",
        &format!("output={}", output.display()),
    ];
    for _ in 0..2 {
        weir(home.path()).args(args).assert().success();
    }
    let out = weir(home.path())
        .args(["data", "manifests", output.to_str().unwrap(), "--json"])
        .assert()
        .success();
    let manifests = json_lines(&out.get_output().stdout);
    assert_eq!(
        manifests.len(),
        1,
        "the latest manifest of the one partition"
    );
    let m = &manifests[0];
    assert_eq!(m["partition"], "dt=2026-03-08");
    assert_eq!(m["rows_in"], 6, "every source row read: {m}");
    assert_eq!(
        m["rows_out"], 3,
        "New York's 2026-03-08 holds orders 1-3: {m}"
    );
    assert_eq!(m["rows_rejected"], 2, "{m}");
    assert_eq!(m["task_id"], "load_day");

    let out = weir(home.path())
        .args(["data", "rejects", "--json"])
        .assert()
        .success();
    let rejects = json_lines(&out.get_output().stdout);
    assert_eq!(rejects.len(), 2, "read twice, kept once: {rejects:?}");
    assert_eq!(rejects[0]["line"], 6);
    assert_eq!(rejects[0]["raw"], "5,yesterday at noon,5.50");
    assert!(
        rejects[0]["reason"]
            .as_str()
            .unwrap()
            .contains("event_time"),
        "{}",
        rejects[0]
    );
    assert_eq!(rejects[1]["line"], 7);
    assert_eq!(rejects[1]["task_id"], "load_day");
    assert_eq!(rejects[1]["try_number"], 1);
    assert!(
        rejects[1]["source"]
            .as_str()
            .unwrap()
            .ends_with("orders.csv")
    );
}

/// Each try's log is kept under the home and shown by `weir tasks logs`, whatever `--log` said
/// on the console; a failed try's log says why.
#[test]
fn every_try_keeps_a_log_that_tasks_logs_shows() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("orders.csv");
    std::fs::write(
        &source,
        "order_id,region,event_time\n1,EU,2026-03-02T10:00:00Z\n2,US,2026-03-02T11:00:00Z\n",
    )
    .unwrap();
    let dag = "110_02_05_geographic_partitioning";
    let source_conf = format!("source={}", source.display());
    let output_conf = format!("output={}", dir.path().join("geo").display());
    weir(home.path())
        .args([
            "dags",
            "run",
            dag,
            "--conf",
            &source_conf,
            "--conf",
            &output_conf,
        ])
        .assert()
        .success();
    let run_id = runs(home.path(), &[], dag)[0]["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = weir(home.path())
        .args(["tasks", "logs", &run_id, "split_regions"])
        .assert()
        .success();
    let log = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(log.contains("try 1 of 3 started"), "{log}");
    assert!(
        log.contains("committed") && log.contains("partition=region=EU"),
        "{log}"
    );
    assert!(log.contains("try 1 succeeded"), "{log}");

    // A second run that fails: its log says why, in one place.
    weir(home.path())
        .args([
            "dags",
            "run",
            dag,
            "--conf",
            &source_conf,
            "--conf",
            &output_conf,
            "--conf",
            "key=no_such_column",
        ])
        .assert()
        .failure();
    let failed = runs(home.path(), &[], dag)
        .into_iter()
        .find(|r| r["state"] == "failed")
        .unwrap();
    let run_id = failed["run_id"].as_str().unwrap().to_owned();
    let out = weir(home.path())
        .args(["tasks", "logs", &run_id, "split_regions", "--try", "1"])
        .assert()
        .success();
    let log = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        log.contains("failed (not retryable)") && log.contains("no_such_column"),
        "{log}"
    );
    fails_with(
        home.path(),
        &["tasks", "logs", &run_id, "split_regions", "--try", "2"],
        "no log of try 2 of `split_regions`",
    );
}
