//! 110.2 Batch data partitioning: date, id range, hash, size and geographic partitions.
//!
//! Each DAG is driven with `trigger_run` and `--conf` params; expected counts come from the source
//! read with the `csv` crate, and what landed is read back from the Parquet files.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use arrow::array::{Array, Decimal128Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::DataType;
use jiff::civil::date;
use serde_json::Value;
use weir_core::{RunState, TaskState};
use weir_data::partitioners::{BucketScheme, HashPartitioner, RangePlan};
use weir_patterns::p110::{
    date_based_partitioning, geographic_partitioning, hash_based_partitioning,
    id_range_partitioning, size_based_partitioning,
};

use crate::support::*;

const UTC: &str = "UTC";

/// `country` and `note` of every order, read with the `csv` crate (an empty note is `None`).
fn read_country_note(path: &Path) -> HashMap<i64, (String, Option<String>)> {
    let mut reader = csv::Reader::from_path(path).expect("open the source");
    let headers = reader.headers().expect("a header").clone();
    let col = |name: &str| headers.iter().position(|h| h == name).expect(name);
    let (id, country, note) = (col("order_id"), col("country"), col("note"));
    reader
        .records()
        .map(|r| {
            let r = r.expect("a well-formed record");
            let n = &r[note];
            (
                r[id].parse().expect("order_id"),
                (r[country].to_owned(), (!n.is_empty()).then(|| n.to_owned())),
            )
        })
        .collect()
}

/// A column as optional strings (cast to Utf8 first, whatever its type).
fn str_column(batches: &[RecordBatch], name: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for b in batches {
        let col = b
            .column_by_name(name)
            .unwrap_or_else(|| panic!("column {name}"));
        let text = arrow::compute::cast(col, &DataType::Utf8).expect("cast to Utf8");
        let text = text.as_any().downcast_ref::<StringArray>().expect("Utf8");
        out.extend((0..text.len()).map(|i| (!text.is_null(i)).then(|| text.value(i).to_owned())));
    }
    out
}

fn max_over_mean(counts: &[u64]) -> f64 {
    let mean = counts.iter().sum::<u64>() as f64 / counts.len() as f64;
    *counts.iter().max().unwrap() as f64 / mean
}

// ---------------------------------------------------------------------------------------------
// 110.2.1 Date-based partitioning

/// Runs for 03-02 and 03-04 write `dt=` partitions holding exactly each UTC day's rows;
/// `discover_partitions` lists them and reports 03-03 as missing; once 03-03 runs, no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_partitions_per_run_day_and_discovery_reports_the_gap() {
    let w = World::new().await;
    let source = w.sample("orders.csv", utc(2026, 3, 1), 10, 20_000, 21);
    let output = w.path("out/by-date");
    let orders = read_orders(&source);
    let per_day = per_local_date(&orders, UTC);
    let params = conf([("source", s(&source)), ("output", s(&output))]);

    for d in [2, 4] {
        let outcome = w
            .run(
                date_based_partitioning::DAG_ID,
                utc(2026, 3, d),
                params.clone(),
            )
            .await;
        assert_states(
            &w,
            &outcome,
            RunState::Success,
            &[
                ("partition_by_date", TaskState::Success),
                ("discover_partitions", TaskState::Success),
            ],
        )
        .await;
        if d == 4 {
            let found = w.output(&outcome.run, "discover_partitions").await;
            assert_eq!(found["partitions"], 2, "{found}");
            assert_eq!(found["missing_days"], serde_json::json!(["2026-03-03"]));
            assert_eq!(
                found["rows"],
                per_day[&date(2026, 3, 2)] + per_day[&date(2026, 3, 4)]
            );
            let listed: BTreeMap<String, u64> = found["listing"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p["partition"].as_str().unwrap().to_owned(),
                        p["rows"].as_u64().unwrap(),
                    )
                })
                .collect();
            assert_eq!(listed, partition_rows(&output));
        }
    }
    let want = |days: &[i8]| -> BTreeMap<String, u64> {
        days.iter()
            .map(|&d| (format!("dt=2026-03-{d:02}"), per_day[&date(2026, 3, d)]))
            .collect()
    };
    assert_eq!(partition_rows(&output), want(&[2, 4]));
    for d in [2, 4] {
        let batches = read_partition(&output, &format!("dt=2026-03-{d:02}"));
        for t in times(&batches) {
            assert_eq!(t.to_zoned(tz(UTC)).date(), date(2026, 3, d), "row at {t}");
        }
        assert_eq!(duplicates(&i64_column(&batches, "order_id")), 0);
    }

    // Filling the gap: discovery then reports none.
    let outcome = w
        .run(date_based_partitioning::DAG_ID, utc(2026, 3, 3), params)
        .await;
    assert_states(&w, &outcome, RunState::Success, &[]).await;
    assert_eq!(partition_rows(&output), want(&[2, 3, 4]));
    let found = w.output(&outcome.run, "discover_partitions").await;
    assert_eq!(found["partitions"], 3, "{found}");
    assert_eq!(found["missing_days"], serde_json::json!([]));
}

/// `--conf granularity=hour`: 24 `dt=/hr=` partitions, each with exactly its UTC hour's rows,
/// summing to the day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hour_granularity_writes_dt_hr_partitions_summing_to_the_day() {
    let w = World::new().await;
    let source = w.sample("orders.csv", utc(2026, 3, 1), 10, 20_000, 22);
    let output = w.path("out/by-hour");
    let orders = read_orders(&source);
    let day = date(2026, 3, 5);
    let outcome = w
        .run(
            date_based_partitioning::DAG_ID,
            utc(2026, 3, 5),
            conf([
                ("source", s(&source)),
                ("output", s(&output)),
                ("granularity", "hour".to_owned()),
            ]),
        )
        .await;
    assert_states(&w, &outcome, RunState::Success, &[]).await;

    let mut want = BTreeMap::new();
    for h in 0..24i8 {
        let from = local(day, h, UTC);
        let to = from + jiff::SignedDuration::from_hours(1);
        want.insert(format!("dt={day}/hr={h:02}"), count_in(&orders, from, to));
    }
    let landed = partition_rows(&output);
    assert_eq!(landed, want);
    assert_eq!(
        landed.values().sum::<u64>(),
        per_local_date(&orders, UTC)[&day]
    );
    let batches = read_partition(&output, &format!("dt={day}/hr=15"));
    for t in times(&batches) {
        assert_eq!(t.to_zoned(tz(UTC)).hour(), 15, "row at {t}");
    }
}

// ---------------------------------------------------------------------------------------------
// 110.2.2 ID range partitioning

/// 8 equal-count ranges of `customer_id` from the plan: ascending, disjoint, inclusive; every
/// row in its range, counts as planned, nothing lost or doubled; far better balanced than
/// equal-width ranges of the skewed ids. A re-run with 4 ranges leaves exactly 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_ranges_are_planned_balanced_and_replace_on_rerun() {
    let w = World::new().await;
    let source = w.sample("orders.csv", utc(2026, 3, 1), 10, 20_000, 23);
    let output = w.path("out/by-range");
    let orders = read_orders(&source);
    let run = |n: &str| {
        w.run(
            id_range_partitioning::DAG_ID,
            utc(2026, 3, 5),
            conf([
                ("source", s(&source)),
                ("output", s(&output)),
                ("key", "customer_id".to_owned()),
                ("partitions", n.to_owned()),
            ]),
        )
    };
    let outcome = run("8").await;
    assert_states(
        &w,
        &outcome,
        RunState::Success,
        &[
            ("plan_ranges", TaskState::Success),
            ("check_ranges", TaskState::Success),
        ],
    )
    .await;

    let plan: Value = serde_json::from_str(
        &std::fs::read_to_string(output.join(id_range_partitioning::PLAN_FILE))
            .expect("the range plan"),
    )
    .expect("plan JSON");
    let ranges: Vec<(i64, i64, u64)> = plan["ranges"]
        .as_array()
        .expect("ranges")
        .iter()
        .map(|r| {
            (
                r["lo"].as_i64().unwrap(),
                r["hi"].as_i64().unwrap(),
                r["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ranges.len(), 8, "{plan}");
    for (lo, hi, _) in &ranges {
        assert!(lo <= hi, "{plan}");
    }
    for pair in ranges.windows(2) {
        assert!(pair[0].1 < pair[1].0, "ranges overlap or descend: {plan}");
    }

    let landed = partition_rows(&output);
    let names: Vec<String> = (0..8).map(|i| format!("range={i:02}")).collect();
    assert_eq!(landed.keys().cloned().collect::<Vec<_>>(), names);
    let mut all_ids = Vec::new();
    let mut counts = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (lo, hi, planned) = ranges[i];
        let batches = read_partition(&output, name);
        let keys = i64_column(&batches, "customer_id");
        assert_eq!(keys.len() as u64, planned, "{name}");
        assert!(
            keys.iter().all(|k| lo <= *k && *k <= hi),
            "{name} holds a key outside [{lo}, {hi}]"
        );
        counts.push(planned);
        all_ids.extend(i64_column(&batches, "order_id"));
    }
    assert_eq!(all_ids.len(), orders.len());
    assert_eq!(duplicates(&all_ids), 0);
    let source_ids: HashSet<i64> = orders.iter().map(|o| o.order_id).collect();
    assert!(all_ids.iter().all(|id| source_ids.contains(id)));

    // Balance against equal-width ranges over [min, max] of the same ids.
    let min = orders.iter().map(|o| o.customer_id).min().unwrap();
    let max = orders.iter().map(|o| o.customer_id).max().unwrap();
    let width = (max - min) as f64 / 8.0;
    let mut equal_width = vec![0u64; 8];
    for o in &orders {
        let i = (((o.customer_id - min) as f64 / width) as usize).min(7);
        equal_width[i] += 1;
    }
    let (quantile, naive) = (max_over_mean(&counts), max_over_mean(&equal_width));
    assert!(
        quantile < 1.5 && quantile * 2.0 < naive,
        "planned {counts:?} (max/mean {quantile:.2}) vs equal-width {equal_width:?} ({naive:.2})"
    );
    let checked = w.output(&outcome.run, "check_ranges").await;
    assert_eq!(checked["rows"], orders.len() as u64, "{checked}");

    // Re-run with 4 ranges: exactly 4 partitions, the same rows.
    let outcome = run("4").await;
    assert_states(&w, &outcome, RunState::Success, &[]).await;
    let landed = partition_rows(&output);
    assert_eq!(
        landed.keys().cloned().collect::<Vec<_>>(),
        ["range=00", "range=01", "range=02", "range=03"]
    );
    assert_eq!(landed.values().sum::<u64>(), orders.len() as u64);
}

/// `--conf sample=500` over 20,000 rows: the plan comes from a 500-key reservoir sample, so its
/// boundaries are sampled, but the second pass makes every count exact — each range holds exactly
/// the rows the plan file says, every row lands once, and the ranges stay balanced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_ranges_planned_from_a_small_sample_have_exact_counts() {
    let w = World::new().await;
    let source = w.sample("orders.csv", utc(2026, 3, 1), 10, 20_000, 29);
    let output = w.path("out/by-range");
    let orders = read_orders(&source);
    let outcome = w
        .run(
            id_range_partitioning::DAG_ID,
            utc(2026, 3, 5),
            conf([
                ("source", s(&source)),
                ("output", s(&output)),
                ("partitions", "6".to_owned()),
                ("sample", "500".to_owned()),
                ("format", "jsonl".to_owned()),
            ]),
        )
        .await;
    assert_states(
        &w,
        &outcome,
        RunState::Success,
        &[
            ("plan_ranges", TaskState::Success),
            ("check_ranges", TaskState::Success),
        ],
    )
    .await;
    let planned = w.output(&outcome.run, "plan_ranges").await;
    assert!(
        planned.as_array().expect("mapped items")[0]["sampled"] == true,
        "20,000 rows cannot fit a sample of 500: {planned}"
    );
    let plan = RangePlan::from_json(
        &std::fs::read_to_string(output.join(id_range_partitioning::PLAN_FILE))
            .expect("the range plan"),
    )
    .expect("a valid, contiguous plan");
    assert_eq!(plan.len(), 6, "{plan:?}");
    let min = orders.iter().map(|o| o.customer_id).min().unwrap();
    let max = orders.iter().map(|o| o.customer_id).max().unwrap();
    assert_eq!((plan.ranges()[0].lo, plan.ranges()[5].hi), (min, max));
    // Counted independently from the source, range by range.
    let expected: Vec<u64> = plan
        .ranges()
        .iter()
        .map(|r| orders.iter().filter(|o| r.contains(o.customer_id)).count() as u64)
        .collect();
    let counts: Vec<u64> = plan.ranges().iter().map(|r| r.rows).collect();
    assert_eq!(counts, expected, "the plan file's counts are exact");
    assert_eq!(counts.iter().sum::<u64>(), orders.len() as u64);
    let mut all_ids = Vec::new();
    for (i, r) in plan.ranges().iter().enumerate() {
        let name = format!("range={i:02}");
        assert!(
            output.join(&name).join("part-00000.jsonl").exists(),
            "{name}"
        );
        let batches = read_partition(&output, &name);
        let keys = i64_column(&batches, "customer_id");
        assert_eq!(keys.len() as u64, r.rows, "range {i}");
        assert!(keys.iter().all(|k| r.contains(*k)), "range {i}");
        all_ids.extend(i64_column(&batches, "order_id"));
    }
    assert_eq!(all_ids.len(), orders.len());
    assert_eq!(duplicates(&all_ids), 0);
    assert!(max_over_mean(&counts) < 1.5, "{counts:?}");
}

// ---------------------------------------------------------------------------------------------
// 110.2.3 Hash-based partitioning

/// 8 jump-hash buckets of `customer_id`: every customer in exactly one bucket, the one
/// `HashPartitioner` names; every row landed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_buckets_hold_each_customer_in_its_jump_bucket() {
    let w = World::new().await;
    let source = w.sample("orders.csv", utc(2026, 3, 1), 10, 20_000, 24);
    let output = w.path("out/by-hash");
    let orders = read_orders(&source);
    run_hash_buckets(&w, &source, &output, 8, &[]).await;
    let hp = HashPartitioner::new("customer_id", 8, BucketScheme::Jump).unwrap();
    let landed = partition_rows(&output);
    assert!(
        landed.keys().all(|k| {
            k.strip_prefix("bucket=")
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n < 8 && k.len() == "bucket=00".len())
        }),
        "{landed:?}"
    );
    let mut bucket_of: HashMap<i64, u32> = HashMap::new();
    let mut all_ids = Vec::new();
    for name in landed.keys() {
        let bucket: u32 = name["bucket=".len()..].parse().unwrap();
        let batches = read_partition(&output, name);
        for k in i64_column(&batches, "customer_id") {
            let previous = bucket_of.insert(k, bucket);
            assert!(
                previous.is_none_or(|b| b == bucket),
                "customer {k} in buckets {previous:?} and {bucket}"
            );
            assert_eq!(hp.bucket_of_i64(k), bucket, "customer {k}");
        }
        all_ids.extend(i64_column(&batches, "order_id"));
    }
    let customers: HashSet<i64> = orders.iter().map(|o| o.customer_id).collect();
    assert_eq!(bucket_of.len(), customers.len());
    assert_eq!(all_ids.len(), orders.len());
    assert_eq!(duplicates(&all_ids), 0);
    // Per-bucket counts equal the independent count of the bucket's customers' orders.
    assert_eq!(landed, expected_buckets(&orders, &hp));
}

/// Runs 110.2.3 with `key=customer_id`, `partitions` and `extra` conf, and expects success.
async fn run_hash_buckets(
    w: &World,
    source: &Path,
    output: &Path,
    partitions: u32,
    extra: &[(&str, &str)],
) {
    let mut pairs = vec![
        ("source".to_owned(), s(source)),
        ("output".to_owned(), s(output)),
        ("key".to_owned(), "customer_id".to_owned()),
        ("partitions".to_owned(), partitions.to_string()),
    ];
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let outcome = w
        .run(
            hash_based_partitioning::DAG_ID,
            utc(2026, 3, 5),
            conf(pairs),
        )
        .await;
    assert_states(
        w,
        &outcome,
        RunState::Success,
        &[
            ("assess_keys", TaskState::Success),
            ("write_buckets", TaskState::Success),
        ],
    )
    .await;
}

/// Rows per `bucket=NN` by the bucket of each order's customer: the independent count.
fn expected_buckets(orders: &[Order], hp: &HashPartitioner) -> BTreeMap<String, u64> {
    let mut want = BTreeMap::new();
    for o in orders {
        *want
            .entry(format!("bucket={:02}", hp.bucket_of_i64(o.customer_id)))
            .or_insert(0u64) += 1;
    }
    want
}

/// A JSON-lines source written out as CSV buckets (`--conf format=csv`): every row lands once,
/// in its customer's bucket, and the files are CSV; an unknown format fails naming the conf.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_buckets_from_json_lines_written_as_csv() {
    let w = World::new().await;
    let csv_source = w.sample("orders.csv", utc(2026, 3, 1), 10, 6_000, 31);
    let orders = read_orders(&csv_source);
    // The well-formed rows, as a JSON-lines landing file.
    let source = w.path("orders.jsonl");
    let opts = weir_data::ReadOptions {
        schema: Some(weir_data::orders_schema()),
        ..weir_data::ReadOptions::default()
    };
    let mut reader = weir_data::open_source(&csv_source, &opts).unwrap();
    let mut json = arrow::json::LineDelimitedWriter::new(std::fs::File::create(&source).unwrap());
    for batch in reader.by_ref() {
        json.write(&batch.unwrap()).unwrap();
    }
    json.finish().unwrap();

    let output = w.path("out/by-hash-csv");
    run_hash_buckets(&w, &source, &output, 4, &[("format", "csv")]).await;
    let hp = HashPartitioner::new("customer_id", 4, BucketScheme::Jump).unwrap();
    let want = expected_buckets(&orders, &hp);
    assert_eq!(partition_rows(&output), want);
    let mut all_ids = Vec::new();
    for name in want.keys() {
        let (files, _) = partition_files(&output, name);
        assert!(files.is_empty(), "no Parquet expected in {name}: {files:?}");
        let csv_file = output.join(name).join("part-00000.csv");
        assert!(csv_file.exists(), "{}", csv_file.display());
        let batches = read_partition(&output, name);
        for k in i64_column(&batches, "customer_id") {
            assert_eq!(hp.bucket_of_i64(k), name[7..].parse::<u32>().unwrap());
        }
        all_ids.extend(i64_column(&batches, "order_id"));
    }
    assert_eq!(all_ids.len(), orders.len());
    assert_eq!(duplicates(&all_ids), 0);

    // A format the writers do not have is refused when the run is created: no task starts.
    let bad = weir_runtime::trigger_run(
        &w.ex,
        weir_runtime::TriggerRequest {
            dag_id: dag_id(hash_based_partitioning::DAG_ID),
            logical_date: Some(utc(2026, 3, 6)),
            conf: conf([
                ("source", s(&source)),
                ("output", s(&w.path("out/bad-format"))),
                ("key", "customer_id".to_owned()),
                ("format", "xlsx".to_owned()),
            ]),
        },
    )
    .await
    .expect_err("format=xlsx is refused");
    assert_eq!(
        bad.to_string(),
        "--conf format=xlsx is invalid: `format` takes one of parquet, csv, jsonl"
    );
    assert!(!w.path("out/bad-format").join("bucket=00").exists());
}

/// `key=region` cannot fill 8 buckets: `assess_keys` refuses it naming max_skew, and nothing
/// is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_on_region_is_refused_and_writes_nothing() {
    let w = World::new().await;
    let source = w.sample("orders.csv", utc(2026, 3, 1), 10, 20_000, 25);
    let output = w.path("out/by-hash-region");
    let outcome = w
        .run(
            hash_based_partitioning::DAG_ID,
            utc(2026, 3, 5),
            conf([
                ("source", s(&source)),
                ("output", s(&output)),
                ("key", "region".to_owned()),
                ("partitions", "8".to_owned()),
            ]),
        )
        .await;
    assert_states(
        &w,
        &outcome,
        RunState::Failed,
        &[
            ("assess_keys", TaskState::Failed),
            ("write_buckets", TaskState::UpstreamFailed),
        ],
    )
    .await;
    let error = w.tasks(&outcome.run).await["assess_keys"]
        .error
        .clone()
        .unwrap_or_default();
    assert!(error.contains("max_skew"), "{error}");
    assert!(error.contains("region"), "{error}");
    assert!(
        !output.exists() || partition_rows(&output).is_empty(),
        "partitions were written"
    );
    assert!(w.store.manifests(&s(&output)).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// 110.2.4 Size-based partitioning

/// `target_bytes=200000`: every chunk's file is at most 1.1 × the target, the chunks are not
/// needlessly small, and every row landed exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_chunks_stay_near_the_target() {
    const TARGET: u64 = 200_000;
    let w = World::new().await;
    let source = w.sample("orders.csv", utc(2026, 3, 1), 10, 20_000, 26);
    let output = w.path("out/by-size");
    let orders = read_orders(&source);
    let outcome = w
        .run(
            size_based_partitioning::DAG_ID,
            utc(2026, 3, 5),
            conf([
                ("source", s(&source)),
                ("output", s(&output)),
                ("target_bytes", TARGET.to_string()),
            ]),
        )
        .await;
    assert_states(&w, &outcome, RunState::Success, &[]).await;

    let infos = weir_data::Dataset::open(&output)
        .unwrap()
        .partitions()
        .unwrap();
    let sizes: Vec<(String, u64)> = infos
        .iter()
        .map(|p| (p.partition.clone(), p.bytes))
        .collect();
    assert!(infos.len() >= 2, "the source fits one chunk? {sizes:?}");
    for (i, p) in infos.iter().enumerate() {
        assert_eq!(p.partition, format!("chunk={i:05}"), "{sizes:?}");
        assert_eq!(p.files, 1, "{}", p.partition);
        assert!(
            p.bytes * 10 <= TARGET * 11,
            "{} is {} bytes, over 1.1 × {TARGET}: {sizes:?}",
            p.partition,
            p.bytes
        );
    }
    // Not trivially small: the whole is cut in at most twice the minimal number of chunks.
    let total: u64 = infos.iter().map(|p| p.bytes).sum();
    assert!(
        (infos.len() as u64) <= 2 * total.div_ceil(TARGET) + 1,
        "{sizes:?}"
    );
    let mut all_ids = Vec::new();
    for p in &infos {
        all_ids.extend(i64_column(
            &read_partition(&output, &p.partition),
            "order_id",
        ));
    }
    assert_eq!(all_ids.len(), orders.len());
    assert_eq!(duplicates(&all_ids), 0);
}

// ---------------------------------------------------------------------------------------------
// 110.2.5 Geographic partitioning

/// The cross-region aggregate of `dataset`: (name, orders, revenue cents) per row.
fn aggregate(dir: &Path, day: &str) -> BTreeMap<String, (i64, i128)> {
    let batches = read_partition(dir, &format!("dt={day}"));
    let mut out = BTreeMap::new();
    for b in &batches {
        let names = b
            .column_by_name("region")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let orders = b
            .column_by_name("orders")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let revenue = b
            .column_by_name("revenue")
            .unwrap()
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .unwrap();
        for i in 0..b.num_rows() {
            out.insert(
                names.value(i).to_owned(),
                (orders.value(i), revenue.value(i)),
            );
        }
    }
    out
}

/// `region=` partitions with the independent per-region counts; EU notes blanked, others kept;
/// the aggregate's per-region rows and total equal the independent counts and revenue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_partitions_redact_eu_and_aggregate_to_the_total() {
    let w = World::new().await;
    let source = w.sample("orders.csv", utc(2026, 3, 1), 10, 20_000, 27);
    let output = w.path("out/geo");
    let orders = read_orders(&source);
    let extra = read_country_note(&source);
    let outcome = w
        .run(
            geographic_partitioning::DAG_ID,
            utc(2026, 3, 5),
            conf([("source", s(&source)), ("output", s(&output))]),
        )
        .await;
    assert_states(
        &w,
        &outcome,
        RunState::Success,
        &[
            ("split_regions", TaskState::Success),
            ("cross_region", TaskState::Success),
        ],
    )
    .await;

    let mut want: BTreeMap<String, (i64, i128)> = BTreeMap::new();
    for o in &orders {
        let e = want.entry(o.region.clone()).or_default();
        e.0 += 1;
        e.1 += i128::from(o.amount_cents);
    }
    let landed = partition_rows(&output);
    let want_rows: BTreeMap<String, u64> = want
        .iter()
        .map(|(r, v)| (format!("region={r}"), v.0 as u64))
        .collect();
    assert_eq!(landed, want_rows);

    let mut eu_with_source_note = 0;
    for region in want.keys() {
        let batches = read_partition(&output, &format!("region={region}"));
        let ids = i64_column(&batches, "order_id");
        let notes = str_column(&batches, "note");
        for (id, note) in ids.iter().zip(notes) {
            let source_note = &extra[id].1;
            if region == "EU" {
                assert!(
                    note.as_deref().is_none_or(str::is_empty),
                    "EU order {id} kept its note {note:?}"
                );
                eu_with_source_note += usize::from(source_note.is_some());
            } else {
                assert_eq!(
                    note.filter(|n| !n.is_empty()),
                    *source_note,
                    "{region} order {id}"
                );
            }
        }
    }
    assert!(
        eu_with_source_note > 0,
        "no EU note to redact in the sample"
    );

    let agg_dir = output.with_file_name("geo_cross_region");
    let agg = aggregate(&agg_dir, "2026-03-05");
    let total = want
        .values()
        .fold((0i64, 0i128), |t, v| (t.0 + v.0, t.1 + v.1));
    let mut want_agg = want.clone();
    want_agg.insert("(all regions)".to_owned(), total);
    assert_eq!(agg, want_agg);
    assert_eq!(total.0, orders.len() as i64);
}

/// `key=country` partitions by country with the independent per-country counts, EU countries'
/// notes are still blanked (the rule follows the row's region, not the partition key) and others
/// kept, and the aggregate totals them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn country_key_partitions_by_country() {
    let w = World::new().await;
    let source = w.sample("orders.csv", utc(2026, 3, 1), 10, 20_000, 28);
    let output = w.path("out/geo");
    let extra = read_country_note(&source);
    let region_of: HashMap<i64, String> = read_orders(&source)
        .into_iter()
        .map(|o| (o.order_id, o.region))
        .collect();
    let outcome = w
        .run(
            geographic_partitioning::DAG_ID,
            utc(2026, 3, 5),
            conf([
                ("source", s(&source)),
                ("output", s(&output)),
                ("key", "country".to_owned()),
            ]),
        )
        .await;
    assert_states(&w, &outcome, RunState::Success, &[]).await;
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for (country, _) in extra.values() {
        *want.entry(format!("country={country}")).or_default() += 1;
    }
    assert_eq!(partition_rows(&output), want);
    for (name, rows) in &want {
        let batches = read_partition(&output, name);
        let countries = str_column(&batches, "country");
        assert_eq!(countries.len() as u64, *rows);
        assert!(
            countries
                .iter()
                .all(|c| c.as_deref() == name.strip_prefix("country=")),
            "{name}"
        );
        let ids = i64_column(&batches, "order_id");
        for (id, note) in ids.iter().zip(str_column(&batches, "note")) {
            if region_of[id] == "EU" {
                assert!(
                    note.as_deref().is_none_or(str::is_empty),
                    "EU order {id} in {name} kept its note {note:?}"
                );
            } else {
                assert_eq!(note.filter(|n| !n.is_empty()), extra[id].1, "{name} {id}");
            }
        }
    }
    let agg = aggregate(&output.with_file_name("geo_cross_region"), "2026-03-05");
    assert_eq!(agg["(all regions)"].0, extra.len() as i64);
    assert_eq!(agg.len(), want.len() + 1);
}
