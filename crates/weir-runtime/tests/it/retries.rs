//! Retries in virtual time: the backoff formula as observed in the try history, callbacks,
//! exhaustion, fatal errors and `execution_timeout`.

use std::sync::{Arc, Mutex};

use serde_json::json;
use weir_core::retry::{RetryPolicy, TryKey};
use weir_core::{RunState, TaskState};
use weir_runtime::{CallbackContext, DagDef, Task, TaskError};

use crate::support::{World, secs, t0};

/// Callback contexts by kind, in call order.
#[derive(Default)]
struct Seen {
    success: Mutex<Vec<CallbackContext>>,
    retry: Mutex<Vec<CallbackContext>>,
    failure: Mutex<Vec<CallbackContext>>,
}

fn with_callbacks(task: Task, seen: &Arc<Seen>) -> Task {
    let (a, b, c) = (seen.clone(), seen.clone(), seen.clone());
    task.on_success(move |ctx| a.success.lock().unwrap().push(ctx.clone()))
        .on_retry(move |ctx| b.retry.lock().unwrap().push(ctx.clone()))
        .on_failure(move |ctx| c.failure.lock().unwrap().push(ctx.clone()))
}

#[tokio::test(start_paused = true)]
async fn a_flaky_task_is_retried_with_exponential_backoff_until_it_succeeds() {
    let seen = Arc::new(Seen::default());
    let task = Task::new("flaky")
        .retries(3)
        .retry_delay(secs(10))
        .backoff(2.0)
        .max_retry_delay(secs(15))
        .run(|ctx| async move {
            // Every try takes a minute of (virtual) work.
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            if ctx.try_number < 3 {
                Err(TaskError::retryable(format!(
                    "flaky on try {}",
                    ctx.try_number
                )))
            } else {
                Ok(json!({"try": ctx.try_number, "max_tries": ctx.max_tries}))
            }
        });
    let dag = DagDef::builder("retrying")
        .task(with_callbacks(task, &seen))
        .build()
        .unwrap();
    let w = World::new([dag]).await;
    let (run, outcome) = w.run("retrying").await;

    assert_eq!(outcome.state, RunState::Success);
    let ti = w.ti(&run, "flaky").await;
    assert_eq!(
        (ti.state, ti.try_number, ti.max_tries),
        (TaskState::Success, 3, 4)
    );
    assert_eq!(
        w.outputs(&run, "flaky").await,
        vec![(-1, json!({"try": 3, "max_tries": 4}))]
    );

    let tries = w.tries(&run, "flaky").await;
    let summary: Vec<_> = tries
        .iter()
        .map(|t| (t.try_number, t.state, t.error.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, TaskState::UpForRetry, Some("flaky on try 1".to_owned())),
            (2, TaskState::UpForRetry, Some("flaky on try 2".to_owned())),
            (3, TaskState::Success, None),
        ]
    );
    // The same policy and inputs give the delays the executor must have waited.
    let policy = RetryPolicy {
        retries: 3,
        retry_delay: secs(10),
        backoff_multiplier: Some(2.0),
        max_retry_delay: Some(secs(15)),
    };
    let delay = |try_number| {
        policy.delay_after(TryKey {
            dag_id: "retrying",
            task_id: "flaky",
            logical_date: run.logical_date,
            try_number,
        })
    };
    // Try 2's uncapped delay is at least 20 s (10 s * 2), so the 15 s cap applies.
    assert_eq!(delay(2), secs(15));
    assert!(
        delay(1) >= secs(10) && delay(1) <= secs(15),
        "{:?}",
        delay(1)
    );
    assert_eq!(tries[0].started_at, Some(t0()));
    for t in &tries {
        assert_eq!(
            t.ended_at,
            t.started_at.unwrap() + secs(60),
            "try {}",
            t.try_number
        );
    }
    for pair in tries.windows(2) {
        assert_eq!(
            pair[1].started_at,
            Some(pair[0].ended_at + delay(pair[0].try_number)),
            "try {} starts one retry delay after try {} ended",
            pair[1].try_number,
            pair[0].try_number
        );
    }

    let retry = seen.retry.lock().unwrap().clone();
    assert_eq!(retry.len(), 2);
    for (cb, t) in retry.iter().zip(&tries) {
        assert_eq!(cb.try_number, t.try_number);
        assert_eq!(cb.error, t.error);
        assert_eq!(cb.retry_at, Some(t.ended_at + delay(t.try_number)));
    }
    let success = seen.success.lock().unwrap().clone();
    assert_eq!(success.len(), 1);
    assert_eq!(success[0].try_number, 3);
    assert!(seen.failure.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_task_that_keeps_failing_fails_after_its_last_retry() {
    let seen = Arc::new(Seen::default());
    let task = Task::new("doomed")
        .retries(2)
        .retry_delay(secs(30))
        .run(|ctx| async move {
            Err(TaskError::retryable(format!(
                "no luck on try {}",
                ctx.try_number
            )))
        });
    let dag = DagDef::builder("exhausted")
        .task(with_callbacks(task, &seen))
        .task(Task::new("after").after(["doomed"]))
        .build()
        .unwrap();
    let w = World::new([dag]).await;
    let (run, outcome) = w.run("exhausted").await;

    assert_eq!(outcome.state, RunState::Failed);
    let ti = w.ti(&run, "doomed").await;
    assert_eq!((ti.state, ti.try_number), (TaskState::Failed, 3));
    assert_eq!(ti.error.as_deref(), Some("no luck on try 3"));
    assert_eq!(w.ti(&run, "after").await.state, TaskState::UpstreamFailed);
    let tries = w.tries(&run, "doomed").await;
    let states: Vec<_> = tries.iter().map(|t| (t.try_number, t.state)).collect();
    assert_eq!(
        states,
        vec![
            (1, TaskState::UpForRetry),
            (2, TaskState::UpForRetry),
            (3, TaskState::Failed),
        ]
    );
    // Without backoff every retry waits exactly retry_delay.
    assert_eq!(tries[1].started_at, Some(tries[0].ended_at + secs(30)));
    assert_eq!(tries[2].started_at, Some(tries[1].ended_at + secs(30)));
    assert_eq!(seen.retry.lock().unwrap().len(), 2);
    assert!(seen.success.lock().unwrap().is_empty());
    let failure = seen.failure.lock().unwrap().clone();
    assert_eq!(failure.len(), 1);
    assert_eq!(failure[0].try_number, 3);
    assert_eq!(failure[0].error.as_deref(), Some("no luck on try 3"));
}

#[tokio::test(start_paused = true)]
async fn a_fatal_error_is_not_retried() {
    let seen = Arc::new(Seen::default());
    let task = Task::new("bad_input")
        .retries(5)
        .retry_delay(secs(1))
        .run(|_| async { Err(TaskError::fatal("the input file is not CSV")) });
    let dag = DagDef::builder("fatal")
        .task(with_callbacks(task, &seen))
        .build()
        .unwrap();
    let w = World::new([dag]).await;
    let (run, outcome) = w.run("fatal").await;

    assert_eq!(outcome.state, RunState::Failed);
    let ti = w.ti(&run, "bad_input").await;
    assert_eq!((ti.state, ti.try_number), (TaskState::Failed, 1));
    let tries = w.tries(&run, "bad_input").await;
    assert_eq!(tries.len(), 1);
    assert_eq!(tries[0].error.as_deref(), Some("the input file is not CSV"));
    assert!(seen.retry.lock().unwrap().is_empty());
    assert_eq!(seen.failure.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn execution_timeout_turns_a_long_try_into_a_failed_try_naming_the_timeout() {
    let task = |id: &str, retries: u32| {
        Task::new(id)
            .retries(retries)
            .retry_delay(secs(10))
            .execution_timeout(secs(5))
            .run(|_| async {
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                Ok(json!("too late"))
            })
    };
    let dag = DagDef::builder("slow")
        .task(task("no_retry", 0))
        .task(task("one_retry", 1))
        .build()
        .unwrap();
    let w = World::new([dag]).await;
    let (run, outcome) = w.run("slow").await;

    assert_eq!(outcome.state, RunState::Failed);
    let tries = w.tries(&run, "no_retry").await;
    assert_eq!(tries.len(), 1);
    assert_eq!(tries[0].state, TaskState::Failed);
    assert_eq!(tries[0].started_at, Some(t0()));
    assert_eq!(tries[0].ended_at, t0() + secs(5), "stopped at the timeout");
    let error = tries[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("execution_timeout") && error.contains("5s"),
        "{error}"
    );
    // A timeout is retryable: with a retry left the task gets a second (also timed-out) try.
    let tries = w.tries(&run, "one_retry").await;
    let states: Vec<_> = tries.iter().map(|t| t.state).collect();
    assert_eq!(states, vec![TaskState::UpForRetry, TaskState::Failed]);
    assert_eq!(tries[1].started_at, Some(t0() + secs(15)));
    assert_eq!(tries[1].ended_at, t0() + secs(20));
    assert!(w.outputs(&run, "one_retry").await.is_empty());
}
