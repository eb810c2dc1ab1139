//! 110.1.2 Hourly batch processing — `110_01_02_hourly_batch_processing`.
//!
//! What it demonstrates:
//! - **Process data for the previous hour**: an `@hourly` window schedule; each run covers one
//!   hour and is due 10 minutes after it ends (a grace period for late-arriving rows).
//! - **Handle high-frequency scheduling**: catchup off (a paused scheduler does not fire 100 runs
//!   on restart), `max_active_runs` 6 so a slow hour does not pile up runs without bound, and
//!   retries with a short delay because the next hour is coming anyway.
//! - **Implement hourly partitioning**: the `load_window` operator writes
//!   `OUTPUT/dt=YYYY-MM-DD/hr=HH` in the DAG's zone
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
use weir_core::timetable::{parse_zone, window_schedule};
use weir_ops::{LoadWindow, PartitionBy, Verify, window_param_specs};
use weir_runtime::DagDef;

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
            // The whole local hour: on the fall-back night both runs of hr=01 write its rows
            // of both occurrences.
            weir_ops::task(
                "load_hour",
                LoadWindow::new(PartitionBy::Date {
                    granularity: "hour".to_owned(),
                    whole_local: true,
                }),
            )
            .doc("Stream the source, keep the local hour's rows, commit dt=/hr=")
            .pool(POOL, 1)
            .retries(3)
            .retry_delay(SignedDuration::from_secs(20))
            .execution_timeout(SignedDuration::from_mins(20)),
        )
        .task(
            weir_ops::task("verify_hour", Verify::of_upstream("load_hour"))
                .after(["load_hour"])
                .doc("Read the committed hour back and check it against its manifest"),
        )
        .build()
        .expect("a valid DAG")
}
