//! 110.7.3's suite: concurrent execution, result aggregation, races provoked on purpose, and
//! the ordering guarantees weir gives — each observed in the store, as a user would.

use std::collections::BTreeMap;

use jiff::civil::date;
use jiff::{SignedDuration, Timestamp};
use weir_core::{RunState, TaskState};
use weir_patterns::p110::testing_parallel::{Aggregate, DAG_ID, POOL_SLOTS};
use weir_runtime::RuntimeError;
use weir_store::{ClaimRun, RunClaim, StoreError, TaskInstanceRecord, TiChange};

use crate::support::*;

fn day() -> Timestamp {
    midnight(date(2026, 3, 8), NEW_YORK)
}

async fn counts(w: &World, run: &weir_store::RunRecord) -> Vec<TaskInstanceRecord> {
    let mut tis: Vec<_> = w
        .store
        .task_instances(&run.dag_id, &run.run_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.key.task_id.as_str() == "count")
        .collect();
    tis.sort_by_key(|t| t.key.map_index);
    tis
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_overlap_within_their_pool_and_the_aggregate_adds_up() {
    let w = World::new().await;
    let source = w.sample(
        "orders.csv",
        midnight(date(2026, 3, 7), NEW_YORK),
        3,
        9_000,
        11,
    );
    let out = w.run(DAG_ID, day(), conf([("source", s(&source))])).await;
    assert_eq!(out.state, RunState::Success);
    let tis = counts(&w, &out.run).await;
    assert!(
        tis.len() >= 4,
        "the sample has several regions: {}",
        tis.len()
    );

    // Concurrent: the instances' [start, end) overlapped, never more than the pool's slots.
    let mut edges: Vec<(Timestamp, i32)> = tis
        .iter()
        .flat_map(|t| [(t.ended_at.unwrap(), -1), (t.started_at.unwrap(), 1)])
        .collect();
    edges.sort();
    let (mut now, mut peak) = (0, 0);
    for (_, d) in edges {
        now += d;
        peak = peak.max(now);
    }
    assert!(
        (2..=POOL_SLOTS as i32).contains(&peak),
        "{peak} instances at once (pool of {POOL_SLOTS})"
    );

    // Aggregated: the sum equals the suite's own count of the day, region by region.
    let agg: Aggregate = serde_json::from_value(w.output(&out.run, "aggregate").await).unwrap();
    let orders = read_orders(&source);
    let the_day = in_window(&orders, day(), midnight(date(2026, 3, 9), NEW_YORK));
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for o in &the_day {
        *expected.entry(o.region.clone()).or_default() += 1;
    }
    assert_eq!(agg.per_region, expected);
    assert_eq!(agg.orders, the_day.len() as u64);
    assert_eq!(
        agg.amount_cents,
        the_day.iter().map(|o| o.amount_cents).sum::<i64>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_arrive_in_map_index_order_whatever_order_the_instances_finish_in() {
    let w = World::new().await;
    let source = w.sample(
        "orders.csv",
        midnight(date(2026, 3, 7), NEW_YORK),
        3,
        3_000,
        5,
    );
    let out = w
        .run(
            DAG_ID,
            day(),
            conf([("source", s(&source)), ("stagger_ms", "150".into())]),
        )
        .await;
    assert_eq!(out.state, RunState::Success);
    let tis = counts(&w, &out.run).await;
    let (first, last) = (&tis[0], tis.last().unwrap());
    assert!(
        first.ended_at > last.ended_at,
        "the stagger makes instance 0 finish after instance {}",
        last.key.map_index
    );
    let agg: Aggregate = serde_json::from_value(w.output(&out.run, "aggregate").await).unwrap();
    let mut sorted = agg.received.clone();
    sorted.sort();
    assert_eq!(
        agg.received, sorted,
        "read in map-index order (the regions' sorted order), not finishing order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tries_of_an_instance_never_overlap_and_the_downstream_waits_for_every_instance() {
    let w = World::new().await;
    let source = w.sample(
        "orders.csv",
        midnight(date(2026, 3, 7), NEW_YORK),
        3,
        3_000,
        9,
    );
    let out = w
        .run(
            DAG_ID,
            day(),
            conf([("source", s(&source)), ("flaky_index", "1".into())]),
        )
        .await;
    assert_eq!(out.state, RunState::Success);
    let tries: Vec<_> = w
        .tries(&out.run, "count")
        .await
        .into_iter()
        .filter(|t| t.map_index.raw() == 1)
        .collect();
    let summary: Vec<(u32, TaskState)> = tries.iter().map(|t| (t.try_number, t.state)).collect();
    assert_eq!(
        summary,
        [(1, TaskState::UpForRetry), (2, TaskState::Success)]
    );
    assert!(
        tries[0].ended_at <= tries[1].started_at.unwrap(),
        "try 2 started before try 1 ended"
    );
    let tis = counts(&w, &out.run).await;
    let last_count = tis.iter().filter_map(|t| t.ended_at).max().unwrap();
    let aggregate = w.tasks(&out.run).await["aggregate"].clone();
    assert!(
        aggregate.started_at.unwrap() >= last_count,
        "aggregate started at {:?}, before the last count ended at {last_count}",
        aggregate.started_at
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_executor_is_refused_and_one_whose_lease_ran_out_is_fenced_off() {
    let w = World::new().await;
    let source = w.sample(
        "orders.csv",
        midnight(date(2026, 3, 7), NEW_YORK),
        3,
        2_000,
        13,
    );
    let run = w
        .trigger(DAG_ID, day(), conf([("source", s(&source))]))
        .await;
    let now = Timestamp::now();

    // A live owner (its lease runs another hour): a second executor is refused, changing nothing.
    let live = w
        .store
        .claim_run(ClaimRun {
            dag_id: run.dag_id.clone(),
            run_id: run.run_id.clone(),
            owner: "host-a:1".into(),
            now,
            lease_until: now + SignedDuration::from_hours(1),
        })
        .await
        .unwrap();
    let RunClaim::Claimed { fence: a, .. } = live else {
        panic!("{live:?}")
    };
    match w.ex.run(&run.dag_id, &run.run_id).await {
        Err(RuntimeError::RunHeld { owner, .. }) => assert_eq!(owner, "host-a:1"),
        other => panic!("a held run was run again: {other:?}"),
    }
    assert!(
        w.tasks(&run).await.is_empty(),
        "the refused executor created nothing"
    );

    // The owner goes quiet: its lease is made to have ended an hour ago, as a paused or
    // partitioned process's would. Another executor takes the run over and finishes it.
    w.store
        .renew_run(&a, now - SignedDuration::from_hours(1))
        .await
        .unwrap();
    let out = w.ex.take_over(&run.dag_id, &run.run_id).await.unwrap();
    assert_eq!(out.state, RunState::Success);
    assert!(out.resumed, "taken over from host-a");

    // The late owner wakes and acts on its old fence: refused, the run as the taker left it.
    let late = w
        .store
        .renew_run(&a, now + SignedDuration::from_hours(1))
        .await;
    assert!(matches!(late, Err(StoreError::Fenced { .. })), "{late:?}");
    let agg_key = w.tasks(&run).await["aggregate"].key.clone();
    let forged = TiChange {
        key: agg_key,
        expect_state: TaskState::Success,
        expect_try: 1,
        state: TaskState::None,
        try_number: 0,
        at: now,
        lease_until: None,
        retry_at: None,
        error: None,
        output: None,
    };
    assert!(matches!(
        w.store.apply_fenced(&a, &[forged]).await,
        Err(StoreError::Fenced { .. })
    ));
    let after = w
        .store
        .get_run(&run.dag_id, &run.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.state, RunState::Success);
    assert_eq!(w.tasks(&run).await["aggregate"].state, TaskState::Success);
}
