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
//! - nulls: an error ([`DataError::NullValue`]) when planning and when splitting — a null id has
//!   no place in an ordered range; filter them out first (`arrow::compute::is_not_null`), and
//!   handle them as a partition of their own if they matter;
//! - a key outside `[min, max]` when splitting: an error, because the plan would not describe the
//!   partition it lands in; plan from the data you split.
//!
//! A plan serializes to JSON (`{"ranges":[{"lo":1,"hi":40,"rows":1000},…]}`), so a driver task can
//! plan once and fan out one mapped task per range, each reading with [`RangePlan::filter`].

use arrow::array::{Array, Int64Array, RecordBatch};
use arrow::compute::and;
use arrow::compute::filter_record_batch;
use arrow::compute::kernels::cmp::{gt_eq, lt_eq};
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
    /// error naming its position in the stream.
    pub fn from_arrays<'a>(
        arrays: impl IntoIterator<Item = &'a Int64Array>,
        partitions: usize,
    ) -> Result<RangePlan, DataError> {
        let mut keys = Vec::new();
        for array in arrays {
            push_non_null(&mut keys, array, "key")?;
        }
        keys.sort_unstable();
        RangePlan::from_sorted(&keys, partitions)
    }

    /// Plans over the Int64 column `column` of a stream of batches.
    pub fn from_batches<'a>(
        batches: impl IntoIterator<Item = &'a RecordBatch>,
        column: &str,
        partitions: usize,
    ) -> Result<RangePlan, DataError> {
        let mut keys = Vec::new();
        for batch in batches {
            push_non_null(&mut keys, int64_column(batch, column)?, column)?;
        }
        keys.sort_unstable();
        RangePlan::from_sorted(&keys, partitions)
    }

    fn from_sorted(sorted: &[i64], partitions: usize) -> Result<RangePlan, DataError> {
        if partitions == 0 {
            return Err(DataError::InvalidOptions {
                what: "range partitions",
                reason: "0 partitions were asked for; ask for at least 1".into(),
            });
        }
        if sorted.is_empty() {
            return Ok(RangePlan::default());
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
        Ok(RangePlan { ranges })
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
        let keys = int64_column(batch, column)?;
        let ge = gt_eq(keys, &Int64Array::new_scalar(lo))
            .map_err(|e| DataError::arrow("comparing with a range's lower bound", e))?;
        let le = lt_eq(keys, &Int64Array::new_scalar(hi))
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
        let keys = int64_column(batch, column)?;
        if keys.null_count() > 0 {
            let row = (0..keys.len()).find(|&r| keys.is_null(r)).unwrap_or(0);
            return Err(DataError::NullValue {
                column: column.to_owned(),
                row,
            });
        }
        let mut assignment = Vec::with_capacity(keys.len());
        for (row, &key) in keys.values().iter().enumerate() {
            let Some(i) = self.range_of(key) else {
                let (min, max) = match (self.ranges.first(), self.ranges.last()) {
                    (Some(f), Some(l)) => (f.lo.to_string(), l.hi.to_string()),
                    _ => ("none".into(), "none".into()),
                };
                return Err(DataError::InvalidOptions {
                    what: "range split",
                    reason: format!(
                        "key {key} at row {row} of column {column:?} is outside the planned keys [{min}, {max}]; plan from data that includes it"
                    ),
                });
            };
            assignment.push(i as u32);
        }
        split_by_assignment(batch, &assignment, self.len())
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

fn int64_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a Int64Array, DataError> {
    let array = column(batch, name)?;
    array
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| wrong_type(name, array, "Int64"))
}

fn push_non_null(keys: &mut Vec<i64>, array: &Int64Array, column: &str) -> Result<(), DataError> {
    if array.null_count() > 0 {
        let row = (0..array.len()).find(|&r| array.is_null(r)).unwrap_or(0);
        return Err(DataError::NullValue {
            column: column.to_owned(),
            row: keys.len() + row,
        });
    }
    keys.extend_from_slice(array.values());
    Ok(())
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
