//! Partitioners: date (by config), equal-count id ranges, stable and consistent hashing, size-based
//! chunks, and regions — unit cases plus property tests of their invariants.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, DictionaryArray, Int8Array, Int16Array, Int32Array, Int64Array,
    LargeStringArray, RecordBatch, StringArray, StringViewArray, TimestampMicrosecondArray,
    UInt16Array,
};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{
    ArrowDictionaryKeyType, DataType, Field, Int8Type, Int16Type, Int32Type, Schema, TimeUnit,
    UInt16Type,
};
use jiff::tz::TimeZone;
use proptest::prelude::*;
use weir_data::partitioners::{
    BucketScheme, DatePartitioner, GeoPartitioner, Granularity, HashPartitioner, RangeCounter,
    RangePlan, RangePlanBuilder, RegionCounts, SizePartitioner, balance, hash_bytes, hash_i64,
    jump_consistent_hash, row_sizes,
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

/// `(name: array, row Int64)`, `name` nullable.
fn column_batch(name: &str, array: ArrayRef) -> RecordBatch {
    let n = array.len() as i64;
    let schema = Schema::new(vec![
        Field::new(name, array.data_type().clone(), true),
        Field::new("row", DataType::Int64, false),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![array, Arc::new(Int64Array::from_iter_values(0..n))],
    )
    .unwrap()
}

/// A dictionary array of `keys` into `values`.
fn dictionary<K: ArrowDictionaryKeyType>(
    keys: arrow::array::PrimitiveArray<K>,
    values: ArrayRef,
) -> ArrayRef {
    Arc::new(DictionaryArray::<K>::try_new(keys, values).unwrap())
}

/// A tiny deterministic generator for large test inputs (SplitMix64).
fn uniforms(seed: u64) -> impl Iterator<Item = f64> {
    let mut state = seed;
    std::iter::repeat_with(move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    })
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
// id ranges in bounded memory

/// Streams `keys` into a builder in chunks of `chunk` (at least 1).
fn build(keys: &[i64], chunk: usize, partitions: usize, capacity: usize) -> RangePlanBuilder {
    let mut builder = RangePlanBuilder::new(partitions, capacity).unwrap();
    for part in keys.chunks(chunk.max(1)) {
        builder.add_array(&Int64Array::from(part.to_vec())).unwrap();
    }
    builder
}

/// Rows per range of `plan`, counted one key at a time.
fn brute_counts(plan: &RangePlan, keys: &[i64]) -> Vec<u64> {
    let mut rows = vec![0u64; plan.len()];
    for &k in keys {
        let holders: Vec<usize> = (0..plan.len())
            .filter(|&i| plan.ranges()[i].contains(k))
            .collect();
        assert_eq!(
            holders.len(),
            1,
            "key {k} in ranges {holders:?} of {plan:?}"
        );
        rows[holders[0]] += 1;
    }
    rows
}

#[test]
fn range_builder_rejects_zero_partitions_or_sample_and_nulls_name_their_stream_row() {
    assert!(RangePlanBuilder::new(0, 10).is_err());
    let err = RangePlanBuilder::new(4, 0).unwrap_err().to_string();
    assert!(err.contains("at least 1"), "{err}");

    let mut builder = RangePlanBuilder::new(2, 2).unwrap();
    builder.add_array(&Int64Array::from(vec![1, 2, 3])).unwrap();
    let nulls = Int64Array::from(vec![Some(4), None]);
    assert!(matches!(
        builder.add_array(&nulls),
        Err(weir_data::DataError::NullValue { row: 4, .. })
    ));
    let mut counter = RangeCounter::new(&RangePlan::from_keys(&[1, 2, 3], 2).unwrap());
    counter.add_keys(&[1, 3]).unwrap();
    let err = counter.add_keys(&[2, 9]).unwrap_err().to_string();
    assert!(err.contains("key 9 at row 3"), "{err}");
}

#[test]
fn range_builder_plans_are_reproducible_and_the_sample_stays_bounded() {
    let keys: Vec<i64> = (0..50_000).map(|i| (i * 7919) % 20_011).collect();
    let a = build(&keys, 1000, 8, 500);
    assert_eq!(
        (a.rows(), a.sample_len(), a.is_exact()),
        (50_000, 500, false)
    );
    let b = build(&keys, 333, 8, 500);
    // Same keys in the same order: the same plan, however they were chunked.
    assert_eq!(a.finish(), b.finish());
}

/// 200,000 skewed keys (`floor(10^6 u^4)`, key 0 alone 3% of rows) through a sample of 10,000:
/// the recounted sampled plan is about as balanced as the exact one.
#[test]
fn sampled_ranges_stay_balanced_on_skewed_keys() {
    for seed in [1u64, 2, 3] {
        let keys: Vec<i64> = uniforms(seed)
            .take(200_000)
            .map(|u| (u.powi(4) * 1e6) as i64)
            .collect();
        for partitions in [8usize, 16] {
            let builder = build(&keys, 8192, partitions, 10_000);
            assert!(!builder.is_exact());
            let estimated = builder.finish();
            assert_eq!(estimated.rows(), keys.len() as u64);
            let plan = estimated
                .recount([&Int64Array::from(keys.clone())])
                .unwrap();
            assert_eq!(plan.len(), partitions);
            let rows: Vec<u64> = plan.ranges().iter().map(|r| r.rows).collect();
            assert_eq!(rows, brute_counts(&plan, &keys));
            let exact = RangePlan::from_keys(&keys, partitions).unwrap();
            let exact_rows: Vec<u64> = exact.ranges().iter().map(|r| r.rows).collect();
            let (sampled, best) = (balance(&rows), balance(&exact_rows));
            assert!(
                sampled < 1.5 && sampled < best + 0.25,
                "seed {seed}, {partitions} ranges: sampled {rows:?} ({sampled:.3}) vs exact {exact_rows:?} ({best:.3})"
            );
        }
    }
}

#[test]
fn integer_and_dictionary_range_keys_plan_and_split_like_int64() {
    let keys: Vec<i64> = (0..400).map(|i| (i * 37) % 101 - 50).collect();
    let plain = key_batch(&keys);
    let plan = RangePlan::from_batches([&plain], "id", 5).unwrap();
    let values = Int64Array::from_iter_values(-50..=50);
    let index: Vec<i16> = keys.iter().map(|&k| (k + 50) as i16).collect();
    let dict = column_batch(
        "id",
        dictionary::<Int16Type>(Int16Array::from(index), Arc::new(values)),
    );
    let narrow = column_batch(
        "id",
        Arc::new(Int32Array::from_iter_values(keys.iter().map(|&k| k as i32))),
    );
    for batch in [&dict, &narrow] {
        assert_eq!(RangePlan::from_batches([batch], "id", 5).unwrap(), plan);
        let mut builder = RangePlanBuilder::new(5, 64).unwrap();
        builder.add_batch(batch, "id").unwrap();
        let mut counter = RangeCounter::new(&builder.finish());
        counter.add_batch(batch, "id").unwrap();
        assert_eq!(counter.rows(), 400);
        let split: Vec<(usize, Vec<i64>)> = plan
            .split(batch, "id")
            .unwrap()
            .into_iter()
            .map(|(i, b)| (i, ids(&b, 1)))
            .collect();
        let want: Vec<(usize, Vec<i64>)> = plan
            .split(&plain, "id")
            .unwrap()
            .into_iter()
            .map(|(i, b)| (i, ids(&b, 1)))
            .collect();
        assert_eq!(split, want);
        assert_eq!(
            plan.filter(batch, "id", 2).unwrap().num_rows() as u64,
            plan.ranges()[2].rows
        );
    }
    let text = string_batch("id", vec![Some("1".to_owned())]);
    let err = RangePlan::from_batches([&text], "id", 2)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"id\"") && err.contains("Utf8") && err.contains("Int32"),
        "{err}"
    );
}

proptest! {
    /// While every key fits in the sample, the builder's plan is today's exact plan.
    #[test]
    fn range_builder_is_exact_while_keys_fit(
        keys in prop::collection::vec(-1000i64..1000, 0..400),
        chunk in 1usize..64,
        spare in 0usize..3,
        partitions in 1usize..12,
    ) {
        let builder = build(&keys, chunk, partitions, keys.len().max(1) + spare);
        prop_assert!(builder.is_exact());
        prop_assert_eq!(builder.rows(), keys.len() as u64);
        prop_assert_eq!(builder.finish(), RangePlan::from_keys(&keys, partitions).unwrap());
    }

    /// Past the sample: ranges still cover `[min, max]` contiguously, every key has exactly one
    /// range, estimates add up, and a recount gives the exact rows.
    #[test]
    fn sampled_ranges_cover_every_key_and_recount_exactly(
        keys in prop::collection::vec(
            prop_oneof![8 => -5000i64..5000, 1 => any::<i64>()],
            1..2000,
        ),
        chunk in 1usize..300,
        capacity in 1usize..64,
        partitions in 1usize..12,
        seed in any::<u64>(),
    ) {
        let mut builder = RangePlanBuilder::new(partitions, capacity).unwrap().with_seed(seed);
        for part in keys.chunks(chunk) {
            builder.add_keys(part);
        }
        prop_assert!(builder.sample_len() <= capacity);
        prop_assert_eq!(builder.is_exact(), keys.len() <= capacity);
        let estimated = builder.finish();
        prop_assert!(!estimated.is_empty() && estimated.len() <= partitions);
        prop_assert_eq!(estimated.rows(), keys.len() as u64);
        let (min, max) = (*keys.iter().min().unwrap(), *keys.iter().max().unwrap());
        prop_assert_eq!(estimated.ranges()[0].lo, min);
        prop_assert_eq!(estimated.ranges()[estimated.len() - 1].hi, max);
        for w in estimated.ranges().windows(2) {
            prop_assert!(w[0].lo <= w[0].hi);
            prop_assert_eq!(w[0].hi + 1, w[1].lo);
        }
        let arrays: Vec<Int64Array> =
            keys.chunks(chunk).map(|c| Int64Array::from(c.to_vec())).collect();
        let plan = estimated.recount(arrays.iter()).unwrap();
        let rows: Vec<u64> = plan.ranges().iter().map(|r| r.rows).collect();
        prop_assert_eq!(&rows, &brute_counts(&plan, &keys));
        prop_assert_eq!(plan.rows(), keys.len() as u64);
        // The recount only changed counts, and splitting agrees with it.
        prop_assert_eq!(
            plan.ranges().iter().map(|r| (r.lo, r.hi)).collect::<Vec<_>>(),
            estimated.ranges().iter().map(|r| (r.lo, r.hi)).collect::<Vec<_>>()
        );
        let mut split = vec![0u64; plan.len()];
        for (i, part) in plan.split(&key_batch(&keys), "id").unwrap() {
            split[i] += part.num_rows() as u64;
        }
        prop_assert_eq!(split, rows);
        let batch = key_batch(&keys);
        prop_assert_eq!(plan.recount_batches([&batch], "id").unwrap(), plan);
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

/// The same key values as plain Utf8, LargeUtf8, Utf8View and as dictionaries of each (keys of
/// several widths, values in another order, one value unused) all get identical buckets.
#[test]
fn dictionary_and_string_flavours_hash_like_the_plain_column() {
    let distinct: Vec<String> = (0..40).map(|i| format!("customer-{i}")).collect();
    let picks: Vec<usize> = (0..300).map(|i| (i * 7 + i / 13) % 40).collect();
    let rows: Vec<&str> = picks.iter().map(|&i| distinct[i].as_str()).collect();
    // Dictionary values reversed plus one unused value, so keys are not the row values' order.
    let mut values: Vec<&str> = distinct.iter().rev().map(String::as_str).collect();
    values.push("never-used");
    let key_of = |i: usize| 39 - i;
    let plain = column_batch("id", Arc::new(StringArray::from(rows.clone())));
    let flavours: Vec<ArrayRef> = vec![
        Arc::new(LargeStringArray::from(rows.clone())),
        Arc::new(StringViewArray::from(rows.clone())),
        dictionary::<Int32Type>(
            Int32Array::from_iter_values(picks.iter().map(|&i| key_of(i) as i32)),
            Arc::new(StringArray::from(values.clone())),
        ),
        dictionary::<Int8Type>(
            Int8Array::from_iter_values(picks.iter().map(|&i| key_of(i) as i8)),
            Arc::new(LargeStringArray::from(values.clone())),
        ),
        dictionary::<UInt16Type>(
            UInt16Array::from_iter_values(picks.iter().map(|&i| key_of(i) as u16)),
            Arc::new(StringViewArray::from(values.clone())),
        ),
    ];
    for scheme in [BucketScheme::Modulo, BucketScheme::Jump] {
        let p = HashPartitioner::new("id", 7, scheme).unwrap();
        let want = p.assign(&plain).unwrap();
        assert_eq!(
            want,
            rows.iter().map(|r| p.bucket_of_str(r)).collect::<Vec<_>>()
        );
        for array in &flavours {
            let batch = column_batch("id", array.clone());
            assert_eq!(p.assign(&batch).unwrap(), want, "{}", array.data_type());
            let split: Vec<(usize, Vec<i64>)> = p
                .split(&batch)
                .unwrap()
                .into_iter()
                .map(|(b, part)| (b, ids(&part, 1)))
                .collect();
            let plain_split: Vec<(usize, Vec<i64>)> = p
                .split(&plain)
                .unwrap()
                .into_iter()
                .map(|(b, part)| (b, ids(&part, 1)))
                .collect();
            assert_eq!(split, plain_split);
        }
    }
}

/// Integer dictionaries and Int32 hash like Int64 — so the pinned Int64 buckets hold for them too.
#[test]
fn integer_dictionaries_hash_like_int64() {
    let p = HashPartitioner::new("id", 16, BucketScheme::Jump).unwrap();
    let keys: Vec<i64> = (0..8).chain([-3, 1 << 40, 0, 7, 7]).collect();
    let plain = key_batch(&keys);
    let want = p.assign(&plain).unwrap();
    assert_eq!(want[..8], PINNED_JUMP16_0_TO_7);
    let values: Vec<i64> = vec![1 << 40, -3, 0, 1, 2, 3, 4, 5, 6, 7];
    let index = |k: i64| values.iter().position(|&v| v == k).unwrap();
    let flavours: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(keys.iter().map(|&k| k as i32))),
        dictionary::<Int16Type>(
            Int16Array::from_iter_values(keys.iter().map(|&k| index(k) as i16)),
            Arc::new(Int64Array::from(values.clone())),
        ),
        dictionary::<Int32Type>(
            Int32Array::from_iter_values(keys.iter().map(|&k| index(k) as i32)),
            Arc::new(Int64Array::from(values.clone())),
        ),
    ];
    for array in flavours.iter().skip(1) {
        assert_eq!(
            p.assign(&column_batch("id", array.clone())).unwrap(),
            want,
            "{}",
            array.data_type()
        );
    }
    // Int32 cannot hold 2^40: compare the rows it can.
    let narrow = p.assign(&column_batch("id", flavours[0].clone())).unwrap();
    for (row, &k) in keys.iter().enumerate() {
        if i32::try_from(k).is_ok() {
            assert_eq!(narrow[row], want[row], "key {k}");
        }
    }
}

/// A dictionary row whose key or value is null is a null key; unsupported types (floats, a
/// dictionary of floats) name the column, its type and the types that work.
#[test]
fn dictionary_nulls_and_unsupported_key_types_are_clear_errors() {
    let p = HashPartitioner::new("id", 4, BucketScheme::Jump).unwrap();
    let null_value = dictionary::<Int32Type>(
        Int32Array::from(vec![0, 0, 1]),
        Arc::new(StringArray::from(vec![Some("a"), None])),
    );
    let null_key = dictionary::<Int32Type>(
        Int32Array::from(vec![Some(0), None, Some(0)]),
        Arc::new(StringArray::from(vec!["a"])),
    );
    for (array, row) in [(null_value, 2), (null_key, 1)] {
        match p.assign(&column_batch("id", array)) {
            Err(weir_data::DataError::NullValue { row: r, .. }) => assert_eq!(r, row),
            other => panic!("expected a null at row {row}, got {other:?}"),
        }
    }
    let floats = dictionary::<Int32Type>(
        Int32Array::from(vec![0]),
        Arc::new(arrow::array::Float64Array::from(vec![1.5])),
    );
    for array in [
        floats,
        Arc::new(arrow::array::Float64Array::from(vec![1.5])) as ArrayRef,
    ] {
        let err = p
            .assign(&column_batch("id", array))
            .unwrap_err()
            .to_string();
        for needle in ["\"id\"", "Float64", "Utf8View", "UInt64", "Dictionary"] {
            assert!(err.contains(needle), "{needle} missing from: {err}");
        }
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

/// A dictionary region column (null keys, a null value, an unused value) and the plain strings
/// it stands for split into the same regions with the same rows; a non-string column is a clear
/// error.
#[test]
fn geo_dictionary_regions_split_like_plain_strings() {
    let plain: Vec<Option<&str>> = vec![
        Some("US"),
        None,
        Some("EU/West"),
        Some("US"),
        Some(""),
        None,
        Some("APAC"),
        Some("EU/West"),
    ];
    let values: Vec<Option<&str>> = vec![
        Some("APAC"),
        None,
        Some("EU/West"),
        Some("unused"),
        Some("US"),
        Some(""),
    ];
    // Row 5 is null through a null value, row 1 through a null key.
    let keys = Int16Array::from(vec![
        Some(4),
        None,
        Some(2),
        Some(4),
        Some(5),
        Some(1),
        Some(0),
        Some(2),
    ]);
    let geo = GeoPartitioner::new("region").unwrap();
    let parts = |array: ArrayRef| -> Vec<(String, Vec<i64>)> {
        geo.split_raw(&column_batch("region", array))
            .unwrap()
            .into_iter()
            .map(|(region, b)| (region, ids(&b, 1)))
            .collect()
    };
    let want = parts(Arc::new(StringArray::from(plain.clone())));
    assert_eq!(
        want,
        [
            (String::new(), vec![1, 4, 5]),
            ("APAC".to_owned(), vec![6]),
            ("EU/West".to_owned(), vec![2, 7]),
            ("US".to_owned(), vec![0, 3]),
        ]
    );
    let flavours: Vec<ArrayRef> = vec![
        Arc::new(LargeStringArray::from(plain.clone())),
        Arc::new(StringViewArray::from(plain.clone())),
        dictionary::<Int16Type>(keys.clone(), Arc::new(StringArray::from(values.clone()))),
        dictionary::<Int16Type>(
            keys.clone(),
            Arc::new(LargeStringArray::from(values.clone())),
        ),
        dictionary::<Int16Type>(keys, Arc::new(StringViewArray::from(values.clone()))),
    ];
    for array in flavours {
        let batch = column_batch("region", array.clone());
        assert_eq!(parts(array.clone()), want, "{}", array.data_type());
        let counts = geo.count_regions([&batch]).unwrap();
        assert_eq!(
            (counts.rows(""), counts.rows("US"), counts.total()),
            (3, 2, 8)
        );
    }
    let ints = dictionary::<Int32Type>(
        Int32Array::from(vec![0]),
        Arc::new(Int64Array::from(vec![7])),
    );
    let err = geo
        .split_raw(&column_batch("region", ints))
        .unwrap_err()
        .to_string();
    for needle in ["\"region\"", "Int64", "Utf8View", "Dictionary"] {
        assert!(err.contains(needle), "{needle} missing from: {err}");
    }
}
