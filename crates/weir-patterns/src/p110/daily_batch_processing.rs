//! 110.1.1 Daily batch processing — `110_01_01_daily_batch_processing`.
//!
//! What it demonstrates:
//! - **Process data for the previous day**: an `@daily` window schedule; the run for day D is due
//!   when D ends and covers exactly D (catchup off: only the latest complete day runs by itself;
//!   `weir dags backfill` fills history).
//! - **Use data_interval for boundaries**: rows are selected by `data_interval_start <= t <
//!   data_interval_end`, never by "now minus 24 hours".
//! - **Handle timezone considerations**: the day is a calendar day in the DAG's zone
//!   (America/New_York; `--conf tz=ZONE` overrides it), so 2026-03-08 is a 23-hour day and
//!   2026-11-01 a 25-hour one; event times are UTC instants in the source.
//! - **Implement daily partition loading**: rows land in `OUTPUT/dt=YYYY-MM-DD/part-00000.parquet`
//!   by an atomic commit; re-running a day replaces its partition, and a manifest records what
//!   landed. A verify task reads the partition back and checks the count.
//!
//! Run it: `weir dags backfill 110_01_01_daily_batch_processing --from 2026-03-02 --to 2026-03-08`
//! or on your data: `weir dags run 110_01_01_daily_batch_processing --logical-date 2026-03-08
//! --conf source=orders.csv --conf time_column=created_at --conf output=/tmp/daily`.

use serde_json::Value;
use weir_core::timetable::{parse_zone, window_schedule};
use weir_data::PartitionKey;
use weir_runtime::{DagDef, Task, TaskContext, TaskError};

use crate::common::{
    Loaded, blocking, load_window, output_dir, record_commits, verify_partitions,
    window_param_specs, window_params,
};

pub const DAG_ID: &str = "110_01_01_daily_batch_processing";
pub const ZONE: &str = "America/New_York";

pub fn dag() -> DagDef {
    let tz = parse_zone(ZONE).expect("a known zone");
    DagDef::builder(DAG_ID)
        .description(
            "Load each calendar day (in the DAG's zone) into a dt=YYYY-MM-DD Parquet partition",
        )
        .tags(["110.1", "batch-window", "beginner"])
        .schedule(window_schedule("@daily", tz.clone()).expect("a valid schedule"))
        .start_date(
            jiff::civil::date(2026, 3, 1)
                .to_zoned(tz.clone())
                .expect("valid")
                .timestamp(),
        )
        .catchup(false)
        .max_active_runs(4)
        .params(window_param_specs())
        .task(
            Task::new("load_day")
                .doc("Stream the source, keep the day's rows, commit dt=YYYY-MM-DD")
                .retries(2)
                .retry_delay(jiff::SignedDuration::from_secs(30))
                .run(load_day),
        )
        .task(
            Task::new("verify_day")
                .after(["load_day"])
                .doc("Read the committed partition back and check its row count")
                .run(|ctx| async move {
                    let loaded: Loaded = ctx.input("load_day").await?;
                    verify_partitions(output_dir(&ctx)?, &loaded).await?;
                    Ok(loaded.to_json())
                }),
        )
        .build()
        .expect("a valid DAG")
}

/// The calendar day a run is for: the local date its interval starts on, in the run's zone.
pub fn day_of(ctx: &TaskContext) -> jiff::civil::Date {
    ctx.data_interval.start.to_zoned(ctx.zone.clone()).date()
}

async fn load_day(ctx: TaskContext) -> Result<Value, TaskError> {
    let p = window_params(&ctx).await?;
    // The window is the data interval: a calendar day on the wall clock of the run's zone (the
    // DAG's, or `--conf tz`), 23 or 25 hours long on DST days.
    let (from, to) = (ctx.data_interval.start, ctx.data_interval.end);
    let key = PartitionKey::date(day_of(&ctx));
    let params = p.clone();
    let loaded = blocking(move || {
        let k = key.clone();
        load_window(&params, from, to, std::slice::from_ref(&key), move |b| {
            Ok(vec![(k.clone(), b.clone())])
        })
    })
    .await?;
    record_commits(&ctx, &p.output, &loaded).await?;
    Ok(loaded.to_json())
}
