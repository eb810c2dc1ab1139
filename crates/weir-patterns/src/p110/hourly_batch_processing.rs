//! 110.1.2 Hourly batch processing — `110_01_02_hourly_batch_processing`.
//!
//! What it demonstrates:
//! - **Process data for the previous hour**: an `@hourly` window schedule; each run covers one
//!   hour and is due 10 minutes after it ends (a grace period for late-arriving rows).
//! - **Handle high-frequency scheduling**: catchup off (a paused scheduler does not fire 100 runs
//!   on restart), `max_active_runs` 6 so a slow hour does not pile up runs without bound, and
//!   retries with a short delay because the next hour is coming anyway.
//! - **Implement hourly partitioning**: `OUTPUT/dt=YYYY-MM-DD/hr=HH` in the DAG's zone
//!   (America/New_York; `--conf tz` overrides). A partition holds every row whose *local* date
//!   and hour match it. On the fall-back night the local hour 01 happens twice: both runs write
//!   the one `hr=01` partition with the rows of both occurrences, so neither run erases the
//!   other's rows and a re-run is idempotent. The hour skipped in spring never gets a partition.
//! - **Manage resource utilization**: loads take a slot of the `hourly_io` pool (2 slots) and the
//!   DAG runs at most 4 tasks at once, so a backfill of hundreds of hours keeps IO bounded.
//!
//! Run it: `weir dags backfill 110_01_02_hourly_batch_processing --from 2026-03-08T00:00 --to
//! 2026-03-08T05:00`.

use jiff::SignedDuration;
use serde_json::Value;
use weir_core::timetable::{parse_zone, window_schedule};
use weir_data::{PartitionKey, local_date_hour_keys, split_by_key};
use weir_runtime::{DagDef, Task, TaskContext, TaskError};

use weir_ops::load::{load_window, record_commits, window_param_specs, window_params};
use weir_ops::{Verify, blocking};

pub const DAG_ID: &str = "110_01_02_hourly_batch_processing";
pub const ZONE: &str = "America/New_York";
pub const POOL: &str = "hourly_io";

pub fn dag() -> DagDef {
    let tz = parse_zone(ZONE).expect("a known zone");
    DagDef::builder(DAG_ID)
        .description("Load each local hour into a dt=YYYY-MM-DD/hr=HH Parquet partition")
        .tags(["110.1", "batch-window", "beginner"])
        .schedule(window_schedule("@hourly", tz.clone()).expect("a valid schedule"))
        .start_date(
            jiff::civil::date(2026, 3, 1)
                .to_zoned(tz.clone())
                .expect("valid")
                .timestamp(),
        )
        .catchup(false)
        .grace(SignedDuration::from_mins(10))
        .max_active_runs(6)
        .max_active_tasks(4)
        .pool(POOL, 2)
        .params(window_param_specs())
        .task(
            Task::new("load_hour")
                .doc("Stream the source, keep the local hour's rows, commit dt=/hr=")
                .pool(POOL, 1)
                .retries(3)
                .retry_delay(SignedDuration::from_secs(20))
                .execution_timeout(SignedDuration::from_mins(20))
                .run(load_hour),
        )
        .task(
            weir_ops::task("verify_hour", Verify::of_upstream("load_hour"))
                .after(["load_hour"])
                .doc("Read the committed hour back and check it against its manifest"),
        )
        .build()
        .expect("a valid DAG")
}

async fn load_hour(ctx: TaskContext) -> Result<Value, TaskError> {
    let p = window_params(&ctx).await?;
    let local = ctx.data_interval.start.to_zoned(p.tz.clone());
    let target = (local.date(), local.hour());
    let key = PartitionKey::date_hour(target.0, target.1);
    // A local hour spans at most the interval plus the repeated hour on either side (DST shifts
    // are at most one hour): read that, keep the rows whose local date and hour match.
    let hour = SignedDuration::from_hours(1);
    let from = ctx
        .data_interval
        .start
        .saturating_sub(hour)
        .map_err(|e| TaskError::fatal(e.to_string()))?;
    let to = ctx
        .data_interval
        .end
        .saturating_add(hour)
        .map_err(|e| TaskError::fatal(e.to_string()))?;
    let (params, tz, time_column) = (p.clone(), p.tz.clone(), p.time_column.clone());
    let loaded = blocking(move || {
        let k = key.clone();
        load_window(&params, from, to, std::slice::from_ref(&key), move |b| {
            let keys = local_date_hour_keys(b, &time_column, &tz)?;
            Ok(split_by_key(b, &keys)?
                .into_iter()
                .filter(|(local, _)| *local == target)
                .map(|(_, rows)| (k.clone(), rows))
                .collect())
        })
    })
    .await?;
    record_commits(&ctx, &p.output, &loaded).await?;
    Ok(loaded.to_json())
}
