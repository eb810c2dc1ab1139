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
//! - **Implement daily partition loading**: the `load_window` operator (by date) lands the rows
//!   in `OUTPUT/dt=YYYY-MM-DD/part-00000.parquet` by an atomic commit; re-running a day replaces
//!   its partition, and a manifest records what was read, written and rejected. The `verify`
//!   operator reads the partition back and checks rows, bytes and checksum against it.
//!
//! Run it: `weir dags backfill 110_01_01_daily_batch_processing --from 2026-03-02 --to 2026-03-08`
//! or on your data: `weir dags run 110_01_01_daily_batch_processing --logical-date 2026-03-08
//! --conf source=orders.csv --conf time_column=created_at --conf output=/tmp/daily`.

use weir_core::timetable::{parse_zone, window_schedule};
use weir_data::partitioners::Granularity;
use weir_ops::load::window_param_specs;
use weir_ops::{LoadWindow, Verify};
use weir_runtime::DagDef;

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
            // The window is the data interval: a calendar day on the wall clock of the run's
            // zone (the DAG's, or `--conf tz`), 23 or 25 hours long on DST days.
            weir_ops::task("load_day", LoadWindow::by_date(Granularity::Day))
                .doc("Stream the source, keep the day's rows, commit dt=YYYY-MM-DD")
                .retries(2)
                .retry_delay(jiff::SignedDuration::from_secs(30)),
        )
        .task(
            weir_ops::task("verify_day", Verify::of_upstream("load_day"))
                .after(["load_day"])
                .doc("Read the committed partition back and check it against its manifest"),
        )
        .build()
        .expect("a valid DAG")
}
