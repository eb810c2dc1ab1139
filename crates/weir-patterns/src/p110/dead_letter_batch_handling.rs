//! 110.4.3 Dead letter batch handling — `110_04_03_dead_letter_batch_handling`, with its DLQ
//! processing DAG `110_04_03_dead_letter_batch_handling_dlq`.
//!
//! What it demonstrates:
//! - **Route failed batches to DLQ**: the day's orders are delivered per region (as in
//!   110.4.1), but a region batch that fails is not left failed: `dead_letter_on_exhaustion`
//!   sends it to the dead-letter queue and the run goes on. Malformed source rows go there too,
//!   one dead letter per source line.
//! - **Preserve batch context and errors**: a batch dead letter keeps its run, task, map index,
//!   item (the region), data interval, try and error; a record keeps its file, line, raw text
//!   and reason (`weir dlq show ID`). `report` counts both kinds for the run.
//! - **Implement DLQ processing DAG**: `110_04_03_dead_letter_batch_handling_dlq` (hourly) runs
//!   the `replay_dead_letters` operator over this DAG's queue, and reports what stays
//!   quarantined.
//! - **Handle DLQ reprocessing**: a record is fed through the load's own transform again — as
//!   corrected (`weir dlq edit`), else as read — and added to its partition in one atomic commit,
//!   never twice; a batch is cleared and run again (with what depends on it) and is done when it
//!   succeeds without being dead-lettered again. What fails again counts a replay; after three
//!   it is quarantined and left alone until someone corrects it.
//!
//! Run it: `weir dags run 110_04_03_dead_letter_batch_handling --logical-date 2026-03-05`,
//! then `weir dags run 110_04_03_dead_letter_batch_handling_dlq`.

use serde_json::{Value, json};
use weir_core::timetable::{parse_zone, window_schedule};
use weir_core::{ParamSpec, TriggerRule};
use weir_data::partitioners::Granularity;
use weir_ops::dlq::ReplayDeadLetters;
use weir_ops::load::window_param_specs;
use weir_ops::{LoadWindow, Sql};
use weir_runtime::{DagDef, Task, TaskContext, TaskError};
use weir_store::{DeadLetterStatus, RejectFilter};

use super::partial_batch_failure_handling::deliver;

pub const DAG_ID: &str = "110_04_03_dead_letter_batch_handling";
pub const DLQ_DAG_ID: &str = "110_04_03_dead_letter_batch_handling_dlq";
pub const ZONE: &str = "America/New_York";
/// Replays a dead letter may fail before it is quarantined.
pub const MAX_REPLAYS: u32 = 3;

pub fn dag() -> DagDef {
    let tz = parse_zone(ZONE).expect("a known zone");
    DagDef::builder(DAG_ID)
        .description("Failed region batches and malformed rows go to the dead-letter queue; the run goes on")
        .tags(["110.4", "error-handling", "dead-letter", "intermediate"])
        .schedule(window_schedule("@daily", tz.clone()).expect("a valid schedule"))
        .start_date(
            jiff::civil::date(2026, 3, 1)
                .to_zoned(tz)
                .expect("valid")
                .timestamp(),
        )
        .params(window_param_specs())
        .param(ParamSpec::path(
            "targets",
            "folder of per-region targets (default HOME/targets/DAG_ID); a missing REGION folder is a region that is down",
        ))
        .task(weir_ops::task("load", LoadWindow::by_date(Granularity::Day)))
        .task(
            weir_ops::task(
                "regions",
                Sql::new(
                    "SELECT DISTINCT arrow_cast(region, 'Utf8') AS region FROM orders WHERE dt = $ds ORDER BY region",
                )
                .input("orders", "load"),
            )
            .after(["load"]),
        )
        .task(
            Task::new("deliver")
                .expand("regions")
                .dead_letter_on_exhaustion()
                .doc("One region's orders to its target; a failed batch goes to the dead-letter queue")
                .run(deliver),
        )
        .task(
            Task::new("report")
                .after(["deliver"])
                .trigger_rule(TriggerRule::AllDone)
                .doc("The run's dead letters, by kind")
                .run(report),
        )
        .build()
        .expect("a valid DAG")
}

/// The DLQ processing DAG.
pub fn dlq_dag() -> DagDef {
    let tz = parse_zone(ZONE).expect("a known zone");
    DagDef::builder(DLQ_DAG_ID)
        .description("Replay the dead letters of 110_04_03_dead_letter_batch_handling; report what stays quarantined")
        .tags(["110.4", "error-handling", "dead-letter", "intermediate"])
        .schedule(window_schedule("@hourly", tz.clone()).expect("a valid schedule"))
        .start_date(
            jiff::civil::date(2026, 3, 1)
                .to_zoned(tz)
                .expect("valid")
                .timestamp(),
        )
        .max_active_runs(1)
        .task(weir_ops::task(
            "replay",
            ReplayDeadLetters {
                dag: DAG_ID.to_owned(),
                run: None,
                max_replays: Some(MAX_REPLAYS),
                limit: None,
            },
        ))
        .task(
            Task::new("quarantine")
                .after(["replay"])
                .doc("What replays gave up on: correct it with weir dlq edit")
                .run(quarantine),
        )
        .build()
        .expect("a valid DAG")
}

async fn report(ctx: TaskContext) -> Result<Value, TaskError> {
    let letters = ctx
        .store()
        .dead_letters(&RejectFilter {
            dag_id: Some(ctx.dag_id.to_string()),
            run_id: Some(ctx.run_id.to_string()),
            ..Default::default()
        })
        .await
        .map_err(|e| TaskError::from(e).context("reading the dead letters"))?;
    let batches: Vec<Value> = letters
        .iter()
        .filter(|d| d.error_class == "batch")
        .map(|d| {
            let context: Value = serde_json::from_str(&d.raw).unwrap_or(Value::Null);
            json!({"id": d.id, "task": d.task_id, "map_index": d.map_index, "item": context["item"], "error": d.reason})
        })
        .collect();
    let records = letters.iter().filter(|d| d.error_class != "batch").count();
    Ok(json!({ "batches": batches, "records": records }))
}

async fn quarantine(ctx: TaskContext) -> Result<Value, TaskError> {
    let stuck = ctx
        .store()
        .dead_letters(&RejectFilter {
            dag_id: Some(DAG_ID.to_owned()),
            status: Some(DeadLetterStatus::Quarantined),
            ..Default::default()
        })
        .await
        .map_err(|e| TaskError::from(e).context("reading the dead letters"))?;
    if !stuck.is_empty() {
        tracing::warn!(
            "{} dead letters of {DAG_ID} are quarantined after {MAX_REPLAYS} failed replays; weir dlq list --dag {DAG_ID} --status quarantined",
            stuck.len()
        );
    }
    Ok(json!({
        "quarantined": stuck.iter().map(|d| json!({"id": d.id, "source": d.source, "line": d.line, "error": d.last_error})).collect::<Vec<_>>(),
    }))
}
