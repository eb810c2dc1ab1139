//! 110.4.5 Batch validation gates — `110_04_05_batch_validation_gates`.
//!
//! What it demonstrates:
//! - **Validate batches before processing**: an input gate on the source file, before a row is
//!   loaded: it is not empty, every order has an id, currencies look like ISO codes (`warn`).
//! - **Implement quality gates**: an output gate on the day's staged partition, before it is
//!   published: order ids unique, amounts within 0–100,000, regions from the known four, the
//!   newest order no older than 6 hours before the day ends (`warn`), the day's volume within
//!   ±50% of the last three days' (`warn`), and a custom SQL rule — no order ingested before it
//!   happened.
//! - **Handle validation failures**: an `error` check that fails fails the load and publishes
//!   nothing: the day's previous partition stays byte for byte as it was, and `summary` (which
//!   reads it) does not run. The failing rows (duplicate ids, out-of-range amounts) go to the
//!   dead-letter queue with the check's name. A `warn` check records and goes on.
//! - **Add validation metrics**: every check's result (rule, passed, failing count, sample) is
//!   kept per run (`weir checks list --run RUN`); `metrics` (run whatever happened) counts the
//!   checks run and failed, by gate and severity.
//!
//! Run it: `weir dags run 110_04_05_batch_validation_gates --logical-date 2026-03-05`, then
//! `weir checks list`.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use weir_core::TriggerRule;
use weir_core::timetable::{parse_zone, window_schedule};
use weir_data::partitioners::Granularity;
use weir_ops::check::{Check, Rule};
use weir_ops::load::window_param_specs;
use weir_ops::{LoadWindow, Sql};
use weir_runtime::{DagDef, Task, TaskContext, TaskError};
use weir_store::CheckFilter;

pub const DAG_ID: &str = "110_04_05_batch_validation_gates";
pub const ZONE: &str = "America/New_York";
pub const REGIONS: [&str; 4] = ["APAC", "EU", "LATAM", "NAM"];
/// The largest amount an order may have.
pub const MAX_AMOUNT: f64 = 100_000.0;

/// The load with both gates.
pub fn gated_load() -> LoadWindow {
    let mut load = LoadWindow::by_date(Granularity::Day);
    load.input_checks = vec![
        Check::new(Rule::RowCount {
            min: Some(1),
            max: None,
        })
        .named("source_not_empty"),
        Check::new(Rule::NotNull {
            column: "order_id".into(),
        }),
        Check::new(Rule::Regex {
            column: "currency".into(),
            pattern: "^[A-Z]{3}$".into(),
        })
        .named("currency_is_iso")
        .warn(),
    ];
    load.checks = vec![
        Check::new(Rule::Unique {
            columns: vec!["order_id".into()],
        })
        .to_dead_letters(),
        Check::new(Rule::Range {
            column: "amount".into(),
            min: Some(0.0),
            max: Some(MAX_AMOUNT),
        })
        .to_dead_letters(),
        Check::new(Rule::AcceptedValues {
            column: "region".into(),
            values: REGIONS.iter().map(|r| r.to_string()).collect(),
        }),
        Check::new(Rule::Freshness {
            column: "event_time".into(),
            max_age: "6h".into(),
        })
        .warn(),
        Check::new(Rule::RowCountChange {
            max_change_pct: 50.0,
            runs: 3,
        })
        .warn(),
        Check::new(Rule::Sql {
            query: "SELECT * FROM batch WHERE ingested_at < event_time".into(),
        })
        .named("ingested_after_it_happened"),
    ];
    load
}

pub fn dag() -> DagDef {
    let tz = parse_zone(ZONE).expect("a known zone");
    DagDef::builder(DAG_ID)
        .description("Gate the source before loading and the staged day before publishing; count every check")
        .tags(["110.4", "error-handling", "data-quality", "intermediate"])
        .schedule(window_schedule("@daily", tz.clone()).expect("a valid schedule"))
        .start_date(
            jiff::civil::date(2026, 3, 1)
                .to_zoned(tz)
                .expect("valid")
                .timestamp(),
        )
        .params(window_param_specs())
        .task(weir_ops::task("load", gated_load()).doc("Input gate, load, output gate, publish"))
        .task(
            weir_ops::task(
                "summary",
                Sql::new(
                    "SELECT arrow_cast(region, 'Utf8') AS region, count(*) AS orders FROM orders WHERE dt = $ds GROUP BY region ORDER BY region",
                )
                .input("orders", "load"),
            )
            .after(["load"])
            .doc("Per-region orders of the published day: only runs on a day that passed"),
        )
        .task(
            Task::new("metrics")
                .after(["load"])
                .trigger_rule(TriggerRule::AllDone)
                .doc("Checks run and failed this run, by gate and severity")
                .run(metrics),
        )
        .build()
        .expect("a valid DAG")
}

async fn metrics(ctx: TaskContext) -> Result<Value, TaskError> {
    let results = ctx
        .store()
        .checks(&CheckFilter {
            dag_id: Some(ctx.dag_id.to_string()),
            run_id: Some(ctx.run_id.to_string()),
            ..Default::default()
        })
        .await
        .map_err(|e| TaskError::from(e).context("reading the check results"))?;
    // This attempt's results: a re-run of the day adds its own to the earlier ones.
    let since = ctx
        .store()
        .task_instances(&ctx.dag_id, &ctx.run_id)
        .await
        .map_err(|e| TaskError::from(e).context("reading the load's instance"))?
        .into_iter()
        .find(|t| t.key.task_id.as_str() == "load")
        .and_then(|t| t.started_at);
    let results: Vec<_> = results
        .into_iter()
        .filter(|c| since.is_none_or(|at| c.checked_at >= at))
        .collect();
    let mut by: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for c in &results {
        let e = by
            .entry(format!(
                "{}/{}",
                serde_json::to_value(c.gate)
                    .unwrap_or_default()
                    .as_str()
                    .unwrap_or("?"),
                serde_json::to_value(c.severity)
                    .unwrap_or_default()
                    .as_str()
                    .unwrap_or("?")
            ))
            .or_default();
        e.0 += 1;
        if !c.passed {
            e.1 += 1;
        }
    }
    let failed: Vec<Value> = results
        .iter()
        .filter(|c| !c.passed)
        .map(|c| json!({"name": c.name, "failing": c.failing}))
        .collect();
    tracing::info!(
        checks_run = results.len(),
        checks_failed = failed.len(),
        "validation metrics"
    );
    Ok(json!({
        "checks_run": results.len(),
        "checks_failed": failed.len(),
        "by_gate_and_severity": by.iter().map(|(k, (run, failed))| (k.clone(), json!({"run": run, "failed": failed}))).collect::<serde_json::Map<_, _>>(),
        "failed": failed,
    }))
}
