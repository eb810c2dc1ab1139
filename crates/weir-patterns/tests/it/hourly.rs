//! 110.1.2 Hourly batch processing (`110_01_02_hourly_batch_processing`).

use std::collections::{BTreeMap, BTreeSet};

use jiff::SignedDuration;
use jiff::civil::{Date, date};
use weir_core::RunState;
use weir_patterns::p110::hourly_batch_processing::{DAG_ID, POOL};

use crate::support::*;

/// Independent counts per local (date, hour) in New York.
fn per_local_hour(orders: &[Order]) -> BTreeMap<(Date, i8), Vec<i64>> {
    let mut out: BTreeMap<(Date, i8), Vec<i64>> = BTreeMap::new();
    for o in orders {
        let z = o.event_time.to_zoned(tz(NEW_YORK));
        out.entry((z.date(), z.hour()))
            .or_default()
            .push(o.order_id);
    }
    out
}

/// Runs every hourly interval of one New York day and checks that the `hr=` partitions of that
/// day hold exactly its rows. Returns the hour partitions and the independent per-hour ids.
async fn run_local_day(
    w: &World,
    day: Date,
    expected_runs: usize,
) -> (BTreeMap<String, u64>, BTreeMap<(Date, i8), Vec<i64>>) {
    let source = w.sample(
        &format!("orders-{day}.csv"),
        utc(day.year(), day.month(), day.day()) - SignedDuration::from_hours(24),
        3,
        20_000,
        5,
    );
    let output = w.path(&format!("out/hourly-{day}"));
    let orders = read_orders(&source);
    // Every hour interval whose start is in the local day: first 00:00, last 23:00.
    let report = w
        .backfill(
            DAG_ID,
            midnight(day, NEW_YORK),
            local(day, 23, NEW_YORK),
            conf([("source", s(&source)), ("output", s(&output))]),
        )
        .await;
    assert_eq!(report.runs.len(), expected_runs, "hour runs of {day}");
    assert_eq!(
        report.count(RunState::Success),
        expected_runs,
        "{:?}",
        report.runs
    );
    for (run, _) in &report.runs {
        assert_eq!(
            run.interval_end.duration_since(run.interval_start),
            SignedDuration::from_hours(1)
        );
    }

    // Every hour was loaded once (no retries needed); `load_hour` holds a slot of the 2-slot
    // `hourly_io` pool. (The tries' recorded start/end stamps cannot bound pool occupancy: the end
    // is stamped after the slot is released, so recorded intervals may overlap more than 2.)
    for (run, _) in &report.runs {
        assert_eq!(w.tries(run, "load_hour").await.len(), 1);
    }

    let expected = per_local_hour(&orders);
    let landed = partition_rows(&output);
    let prefix = format!("dt={day}/");
    let hours: BTreeMap<String, u64> = landed
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(
        hours.len(),
        landed.len(),
        "only the day's hours: {landed:?}"
    );
    let want: BTreeMap<String, u64> = expected
        .iter()
        .filter(|((d, _), _)| *d == day)
        .map(|((_, h), ids)| (format!("dt={day}/hr={h:02}"), ids.len() as u64))
        .collect();
    assert_eq!(hours, want);

    // No loss, no duplicates: the hour partitions together hold exactly the day's orders.
    let mut ids = Vec::new();
    for key in hours.keys() {
        let batches = read_partition(&output, key);
        let h: i8 = key.rsplit("hr=").next().unwrap().parse().unwrap();
        for t in times(&batches) {
            let z = t.to_zoned(tz(NEW_YORK));
            assert_eq!((z.date(), z.hour()), (day, h), "row at {t} in {key}");
        }
        ids.extend(i64_column(&batches, "order_id"));
    }
    assert_eq!(duplicates(&ids), 0);
    let day_ids: BTreeSet<i64> = in_window(
        &orders,
        midnight(day, NEW_YORK),
        midnight(day.tomorrow().unwrap(), NEW_YORK),
    )
    .iter()
    .map(|o| o.order_id)
    .collect();
    assert_eq!(ids.iter().copied().collect::<BTreeSet<_>>(), day_ids);
    assert_eq!(hours.values().sum::<u64>(), day_ids.len() as u64);
    (hours, expected)
}

/// Fall back (2026-11-01, 25 hours): both runs of the repeated local hour 01 write the one
/// `dt=2026-11-01/hr=01` partition, which holds the rows of both occurrences; the 24 hour
/// partitions hold exactly the day's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fall_back_repeated_hour_keeps_both_occurrences() {
    let w = World::new().await;
    let day = date(2026, 11, 1);
    let (hours, expected) = run_local_day(&w, day, 25).await;
    assert_eq!(hours.len(), 24);

    // 01:00 EDT is 05:00Z and 01:00 EST is 06:00Z: both occurrences have rows, and the one
    // partition holds their sum.
    let source = w.path(&format!("sources/orders-{day}.csv"));
    let orders = read_orders(&source);
    let first = count_in(
        &orders,
        utc(2026, 11, 1) + SignedDuration::from_hours(5),
        utc(2026, 11, 1) + SignedDuration::from_hours(6),
    );
    let second = count_in(
        &orders,
        utc(2026, 11, 1) + SignedDuration::from_hours(6),
        utc(2026, 11, 1) + SignedDuration::from_hours(7),
    );
    assert!(first > 0 && second > 0, "both occurrences need rows");
    assert_eq!(hours["dt=2026-11-01/hr=01"], first + second);
    assert_eq!(expected[&(day, 1)].len() as u64, first + second);

    // The pool is the DAG's declared 2-slot `hourly_io`.
    let pools = w.store.pools().await.unwrap();
    let pool = pools.iter().find(|p| p.name == POOL).expect("the pool");
    assert_eq!(pool.slots, 2);
}

/// Spring forward (2026-03-08, 23 hours): 23 hour runs, no `hr=02` partition, and the 23 hour
/// partitions hold exactly the day's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spring_forward_has_no_hour_02() {
    let w = World::new().await;
    let day = date(2026, 3, 8);
    let (hours, _) = run_local_day(&w, day, 23).await;
    assert_eq!(hours.len(), 23);
    assert!(!hours.contains_key("dt=2026-03-08/hr=02"), "{hours:?}");
    assert!(hours.contains_key("dt=2026-03-08/hr=01"));
    assert!(hours.contains_key("dt=2026-03-08/hr=03"));
}

/// The DAG declares its resource limits: `load_hour` takes one slot of the 2-slot `hourly_io`
/// pool.
#[test]
fn dag_declares_the_hourly_io_pool() {
    let registry = weir_patterns::registry();
    let def = registry.get(DAG_ID).expect("the DAG");
    assert_eq!(def.pools.get(POOL), Some(&2));
    let spec = def.dag.task("load_hour").expect("load_hour");
    assert_eq!(spec.pool, POOL);
    assert_eq!(spec.pool_slots, 1);
}
