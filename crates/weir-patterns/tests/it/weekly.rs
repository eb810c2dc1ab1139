//! 110.1.3 Weekly batch aggregation (`110_01_03_weekly_batch_aggregation`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use arrow::array::{Array, Decimal128Array, Int64Array, StringArray, UInt32Array};
use jiff::civil::date;
use jiff::{SignedDuration, Timestamp};
use weir_core::{RunState, TaskState};
use weir_patterns::p110::{daily_batch_processing, weekly_batch_aggregation::DAG_ID};
use weir_runtime::Clock;

use crate::support::*;

/// A clock each reading of which is 5 minutes (the sensor's poke interval) after the previous
/// one: whenever the executor schedules the next poke at "now + 5 min", that instant has come by
/// its next reading, so the sensor's pokes over its hour run back to back without any real
/// waiting.
///
/// Not `tokio::time::pause()`: paused time auto-advances whenever the runtime is idle, including
/// while the SQLite store's worker thread (sqlx) is answering, so the store's pool acquire timeout
/// fires (`PoolTimedOut`) on the first store call.
#[derive(Debug)]
struct StepClock {
    base: Timestamp,
    readings: AtomicI64,
}

impl StepClock {
    fn new() -> Self {
        StepClock {
            base: Timestamp::now(),
            readings: AtomicI64::new(0),
        }
    }
}

impl Clock for StepClock {
    fn now(&self) -> Timestamp {
        let n = self.readings.fetch_add(1, Ordering::SeqCst);
        self.base + SignedDuration::from_mins(5 * n)
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Rollup {
    orders: i64,
    amount_cents: i128,
    customers: i64,
    days: u32,
}

/// Coordination with the daily DAG: with six of seven daily partitions committed the sensor
/// `wait_for_daily` never succeeds (it pokes every 5 minutes for its hour, then fails) and
/// `aggregate_week` never runs; once the seventh day is loaded, the week rolls up into
/// `wk=2026-W10` with per-region orders and exact decimal revenue equal to independent sums over
/// the ISO week's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn week_waits_for_all_seven_days_then_rolls_up() {
    let w = World::new().await;
    let source = w.sample("orders.csv", utc(2026, 3, 1), 10, 20_000, 9);
    let orders = read_orders(&source);
    let daily = w.path("out/daily");
    let weekly = w.path("out/weekly");
    let daily_conf = conf([("source", s(&source)), ("output", s(&daily))]);
    let weekly_conf = conf([("daily_output", s(&daily)), ("output", s(&weekly))]);
    let monday = date(2026, 3, 2);

    // Monday to Saturday only.
    let report = w
        .backfill(
            daily_batch_processing::DAG_ID,
            midnight(monday, NEW_YORK),
            midnight(date(2026, 3, 7), NEW_YORK),
            daily_conf.clone(),
        )
        .await;
    assert_eq!(report.count(RunState::Success), 6, "{:?}", report.runs);

    // The sensor's pokes run on a stepping clock, on an executor over the same store: no real
    // waiting, and the data work above ran on the system clock.
    let stepping = w.executor_with_clock(Arc::new(StepClock::new()));
    let run = trigger_on(
        &stepping,
        DAG_ID,
        midnight(monday, NEW_YORK),
        weekly_conf.clone(),
    )
    .await;
    let outcome = stepping
        .run(&run.dag_id, &run.run_id)
        .await
        .expect("the executor runs the run");
    assert_states(
        &w,
        &outcome,
        RunState::Failed,
        &[
            ("wait_for_daily", TaskState::Failed),
            ("aggregate_week", TaskState::UpstreamFailed),
        ],
    )
    .await;
    // One try that poked every 5 minutes, giving its slot back in between, until the hour was
    // up: rescheduled pokes are the same try, not retries.
    let tries = w.tries(&outcome.run, "wait_for_daily").await;
    assert_eq!(tries.len(), 1, "a rescheduled sensor pokes within one try");
    let error = tries[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("timed out after 1h")
            && error.contains("1 of 7")
            && error.contains("dt=2026-03-08"),
        "{error}"
    );
    assert!(!error.contains("dt=2026-03-07"), "{error}");
    let waited = tries[0]
        .ended_at
        .duration_since(outcome.run.started_at.expect("the run started"));
    assert!(
        waited >= SignedDuration::from_mins(60),
        "gave up after {waited:?}"
    );
    assert!(w.tries(&outcome.run, "aggregate_week").await.is_empty());
    assert!(!weekly.exists() || partition_rows(&weekly).is_empty());
    assert!(w.store.manifests(&s(&weekly)).await.unwrap().is_empty());

    // Sunday lands; the week runs again and rolls up.
    let sunday = w
        .run(
            daily_batch_processing::DAG_ID,
            midnight(date(2026, 3, 8), NEW_YORK),
            daily_conf,
        )
        .await;
    assert_states(&w, &sunday, RunState::Success, &[]).await;
    let outcome = w.run(DAG_ID, midnight(monday, NEW_YORK), weekly_conf).await;
    assert_states(
        &w,
        &outcome,
        RunState::Success,
        &[
            ("wait_for_daily", TaskState::Success),
            ("aggregate_week", TaskState::Success),
        ],
    )
    .await;
    // The ISO week runs Monday 00:00 to Monday 00:00 New York time: 167 hours this week.
    assert_eq!(outcome.run.interval_start, midnight(monday, NEW_YORK));
    assert_eq!(
        outcome.run.interval_end,
        midnight(date(2026, 3, 9), NEW_YORK)
    );
    assert_eq!(
        outcome
            .run
            .interval_end
            .duration_since(outcome.run.interval_start),
        SignedDuration::from_hours(167)
    );

    let landed = partition_rows(&weekly);
    assert_eq!(landed.keys().collect::<Vec<_>>(), ["wk=2026-W10"]);

    // Independent rollup of the week's rows.
    let mut want: BTreeMap<String, Rollup> = BTreeMap::new();
    let mut customers: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    let mut days: BTreeMap<String, BTreeSet<jiff::civil::Date>> = BTreeMap::new();
    let week = in_window(
        &orders,
        midnight(monday, NEW_YORK),
        midnight(date(2026, 3, 9), NEW_YORK),
    );
    for o in &week {
        let r = want.entry(o.region.clone()).or_default();
        r.orders += 1;
        r.amount_cents += i128::from(o.amount_cents);
        customers
            .entry(o.region.clone())
            .or_default()
            .insert(o.customer_id);
        days.entry(o.region.clone())
            .or_default()
            .insert(o.event_time.to_zoned(tz(NEW_YORK)).date());
    }
    for (region, r) in &mut want {
        r.customers = customers[region].len() as i64;
        r.days = days[region].len() as u32;
    }

    let batches = read_partition(&weekly, "wk=2026-W10");
    let mut got: BTreeMap<String, Rollup> = BTreeMap::new();
    for b in &batches {
        let col = |name: &str| b.column_by_name(name).unwrap_or_else(|| panic!("{name}"));
        let week = col("week").as_any().downcast_ref::<StringArray>().unwrap();
        let region = col("region")
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let orders = col("orders").as_any().downcast_ref::<Int64Array>().unwrap();
        let amount = col("amount_sum")
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .unwrap();
        assert_eq!(amount.scale(), 2);
        let custs = col("customers")
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let d = col("days_with_data")
            .as_any()
            .downcast_ref::<UInt32Array>()
            .unwrap();
        for i in 0..b.num_rows() {
            assert_eq!(week.value(i), "2026-W10");
            got.insert(
                region.value(i).to_owned(),
                Rollup {
                    orders: orders.value(i),
                    amount_cents: amount.value(i),
                    customers: custs.value(i),
                    days: d.value(i),
                },
            );
        }
    }
    assert_eq!(got, want);
    assert_eq!(
        got.values().map(|r| r.orders as u64).sum::<u64>(),
        week.len() as u64
    );
    assert!(want.values().all(|r| r.days == 7));
}
