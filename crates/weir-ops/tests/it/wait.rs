//! `wait_for`: a sensor that gives its slot back between pokes (reschedule), or holds it (poke),
//! and lets `weir scheduler --once` return while it waits. These run on the real clock with
//! one-second pokes: the store under test (sqlx's SQLite worker) does not run on tokio's paused
//! clock.

use std::sync::Arc;

use serde_json::json;
use weir_core::{DagId, RunState, TaskState};
use weir_ops::{SensorMode, Sql, WaitFor, task};
use weir_runtime::{Scheduler, TriggerRequest};

use crate::{World, ts, write_orders};

fn sensor(out: &std::path::Path, mode: SensorMode, timeout: &str) -> WaitFor {
    WaitFor {
        partitions: vec!["region=EU".into()],
        poke_interval: "1s".into(),
        timeout: timeout.into(),
        mode,
        ..WaitFor::new(out)
    }
}

/// One slot in the `io` pool, a sensor and the task that makes what it waits for: rescheduled,
/// the sensor frees the slot, the producer runs, and the next poke succeeds in the same try;
/// poking, it holds the slot until it times out and only then does the producer run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescheduled_sensor_frees_its_slot_and_a_poking_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    write_orders(&dir.path().join("orders"));
    let produce = |out: &std::path::Path| {
        task(
            "produce",
            Sql::new("SELECT region, order_id FROM orders")
                .table("orders", dir.path().join("orders"))
                .into_dataset(out, &["region"]),
        )
        .pool("io", 1)
    };
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let w = World::dags(vec![
        (
            "rescheduling",
            vec![
                task("wait", sensor(&a, SensorMode::Reschedule, "30s")).pool("io", 1),
                produce(&a),
            ],
        ),
        (
            "poking",
            vec![
                task("wait", sensor(&b, SensorMode::Poke, "2s")).pool("io", 1),
                produce(&b),
            ],
        ),
    ])
    .await;
    w.ex.store().set_pool("io", 1, "one slot").await.unwrap();
    let day = ts("2026-03-01T00:00:00Z");

    let ran = w.run_dag("rescheduling", day, json!({}), "wait").await;
    assert_eq!(ran.outcome.state, RunState::Success);
    assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
    assert_eq!(
        ran.ti.try_number, 1,
        "pokes after a reschedule are the same try"
    );
    assert_eq!(ran.output.unwrap()["partitions"], json!(["region=EU"]));

    let ran = w.run_dag("poking", day, json!({}), "wait").await;
    ran.assert_failed_on_try(1, "timed out after 2s waiting for 1 of 1 partitions");
    let tis =
        w.ex.store()
            .task_instances(&ran.outcome.run.dag_id, &ran.outcome.run.run_id)
            .await
            .unwrap();
    let producer = tis
        .iter()
        .find(|t| t.key.task_id.as_str() == "produce")
        .unwrap();
    assert_eq!(producer.state, TaskState::Success);
    let run_started = ran.outcome.run.started_at.unwrap();
    assert!(
        producer.started_at.unwrap() >= run_started + jiff::SignedDuration::from_secs(2),
        "the producer got the slot only when the poking sensor timed out"
    );
}

/// `weir scheduler --once` (an executor that yields waiting sensors) returns while a sensor
/// waits, leaving the run unfinished and unowned for a later pass; a second pass does the same
/// without starting a new try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_once_returns_while_a_sensor_waits() {
    let dir = tempfile::tempdir().unwrap();
    let never = dir.path().join("never");
    let watch = WaitFor {
        poke_interval: "1h".into(),
        timeout: "2h".into(),
        ..sensor(&never, SensorMode::Reschedule, "2h")
    };
    let World { dir: _home, mut ex } =
        World::dags(vec![("watch", vec![task("wait", watch)])]).await;
    ex.set_yield_waiting_sensors(true);
    let ex = Arc::new(ex);
    let run = weir_runtime::trigger_run(
        &ex,
        TriggerRequest {
            dag_id: DagId::new("watch").unwrap(),
            logical_date: Some(ts("2026-03-01T00:00:00Z")),
            conf: json!({}),
        },
    )
    .await
    .unwrap();
    let scheduler = Scheduler::new(ex.clone());
    for pass in 0..2 {
        let mut finished = Vec::new();
        let served = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            scheduler.serve(
                std::time::Duration::from_secs(1),
                true,
                std::future::pending(),
                |o| finished.push(o.state),
            ),
        )
        .await;
        assert!(
            served.is_ok(),
            "pass {pass}: --once blocked on a waiting sensor"
        );
        served.unwrap().unwrap();
        // The DAG's latest scheduled day waits too: every run is left waiting, none blocks.
        assert!(
            !finished.is_empty() && finished.iter().all(|s| *s == RunState::Running),
            "pass {pass}: {finished:?}"
        );
        let stored = ex
            .store()
            .get_run(&run.dag_id, &run.run_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.state, RunState::Running);
        assert_eq!(stored.owner, None, "given up, not held");
        let ti = ex
            .store()
            .task_instances(&run.dag_id, &run.run_id)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(ti.state, TaskState::UpForReschedule);
        assert_eq!(ti.try_number, 1);
        assert!(ti.error.unwrap().contains("waiting for 1 of 1 partitions"));
        assert!(
            ti.retry_at.unwrap() > jiff::Timestamp::now() + jiff::SignedDuration::from_mins(59)
        );
    }
}
