//! Concurrency limits: pool slots (including multi-slot tasks), `max_active_tasks`, and pools
//! that do not exist or are too small.

use std::sync::Arc;

use jiff::Timestamp;
use serde_json::json;
use weir_core::{RunState, TaskState};
use weir_runtime::{DagDef, Task};
use weir_store::TryRecord;

use crate::support::{Gauge, World, secs, t0};

/// A task that holds `weight` units of the gauge for `secs` of virtual time.
fn busy(id: &str, gauge: &Arc<Gauge>, weight: usize, secs: u64) -> Task {
    let gauge = gauge.clone();
    Task::new(id).run(move |_| {
        let gauge = gauge.clone();
        async move {
            let _held: Vec<_> = (0..weight).map(|_| gauge.enter()).collect();
            tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
            Ok(json!(null))
        }
    })
}

/// The most slot-weighted tries that overlapped in time, from the store's try history.
fn max_overlap(tries: &[TryRecord], weight: impl Fn(&TryRecord) -> i64) -> i64 {
    let mut events: Vec<(Timestamp, i64)> = Vec::new();
    for t in tries {
        events.push((t.started_at.expect("started"), weight(t)));
        events.push((t.ended_at, -weight(t)));
    }
    // Ends before starts at the same instant: a slot freed at t can be taken at t.
    events.sort_by_key(|&(at, delta)| (at, delta));
    let (mut now, mut max) = (0, 0);
    for (_, delta) in events {
        now += delta;
        max = max.max(now);
    }
    max
}

#[tokio::test(start_paused = true)]
async fn twenty_tasks_in_a_three_slot_pool_run_three_at_a_time() {
    let gauge = Gauge::new();
    let mut b = DagDef::builder("pooled").pool("p", 3);
    for i in 0..20 {
        b = b.task(busy(&format!("t{i:02}"), &gauge, 1, 10).pool("p", 1));
    }
    let w = World::new([b.build().unwrap()]).await;
    let (run, outcome) = w.run("pooled").await;

    assert_eq!(outcome.state, RunState::Success);
    assert_eq!(gauge.max(), 3, "observed concurrency");
    let tries = w.store.tries(&run.dag_id, &run.run_id).await.unwrap();
    assert_eq!(tries.len(), 20);
    assert!(tries.iter().all(|t| t.state == TaskState::Success));
    assert_eq!(max_overlap(&tries, |_| 1), 3, "concurrency in the store");
    // ceil(20 / 3) = 7 waves of 10 s, with no idle slot in between.
    assert_eq!(outcome.run.started_at, Some(t0()));
    assert_eq!(outcome.run.ended_at, Some(t0() + secs(70)));
    let pools = w.store.pools().await.unwrap();
    assert!(
        pools.iter().any(|p| p.name == "p" && p.slots == 3),
        "{pools:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_two_slot_task_counts_twice_against_the_pool() {
    let gauge = Gauge::new();
    let mut b = DagDef::builder("weighted")
        .pool("p", 3)
        .task(busy("big", &gauge, 2, 10).pool("p", 2));
    for i in 0..6 {
        b = b.task(busy(&format!("small{i}"), &gauge, 1, 10).pool("p", 1));
    }
    let w = World::new([b.build().unwrap()]).await;
    let (run, outcome) = w.run("weighted").await;

    assert_eq!(outcome.state, RunState::Success);
    assert_eq!(gauge.max(), 3, "slots in use never exceed the pool");
    let tries = w.store.tries(&run.dag_id, &run.run_id).await.unwrap();
    assert_eq!(tries.len(), 7);
    let weight = |t: &TryRecord| if t.task_id.as_str() == "big" { 2 } else { 1 };
    assert_eq!(max_overlap(&tries, weight), 3);
    assert_eq!(w.ti(&run, "big").await.state, TaskState::Success);
    // 8 slot-units of 10 s through 3 slots take at least 30 s.
    let took = outcome.run.ended_at.unwrap().duration_since(t0());
    assert!(took >= secs(30), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn max_active_tasks_caps_a_dags_concurrency() {
    let gauge = Gauge::new();
    let mut b = DagDef::builder("capped").max_active_tasks(2);
    for i in 0..9 {
        b = b.task(busy(&format!("t{i}"), &gauge, 1, 5));
    }
    let w = World::new([b.build().unwrap()]).await;
    let (run, outcome) = w.run("capped").await;

    assert_eq!(outcome.state, RunState::Success);
    assert_eq!(gauge.max(), 2);
    let tries = w.store.tries(&run.dag_id, &run.run_id).await.unwrap();
    assert_eq!(max_overlap(&tries, |_| 1), 2);
    assert_eq!(
        outcome.run.ended_at,
        Some(t0() + secs(25)),
        "5 waves of 5 s"
    );
}

#[tokio::test(start_paused = true)]
async fn a_missing_pool_fails_the_task_naming_the_pool() {
    let dag = DagDef::builder("no_pool")
        .task(
            Task::new("orphan")
                .pool("nonexistent_pool", 1)
                .run(|_| async { panic!("must not run") }),
        )
        .task(Task::new("next").after(["orphan"]))
        .task(Task::new("fine"))
        .build()
        .unwrap();
    let w = World::new([dag]).await;
    let (run, outcome) = w.run("no_pool").await;

    assert_eq!(outcome.state, RunState::Failed);
    let ti = w.ti(&run, "orphan").await;
    assert_eq!(ti.state, TaskState::Failed);
    let error = ti.error.unwrap_or_default();
    assert!(
        error.contains("`nonexistent_pool`") && error.contains("does not exist"),
        "{error}"
    );
    assert_eq!(ti.try_number, 0, "it never started");
    assert_eq!(w.ti(&run, "next").await.state, TaskState::UpstreamFailed);
    assert_eq!(w.ti(&run, "fine").await.state, TaskState::Success);
}

#[tokio::test(start_paused = true)]
async fn a_task_needing_more_slots_than_its_pool_has_fails_clearly() {
    let dag = DagDef::builder("too_big")
        .pool("p", 3)
        .task(
            Task::new("huge")
                .pool("p", 4)
                .run(|_| async { panic!("must not run") }),
        )
        .build()
        .unwrap();
    let w = World::new([dag]).await;
    let (run, outcome) = w.run("too_big").await;

    assert_eq!(outcome.state, RunState::Failed);
    let ti = w.ti(&run, "huge").await;
    assert_eq!(ti.state, TaskState::Failed);
    assert_eq!(
        ti.error.as_deref(),
        Some(
            "task `huge` cannot start: it needs 4 slots of pool `p`, which has only 3; give the pool more slots"
        )
    );
}
