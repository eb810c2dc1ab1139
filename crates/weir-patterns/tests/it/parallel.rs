//! 110.3.3 scatter-gather, in one process: the shards' totals, gathered as they arrive, equal
//! an independent count of the day; a shard that fails for good fails the gather, naming it.

use std::collections::BTreeMap;

use jiff::civil::date;
use weir_core::{RunState, TaskState};
use weir_patterns::p110::scatter_gather_pattern::{DAG_ID, Gathered};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_gathered_as_they_arrive_sum_to_the_day() {
    let w = World::new().await;
    let day = date(2026, 3, 8); // 23 hours in New York
    let source = w.sample(
        "orders.csv",
        midnight(date(2026, 3, 6), NEW_YORK),
        4,
        6_000,
        7,
    );
    let out = w
        .run(
            DAG_ID,
            midnight(day, NEW_YORK),
            conf([("source", s(&source)), ("shards", "8".into())]),
        )
        .await;
    assert_eq!(out.state, RunState::Success);
    let gathered: Gathered = serde_json::from_value(w.output(&out.run, "gather").await).unwrap();

    // The day, counted here from the CSV with jiff's New York midnights.
    let orders = read_orders(&source);
    let day_orders = in_window(
        &orders,
        midnight(day, NEW_YORK),
        midnight(date(2026, 3, 9), NEW_YORK),
    );
    assert!(day_orders.len() > 500, "the sample has the day");
    let mut expected: BTreeMap<String, (u64, i64)> = BTreeMap::new();
    for o in &day_orders {
        let e = expected.entry(o.region.clone()).or_default();
        e.0 += 1;
        e.1 += o.amount_cents;
    }
    assert_eq!(gathered.orders, day_orders.len() as u64);
    assert_eq!(
        gathered.amount_cents,
        day_orders.iter().map(|o| o.amount_cents).sum::<i64>()
    );
    let got: BTreeMap<String, (u64, i64)> = gathered
        .regions
        .iter()
        .map(|(r, t)| (r.clone(), (t.orders, t.amount_cents)))
        .collect();
    assert_eq!(got, expected);

    // Gathered as they arrived: every shard once, and the gather was running while shards
    // were still to finish (8 shards share a 4-slot pool).
    let mut shards: Vec<u32> = gathered.arrivals.iter().map(|a| a.shard).collect();
    shards.sort_unstable();
    assert_eq!(shards, (0..8).collect::<Vec<_>>());
    assert!(
        gathered.pending_at_start > 0,
        "the gather started only after every shard: {gathered:?}"
    );
    let tis = w
        .store
        .task_instances(&out.run.dag_id, &out.run.run_id)
        .await
        .unwrap();
    let gather_start = tis
        .iter()
        .find(|t| t.key.task_id.as_str() == "gather")
        .and_then(|t| t.started_at)
        .unwrap();
    let last_shard_end = tis
        .iter()
        .filter(|t| t.key.task_id.as_str() == "work")
        .filter_map(|t| t.ended_at)
        .max()
        .unwrap();
    assert!(
        gather_start < last_shard_end,
        "the gather started at {gather_start}, after the last shard ended at {last_shard_end}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_that_fails_for_good_fails_the_gather_naming_it() {
    let w = World::new().await;
    let day = date(2026, 3, 8);
    let source = w.sample(
        "orders.csv",
        midnight(date(2026, 3, 7), NEW_YORK),
        2,
        2_000,
        3,
    );
    let out = w
        .run(
            DAG_ID,
            midnight(day, NEW_YORK),
            conf([
                ("source", s(&source)),
                ("shards", "8".into()),
                ("fail_shards", "3,5".into()),
            ]),
        )
        .await;
    assert_eq!(out.state, RunState::Failed);
    let tis = w
        .store
        .task_instances(&out.run.dag_id, &out.run.run_id)
        .await
        .unwrap();
    let failed: Vec<i64> = tis
        .iter()
        .filter(|t| t.key.task_id.as_str() == "work" && t.state == TaskState::Failed)
        .map(|t| t.key.map_index.raw())
        .collect();
    assert_eq!(failed, [3, 5]);
    let gather = tis
        .iter()
        .find(|t| t.key.task_id.as_str() == "gather")
        .unwrap();
    assert_eq!(gather.state, TaskState::Failed);
    let error = gather.error.as_deref().unwrap();
    assert!(
        error.contains("shards [3, 5] of 8 failed") && error.contains("the other 6 were gathered"),
        "{error}"
    );
    assert!(
        w.output(&out.run, "gather").await.is_null(),
        "nothing published"
    );
}
