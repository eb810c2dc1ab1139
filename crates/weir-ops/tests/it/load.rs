//! `load_window`: the run's interval of a source, routed through the configured partitioner.

use serde_json::json;
use weir_core::TaskState;
use weir_data::partitioners::Granularity;
use weir_ops::{LoadWindow, PartitionBy, task, window_param_specs};

use crate::{World, ts};

fn source(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("orders.csv");
    std::fs::write(
        &path,
        "order_id,region,event_time\n\
         1,EU,2026-03-01T00:30:00Z\n\
         2,US,2026-03-01T00:45:00Z\n\
         3,EU,2026-03-01T23:10:00Z\n\
         4,US,2026-03-02T00:00:00Z\n\
         5,EU,not a time\n",
    )
    .unwrap();
    path
}

#[tokio::test]
async fn hours_of_the_interval_are_all_written_and_rows_land_in_their_hour() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let out = dir.path().join("hourly");
    let w = World::declaring(
        vec![(
            "ops",
            vec![task("load", LoadWindow::by_date(Granularity::Hour))],
        )],
        window_param_specs(),
    )
    .await;
    let conf = json!({"source": src, "output": out});
    let ran = w.run(ts("2026-03-01T12:00:00Z"), conf, "load").await;
    assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
    let loaded = ran.output.unwrap();
    assert_eq!(
        loaded["rows"], 3,
        "rows 1-3 are in the UTC day; 4 is the next"
    );
    assert_eq!(loaded["source_rejects"], 1);
    let parts = weir_data::Dataset::open(&out)
        .unwrap()
        .partitions()
        .unwrap();
    assert_eq!(
        parts.len(),
        24,
        "every hour of the day is written, empty or not"
    );
    let rows = |p: &str| parts.iter().find(|i| i.partition == p).unwrap().rows;
    assert_eq!(rows("dt=2026-03-01/hr=00"), 2);
    assert_eq!(rows("dt=2026-03-01/hr=23"), 1);
    assert_eq!(rows("dt=2026-03-01/hr=12"), 0);
}

#[tokio::test]
async fn geo_and_hash_route_by_their_key_and_a_missing_key_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let geo = LoadWindow::new(PartitionBy::Geo {
        key: "region".into(),
    });
    let hash = LoadWindow::new(PartitionBy::Hash {
        key: "order_id".into(),
        buckets: 4,
    });
    let missing = LoadWindow::new(PartitionBy::Geo {
        key: "country".into(),
    });
    let zero = LoadWindow::new(PartitionBy::Hash {
        key: "order_id".into(),
        buckets: 0,
    });
    let w = World::declaring(
        vec![
            ("geo", vec![task("load", geo)]),
            ("hash", vec![task("load", hash)]),
            ("missing", vec![task("load", missing).retries(2)]),
            ("zero", vec![task("load", zero).retries(2)]),
        ],
        window_param_specs(),
    )
    .await;
    let day = ts("2026-03-01T00:00:00Z");
    let conf = |name: &str| json!({"source": src, "output": dir.path().join(name)});
    let ran = w.run_dag("geo", day, conf("geo"), "load").await;
    let parts: Vec<(String, u64)> = weir_data::Dataset::open(&dir.path().join("geo"))
        .unwrap()
        .partitions()
        .unwrap()
        .into_iter()
        .map(|p| (p.partition, p.rows))
        .collect();
    assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
    assert_eq!(
        parts,
        vec![("region=EU".into(), 2), ("region=US".into(), 1)]
    );
    let ran = w.run_dag("hash", day, conf("hash"), "load").await;
    let total: u64 = ran.output.unwrap()["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert!(p["partition"].as_str().unwrap().starts_with("bucket=0"));
            p["rows"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(total, 3);
    w.run_dag("missing", day, conf("missing"), "load")
        .await
        .assert_failed_on_try(1, "column \"country\" not found");
    w.run_dag("zero", day, conf("zero"), "load")
        .await
        .assert_failed_on_try(1, "buckets = 0: use 1 to 4096");
}

/// `n` orders with ids 1..=n, a region and a note of varying length, all in one day.
fn many(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let path = dir.join("many.csv");
    let mut text = String::from("order_id,region,event_time,note\n");
    for i in 1..=n {
        let region = ["EU", "US", "APAC"][i % 3];
        text.push_str(&format!(
            "{i},{region},2026-03-01T{:02}:{:02}:00Z,{}\n",
            (i / 60) % 24,
            i % 60,
            "x".repeat(i % 50)
        ));
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn layout(by: weir_ops::Layout) -> weir_ops::Partition {
    weir_ops::Partition::new(by)
}

fn rows_by_partition(dir: &std::path::Path) -> Vec<(String, u64, u64)> {
    weir_data::Dataset::open(dir)
        .unwrap()
        .partitions()
        .unwrap()
        .into_iter()
        .map(|p| (p.partition, p.rows, p.bytes))
        .collect()
}

#[tokio::test]
async fn partition_lays_out_a_whole_source_by_range_size_or_hash_and_retires_stale_layouts() {
    use weir_ops::Layout;
    let dir = tempfile::tempdir().unwrap();
    let src = many(dir.path(), 5000);
    let w = World::declaring(
        vec![
            (
                "range",
                vec![task(
                    "p",
                    layout(Layout::Range {
                        key: "order_id".into(),
                        partitions: 4,
                        sample: 100,
                    }),
                )],
            ),
            (
                "size",
                vec![task(
                    "p",
                    layout(Layout::Size {
                        target_bytes: 16 * 1024,
                    }),
                )],
            ),
            (
                "hash4",
                vec![task(
                    "p",
                    layout(Layout::Hash {
                        key: "order_id".into(),
                        buckets: 4,
                    }),
                )],
            ),
            (
                "hash2",
                vec![task(
                    "p",
                    layout(Layout::Hash {
                        key: "order_id".into(),
                        buckets: 2,
                    }),
                )],
            ),
            (
                "bad",
                vec![
                    task(
                        "p",
                        layout(Layout::Range {
                            key: "order_id".into(),
                            partitions: 0,
                            sample: 10,
                        }),
                    )
                    .retries(2),
                ],
            ),
        ],
        window_param_specs(),
    )
    .await;
    let day = ts("2026-03-01T00:00:00Z");
    let conf = |name: &str| json!({"source": src, "output": dir.path().join(name)});

    // Ranges planned from a 100-key sample, then recounted: every row once, balanced.
    let ran = w.run_dag("range", day, conf("range"), "p").await;
    assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
    let ranges = rows_by_partition(&dir.path().join("range"));
    let names: Vec<&str> = ranges.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(names, ["range=00", "range=01", "range=02", "range=03"]);
    assert_eq!(ranges.iter().map(|r| r.1).sum::<u64>(), 5000);
    assert!(
        ranges.iter().all(|r| r.1 >= 800 && r.1 <= 1700),
        "{ranges:?}"
    );

    // Size: several chunks of about the target each (the estimate learns from each commit).
    let ran = w.run_dag("size", day, conf("size"), "p").await;
    assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
    let chunks = rows_by_partition(&dir.path().join("size"));
    assert!(chunks.len() >= 3, "{chunks:?}");
    assert_eq!(chunks.iter().map(|c| c.1).sum::<u64>(), 5000);
    let (body, _last) = chunks.split_at(chunks.len() - 1);
    assert!(body.iter().all(|c| c.2 <= 3 * 16 * 1024), "{chunks:?}");

    // Four buckets, then two into the same dataset: buckets 02 and 03 are retired whole.
    let out = dir.path().join("hash");
    let same = json!({"source": src, "output": out});
    w.run_dag("hash4", day, same.clone(), "p").await;
    assert_eq!(rows_by_partition(&out).len(), 4);
    let ran = w.run_dag("hash2", day, same, "p").await;
    assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
    let buckets = rows_by_partition(&out);
    assert_eq!(
        buckets.iter().map(|b| b.0.as_str()).collect::<Vec<_>>(),
        ["bucket=00", "bucket=01"]
    );
    assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 5000);

    w.run_dag("bad", day, conf("bad"), "p")
        .await
        .assert_failed_on_try(1, "partitions = 0: use 1 to 4096");
}

/// A month layout puts the interval's rows in `mo=YYYY-MM`; an interval layout in one
/// `dt=/NAME=HHMM` named by the interval's local start — in the run's zone, so `--conf tz`
/// moves both the interval and the name.
#[tokio::test]
async fn month_and_interval_layouts_write_one_partition_named_in_the_run_zone() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let shift = LoadWindow::new(PartitionBy::Interval {
        name: "shift".into(),
    });
    let w = World::declaring(
        vec![
            (
                "ops",
                vec![task("month", LoadWindow::by_date(Granularity::Month))],
            ),
            ("shift", vec![task("shift", shift)]),
        ],
        window_param_specs(),
    )
    .await;
    let out = dir.path().join("monthly");
    let conf = json!({"source": src, "output": out});
    let ran = w.run(ts("2026-03-01T12:00:00Z"), conf, "month").await;
    assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
    let parts = weir_data::Dataset::open(&out)
        .unwrap()
        .partitions()
        .unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(
        (parts[0].partition.as_str(), parts[0].rows),
        ("mo=2026-03", 3)
    );

    // Tokyo's 2026-03-01 runs from 2026-02-28T15:00Z: rows 1 and 2, not 3 (23:10Z is the 2nd).
    let out = dir.path().join("shifts");
    let conf = json!({"source": src, "output": out, "tz": "Asia/Tokyo"});
    let ran = w
        .run_dag("shift", ts("2026-03-01T12:00:00Z"), conf, "shift")
        .await;
    assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
    assert_eq!(ran.output.unwrap()["rows"], 2);
    let parts = weir_data::Dataset::open(&out)
        .unwrap()
        .partitions()
        .unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(
        (parts[0].partition.as_str(), parts[0].rows),
        ("dt=2026-03-01/shift=0000", 2)
    );
}

/// An interval layout named `dt` (it would clash with the date level) is a config error: the
/// task fails on its first try naming the problem, and writes nothing.
#[tokio::test]
async fn an_interval_layout_named_dt_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let bad = LoadWindow::new(PartitionBy::Interval { name: "dt".into() });
    let w = World::declaring(
        vec![("ops", vec![task("load", bad.clone())])],
        window_param_specs(),
    )
    .await;
    assert!(!weir_ops::Operator::validate(&bad).is_empty());
    let out = dir.path().join("out");
    let conf = json!({"source": src, "output": out});
    let ran = w.run(ts("2026-03-01T12:00:00Z"), conf, "load").await;
    ran.assert_failed_on_try(1, "interval partitioning needs a `name`");
    assert!(!out.exists());
}

/// Reject policies: by default a malformed row is kept and the load goes on; above
/// `max_reject_ratio`, or at the first one under `on_reject=fail_fast`, the load fails on its
/// first try, commits nothing (the partitions of an earlier good load stay as they were), and
/// still keeps its rejects in the store.
#[tokio::test]
async fn a_reject_policy_fails_the_load_without_committing_and_keeps_the_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let out = dir.path().join("daily");
    let w = World::declaring(
        vec![(
            "ops",
            vec![task("load", LoadWindow::by_date(Granularity::Day))],
        )],
        window_param_specs(),
    )
    .await;
    let day = ts("2026-03-01T12:00:00Z");
    let ran = w
        .run(day, json!({"source": src, "output": out}), "load")
        .await;
    assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
    let before = weir_data::Dataset::open(&out)
        .unwrap()
        .partitions()
        .unwrap();
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].rows, 3);
    let checksum = weir_data::Dataset::open(&out)
        .unwrap()
        .checksum(&before[0].key)
        .unwrap();

    // One of five rows (20%) is rejected: above 10%, the load fails and commits nothing.
    let ran = w
        .run(
            day,
            json!({"source": src, "output": out, "max_reject_ratio": 0.1}),
            "load",
        )
        .await;
    ran.assert_failed_on_try(
        1,
        "1 of 5 rows (20.00%) were rejected, above max_reject_ratio 0.1",
    );
    let error = ran.ti.error.clone().unwrap();
    assert!(error.contains("line 6"), "{error}");
    let ds = weir_data::Dataset::open(&out).unwrap();
    assert_eq!(ds.partitions().unwrap(), before);
    assert_eq!(
        ds.checksum(&before[0].key).unwrap(),
        checksum,
        "the old partition is intact"
    );
    // At 20% it goes on.
    let ran = w
        .run(
            day,
            json!({"source": src, "output": out, "max_reject_ratio": 0.2}),
            "load",
        )
        .await;
    assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);

    // A source no load has read yet, failed fast: its reject is kept all the same (once per
    // source position, however many loads met it).
    let other = dir.path().join("again");
    std::fs::create_dir_all(&other).unwrap();
    let src2 = source(&other);
    let ran = w
        .run(
            day,
            json!({"source": src2, "output": out, "on_reject": "fail_fast"}),
            "load",
        )
        .await;
    ran.assert_failed_on_try(1, "on_reject is fail_fast");
    assert_eq!(
        weir_data::Dataset::open(&out)
            .unwrap()
            .partitions()
            .unwrap(),
        before
    );
    let rejects =
        w.ex.store()
            .dead_letters(&weir_store::RejectFilter::default())
            .await
            .unwrap();
    let mut sources: Vec<&str> = rejects.iter().map(|r| r.source.as_str()).collect();
    sources.sort();
    sources.dedup();
    assert_eq!(sources.len(), 2, "{rejects:?}");
    assert!(rejects.iter().all(|r| r.line == 6), "{rejects:?}");
}
