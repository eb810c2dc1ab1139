//! Debugging failed runs from the command line (110.9.2).

use crate::{json_lines, weir};

/// 110.9.2 from the command line: `weir runs diagnose` points at the try's log, which holds
/// the error, and `weir tasks errors` groups the failure.
#[test]
fn diagnose_names_the_root_cause_and_its_log_and_errors_are_grouped() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path();
    let src = h.join("orders.csv");
    weir(h)
        .args([
            "data",
            "generate",
            "--rows",
            "20000",
            "--start",
            "2026-03-04",
            "--days",
            "3",
        ])
        .arg("--out")
        .arg(&src)
        .assert()
        .success();
    // A negative amount on the 5th (New York), in the first line whose event time is that day.
    let text = std::fs::read_to_string(&src).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let at = lines
        .iter()
        .position(|l| {
            l.split(',')
                .nth(4)
                .is_some_and(|t| t.starts_with("2026-03-05T15"))
        })
        .unwrap();
    let mut fields: Vec<String> = lines[at].split(',').map(String::from).collect();
    fields[6] = "-7.25".into();
    lines[at] = fields.join(",");
    std::fs::write(&src, lines.join("\n") + "\n").unwrap();
    let dag = "110_09_02_debugging_batch_failures";
    weir(h)
        .args(["dags", "run", dag, "--logical-date", "2026-03-05", "--conf"])
        .arg(format!("source={}", src.display()))
        .assert()
        .failure();
    let run = "manual__2026-03-05T05:00:00+00:00";
    let o = weir(h)
        .args(["runs", "diagnose", run, "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["root"]["task_id"], "customer_spend", "{d}");
    let log = std::fs::read_to_string(d["root"]["log"].as_str().unwrap()).unwrap();
    assert!(log.contains("has a negative amount -7.25"), "{log}");
    assert_eq!(d["upstream_failed"], serde_json::json!(["publish"]));
    let o = weir(h)
        .args(["tasks", "errors", "--dag", dag, "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let classes = json_lines(&o.stdout);
    assert_eq!(classes.len(), 1, "{classes:?}");
    assert_eq!(classes[0]["tries"], 1);
}
