//! 110.4.2 Batch retry strategies — `110_04_02_batch_retry_strategies`.
//!
//! What it demonstrates:
//! - **Configure batch-level retries**: the day's load is one batch with `retries(4)`: five
//!   tries in all. A try fails *retryably* while the day's source file has not arrived (an
//!   upstream export that is late), and for good on an error no retry can fix.
//! - **Implement exponential backoff**: `retry_delay` 2 minutes, `backoff(2.0)`,
//!   `max_retry_delay` 10 minutes — Airflow's formula: try n waits at least 2·2^(n−1) minutes
//!   plus a deterministic jitter below that, capped at 10: about 2–4, 4–8, 8–10 and 10 minutes.
//! - **Handle retry exhaustion**: `dead_letter_on_exhaustion`: when the last try fails, the
//!   batch (run, task, interval, error) goes to the dead-letter queue, the day's partition is
//!   marked incomplete in its manifest (`weir data manifests`), and the task succeeds with a
//!   warning — the rest of the pipeline is not failed by one late file; `report` says the day
//!   is incomplete. `weir tasks clear RUN load` runs the batch again once the file is there.
//! - **Add retry notifications**: every retry, exhaustion, failure and success is appended as
//!   one JSON line to `HOME/notifications/110_04_02_batch_retry_strategies.jsonl` (a log-file
//!   notifier; a DAG file would add `[[notify]] webhook = "http://…"`), with the try, the error
//!   and, for a retry, when the next try starts.
//!
//! Run it: `weir dags run 110_04_02_batch_retry_strategies --logical-date 2026-03-05 --conf
//! source=PATH` (a missing PATH shows the retries; they wait 2 to 10 minutes each).

use std::sync::Arc;

use jiff::SignedDuration;
use serde_json::{Value, json};
use weir_core::TriggerRule;
use weir_core::timetable::{parse_zone, window_schedule};
use weir_data::partitioners::Granularity;
use weir_ops::load::window_param_specs;
use weir_ops::{LoadWindow, Operator};
use weir_runtime::{DagDef, LogFileNotifier, NotifyEvent, Task, TaskContext, TaskError};

pub const DAG_ID: &str = "110_04_02_batch_retry_strategies";
pub const ZONE: &str = "America/New_York";
/// The base delay before a retry.
pub const RETRY_DELAY: SignedDuration = SignedDuration::from_mins(2);
/// No retry waits longer.
pub const MAX_RETRY_DELAY: SignedDuration = SignedDuration::from_mins(10);
pub const RETRIES: u32 = 4;

pub fn dag() -> DagDef {
    let tz = parse_zone(ZONE).expect("a known zone");
    DagDef::builder(DAG_ID)
        .description("A late source retried with exponential backoff, dead-lettered when the tries run out, every step notified")
        .tags(["110.4", "error-handling", "intermediate"])
        .schedule(window_schedule("@daily", tz.clone()).expect("a valid schedule"))
        .start_date(
            jiff::civil::date(2026, 3, 1)
                .to_zoned(tz)
                .expect("valid")
                .timestamp(),
        )
        .params(window_param_specs())
        .notify(
            Arc::new(LogFileNotifier::new(
                "{home}/notifications/{dag_id}.jsonl",
            )),
            &[
                NotifyEvent::Retry,
                NotifyEvent::RetryExhausted,
                NotifyEvent::Failure,
                NotifyEvent::Success,
            ],
        )
        .task(
            Task::new("load")
                .retries(RETRIES)
                .retry_delay(RETRY_DELAY)
                .backoff(2.0)
                .max_retry_delay(MAX_RETRY_DELAY)
                .dead_letter_on_exhaustion()
                .on_dead_letter(|ctx, error| async move { day_load().mark_incomplete(ctx, error).await })
                .doc("Load the day once its source has arrived; retried with backoff, dead-lettered when the tries run out")
                .run(load),
        )
        .task(
            Task::new("report")
                .after(["load"])
                .trigger_rule(TriggerRule::AllDone)
                .doc("Say whether the day is complete")
                .run(report),
        )
        .build()
        .expect("a valid DAG")
}

fn day_load() -> LoadWindow {
    LoadWindow::by_date(Granularity::Day)
}

/// The day's load, once its source is there: until then each try fails retryably.
async fn load(ctx: TaskContext) -> Result<Value, TaskError> {
    if let Some(source) = ctx.param_opt::<std::path::PathBuf>("source")? {
        let source = weir_ops::expand_path(&ctx, &source);
        if !source.exists() {
            return Err(TaskError::retryable(format!(
                "the day's source {} has not arrived yet (try {} of {})",
                source.display(),
                ctx.try_number,
                ctx.max_tries
            )));
        }
    }
    day_load().execute(ctx).await
}

async fn report(ctx: TaskContext) -> Result<Value, TaskError> {
    let load: Value = ctx.input("load").await?;
    if load["dead_lettered"] == true {
        return Ok(json!({
            "complete": false,
            "why": load["error"],
            "tries": load["tries"],
            "incomplete_partitions": load["incomplete"]["partitions"],
        }));
    }
    Ok(json!({
        "complete": true,
        "rows": load["rows"],
        "partitions": load["partitions"],
    }))
}
