//! Partitioners: reusable ways to cut a stream of record batches into partitions — by local date,
//! by equal-count id ranges, by a stable hash, by size, and by region.
//!
//! Each partitioner computes one small integer (or key) per row in a tight loop over the Arrow
//! buffers, then gathers the rows of every partition with one `take` per partition: the per-row
//! work allocates nothing, and a partition's rows keep their relative order.
//!
//! - [`date`]: [`DatePartitioner`], `dt=YYYY-MM-DD[/hr=HH]` in a real time zone, by config.
//! - [`range`]: [`RangePlan`], equal-count `[lo, hi]` id ranges from the keys' actual distribution;
//!   [`RangePlanBuilder`] plans them in bounded memory from a sample, [`RangeCounter`] recounts.
//! - [`hash`]: a stable xxHash64, `hash % N` and jump consistent hashing, and a balance report.
//! - [`size`]: [`SizePartitioner`], chunks of about `target_bytes` that correct their estimate.
//! - [`geo`]: [`GeoPartitioner`], `region=VALUE` partitions with per-region hooks and totals.

pub mod date;
pub mod geo;
pub mod hash;
pub mod range;
pub mod size;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;

use crate::DataError;

pub use date::{DatePartitioner, Granularity};
pub use geo::{GeoPartitioner, RegionCounts, RegionHook};
pub use hash::{
    BucketScheme, HashPartitioner, balance, hash_bytes, hash_i64, jump_consistent_hash, xxh64,
};
pub use range::{DEFAULT_SAMPLE_CAPACITY, KeyRange, RangeCounter, RangePlan, RangePlanBuilder};
pub use size::{PartSize, SizePartitioner, SizeReport, row_sizes};

/// The column called `name`, or [`DataError::MissingColumn`].
pub(crate) fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, DataError> {
    let schema = batch.schema_ref();
    match schema.index_of(name) {
        Ok(index) => Ok(batch.column(index)),
        Err(_) => Err(DataError::MissingColumn {
            column: name.to_owned(),
            place: "the batch".into(),
            available: schema.fields().iter().map(|f| f.name().clone()).collect(),
        }),
    }
}

/// [`DataError::ColumnType`] for `array`, which should have been `expected`.
pub(crate) fn wrong_type(column: &str, array: &ArrayRef, expected: &str) -> DataError {
    DataError::ColumnType {
        column: column.to_owned(),
        place: "the batch".into(),
        found: array.data_type().to_string(),
        expected: expected.to_owned(),
    }
}

/// Splits `batch` by `assignment[row] < partitions`: one `(partition, rows)` per non-empty
/// partition, ascending, rows in their original order.
///
/// A counting sort: one pass counts, one pass places every row index into a single buffer, then
/// one `take` per partition. When every row lands in one partition the batch is returned as is.
pub(crate) fn split_by_assignment(
    batch: &RecordBatch,
    assignment: &[u32],
    partitions: usize,
) -> Result<Vec<(usize, RecordBatch)>, DataError> {
    if assignment.len() != batch.num_rows() {
        return Err(DataError::Internal(format!(
            "{} assignments for a batch of {} rows",
            assignment.len(),
            batch.num_rows()
        )));
    }
    if assignment.is_empty() {
        return Ok(Vec::new());
    }
    if u32::try_from(assignment.len()).is_err() {
        return Err(DataError::InvalidOptions {
            what: "batch size",
            reason: "a batch has more than 4 billion rows; split it first".into(),
        });
    }
    let mut starts = vec![0usize; partitions + 1];
    for &p in assignment {
        let p = p as usize;
        if p >= partitions {
            return Err(DataError::Internal(format!(
                "row assigned to partition {p} of {partitions}"
            )));
        }
        starts[p + 1] += 1;
    }
    if let Some(p) = (0..partitions).find(|&p| starts[p + 1] == assignment.len()) {
        return Ok(vec![(p, batch.clone())]);
    }
    for p in 0..partitions {
        starts[p + 1] += starts[p];
    }
    let mut next = starts.clone();
    let mut indices = vec![0u32; assignment.len()];
    for (row, &p) in assignment.iter().enumerate() {
        let slot = &mut next[p as usize];
        // Cannot truncate: checked above that the batch has fewer than 2^32 rows.
        indices[*slot] = row as u32;
        *slot += 1;
    }
    let indices = UInt32Array::from(indices);
    let mut out = Vec::new();
    for p in 0..partitions {
        let (start, end) = (starts[p], starts[p + 1]);
        if start == end {
            continue;
        }
        let part = take_record_batch(batch, &indices.slice(start, end - start))
            .map_err(|e| DataError::arrow("taking the rows of one partition", e))?;
        out.push((p, part));
    }
    Ok(out)
}
