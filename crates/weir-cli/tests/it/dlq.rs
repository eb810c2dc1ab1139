//! The dead-letter queue as a user drives it: malformed lines scattered through a source land
//! in the DLQ exactly once each, with their line and reason; corrected and replayed, the
//! partitions hold exactly the rows an independent count says; a second replay changes
//! nothing; a re-run of an interval from the still broken source neither drops nor doubles
//! the replayed rows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::{json_lines, weir};

const DAG: &str = "110_01_01_daily_batch_processing";

/// One source line: the good row, and (for some) the malformed text standing in its place.
struct Line {
    good: String,
    bad: Option<(String, &'static str)>,
    day: String,
}

/// 2,400 orders over 2026-03-02..05 (10:00–20:00 UTC, the same date in New York), every 53rd
/// line malformed in one of four ways.
fn source_lines() -> Vec<Line> {
    let mut lines = Vec::new();
    for i in 0..2400u64 {
        let day = 2 + i % 4;
        let (h, m) = (10 + (i * 7) % 10, (i * 13) % 60);
        let time = format!("2026-03-{day:02}T{h:02}:{m:02}:00Z");
        let order_id = 500_000 + i;
        let amount = format!("{}.{:02}", 5 + i % 90, i % 100);
        let good = format!("{order_id},{},EU,{time},{amount}", 100 + i % 37);
        let bad = (i % 53 == 7).then(|| match (i / 53) % 4 {
            0 => (
                format!("{order_id},{},EU,{time},abc", 100 + i % 37),
                "amount",
            ),
            1 => (
                format!("{order_id},{},EU,{time},{amount},extra", 100 + i % 37),
                "fields",
            ),
            2 => (
                format!("{order_id},{},EU,not-a-date,{amount}", 100 + i % 37),
                "event_time",
            ),
            _ => (format!(",{},EU,{time},{amount}", 100 + i % 37), "order_id"),
        });
        lines.push(Line {
            good,
            bad,
            day: format!("2026-03-{day:02}"),
        });
    }
    lines
}

fn write_source(dir: &Path, lines: &[Line]) -> std::path::PathBuf {
    let path = dir.join("orders.csv");
    let mut text = String::from("order_id,customer_id,region,event_time,amount\n");
    for l in lines {
        text.push_str(l.bad.as_ref().map(|(b, _)| b.as_str()).unwrap_or(&l.good));
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    std::fs::write(
        dir.join("orders.schema"),
        "order_id: int not null\ncustomer_id: int\nregion: string\nevent_time: timestamp not null\namount: decimal(10,2) not null\n",
    )
    .unwrap();
    path
}

/// Rows and distinct order ids per `dt` of the dataset, as DataFusion reads it.
fn per_day(h: &Path, out: &Path) -> BTreeMap<String, (u64, u64)> {
    let o = weir(h)
        .args(["data", "query", "--json"])
        .arg("SELECT CAST(dt AS VARCHAR) AS dt, count(*) AS n, count(DISTINCT order_id) AS ids FROM t GROUP BY dt ORDER BY dt")
        .arg("--table")
        .arg(format!("t={}", out.display()))
        .assert()
        .success()
        .get_output()
        .clone();
    json_lines(&o.stdout)
        .iter()
        .map(|r| {
            (
                r["dt"].as_str().unwrap().to_owned(),
                (r["n"].as_u64().unwrap(), r["ids"].as_u64().unwrap()),
            )
        })
        .collect()
}

fn dead_letters(h: &Path) -> Vec<serde_json::Value> {
    let o = weir(h)
        .args(["dlq", "list", "--dag", DAG, "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    json_lines(&o.stdout)
}

fn replay(h: &Path, extra: &[&str]) -> (serde_json::Value, bool) {
    let o = weir(h)
        .args(["dlq", "replay", "--dag", DAG, "--json"])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("replay printed no report ({e}): {stderr}"));
    (report, o.status.success())
}

#[test]
fn malformed_lines_are_kept_once_corrected_replayed_once_and_survive_a_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path();
    let lines = source_lines();
    let source = write_source(h, &lines);
    let out = h.join("out");
    let conf = |name: &str, value: &Path| format!("{name}={}", value.display());
    weir(h)
        .args([
            "dags",
            "backfill",
            DAG,
            "--from",
            "2026-03-02",
            "--to",
            "2026-03-05",
        ])
        .arg("--conf")
        .arg(conf("source", &source))
        .arg("--conf")
        .arg(conf("output", &out))
        .assert()
        .success();

    // Four runs each read the whole source: every malformed line is in the DLQ once, at its
    // line (the header is line 1), with a reason that names what is wrong.
    let bad: BTreeMap<u64, &Line> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.bad.is_some())
        .map(|(i, l)| (i as u64 + 2, l))
        .collect();
    assert!(bad.len() >= 40, "{} malformed lines", bad.len());
    let letters = dead_letters(h);
    let kept: BTreeSet<u64> = letters
        .iter()
        .map(|d| d["line"].as_u64().unwrap())
        .collect();
    assert_eq!(kept, bad.keys().copied().collect::<BTreeSet<_>>());
    assert_eq!(letters.len(), bad.len(), "no line is kept twice");
    for d in &letters {
        let line = &bad[&d["line"].as_u64().unwrap()];
        let (raw, what) = line.bad.as_ref().unwrap();
        assert_eq!(d["raw"].as_str().unwrap(), raw);
        assert_eq!(d["status"], "pending");
        assert_eq!(d["error_class"], "parse");
        let reason = d["reason"].as_str().unwrap();
        assert!(reason.contains(what), "line {}: {reason}", d["line"]);
        assert!(d["source"].as_str().unwrap().ends_with("orders.csv"));
    }

    // Before any replay, each day holds its good rows only.
    let good_per_day = |all: bool| {
        let mut m: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for l in &lines {
            if all || l.bad.is_none() {
                let e = m.entry(l.day.clone()).or_default();
                e.0 += 1;
                e.1 += 1;
            }
        }
        m
    };
    assert_eq!(per_day(h, &out), good_per_day(false));

    // Correct every payload but one, which gets a correction that is still wrong.
    let mut corrections = String::new();
    let mut stubborn = None;
    for d in &letters {
        let line = bad[&d["line"].as_u64().unwrap()];
        let payload = if stubborn.is_none() {
            stubborn = Some((d["id"].as_i64().unwrap(), line.good.clone()));
            line.good.replace("EU,", "EU,still-not-a-date-").to_owned()
        } else {
            line.good.clone()
        };
        corrections.push_str(&serde_json::json!({"id": d["id"], "payload": payload}).to_string());
        corrections.push('\n');
    }
    let (stubborn_id, stubborn_good) = stubborn.unwrap();
    let file = h.join("corrections.jsonl");
    std::fs::write(&file, corrections).unwrap();
    weir(h)
        .args(["dlq", "edit", "--file"])
        .arg(&file)
        .assert()
        .success();

    // A dry run says where each would go and changes nothing.
    let (dry, _) = replay(h, &["--dry-run"]);
    assert_eq!(dry["replayed"].as_array().unwrap().len(), bad.len() - 1);
    // Scoped to one task: every letter was set aside by load_day, none by verify_day.
    let (scoped, _) = replay(h, &["--dry-run", "--task", "load_day"]);
    assert_eq!(scoped["replayed"], dry["replayed"]);
    let (none, _) = replay(h, &["--dry-run", "--task", "verify_day"]);
    assert_eq!(none["replayed"].as_array().unwrap().len(), 0);
    assert_eq!(per_day(h, &out), good_per_day(false));

    let (report, ok) = replay(h, &["--max-replays", "2"]);
    assert!(!ok, "a replay with a failure exits non-zero");
    assert_eq!(report["replayed"].as_array().unwrap().len(), bad.len() - 1);
    let failed = report["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0][0].as_i64().unwrap(), stubborn_id);
    assert!(
        failed[0][1].as_str().unwrap().contains("event_time"),
        "{failed:?}"
    );
    assert_eq!(failed[0][2], false, "one failure is not yet quarantine");
    let stubborn_day = lines
        .iter()
        .find(|l| l.good == stubborn_good)
        .unwrap()
        .day
        .clone();
    let mut expected = good_per_day(true);
    expected.get_mut(&stubborn_day).unwrap().0 -= 1;
    expected.get_mut(&stubborn_day).unwrap().1 -= 1;
    assert_eq!(per_day(h, &out), expected, "after the first replay");

    // Replaying again adds nothing; the stubborn one fails a second time and is quarantined.
    let (again, _) = replay(h, &["--max-replays", "2"]);
    assert_eq!(again["replayed"].as_array().unwrap().len(), 0);
    assert_eq!(again["failed"][0][2], true, "{again}");
    let (idle, ok) = replay(h, &["--max-replays", "2"]);
    assert!(ok);
    assert_eq!(
        (
            idle["replayed"].as_array().unwrap().len(),
            idle["failed"].as_array().unwrap().len()
        ),
        (0, 0),
        "a quarantined dead letter is left alone"
    );
    assert_eq!(
        per_day(h, &out),
        expected,
        "a second replay changes nothing"
    );

    // Corrected properly, it is pending again and lands.
    weir(h)
        .args([
            "dlq",
            "edit",
            &stubborn_id.to_string(),
            "--payload",
            &stubborn_good,
        ])
        .assert()
        .success();
    let (last, ok) = replay(h, &[]);
    assert!(ok, "{last}");
    assert_eq!(last["replayed"].as_array().unwrap().len(), 1);
    let all = good_per_day(true);
    assert_eq!(
        per_day(h, &out),
        all,
        "every row of the corrected source, once"
    );
    let statuses: BTreeSet<String> = dead_letters(h)
        .iter()
        .map(|d| d["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, BTreeSet::from(["replayed".to_owned()]));

    // A replay whose outcome was never recorded (killed after its commits): the letters are
    // still `replaying` or even `pending`, and the next replay finds them by their markers
    // instead of adding their rows again.
    crate::edit_store(
        h,
        "UPDATE dead_letters SET status = CASE WHEN id % 2 = 0 THEN 'pending' ELSE 'replaying' END",
        false,
    );
    let (found, ok) = replay(h, &[]);
    assert!(ok, "{found}");
    assert_eq!(
        found["replayed"].as_array().unwrap().len(),
        bad.len(),
        "{found}"
    );
    assert_eq!(
        per_day(h, &out),
        all,
        "found by their markers, not written twice"
    );

    // Re-running two days from the source, still broken, keeps the replayed rows, once.
    weir(h)
        .args([
            "dags",
            "backfill",
            DAG,
            "--from",
            "2026-03-03",
            "--to",
            "2026-03-04",
        ])
        .args(["--reprocess", "completed"])
        .arg("--conf")
        .arg(conf("source", &source))
        .arg("--conf")
        .arg(conf("output", &out))
        .assert()
        .success();
    assert_eq!(per_day(h, &out), all, "after re-running 03-03 and 03-04");
    assert_eq!(
        dead_letters(h).len(),
        bad.len(),
        "the re-read added no dead letter"
    );
}
