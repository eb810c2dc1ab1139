//! Quality gates on loads: an `error` check that fails publishes nothing (the partition an
//! earlier run published stays byte for byte, its manifest too) and fails the task, so its
//! downstream does not run; a `warn` check records and goes on; every rule kind passes on good
//! data and fails on data made to break it, with failing counts equal to independent ones;
//! failing rows go to the dead-letter queue once however often a check runs; an input gate
//! stops a load before it opens a single writer.

use std::path::{Path, PathBuf};

use serde_json::json;
use weir_core::TaskState;
use weir_data::partitioners::Granularity;
use weir_ops::{Check, CheckSeverity, Layout, LoadWindow, Partition, PartitionBy, Rule};
use weir_ops::{task, window_param_specs};
use weir_runtime::Task;
use weir_store::{CheckFilter, CheckResult, RejectFilter};

use crate::{Ran, World, ts};

/// (order_id, region, sku, event_time, amount).
type Row = (i64, &'static str, &'static str, &'static str, Option<i64>);

fn write_rows(path: &Path, rows: &[Row]) -> PathBuf {
    let mut text = String::from("order_id,region,sku,event_time,amount\n");
    for (id, region, sku, time, amount) in rows {
        let amount = amount.map(|a| a.to_string()).unwrap_or_default();
        text.push_str(&format!("{id},{region},{sku},{time},{amount}\n"));
    }
    std::fs::write(path, text).unwrap();
    path.to_owned()
}

/// Three good orders of 2026-03-01.
const GOOD: [Row; 3] = [
    (1, "EU", "SKU-001", "2026-03-01T01:00:00Z", Some(10)),
    (2, "US", "SKU-002", "2026-03-01T02:00:00Z", Some(20)),
    (3, "EU", "SKU-003", "2026-03-01T03:00:00Z", Some(30)),
];

/// The same day again, with a null amount and one far out of range.
const BAD: [Row; 4] = [
    (1, "EU", "SKU-001", "2026-03-01T01:00:00Z", Some(10)),
    (2, "US", "SKU-002", "2026-03-01T02:00:00Z", None),
    (3, "EU", "SKU-003", "2026-03-01T03:00:00Z", Some(30_000)),
    (4, "US", "SKU-004", "2026-03-01T04:00:00Z", Some(40)),
];

fn amount_checks() -> Vec<Check> {
    vec![
        Check::new(Rule::NotNull {
            column: "amount".into(),
        }),
        Check::new(Rule::Range {
            column: "amount".into(),
            min: Some(0.0),
            max: Some(10_000.0),
        }),
    ]
}

/// A DAG `ops`: `load` (daily partitions of the run's source, with `checks` as its output
/// gate), then `after`, which does nothing but must not run when `load` fails.
async fn world(load: LoadWindow) -> World {
    World::declaring(
        vec![(
            "ops",
            vec![
                task("load", load),
                Task::new("after")
                    .after(["load"])
                    .run(|_ctx| async { Ok(json!("ran")) }),
            ],
        )],
        window_param_specs(),
    )
    .await
}

/// Every file of a folder, by name, with its bytes.
fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

async fn checks_of(w: &World, ran: &Ran) -> Vec<CheckResult> {
    w.ex.store()
        .checks(&CheckFilter {
            dag_id: Some("ops".into()),
            run_id: Some(ran.outcome.run.run_id.to_string()),
            ..CheckFilter::default()
        })
        .await
        .unwrap()
}

async fn state_of(w: &World, ran: &Ran, task: &str) -> TaskState {
    w.ex.store()
        .task_instances(&ran.outcome.run.dag_id, &ran.outcome.run.run_id)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.key.task_id.as_str() == task)
        .unwrap()
        .state
}

fn amount_failures(rows: &[Row]) -> (u64, u64) {
    let nulls = rows.iter().filter(|r| r.4.is_none()).count() as u64;
    let out_of_range = rows
        .iter()
        .filter(|r| r.4.is_some_and(|a| !(0..=10_000).contains(&a)))
        .count() as u64;
    (nulls, out_of_range)
}

/// The done-when of the issue: a failed `error` gate leaves the previously published partition
/// byte for byte as it was, with its manifest; the task fails naming the checks, its
/// downstream is upstream_failed, and the failed results are kept with a sample.
#[tokio::test]
async fn an_error_gate_that_fails_leaves_the_published_partition_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_rows(&dir.path().join("good.csv"), &GOOD);
    let bad = write_rows(&dir.path().join("bad.csv"), &BAD);
    let out = dir.path().join("daily");
    let mut load = LoadWindow::by_date(Granularity::Day);
    load.checks = amount_checks();
    let w = world(load).await;
    let day = ts("2026-03-01T00:00:00Z");

    let ran = w
        .run(day, json!({"source": good, "output": out}), "load")
        .await;
    assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
    assert_eq!(state_of(&w, &ran, "after").await, TaskState::Success);
    let dataset = weir_data::Dataset::open(&out).unwrap();
    let before = dataset.partitions().unwrap();
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].partition, "dt=2026-03-01");
    assert_eq!(before[0].rows, 3);
    let checksum = dataset.checksum(&before[0].key).unwrap();
    let bytes = files_of(&out.join("dt=2026-03-01"));
    let name = weir_ops::load::dataset_name(&out);
    let manifests = w.ex.store().manifests(&name).await.unwrap();
    assert_eq!(manifests.len(), 1);
    assert!(checks_of(&w, &ran).await.iter().all(|c| c.passed));

    let ran = w
        .run(day, json!({"source": bad, "output": out}), "load")
        .await;
    ran.assert_failed_on_try(1, "check `not_null_amount` (not_null) failed on 1 row");
    let error = ran.ti.error.clone().unwrap();
    assert!(
        error.contains("check `range_amount` (range) failed on 1 row"),
        "{error}"
    );
    assert!(error.contains("nothing was published"), "{error}");
    assert_eq!(state_of(&w, &ran, "after").await, TaskState::UpstreamFailed);

    let dataset = weir_data::Dataset::open(&out).unwrap();
    assert_eq!(dataset.partitions().unwrap(), before);
    assert_eq!(dataset.checksum(&before[0].key).unwrap(), checksum);
    assert_eq!(
        files_of(&out.join("dt=2026-03-01")),
        bytes,
        "every file of the partition is byte for byte as it was"
    );
    assert_eq!(w.ex.store().manifests(&name).await.unwrap(), manifests);
    assert!(
        files_of(&out.join("_staging")).is_empty(),
        "nothing staged is left behind"
    );

    // Both runs' results are kept (a re-run adds its own); the failed ones say how many rows
    // failed, as counted here, and show them.
    let results = checks_of(&w, &ran).await;
    assert_eq!(results.len(), 4, "{results:?}");
    let failed: Vec<&CheckResult> = results.iter().filter(|c| !c.passed).collect();
    assert_eq!(failed.len(), 2, "{results:?}");
    let (nulls, out_of_range) = amount_failures(&BAD);
    let not_null = failed.iter().find(|c| c.name == "not_null_amount").unwrap();
    assert_eq!(not_null.failing, nulls);
    assert_eq!(not_null.severity, CheckSeverity::Error);
    assert_eq!(not_null.gate, weir_ops::CheckGate::Output);
    assert_eq!(not_null.sample.len(), 1);
    assert_eq!(not_null.sample[0]["order_id"], 2);
    assert!(
        not_null.sample[0]["amount"].is_null(),
        "{:?}",
        not_null.sample
    );
    assert_eq!(not_null.rule["rule"], "not_null");
    let range = failed.iter().find(|c| c.name == "range_amount").unwrap();
    assert_eq!(range.failing, out_of_range);
    assert_eq!(range.sample[0]["amount"], 30_000);
    assert_eq!(range.try_number, 1);
}

/// A `warn` gate: the run succeeds with the new partition, and the failure is recorded.
#[tokio::test]
async fn a_warn_gate_records_the_failure_and_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_rows(&dir.path().join("good.csv"), &GOOD);
    let bad = write_rows(&dir.path().join("bad.csv"), &BAD);
    let out = dir.path().join("daily");
    let mut load = LoadWindow::by_date(Granularity::Day);
    load.checks = amount_checks().into_iter().map(Check::warn).collect();
    let w = world(load).await;
    let day = ts("2026-03-01T00:00:00Z");
    let ran = w
        .run(day, json!({"source": good, "output": out}), "load")
        .await;
    assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
    let key = weir_data::PartitionKey::date("2026-03-01".parse().unwrap());
    let old = weir_data::Dataset::open(&out)
        .unwrap()
        .checksum(&key)
        .unwrap();

    let ran = w
        .run(day, json!({"source": bad, "output": out}), "load")
        .await;
    assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
    assert_eq!(state_of(&w, &ran, "after").await, TaskState::Success);
    let dataset = weir_data::Dataset::open(&out).unwrap();
    let parts = dataset.partitions().unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].rows, BAD.len() as u64, "the new partition");
    assert_ne!(dataset.checksum(&key).unwrap(), old);
    let results = checks_of(&w, &ran).await;
    let failed: Vec<&CheckResult> = results.iter().filter(|c| !c.passed).collect();
    assert_eq!(failed.len(), 2, "{results:?}");
    assert!(failed.iter().all(|c| c.severity == CheckSeverity::Warn));
    let (nulls, out_of_range) = amount_failures(&BAD);
    assert_eq!(
        failed
            .iter()
            .map(|c| (c.name.as_str(), c.failing))
            .collect::<Vec<_>>(),
        vec![("not_null_amount", nulls), ("range_amount", out_of_range)]
    );
}

/// Two days of one source: 2026-03-01 passes every rule; 2026-03-02 breaks each of them.
const DAYS: [Row; 17] = [
    (1, "EU", "SKU-001", "2026-03-01T01:00:00Z", Some(10)),
    (2, "US", "SKU-002", "2026-03-01T05:00:00Z", Some(20)),
    (3, "APAC", "SKU-003", "2026-03-01T09:00:00Z", Some(30)),
    (4, "EU", "SKU-004", "2026-03-01T15:00:00Z", Some(40)),
    (5, "US", "SKU-005", "2026-03-01T23:00:00Z", Some(50)),
    (6, "EU", "SKU-006", "2026-03-02T00:30:00Z", Some(10)),
    (7, "US", "SKU-007", "2026-03-02T01:00:00Z", None),
    (7, "EU", "SKU-008", "2026-03-02T02:00:00Z", Some(30)),
    (9, "MARS", "SKU-009", "2026-03-02T03:00:00Z", Some(40)),
    (10, "EU", "sku-12", "2026-03-02T04:00:00Z", Some(50)),
    (11, "US", "SKU-011", "2026-03-02T05:00:00Z", Some(5000)),
    (12, "EU", "SKU-012", "2026-03-02T06:00:00Z", Some(-1)),
    (13, "US", "SKU-013", "2026-03-02T07:00:00Z", Some(20)),
    (14, "APAC", "SKU-014", "2026-03-02T08:00:00Z", Some(20)),
    (15, "US", "SKU-015", "2026-03-02T09:00:00Z", Some(20)),
    (16, "APAC", "SKU-016", "2026-03-02T10:00:00Z", Some(20)),
    (17, "US", "SKU-017", "2026-03-02T12:00:00Z", Some(20)),
];

fn every_rule() -> Vec<Check> {
    let rules = vec![
        Rule::NotNull {
            column: "amount".into(),
        },
        Rule::Unique {
            columns: vec!["order_id".into()],
        },
        Rule::Range {
            column: "amount".into(),
            min: Some(0.0),
            max: Some(1000.0),
        },
        Rule::AcceptedValues {
            column: "region".into(),
            values: vec!["EU".into(), "US".into(), "APAC".into()],
        },
        Rule::Regex {
            column: "sku".into(),
            pattern: "^SKU-[0-9]{3}$".into(),
        },
        Rule::RowCount {
            min: Some(3),
            max: Some(10),
        },
        Rule::RowCountChange {
            max_change_pct: 50.0,
            runs: 3,
        },
        Rule::Freshness {
            column: "event_time".into(),
            max_age: "6h".into(),
        },
        Rule::Sql {
            query: "SELECT order_id FROM batch WHERE region = 'EU' AND amount < 5".into(),
        },
    ];
    // As warnings, so that every rule runs on both days.
    rules.into_iter().map(|r| Check::new(r).warn()).collect()
}

/// Each rule's failing count on `rows`, counted here without SQL.
fn independent_counts(rows: &[Row]) -> Vec<(&'static str, u64)> {
    let count = |f: &dyn Fn(&Row) -> bool| rows.iter().filter(|&r| f(r)).count() as u64;
    let dup = |r: &Row| rows.iter().filter(|o| o.0 == r.0).count() > 1;
    let newest_ok = rows
        .iter()
        .map(|r| ts(r.3))
        .max()
        .is_some_and(|t| t >= ts(&format!("{}T18:00:00Z", &rows[0].3[..10])));
    let n = rows.len() as u64;
    vec![
        ("not_null_amount", count(&|r: &Row| r.4.is_none())),
        ("unique_order_id", count(&dup)),
        (
            "range_amount",
            count(&|r: &Row| r.4.is_some_and(|a| !(0..=1000).contains(&a))),
        ),
        (
            "accepted_values_region",
            count(&|r: &Row| !["EU", "US", "APAC"].contains(&r.1)),
        ),
        (
            "regex_sku",
            count(&|r: &Row| {
                !(r.2.len() == 7
                    && r.2.starts_with("SKU-")
                    && r.2[4..].chars().all(|c| c.is_ascii_digit()))
            }),
        ),
        ("row_count", u64::from(!(3..=10).contains(&n))),
        // Against the first day's 5 rows (the second day is only compared with the first).
        (
            "row_count_change",
            u64::from(rows[0].3.starts_with("2026-03-02") && (n as f64 - 5.0).abs() / 5.0 > 0.5),
        ),
        ("freshness_event_time", u64::from(!newest_ok)),
        (
            "sql",
            count(&|r: &Row| r.1 == "EU" && r.4.is_some_and(|a| a < 5)),
        ),
    ]
}

#[tokio::test]
async fn every_rule_passes_on_good_data_and_fails_on_data_made_to_break_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = write_rows(&dir.path().join("orders.csv"), &DAYS);
    let out = dir.path().join("daily");
    let mut load = LoadWindow::by_date(Granularity::Day);
    load.checks = every_rule();
    let w = world(load).await;
    let conf = json!({"source": src, "output": out});

    let ran = w
        .run(ts("2026-03-01T00:00:00Z"), conf.clone(), "load")
        .await;
    assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
    let results = checks_of(&w, &ran).await;
    assert_eq!(results.len(), 9, "{results:?}");
    for r in &results {
        assert!(r.passed, "{} failed on good data: {r:?}", r.name);
        assert_eq!(r.failing, 0, "{r:?}");
    }
    let change = results
        .iter()
        .find(|r| r.name == "row_count_change")
        .unwrap();
    assert!(
        change
            .observed
            .as_deref()
            .unwrap()
            .contains("no earlier successful run"),
        "{change:?}"
    );
    let day1: Vec<Row> = DAYS[..5].to_vec();
    assert!(independent_counts(&day1).iter().all(|(_, n)| *n == 0));

    let ran = w.run(ts("2026-03-02T00:00:00Z"), conf, "load").await;
    assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
    let results = checks_of(&w, &ran).await;
    let got: Vec<(&str, u64)> = results
        .iter()
        .map(|r| (r.name.as_str(), r.failing))
        .collect();
    let day2: Vec<Row> = DAYS[5..].to_vec();
    let want = independent_counts(&day2);
    assert!(want.iter().all(|(_, n)| *n > 0), "{want:?}");
    assert_eq!(got, want);
    assert!(results.iter().all(|r| !r.passed), "{results:?}");
    let by = |name: &str| results.iter().find(|r| r.name == name).unwrap();
    assert_eq!(by("row_count").observed.as_deref(), Some("12 rows"));
    assert!(
        by("row_count_change")
            .observed
            .as_deref()
            .unwrap()
            .contains("+140.0%"),
        "{:?}",
        by("row_count_change")
    );
    assert!(
        by("freshness_event_time")
            .observed
            .as_deref()
            .unwrap()
            .contains("2026-03-02T12:00:00"),
        "{:?}",
        by("freshness_event_time")
    );
    let unique = by("unique_order_id");
    assert_eq!(unique.sample.len(), 2);
    assert!(unique.sample.iter().all(|r| r["order_id"] == 7));
    assert_eq!(by("accepted_values_region").sample[0]["region"], "MARS");
    assert_eq!(by("regex_sku").sample[0]["sku"], "sku-12");
    assert_eq!(by("sql").sample, vec![json!({"order_id": 12})]);
    let range: Vec<i64> = by("range_amount")
        .sample
        .iter()
        .map(|r| r["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(range, vec![5000, -1], "in order_id order");
}

/// `dead_letter = true`: the failing rows go to the dead-letter queue with the check's name
/// and reason — once, however many times the check runs.
#[tokio::test]
async fn failing_rows_go_to_the_dead_letter_queue_once() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write_rows(&dir.path().join("bad.csv"), &BAD);
    let out = dir.path().join("daily");
    let mut load = LoadWindow::by_date(Granularity::Day);
    load.checks = vec![
        Check::new(Rule::NotNull {
            column: "amount".into(),
        })
        .warn()
        .to_dead_letters(),
    ];
    let w = world(load).await;
    let day = ts("2026-03-01T00:00:00Z");
    for _ in 0..2 {
        let ran = w
            .run(day, json!({"source": bad, "output": out}), "load")
            .await;
        assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
    }
    let letters: Vec<_> =
        w.ex.store()
            .dead_letters(&RejectFilter::default())
            .await
            .unwrap()
            .into_iter()
            .filter(|d| d.error_class == "check")
            .collect();
    let (nulls, _) = amount_failures(&BAD);
    assert_eq!(letters.len() as u64, nulls, "{letters:?}");
    let d = &letters[0];
    assert!(d.source.starts_with("check:"), "{d:?}");
    assert!(d.source.ends_with(":not_null_amount"), "{d:?}");
    assert!(
        d.reason
            .starts_with("check not_null_amount (not_null) failed: amount is null"),
        "{d:?}"
    );
    let raw: serde_json::Value = serde_json::from_str(&d.raw).unwrap();
    assert_eq!(raw["order_id"], 2);
    assert!(raw["amount"].is_null());
}

/// An input gate that fails with `error` stops the load before it reads the source into
/// partitions: it does not even open the dataset (a new one is never created), and a
/// published partition stays as it was.
#[tokio::test]
async fn an_input_gate_that_fails_publishes_nothing_and_opens_no_writer() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_rows(&dir.path().join("good.csv"), &GOOD);
    let bad = write_rows(&dir.path().join("bad.csv"), &BAD);
    let out = dir.path().join("daily");
    let mut load = LoadWindow::by_date(Granularity::Day);
    load.input_checks = vec![Check::new(Rule::NotNull {
        column: "amount".into(),
    })];
    let w = world(load).await;
    let day = ts("2026-03-01T00:00:00Z");
    let ran = w
        .run(day, json!({"source": good, "output": out}), "load")
        .await;
    assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
    let bytes = files_of(&out.join("dt=2026-03-01"));

    let ran = w
        .run(day, json!({"source": bad, "output": out}), "load")
        .await;
    ran.assert_failed_on_try(1, "the input gate of task `load` failed");
    let error = ran.ti.error.clone().unwrap();
    assert!(error.contains("nothing was read or published"), "{error}");
    assert_eq!(files_of(&out.join("dt=2026-03-01")), bytes);
    assert_eq!(state_of(&w, &ran, "after").await, TaskState::UpstreamFailed);
    let results = checks_of(&w, &ran).await;
    let failed: Vec<&CheckResult> = results.iter().filter(|c| !c.passed).collect();
    assert_eq!(failed.len(), 1, "{results:?}");
    assert_eq!(failed[0].gate, weir_ops::CheckGate::Input);
    assert_eq!(failed[0].failing, amount_failures(&BAD).0);

    // A dataset no load has written: the failed gate leaves no folder at all.
    let fresh = dir.path().join("never");
    let ran = w
        .run(day, json!({"source": bad, "output": fresh}), "load")
        .await;
    ran.assert_failed_on_try(1, "the input gate of task `load` failed");
    assert!(!fresh.exists(), "no writer was opened");
}

/// The staged files leave the partition columns out: a rule naming one is refused with a
/// message that says where to check it; the `partition` operator gates its layouts the same
/// way; a size layout, which commits as it goes, cannot have an output gate.
#[tokio::test]
async fn partition_columns_are_named_clearly_and_partition_layouts_are_gated_too() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_rows(&dir.path().join("good.csv"), &GOOD);
    let bad = write_rows(&dir.path().join("bad.csv"), &BAD);
    let mut geo = LoadWindow::new(PartitionBy::Geo {
        key: "region".into(),
    });
    geo.checks = vec![Check::new(Rule::AcceptedValues {
        column: "region".into(),
        values: vec!["EU".into()],
    })];
    let mut hashed = Partition::new(Layout::Hash {
        key: "order_id".into(),
        buckets: 2,
    });
    hashed.checks = amount_checks();
    let mut sized = Partition::new(Layout::Size { target_bytes: 4096 });
    sized.checks = amount_checks();
    let w = World::declaring(
        vec![
            ("geo", vec![task("load", geo)]),
            ("hashed", vec![task("load", hashed)]),
            ("sized", vec![task("load", sized)]),
        ],
        window_param_specs(),
    )
    .await;
    let day = ts("2026-03-01T00:00:00Z");
    let geo_out = dir.path().join("geo");
    w.run_dag(
        "geo",
        day,
        json!({"source": good, "output": geo_out}),
        "load",
    )
    .await
    .assert_failed_on_try(1, "names `region`, a partition column");
    assert!(
        weir_data::Dataset::open(&geo_out)
            .unwrap()
            .partitions()
            .unwrap()
            .is_empty()
    );

    let out = dir.path().join("hashed");
    let ran = w
        .run_dag(
            "hashed",
            day,
            json!({"source": good, "output": out}),
            "load",
        )
        .await;
    assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
    let before = weir_data::Dataset::open(&out)
        .unwrap()
        .partitions()
        .unwrap();
    assert!(!before.is_empty());
    w.run_dag("hashed", day, json!({"source": bad, "output": out}), "load")
        .await
        .assert_failed_on_try(1, "check `not_null_amount` (not_null) failed on 1 row");
    assert_eq!(
        weir_data::Dataset::open(&out)
            .unwrap()
            .partitions()
            .unwrap(),
        before,
        "nothing published, nothing retired"
    );

    w.run_dag(
        "sized",
        day,
        json!({"source": good, "output": dir.path().join("sized")}),
        "load",
    )
    .await
    .assert_failed_on_try(1, "a size layout commits each chunk as the next starts");
}
