//! 110.4.1 Partial batch failure handling — `110_04_01_partial_batch_failure_handling`.
//!
//! What it demonstrates:
//! - **Handle failures in batch subsets**: the day's orders are delivered to one target per
//!   region (`deliver` is mapped over the regions the day has, one task instance each), so a
//!   region whose target is down fails alone while the others deliver (retrying a batch is
//!   110.4.2's subject; here a failed batch waits for a selective retry).
//! - **Continue processing valid records**: `load` keeps every readable row and sets the
//!   malformed ones aside in the dead-letter queue, with file, line and reason; one bad line
//!   never fails the day.
//! - **Track failed record IDs**: the dead letters are the failed records (`weir dlq list --run
//!   RUN`: id, source line, reason); `report` names them and the failed region batches, and
//!   fails the run so the failure is seen (it runs whatever happened upstream: `all_done`).
//! - **Implement selective retry**: fix the target, then `weir tasks clear RUN deliver
//!   --failed-only --downstream` runs only the failed region's instance and the report again
//!   (the delivered regions keep their state and are not written twice); correct the failed
//!   records and `weir dlq replay --dag DAG --run RUN` re-processes only those ids into their
//!   partition.
//!
//! A region's target is the folder `targets/REGION` (`--conf targets=DIR`, default
//! `HOME/targets/DAG_ID`): `deliver` writes `REGION/dt=YYYY-MM-DD.csv` there by atomic rename
//! and fails (retryable) while the folder is missing — a warehouse that is down.
//!
//! Run it: `weir dags run 110_04_01_partial_batch_failure_handling --logical-date 2026-03-05`.

use std::path::PathBuf;

use arrow::array::{Array, BooleanArray, RecordBatch, StringArray};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weir_core::timetable::{parse_zone, window_schedule};
use weir_core::{ParamSpec, TriggerRule};
use weir_data::partitioners::Granularity;
use weir_data::{DataError, Dataset, PartitionKey};
use weir_ops::load::{window_param_specs, window_params};
use weir_ops::{LoadWindow, Sql, blocking};
use weir_runtime::{DagDef, Task, TaskContext, TaskError};

pub const DAG_ID: &str = "110_04_01_partial_batch_failure_handling";
pub const ZONE: &str = "America/New_York";

pub fn dag() -> DagDef {
    let tz = parse_zone(ZONE).expect("a known zone");
    DagDef::builder(DAG_ID)
        .description("Deliver each region's orders alone: one region down fails alone, and only it is retried")
        .tags(["110.4", "error-handling", "intermediate"])
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
        .task(
            weir_ops::task("load", LoadWindow::by_date(Granularity::Day))
                .doc("Stream the source, keep the day's readable rows, set malformed ones aside"),
        )
        .task(
            weir_ops::task(
                "regions",
                Sql::new(
                    "SELECT DISTINCT arrow_cast(region, 'Utf8') AS region FROM orders WHERE dt = $ds ORDER BY region",
                )
                .input("orders", "load"),
            )
            .after(["load"])
            .doc("The regions the day has: one delivery batch each"),
        )
        .task(
            Task::new("deliver")
                .expand("regions")
                .doc("Write one region's orders of the day to its target")
                .run(deliver),
        )
        .task(
            Task::new("report")
                .after(["regions", "deliver"])
                .trigger_rule(TriggerRule::AllDone)
                .doc("Name the failed region batches and the failed records; fail if any")
                .run(report),
        )
        .build()
        .expect("a valid DAG")
}

#[derive(Debug, Deserialize)]
pub struct RegionItem {
    pub region: String,
}

/// What one delivered region batch returns.
#[derive(Debug, Serialize, Deserialize)]
pub struct Delivered {
    pub region: String,
    pub rows: u64,
    pub file: PathBuf,
}

fn targets(ctx: &TaskContext) -> Result<PathBuf, TaskError> {
    Ok(match ctx.param_opt::<PathBuf>("targets")? {
        Some(dir) => weir_ops::expand_path(ctx, &dir),
        None => ctx.home().join("targets").join(ctx.dag_id.as_str()),
    })
}

/// One region's orders of the run's day, written to its target (`targets/REGION/dt=DAY.csv`);
/// fails (retryable) while the target folder is missing.
pub async fn deliver(ctx: TaskContext) -> Result<Value, TaskError> {
    let item: RegionItem = ctx.mapped_item()?;
    let p = window_params(&ctx).await?;
    let target = targets(&ctx)?.join(&item.region);
    if !target.is_dir() {
        return Err(TaskError::retryable(format!(
            "the {} target {} is not reachable (the folder does not exist); the other regions go on",
            item.region,
            target.display()
        )));
    }
    let ds = ctx
        .logical_date
        .to_zoned(ctx.zone.clone())
        .date()
        .to_string();
    let (output, region) = (p.output.clone(), item.region.clone());
    let file = target.join(format!("dt={ds}.csv"));
    let out = file.clone();
    let rows = blocking(move || {
        let dataset = Dataset::open(&output)?;
        let key = PartitionKey::new([("dt".to_owned(), ds)])?;
        let batches = dataset.read_partition(&key)?;
        let mut kept = Vec::new();
        for b in &batches {
            kept.push(of_region(b, &region)?);
        }
        write_csv_atomically(&out, &kept)
    })
    .await?;
    Ok(serde_json::to_value(Delivered {
        region: item.region,
        rows,
        file,
    })
    .expect("serializes"))
}

/// The rows of `batch` whose region is `region`.
fn of_region(batch: &RecordBatch, region: &str) -> Result<RecordBatch, DataError> {
    let column = batch
        .column_by_name("region")
        .ok_or_else(|| DataError::Internal("the day's partition has no region column".into()))?;
    let column = arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8)
        .map_err(|e| DataError::arrow("reading region", e))?;
    let values = column
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| DataError::Internal("region is not text".into()))?;
    let keep: BooleanArray = (0..values.len())
        .map(|i| Some(values.is_valid(i) && values.value(i) == region))
        .collect();
    arrow::compute::filter_record_batch(batch, &keep).map_err(|e| DataError::arrow("filtering", e))
}

/// Writes `batches` as one CSV file that appears whole or not at all.
fn write_csv_atomically(path: &std::path::Path, batches: &[RecordBatch]) -> Result<u64, DataError> {
    let tmp = path.with_extension("csv.tmp");
    let file = std::fs::File::create(&tmp).map_err(|e| DataError::io("create", &tmp, e))?;
    let mut writer = arrow::csv::WriterBuilder::new()
        .with_header(true)
        .build(file);
    let mut rows = 0;
    for b in batches {
        writer
            .write(b)
            .map_err(|e| DataError::arrow(format!("writing {}", tmp.display()), e))?;
        rows += b.num_rows() as u64;
    }
    let file = writer.into_inner();
    file.sync_all()
        .map_err(|e| DataError::io("fsync", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| DataError::io("rename", path, e))?;
    Ok(rows)
}

async fn report(ctx: TaskContext) -> Result<Value, TaskError> {
    let regions: Vec<RegionItem> = ctx.input("regions").await?;
    let delivered: Vec<Option<Delivered>> = ctx.input("deliver").await?;
    let letters = ctx
        .store()
        .dead_letters(&weir_store::RejectFilter {
            dag_id: Some(ctx.dag_id.to_string()),
            run_id: Some(ctx.run_id.to_string()),
            ..Default::default()
        })
        .await
        .map_err(|e| TaskError::from(e).context("reading the dead letters"))?;
    let failed_records: Vec<i64> = letters.iter().map(|d| d.id).collect();
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for (i, r) in regions.iter().enumerate() {
        match delivered.get(i).and_then(Option::as_ref) {
            Some(d) => ok.push(json!({"region": d.region, "rows": d.rows})),
            None => failed.push(json!({"region": r.region, "map_index": i})),
        }
    }
    let summary = json!({
        "delivered": ok,
        "failed_batches": failed,
        "failed_records": {"count": failed_records.len(), "ids": failed_records},
    });
    tracing::info!(%summary, "delivery report");
    if !failed.is_empty() {
        let names: Vec<&str> = failed.iter().filter_map(|f| f["region"].as_str()).collect();
        return Err(TaskError::fatal(format!(
            "{} of {} region batches failed ({}); the other {} delivered. Fix the target, then: weir tasks clear {} deliver --failed-only --downstream",
            failed.len(),
            regions.len(),
            names.join(", "),
            ok.len(),
            ctx.run_id
        )));
    }
    Ok(summary)
}
