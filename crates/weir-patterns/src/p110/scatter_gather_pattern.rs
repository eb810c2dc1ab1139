//! 110.3.3 Scatter-gather pattern — `110_03_03_scatter_gather_pattern`.
//!
//! A day of orders is scattered into `shards` hash shards of `order_id`, one mapped instance
//! each, which run wherever there is a free slot — on `weir worker`s of other hosts when the run
//! is handed to them (`--queue`); a gather task starts as soon as the first shard has
//! succeeded and folds each shard's result in as it arrives, instead of waiting for all.
//!
//! What it demonstrates:
//! - **Scatter work to multiple workers**: `scatter` plans the shards (`{shard, of}`), `work`
//!   maps over them in the `scatter_gather` pool (4 slots, counted across every process and
//!   host); each instance counts its shard of the run's data interval with
//!   `hash_bucket(order_id, of) = shard` — the shards are disjoint and together are the day.
//! - **Gather results asynchronously**: `gather` has the trigger rule `one_success`: it starts
//!   on the first shard's success, reads the shards' outputs from the store as they are
//!   committed (woken by the store's notifications on PostgreSQL, a short poll on SQLite),
//!   and records the order it folded them in (`arrivals`) and how many were still pending
//!   when it started (`pending_at_start`).
//! - **Handle worker failures**: a shard whose worker dies (`kill -9`; `--conf slow_shard=N`
//!   gives time to do it to shard N's) is handed to another
//!   worker once its lease runs out and counted once (the late worker's result is fenced
//!   off); a shard that fails for good (its retries spent) makes the gather fail, naming the
//!   shards that failed after folding the others — a partial total is never published as the
//!   day's.
//! - **Implement result aggregation**: per-region orders and exact revenue in cents, summed
//!   over the shards; the suite checks them against its own count of the source.
//!
//! Run it: `weir dags run 110_03_03_scatter_gather_pattern --logical-date 2026-03-08` (add
//! `--queue default` with `weir worker`s running); its suite: `cargo test -p weir-patterns
//! --test it scatter_gather`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weir_core::ParamSpec;
use weir_core::TaskState;
use weir_core::timetable::{parse_zone, window_schedule};
use weir_core::trigger::TriggerRule;
use weir_ops::load::{window_param_specs, window_params};
use weir_ops::{Operator, QueryParam, Sql};

use super::to_output;
use weir_runtime::{DagDef, Task, TaskContext, TaskError};

pub const DAG_ID: &str = "110_03_03_scatter_gather_pattern";
pub const ZONE: &str = "America/New_York";
/// The pool the shards run in (slots across every process and host).
pub const POOL: &str = "scatter_gather";
pub const POOL_SLOTS: u32 = 4;

pub fn dag() -> DagDef {
    let tz = parse_zone(ZONE).expect("a known zone");
    DagDef::builder(DAG_ID)
        .description("A day scattered into hash shards run anywhere, gathered as they arrive")
        .tags(["110.3", "parallel", "intermediate"])
        .schedule(window_schedule("@daily", tz.clone()).expect("a valid schedule"))
        .start_date(
            jiff::civil::date(2026, 3, 1)
                .to_zoned(tz)
                .expect("valid")
                .timestamp(),
        )
        .catchup(false)
        .params(window_param_specs())
        .param(
            ParamSpec::integer(
                "shards",
                1,
                256,
                "how many hash shards of order_id the day is scattered into",
            )
            .default(8),
        )
        .param(
            ParamSpec::text(
                "fail_shards",
                "shards to fail on purpose, e.g. `3,5` (a demonstration of a shard that cannot finish)",
            )
            .default(""),
        )
        .param(
            ParamSpec::integer(
                "slow_shard",
                -1,
                255,
                "a shard that takes 2 s longer (-1: none), to watch the gather fold the others first",
            )
            .default(-1),
        )
        .pool(POOL, POOL_SLOTS)
        .task(
            Task::new("scatter")
                .doc("The shards of the day: {shard, of} for each of `shards`")
                .run(scatter),
        )
        .task(
            Task::new("work")
                .expand("scatter")
                .pool(POOL, 1)
                .retries(2)
                .doc("Orders and revenue per region of one shard of the day")
                .run(work),
        )
        .task(
            Task::new("gather")
                .after(["work"])
                .trigger_rule(TriggerRule::OneSuccess)
                .doc("Starts on the first shard's success and folds each shard in as it arrives")
                .run(gather),
        )
        .build()
        .expect("a valid DAG")
}

/// One shard of the day, as a `work` instance receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub shard: u32,
    pub of: u32,
}

/// One region's totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub orders: u64,
    pub amount_cents: i64,
}

/// What a shard counted: the output of a `work` instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardResult {
    pub shard: u32,
    pub of: u32,
    pub regions: BTreeMap<String, Totals>,
}

/// One shard folded in by the gather.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrival {
    pub shard: u32,
    /// When the gather folded it (its clock).
    pub at: Timestamp,
}

/// The gather's output: the day's totals and how they were gathered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gathered {
    pub shards: u32,
    pub orders: u64,
    pub amount_cents: i64,
    pub regions: BTreeMap<String, Totals>,
    /// The shards in the order they were folded in.
    pub arrivals: Vec<Arrival>,
    /// Shards not yet finished when the gather started (0: it started after all of them).
    pub pending_at_start: u32,
}

async fn scatter(ctx: TaskContext) -> Result<Value, TaskError> {
    let of: u32 = ctx.param("shards")?;
    let shards: Vec<Shard> = (0..of).map(|shard| Shard { shard, of }).collect();
    to_output(&shards)
}

/// `amount` in exact cents, whether the source typed it as a float or a decimal.
const CENTS: &str = "CAST(round(CAST(amount AS DOUBLE) * 100) AS BIGINT)";

async fn work(ctx: TaskContext) -> Result<Value, TaskError> {
    let item: Shard = ctx.mapped_item()?;
    let fail: String = ctx.param("fail_shards")?;
    if fail
        .split(',')
        .any(|s| s.trim().parse::<u32>().ok() == Some(item.shard))
    {
        return Err(TaskError::fatal(format!(
            "shard {} was told to fail (--conf fail_shards={fail})",
            item.shard
        )));
    }
    let slow: i64 = ctx.param("slow_shard")?;
    if slow == item.shard as i64 {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let p = window_params(&ctx).await?;
    let time = &p.time_column;
    if !time.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(TaskError::fatal(format!(
            "--conf time_column={time:?} is not a plain column name"
        )));
    }
    let rows = Sql::new(format!(
        "SELECT coalesce(arrow_cast(region, 'Utf8'), '(null)') AS region, count(*) AS orders, \
                coalesce(sum({CENTS}), 0) AS amount_cents \
         FROM src WHERE \"{time}\" >= $data_interval_start AND \"{time}\" < $data_interval_end \
           AND hash_bucket(order_id, $of) = $shard \
         GROUP BY region ORDER BY region"
    ))
    .source("src", &p.source, Some(&p.time_column))
    .bind("of", QueryParam::Int(item.of as i64))
    .bind("shard", QueryParam::Int(item.shard as i64))
    .execute(ctx)
    .await?;
    let rows: Vec<BTreeMap<String, Value>> = serde_json::from_value(rows).map_err(|e| {
        TaskError::fatal(format!(
            "the shard query returned rows of another shape: {e}"
        ))
    })?;
    let mut regions = BTreeMap::new();
    for row in rows {
        let region = row
            .get("region")
            .and_then(Value::as_str)
            .unwrap_or("(null)")
            .to_owned();
        let number = |k: &str| row.get(k).and_then(Value::as_i64).unwrap_or(0);
        regions.insert(
            region,
            Totals {
                orders: number("orders") as u64,
                amount_cents: number("amount_cents"),
            },
        );
    }
    to_output(&ShardResult {
        shard: item.shard,
        of: item.of,
        regions,
    })
}

/// How long the gather waits for news before it looks again (PostgreSQL wakes it at once).
const LOOK_AGAIN: Duration = Duration::from_millis(200);

async fn gather(ctx: TaskContext) -> Result<Value, TaskError> {
    let store = ctx.store().clone();
    let (dag, run) = (ctx.dag_id.clone(), ctx.run_id.clone());
    let mut wakeup = store
        .listen(&[weir_store::channel::DONE])
        .await
        .map_err(|e| TaskError::retryable(format!("cannot listen for the shards: {e}")))?;
    let store_err = |e: weir_store::StoreError| TaskError::retryable(e.to_string());
    let mut folded: BTreeSet<i64> = BTreeSet::new();
    let mut gathered = Gathered {
        shards: 0,
        orders: 0,
        amount_cents: 0,
        regions: BTreeMap::new(),
        arrivals: Vec::new(),
        pending_at_start: 0,
    };
    let mut first = true;
    loop {
        let work: Vec<_> = store
            .task_instances(&dag, &run)
            .await
            .map_err(store_err)?
            .into_iter()
            .filter(|ti| ti.key.task_id.as_str() == "work" && ti.key.map_index.raw() >= 0)
            .collect();
        if first {
            gathered.shards = work.len() as u32;
            gathered.pending_at_start =
                work.iter().filter(|ti| !ti.state.is_terminal()).count() as u32;
            first = false;
        }
        // Outputs are committed with their instance's success: fold the new ones.
        for (index, value) in store.outputs(&dag, &run, "work").await.map_err(store_err)? {
            if !folded.insert(index) {
                continue;
            }
            let result: ShardResult = serde_json::from_value(value).map_err(|e| {
                TaskError::fatal(format!("shard {index} returned another shape: {e}"))
            })?;
            for (region, t) in result.regions {
                let total = gathered.regions.entry(region).or_default();
                total.orders += t.orders;
                total.amount_cents += t.amount_cents;
                gathered.orders += t.orders;
                gathered.amount_cents += t.amount_cents;
            }
            gathered.arrivals.push(Arrival {
                shard: result.shard,
                at: ctx.clock().now(),
            });
            tracing::info!(
                shard = result.shard,
                folded = folded.len(),
                of = work.len(),
                "shard folded in"
            );
        }
        if work.iter().all(|ti| ti.state.is_terminal()) {
            let failed: Vec<i64> = work
                .iter()
                .filter(|ti| matches!(ti.state, TaskState::Failed | TaskState::UpstreamFailed))
                .map(|ti| ti.key.map_index.raw())
                .collect();
            if !failed.is_empty() {
                return Err(TaskError::fatal(format!(
                    "shards {failed:?} of {} failed; the other {} were gathered ({} orders) but a partial day is not published — clear the failed shards to finish it",
                    work.len(),
                    folded.len(),
                    gathered.orders
                )));
            }
            // A shard that succeeded after the last read is folded in on the way out.
            let succeeded = work
                .iter()
                .filter(|ti| ti.state == TaskState::Success)
                .count();
            if folded.len() >= succeeded {
                return to_output(&gathered);
            }
            continue;
        }
        wakeup
            .wait(LOOK_AGAIN)
            .await
            .map_err(|e| TaskError::retryable(e.to_string()))?;
    }
}
