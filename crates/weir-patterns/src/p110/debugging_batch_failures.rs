//! 110.9.2 Debugging batch failures — `110_09_02_debugging_batch_failures`.
//!
//! A daily pipeline with a data bug to find: `customer_spend` refuses a day holding an order
//! with a negative amount (refunds must be their own rows), and `publish` then does not run.
//!
//! What it demonstrates:
//! - **Error log analysis**: every try's events are in its own log (`weir tasks logs RUN TASK
//!   --try N`); `weir tasks errors --dag 110_09_02_debugging_batch_failures` groups the failed
//!   tries of the last runs by error class — numbers, quoted values and paths taken out — so
//!   "the same bug on three days" is one line with its count, tasks and runs.
//! - **Failed record identification**: `customer_spend` names the order and its amount; the
//!   load's malformed rows are dead letters with their file and line (`weir dlq list --dag DAG
//!   --run RUN`, `weir dlq show ID`).
//! - **Root cause analysis**: `weir runs diagnose RUN` names the first task that failed on its
//!   own (not because an upstream did), its error, class and log, the outputs its upstreams
//!   handed it (here: the load's partitions and counts), what did not run because of it, and
//!   the run's dead letters.
//! - **Recovery procedures**: the diagnosis ends with the commands, in order: read the log,
//!   look at the dead letters, fix the source, clear the failed part (`weir tasks clear RUN load
//!   --downstream` when the bad data came in with the load, `--failed-only` when the failure was
//!   the task's own), replay corrected dead letters.
//!
//! Run it: `weir dags run 110_09_02_debugging_batch_failures --logical-date 2026-03-05`, then
//! `weir runs diagnose RUN`.

use std::collections::BTreeMap;

use arrow::array::{Array, Decimal128Array, Int64Array};
use serde_json::{Value, json};
use weir_core::timetable::{parse_zone, window_schedule};
use weir_data::partitioners::Granularity;
use weir_data::{DataError, Dataset, PartitionKey};
use weir_ops::load::{window_param_specs, window_params};
use weir_ops::{LoadWindow, blocking};
use weir_runtime::{DagDef, Task, TaskContext, TaskError};

pub const DAG_ID: &str = "110_09_02_debugging_batch_failures";
pub const ZONE: &str = "America/New_York";

pub fn dag() -> DagDef {
    let tz = parse_zone(ZONE).expect("a known zone");
    DagDef::builder(DAG_ID)
        .description(
            "A daily pipeline with a data bug to debug: logs, error classes, root cause, recovery",
        )
        .tags(["110.9", "debugging", "intermediate"])
        .schedule(window_schedule("@daily", tz.clone()).expect("a valid schedule"))
        .start_date(
            jiff::civil::date(2026, 3, 1)
                .to_zoned(tz)
                .expect("valid")
                .timestamp(),
        )
        .params(window_param_specs())
        .task(weir_ops::task(
            "load",
            LoadWindow::by_date(Granularity::Day),
        ))
        .task(
            Task::new("customer_spend")
                .after(["load"])
                .doc("Spend per customer of the day; refuses a negative amount")
                .run(customer_spend),
        )
        .task(
            Task::new("publish")
                .after(["customer_spend"])
                .doc("The day's top customers")
                .run(publish),
        )
        .build()
        .expect("a valid DAG")
}

async fn customer_spend(ctx: TaskContext) -> Result<Value, TaskError> {
    let _loaded: Value = ctx.input("load").await?;
    let p = window_params(&ctx).await?;
    let ds = ctx
        .logical_date
        .to_zoned(ctx.zone.clone())
        .date()
        .to_string();
    let (output, day) = (p.output.clone(), ds.clone());
    let spend = blocking(move || {
        let dataset = Dataset::open(&output)?;
        let batches = dataset.read_partition(&PartitionKey::new([("dt".to_owned(), day)])?)?;
        let mut spend: BTreeMap<i64, i128> = BTreeMap::new();
        for b in &batches {
            let column = |name: &str| {
                b.column_by_name(name)
                    .ok_or_else(|| DataError::Internal(format!("the day has no {name} column")))
            };
            let ids = column("order_id")?;
            let customers = column("customer_id")?;
            let amounts = column("amount")?;
            let (Some(ids), Some(customers), Some(amounts)) = (
                ids.as_any().downcast_ref::<Int64Array>(),
                customers.as_any().downcast_ref::<Int64Array>(),
                amounts.as_any().downcast_ref::<Decimal128Array>(),
            ) else {
                return Err(DataError::Internal(
                    "order_id, customer_id and amount must be int, int and decimal".into(),
                ));
            };
            for i in 0..b.num_rows() {
                if amounts.is_null(i) {
                    continue;
                }
                let cents = amounts.value(i);
                if cents < 0 {
                    return Ok(Err(format!(
                        "order {} has a negative amount {} on {}: refunds must be their own rows (status refunded); fix the source and clear the load",
                        ids.value(i),
                        amounts.value_as_string(i),
                        ds
                    )));
                }
                *spend.entry(customers.value(i)).or_default() += cents;
            }
        }
        Ok(Ok(spend))
    })
    .await?
    .map_err(TaskError::fatal)?;
    let mut top: Vec<(i64, i128)> = spend.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(json!({
        "customers": top.len(),
        "top": top.iter().take(5).map(|(c, cents)| json!({"customer_id": c, "cents": *cents as i64})).collect::<Vec<_>>(),
    }))
}

async fn publish(ctx: TaskContext) -> Result<Value, TaskError> {
    let spend: Value = ctx.input("customer_spend").await?;
    Ok(json!({ "published": spend["top"] }))
}
