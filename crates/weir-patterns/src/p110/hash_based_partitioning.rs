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
//!   `order_id`, `customer_id` and `region` where present) by distinct values and bucket balance,
//!   one `sql` query per key over the source: `hash_bucket(key, $partitions)` names the bucket
//!   the layout would use, before anything is written;
//!   a low-cardinality key such as `region` cannot fill 8 buckets and is flagged, and the run
//!   refuses a key whose balance exceeds `--conf max_skew` (default 3.0).
//! - **Implement consistent hashing**: buckets come from jump consistent hashing, so growing from
//!   N to N+1 buckets moves only about 1/(N+1) of the keys (see the weir-data property test).
//!
//! Run it: `weir dags run 110_02_03_hash_based_partitioning --conf partitions=8`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weir_core::ParamSpec;
use weir_data::partitioners::balance;
use weir_data::{DataError, ReadOptions, open_source};
use weir_ops::{Layout, Loaded, Operator, Partition, Sql, SqlResult, identifier};
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

/// How one candidate key would spread over the buckets.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyScore {
    key: String,
    distinct: u64,
    /// Fullest bucket over the mean (1.0 is perfect).
    balance: f64,
    rows_per_bucket: Vec<u64>,
    /// At least ten distinct values per bucket.
    enough_distinct: bool,
}

/// One bucket of a candidate, as the query counts it.
#[derive(Debug, Deserialize)]
struct BucketRows {
    bucket: usize,
    rows: u64,
    distinct_values: u64,
}

async fn assess_keys(ctx: TaskContext) -> Result<Value, TaskError> {
    let p = window_params(&ctx).await?;
    let chosen: String = ctx.param("key")?;
    let n: u32 = ctx.param("partitions")?;
    let max_skew: f64 = ctx.param("max_skew")?;
    let (source, key) = (p.source.clone(), chosen.clone());
    let candidates = blocking(move || {
        let schema = open_source(&source, &ReadOptions::default())?.schema();
        if schema.field_with_name(&key).is_err() {
            return Err(DataError::MissingColumn {
                column: key.clone(),
                place: source.display().to_string(),
                available: schema.fields().iter().map(|f| f.name().clone()).collect(),
            });
        }
        let mut candidates = vec![key.clone()];
        for c in ["order_id", "customer_id", "region"] {
            if c != key && schema.field_with_name(c).is_ok() {
                candidates.push(c.to_owned());
            }
        }
        Ok(candidates)
    })
    .await?;
    let mut scores = Vec::new();
    for candidate in candidates {
        // A key lands in exactly one bucket, so the buckets' distinct counts add up to the key's.
        let column = identifier("key", &candidate)?;
        let mut query = Sql::new(format!(
            "SELECT hash_bucket({column}, $partitions) AS bucket, count(*) AS rows, \
                    count(DISTINCT {column}) AS distinct_values \
             FROM src GROUP BY bucket ORDER BY bucket"
        ))
        .source("src", &p.source, None);
        query.result = SqlResult::Rows { max_rows: 4096 };
        let buckets: Vec<BucketRows> = serde_json::from_value(query.execute(ctx.clone()).await?)
            .map_err(|e| TaskError::fatal(format!("the bucket counts: {e}")))?;
        let mut rows_per_bucket = vec![0u64; n as usize];
        for b in &buckets {
            rows_per_bucket[b.bucket] = b.rows;
        }
        let distinct: u64 = buckets.iter().map(|b| b.distinct_values).sum();
        scores.push(KeyScore {
            key: candidate,
            distinct,
            balance: balance(&rows_per_bucket),
            rows_per_bucket,
            enough_distinct: distinct >= 10 * u64::from(n),
        });
    }
    let chosen_score = &scores[0];
    if chosen_score.balance > max_skew {
        return Err(TaskError::fatal(format!(
            "key `{}` spreads rows badly over {n} buckets (max/mean {:.2} > max_skew {max_skew}); pick a key with more distinct values, see {}",
            chosen_score.key,
            chosen_score.balance,
            json!(scores)
        )));
    }
    Ok(json!({"chosen": chosen_score.key, "candidates": scores}))
}

/// The whole source in `bucket=NN` partitions: the `partition` operator with a hash layout
/// (re-running with fewer buckets retires the extra ones), plus the balance it achieved.
async fn write_buckets(ctx: TaskContext) -> Result<Value, TaskError> {
    let key: String = ctx.param("key")?;
    let n: u32 = ctx.param("partitions")?;
    let layout = Partition::new(Layout::Hash { key, buckets: n });
    let mut out = layout.execute(ctx).await?;
    let loaded: Loaded = serde_json::from_value(out.clone())
        .map_err(|e| TaskError::fatal(format!("the partition output: {e}")))?;
    let rows: Vec<u64> = loaded.partitions.iter().map(|p| p.rows).collect();
    out["buckets"] = json!(n);
    out["balance_max_over_mean"] = json!(balance(&rows));
    Ok(out)
}
