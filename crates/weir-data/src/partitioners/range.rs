//! [`RangePlan`]: equal-count id ranges computed from the keys' actual distribution, for splitting
//! a table into `[lo, hi]` ranges that each hold about the same number of rows.
//!
//! Boundaries are quantiles of the sorted keys, moved to the nearest change of key so that all
//! rows of one key land in one range: skewed ids (a few huge customers, dense recent ids) still
//! give balanced ranges, where cutting `[min, max]` into equal widths would not. The ranges are
//! contiguous, non-overlapping and cover `[min, max]` exactly: range 0 starts at the smallest key,
//! range `i + 1` starts at `hi_i + 1`, and the last ends at the largest key. So every key ever
//! planned, and every integer between, belongs to exactly one range.
//!
//! Edge cases, by choice:
//! - fewer distinct keys than partitions asked for: one range per distinct key (fewer ranges);
//! - empty input: an empty plan, in which [`RangePlan::range_of`] finds nothing;
//! - nulls: an error ([`DataError::NullValue`]) when planning, counting and splitting — a null id
//!   has no place in an ordered range; filter them out first (`arrow::compute::is_not_null`), and
//!   handle them as a partition of their own if they matter;
//! - key types: Int64, or any narrower integer (Int8–Int32, UInt8–UInt32) or a dictionary of
//!   those, read as Int64; anything else is a [`DataError::ColumnType`] listing these;
//! - a key outside `[min, max]` when splitting: an error, because the plan would not describe the
//!   partition it lands in; plan from the data you split.
//!
//! # Bounded memory
//!
//! [`RangePlan::from_keys`] and friends sort every key, so their memory grows with the input.
//! [`RangePlanBuilder`] streams instead: it keeps the exact row count, the exact min and max, and a
//! uniform reservoir sample of at most `sample_capacity` keys (Vitter's Algorithm R, driven by a
//! seeded SplitMix64, so the same input always gives the same plan — no clock, no OS randomness).
//! While every key fits in the reservoir the plan is exactly the one `from_keys` would make. Past
//! that, boundaries are the sample's equal-count quantiles (snapped to key changes as above, first
//! range still starting at the true min and the last ending at the true max) and the row counts
//! are estimates; a second pass with [`RangeCounter`] (or [`RangePlan::recount`]) makes them
//! exact. Memory is `8 * sample_capacity` bytes for the reservoir plus about twice that while
//! planning, whatever the input size.
//!
//! A plan serializes to JSON (`{"ranges":[{"lo":1,"hi":40,"rows":1000},…]}`), so a driver task can
//! plan once and fan out one mapped task per range, each reading with [`RangePlan::filter`].

use arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use arrow::compute::and;
use arrow::compute::filter_record_batch;
use arrow::compute::kernels::cmp::{gt_eq, lt_eq};
use arrow::datatypes::{DataType, Int64Type};
use serde::{Deserialize, Serialize};

use super::{column, split_by_assignment, wrong_type};
use crate::DataError;

/// One inclusive key range of a [`RangePlan`] and the rows planned into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyRange {
    /// The smallest key of the range (inclusive).
    pub lo: i64,
    /// The largest key of the range (inclusive).
    pub hi: i64,
    /// How many of the planned keys fall in `[lo, hi]`.
    pub rows: u64,
}

impl KeyRange {
    /// Whether `key` is in `[lo, hi]`.
    pub fn contains(&self, key: i64) -> bool {
        self.lo <= key && key <= self.hi
    }
}

/// Contiguous, ascending, inclusive key ranges with about equal row counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawPlan")]
pub struct RangePlan {
    ranges: Vec<KeyRange>,
}

/// The unchecked JSON form, validated into a [`RangePlan`].
#[derive(Deserialize)]
struct RawPlan {
    ranges: Vec<KeyRange>,
}

impl TryFrom<RawPlan> for RangePlan {
    type Error = DataError;

    fn try_from(raw: RawPlan) -> Result<Self, DataError> {
        let bad = |reason: String| DataError::InvalidOptions {
            what: "range plan",
            reason,
        };
        for (i, r) in raw.ranges.iter().enumerate() {
            if r.lo > r.hi {
                return Err(bad(format!(
                    "range {i} has lo {} above hi {}; give each range lo <= hi",
                    r.lo, r.hi
                )));
            }
            if i > 0 && raw.ranges[i - 1].hi.checked_add(1) != Some(r.lo) {
                return Err(bad(format!(
                    "range {i} starts at {} but range {} ends at {}; ranges must be contiguous and ascending",
                    r.lo,
                    i - 1,
                    raw.ranges[i - 1].hi
                )));
            }
        }
        Ok(RangePlan { ranges: raw.ranges })
    }
}

impl RangePlan {
    /// Plans at most `partitions` equal-count ranges over `keys` (any order, duplicates allowed).
    pub fn from_keys(keys: &[i64], partitions: usize) -> Result<RangePlan, DataError> {
        let mut sorted = keys.to_vec();
        sorted.sort_unstable();
        RangePlan::from_sorted(&sorted, partitions)
    }

    /// Plans over a stream of key arrays (for example one column of every batch); a null is an
    /// error naming its position in the stream. Holds every key: see [`RangePlanBuilder`] for a
    /// bounded-memory plan.
    pub fn from_arrays<'a>(
        arrays: impl IntoIterator<Item = &'a Int64Array>,
        partitions: usize,
    ) -> Result<RangePlan, DataError> {
        let mut builder = RangePlanBuilder::new(partitions, usize::MAX)?;
        for array in arrays {
            builder.add_array(array)?;
        }
        Ok(builder.finish())
    }

    /// Plans over the integer column `column` of a stream of batches. Holds every key: see
    /// [`RangePlanBuilder`] for a bounded-memory plan.
    pub fn from_batches<'a>(
        batches: impl IntoIterator<Item = &'a RecordBatch>,
        column: &str,
        partitions: usize,
    ) -> Result<RangePlan, DataError> {
        let mut builder = RangePlanBuilder::new(partitions, usize::MAX)?;
        for batch in batches {
            builder.add_batch(batch, column)?;
        }
        Ok(builder.finish())
    }

    fn from_sorted(sorted: &[i64], partitions: usize) -> Result<RangePlan, DataError> {
        check_partitions(partitions)?;
        Ok(RangePlan::plan_sorted(sorted, partitions))
    }

    /// The exact plan of `sorted` keys; `partitions` is at least 1.
    fn plan_sorted(sorted: &[i64], partitions: usize) -> RangePlan {
        if sorted.is_empty() {
            return RangePlan::default();
        }
        // Runs of equal keys: `first[r]` is the first key of run r, `cum[r]` the rows before it.
        let mut first = Vec::new();
        let mut cum = Vec::new();
        for (i, &k) in sorted.iter().enumerate() {
            if i == 0 || sorted[i - 1] != k {
                first.push(k);
                cum.push(i as u64);
            }
        }
        let runs = first.len();
        let n = sorted.len() as u64;
        cum.push(n);
        let parts = partitions.min(runs);
        // `cuts[i]` = the run that starts part i + 1, i.e. part i is runs cuts[i-1]..cuts[i].
        let mut cuts = Vec::with_capacity(parts);
        let mut prev = 0usize;
        for i in 1..parts {
            let target = (u128::from(n) * i as u128 / parts as u128) as u64;
            let above = cum.partition_point(|&c| c < target);
            let nearest = if above > 0 && target - cum[above - 1] <= cum[above] - target {
                above - 1
            } else {
                above
            };
            // Leave at least one run for this part and for each part still to come.
            let cut = nearest.clamp(prev + 1, runs - (parts - i));
            cuts.push(cut);
            prev = cut;
        }
        cuts.push(runs);
        let mut ranges = Vec::with_capacity(parts);
        let mut start = 0usize;
        for &cut in &cuts {
            // Each range ends just below the next one's first key, so the plan covers [min, max].
            let lo = first[start];
            let hi = if cut == runs {
                sorted[sorted.len() - 1]
            } else {
                first[cut] - 1
            };
            ranges.push(KeyRange {
                lo,
                hi,
                rows: cum[cut] - cum[start],
            });
            start = cut;
        }
        RangePlan { ranges }
    }

    /// The same ranges with exact row counts of `arrays`, the keys the plan is for (a second pass
    /// over the data after a sampled [`RangePlanBuilder`] plan). A null, or a key outside the
    /// plan, is an error naming its position in the stream.
    pub fn recount<'a>(
        &self,
        arrays: impl IntoIterator<Item = &'a Int64Array>,
    ) -> Result<RangePlan, DataError> {
        let mut counter = RangeCounter::new(self);
        for array in arrays {
            counter.add_array(array)?;
        }
        Ok(counter.finish())
    }

    /// [`RangePlan::recount`] over the integer column `column` of a stream of batches.
    pub fn recount_batches<'a>(
        &self,
        batches: impl IntoIterator<Item = &'a RecordBatch>,
        column: &str,
    ) -> Result<RangePlan, DataError> {
        let mut counter = RangeCounter::new(self);
        for batch in batches {
            counter.add_batch(batch, column)?;
        }
        Ok(counter.finish())
    }

    /// The ranges, ascending.
    pub fn ranges(&self) -> &[KeyRange] {
        &self.ranges
    }

    /// Number of ranges (at most the partitions asked for).
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether the plan was made from no keys.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Total rows planned.
    pub fn rows(&self) -> u64 {
        self.ranges.iter().map(|r| r.rows).sum()
    }

    /// The index of the range holding `key` (binary search), or `None` outside `[min, max]`.
    pub fn range_of(&self, key: i64) -> Option<usize> {
        let after = self.ranges.partition_point(|r| r.lo <= key);
        let i = after.checked_sub(1)?;
        self.ranges[i].contains(key).then_some(i)
    }

    /// The inclusive bounds `(lo, hi)` of range `i`, for a range read (`lo <= id AND id <= hi`).
    pub fn range_predicate(&self, i: usize) -> Option<(i64, i64)> {
        self.ranges.get(i).map(|r| (r.lo, r.hi))
    }

    /// The rows of `batch` whose Int64 `column` is in range `i` (vectorized; nulls dropped).
    pub fn filter(
        &self,
        batch: &RecordBatch,
        column: &str,
        i: usize,
    ) -> Result<RecordBatch, DataError> {
        let (lo, hi) = self
            .range_predicate(i)
            .ok_or_else(|| DataError::InvalidOptions {
                what: "range index",
                reason: format!(
                    "range {i} does not exist in a plan of {} ranges",
                    self.len()
                ),
            })?;
        let keys = int64_keys(batch, column)?;
        let ge = gt_eq(&keys, &Int64Array::new_scalar(lo))
            .map_err(|e| DataError::arrow("comparing with a range's lower bound", e))?;
        let le = lt_eq(&keys, &Int64Array::new_scalar(hi))
            .map_err(|e| DataError::arrow("comparing with a range's upper bound", e))?;
        let mask = and(&ge, &le).map_err(|e| DataError::arrow("combining range bounds", e))?;
        filter_record_batch(batch, &mask)
            .map_err(|e| DataError::arrow("filtering one key range", e))
    }

    /// Splits `batch` by the range of its Int64 `column`: `(range index, rows)` for every range
    /// with rows, ascending. A null key or a key outside the plan is an error.
    pub fn split(
        &self,
        batch: &RecordBatch,
        column: &str,
    ) -> Result<Vec<(usize, RecordBatch)>, DataError> {
        let keys = int64_keys(batch, column)?;
        check_no_nulls(&keys, column, 0)?;
        let mut assignment = Vec::with_capacity(keys.len());
        for (row, &key) in keys.values().iter().enumerate() {
            let Some(i) = self.range_of(key) else {
                return Err(self.outside(key, row, column, "range split"));
            };
            assignment.push(i as u32);
        }
        split_by_assignment(batch, &assignment, self.len())
    }

    /// The error for a key the plan has no range for.
    fn outside(&self, key: i64, row: usize, column: &str, what: &'static str) -> DataError {
        let (min, max) = match (self.ranges.first(), self.ranges.last()) {
            (Some(f), Some(l)) => (f.lo.to_string(), l.hi.to_string()),
            _ => ("none".into(), "none".into()),
        };
        DataError::InvalidOptions {
            what,
            reason: format!(
                "key {key} at row {row} of column {column:?} is outside the planned keys [{min}, {max}]; plan from data that includes it"
            ),
        }
    }

    /// The plan as pretty JSON: every range's inclusive bounds and row count.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Reads a plan written by [`RangePlan::to_json`], checking that its ranges are contiguous.
    pub fn from_json(json: &str) -> Result<RangePlan, DataError> {
        serde_json::from_str(json).map_err(|e| DataError::InvalidOptions {
            what: "range plan",
            reason: format!("the JSON is not a range plan ({e}); write it with RangePlan::to_json"),
        })
    }
}

/// The reservoir size [`RangePlanBuilder`] users should reach for first: 1,000,000 keys, 8 MB.
/// Its quantiles are within about 0.1% of the rows of the true ones.
pub const DEFAULT_SAMPLE_CAPACITY: usize = 1_000_000;

/// The seed of the reservoir's generator unless [`RangePlanBuilder::with_seed`] picks another.
const DEFAULT_SEED: u64 = 0x5745_4952_5241_4E47; // "WEIRRANG"

/// Plans equal-count ranges over a stream of keys in bounded memory.
///
/// Keeps the exact row count, min and max, and a uniform reservoir sample of at most
/// `sample_capacity` keys (Algorithm R with a seeded SplitMix64: the same keys in the same order
/// always give the same plan). [`RangePlanBuilder::finish`] plans from the sample: exactly the
/// plan of [`RangePlan::from_keys`] when every key fit ([`RangePlanBuilder::is_exact`]), otherwise
/// sampled quantile boundaries with estimated row counts, to be made exact with a
/// [`RangeCounter`] pass over the same keys.
///
/// ```
/// # use arrow::array::Int64Array;
/// # use weir_data::partitioners::{RangeCounter, RangePlanBuilder};
/// let keys = Int64Array::from_iter_values((0..10_000).map(|i| (i * 7919) % 5_000));
/// let mut builder = RangePlanBuilder::new(4, 1_000)?;
/// builder.add_array(&keys)?;
/// assert!(!builder.is_exact());
/// let sampled = builder.finish();
/// let mut counter = RangeCounter::new(&sampled);
/// counter.add_array(&keys)?;
/// let plan = counter.finish();
/// assert_eq!(plan.rows(), 10_000);
/// # Ok::<(), weir_data::DataError>(())
/// ```
#[derive(Clone, Debug)]
pub struct RangePlanBuilder {
    partitions: usize,
    capacity: usize,
    /// `min(rows, capacity)` keys: all of them, then a uniform sample.
    sample: Vec<i64>,
    rows: u64,
    min: i64,
    max: i64,
    rng: SplitMix64,
}

impl RangePlanBuilder {
    /// A builder of at most `partitions` (at least 1) ranges that samples at most
    /// `sample_capacity` (at least 1) keys; [`DEFAULT_SAMPLE_CAPACITY`] is a good default.
    pub fn new(partitions: usize, sample_capacity: usize) -> Result<Self, DataError> {
        check_partitions(partitions)?;
        if sample_capacity == 0 {
            return Err(DataError::InvalidOptions {
                what: "range sample",
                reason: "a sample of 0 keys was asked for; ask for at least 1 (1000000 is 8 MB)"
                    .into(),
            });
        }
        Ok(RangePlanBuilder {
            partitions,
            capacity: sample_capacity,
            sample: Vec::new(),
            rows: 0,
            min: i64::MAX,
            max: i64::MIN,
            rng: SplitMix64(DEFAULT_SEED),
        })
    }

    /// Samples with another seed (the default one is fixed, so plans are reproducible anyway).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = SplitMix64(seed);
        self
    }

    /// Adds keys (no nulls possible).
    pub fn add_keys(&mut self, keys: &[i64]) {
        for &k in keys {
            self.min = self.min.min(k);
            self.max = self.max.max(k);
        }
        // Fill: while there is room, every key is kept (`sample.len() == rows` until full).
        let room = self.capacity - self.sample.len();
        let (fill, rest) = keys.split_at(room.min(keys.len()));
        if !fill.is_empty() {
            self.reserve(fill.len());
            self.sample.extend_from_slice(fill);
            self.rows += fill.len() as u64;
        }
        // Algorithm R: key number `rows + 1` takes a uniform slot of `0..=rows` if it is one of
        // the reservoir's, i.e. with probability capacity / (rows + 1).
        let capacity = self.capacity as u64;
        for &k in rest {
            let slot = self.rng.below(self.rows + 1);
            if slot < capacity {
                self.sample[slot as usize] = k;
            }
            self.rows += 1;
        }
    }

    /// Adds an array of keys; a null is an error naming its position in the whole stream.
    pub fn add_array(&mut self, array: &Int64Array) -> Result<(), DataError> {
        check_no_nulls(array, "key", self.rows)?;
        self.add_keys(array.values());
        Ok(())
    }

    /// Adds the integer column `column` of `batch`; a null is an error naming its position in the
    /// whole stream.
    pub fn add_batch(&mut self, batch: &RecordBatch, column: &str) -> Result<(), DataError> {
        let keys = int64_keys(batch, column)?;
        check_no_nulls(&keys, column, self.rows)?;
        self.add_keys(keys.values());
        Ok(())
    }

    /// Keys added so far (exact).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Keys held in the sample: all of them, up to the capacity.
    pub fn sample_len(&self) -> usize {
        self.sample.len()
    }

    /// Whether every key fit in the sample, so [`RangePlanBuilder::finish`] gives the exact plan
    /// with exact counts and no [`RangeCounter`] pass is needed.
    pub fn is_exact(&self) -> bool {
        self.rows <= self.capacity as u64
    }

    /// The plan. Exact when [`RangePlanBuilder::is_exact`]; otherwise boundaries from the sample's
    /// quantiles, covering the true `[min, max]`, with row counts estimated from the sample (they
    /// add up to [`RangePlanBuilder::rows`]) — recount them with a [`RangeCounter`].
    pub fn finish(mut self) -> RangePlan {
        self.sample.sort_unstable();
        let mut plan = RangePlan::plan_sorted(&self.sample, self.partitions);
        if self.is_exact() {
            return plan;
        }
        if let Some(first) = plan.ranges.first_mut() {
            first.lo = self.min;
        }
        if let Some(last) = plan.ranges.last_mut() {
            last.hi = self.max;
        }
        // Scale the cumulative sample counts to the stream, so the estimates add up exactly.
        let (sampled, total) = (self.sample.len() as u128, u128::from(self.rows));
        let (mut seen, mut before) = (0u128, 0u64);
        for r in &mut plan.ranges {
            seen += u128::from(r.rows);
            let upto = ((seen * total + sampled / 2) / sampled) as u64;
            r.rows = upto - before;
            before = upto;
        }
        plan
    }

    /// Grows the sample for `extra` more keys, never past the capacity.
    fn reserve(&mut self, extra: usize) {
        let need = self.sample.len() + extra;
        if need > self.sample.capacity() {
            let target = need
                .max(self.sample.capacity().saturating_mul(2))
                .min(self.capacity);
            self.sample.reserve_exact(target - self.sample.len());
        }
    }
}

/// Counts the rows of each range of a plan over a stream of keys: the second pass that makes a
/// sampled [`RangePlanBuilder`] plan's counts exact. Memory is the plan's, whatever the stream.
#[derive(Clone, Debug)]
pub struct RangeCounter {
    plan: RangePlan,
    rows: u64,
}

impl RangeCounter {
    /// A counter over the ranges of `plan`, every count starting at 0.
    pub fn new(plan: &RangePlan) -> Self {
        let mut plan = plan.clone();
        for r in &mut plan.ranges {
            r.rows = 0;
        }
        RangeCounter { plan, rows: 0 }
    }

    /// Counts keys; a key outside the plan is an error naming its position in the stream.
    pub fn add_keys(&mut self, keys: &[i64]) -> Result<(), DataError> {
        self.count(keys, "key")
    }

    /// Counts an array of keys; a null or a key outside the plan is an error naming its position
    /// in the stream.
    pub fn add_array(&mut self, array: &Int64Array) -> Result<(), DataError> {
        check_no_nulls(array, "key", self.rows)?;
        self.count(array.values(), "key")
    }

    /// Counts the integer column `column` of `batch`.
    pub fn add_batch(&mut self, batch: &RecordBatch, column: &str) -> Result<(), DataError> {
        let keys = int64_keys(batch, column)?;
        check_no_nulls(&keys, column, self.rows)?;
        self.count(keys.values(), column)
    }

    /// Keys counted so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The plan with the counted rows.
    pub fn finish(self) -> RangePlan {
        self.plan
    }

    fn count(&mut self, keys: &[i64], column: &str) -> Result<(), DataError> {
        // Sorted input is common (ids), so try the last range hit before searching.
        let mut last = 0usize;
        for &key in keys {
            let i = match self.plan.ranges.get(last) {
                Some(r) if r.contains(key) => last,
                _ => match self.plan.range_of(key) {
                    Some(i) => i,
                    None => {
                        let at = usize::try_from(self.rows).unwrap_or(usize::MAX);
                        return Err(self.plan.outside(key, at, column, "range count"));
                    }
                },
            };
            self.plan.ranges[i].rows += 1;
            self.rows += 1;
            last = i;
        }
        Ok(())
    }
}

/// SplitMix64 (Steele, Lea & Flood, 2014): a tiny, fast, well-mixed generator; all the reservoir
/// needs, and the same sequence everywhere.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n >= 1`) by Lemire's multiply-shift: biased by at most `n / 2^64`.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

fn check_partitions(partitions: usize) -> Result<(), DataError> {
    if partitions == 0 {
        return Err(DataError::InvalidOptions {
            what: "range partitions",
            reason: "0 partitions were asked for; ask for at least 1".into(),
        });
    }
    Ok(())
}

/// The key types a range plan reads (as Int64).
const RANGE_KEY_TYPES: &str = "an integer key (Int8, Int16, Int32, Int64, UInt8, UInt16 or UInt32) or a Dictionary with such values";

/// The integer column `name` of `batch` as Int64 (a cheap clone when it is Int64 already; narrower
/// integers and dictionaries are cast, nulls kept).
fn int64_keys(batch: &RecordBatch, name: &str) -> Result<Int64Array, DataError> {
    let array = column(batch, name)?;
    if let Some(keys) = array.as_any().downcast_ref::<Int64Array>() {
        return Ok(keys.clone());
    }
    let values = match array.data_type() {
        DataType::Dictionary(_, values) => values.as_ref(),
        other => other,
    };
    match values {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => {}
        _ => return Err(wrong_type(name, array, RANGE_KEY_TYPES)),
    }
    let cast = arrow::compute::cast(array, &DataType::Int64)
        .map_err(|e| DataError::arrow("reading a range key as Int64", e))?;
    Ok(cast.as_primitive::<Int64Type>().clone())
}

/// [`DataError::NullValue`] at the first null of `keys`, `offset` rows into the stream.
fn check_no_nulls(keys: &Int64Array, column: &str, offset: u64) -> Result<(), DataError> {
    if keys.null_count() == 0 {
        return Ok(());
    }
    let row = (0..keys.len()).find(|&r| keys.is_null(r)).unwrap_or(0);
    Err(DataError::NullValue {
        column: column.to_owned(),
        row: usize::try_from(offset).unwrap_or(usize::MAX) + row,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skewed_keys_get_equal_count_ranges() {
        // 900 rows of ids 1..=9 (100 each), then 100 rows spread over 1000..1100.
        let mut keys: Vec<i64> = (1..=9).flat_map(|k| std::iter::repeat_n(k, 100)).collect();
        keys.extend(1000..1100);
        let plan = RangePlan::from_keys(&keys, 10).unwrap();
        assert_eq!(plan.len(), 10);
        assert!(plan.ranges().iter().all(|r| r.rows == 100), "{plan:?}");
        assert_eq!(plan.ranges()[0].lo, 1);
        assert_eq!(
            plan.ranges()[8],
            KeyRange {
                lo: 9,
                hi: 999,
                rows: 100
            }
        );
        assert_eq!(
            plan.ranges()[9],
            KeyRange {
                lo: 1000,
                hi: 1099,
                rows: 100
            }
        );
    }

    #[test]
    fn duplicates_of_one_key_stay_in_one_range() {
        let keys = [5, 5, 5, 5, 5, 5, 7, 8];
        let plan = RangePlan::from_keys(&keys, 4).unwrap();
        assert_eq!(plan.len(), 3, "{plan:?}");
        assert_eq!(
            plan.ranges()[0],
            KeyRange {
                lo: 5,
                hi: 6,
                rows: 6
            }
        );
        assert_eq!(plan.range_of(6), Some(0));
        assert_eq!(plan.range_of(4), None);
        assert_eq!(plan.range_of(9), None);
    }

    #[test]
    fn empty_input_gives_an_empty_plan_and_zero_partitions_is_an_error() {
        let plan = RangePlan::from_keys(&[], 4).unwrap();
        assert!(plan.is_empty());
        assert_eq!(plan.range_of(0), None);
        assert!(RangePlan::from_keys(&[1], 0).is_err());
    }

    #[test]
    fn extreme_keys_do_not_overflow() {
        let plan = RangePlan::from_keys(&[i64::MIN, i64::MAX, 0], 3).unwrap();
        assert_eq!(plan.ranges()[0].lo, i64::MIN);
        assert_eq!(plan.ranges()[2].hi, i64::MAX);
        assert_eq!(plan.range_of(-1), Some(0));
        assert_eq!(plan.range_of(1), Some(1));
    }
}
