//! Rescheduled sensors: a try that returns `TaskError::Reschedule` gives its slot back and waits
//! in `up_for_reschedule`; an executor that yields waiting sensors (`weir scheduler --once`)
//! gives the run up meanwhile, and pokes the sensor once it is due — in the same try.

use serde_json::json;
use weir_core::{RunState, TaskState};
use weir_runtime::{DagDef, Task, TaskError};

use crate::support::{Calls, World, secs};

/// Regression: a run resumed after its sensor's poke time released itself again without
/// poking, so the sensor never ran again.
#[tokio::test(start_paused = true)]
async fn a_yielded_run_pokes_its_sensor_once_due_in_the_same_try() {
    let calls = Calls::new();
    let c = calls.clone();
    let dag = DagDef::builder("sensing")
        .task(Task::new("sense").run(move |ctx| {
            let n = c.hit();
            async move {
                if n == 0 {
                    Err(TaskError::reschedule(ctx.now() + secs(60), "not yet"))
                } else {
                    Ok(json!("found"))
                }
            }
        }))
        .task(Task::new("after").after(["sense"]))
        .build()
        .unwrap();
    let w = World::with([dag], |o| o.yield_waiting_sensors = true).await;
    let run = w.trigger("sensing", json!({})).await;

    let first = w.ex.run(&run.dag_id, &run.run_id).await.unwrap();
    assert_eq!(
        first.state,
        RunState::Running,
        "given up while the sensor waits"
    );
    let ti = w.ti(&run, "sense").await;
    assert_eq!((ti.state, ti.try_number), (TaskState::UpForReschedule, 1));
    assert_eq!(calls.get(), 1);
    let stored = w
        .store
        .get_run(&run.dag_id, &run.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.owner, None);

    // Not due yet: a pass gives it up again without poking.
    let again = w.ex.run(&run.dag_id, &run.run_id).await.unwrap();
    assert_eq!(again.state, RunState::Running);
    assert_eq!(calls.get(), 1);

    // Due: the next pass pokes, in try 1, and the run finishes.
    tokio::time::advance(std::time::Duration::from_secs(61)).await;
    let done = w.ex.run(&run.dag_id, &run.run_id).await.unwrap();
    assert_eq!(done.state, RunState::Success);
    assert_eq!(calls.get(), 2);
    let ti = w.ti(&run, "sense").await;
    assert_eq!((ti.state, ti.try_number), (TaskState::Success, 1));
    assert_eq!(w.ti(&run, "after").await.state, TaskState::Success);
}
