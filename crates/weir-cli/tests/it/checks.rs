//! Quality checks as a DAG file declares them: a `warn` check that fails lets the run succeed
//! and publish, and `weir checks list` shows it — rule, failing count, the failing rows.

use std::path::Path;

use crate::{json_lines, weir};

const DAG: &str = "checked_orders";

/// A DAG file whose load checks `amount` (not null, and within 0..100), both as warnings.
fn dag_file(dags: &Path, source: &Path) {
    std::fs::create_dir_all(dags).unwrap();
    let text = format!(
        r#"[dag]
id = "{DAG}"
schedule = "@daily"
timezone = "UTC"
start_date = "2026-03-01"
catchup = false

[[tasks]]
id = "load"
op = "load_window"
source = "{}"
time_column = "event_time"
partition_by = "dt"
checks = [
  {{ rule = "not_null", column = "amount", severity = "warn" }},
  {{ rule = "range", column = "amount", min = 0, max = 100, severity = "warn", name = "amount_range" }},
  {{ rule = "unique", column = "order_id" }},
]
"#,
        source.display()
    );
    std::fs::write(dags.join("checked.toml"), text).unwrap();
}

#[test]
fn a_failed_warn_check_lets_the_run_publish_and_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path();
    let source = h.join("orders.csv");
    std::fs::write(
        &source,
        "order_id,region,event_time,amount\n\
         1,EU,2026-03-05T01:00:00Z,10\n\
         2,US,2026-03-05T02:00:00Z,\n\
         3,EU,2026-03-05T03:00:00Z,250\n\
         4,US,2026-03-05T04:00:00Z,20\n",
    )
    .unwrap();
    let dags = h.join("dags-here");
    dag_file(&dags, &source);
    weir(h)
        .arg("--dags")
        .arg(&dags)
        .args(["dags", "validate"])
        .arg(dags.join("checked.toml"))
        .assert()
        .success();
    let out = weir(h)
        .arg("--dags")
        .arg(&dags)
        .args(["dags", "run", DAG, "--logical-date", "2026-03-05", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let run = json_lines(&out.stdout).pop().expect("the run's summary");
    assert_eq!(run["state"], "success", "{run}");
    let parts = weir_data::Dataset::open(&h.join("data").join(DAG))
        .unwrap()
        .partitions()
        .unwrap();
    assert_eq!(
        parts
            .iter()
            .map(|p| (p.partition.as_str(), p.rows))
            .collect::<Vec<_>>(),
        vec![("dt=2026-03-05", 4)],
        "the warn failures did not stop the publish"
    );

    let out = weir(h)
        .args(["checks", "list", "--dag", DAG, "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let results = json_lines(&out.stdout);
    assert_eq!(results.len(), 3, "{results:?}");
    let by_name = |name: &str| {
        results
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no result named {name}: {results:?}"))
    };
    let not_null = by_name("not_null_amount");
    assert_eq!(not_null["passed"], false);
    assert_eq!(not_null["severity"], "warn");
    assert_eq!(not_null["gate"], "output");
    assert_eq!(not_null["failing"], 1);
    assert_eq!(not_null["rule"]["rule"], "not_null");
    assert_eq!(not_null["sample"][0]["order_id"], 2, "{not_null}");
    assert_eq!(not_null["task_id"], "load");
    let range = by_name("amount_range");
    assert_eq!(range["passed"], false);
    assert_eq!(range["failing"], 1);
    assert_eq!(range["sample"][0]["amount"], 250, "{range}");
    let unique = by_name("unique_order_id");
    assert_eq!(unique["passed"], true);
    assert_eq!(unique["severity"], "error");
    assert_eq!(unique["failing"], 0);

    // Only the failed ones, as a table with their failing rows under them.
    let out = weir(h)
        .args(["checks", "list", "--dag", DAG, "--failed"])
        .assert()
        .success()
        .get_output()
        .clone();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("amount_range"), "{text}");
    assert!(text.contains("\"amount\":250"), "{text}");
    assert!(!text.contains("unique_order_id"), "{text}");
    assert!(text.contains("2 checks, 2 failed"), "{text}");
}
