//! 110.2.3 Hash-based partitioning — `110_02_03_hash_based_partitioning`.
//!
//! What it demonstrates:
//! - **Distribute data using hash functions**: the `partition` operator (hash layout) puts rows
//!   in `bucket=NN` by a stable 64-bit hash
//!   (xxh64) of `--conf key` (default `customer_id`): the same key lands in the same bucket in
//!   every run and on every machine, so joins and lookups by key read one bucket.
//! - **Ensure even partition distribution**: the run reports each bucket's rows and the balance
//!   (max / mean).
//! - **Handle hash key selection**: `assess_keys` scores candidate keys (the chosen one plus
//!   `order_id`, `customer_id` and `region` where present) by distinct values and bucket balance;
//!   a low-cardinality key such as `region` cannot fill 8 buckets and is flagged, and the run
//!   refuses a key whose balance exceeds `--conf max_skew` (default 3.0).
//! - **Implement consistent hashing**: buckets come from jump consistent hashing, so growing from
//!   N to N+1 buckets moves only about 1/(N+1) of the keys (see the weir-data property test).
//!
//! Run it: `weir dags run 110_02_03_hash_based_partitioning --conf partitions=8`.

use std::collections::HashSet;

use arrow::array::Array;
use serde_json::{Value, json};
use weir_core::ParamSpec;
use weir_data::partitioners::{BucketScheme, HashPartitioner, balance};
use weir_data::{DataError, ReadOptions, open_source};
use weir_ops::{Layout, Loaded, Operator, Partition};
use weir_runtime::{DagDef, Task, TaskContext, TaskError};

use weir_ops::blocking;
use weir_ops::load::{window_param_specs, window_params};

pub const DAG_ID: &str = "110_02_03_hash_based_partitioning";

pub fn dag() -> DagDef {
    DagDef::builder(DAG_ID)
        .description("Stable, consistent hash buckets of a chosen key, with key selection checks")
        .tags(["110.2", "partitioning", "intermediate"])
        .params(window_param_specs())
        .param(ParamSpec::text("key", "column whose hash picks the bucket").default("customer_id"))
        .param(ParamSpec::integer("partitions", 1, MAX_BUCKETS, "number of buckets").default(8))
        .param(
            ParamSpec::number(
                "max_skew",
                1.0,
                1_000_000.0,
                "refuse a key whose fullest bucket holds more than this many times the mean",
            )
            .default(3.0),
        )
        .task(Task::new("assess_keys").run(assess_keys))
        .task(
            Task::new("write_buckets")
                .after(["assess_keys"])
                .retries(2)
                .run(write_buckets),
        )
        .build()
        .expect("a valid DAG")
}

pub use weir_data::partitioners::bucket_key;

/// The most buckets a run may ask for: every bucket is an open writer and a folder, so a typo
/// such as `partitions=100000000` is refused before the run starts rather than running for hours.
pub const MAX_BUCKETS: i64 = 4096;

async fn assess_keys(ctx: TaskContext) -> Result<Value, TaskError> {
    let p = window_params(&ctx).await?;
    let chosen: String = ctx.param("key")?;
    let n: u32 = ctx.param("partitions")?;
    let max_skew: f64 = ctx.param("max_skew")?;
    let scores = blocking(move || {
        let mut reader = open_source(&p.source, &ReadOptions::default())?;
        let schema = reader.schema();
        let mut candidates = vec![chosen.clone()];
        for c in ["order_id", "customer_id", "region"] {
            if c != chosen && schema.field_with_name(c).is_ok() {
                candidates.push(c.to_owned());
            }
        }
        if schema.field_with_name(&chosen).is_err() {
            return Err(DataError::MissingColumn {
                column: chosen.clone(),
                place: p.source.display().to_string(),
                available: schema.fields().iter().map(|f| f.name().clone()).collect(),
            });
        }
        let partitioners: Vec<HashPartitioner> = candidates
            .iter()
            .map(|c| HashPartitioner::new(c.clone(), n, BucketScheme::Jump))
            .collect::<Result<_, _>>()?;
        let mut counts = vec![vec![0u64; n as usize]; candidates.len()];
        let mut distinct: Vec<HashSet<String>> = vec![HashSet::new(); candidates.len()];
        for batch in reader.by_ref() {
            let batch = batch?;
            for (i, hp) in partitioners.iter().enumerate() {
                for (b, c) in hp.counts(&batch)?.into_iter().enumerate() {
                    counts[i][b] += c;
                }
                if distinct[i].len() <= 100_000 {
                    let col = batch.column_by_name(&candidates[i]).expect("checked above");
                    let text = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8)
                        .map_err(|e| DataError::arrow("reading a candidate key", e))?;
                    let text = text
                        .as_any()
                        .downcast_ref::<arrow::array::StringArray>()
                        .expect("Utf8");
                    for r in 0..text.len() {
                        if !text.is_null(r) {
                            distinct[i].insert(text.value(r).to_owned());
                        }
                    }
                }
            }
        }
        Ok(candidates
            .iter()
            .enumerate()
            .map(|(i, c)| {
                json!({
                    "key": c,
                    "distinct": distinct[i].len(),
                    "balance": balance(&counts[i]),
                    "rows_per_bucket": counts[i],
                    "enough_distinct": distinct[i].len() >= 10 * n as usize,
                })
            })
            .collect::<Vec<_>>())
    })
    .await?;
    let chosen_balance = scores[0]["balance"].as_f64().unwrap_or(f64::INFINITY);
    if chosen_balance > max_skew {
        return Err(TaskError::fatal(format!(
            "key `{}` spreads rows badly over {n} buckets (max/mean {chosen_balance:.2} > max_skew {max_skew}); pick a key with more distinct values, see {}",
            scores[0]["key"].as_str().unwrap_or_default(),
            Value::Array(scores.clone())
        )));
    }
    Ok(json!({"chosen": scores[0]["key"], "candidates": scores}))
}

/// The whole source in `bucket=NN` partitions: the `partition` operator with a hash layout
/// (re-running with fewer buckets retires the extra ones), plus the balance it achieved.
async fn write_buckets(ctx: TaskContext) -> Result<Value, TaskError> {
    let key: String = ctx.param("key")?;
    let n: u32 = ctx.param("partitions")?;
    let layout = Partition {
        layout: Layout::Hash { key, buckets: n },
    };
    let mut out = layout.execute(ctx).await?;
    let loaded: Loaded = serde_json::from_value(out.clone())
        .map_err(|e| TaskError::fatal(format!("the partition output: {e}")))?;
    let rows: Vec<u64> = loaded.partitions.iter().map(|p| p.rows).collect();
    out["buckets"] = json!(n);
    out["balance_max_over_mean"] = json!(balance(&rows));
    Ok(out)
}
