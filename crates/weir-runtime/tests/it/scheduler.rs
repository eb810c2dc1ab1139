//! The scheduler's run creation (catchup, start date, `max_active_runs`, DST-length windows) and
//! manual triggers that re-run an interval instead of duplicating it.

use std::sync::Arc;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::json;
use weir_core::ids::RunKind;
use weir_core::timetable::{preview, window_schedule};
use weir_core::{DagId, DataInterval, ParamSpec, RunState};
use weir_runtime::{DagDef, Scheduler, Task, TriggerRequest, trigger_run};
use weir_store::{RunFilter, RunRecord};

use crate::support::{Calls, World, ts};

fn london() -> TimeZone {
    TimeZone::get("Europe/London").expect("tzdb has Europe/London")
}

/// `@daily` in London, starting 2026-03-26 (the week the clocks go forward, on 03-29).
fn daily(id: &str, catchup: bool, max_active_runs: u32) -> DagDef {
    DagDef::builder(id)
        .schedule(window_schedule("@daily", london()).unwrap())
        .start_date(ts("2026-03-26T00:00:00Z"))
        .catchup(catchup)
        .max_active_runs(max_active_runs)
        .task(Task::new("load"))
        .build()
        .unwrap()
}

fn intervals(runs: &[RunRecord]) -> Vec<DataInterval> {
    runs.iter()
        .map(|r| DataInterval::new(r.interval_start, r.interval_end))
        .collect()
}

/// Runs every queued run of the world to the end.
async fn run_queued(w: &World) {
    let queued = w
        .store
        .list_runs(&RunFilter {
            states: vec![RunState::Queued],
            ..Default::default()
        })
        .await
        .unwrap();
    for run in queued {
        let outcome = w.ex.run(&run.dag_id, &run.run_id).await.unwrap();
        assert_eq!(outcome.state, RunState::Success);
    }
}

#[tokio::test(start_paused = true)]
async fn catchup_creates_every_missed_daily_run_up_to_max_active_runs() {
    let w = World::new([daily("catchup", true, 3)]).await;
    let scheduler = Scheduler::new(w.ex.clone());
    let tt = w
        .registry
        .get("catchup")
        .unwrap()
        .dag
        .schedule
        .clone()
        .unwrap();
    let expected = preview(tt.as_ref(), ts("2026-03-26T00:00:00Z"), 5);
    // 10:00 BST on 03-31: the days 03-26 .. 03-30 are over.
    let now = ts("2026-03-31T09:00:00Z");

    let first = scheduler.create_due_runs(now).await.unwrap();
    assert_eq!(first.len(), 3, "capped by max_active_runs");
    assert_eq!(
        intervals(&first),
        expected[..3]
            .iter()
            .map(|i| i.data_interval)
            .collect::<Vec<_>>()
    );
    for (run, info) in first.iter().zip(&expected) {
        assert_eq!(run.kind, RunKind::Scheduled);
        assert_eq!(run.state, RunState::Queued);
        assert_eq!(run.logical_date, info.data_interval.start);
        assert_eq!(run.run_after, info.run_after);
        assert_eq!(run.run_after, run.interval_end, "due when its day is over");
        assert_eq!(
            run.run_id.as_str(),
            format!(
                "scheduled__{}",
                run.logical_date.strftime("%Y-%m-%dT%H:%M:%S+00:00")
            )
        );
    }
    assert!(
        scheduler.create_due_runs(now).await.unwrap().is_empty(),
        "three runs are active"
    );

    run_queued(&w).await;
    let second = scheduler.create_due_runs(now).await.unwrap();
    assert_eq!(
        intervals(&second),
        expected[3..5]
            .iter()
            .map(|i| i.data_interval)
            .collect::<Vec<_>>()
    );
    // The London days, in UTC: 03-29 is 23 hours long (the clocks go forward at 01:00).
    assert_eq!(
        intervals(&second),
        vec![
            DataInterval::new(ts("2026-03-29T00:00:00Z"), ts("2026-03-29T23:00:00Z")),
            DataInterval::new(ts("2026-03-29T23:00:00Z"), ts("2026-03-30T23:00:00Z")),
        ]
    );
    assert_eq!(
        second[0]
            .interval_end
            .duration_since(second[0].interval_start),
        jiff::SignedDuration::from_hours(23)
    );
    // 03-31 is not over yet.
    run_queued(&w).await;
    assert!(scheduler.create_due_runs(now).await.unwrap().is_empty());
    let later = ts("2026-03-31T23:00:00Z");
    let third = scheduler.create_due_runs(later).await.unwrap();
    assert_eq!(
        intervals(&third),
        vec![DataInterval::new(
            ts("2026-03-30T23:00:00Z"),
            ts("2026-03-31T23:00:00Z")
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn without_catchup_only_the_latest_complete_day_runs() {
    let w = World::new([daily("no_catchup", false, 16)]).await;
    let scheduler = Scheduler::new(w.ex.clone());
    let now = ts("2026-03-31T09:00:00Z");

    let runs = scheduler.create_due_runs(now).await.unwrap();
    assert_eq!(
        intervals(&runs),
        vec![DataInterval::new(
            ts("2026-03-29T23:00:00Z"),
            ts("2026-03-30T23:00:00Z")
        )]
    );
    assert!(scheduler.create_due_runs(now).await.unwrap().is_empty());
    // The next day's run once it is over, not before.
    assert!(
        scheduler
            .create_due_runs(ts("2026-03-31T22:59:59Z"))
            .await
            .unwrap()
            .is_empty()
    );
    let next = scheduler
        .create_due_runs(ts("2026-03-31T23:00:00Z"))
        .await
        .unwrap();
    assert_eq!(
        intervals(&next),
        vec![DataInterval::new(
            ts("2026-03-30T23:00:00Z"),
            ts("2026-03-31T23:00:00Z")
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn nothing_is_due_before_the_start_date_or_its_first_day_ends() {
    let w = World::new([daily("not_yet", true, 16)]).await;
    let scheduler = Scheduler::new(w.ex.clone());
    for now in [
        "2026-03-20T12:00:00Z",
        "2026-03-26T00:00:00Z",
        "2026-03-26T23:59:59Z",
    ] {
        assert!(
            scheduler.create_due_runs(ts(now)).await.unwrap().is_empty(),
            "{now}"
        );
    }
    let first = scheduler
        .create_due_runs(ts("2026-03-27T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(
        intervals(&first),
        vec![DataInterval::new(
            ts("2026-03-26T00:00:00Z"),
            ts("2026-03-27T00:00:00Z")
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn triggering_the_same_logical_date_twice_reruns_the_interval() {
    let calls = Calls::new();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (c, s) = (calls.clone(), seen.clone());
    let dag = DagDef::builder("manual")
        .param(ParamSpec::text("note", "a note the task records"))
        .schedule(window_schedule("@daily", london()).unwrap())
        .start_date(ts("2026-03-01T00:00:00Z"))
        .task(Task::new("load").run(move |ctx| {
            c.hit();
            s.lock()
                .unwrap()
                .push(ctx.param_opt::<String>("note").unwrap());
            async move { Ok(json!(ctx.data_interval.start.to_string())) }
        }))
        .build()
        .unwrap();
    let w = World::new([dag]).await;
    let dag_id = DagId::new("manual").unwrap();
    // An instant in the middle of the London day 2026-03-30 (BST).
    let at: Timestamp = ts("2026-03-30T12:34:00Z");
    let request = |note: &str| TriggerRequest {
        dag_id: dag_id.clone(),
        logical_date: Some(at),
        conf: json!({"note": note}),
    };

    let first = trigger_run(&w.ex, request("first")).await.unwrap();
    assert_eq!(first.kind, RunKind::Manual);
    assert_eq!(
        (first.interval_start, first.interval_end),
        (ts("2026-03-29T23:00:00Z"), ts("2026-03-30T23:00:00Z")),
        "the London day that contains the instant"
    );
    // Still queued: a second trigger hands back the same unfinished run, untouched (its conf
    // is the first's), for `take_over` to finish; it neither duplicates nor resets it.
    let again = trigger_run(&w.ex, request("too soon")).await.unwrap();
    assert_eq!(again.run_id, first.run_id);
    assert_eq!(again.state, RunState::Queued);
    assert_eq!(again.conf, json!({"note": "first"}));
    let outcome = w.ex.run(&first.dag_id, &first.run_id).await.unwrap();
    assert_eq!(outcome.state, RunState::Success);

    let second = trigger_run(&w.ex, request("second")).await.unwrap();
    assert_eq!(second.run_id, first.run_id, "the same run, not a duplicate");
    assert_eq!(second.state, RunState::Queued);
    assert_eq!(second.conf, json!({"note": "second"}));
    assert!(
        w.tis(&second).await.is_empty(),
        "its task instances were cleared"
    );
    let outcome = w.ex.run(&second.dag_id, &second.run_id).await.unwrap();
    assert_eq!(outcome.state, RunState::Success);

    let all = w
        .store
        .list_runs(&RunFilter {
            dag_id: Some(dag_id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(calls.get(), 2, "the task ran once per trigger");
    assert_eq!(
        *seen.lock().unwrap(),
        vec![Some("first".to_owned()), Some("second".to_owned())]
    );
    assert_eq!(
        w.outputs(&second, "load").await,
        vec![(-1, json!("2026-03-29T23:00:00Z"))]
    );
}
