//! Partitioners: date (by config), equal-count id ranges, stable and consistent hashing, size-based
//! chunks, and regions — unit cases plus property tests of their invariants.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use jiff::tz::TimeZone;
use proptest::prelude::*;
use weir_data::partitioners::{
    BucketScheme, DatePartitioner, GeoPartitioner, Granularity, HashPartitioner, RangePlan,
    RegionCounts, SizePartitioner, balance, hash_bytes, hash_i64, jump_consistent_hash, row_sizes,
};
use weir_data::{partition_by_local_date, partition_by_local_hour};

use crate::id_value_batch;

fn ids(batch: &RecordBatch, column: usize) -> Vec<i64> {
    batch
        .column(column)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .values()
        .to_vec()
}

fn key_batch(keys: &[i64]) -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("row", DataType::Int64, false),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from(keys.to_vec())),
            Arc::new(Int64Array::from_iter_values(0..keys.len() as i64)),
        ],
    )
    .unwrap()
}

fn string_batch(name: &str, values: Vec<Option<String>>) -> RecordBatch {
    let n = values.len() as i64;
    let schema = Schema::new(vec![
        Field::new(name, DataType::Utf8, true),
        Field::new("row", DataType::Int64, false),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from(values)),
            Arc::new(Int64Array::from_iter_values(0..n)),
        ],
    )
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// date

fn times_batch(micros: &[i64]) -> RecordBatch {
    let schema = Schema::new(vec![Field::new(
        "t",
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        false,
    )]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![Arc::new(
            TimestampMicrosecondArray::from(micros.to_vec()).with_timezone("UTC"),
        )],
    )
    .unwrap()
}

#[test]
fn date_partitioner_picks_day_or_hour_from_config() {
    let tz = TimeZone::get("Europe/Paris").unwrap();
    let hour = 3_600_000_000i64;
    let start = jiff::Timestamp::from_second(1_774_310_400)
        .unwrap()
        .as_microsecond();
    let batch = times_batch(&(0..30).map(|h| start + h * hour).collect::<Vec<_>>());
    for (config, expected) in [
        ("day", partition_by_local_date(&batch, "t", &tz).unwrap()),
        ("hour", partition_by_local_hour(&batch, "t", &tz).unwrap()),
    ] {
        let granularity: Granularity = config.parse().unwrap();
        let parts = DatePartitioner::new("t", tz.clone(), granularity)
            .split(&batch)
            .unwrap();
        assert_eq!(parts, expected, "{config}");
    }
    let days = DatePartitioner::new("t", tz, Granularity::Day)
        .split(&batch)
        .unwrap();
    assert!(
        days.iter()
            .all(|(k, _)| k.to_path_string().starts_with("dt="))
    );
    assert_eq!(days.iter().map(|(_, b)| b.num_rows()).sum::<usize>(), 30);
}

// ---------------------------------------------------------------------------------------------
// id ranges

#[test]
fn range_split_and_filter_agree() {
    let keys: Vec<i64> = (0..1000).map(|i| (i * i) % 977).collect();
    let plan = RangePlan::from_keys(&keys, 7).unwrap();
    let batch = key_batch(&keys);
    let parts = plan.split(&batch, "id").unwrap();
    assert_eq!(parts.len(), 7);
    for (i, part) in &parts {
        let (lo, hi) = plan.range_predicate(*i).unwrap();
        assert!(ids(part, 0).iter().all(|k| (lo..=hi).contains(k)));
        assert_eq!(part.num_rows() as u64, plan.ranges()[*i].rows);
        assert_eq!(&plan.filter(&batch, "id", *i).unwrap(), part);
    }
    assert_eq!(plan.range_predicate(7), None);
}

#[test]
fn range_plan_round_trips_through_json_and_rejects_gaps() {
    let plan = RangePlan::from_keys(&[1, 2, 3, 10, 11, 12], 3).unwrap();
    let json = plan.to_json();
    assert!(
        json.contains("\"lo\": 1") && json.contains("\"rows\": 2"),
        "{json}"
    );
    assert_eq!(RangePlan::from_json(&json).unwrap(), plan);
    let gap = r#"{"ranges":[{"lo":1,"hi":5,"rows":1},{"lo":7,"hi":9,"rows":1}]}"#;
    let err = RangePlan::from_json(gap).unwrap_err().to_string();
    assert!(err.contains("contiguous"), "{err}");
}

#[test]
fn range_plan_rejects_nulls_and_keys_outside_the_plan() {
    let nulls = Int64Array::from(vec![Some(1), None, Some(3)]);
    assert!(matches!(
        RangePlan::from_arrays([&nulls], 2),
        Err(weir_data::DataError::NullValue { row: 1, .. })
    ));
    let plan = RangePlan::from_batches([&id_value_batch(0..100, 1)], "id", 4).unwrap();
    assert_eq!(plan.rows(), 100);
    let err = plan
        .split(&key_batch(&[5, 100]), "id")
        .unwrap_err()
        .to_string();
    assert!(err.contains("key 100 at row 1"), "{err}");
}

#[test]
fn range_plan_from_a_stream_equals_the_plan_from_a_slice() {
    let a = Int64Array::from_iter_values([9, 1, 5, 5]);
    let b = Int64Array::from_iter_values([7, 3, 3, 3, 8]);
    let all = [9, 1, 5, 5, 7, 3, 3, 3, 8];
    assert_eq!(
        RangePlan::from_arrays([&a, &b], 3).unwrap(),
        RangePlan::from_keys(&all, 3).unwrap()
    );
}

/// Zipf-like keys: id `floor(M * u^4)` for uniform `u`, so small ids are very frequent.
fn skewed_keys() -> impl Strategy<Value = Vec<i64>> {
    prop::collection::vec(0.0f64..1.0, 200..3000).prop_map(|us| {
        us.into_iter()
            .map(|u| (u.powi(4) * 10_000.0) as i64)
            .collect()
    })
}

proptest! {
    #[test]
    fn ranges_are_covering_disjoint_and_ascending(
        keys in prop::collection::vec(-1000i64..1000, 0..300),
        partitions in 1usize..12,
    ) {
        let plan = RangePlan::from_keys(&keys, partitions).unwrap();
        let mut distinct = keys.clone();
        distinct.sort_unstable();
        distinct.dedup();
        prop_assert_eq!(plan.len(), partitions.min(distinct.len()));
        prop_assert_eq!(plan.rows(), keys.len() as u64);
        if let (Some(first), Some(last)) = (plan.ranges().first(), plan.ranges().last()) {
            prop_assert_eq!(first.lo, distinct[0]);
            prop_assert_eq!(last.hi, *distinct.last().unwrap());
        }
        for w in plan.ranges().windows(2) {
            prop_assert!(w[0].lo <= w[0].hi);
            prop_assert_eq!(w[0].hi + 1, w[1].lo);
        }
        let mut rows = vec![0u64; plan.len()];
        for &k in &keys {
            let holders: Vec<usize> =
                (0..plan.len()).filter(|&i| plan.ranges()[i].contains(k)).collect();
            prop_assert_eq!(holders.len(), 1);
            prop_assert_eq!(plan.range_of(k), Some(holders[0]));
            rows[holders[0]] += 1;
        }
        // Every integer between min and max has exactly one range, not only the present keys.
        if let Some(&min) = distinct.first() {
            for k in min..=*distinct.last().unwrap() {
                prop_assert!(plan.range_of(k).is_some());
            }
        }
        prop_assert_eq!(rows, plan.ranges().iter().map(|r| r.rows).collect::<Vec<_>>());
        let parts = plan.split(&key_batch(&keys), "id").unwrap();
        prop_assert_eq!(parts.iter().map(|(_, b)| b.num_rows()).sum::<usize>(), keys.len());
    }

    #[test]
    fn ranges_are_equal_count_on_skewed_keys(keys in skewed_keys(), partitions in 2usize..16) {
        let plan = RangePlan::from_keys(&keys, partitions).unwrap();
        let mut runs: BTreeMap<i64, u64> = BTreeMap::new();
        for &k in &keys {
            *runs.entry(k).or_default() += 1;
        }
        let max_run = runs.values().copied().max().unwrap();
        let fair = (keys.len() as u64).div_ceil(plan.len() as u64);
        // No range exceeds its fair share by more than the one key it could not split.
        for r in plan.ranges() {
            prop_assert!(r.rows <= fair + max_run, "{r:?} fair {fair} max run {max_run}");
        }
        // And where no key is heavy, every range is within one run of the fair share.
        if max_run * 4 <= fair {
            for r in plan.ranges() {
                prop_assert!(r.rows + max_run >= fair, "{r:?} fair {fair} max run {max_run}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// hash

/// Pinned values: if one changes, every existing hash-partitioned dataset would be reshuffled.
#[test]
fn hash_values_are_pinned() {
    assert_eq!(hash_i64(0), PINNED_HASH_I64_0);
    assert_eq!(hash_i64(42), PINNED_HASH_I64_42);
    assert_eq!(hash_bytes(b"weir"), PINNED_HASH_WEIR);
    let p = HashPartitioner::new("id", 16, BucketScheme::Jump).unwrap();
    let buckets: Vec<u32> = (0..8).map(|k| p.bucket_of_i64(k)).collect();
    assert_eq!(buckets, PINNED_JUMP16_0_TO_7);
}

const PINNED_HASH_I64_0: u64 = 0x34C9_6ACD_CADB_1BBB;
const PINNED_HASH_I64_42: u64 = 0xB556_806F_B6D1_4353;
const PINNED_HASH_WEIR: u64 = 0x25CB_98BE_5B82_688E;
const PINNED_JUMP16_0_TO_7: [u32; 8] = [4, 1, 9, 8, 13, 11, 15, 5];

#[test]
fn int_widths_share_buckets_and_strings_split_by_bucket() {
    let p = HashPartitioner::new("id", 8, BucketScheme::Modulo).unwrap();
    let schema = Schema::new(vec![Field::new("id", DataType::Int32, false)]);
    let narrow = RecordBatch::try_new(
        Arc::new(schema),
        vec![Arc::new(Int32Array::from_iter_values(-50..50))],
    )
    .unwrap();
    let wide = key_batch(&(-50..50).collect::<Vec<_>>());
    assert_eq!(p.assign(&narrow).unwrap(), p.assign(&wide).unwrap());

    let names: Vec<Option<String>> = (0..500).map(|i| Some(format!("customer-{i}"))).collect();
    let batch = string_batch("name", names);
    let p = HashPartitioner::new("name", 8, BucketScheme::Jump).unwrap();
    let parts = p.split(&batch).unwrap();
    assert_eq!(parts.iter().map(|(_, b)| b.num_rows()).sum::<usize>(), 500);
    for (bucket, part) in &parts {
        let col = part
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert!(
            col.iter()
                .all(|s| p.bucket_of_str(s.unwrap()) as usize == *bucket)
        );
    }
    let counts = p.counts(&batch).unwrap();
    assert!(balance(&counts) < 1.4, "{counts:?}");
}

#[test]
fn hashing_a_null_or_a_float_is_an_error() {
    let p = HashPartitioner::new("id", 4, BucketScheme::Jump).unwrap();
    assert!(matches!(
        p.assign(&key_batch(&[1, 2])).map(|a| a.len()),
        Ok(2)
    ));
    let with_null = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)])),
        vec![Arc::new(Int64Array::from(vec![Some(1), None]))],
    )
    .unwrap();
    assert!(matches!(
        p.assign(&with_null),
        Err(weir_data::DataError::NullValue { row: 1, .. })
    ));
    let floats = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "id",
            DataType::Float64,
            false,
        )])),
        vec![Arc::new(arrow::array::Float64Array::from(vec![1.0]))],
    )
    .unwrap();
    assert!(p.assign(&floats).is_err());
}

#[test]
fn modulo_resizing_moves_most_keys_but_jump_moves_few() {
    let moved = |scheme| {
        let a = HashPartitioner::new("id", 10, scheme).unwrap();
        let b = HashPartitioner::new("id", 11, scheme).unwrap();
        (0..10_000i64)
            .filter(|&k| a.bucket_of_i64(k) != b.bucket_of_i64(k))
            .count()
    };
    assert!(moved(BucketScheme::Modulo) > 8_000);
    assert!(moved(BucketScheme::Jump) < 1_300);
}

proptest! {
    #[test]
    fn hash_assignment_is_stable_across_partitioners(
        ints in prop::collection::vec(any::<i64>(), 1..100),
        strings in prop::collection::vec(".{0,40}", 1..50),
        buckets in 1u32..200,
    ) {
        for scheme in [BucketScheme::Modulo, BucketScheme::Jump] {
            let a = HashPartitioner::new("id", buckets, scheme).unwrap();
            let b = HashPartitioner::new("id", buckets, scheme).unwrap();
            for &k in &ints {
                prop_assert_eq!(a.bucket_of_i64(k), b.bucket_of_i64(k));
                prop_assert!(a.bucket_of_i64(k) < buckets);
            }
            for s in &strings {
                prop_assert_eq!(a.bucket_of_str(s), b.bucket_of_str(s));
            }
        }
    }

    #[test]
    fn jump_resize_moves_about_one_over_n_plus_one(n in 1u32..64, salt in any::<u64>()) {
        let keys = 4_000u64;
        let mut moved = 0u64;
        for k in 0..keys {
            let h = hash_i64((k ^ salt) as i64);
            let (before, after) = (jump_consistent_hash(h, n), jump_consistent_hash(h, n + 1));
            if before != after {
                // A key only ever moves into the new bucket.
                prop_assert_eq!(after, n);
                moved += 1;
            }
        }
        let share = moved as f64 / keys as f64;
        prop_assert!(share < 2.0 / f64::from(n + 1), "moved {share} for {n} -> {}", n + 1);
    }
}

// ---------------------------------------------------------------------------------------------
// size

fn text_batch(lengths: &[usize]) -> RecordBatch {
    let values: Vec<Option<String>> = lengths.iter().map(|&l| Some("x".repeat(l))).collect();
    string_batch("text", values)
}

/// Runs `batches` through `p`, checking chunk order; returns the rows of each partition.
fn run_size(p: &mut SizePartitioner, batches: &[RecordBatch]) -> BTreeMap<usize, Vec<RecordBatch>> {
    let mut parts: BTreeMap<usize, Vec<RecordBatch>> = BTreeMap::new();
    let mut last = 0usize;
    for batch in batches {
        for (i, chunk) in p.push(batch).unwrap() {
            assert!(i == last || i == last + 1, "partition {i} after {last}");
            last = i;
            parts.entry(i).or_default().push(chunk);
        }
    }
    parts
}

#[test]
fn size_partitioner_learns_the_written_ratio() {
    // Rows of 12 + 100 bytes in memory; the "writer" compresses them to half.
    let batches: Vec<RecordBatch> = (0..20).map(|_| text_batch(&[100; 50])).collect();
    let target = 10_000u64;
    let mut p = SizePartitioner::new(target).unwrap();
    let mut written = BTreeMap::new();
    for batch in &batches {
        for (i, chunk) in p.push(batch).unwrap() {
            let bytes: u64 = row_sizes(&chunk).unwrap().iter().sum::<u64>() / 2;
            *written.entry(i).or_insert(0u64) += bytes;
            // Report a partition once the next one has started (it is then complete).
            if i > 0 && written.contains_key(&(i - 1)) {
                let prev = written.remove(&(i - 1)).unwrap();
                p.record_actual(i - 1, prev).unwrap();
            }
        }
    }
    let report = p.report();
    assert!((report.ratio - 0.5).abs() < 1e-9, "{}", report.ratio);
    let first = &report.partitions[0];
    assert_eq!(first.estimated_bytes, 2 * first.actual_bytes.unwrap());
    // Partition 1 was partly cut before partition 0 was reported: under target, but not full.
    let second = &report.partitions[1];
    assert!(
        second.actual_bytes.unwrap() <= target
            && second.estimated_bytes > second.actual_bytes.unwrap()
    );
    // After learning, complete partitions are written at close to the target, not half of it.
    for part in &report.partitions[2..report.partitions.len() - 1] {
        let actual = part.actual_bytes.unwrap();
        assert!(actual <= target && actual + 112 > target, "{part:?}");
        assert!(part.estimated_bytes.abs_diff(actual) <= 1, "{part:?}");
    }
    // The first partitions were over-estimated (ratio 1.0 before learning 0.5).
    assert!(report.estimated_reported() > report.actual_reported());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn size_chunks_stay_under_target_unless_one_row_is_oversize(
        batches in prop::collection::vec(prop::collection::vec(0usize..300, 0..40), 1..8),
        target in 50u64..3000,
    ) {
        let batches: Vec<RecordBatch> = batches.iter().map(|l| text_batch(l)).collect();
        let mut p = SizePartitioner::new(target).unwrap();
        let parts = run_size(&mut p, &batches);
        let total_in: usize = batches.iter().map(|b| b.num_rows()).sum();
        let mut total_out = 0;
        for (i, chunks) in &parts {
            let rows: usize = chunks.iter().map(|c| c.num_rows()).sum();
            let bytes: u64 = chunks.iter().flat_map(|c| row_sizes(c).unwrap()).sum();
            prop_assert!(bytes <= target || rows == 1, "partition {i}: {bytes} bytes in {rows} rows");
            prop_assert_eq!(p.report().partitions[*i].measured_bytes, bytes);
            total_out += rows;
        }
        prop_assert_eq!(total_out, total_in);
        // Greedy: a partition was closed only because its next row would not fit.
        let sizes: BTreeMap<usize, (u64, u64)> = parts
            .iter()
            .map(|(i, chunks)| {
                let all: Vec<u64> = chunks.iter().flat_map(|c| row_sizes(c).unwrap()).collect();
                (*i, (all.iter().sum(), all[0]))
            })
            .collect();
        for (i, (bytes, _)) in &sizes {
            if let Some((_, next_first)) = sizes.get(&(i + 1)) {
                prop_assert!(bytes + next_first > target);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// geographic

#[test]
fn geo_hooks_run_per_region_and_counts_add_up() {
    let regions = ["US", "EU", "US", "APAC", "EU", "US"];
    let batch = string_batch(
        "region",
        regions.iter().map(|r| Some((*r).to_owned())).collect(),
    );
    // US drops its first row (say, a privacy rule); every other region keeps one row.
    let geo = GeoPartitioner::new("region")
        .unwrap()
        .with_hook("US", |b: &RecordBatch| Ok(b.slice(1, b.num_rows() - 1)))
        .with_fallback_hook(|b: &RecordBatch| {
            let keep = arrow::array::BooleanArray::from(
                (0..b.num_rows()).map(|i| i == 0).collect::<Vec<_>>(),
            );
            Ok(filter_record_batch(b, &keep).unwrap())
        });
    let parts = geo.split(&batch).unwrap();
    let counts = RegionCounts::from_parts("region", &parts);
    assert_eq!(counts.rows("US"), 2);
    assert_eq!(counts.rows("EU"), 1);
    assert_eq!(counts.rows("APAC"), 1);
    assert_eq!(counts.total(), 4);
    let input = geo.count_regions([&batch, &batch]).unwrap();
    assert_eq!(input.rows("US"), 6);
    assert_eq!(input.total(), 12);
}

proptest! {
    #[test]
    fn geo_split_loses_no_row(
        picks in prop::collection::vec(prop::option::weighted(0.9, 0usize..6), 0..200),
    ) {
        let names = ["US", "EU/West", "..", "", "DE=1", "日本"];
        let values: Vec<Option<String>> =
            picks.iter().map(|p| p.map(|i| names[i].to_owned())).collect();
        let batch = string_batch("country", values);
        let geo = GeoPartitioner::new("country").unwrap();
        let parts = geo.split(&batch).unwrap();
        let mut rows: Vec<i64> = parts.iter().flat_map(|(_, b)| ids(b, 1)).collect();
        rows.sort_unstable();
        prop_assert_eq!(rows, (0..picks.len() as i64).collect::<Vec<_>>());
        let mut from_parts = RegionCounts::from_parts("country", &parts);
        let input = geo.count_regions([&batch]).unwrap();
        prop_assert_eq!(&from_parts, &input);
        prop_assert_eq!(input.total(), input.per_region().values().sum::<u64>());
        prop_assert_eq!(input.total(), picks.len() as u64);
        from_parts.merge(&input);
        prop_assert_eq!(from_parts.total(), 2 * picks.len() as u64);
        for (key, part) in &parts {
            let col = part.column(0).as_any().downcast_ref::<StringArray>().unwrap();
            let value = key.get("country").unwrap();
            prop_assert!(col.iter().all(|v| v.unwrap_or("") == value));
            prop_assert_eq!(weir_data::PartitionKey::parse(&key.to_path_string()).unwrap(), key.clone());
        }
    }
}
