//! 110.2.2 ID range partitioning — `110_02_02_id_range_partitioning`.
//!
//! What it demonstrates:
//! - **Partition data by ID ranges**: rows go to `range=NN` (zero-padded) by `--conf key`
//!   (default `customer_id`), each range an inclusive `[lo, hi]`.
//! - **Calculate range boundaries**: `plan_ranges` streams the key column and cuts equal-count
//!   quantiles (weir-data's `RangePlanBuilder`), written next to the partitions as
//!   `_range_plan.json` with each range's inclusive bounds and exact row count.
//! - **Plan in bounded memory**: the first pass keeps only a row count, the min and max, and a
//!   seeded reservoir sample of at most `--conf sample` keys (default 1,000,000, 8 MB), so memory
//!   does not grow with the source. When every key fits in the sample the plan is exact; when not,
//!   the boundaries come from the sample's quantiles and a second streaming pass (`RangeCounter`)
//!   counts each range's rows exactly, so the plan file's counts are always true counts.
//! - **Handle uneven distributions**: customer ids are heavily skewed (a few customers place most
//!   orders), so equal-width ranges would leave one range with most rows; quantile ranges stay
//!   balanced, and one key is never split across two ranges.
//! - **Implement range-based queries**: `write_range` is mapped over the ranges (one task instance
//!   per range, in parallel) and each reads only its range with the plan's predicate
//!   `lo <= key <= hi`; `check_ranges` verifies every row landed in exactly one range.
//!
//! Run it: `weir dags run 110_02_02_id_range_partitioning --conf partitions=8` (add
//! `--conf sample=100000` to cap the planning sample at 100,000 keys, 800 KB).

use jiff::tz::TimeZone;
use serde_json::{Value, json};
use weir_data::partitioners::{DEFAULT_SAMPLE_CAPACITY, RangeCounter, RangePlan, RangePlanBuilder};
use weir_data::{DataError, Dataset, PartitionKey, ReadOptions, open_source};
use weir_runtime::{DagDef, Task, TaskContext, TaskError};

use crate::common::{Loaded, blocking, record_commits, retire_others, window_params};

pub const DAG_ID: &str = "110_02_02_id_range_partitioning";
pub const PLAN_FILE: &str = "_range_plan.json";

pub fn dag() -> DagDef {
    DagDef::builder(DAG_ID)
        .description(
            "Equal-count id ranges from the key's real distribution, written range by range",
        )
        .tags(["110.2", "partitioning", "intermediate"])
        .max_active_tasks(4)
        .param("key", "customer_id")
        .param("partitions", 8)
        .param("sample", DEFAULT_SAMPLE_CAPACITY)
        .task(Task::new("plan_ranges").run(plan_ranges))
        .task(
            Task::new("write_range")
                .expand("plan_ranges")
                .retries(2)
                .run(write_range),
        )
        .task(
            Task::new("check_ranges")
                .after(["write_range"])
                .run(check_ranges),
        )
        .build()
        .expect("a valid DAG")
}

/// `range=NN`, zero-padded to the width of the largest index.
pub fn range_key(index: usize, count: usize) -> PartitionKey {
    let width = count.saturating_sub(1).to_string().len().max(2);
    PartitionKey::new([("range", format!("{index:0width$}"))]).expect("a valid key")
}

async fn plan_ranges(ctx: TaskContext) -> Result<Value, TaskError> {
    let p = window_params(&ctx, &TimeZone::UTC).await?;
    let key = ctx
        .param_str("key")
        .unwrap_or_else(|| "customer_id".to_owned());
    let partitions: usize = ctx.param_parse("partitions")?.unwrap_or(8);
    if partitions == 0 {
        return Err(TaskError::fatal("--conf partitions must be at least 1"));
    }
    let sample: usize = ctx
        .param_parse("sample")?
        .unwrap_or(DEFAULT_SAMPLE_CAPACITY);
    if sample == 0 {
        return Err(TaskError::fatal(
            "--conf sample must be at least 1 (keys kept to plan from; 1000000 is 8 MB)",
        ));
    }
    let (plan, sampled) = blocking(move || {
        // Pass 1: row count, min, max and a bounded sample of the keys, batch by batch.
        let mut builder = RangePlanBuilder::new(partitions, sample)?;
        let mut reader = open_source(&p.source, &ReadOptions::default())?;
        for batch in reader.by_ref() {
            builder.add_batch(&batch?, &key)?;
        }
        let sampled = !builder.is_exact();
        let mut plan = builder.finish();
        if sampled {
            // Pass 2: the sampled plan's counts are estimates; count every range's rows exactly.
            let mut counter = RangeCounter::new(&plan);
            let mut reader = open_source(&p.source, &ReadOptions::default())?;
            for batch in reader.by_ref() {
                counter.add_batch(&batch?, &key)?;
            }
            plan = counter.finish();
        }
        std::fs::create_dir_all(&p.output).map_err(|e| DataError::Io {
            action: "create",
            path: p.output.clone(),
            source: e,
        })?;
        let path = p.output.join(PLAN_FILE);
        let tmp = p.output.join(format!(".{PLAN_FILE}.tmp"));
        std::fs::write(&tmp, plan.to_json()).map_err(|e| DataError::Io {
            action: "write",
            path: tmp.clone(),
            source: e,
        })?;
        std::fs::rename(&tmp, &path).map_err(|e| DataError::Io {
            action: "write",
            path: path.clone(),
            source: e,
        })?;
        Ok((plan, sampled))
    })
    .await?;
    let count = plan.len();
    // One mapped instance per range: its index, bounds and expected rows (exact either way).
    Ok(Value::Array(
        plan.ranges()
            .iter()
            .enumerate()
            .map(|(i, r)| {
                json!({
                    "index": i,
                    "count": count,
                    "lo": r.lo,
                    "hi": r.hi,
                    "rows": r.rows,
                    "sampled": sampled,
                })
            })
            .collect(),
    ))
}

async fn write_range(ctx: TaskContext) -> Result<Value, TaskError> {
    let p = window_params(&ctx, &TimeZone::UTC).await?;
    let key = ctx
        .param_str("key")
        .unwrap_or_else(|| "customer_id".to_owned());
    let item = ctx
        .item
        .clone()
        .ok_or_else(|| TaskError::fatal("write_range runs mapped over the plan"))?;
    let index = item["index"].as_u64().unwrap_or(0) as usize;
    let count = item["count"].as_u64().unwrap_or(1) as usize;
    let plan_path = p.output.join(PLAN_FILE);
    let output = p.output.clone();
    let loaded = blocking(move || {
        let text = std::fs::read_to_string(&plan_path).map_err(|e| DataError::Io {
            action: "read",
            path: plan_path.clone(),
            source: e,
        })?;
        let plan = RangePlan::from_json(&text)?;
        let partition = range_key(index, count);
        let mut reader = open_source(&p.source, &ReadOptions::default())?;
        let dataset = Dataset::open(&output)?;
        let mut writer = dataset.writer(&partition, reader.schema(), p.write.clone())?;
        for batch in reader.by_ref() {
            let rows = plan.filter(&batch?, &key, index)?;
            writer.write(&rows)?;
        }
        let commit = writer.commit()?;
        Ok(Loaded {
            rows: commit.rows,
            commits: vec![commit],
            source_rejects: reader.rejects().len() as u64,
        })
    })
    .await?;
    record_commits(&ctx, &p.output, &loaded).await?;
    let expected = item["rows"].as_u64().unwrap_or(0);
    if loaded.rows != expected {
        return Err(TaskError::fatal(format!(
            "range {index} holds {} rows but the plan counted {expected}; the source changed during the run, run it again",
            loaded.rows
        )));
    }
    let mut out = loaded.to_json();
    out["lo"] = item["lo"].clone();
    out["hi"] = item["hi"].clone();
    Ok(out)
}

async fn check_ranges(ctx: TaskContext) -> Result<Value, TaskError> {
    let p = window_params(&ctx, &TimeZone::UTC).await?;
    let written = ctx.input("write_range").await?;
    let ranges = written.as_array().cloned().unwrap_or_default();
    let rows: Vec<u64> = ranges
        .iter()
        .map(|r| r["rows"].as_u64().unwrap_or(0))
        .collect();
    let total: u64 = rows.iter().sum();
    let commits = ranges
        .iter()
        .flat_map(|r| r["partitions"].as_array().cloned().unwrap_or_default())
        .map(|part| weir_data::CommitReport {
            partition: part["partition"].as_str().unwrap_or_default().to_owned(),
            rows: part["rows"].as_u64().unwrap_or(0),
            bytes: 0,
            files: 0,
            checksum: String::new(),
            schema: String::new(),
        })
        .collect::<Vec<_>>();
    let output = p.output.clone();
    let retired = blocking(move || retire_others(&output, &commits)).await?;
    let mean = total as f64 / rows.len().max(1) as f64;
    let max = rows.iter().copied().max().unwrap_or(0) as f64;
    Ok(json!({
        "ranges": rows.len(),
        "rows": total,
        "rows_per_range": rows,
        "balance_max_over_mean": if mean > 0.0 { max / mean } else { 0.0 },
        "retired_stale_partitions": retired,
    }))
}
