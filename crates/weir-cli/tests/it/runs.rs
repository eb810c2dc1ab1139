//! Running DAGs from the command line and reading back what they did.

use crate::{json_lines, weir};

/// A small deterministic source, written with `weir data generate`.
fn generate(home: &std::path::Path, rows: &str) -> std::path::PathBuf {
    let path = home.join("orders.csv");
    weir(home)
        .args([
            "data",
            "generate",
            "--rows",
            rows,
            "--start",
            "2026-03-01",
            "--days",
            "10",
            "--out",
        ])
        .arg(&path)
        .assert()
        .success();
    path
}

#[test]
fn data_generate_is_deterministic() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (pa, pb) = (generate(a.path(), "3000"), generate(b.path(), "3000"));
    assert_eq!(std::fs::read(pa).unwrap(), std::fs::read(pb).unwrap());
}

#[test]
fn dags_list_shows_the_batch_window_patterns() {
    let home = tempfile::tempdir().unwrap();
    let out = weir(home.path())
        .args(["dags", "list", "--json"])
        .assert()
        .success();
    let ids: Vec<String> = json_lines(&out.get_output().stdout)
        .iter()
        .map(|v| v["dag_id"].as_str().unwrap().to_owned())
        .collect();
    for id in [
        "110_01_01_daily_batch_processing",
        "110_01_02_hourly_batch_processing",
        "110_01_03_weekly_batch_aggregation",
        "110_01_04_monthly_batch_processing",
        "110_01_05_custom_batch_windows",
    ] {
        assert!(ids.iter().any(|i| i == id), "{id} missing from {ids:?}");
    }
}

#[test]
fn run_then_list_runs_and_tasks() {
    let home = tempfile::tempdir().unwrap();
    let source = generate(home.path(), "5000");
    let output = home.path().join("daily");
    let out = weir(home.path())
        .args([
            "dags",
            "run",
            "110_01_01_daily_batch_processing",
            "--logical-date",
            "2026-03-08",
            "--json",
        ])
        .arg("--conf")
        .arg(format!("source={}", source.display()))
        .arg("--conf")
        .arg(format!("output={}", output.display()))
        .assert()
        .success();
    let summary = &json_lines(&out.get_output().stdout)[0];
    assert_eq!(summary["state"], "success");
    assert_eq!(summary["data_interval_start"], "2026-03-08T00:00:00-05:00");
    assert_eq!(summary["data_interval_end"], "2026-03-09T00:00:00-04:00");
    let rows = summary["outputs"]["verify_day"]["rows"].as_u64().unwrap();
    assert!(rows > 0, "{summary}");
    assert!(
        output
            .join("dt=2026-03-08")
            .join("part-00000.parquet")
            .is_file()
    );

    let runs = weir(home.path())
        .args(["runs", "list", "--json"])
        .assert()
        .success();
    let runs = json_lines(&runs.get_output().stdout);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["state"], "success");
    let run_id = runs[0]["run_id"].as_str().unwrap().to_owned();
    assert_eq!(run_id, "manual__2026-03-08T05:00:00+00:00");

    let tasks = weir(home.path())
        .args(["tasks", "list", &run_id, "--json"])
        .assert()
        .success();
    let tasks = json_lines(&tasks.get_output().stdout);
    let states: Vec<(&str, &str, u64)> = tasks
        .iter()
        .map(|t| {
            (
                t["key"]["task_id"].as_str().unwrap(),
                t["state"].as_str().unwrap(),
                t["try_number"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![("load_day", "success", 1), ("verify_day", "success", 1)]
    );
}

#[test]
fn a_failing_run_exits_non_zero_and_says_why() {
    let home = tempfile::tempdir().unwrap();
    let missing = home.path().join("nope.csv");
    let out = weir(home.path())
        .args([
            "dags",
            "run",
            "110_01_01_daily_batch_processing",
            "--logical-date",
            "2026-03-08",
        ])
        .arg("--conf")
        .arg(format!("source={}", missing.display()))
        .assert()
        .failure();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("does not exist"), "{stdout}");
    assert!(stdout.contains("nope.csv"), "{stdout}");
}

#[test]
fn backfill_dry_run_changes_nothing() {
    let home = tempfile::tempdir().unwrap();
    let out = weir(home.path())
        .args([
            "dags",
            "backfill",
            "110_01_01_daily_batch_processing",
            "--from",
            "2026-03-06",
            "--to",
            "2026-03-09",
            "--dry-run",
            "--json",
        ])
        .assert()
        .success();
    let plan = json_lines(&out.get_output().stdout);
    assert_eq!(plan.len(), 4);
    assert!(plan.iter().all(|e| e["action"] == "create"));
    assert_eq!(plan[2]["data_interval_start"], "2026-03-08T00:00:00-05:00");
    let runs = weir(home.path())
        .args(["runs", "list", "--json"])
        .assert()
        .success();
    assert!(json_lines(&runs.get_output().stdout).is_empty());
}

#[test]
fn ls_and_query_a_daily_dataset_prune_to_one_partition() {
    let home = tempfile::tempdir().unwrap();
    let source = generate(home.path(), "6000");
    let output = home.path().join("daily");
    weir(home.path())
        .args([
            "dags",
            "backfill",
            "110_01_01_daily_batch_processing",
            "--from",
            "2026-03-02",
            "--to",
            "2026-03-04",
        ])
        .arg("--conf")
        .arg(format!("source={}", source.display()))
        .arg("--conf")
        .arg(format!("output={}", output.display()))
        .assert()
        .success();

    let ls = weir(home.path())
        .args(["data", "ls", "--json"])
        .arg(&output)
        .assert()
        .success();
    let parts = json_lines(&ls.get_output().stdout);
    let names: Vec<&str> = parts
        .iter()
        .map(|p| p["partition"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["dt=2026-03-02", "dt=2026-03-03", "dt=2026-03-04"]
    );
    let rows_03 = parts[1]["rows"].as_u64().unwrap();

    let query = weir(home.path())
        .args([
            "data",
            "query",
            "SELECT region, count(*) AS n FROM orders WHERE dt = '2026-03-03' GROUP BY region",
            "--explain",
            "--json",
        ])
        .arg("--table")
        .arg(format!("orders={}", output.display()))
        .assert()
        .success();
    let rows = json_lines(&query.get_output().stdout);
    assert!(rows.len() >= 2, "several regions: {rows:?}");
    assert_eq!(
        rows.iter().map(|r| r["n"].as_u64().unwrap()).sum::<u64>(),
        rows_03
    );
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&query.get_output().stderr).trim()).unwrap();
    assert_eq!(report["files_scanned"], 1, "{report}");
    assert!(
        report["files"][0]["path"]
            .as_str()
            .unwrap()
            .contains("dt=2026-03-03")
    );
}

#[test]
fn a_csv_dataset_lists_its_format_and_answers_queries_like_parquet() {
    let home = tempfile::tempdir().unwrap();
    let source = generate(home.path(), "4000");
    let mut totals = Vec::new();
    for format in ["parquet", "csv"] {
        let output = home.path().join(format!("daily-{format}"));
        weir(home.path())
            .args([
                "dags",
                "run",
                "110_01_01_daily_batch_processing",
                "--logical-date",
                "2026-03-03",
            ])
            .arg("--conf")
            .arg(format!("source={}", source.display()))
            .arg("--conf")
            .arg(format!("output={}", output.display()))
            .arg("--conf")
            .arg(format!("format={format}"))
            .assert()
            .success();
        let ls = weir(home.path())
            .args(["data", "ls", "--json"])
            .arg(&output)
            .assert()
            .success();
        let parts = json_lines(&ls.get_output().stdout);
        assert_eq!(parts.len(), 1, "{parts:?}");
        assert_eq!(parts[0]["format"], format);
        let query = weir(home.path())
            .args([
                "data",
                "query",
                "SELECT count(*) AS n, CAST(sum(amount) AS VARCHAR) AS total FROM orders",
                "--json",
            ])
            .arg("--table")
            .arg(format!("orders=file://{}", output.display()))
            .assert()
            .success();
        let rows = json_lines(&query.get_output().stdout);
        assert_eq!(rows[0]["n"], parts[0]["rows"], "{format}: {rows:?}");
        totals.push(rows[0]["total"].clone());
    }
    assert_eq!(totals[0], totals[1]);
}
