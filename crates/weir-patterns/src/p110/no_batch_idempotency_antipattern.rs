//! 110.6.3 No batch idempotency (anti-pattern) — `110_06_03_no_batch_idempotency_antipattern`.
//!
//! A batch runs again all the time: a retry after a timeout, a cleared task, a backfill over
//! days already loaded. And an upstream that delivers at least once sends some records twice.
//! A load that is not idempotent turns either into wrong numbers. Every run of this DAG loads
//! the run's New York day four ways and puts the results side by side.
//!
//! What it demonstrates:
//! - **Show duplicate processing issues**: `naive_append` adds the day's orders as the *next*
//!   load of the day (`OUTPUT_naive/dt=YYYY-MM-DD/load=0001`, then `load=0002`, …), the way an
//!   `INSERT INTO` or an append-mode write does. The first run is right; running the same day
//!   again (`weir dags run … --logical-date` twice, a retry, a backfill) adds a second copy of
//!   every order.
//! - **Demonstrate data corruption**: `compare` reads every store back with SQL and reports, for
//!   the day, rows, distinct `order_id`s, rows beyond one per order and `sum(amount)` (exact
//!   cents): after two runs the naive store holds each order twice and the day's revenue is
//!   doubled, while nothing failed. The source's own numbers are beside them.
//! - **Provide idempotent patterns**: `replace_partition` is the `load_window` operator: the run
//!   commits `OUTPUT/dt=YYYY-MM-DD` by an atomic swap that *replaces* the partition, so a re-run
//!   writes the same partition again instead of adding one. The output's location is a function
//!   of the interval, never of how often it ran. `upsert_by_key` addresses rows by `order_id`: the
//!   day's stored rows and the delivered ones are merged and the newest version of each key wins,
//!   so a key delivered again overwrites itself (here a dataset merged by one `sql` query, so
//!   that `compare` can read it back; the `write_table` operator's `upsert` mode does the same
//!   in a SQLite warehouse, with a unique index on the key).
//! - **Include deduplication strategies**: the sample orders have unique ids, so `replay_feed`
//!   plays an at-least-once upstream on purpose: it delivers the day's orders and then delivers
//!   every `--conf replay_every=N`-th order (by `order_id`, default 10) a second time,
//!   `delivery = 2`, as a producer retrying after a lost acknowledgement would. The delivery lands
//!   as CSV in `OUTPUT_feed/dt=YYYY-MM-DD` so it can be inspected. `dedup_window` is one `sql`
//!   query over it: `ROW_NUMBER() OVER (PARTITION BY order_id ORDER BY delivery DESC) = 1`
//!   within the data interval, committed to `OUTPUT_dedup/dt=YYYY-MM-DD` (replaced by a re-run).
//!   `upsert_by_key` reads the replayed feed too: a key collapses replays as well as re-runs.
//!   Replacing a partition makes a *re-run* harmless but keeps whatever duplicates its input
//!   holds: that is what deduplication by a record id is for.
//!
//! Run it twice: `weir dags run 110_06_03_no_batch_idempotency_antipattern --logical-date
//! 2026-03-05` — the second run prints `compare`'s output with the naive store doubled and the
//! three idempotent ones unchanged; `--conf replay_every=3` replays more.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::to_output;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weir_core::ParamSpec;
use weir_core::timetable::{parse_zone, window_schedule};
use weir_data::Dataset;
use weir_data::partitioners::Granularity;
use weir_ops::load::{output_dir, sibling_dir, window_param_specs, window_params};
use weir_ops::{LoadWindow, Operator, QueryParam, Sql, SqlOutput, SqlResult, blocking, identifier};
use weir_runtime::{DagDef, Task, TaskContext, TaskError};

pub const DAG_ID: &str = "110_06_03_no_batch_idempotency_antipattern";
pub const ZONE: &str = "America/New_York";

/// The strategies `compare` reports, by task id.
pub const NAIVE_APPEND: &str = "naive_append";
pub const REPLACE_PARTITION: &str = "replace_partition";
pub const UPSERT_BY_KEY: &str = "upsert_by_key";
pub const DEDUP_WINDOW: &str = "dedup_window";

pub fn dag() -> DagDef {
    let tz = parse_zone(ZONE).expect("a known zone");
    DagDef::builder(DAG_ID)
        .description(
            "Run a day twice: a naive append doubles it; partition replace, upsert by key and dedup by id do not",
        )
        .tags(["110.6", "anti-pattern", "idempotency", "intermediate"])
        .schedule(window_schedule("@daily", tz.clone()).expect("a valid schedule"))
        .start_date(
            jiff::civil::date(2026, 3, 1)
                .to_zoned(tz.clone())
                .expect("valid")
                .timestamp(),
        )
        .catchup(false)
        .max_active_runs(2)
        .params(window_param_specs())
        .param(
            ParamSpec::integer(
                "replay_every",
                1,
                1_000_000,
                "the upstream replays every order whose order_id is a multiple of this (1: all)",
            )
            .default(10),
        )
        .task(
            Task::new(NAIVE_APPEND)
                .doc("Anti-pattern: append the day's orders as the next load of the day")
                .run(naive_append),
        )
        .task(
            weir_ops::task(REPLACE_PARTITION, LoadWindow::by_date(Granularity::Day))
                .doc("Idempotent: commit dt=YYYY-MM-DD, replacing what a previous run committed")
                .retries(2),
        )
        .task(
            Task::new("replay_feed")
                .doc("An at-least-once upstream: the day's orders, some of them delivered twice")
                .retries(2)
                .run(replay_feed),
        )
        .task(
            Task::new(UPSERT_BY_KEY)
                .after(["replay_feed"])
                .doc("Idempotent: merge the delivery into the stored day by order_id, newest wins")
                .retries(2)
                .run(upsert_by_key),
        )
        .task(
            Task::new(DEDUP_WINDOW)
                .after(["replay_feed"])
                .doc("Dedup: one row per order_id within the interval (ROW_NUMBER() = 1)")
                .retries(2)
                .run(dedup_window),
        )
        .task(
            Task::new("compare")
                .after([NAIVE_APPEND, REPLACE_PARTITION, UPSERT_BY_KEY, DEDUP_WINDOW])
                .doc("Rows, distinct orders and the day's revenue of every store, side by side")
                .run(compare),
        )
        .build()
        .expect("a valid DAG")
}

/// `amount` in exact cents, whether the source typed it as a float or a decimal.
const CENTS: &str = "CAST(round(CAST(amount AS DOUBLE) * 100) AS BIGINT)";

/// The run's day in its zone, `YYYY-MM-DD`: what `$ds` is bound to.
fn run_day(ctx: &TaskContext) -> String {
    ctx.logical_date
        .to_zoned(ctx.zone.clone())
        .date()
        .to_string()
}

/// The committed partitions of the dataset at `dir` whose `dt` is `day` (none when the dataset
/// does not exist yet).
async fn loads_of_day(dir: &Path, day: &str) -> Result<usize, TaskError> {
    let (dir, day) = (dir.to_path_buf(), day.to_owned());
    blocking(move || {
        Ok(Dataset::open(&dir)?
            .partitions()?
            .iter()
            .filter(|p| p.key.get("dt") == Some(day.as_str()))
            .count())
    })
    .await
}

fn output_of(value: Value, task: &str) -> Result<SqlOutput, TaskError> {
    serde_json::from_value(value)
        .map_err(|e| TaskError::fatal(format!("the sql output of `{task}` is not a dataset: {e}")))
}

/// What `naive_append` added.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Appended {
    pub dataset: PathBuf,
    /// The load's number within its day: 1 on the first run, 2 on the second, …
    pub load: String,
    /// Rows this run added.
    pub rows: u64,
    /// Loads of the day the store now holds (each a full copy of the day).
    pub loads_of_day: usize,
}

/// The anti-pattern. Nothing here is broken on its own: the commit is even atomic. What makes
/// it wrong is *where* it writes: a new place every time it runs (the next load number, as a
/// `part-{n+1}` file or a timestamped file name would be), so the store's content depends on how
/// many times the day ran, not on the day.
async fn naive_append(ctx: TaskContext) -> Result<Value, TaskError> {
    let p = window_params(&ctx).await?;
    let time = identifier("time_column", &p.time_column)?;
    let dir = sibling_dir(&ctx, "_naive")?;
    let day = run_day(&ctx);
    let before = loads_of_day(&dir, &day).await?;
    let load = format!("{:04}", before + 1);
    let written = Sql::new(format!(
        "SELECT order_id, arrow_cast(region, 'Utf8') AS region, {time} AS event_time, amount, \
                $ds AS dt, $load_number AS load \
         FROM src WHERE {time} >= $data_interval_start AND {time} < $data_interval_end"
    ))
    .source("src", &p.source, Some(&p.time_column))
    .bind("load_number", QueryParam::Text(load.clone()))
    .into_dataset(&dir, &["dt", "load"])
    .execute(ctx)
    .await?;
    let written = output_of(written, NAIVE_APPEND)?;
    let loads = before + usize::from(written.rows > 0);
    tracing::warn!(day = %day, load = %load, loads, "appended the day as one more load");
    to_output(&Appended {
        dataset: dir,
        load,
        rows: written.rows,
        loads_of_day: loads,
    })
}

/// The upstream's delivery of the run's day: every order of the interval (`delivery = 1`), then
/// every `replay_every`-th order again (`delivery = 2`), exactly as first sent. It lands as CSV
/// (one file per day, replaced by a re-run) so the duplicates can be read with any tool.
async fn replay_feed(ctx: TaskContext) -> Result<Value, TaskError> {
    let p = window_params(&ctx).await?;
    let time = identifier("time_column", &p.time_column)?;
    let dir = sibling_dir(&ctx, "_feed")?;
    let delivery = |n: u8, only: &str| {
        format!(
            "SELECT order_id, arrow_cast(region, 'Utf8') AS region, {time} AS event_time, amount, \
                    CAST({n} AS BIGINT) AS delivery \
             FROM src WHERE {time} >= $data_interval_start AND {time} < $data_interval_end{only}"
        )
    };
    let mut sql = Sql::new(format!(
        "SELECT order_id, region, event_time, amount, delivery, $ds AS dt \
         FROM ({} UNION ALL {}) AS delivered",
        delivery(1, ""),
        delivery(2, " AND order_id % $replay_every = 0")
    ))
    .source("src", &p.source, Some(&p.time_column));
    sql.result = SqlResult::Dataset {
        path: dir,
        partition_by: vec!["dt".to_owned()],
        format: Some("csv".to_owned()),
    };
    sql.execute(ctx).await
}

/// Upsert by key: the day's stored rows (version 0) and the delivered ones (version = delivery)
/// are one set; per `order_id` the newest version is kept and the day's partition is replaced
/// with the result. Delivering a key again — a replay, a re-run, a correction — overwrites it.
async fn upsert_by_key(ctx: TaskContext) -> Result<Value, TaskError> {
    let feed = sibling_dir(&ctx, "_feed")?;
    let state = sibling_dir(&ctx, "_upsert")?;
    let day = run_day(&ctx);
    if loads_of_day(&feed, &day).await? == 0 {
        return to_output(&SqlOutput {
            dataset: state,
            rows: 0,
            partitions: BTreeMap::new(),
        });
    }
    let stored = loads_of_day(&state, &day).await? > 0;
    let delivered = "SELECT order_id, arrow_cast(region, 'Utf8') AS region, event_time, amount, \
                            delivery AS version \
                     FROM feed WHERE dt = $ds";
    let versions = if stored {
        format!(
            "SELECT order_id, arrow_cast(region, 'Utf8') AS region, event_time, amount, \
                    CAST(0 AS BIGINT) AS version \
             FROM state WHERE dt = $ds \
             UNION ALL {delivered}"
        )
    } else {
        delivered.to_owned()
    };
    let mut sql = Sql::new(format!(
        "SELECT order_id, region, event_time, amount, $ds AS dt FROM ( \
             SELECT order_id, region, event_time, amount, \
                    ROW_NUMBER() OVER (PARTITION BY order_id ORDER BY version DESC) AS newest \
             FROM ({versions}) AS versions \
         ) AS ranked WHERE newest = 1"
    ))
    .table("feed", &feed);
    if stored {
        sql = sql.table("state", &state);
    }
    sql.into_dataset(&state, &["dt"]).execute(ctx).await
}

/// Dedup by a record id within the window: of the rows the feed delivered for the interval,
/// one per `order_id` (the latest delivery), committed to the day's partition (replaced by a
/// re-run).
async fn dedup_window(ctx: TaskContext) -> Result<Value, TaskError> {
    let feed = sibling_dir(&ctx, "_feed")?;
    let dir = sibling_dir(&ctx, "_dedup")?;
    if loads_of_day(&feed, &run_day(&ctx)).await? == 0 {
        return to_output(&SqlOutput {
            dataset: dir,
            rows: 0,
            partitions: BTreeMap::new(),
        });
    }
    Sql::new(
        "SELECT order_id, region, event_time, amount, $ds AS dt FROM ( \
             SELECT order_id, arrow_cast(region, 'Utf8') AS region, event_time, amount, \
                    ROW_NUMBER() OVER (PARTITION BY order_id ORDER BY delivery DESC) AS delivered \
             FROM feed \
             WHERE dt = $ds AND event_time >= $data_interval_start AND event_time < $data_interval_end \
         ) AS deliveries WHERE delivered = 1",
    )
    .table("feed", &feed)
    .into_dataset(&dir, &["dt"])
    .execute(ctx)
    .await
}

/// One store's numbers for the run's day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measured {
    /// Rows the store holds for the day.
    pub rows: u64,
    /// Distinct `order_id`s among them.
    pub order_ids: u64,
    /// Rows beyond one per order (`rows - order_ids`): duplicates.
    pub duplicate_rows: u64,
    /// The day's revenue, `sum(amount)`, in exact cents.
    pub amount_cents: i64,
    /// The same as a decimal, for people.
    pub amount: String,
    /// Whether rows and revenue are those of the source's day.
    pub correct: bool,
}

/// `compare`'s output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// The run's day, `YYYY-MM-DD` in the run's zone.
    pub day: String,
    /// The truth: the source's orders in the data interval.
    pub source: Measured,
    /// What the upstream delivered (with its replays).
    pub feed: Measured,
    /// Per strategy (task id): what its store holds for the day.
    pub strategies: BTreeMap<String, Measured>,
}

/// One row of a measuring query.
#[derive(Debug, Deserialize)]
struct Counts {
    rows: u64,
    order_ids: u64,
    amount_cents: i64,
}

fn measure_query(filter: &str) -> String {
    format!(
        "SELECT count(*) AS rows, count(DISTINCT order_id) AS order_ids, \
                coalesce(sum({CENTS}), 0) AS amount_cents \
         FROM t WHERE {filter}"
    )
}

async fn counts(ctx: &TaskContext, sql: Sql, what: &str) -> Result<Counts, TaskError> {
    let rows: Vec<Counts> = serde_json::from_value(sql.execute(ctx.clone()).await?)
        .map_err(|e| TaskError::fatal(format!("measuring {what}: {e}")))?;
    rows.into_iter()
        .next()
        .ok_or_else(|| TaskError::fatal(format!("measuring {what}: the query returned no row")))
}

/// The day's numbers of the dataset at `dir` (zero when it holds nothing for the day).
async fn measure_dataset(ctx: &TaskContext, dir: &Path, what: &str) -> Result<Counts, TaskError> {
    if loads_of_day(dir, &run_day(ctx)).await? == 0 {
        return Ok(Counts {
            rows: 0,
            order_ids: 0,
            amount_cents: 0,
        });
    }
    counts(
        ctx,
        Sql::new(measure_query("dt = $ds")).table("t", dir),
        what,
    )
    .await
}

fn decimal(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

fn judged(c: &Counts, truth: &Counts) -> Measured {
    Measured {
        rows: c.rows,
        order_ids: c.order_ids,
        duplicate_rows: c.rows.saturating_sub(c.order_ids),
        amount_cents: c.amount_cents,
        amount: decimal(c.amount_cents),
        correct: c.rows == truth.rows && c.amount_cents == truth.amount_cents,
    }
}

/// Every store read back with SQL, for the run's day only, next to the source's own numbers.
async fn compare(ctx: TaskContext) -> Result<Value, TaskError> {
    let p = window_params(&ctx).await?;
    let time = identifier("time_column", &p.time_column)?;
    let truth = counts(
        &ctx,
        Sql::new(measure_query(&format!(
            "{time} >= $data_interval_start AND {time} < $data_interval_end"
        )))
        .source("t", &p.source, Some(&p.time_column)),
        "the source",
    )
    .await?;
    let feed = measure_dataset(&ctx, &sibling_dir(&ctx, "_feed")?, "the feed").await?;
    let mut strategies = BTreeMap::new();
    for (name, dir) in [
        (NAIVE_APPEND, sibling_dir(&ctx, "_naive")?),
        (REPLACE_PARTITION, output_dir(&ctx)?),
        (UPSERT_BY_KEY, sibling_dir(&ctx, "_upsert")?),
        (DEDUP_WINDOW, sibling_dir(&ctx, "_dedup")?),
    ] {
        let m = judged(&measure_dataset(&ctx, &dir, name).await?, &truth);
        tracing::info!(
            strategy = name, rows = m.rows, order_ids = m.order_ids, duplicates = m.duplicate_rows,
            amount = %m.amount, correct = m.correct, "compared"
        );
        strategies.insert(name.to_owned(), m);
    }
    to_output(&Comparison {
        day: run_day(&ctx),
        source: judged(&truth, &truth),
        feed: judged(&feed, &truth),
        strategies,
    })
}
