//! 110.6.3 No batch idempotency (`110_06_03_no_batch_idempotency_antipattern`) and 110.6.4
//! Ignoring batch boundaries (`110_06_04_ignoring_batch_boundaries_antipattern`): the wrong
//! numbers of the naive versions and the right ones of weir's, each checked against counts made
//! here from the source files (the `csv` crate and jiff).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use arrow::array::{Array, RecordBatch, StringArray};
use arrow::datatypes::DataType;
use jiff::civil::{Date, date};
use jiff::{SignedDuration, Timestamp};
use weir_core::RunState;
use weir_patterns::p110::ignoring_batch_boundaries_antipattern as boundaries;
use weir_patterns::p110::no_batch_idempotency_antipattern as idempotency;
use weir_runtime::BackfillReport;

use crate::support::*;

// ---------------------------------------------------------------------------------------------
// 110.6.3 No batch idempotency

/// One record of the replayed feed, as its CSV files hold it.
struct Delivered {
    order_id: i64,
    event_time: Timestamp,
    amount_cents: i64,
}

/// Every record of a feed partition folder (`part-*.csv`), read with the `csv` crate.
fn read_feed(partition: &Path) -> Vec<Delivered> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(partition)
        .unwrap_or_else(|e| panic!("list {}: {e}", partition.display()))
        .map(|entry| entry.expect("an entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("part-") && n.ends_with(".csv"))
        })
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no part-*.csv in {}",
        partition.display()
    );
    let mut out = Vec::new();
    for file in &files {
        let mut reader = csv::Reader::from_path(file).expect("open a feed file");
        let headers = reader.headers().expect("a header").clone();
        let col = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .unwrap_or_else(|| panic!("column {name} in {}", file.display()))
        };
        let (id, time, amount) = (col("order_id"), col("event_time"), col("amount"));
        for record in reader.records() {
            let r = record.expect("a well-formed record");
            out.push(Delivered {
                order_id: r[id].parse().expect("order_id"),
                event_time: r[time].parse().expect("an RFC 3339 event_time"),
                amount_cents: parse_cents(&r[amount]),
            });
        }
    }
    out
}

/// The same New York day run twice (`weir dags run` at the same logical date: the run is cleared
/// and runs again). The naive append then holds every order twice and the day's revenue doubled;
/// replacing the partition, upserting by order_id and deduplicating by order_id within the
/// window each hold exactly the source's orders and revenue after both runs. The replayed feed
/// carries duplicates (counted here from its CSV files) and dedup removes exactly those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_run_twice_is_doubled_by_the_naive_append_only() {
    let w = World::new().await;
    let source = w.sample("orders.csv", utc(2026, 3, 1), 10, 20_000, 31);
    let orders = read_orders(&source);
    let output = w.path("out/idem");
    let sibling = |suffix: &str| w.path(&format!("out/idem{suffix}"));
    let day = date(2026, 3, 5);
    let (from, to) = (
        midnight(day, NEW_YORK),
        midnight(day.tomorrow().unwrap(), NEW_YORK),
    );
    let key = format!("dt={day}");

    // The truth, from the source.
    let in_day = in_window(&orders, from, to);
    let n = in_day.len() as u64;
    let cents: i64 = in_day.iter().map(|o| o.amount_cents).sum();
    let ids: HashSet<i64> = in_day.iter().map(|o| o.order_id).collect();
    assert_eq!(ids.len() as u64, n, "the sample has unique order ids");
    assert!(n > 1000, "{n} orders on {day}");
    // The feed replays every order whose id is a multiple of `replay_every` (default 10).
    let replayed: Vec<&&Order> = in_day.iter().filter(|o| o.order_id % 10 == 0).collect();
    let replayed_cents: i64 = replayed.iter().map(|o| o.amount_cents).sum();
    assert!(!replayed.is_empty());

    let mut last = None;
    for run in 1..=2u64 {
        let outcome = w
            .run(
                idempotency::DAG_ID,
                from,
                conf([("source", s(&source)), ("output", s(&output))]),
            )
            .await;
        assert_states(&w, &outcome, RunState::Success, &[]).await;
        let cmp: idempotency::Comparison =
            serde_json::from_value(w.output(&outcome.run, "compare").await)
                .expect("compare's output");
        assert_eq!(cmp.day, day.to_string());
        assert_eq!(
            (
                cmp.source.rows,
                cmp.source.order_ids,
                cmp.source.amount_cents
            ),
            (n, n, cents)
        );

        // The naive append: right after one run, every order once more after each further run.
        let naive = &cmp.strategies[idempotency::NAIVE_APPEND];
        assert_eq!(naive.rows, run * n, "naive after run {run}");
        assert_eq!(naive.order_ids, n, "naive after run {run}");
        assert_eq!(naive.duplicate_rows, (run - 1) * n, "naive after run {run}");
        assert_eq!(
            naive.amount_cents,
            run as i64 * cents,
            "naive after run {run}"
        );
        assert_eq!(naive.correct, run == 1, "naive after run {run}");

        // The idempotent strategies: the source's day, whatever the number of runs.
        for name in [
            idempotency::REPLACE_PARTITION,
            idempotency::UPSERT_BY_KEY,
            idempotency::DEDUP_WINDOW,
        ] {
            let m = &cmp.strategies[name];
            assert_eq!(
                (
                    m.rows,
                    m.order_ids,
                    m.duplicate_rows,
                    m.amount_cents,
                    m.correct
                ),
                (n, n, 0, cents, true),
                "{name} after run {run}"
            );
        }

        // The feed as delivered: the day's orders plus the replays.
        assert_eq!(cmp.feed.rows, n + replayed.len() as u64);
        assert_eq!(cmp.feed.order_ids, n);
        assert_eq!(cmp.feed.amount_cents, cents + replayed_cents);
        assert!(!cmp.feed.correct);
        last = Some(cmp);
    }
    let cmp = last.expect("two runs");

    // What is on disk, read back independently.
    // Naive: two loads of the day, each a full copy.
    assert_eq!(
        partition_rows(&sibling("_naive")),
        BTreeMap::from([
            (format!("{key}/load=0001"), n),
            (format!("{key}/load=0002"), n)
        ])
    );
    // Replace: one partition, replaced by the second run.
    assert_eq!(partition_rows(&output), BTreeMap::from([(key.clone(), n)]));
    // Upsert and dedup: one row per order of the day.
    for suffix in ["_upsert", "_dedup"] {
        let got = i64_column(&read_partition(&sibling(suffix), &key), "order_id");
        assert_eq!(got.len() as u64, n, "{suffix}");
        assert_eq!(
            got.iter().copied().collect::<HashSet<i64>>(),
            ids,
            "{suffix}"
        );
    }

    // The feed's CSV files: the duplicates, counted here.
    let feed = read_feed(&sibling("_feed").join(&key));
    let mut seen = HashSet::new();
    let mut duplicated = Vec::new();
    for d in &feed {
        assert!(
            from <= d.event_time && d.event_time < to,
            "{} at {}",
            d.order_id,
            d.event_time
        );
        if !seen.insert(d.order_id) {
            duplicated.push(d.order_id);
        }
    }
    assert_eq!(seen, ids, "the feed delivers exactly the day's orders");
    assert_eq!(duplicated.len(), replayed.len());
    assert!(duplicated.iter().all(|id| id % 10 == 0), "{duplicated:?}");
    assert_eq!(
        feed.iter().map(|d| d.amount_cents).sum::<i64>(),
        cents + replayed_cents
    );
    // Dedup removed exactly those.
    assert_eq!(
        cmp.feed.rows - cmp.strategies[idempotency::DEDUP_WINDOW].rows,
        duplicated.len() as u64
    );
}

// ---------------------------------------------------------------------------------------------
// 110.6.4 Ignoring batch boundaries

/// The `compare` outputs of a backfill's runs, by local day (every run must have succeeded).
async fn comparisons(w: &World, report: &BackfillReport) -> BTreeMap<Date, boundaries::Comparison> {
    let mut out = BTreeMap::new();
    for (run, state) in &report.runs {
        assert_eq!(*state, RunState::Success, "run {}", run.run_id);
        let c: boundaries::Comparison =
            serde_json::from_value(w.output(run, "compare").await).expect("compare's output");
        out.insert(c.day, c);
    }
    out
}

fn hours(n: i64) -> SignedDuration {
    SignedDuration::from_hours(n)
}

fn cents_in(orders: &[Order], from: Timestamp, to: Timestamp) -> i64 {
    in_window(orders, from, to)
        .iter()
        .map(|o| o.amount_cents)
        .sum()
}

/// Orders inside `[a.0, a.1)` but not inside `[b.0, b.1)`.
fn in_but_not(orders: &[Order], a: (Timestamp, Timestamp), b: (Timestamp, Timestamp)) -> u64 {
    orders
        .iter()
        .filter(|o| {
            let t = o.event_time;
            a.0 <= t && t < a.1 && !(b.0 <= t && t < b.1)
        })
        .count() as u64
}

/// A text column of a partition, whatever string type it was written with.
fn strings(batches: &[RecordBatch], name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let col = b
            .column_by_name(name)
            .unwrap_or_else(|| panic!("column {name}"));
        let col = arrow::compute::cast(col, &DataType::Utf8).expect("a text column");
        let col = col
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("cast to Utf8");
        out.extend((0..col.len()).map(|i| col.value(i).to_owned()));
    }
    out
}

/// The exact batches: each is its local day's rows (count, revenue, per region), the 23- and
/// 25-hour days included; the batches add up to the range; and the committed window-function
/// rows hold, per region in event-time order, the row number and the running revenue computed
/// here — so the last running total of each region is the region's revenue of the day.
fn check_exact(orders: &[Order], output: &Path, got: &BTreeMap<Date, boundaries::Comparison>) {
    let mut sum = 0;
    for (day, c) in got {
        let from = midnight(*day, NEW_YORK);
        let to = midnight(day.tomorrow().unwrap(), NEW_YORK);
        let rows = in_window(orders, from, to);
        assert_eq!((c.interval_start, c.interval_end), (from, to), "{day}");
        assert_eq!(
            c.interval_hours,
            to.duration_since(from).as_secs_f64() / 3600.0,
            "{day}"
        );
        let e = &c.exact_interval;
        assert_eq!((e.window_start, e.window_end), (from, to), "{day}");
        assert_eq!(e.orders, rows.len() as u64, "{day}");
        assert_eq!(e.amount_cents, cents_in(orders, from, to), "{day}");
        assert_eq!((e.from_other_batches, e.missed), (0, 0), "{day}");
        assert!(e.correct, "{day}");
        sum += e.orders;

        // Per region, and the window functions' last running total.
        let mut want: BTreeMap<String, (u64, i64)> = BTreeMap::new();
        for o in &rows {
            let entry = want.entry(o.region.clone()).or_default();
            entry.0 += 1;
            entry.1 += o.amount_cents;
        }
        let got_regions: BTreeMap<String, (u64, i64)> = e
            .by_region
            .iter()
            .map(|(r, t)| (r.clone(), (t.orders, t.amount_cents)))
            .collect();
        assert_eq!(got_regions, want, "{day}");
        for (region, (_, cents)) in &want {
            assert_eq!(
                e.by_region[region].last_running_total_cents,
                Some(*cents),
                "{day} {region}"
            );
        }

        // The committed rows: (row number, running total) of every order, as computed here by
        // sorting each region's orders by (event time, order id).
        let batches = read_partition(output, &format!("dt={day}"));
        let ids = i64_column(&batches, "order_id");
        let regions = strings(&batches, "region");
        let seqs = i64_column(&batches, "seq_in_region");
        let running = i64_column(&batches, "running_total_cents");
        let committed: BTreeMap<i64, (String, i64, i64)> = (0..ids.len())
            .map(|i| (ids[i], (regions[i].clone(), seqs[i], running[i])))
            .collect();
        assert_eq!(committed.len(), rows.len(), "{day}: one row per order");
        let mut by_region: BTreeMap<&str, Vec<&Order>> = BTreeMap::new();
        for &o in &rows {
            by_region.entry(o.region.as_str()).or_default().push(o);
        }
        let mut expected = BTreeMap::new();
        for (region, mut list) in by_region {
            list.sort_by_key(|o| (o.event_time, o.order_id));
            let mut total = 0;
            for (i, o) in list.into_iter().enumerate() {
                total += o.amount_cents;
                expected.insert(o.order_id, (region.to_owned(), i as i64 + 1, total));
            }
        }
        assert_eq!(committed, expected, "{day}");
    }
    // The exact batches tile the range: every row once.
    let (first, last) = (
        *got.keys().next().expect("a batch"),
        *got.keys().last().expect("a batch"),
    );
    assert_eq!(
        sum,
        count_in(
            orders,
            midnight(first, NEW_YORK),
            midnight(last.tomorrow().unwrap(), NEW_YORK)
        )
    );
}

/// A backfill of 2026-03-07..10 in New York, on time. `now - 24h` starts the 23-hour 8th at
/// 23:00 on the 7th, an hour the 7th's batch counted too; `midnight + 24h` ends the 8th at
/// 01:00 on the 9th, an hour the 9th's batch counts too. Both add those rows twice over the
/// backfill, and the 8th's revenue is wrong; the exact batches are right and add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spring_forward_rows_are_counted_twice_by_24_hour_windows() {
    let w = World::new().await;
    let source = w.sample("orders.csv", utc(2026, 3, 6), 6, 20_000, 41);
    let orders = read_orders(&source);
    let output = w.path("out/boundaries");
    let days: Vec<Date> = (7..=10).map(|d| date(2026, 3, d)).collect();
    let report = w
        .backfill(
            boundaries::DAG_ID,
            midnight(days[0], NEW_YORK),
            midnight(days[3], NEW_YORK),
            conf([("source", s(&source)), ("output", s(&output))]),
        )
        .await;
    assert_eq!(report.count(RunState::Success), 4, "{:?}", report.runs);
    let got = comparisons(&w, &report).await;
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), days);
    assert_eq!(got[&date(2026, 3, 8)].interval_hours, 23.0);
    check_exact(&orders, &output, &got);

    let range = (
        midnight(days[0], NEW_YORK),
        midnight(date(2026, 3, 11), NEW_YORK),
    );
    let (total, total_cents) = (
        count_in(&orders, range.0, range.1),
        cents_in(&orders, range.0, range.1),
    );
    let dst_day = date(2026, 3, 8);

    // now - 24h: the hour before the 23-hour day's midnight is in two windows.
    let twice = (
        local(date(2026, 3, 7), 23, NEW_YORK),
        midnight(dst_day, NEW_YORK),
    );
    let doubled = count_in(&orders, twice.0, twice.1);
    assert!(doubled > 0);
    for (day, c) in &got {
        let end = midnight(day.tomorrow().unwrap(), NEW_YORK);
        let n = &c.naive_last_24h;
        assert_eq!(
            (n.window_start, n.window_end),
            (end - hours(24), end),
            "{day}"
        );
        assert_eq!(n.orders, count_in(&orders, end - hours(24), end), "{day}");
        assert_eq!(
            n.amount_cents,
            cents_in(&orders, end - hours(24), end),
            "{day}"
        );
        let leaked = if *day == dst_day { doubled } else { 0 };
        assert_eq!(n.from_other_batches, leaked, "{day}");
        assert_eq!(
            n.missed, 0,
            "{day}: the window covers the whole 23-hour day"
        );
        assert_eq!(n.correct, *day != dst_day, "{day}");
    }
    let naive: u64 = got.values().map(|c| c.naive_last_24h.orders).sum();
    let naive_cents: i64 = got.values().map(|c| c.naive_last_24h.amount_cents).sum();
    assert_eq!(naive, total + doubled);
    assert_eq!(
        naive_cents,
        total_cents + cents_in(&orders, twice.0, twice.1)
    );

    // midnight + 24h: the first hour after the 23-hour day is in two windows.
    let twice = (
        midnight(date(2026, 3, 9), NEW_YORK),
        local(date(2026, 3, 9), 1, NEW_YORK),
    );
    let doubled = count_in(&orders, twice.0, twice.1);
    assert!(doubled > 0);
    for (day, c) in &got {
        let start = midnight(*day, NEW_YORK);
        let n = &c.naive_midnight_plus_24h;
        assert_eq!(
            (n.window_start, n.window_end),
            (start, start + hours(24)),
            "{day}"
        );
        assert_eq!(
            n.orders,
            count_in(&orders, start, start + hours(24)),
            "{day}"
        );
        let leaked = if *day == dst_day { doubled } else { 0 };
        assert_eq!(n.from_other_batches, leaked, "{day}");
        assert_eq!(n.orders_off_by, leaked as i64, "{day}");
        assert_eq!(n.correct, *day != dst_day, "{day}");
    }
    let naive: u64 = got.values().map(|c| c.naive_midnight_plus_24h.orders).sum();
    assert_eq!(naive, total + doubled);
    assert_ne!(naive, total);
}

/// A backfill of 2026-10-31..11-03 in New York with every naive run starting 90 minutes late
/// (`--conf ran_late_minutes=90`). `now - 24h` then takes each day's first 90 minutes from the
/// day before's batch and loses the 25-hour 1st's extra hour to no batch at all; `midnight +
/// 24h` ends the 1st at 23:00 and loses its last hour. The counts, the lost rows and the rows
/// leaked past the backfill's end are all computed here; the exact batches are right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fall_back_rows_are_lost_and_a_late_start_shifts_every_batch() {
    let w = World::new().await;
    let source = w.sample("orders.csv", utc(2026, 10, 30), 6, 20_000, 43);
    let orders = read_orders(&source);
    let output = w.path("out/boundaries");
    let days = [
        date(2026, 10, 31),
        date(2026, 11, 1),
        date(2026, 11, 2),
        date(2026, 11, 3),
    ];
    let report = w
        .backfill(
            boundaries::DAG_ID,
            midnight(days[0], NEW_YORK),
            midnight(days[3], NEW_YORK),
            conf([
                ("source", s(&source)),
                ("output", s(&output)),
                ("ran_late_minutes", "90".to_owned()),
            ]),
        )
        .await;
    assert_eq!(report.count(RunState::Success), 4, "{:?}", report.runs);
    let got = comparisons(&w, &report).await;
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), days);
    let dst_day = date(2026, 11, 1);
    assert_eq!(got[&dst_day].interval_hours, 25.0);
    check_exact(&orders, &output, &got);

    let range = (
        midnight(days[0], NEW_YORK),
        midnight(date(2026, 11, 4), NEW_YORK),
    );
    let total = count_in(&orders, range.0, range.1);
    let late = SignedDuration::from_mins(90);

    // now - 24h, 90 minutes late: [end + 90m - 24h, end + 90m).
    for (day, c) in &got {
        let interval = (c.interval_start, c.interval_end);
        let now = interval.1 + late;
        let window = (now - hours(24), now);
        let n = &c.naive_last_24h;
        assert_eq!((n.window_start, n.window_end), window, "{day}");
        assert_eq!(n.orders, count_in(&orders, window.0, window.1), "{day}");
        assert_eq!(
            n.from_other_batches,
            in_but_not(&orders, window, interval),
            "{day}"
        );
        assert_eq!(n.missed, in_but_not(&orders, interval, window), "{day}");
        assert!(
            n.from_other_batches > 0,
            "{day}: the next day's first 90 minutes"
        );
        assert!(!n.correct, "{day}");
    }
    // Lost: the backfill's first 90 minutes, and the hour between the 1st's 01:30 EDT (where
    // the 31st's window ends) and 01:30 EST (where the 1st's begins). Leaked: the 90 minutes
    // after the backfill's end, counted by the 3rd.
    let fall_gap = (
        midnight(dst_day, NEW_YORK) + late,
        midnight(date(2026, 11, 2), NEW_YORK) + late - hours(24),
    );
    assert_eq!(fall_gap.1.duration_since(fall_gap.0), hours(1));
    let lost =
        count_in(&orders, range.0, range.0 + late) + count_in(&orders, fall_gap.0, fall_gap.1);
    let leaked = count_in(&orders, range.1, range.1 + late);
    assert!(count_in(&orders, fall_gap.0, fall_gap.1) > 0);
    let naive: u64 = got.values().map(|c| c.naive_last_24h.orders).sum();
    assert_eq!(naive, total - lost + leaked);
    // Nothing is counted twice: every row of the gap is simply in no batch.
    let windows: Vec<(Timestamp, Timestamp)> = got
        .values()
        .map(|c| (c.naive_last_24h.window_start, c.naive_last_24h.window_end))
        .collect();
    assert!(windows.windows(2).all(|p| p[0].1 <= p[1].0));

    // midnight + 24h (no clock involved, so no late start): the 1st's last hour is lost.
    let lost_hour = (
        local(dst_day, 23, NEW_YORK),
        midnight(date(2026, 11, 2), NEW_YORK),
    );
    let lost = count_in(&orders, lost_hour.0, lost_hour.1);
    assert!(lost > 0);
    for (day, c) in &got {
        let n = &c.naive_midnight_plus_24h;
        assert_eq!(n.from_other_batches, 0, "{day}");
        let (missed, cents_off) = if *day == dst_day {
            (lost, -cents_in(&orders, lost_hour.0, lost_hour.1))
        } else {
            (0, 0)
        };
        assert_eq!(n.missed, missed, "{day}");
        assert_eq!(n.amount_cents_off_by, cents_off, "{day}: the day's revenue");
        assert_eq!(n.correct, *day != dst_day, "{day}");
    }
    let naive: u64 = got.values().map(|c| c.naive_midnight_plus_24h.orders).sum();
    assert_eq!(naive, total - lost);
}
