//! Backfill over a week: the dry-run plan, reprocess none / failed / completed, and the
//! backfill's own `max_active_runs`.

use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::json;
use weir_core::ids::RunKind;
use weir_core::timetable::window_schedule;
use weir_core::{DagId, RunState};
use weir_runtime::{
    BackfillEvent, BackfillOptions, DagDef, PlanAction, Reprocess, Task, TaskError, backfill,
    plan_backfill,
};
use weir_store::RunFilter;

use crate::support::{Calls, Gauge, World, secs, ts};

/// A daily UTC DAG whose `load` takes an hour and fails for the logical date in `broken`.
struct Week {
    w: World,
    dag: DagId,
    broken: Arc<Mutex<Option<Timestamp>>>,
    runs_at_once: Arc<Gauge>,
    calls: Arc<Calls>,
}

fn day(n: u32) -> Timestamp {
    ts(&format!("2026-03-{n:02}T00:00:00Z"))
}

async fn week() -> Week {
    let broken = Arc::new(Mutex::new(Some(day(4))));
    let runs_at_once = Gauge::new();
    let calls = Calls::new();
    let (b, g, c) = (broken.clone(), runs_at_once.clone(), calls.clone());
    let dag = DagDef::builder("daily_load")
        .schedule(window_schedule("@daily", TimeZone::UTC).unwrap())
        .start_date(day(1))
        .max_active_runs(4)
        .task(Task::new("load").run(move |ctx| {
            let (broken, gauge) = (*b.lock().unwrap(), g.clone());
            c.hit();
            async move {
                let _running = gauge.enter();
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                if broken == Some(ctx.logical_date) {
                    return Err(TaskError::fatal(format!(
                        "source for {} is corrupt",
                        ctx.logical_date
                    )));
                }
                Ok(json!(ctx.logical_date.to_string()))
            }
        }))
        .build()
        .unwrap();
    Week {
        w: World::new([dag]).await,
        dag: DagId::new("daily_load").unwrap(),
        broken,
        runs_at_once,
        calls,
    }
}

fn opts(reprocess: Reprocess, max_active_runs: Option<u32>) -> BackfillOptions {
    BackfillOptions {
        from: day(2),
        to: day(8),
        reprocess,
        max_active_runs,
        conf: json!({}),
        queue: None,
    }
}

fn actions(plan: &weir_runtime::BackfillPlan) -> Vec<PlanAction> {
    plan.entries.iter().map(|e| e.action.clone()).collect()
}

#[tokio::test(start_paused = true)]
async fn the_dry_run_plan_lists_each_day_of_the_range_and_creates_nothing() {
    let wk = week().await;
    let plan = plan_backfill(&wk.w.ex, &wk.dag, &opts(Reprocess::None, None))
        .await
        .unwrap();

    assert_eq!(plan.dag_id, wk.dag);
    assert_eq!(plan.entries.len(), 7, "03-02 ..= 03-08");
    for (entry, n) in plan.entries.iter().zip(2..) {
        assert_eq!(entry.logical_date, day(n));
        assert_eq!(entry.interval_start, day(n));
        assert_eq!(entry.interval_end, day(n + 1));
        assert_eq!(entry.existing, None);
        assert_eq!(entry.action, PlanAction::Create);
    }
    let runs = wk.w.store.list_runs(&RunFilter::default()).await.unwrap();
    assert!(runs.is_empty(), "a plan is a dry run: {runs:?}");
    assert_eq!(wk.calls.get(), 0);
    // A reversed range is refused.
    let mut reversed = opts(Reprocess::None, None);
    std::mem::swap(&mut reversed.from, &mut reversed.to);
    let err = plan_backfill(&wk.w.ex, &wk.dag, &reversed)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_backfill_runs_the_week_at_most_max_active_runs_at_a_time() {
    let wk = week().await;
    let mut events = Vec::new();
    let report = backfill(
        wk.w.ex.clone(),
        &wk.dag,
        &opts(Reprocess::None, Some(2)),
        |e| events.push(e.clone()),
    )
    .await
    .unwrap();

    assert_eq!(report.runs.len(), 7);
    assert_eq!(report.skipped, 0);
    assert_eq!(report.count(RunState::Success), 6);
    assert_eq!(report.count(RunState::Failed), 1);
    let failed: Vec<_> = report
        .runs
        .iter()
        .filter(|(_, s)| *s == RunState::Failed)
        .map(|(r, _)| r.logical_date)
        .collect();
    assert_eq!(failed, vec![day(4)]);
    assert_eq!(wk.runs_at_once.max(), 2, "the backfill's max_active_runs");
    // Seven one-hour runs, two at a time: four waves.
    let last_end = report.runs.iter().filter_map(|(r, _)| r.ended_at).max();
    assert_eq!(last_end, Some(crate::support::t0() + secs(4 * 3600)));
    assert!(matches!(events[0], BackfillEvent::Started { runs: 7 }));
    assert_eq!(events.len(), 8);
    let runs = wk.w.store.list_runs(&RunFilter::default()).await.unwrap();
    assert_eq!(runs.len(), 7);
    assert!(runs.iter().all(|r| r.kind == RunKind::Backfill));
    assert!(
        runs.iter()
            .all(|r| r.run_id.as_str().starts_with("backfill__"))
    );

    // Without a limit of its own the backfill uses the DAG's max_active_runs (4).
    let wk = week().await;
    backfill(
        wk.w.ex.clone(),
        &wk.dag,
        &opts(Reprocess::None, None),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(wk.runs_at_once.max(), 4);
}

#[tokio::test(start_paused = true)]
async fn reprocess_none_failed_and_completed_choose_which_runs_run_again() {
    let wk = week().await;
    backfill(
        wk.w.ex.clone(),
        &wk.dag,
        &opts(Reprocess::None, None),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(wk.calls.get(), 7);
    // The source is fixed.
    *wk.broken.lock().unwrap() = None;

    use PlanAction::{Rerun, Skip};
    let plan = |r| {
        let ex = wk.w.ex.clone();
        let dag = wk.dag.clone();
        async move { plan_backfill(&ex, &dag, &opts(r, None)).await.unwrap() }
    };
    assert_eq!(actions(&plan(Reprocess::None).await), vec![Skip; 7]);
    assert_eq!(
        actions(&plan(Reprocess::Failed).await),
        vec![Skip, Skip, Rerun, Skip, Skip, Skip, Skip]
    );
    assert_eq!(actions(&plan(Reprocess::Completed).await), vec![Rerun; 7]);
    let failed_plan = plan(Reprocess::Failed).await;
    assert_eq!(failed_plan.entries[2].existing, Some(RunState::Failed));
    assert_eq!(failed_plan.entries[0].existing, Some(RunState::Success));

    let none = backfill(
        wk.w.ex.clone(),
        &wk.dag,
        &opts(Reprocess::None, None),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!((none.runs.len(), none.skipped), (0, 7));
    assert_eq!(wk.calls.get(), 7, "nothing ran again");

    let failed = backfill(
        wk.w.ex.clone(),
        &wk.dag,
        &opts(Reprocess::Failed, None),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!((failed.runs.len(), failed.skipped), (1, 6));
    assert_eq!(failed.runs[0].0.logical_date, day(4));
    assert_eq!(failed.runs[0].1, RunState::Success);
    assert_eq!(wk.calls.get(), 8);
    let rerun = wk.w.store.run_at(&wk.dag, day(4)).await.unwrap().unwrap();
    assert_eq!(rerun.state, RunState::Success);
    assert_eq!(
        wk.w.outputs(&rerun, "load").await,
        vec![(-1, json!("2026-03-04T00:00:00Z"))]
    );

    let completed = backfill(
        wk.w.ex.clone(),
        &wk.dag,
        &opts(Reprocess::Completed, None),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!((completed.runs.len(), completed.skipped), (7, 0));
    assert_eq!(completed.count(RunState::Success), 7);
    assert_eq!(wk.calls.get(), 15);
    let runs = wk.w.store.list_runs(&RunFilter::default()).await.unwrap();
    assert_eq!(runs.len(), 7, "re-runs replace, never duplicate");
}
