//! Debugging failed runs from the command line (110.9.2).

use crate::{edit_store, json_lines, weir};

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

    // Fixed and cleared: the new attempt's try 1 has its own log; the failed one's stays.
    fields[6] = "7.25".into();
    lines[at] = fields.join(",");
    std::fs::write(&src, lines.join("\n") + "\n").unwrap();
    weir(h)
        .args(["tasks", "clear", run, "load", "--downstream"])
        .assert()
        .success();
    let o = weir(h)
        .args(["tasks", "logs", run, "customer_spend"])
        .assert()
        .success()
        .get_output()
        .clone();
    let now = String::from_utf8_lossy(&o.stdout);
    assert!(
        now.contains("try 1 of 1 started") && !now.contains("negative amount"),
        "{now}"
    );
    let before = std::fs::read_to_string(d["root"]["log"].as_str().unwrap()).unwrap();
    assert!(
        before.contains("has a negative amount -7.25"),
        "the failed attempt's log is kept"
    );
}

/// Runs `weir` in `home` and returns (success, stdout JSON if any, stderr).
fn run_json(
    home: &std::path::Path,
    args: &[String],
    env: Option<(&str, &str)>,
) -> (bool, serde_json::Value, String) {
    let mut cmd = weir(home);
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let o = cmd.args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let json = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (o.status.success(), json, stderr)
}

/// (rows, distinct ids, sum of ids) of one day of a dataset.
fn day_totals(home: &std::path::Path, dir: &std::path::Path) -> serde_json::Value {
    let o = weir(home)
        .args(["data", "query", "--json"])
        .arg("SELECT count(*) AS n, count(DISTINCT order_id) AS ids, sum(order_id) AS s FROM t WHERE dt = '2026-03-05'")
        .arg("--table")
        .arg(format!("t={}", dir.display()))
        .assert()
        .success()
        .get_output()
        .clone();
    json_lines(&o.stdout)[0].clone()
}

/// 110.9.4: each checkpoint fault injected, detected and repaired; the day always ends with
/// exactly the rows a load without checkpoints writes.
#[test]
fn checkpoint_faults_are_detected_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let src = root.join("orders.csv");
    weir(root)
        .args([
            "data",
            "generate",
            "--rows",
            "60000",
            "--start",
            "2026-03-04",
            "--days",
            "3",
        ])
        .arg("--out")
        .arg(&src)
        .assert()
        .success();
    let dag = "110_09_04_debugging_checkpoint_issues";
    let run = "manual__2026-03-05T05:00:00+00:00";
    let args = |source: &std::path::Path, out: &std::path::Path, dag: &str| -> Vec<String> {
        [
            "--lease",
            "1s",
            "dags",
            "run",
            dag,
            "--logical-date",
            "2026-03-05",
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            "--conf".into(),
            format!("source={}", source.display()),
            "--conf".into(),
            format!("output={}", out.display()),
        ])
        .collect()
    };
    let plain = |source: &std::path::Path, name: &str| {
        let home = root.join(format!("plain-{name}"));
        let out = home.join("out");
        let (ok, _, e) = run_json(
            &home,
            &args(source, &out, "110_01_01_daily_batch_processing"),
            None,
        );
        assert!(ok, "{e}");
        day_totals(&home, &out)
    };
    let expected = plain(&src, "a");
    let seqs = |home: &std::path::Path| -> Vec<(u64, String)> {
        let o = weir(home)
            .args(["checkpoints", "list", "--json"])
            .assert()
            .success()
            .get_output()
            .clone();
        json_lines(&o.stdout)
            .iter()
            .map(|c| {
                (
                    c["seq"].as_u64().unwrap(),
                    c["health"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };

    // State inconsistency: killed after chunk 2's output, before its checkpoint.
    let home = root.join("inconsistent");
    let out = home.join("out");
    let (ok, _, _) = run_json(
        &home,
        &args(&src, &out, dag),
        Some(("WEIR_FAILPOINT", "after_output:2")),
    );
    assert!(!ok);
    assert_eq!(seqs(&home), [(1, "ok".to_owned())]);
    let ahead = std::fs::read_dir(out.join("dt=2026-03-05"))
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("_mark-ckpt-") && n.ends_with("-2.json")
        });
    assert!(
        ahead,
        "the partition holds chunk 2, which no checkpoint records"
    );
    let (ok, report, e) = run_json(&home, &args(&src, &out, dag), None);
    assert!(ok, "{e}");
    assert_eq!(
        report["outputs"]["audit"]["checkpoints"]["resumed_from"], 1,
        "{report}"
    );
    assert_eq!(report["outputs"]["audit"]["consistent"], true, "{report}");
    assert_eq!(
        day_totals(&home, &out),
        expected,
        "inconsistency repaired: every row once"
    );

    // Corruption: checkpoint 2's bytes change after it was saved.
    let home = root.join("corrupt");
    let out = home.join("out");
    let (ok, _, _) = run_json(
        &home,
        &args(&src, &out, dag),
        Some(("WEIR_FAILPOINT", "after_checkpoint:2")),
    );
    assert!(!ok);
    edit_store(
        &home,
        "UPDATE checkpoints SET state = replace(state, '\"rows\":', '\"rows\":7') WHERE seq = 2",
        false,
    );
    assert_eq!(
        seqs(&home),
        [(2, "damaged (checksum)".to_owned()), (1, "ok".to_owned())]
    );
    let (ok, report, e) = run_json(&home, &args(&src, &out, dag), None);
    assert!(ok, "{e}");
    assert!(
        e.contains("checkpoint 2 of task `load`") && e.contains("checksum does not match"),
        "{e}"
    );
    assert_eq!(
        report["outputs"]["audit"]["checkpoints"]["resumed_from"], 1,
        "{report}"
    );
    assert_eq!(
        day_totals(&home, &out),
        expected,
        "fell back to checkpoint 1: every row once"
    );

    // A resume failure: the source changed after the checkpoints were saved.
    let home = root.join("changed");
    let out = home.join("out");
    let changed = home.join("orders.csv");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::copy(&src, &changed).unwrap();
    std::fs::copy(root.join("orders.schema"), home.join("orders.schema")).unwrap();
    let (ok, _, _) = run_json(
        &home,
        &args(&changed, &out, dag),
        Some(("WEIR_FAILPOINT", "after_checkpoint:2")),
    );
    assert!(!ok);
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&changed)
            .unwrap();
        writeln!(
            f,
            "7777777,1,NAM,US,2026-03-05T18:00:00Z,2026-03-05T18:01:00Z,5.00,USD,placed,late"
        )
        .unwrap();
    }
    let (ok, report, e) = run_json(&home, &args(&changed, &out, dag), None);
    assert!(ok, "{e}");
    assert!(e.contains("so the task starts over"), "{e}");
    assert_eq!(
        report["outputs"]["audit"]["checkpoints"]["resumed_from"],
        serde_json::Value::Null
    );
    assert_eq!(
        day_totals(&home, &out),
        plain(&changed, "b"),
        "started over on the new file"
    );

    // Recovery by hand: the checkpoints cleared, the next try starts over, replacing the day.
    let home = root.join("cleared");
    let out = home.join("out");
    let (ok, _, _) = run_json(
        &home,
        &args(&src, &out, dag),
        Some(("WEIR_FAILPOINT", "after_checkpoint:2")),
    );
    assert!(!ok);
    weir(&home)
        .args(["checkpoints", "clear", "--dag", dag, "--run", run])
        .assert()
        .success();
    assert!(seqs(&home).is_empty());
    let (ok, report, e) = run_json(&home, &args(&src, &out, dag), None);
    assert!(ok, "{e}");
    assert_eq!(
        report["outputs"]["audit"]["checkpoints"]["resumed_from"],
        serde_json::Value::Null
    );
    assert_eq!(
        day_totals(&home, &out),
        expected,
        "started over: the day replaced, not added to"
    );
}
