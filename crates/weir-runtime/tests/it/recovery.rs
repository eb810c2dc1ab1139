//! Crash and restart: a run whose process dies mid-task is resumed by a new executor on the same
//! store, which retries (or fails) the orphaned instance once its lease has run out.

use std::sync::Arc;

use jiff::Timestamp;
use serde_json::json;
use tokio::sync::Notify;
use weir_core::{RunState, TaskState};
use weir_runtime::{DagDef, Task};
use weir_store::RunRecord;

use crate::support::{Calls, World, secs, t0};

/// A DAG whose `work` task hangs forever on try 1 (after saying it started) and succeeds after.
fn hanging_dag(retries: u32, started: &Arc<Notify>, calls: &Arc<Calls>) -> DagDef {
    let (started, calls) = (started.clone(), calls.clone());
    DagDef::builder("crashy")
        .task(Task::new("before").run(|_| async { Ok(json!("done before the crash")) }))
        .task(
            Task::new("work")
                .after(["before"])
                .retries(retries)
                .retry_delay(secs(60))
                .run(move |ctx| {
                    let started = started.clone();
                    calls.hit();
                    async move {
                        if ctx.try_number == 1 {
                            started.notify_one();
                            std::future::pending::<()>().await;
                        }
                        Ok(json!(format!("done on try {}", ctx.try_number)))
                    }
                }),
        )
        .task(Task::new("after").after(["work"]))
        .build()
        .unwrap()
}

/// Starts the run in a "process" (a spawned task), waits until `work` is running, then kills the
/// process. Returns the run.
async fn run_and_kill(w: &World, started: &Notify) -> RunRecord {
    let run = w.trigger("crashy", json!({})).await;
    let ex = w.ex.clone();
    let (dag, id) = (run.dag_id.clone(), run.run_id.clone());
    let process = tokio::spawn(async move { ex.run(&dag, &id).await });
    started.notified().await;

    // What the store shows while the task runs: claimed, with a lease.
    let ti = w.ti(&run, "work").await;
    assert_eq!(ti.state, TaskState::Running);
    assert_eq!(ti.try_number, 1);
    assert_eq!(ti.started_at, Some(t0()));
    assert_eq!(ti.lease_until, Some(t0() + secs(30)));

    process.abort();
    let killed = process.await.expect_err("the process was killed");
    assert!(killed.is_cancelled());
    // Nothing cleaned up after the "crash".
    let ti = w.ti(&run, "work").await;
    assert_eq!(ti.state, TaskState::Running);
    let stored = w
        .store
        .get_run(&run.dag_id, &run.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state, RunState::Running);
    run
}

#[tokio::test(start_paused = true)]
async fn an_orphaned_instance_with_retries_left_is_retried_by_the_next_process() {
    let (started, calls) = (Arc::new(Notify::new()), Calls::new());
    let w = World::new([hanging_dag(1, &started, &calls)]).await;
    let run = run_and_kill(&w, &started).await;

    // A new process, five minutes later: the lease (t0 + 30 s) has run out.
    let restart = t0() + secs(300);
    let ex = w.executor_at(restart);
    let outcome = ex.run(&run.dag_id, &run.run_id).await.unwrap();

    assert_eq!(outcome.state, RunState::Success);
    let ti = w.ti(&run, "work").await;
    assert_eq!((ti.state, ti.try_number), (TaskState::Success, 2));
    assert_eq!(
        calls.get(),
        2,
        "try 1 in the dead process, try 2 in the new one"
    );
    assert_eq!(
        w.outputs(&run, "work").await,
        vec![(-1, json!("done on try 2"))]
    );
    let tries = w.tries(&run, "work").await;
    assert_eq!(tries.len(), 2);
    assert_eq!(tries[0].try_number, 1);
    assert_eq!(tries[0].state, TaskState::UpForRetry);
    assert_eq!(tries[0].started_at, Some(t0()));
    assert_eq!(tries[0].ended_at, restart);
    let error = tries[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("try 1") && error.contains("process that stopped"),
        "{error}"
    );
    // Recovery retries at once: the process died, the task did not report a failure.
    assert_eq!(tries[1].state, TaskState::Success);
    assert_eq!(tries[1].started_at, Some(restart));
    // Work finished before the crash is not redone.
    assert_eq!(w.tries(&run, "before").await.len(), 1);
    assert_eq!(w.ti(&run, "after").await.state, TaskState::Success);
}

#[tokio::test(start_paused = true)]
async fn an_orphaned_instance_without_retries_fails() {
    let (started, calls) = (Arc::new(Notify::new()), Calls::new());
    let w = World::new([hanging_dag(0, &started, &calls)]).await;
    let run = run_and_kill(&w, &started).await;

    let restart = t0() + secs(300);
    let outcome = w
        .executor_at(restart)
        .run(&run.dag_id, &run.run_id)
        .await
        .unwrap();

    assert_eq!(outcome.state, RunState::Failed);
    let ti = w.ti(&run, "work").await;
    assert_eq!((ti.state, ti.try_number), (TaskState::Failed, 1));
    assert_eq!(calls.get(), 1, "not run again");
    let tries = w.tries(&run, "work").await;
    assert_eq!(tries.len(), 1);
    assert_eq!(tries[0].state, TaskState::Failed);
    assert_eq!(tries[0].ended_at, restart);
    assert!(
        tries[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("process that stopped")),
        "{:?}",
        tries[0].error
    );
    assert_eq!(w.ti(&run, "after").await.state, TaskState::UpstreamFailed);
}

#[tokio::test(start_paused = true)]
async fn a_restart_before_the_lease_ends_waits_for_it() {
    let (started, calls) = (Arc::new(Notify::new()), Calls::new());
    let w = World::new([hanging_dag(1, &started, &calls)]).await;
    let run = run_and_kill(&w, &started).await;

    // Restarted 10 s after the claim: the lease has 20 s to go. `run` refuses the held run;
    // `take_over` waits the lease out and, nobody having renewed it, takes the run.
    let restart: Timestamp = t0() + secs(10);
    let next = w.executor_at(restart);
    assert!(matches!(
        next.run(&run.dag_id, &run.run_id).await,
        Err(weir_runtime::RuntimeError::RunHeld { .. })
    ));
    let outcome = next.take_over(&run.dag_id, &run.run_id).await.unwrap();

    assert_eq!(outcome.state, RunState::Success);
    let tries = w.tries(&run, "work").await;
    assert_eq!(tries.len(), 2);
    assert_eq!(
        tries[0].ended_at,
        t0() + secs(30),
        "taken over when the lease ended"
    );
    assert_eq!(tries[1].started_at, Some(t0() + secs(30)));
    assert_eq!(calls.get(), 2);
}

/// A second process asked to run a run whose owner is alive (it renews its lease) is refused,
/// both at once (`run`) and after watching the owner for one lease (`take_over`); the owner
/// finishes its run undisturbed, its task tried once.
#[tokio::test(start_paused = true)]
async fn a_live_owner_keeps_its_run_against_a_second_process() {
    let (started, release, calls) = (
        Arc::new(Notify::new()),
        Arc::new(Notify::new()),
        Calls::new(),
    );
    let (s, r, c) = (started.clone(), release.clone(), calls.clone());
    let dag = DagDef::builder("slow")
        .task(Task::new("work").retries(3).run(move |_| {
            let (s, r) = (s.clone(), r.clone());
            c.hit();
            async move {
                s.notify_one();
                r.notified().await;
                Ok(json!("done"))
            }
        }))
        .build()
        .unwrap();
    let w = World::new([dag]).await;
    let run = w.trigger("slow", json!({})).await;
    let ex = w.ex.clone();
    let (dag_id, run_id) = (run.dag_id.clone(), run.run_id.clone());
    let owner = tokio::spawn(async move { ex.run(&dag_id, &run_id).await });
    started.notified().await;

    let second = w.executor_as("second-process", t0());
    match second.run(&run.dag_id, &run.run_id).await {
        Err(weir_runtime::RuntimeError::RunHeld { owner, .. }) => assert_eq!(owner, "test-process"),
        other => panic!("a held run must be refused, got {other:?}"),
    }
    let before = tokio::time::Instant::now();
    match second.take_over(&run.dag_id, &run.run_id).await {
        Err(weir_runtime::RuntimeError::RunHeld { lease_until, .. }) => {
            assert!(lease_until > t0() + secs(30), "the owner renewed its lease");
        }
        other => panic!("a live owner must keep its run, got {other:?}"),
    }
    assert!(
        tokio::time::Instant::now() - before >= std::time::Duration::from_secs(30),
        "take_over watched the owner for a whole lease before giving up"
    );

    release.notify_one();
    let outcome = owner.await.unwrap().unwrap();
    assert_eq!(outcome.state, RunState::Success);
    assert!(!outcome.resumed);
    assert_eq!(calls.get(), 1, "the task ran once, in its owner");
    let ti = w.ti(&run, "work").await;
    assert_eq!((ti.state, ti.try_number), (TaskState::Success, 1));
    let stored = w
        .store
        .get_run(&run.dag_id, &run.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.owner, None, "a finished run has no owner");
}

/// A run whose owner was killed (its lease ran out) is taken over by `take_over`, which says so.
#[tokio::test(start_paused = true)]
async fn a_run_whose_owner_died_is_taken_over_and_reported_resumed() {
    let (started, calls) = (Arc::new(Notify::new()), Calls::new());
    let w = World::new([hanging_dag(1, &started, &calls)]).await;
    let run = run_and_kill(&w, &started).await;
    let stored = w
        .store
        .get_run(&run.dag_id, &run.run_id)
        .await
        .unwrap()
        .unwrap();
    let dead = stored
        .owner
        .expect("the killed process still owns the run in the store");
    assert_eq!(dead.id, "test-process");
    // The next process arrives while the dead owner's lease still runs: it waits the lease out.
    let next = w.executor_as("next-process", t0() + secs(5));
    let outcome = next.take_over(&run.dag_id, &run.run_id).await.unwrap();
    assert_eq!(outcome.state, RunState::Success);
    assert!(outcome.resumed);
    let ti = w.ti(&run, "work").await;
    assert_eq!((ti.state, ti.try_number), (TaskState::Success, 2));
}
