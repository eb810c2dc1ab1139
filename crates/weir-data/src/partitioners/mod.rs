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

use crate::{DataError, PartitionKey};

pub use date::{DatePartitioner, Granularity, month_key};
pub use geo::{GeoPartitioner, RegionCounts, RegionHook};
pub use hash::{
    BucketScheme, HashPartitioner, balance, hash_bytes, hash_i64, jump_consistent_hash, xxh64,
};
pub use range::{DEFAULT_SAMPLE_CAPACITY, KeyRange, RangeCounter, RangePlan, RangePlanBuilder};
pub use size::{PartSize, SizePartitioner, SizeReport, row_sizes};

/// One way to cut a stream of batches into partitions: what loaders and the `load_window`
/// operator route rows through, whichever of the five partitioners a config picks.
pub trait Partitioner: Send {
    /// The rows of `batch` by the partition they belong to.
    fn split(&mut self, batch: &RecordBatch)
    -> Result<Vec<(PartitionKey, RecordBatch)>, DataError>;

    /// A partition was committed with `bytes` on disk (size-based partitioning learns from it).
    fn committed(&mut self, _key: &PartitionKey, _bytes: u64) -> Result<(), DataError> {
        Ok(())
    }

    /// Partitions come out one after another and are never returned to: a partition is
    /// complete when the next one starts, so a loader commits it then (and reports it through
    /// [`Partitioner::committed`]) instead of keeping every writer open.
    fn sequential(&self) -> bool {
        false
    }

    /// What the partitioner learned while cutting, for the task's output (size-based: the
    /// on-disk ratio and estimated against actual bytes); `None` when there is nothing to say.
    fn report(&self) -> Option<serde_json::Value> {
        None
    }
}

impl Partitioner for DatePartitioner {
    fn split(
        &mut self,
        batch: &RecordBatch,
    ) -> Result<Vec<(PartitionKey, RecordBatch)>, DataError> {
        DatePartitioner::split(self, batch)
    }
}

impl Partitioner for GeoPartitioner {
    fn split(
        &mut self,
        batch: &RecordBatch,
    ) -> Result<Vec<(PartitionKey, RecordBatch)>, DataError> {
        GeoPartitioner::split(self, batch)
    }
}

impl Partitioner for HashPartitioner {
    fn split(
        &mut self,
        batch: &RecordBatch,
    ) -> Result<Vec<(PartitionKey, RecordBatch)>, DataError> {
        let buckets = self.buckets();
        Ok(HashPartitioner::split(self, batch)?
            .into_iter()
            .map(|(b, rows)| (bucket_key(b, buckets), rows))
            .collect())
    }
}

/// `bucket=NN`, zero-padded to the width of the largest bucket number.
pub fn bucket_key(bucket: usize, buckets: u32) -> PartitionKey {
    let width = buckets.saturating_sub(1).to_string().len().max(2);
    PartitionKey::new([("bucket", format!("{bucket:0width$}"))]).expect("a valid key")
}

/// `range=NN`, zero-padded to the width of the largest range index.
pub fn range_key(index: usize, count: usize) -> PartitionKey {
    let width = count.saturating_sub(1).to_string().len().max(2);
    PartitionKey::new([("range", format!("{index:0width$}"))]).expect("a valid key")
}

/// `chunk=NNNNN`.
pub fn chunk_key(index: usize) -> PartitionKey {
    PartitionKey::new([("chunk", format!("{index:05}"))]).expect("a valid key")
}

/// A [`RangePlan`] applied to an integer key column: `range=NN` partitions.
#[derive(Debug, Clone)]
pub struct RangePartitioner {
    pub plan: RangePlan,
    pub column: String,
}

impl Partitioner for RangePartitioner {
    fn split(
        &mut self,
        batch: &RecordBatch,
    ) -> Result<Vec<(PartitionKey, RecordBatch)>, DataError> {
        let count = self.plan.len();
        Ok(self
            .plan
            .split(batch, &self.column)?
            .into_iter()
            .map(|(i, rows)| (range_key(i, count), rows))
            .collect())
    }
}

impl Partitioner for SizePartitioner {
    fn split(
        &mut self,
        batch: &RecordBatch,
    ) -> Result<Vec<(PartitionKey, RecordBatch)>, DataError> {
        Ok(self
            .push(batch)?
            .into_iter()
            .map(|(i, rows)| (chunk_key(i), rows))
            .collect())
    }

    fn committed(&mut self, key: &PartitionKey, bytes: u64) -> Result<(), DataError> {
        match key.get("chunk").and_then(|c| c.parse().ok()) {
            Some(index) => self.record_actual(index, bytes),
            None => Ok(()),
        }
    }

    fn sequential(&self) -> bool {
        true
    }

    fn report(&self) -> Option<serde_json::Value> {
        let report = SizePartitioner::report(self);
        Some(serde_json::json!({
            "target_bytes": report.target_bytes,
            "learned_ratio": report.ratio,
            "estimated_bytes": report.estimated_reported(),
            "actual_bytes": report.actual_reported(),
        }))
    }
}

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
