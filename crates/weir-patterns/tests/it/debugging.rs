//! The debugging patterns (110.9), driven as a user would.

use jiff::civil::date;
use weir_core::{RunState, TaskState};
use weir_patterns::p110::debugging_batch_failures as debug;

use crate::support::*;

/// The source with the amount of the first order of `day` (New York) replaced by `amount`;
/// returns the file and that order's id.
fn with_amount(
    w: &World,
    base: &std::path::Path,
    day: jiff::civil::Date,
    amount: &str,
    name: &str,
) -> (std::path::PathBuf, String) {
    let text = std::fs::read_to_string(base).unwrap();
    let (from, to) = (
        midnight(day, debug::ZONE),
        midnight(day.tomorrow().unwrap(), debug::ZONE),
    );
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let at = lines
        .iter()
        .position(|l| {
            l.split(',')
                .nth(4)
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .is_some_and(|t| from <= t && t < to)
        })
        .unwrap();
    let mut fields: Vec<String> = lines[at].split(',').map(String::from).collect();
    fields[6] = amount.to_owned();
    let id = fields[0].clone();
    lines[at] = fields.join(",");
    let path = w.path(&format!("sources/{name}"));
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    weir_data::write_orders_schema(&path).unwrap();
    (path, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_bug_is_classed_across_runs_traced_to_its_root_and_recovered() {
    let w = World::new().await;
    let source = w.sample("orders.csv", utc(2026, 3, 3), 6, 20_000, 19);
    weir_data::write_orders_schema(&source).unwrap();
    let out = w.path("out/debug");
    let (d4, d5, d6) = (date(2026, 3, 4), date(2026, 3, 5), date(2026, 3, 6));
    let ok = w
        .run(
            debug::DAG_ID,
            midnight(d4, debug::ZONE),
            conf([("source", s(&source)), ("output", s(&out))]),
        )
        .await;
    assert_states(
        &w,
        &ok,
        RunState::Success,
        &[("publish", TaskState::Success)],
    )
    .await;
    let (bad5, id5) = with_amount(&w, &source, d5, "-12.50", "bad5.csv");
    let (bad6, id6) = with_amount(&w, &source, d6, "-3.00", "bad6.csv");
    let mut failed = Vec::new();
    for (day, src) in [(d5, &bad5), (d6, &bad6)] {
        let run = w
            .run(
                debug::DAG_ID,
                midnight(day, debug::ZONE),
                conf([("source", s(src)), ("output", s(&out))]),
            )
            .await;
        assert_states(
            &w,
            &run,
            RunState::Failed,
            &[
                ("load", TaskState::Success),
                ("customer_spend", TaskState::Failed),
                ("publish", TaskState::UpstreamFailed),
            ],
        )
        .await;
        failed.push(run);
    }

    // The two days' failures are one class of error, with its runs.
    let classes = weir_runtime::error_classes(w.store.as_ref(), &dag_id(debug::DAG_ID), 10)
        .await
        .unwrap();
    assert_eq!(classes.len(), 1, "{classes:#?}");
    assert_eq!(classes[0].tries, 2);
    assert_eq!(classes[0].runs.len(), 2);
    assert!(
        classes[0]
            .class
            .contains("order # has a negative amount -# on #"),
        "{}",
        classes[0].class
    );
    assert!(
        classes[0].example.contains(&id6),
        "the newest example: {}",
        classes[0].example
    );

    // The root cause of day 5: the task, the failed record, what the load handed it.
    let def = w.ex.registry().get(debug::DAG_ID).unwrap().clone();
    let d = weir_runtime::diagnose(w.store.as_ref(), &def, &failed[0].run.run_id, &w.home)
        .await
        .unwrap();
    let root = d.root.as_ref().expect("a root cause");
    assert_eq!(root.task_id, "customer_spend");
    assert!(
        root.error
            .contains(&format!("order {id5} has a negative amount -12.50")),
        "{}",
        root.error
    );
    assert_eq!(
        root.inputs["load"]["partitions"][0]["partition"],
        "dt=2026-03-05"
    );
    // (The try logs are written by the binary's log layer; weir-cli's tests read them.)
    assert!(
        root.log.ends_with("customer_spend/try-1.log"),
        "{}",
        root.log.display()
    );
    assert_eq!(d.failed, ["customer_spend"]);
    assert_eq!(d.upstream_failed, ["publish"]);
    assert!(
        d.recovery.iter().any(|c| c.contains("weir tasks clear")),
        "{:?}",
        d.recovery
    );

    // Recovery: the source is fixed; clearing the load and what follows it completes the day.
    let (fixed, _) = with_amount(&w, &bad5, d5, "12.50", "bad5.csv");
    assert_eq!(fixed, bad5);
    let tis = w
        .store
        .task_instances(&failed[0].run.dag_id, &failed[0].run.run_id)
        .await
        .unwrap();
    let sel =
        weir_runtime::ClearSelection::of(&def, &tis, Some("load"), None, false, true).unwrap();
    assert_eq!(sel.whole, ["load", "customer_spend", "publish"]);
    w.store
        .clear_tasks(
            &failed[0].run.dag_id,
            &failed[0].run.run_id,
            &sel.whole,
            &sel.instances,
        )
        .await
        .unwrap();
    let again =
        w.ex.take_over(&failed[0].run.dag_id, &failed[0].run.run_id)
            .await
            .unwrap();
    assert_states(
        &w,
        &again,
        RunState::Success,
        &[("publish", TaskState::Success)],
    )
    .await;
    let d = weir_runtime::diagnose(w.store.as_ref(), &def, &failed[0].run.run_id, &w.home)
        .await
        .unwrap();
    assert!(d.root.is_none() && d.failed.is_empty(), "{d:?}");
}
