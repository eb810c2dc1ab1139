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
