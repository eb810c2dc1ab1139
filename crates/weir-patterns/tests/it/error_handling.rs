//! The error-handling patterns (110.4), driven as a user would.

use std::collections::BTreeMap;

use jiff::civil::date;
use weir_core::{RunState, TaskState};
use weir_patterns::p110::partial_batch_failure_handling as partial;

use crate::support::*;

/// Orders per region of one local day, read from the source with the csv crate.
fn per_region(orders: &[Order], day: jiff::civil::Date, zone: &str) -> BTreeMap<String, u64> {
    let (from, to) = (midnight(day, zone), midnight(day.tomorrow().unwrap(), zone));
    let mut out = BTreeMap::new();
    for o in in_window(orders, from, to) {
        *out.entry(o.region.clone()).or_default() += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_region_down_fails_alone_and_only_it_is_retried() {
    let w = World::new().await;
    let day = date(2026, 3, 5);
    let source = w.sample("orders.csv", utc(2026, 3, 3), 5, 20_000, 7);
    let orders = read_orders(&source);
    let expected = per_region(&orders, day, partial::ZONE);
    {
        // Two malformed lines at the end: records that fail alone.
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&source)
            .unwrap();
        writeln!(
            f,
            "1,2,EU,DE,not-a-time,2026-03-05T10:00:00Z,1.00,EUR,placed,x"
        )
        .unwrap();
        writeln!(f, "3,4,EU").unwrap();
    }
    let targets = w.path("targets");
    for region in expected.keys().filter(|r| r.as_str() != "EU") {
        std::fs::create_dir_all(targets.join(region)).unwrap();
    }
    let c = conf([("source", s(&source)), ("targets", s(&targets))]);
    let out = w
        .run(partial::DAG_ID, midnight(day, partial::ZONE), c)
        .await;
    assert_states(
        &w,
        &out,
        RunState::Failed,
        &[("load", TaskState::Success), ("report", TaskState::Failed)],
    )
    .await;
    let tis = w
        .store
        .task_instances(&out.run.dag_id, &out.run.run_id)
        .await
        .unwrap();
    let deliver: Vec<_> = tis
        .iter()
        .filter(|t| t.key.task_id.as_str() == "deliver")
        .collect();
    assert_eq!(deliver.len(), expected.len(), "one batch per region");
    let regions: Vec<&String> = expected.keys().collect();
    for ti in &deliver {
        let region = regions[ti.key.map_index.raw() as usize];
        let state = if region == "EU" {
            TaskState::Failed
        } else {
            TaskState::Success
        };
        assert_eq!(ti.state, state, "{region}: {:?}", ti.error);
    }
    // The delivered regions hold exactly their rows of the day.
    let delivered = |region: &str| {
        let file = targets.join(region).join("dt=2026-03-05.csv");
        csv::Reader::from_path(&file)
            .map(|mut r| r.records().count() as u64)
            .unwrap_or(0)
    };
    for (region, n) in &expected {
        if region != "EU" {
            assert_eq!(delivered(region), *n, "{region}");
        }
    }
    assert_eq!(delivered("EU"), 0);
    let report = &tis
        .iter()
        .find(|t| t.key.task_id.as_str() == "report")
        .unwrap()
        .error;
    assert!(
        report
            .as_deref()
            .unwrap()
            .contains("1 of 4 region batches failed (EU)"),
        "{report:?}"
    );

    // The target is back: clear only what failed, and what depends on it.
    std::fs::create_dir_all(targets.join("EU")).unwrap();
    let sel = weir_runtime::ClearSelection::of(
        &w.ex.registry().get(partial::DAG_ID).unwrap().clone(),
        &tis,
        Some("deliver"),
        None,
        true,
        true,
    )
    .unwrap();
    let eu = regions.iter().position(|r| r.as_str() == "EU").unwrap() as i64;
    assert_eq!(sel.instances, vec![("deliver".to_owned(), eu)]);
    assert_eq!(sel.whole, vec!["report".to_owned()]);
    let apac_before = std::fs::metadata(targets.join("APAC").join("dt=2026-03-05.csv"))
        .unwrap()
        .modified()
        .unwrap();
    w.store
        .clear_tasks(&out.run.dag_id, &out.run.run_id, &sel.whole, &sel.instances)
        .await
        .unwrap();
    let again =
        w.ex.take_over(&out.run.dag_id, &out.run.run_id)
            .await
            .unwrap();
    assert_states(
        &w,
        &again,
        RunState::Success,
        &[("report", TaskState::Success)],
    )
    .await;
    for (region, n) in &expected {
        assert_eq!(delivered(region), *n, "{region} after the retry");
    }
    // Only the failed batch ran again: the others kept their file and their one try.
    let apac_after = std::fs::metadata(targets.join("APAC").join("dt=2026-03-05.csv"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(apac_before, apac_after, "APAC was not delivered twice");
    let tries = w
        .store
        .tries(&out.run.dag_id, &out.run.run_id)
        .await
        .unwrap();
    let deliver_tries: Vec<(u32, i64)> = tries
        .iter()
        .filter(|t| t.task_id.as_str() == "deliver")
        .map(|t| (t.clear_number, t.map_index.raw()))
        .collect();
    assert_eq!(deliver_tries.len(), expected.len() + 1, "{deliver_tries:?}");
    assert!(deliver_tries.contains(&(1, eu)), "{deliver_tries:?}");
    let output = w.output(&again.run, "report").await;
    assert_eq!(
        output["delivered"].as_array().unwrap().len(),
        expected.len()
    );
    // The failed records are the dead letters: one per malformed source line.
    assert_eq!(output["failed_records"]["count"], 2, "{output}");
}

/// A clock each reading of which is an hour after the previous one: a retry scheduled "now +
/// 10 minutes" is due at the next reading, so five tries run back to back with no real wait
/// (see weekly.rs for why not tokio's paused time).
#[derive(Debug)]
struct HourSteps {
    base: jiff::Timestamp,
    readings: std::sync::atomic::AtomicI64,
}

impl weir_runtime::Clock for HourSteps {
    fn now(&self) -> jiff::Timestamp {
        let n = self
            .readings
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.base + jiff::SignedDuration::from_hours(n)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_source_is_retried_with_backoff_then_dead_lettered_and_every_step_notified() {
    use weir_patterns::p110::batch_retry_strategies as retry;
    let w = World::new().await;
    let ex = w.executor_with_clock(std::sync::Arc::new(HourSteps {
        base: jiff::Timestamp::now(),
        readings: Default::default(),
    }));
    let day = date(2026, 3, 5);
    let source = w.sample("orders.csv", utc(2026, 3, 3), 5, 20_000, 11);
    let orders = read_orders(&source);
    let late = w.path("sources/late.csv");
    let out = w.path("out/retry");
    let c = conf([("source", s(&late)), ("output", s(&out))]);
    let run = trigger_on(&ex, retry::DAG_ID, midnight(day, retry::ZONE), c).await;
    let outcome = ex.run(&run.dag_id, &run.run_id).await.unwrap();
    // One late file does not fail the pipeline: the batch went to the DLQ and the day says so.
    assert_states(
        &w,
        &outcome,
        RunState::Success,
        &[("load", TaskState::Success), ("report", TaskState::Success)],
    )
    .await;
    let tries = w.tries(&run, "load").await;
    assert_eq!(tries.len(), retry::RETRIES as usize + 1, "{tries:?}");
    let report = w.output(&run, "report").await;
    assert_eq!(report["complete"], false, "{report}");
    assert_eq!(
        report["incomplete_partitions"],
        serde_json::json!(["dt=2026-03-05"])
    );

    // Every retry was notified with its delay: exponential, jittered below double, capped.
    let log = w.path("notifications/110_04_02_batch_retry_strategies.jsonl");
    let events: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of_load: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["task_id"] == "load").collect();
    let kinds: Vec<&str> = of_load
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["retry", "retry", "retry", "retry", "retry_exhausted"],
        "{events:?}"
    );
    let base = retry::RETRY_DELAY.as_secs();
    let cap = retry::MAX_RETRY_DELAY.as_secs();
    for (n, e) in of_load[..4].iter().enumerate() {
        assert_eq!(e["try_number"], n as u64 + 1);
        assert!(
            e["error"].as_str().unwrap().contains("has not arrived yet"),
            "{e}"
        );
        let at: jiff::Timestamp = e["at"].as_str().unwrap().parse().unwrap();
        let next: jiff::Timestamp = e["retry_at"].as_str().unwrap().parse().unwrap();
        let delay = next.duration_since(at).as_secs();
        let min = (base << n).min(cap);
        let max = ((base << n) * 2 - 1).min(cap);
        assert!(
            (min..=max).contains(&delay),
            "retry {}: waited {delay}s, expected {min}..={max}s",
            n + 1
        );
    }
    assert_eq!(of_load[4]["try_number"], 5);
    assert!(
        of_load[4]["error"]
            .as_str()
            .unwrap()
            .contains("has not arrived yet")
    );

    // The batch is a dead letter with its context, and the day's manifest says incomplete.
    let letters = w
        .store
        .dead_letters(&weir_store::RejectFilter {
            dag_id: Some(retry::DAG_ID.to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].error_class, "batch");
    let batch: serde_json::Value = serde_json::from_str(&letters[0].raw).unwrap();
    assert_eq!(batch["run_id"], run.run_id.as_str());
    assert_eq!(batch["task_id"], "load");
    assert_eq!(batch["try_number"], 5);
    let name = weir_ops::load::dataset_name(&out);
    let manifests = w.store.manifests(&name).await.unwrap();
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[0].partition, "dt=2026-03-05");
    assert!(
        manifests[0]
            .incomplete
            .as_deref()
            .unwrap()
            .contains("has not arrived yet")
    );

    // The file arrives: running the batch again completes the day.
    std::fs::copy(&source, &late).unwrap();
    let tis = w
        .store
        .task_instances(&run.dag_id, &run.run_id)
        .await
        .unwrap();
    let def = w.ex.registry().get(retry::DAG_ID).unwrap().clone();
    let sel =
        weir_runtime::ClearSelection::of(&def, &tis, Some("load"), None, false, true).unwrap();
    w.store
        .clear_tasks(&run.dag_id, &run.run_id, &sel.whole, &sel.instances)
        .await
        .unwrap();
    let again = ex.take_over(&run.dag_id, &run.run_id).await.unwrap();
    assert_states(
        &w,
        &again,
        RunState::Success,
        &[("load", TaskState::Success)],
    )
    .await;
    let report = w.output(&run, "report").await;
    assert_eq!(report["complete"], true, "{report}");
    let manifests = w.store.manifests(&name).await.unwrap();
    assert_eq!(manifests[0].incomplete, None);
    let (from, to) = (
        midnight(day, retry::ZONE),
        midnight(day.tomorrow().unwrap(), retry::ZONE),
    );
    assert_eq!(manifests[0].rows_out, count_in(&orders, from, to));
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.lines().last().unwrap().contains("\"success\""),
        "the re-run's success is notified"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_batches_and_rows_go_to_the_dlq_and_the_processing_dag_replays_them() {
    use weir_patterns::p110::dead_letter_batch_handling as dlq;
    let w = World::new().await;
    let day = date(2026, 3, 5);
    let source = w.sample("orders.csv", utc(2026, 3, 3), 5, 20_000, 13);
    let orders = read_orders(&source);
    let expected = per_region(&orders, day, dlq::ZONE);
    // Three malformed lines of the day; two get corrected, one never does.
    let bad = [
        "9000001,1,NAM,US,2026-03-05T15:00:00Z,2026-03-05T15:10:00Z,abc,USD,placed,fix me",
        "9000002,1,NAM,US,2026-03-05T16:00:00Z,2026-03-05T16:10:00Z,12.3.4,USD,placed,fix me",
        "9000003,1,NAM,US,not-a-time,2026-03-05T16:10:00Z,1.00,USD,placed,hopeless",
    ];
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&source)
            .unwrap();
        for line in bad {
            writeln!(f, "{line}").unwrap();
        }
    }
    // Declared types, as `weir data generate` writes them: a stray "abc" is a rejected row,
    // not a reason to read the whole amount column as text.
    weir_data::write_orders_schema(&source).unwrap();
    let targets = w.path("targets");
    for region in expected.keys().filter(|r| r.as_str() != "EU") {
        std::fs::create_dir_all(targets.join(region)).unwrap();
    }
    let out = w.path("out/dlq");
    let c = conf([
        ("source", s(&source)),
        ("targets", s(&targets)),
        ("output", s(&out)),
    ]);
    let main = w.run(dlq::DAG_ID, midnight(day, dlq::ZONE), c).await;
    assert_states(
        &w,
        &main,
        RunState::Success,
        &[("report", TaskState::Success)],
    )
    .await;
    let report = w.output(&main.run, "report").await;
    assert_eq!(report["records"], 3, "{report}");
    let batches = report["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 1, "{report}");
    assert_eq!(batches[0]["item"]["region"], "EU");
    assert!(
        batches[0]["error"]
            .as_str()
            .unwrap()
            .contains("not reachable")
    );

    // The EU target is back and two payloads are corrected.
    std::fs::create_dir_all(targets.join("EU")).unwrap();
    let letters = w
        .store
        .dead_letters(&weir_store::RejectFilter {
            dag_id: Some(dlq::DAG_ID.to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();
    let by_raw = |needle: &str| letters.iter().find(|d| d.raw.contains(needle)).unwrap().id;
    w.store
        .correct_dead_letter(by_raw("9000001"), Some(&bad[0].replace(",abc,", ",12.50,")))
        .await
        .unwrap();
    w.store
        .correct_dead_letter(
            by_raw("9000002"),
            Some(&bad[1].replace(",12.3.4,", ",3.40,")),
        )
        .await
        .unwrap();
    let hopeless = by_raw("9000003");

    let processing = |n: i8| {
        let w = &w;
        async move {
            w.run(
                dlq::DLQ_DAG_ID,
                jiff::civil::date(2026, 3, 6)
                    .at(n, 0, 0, 0)
                    .to_zoned(tz(dlq::ZONE))
                    .unwrap()
                    .timestamp(),
                serde_json::json!({}),
            )
            .await
        }
    };
    let first = processing(1).await;
    assert_states(
        &w,
        &first,
        RunState::Success,
        &[("replay", TaskState::Success)],
    )
    .await;
    let replay = w.output(&first.run, "replay").await;
    assert_eq!(replay["replayed"].as_array().unwrap().len(), 3, "{replay}");
    assert_eq!(replay["failed"].as_array().unwrap().len(), 1, "{replay}");
    assert_eq!(replay["failed"][0][0], hopeless);
    // The batch ran again: EU is delivered with its rows; the corrected rows are in their day.
    let eu = csv::Reader::from_path(targets.join("EU").join("dt=2026-03-05.csv"))
        .unwrap()
        .records()
        .count() as u64;
    assert_eq!(eu, expected["EU"]);
    let day_rows = weir_data::Dataset::open(&out)
        .unwrap()
        .count_rows(
            &weir_data::PartitionKey::new([("dt".to_owned(), "2026-03-05".to_owned())]).unwrap(),
        )
        .unwrap();
    let independent: u64 = expected.values().sum();
    assert_eq!(
        day_rows,
        independent + 2,
        "the two corrected rows landed once"
    );

    // Two more passes: nothing is written twice, and the hopeless one is quarantined.
    for n in [2, 3] {
        let again = processing(n).await;
        let replay = w.output(&again.run, "replay").await;
        assert_eq!(replay["replayed"].as_array().unwrap().len(), 0, "{replay}");
    }
    let stuck = w.store.dead_letter(hopeless).await.unwrap().unwrap();
    assert_eq!(stuck.status, weir_store::DeadLetterStatus::Quarantined);
    assert_eq!(stuck.replays, dlq::MAX_REPLAYS);
    let last = processing(4).await;
    let quarantined = w.output(&last.run, "quarantine").await;
    assert_eq!(quarantined["quarantined"][0]["id"], hopeless);
    let day_rows_after = weir_data::Dataset::open(&out)
        .unwrap()
        .count_rows(
            &weir_data::PartitionKey::new([("dt".to_owned(), "2026-03-05".to_owned())]).unwrap(),
        )
        .unwrap();
    assert_eq!(day_rows_after, independent + 2);
}

/// Every file of a partition folder, by name, with its bytes.
fn files_of(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_gate_blocks_the_day_and_keeps_what_was_published_a_warn_gate_records() {
    use weir_patterns::p110::batch_validation_gates as gates;
    let w = World::new().await;
    let day = date(2026, 3, 5);
    let source = w.sample("orders.csv", utc(2026, 3, 3), 5, 20_000, 17);
    weir_data::write_orders_schema(&source).unwrap();
    let out = w.path("out/gates");
    let good = w
        .run(
            gates::DAG_ID,
            midnight(day, gates::ZONE),
            conf([("source", s(&source)), ("output", s(&out))]),
        )
        .await;
    assert_states(
        &w,
        &good,
        RunState::Success,
        &[
            ("load", TaskState::Success),
            ("summary", TaskState::Success),
        ],
    )
    .await;
    let metrics = w.output(&good.run, "metrics").await;
    assert_eq!(metrics["checks_run"], 9, "{metrics}");
    assert_eq!(metrics["checks_failed"], 0, "{metrics}");
    let partition = out.join("dt=2026-03-05");
    let published = files_of(&partition);

    // The same day from a source with a duplicated order and an absurd amount.
    let text = std::fs::read_to_string(&source).unwrap();
    let (from, to) = (
        midnight(day, gates::ZONE),
        midnight(day.tomorrow().unwrap(), gates::ZONE),
    );
    let in_day = |line: &&str| {
        line.split(',')
            .nth(4)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .is_some_and(|t| from <= t && t < to)
    };
    let mut day_lines = text.lines().skip(1).filter(in_day);
    let dup = day_lines.next().unwrap().to_owned();
    let mut absurd: Vec<String> = day_lines
        .next()
        .unwrap()
        .split(',')
        .map(String::from)
        .collect();
    absurd[0] = "99999999".into();
    absurd[6] = "250000.00".into();
    let bad = w.path("sources/bad.csv");
    std::fs::write(&bad, format!("{text}{dup}\n{}\n", absurd.join(","))).unwrap();
    weir_data::write_orders_schema(&bad).unwrap();
    let blocked = w
        .run(
            gates::DAG_ID,
            midnight(day, gates::ZONE),
            conf([("source", s(&bad)), ("output", s(&out))]),
        )
        .await;
    assert_states(
        &w,
        &blocked,
        RunState::Failed,
        &[
            ("load", TaskState::Failed),
            ("summary", TaskState::UpstreamFailed),
            ("metrics", TaskState::Success),
        ],
    )
    .await;
    assert_eq!(
        files_of(&partition),
        published,
        "the published day is byte for byte as it was"
    );
    let metrics = w.output(&blocked.run, "metrics").await;
    assert_eq!(metrics["checks_failed"], 2, "{metrics}");
    let failed: Vec<&str> = metrics["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["unique_order_id", "range_amount"], "{metrics}");
    let range = metrics["failed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "range_amount")
        .unwrap();
    assert_eq!(range["failing"], 1);
    // The failing rows are dead letters, named by their check.
    let letters = w
        .store
        .dead_letters(&weir_store::RejectFilter {
            dag_id: Some(gates::DAG_ID.to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();
    let checked: Vec<_> = letters
        .iter()
        .filter(|d| d.error_class == "check")
        .collect();
    assert!(
        checked.iter().any(|d| d.raw.contains("99999999")),
        "{checked:?}"
    );
    assert!(
        checked.iter().any(|d| d.reason.contains("unique_order_id")),
        "{checked:?}"
    );

    // A warn check that fails: lowercase currencies are recorded, the day is published.
    let lower = w.path("sources/lower.csv");
    std::fs::write(&lower, text.replacen(",USD,", ",usd,", 3)).unwrap();
    weir_data::write_orders_schema(&lower).unwrap();
    let warned = w
        .run(
            gates::DAG_ID,
            midnight(day, gates::ZONE),
            conf([("source", s(&lower)), ("output", s(&out))]),
        )
        .await;
    assert_states(
        &w,
        &warned,
        RunState::Success,
        &[("summary", TaskState::Success)],
    )
    .await;
    let metrics = w.output(&warned.run, "metrics").await;
    assert_eq!(metrics["failed"][0]["name"], "currency_is_iso", "{metrics}");
    assert_eq!(metrics["failed"][0]["failing"], 3, "{metrics}");
    assert_eq!(metrics["by_gate_and_severity"]["input/warn"]["failed"], 1);
}
