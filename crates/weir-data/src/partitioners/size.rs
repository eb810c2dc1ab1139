//! [`SizePartitioner`]: cuts a stream of batches into partitions (files) of at most about
//! `target_bytes` each, from measured per-row sizes, and corrects its estimate from the bytes
//! actually written.
//!
//! Rows are not all the same size: a row's size is the sum of its fixed-width values plus the
//! bytes of its strings and binaries (read from the offsets buffers, with no per-row allocation);
//! columns of other types (lists, structs…) are charged `get_array_memory_size` spread evenly over
//! their rows. That in-memory size is not what lands on disk: Parquet encodes and compresses. So
//! the partitioner multiplies by a learned ratio, written bytes per in-memory byte, starting at
//! 1.0 (or a given guess) and updated from every [`SizePartitioner::record_actual`] as the total
//! actual bytes over the total measured bytes of the partitions reported so far.
//!
//! A partition is closed just before the row that would take its estimate over the target, so
//! no partition's estimate exceeds the target except one holding a single oversize row. Output
//! chunks are zero-copy slices of the input; consecutive chunks may share a partition index when a
//! partition spans input batches.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use serde::{Deserialize, Serialize};

use crate::DataError;

/// What was planned for, and written to, one partition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartSize {
    /// The partition index, from 0.
    pub index: usize,
    /// Rows assigned.
    pub rows: u64,
    /// Measured in-memory bytes of those rows.
    pub measured_bytes: u64,
    /// Predicted written bytes (measured × the ratio in effect as each row was assigned).
    pub estimated_bytes: u64,
    /// Written bytes, once reported with [`SizePartitioner::record_actual`].
    pub actual_bytes: Option<u64>,
}

/// Estimated against actual sizes of every partition so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SizeReport {
    /// The target bytes per partition.
    pub target_bytes: u64,
    /// The learned written-per-measured byte ratio now in effect.
    pub ratio: f64,
    /// Every partition, in order (the last may still be open).
    pub partitions: Vec<PartSize>,
}

impl SizeReport {
    /// Total estimated bytes of the partitions with a reported actual size.
    pub fn estimated_reported(&self) -> u64 {
        self.partitions
            .iter()
            .filter(|p| p.actual_bytes.is_some())
            .map(|p| p.estimated_bytes)
            .sum()
    }

    /// Total actual bytes reported.
    pub fn actual_reported(&self) -> u64 {
        self.partitions.iter().filter_map(|p| p.actual_bytes).sum()
    }
}

/// Splits a stream of batches into partitions of about `target_bytes` each.
#[derive(Clone, Debug)]
pub struct SizePartitioner {
    target_bytes: u64,
    ratio: f64,
    /// Estimate of the open partition so far, in predicted written bytes.
    open_estimate: f64,
    parts: Vec<PartSize>,
}

impl SizePartitioner {
    /// A partitioner aiming at `target_bytes` (at least 1) per partition, starting with a ratio of
    /// 1.0 written byte per measured in-memory byte.
    pub fn new(target_bytes: u64) -> Result<Self, DataError> {
        SizePartitioner::with_initial_ratio(target_bytes, 1.0)
    }

    /// Like [`SizePartitioner::new`] with a first guess of written bytes per in-memory byte (for
    /// example 0.3 for well-compressed Parquet).
    pub fn with_initial_ratio(target_bytes: u64, ratio: f64) -> Result<Self, DataError> {
        if target_bytes == 0 {
            return Err(DataError::InvalidOptions {
                what: "target bytes",
                reason: "a target of 0 bytes was given; give a positive size".into(),
            });
        }
        if !(ratio.is_finite() && ratio > 0.0) {
            return Err(DataError::InvalidOptions {
                what: "size ratio",
                reason: format!("ratio {ratio} is not a positive number; give e.g. 1.0"),
            });
        }
        Ok(SizePartitioner {
            target_bytes,
            ratio,
            open_estimate: 0.0,
            parts: Vec::new(),
        })
    }

    /// The target bytes per partition.
    pub fn target_bytes(&self) -> u64 {
        self.target_bytes
    }

    /// The written-per-measured byte ratio now in effect.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// Assigns the rows of `batch` to partitions: `(partition index, slice)` in row order.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<Vec<(usize, RecordBatch)>, DataError> {
        let sizes = row_sizes(batch)?;
        let target = self.target_bytes as f64;
        let mut out = Vec::new();
        let mut start = 0usize;
        for (row, &measured) in sizes.iter().enumerate() {
            let estimate = measured as f64 * self.ratio;
            let open_rows = self.parts.last().map_or(0, |p| p.rows);
            if self.parts.is_empty() || (open_rows > 0 && self.open_estimate + estimate > target) {
                if row > start {
                    out.push((self.parts.len() - 1, batch.slice(start, row - start)));
                    start = row;
                }
                self.open_new();
            }
            self.open_estimate += estimate;
            let open = self
                .parts
                .last_mut()
                .ok_or_else(|| DataError::Internal("no open partition after opening one".into()))?;
            open.rows += 1;
            open.measured_bytes += measured;
            open.estimated_bytes = self.open_estimate.round() as u64;
        }
        if sizes.len() > start {
            out.push((
                self.parts.len() - 1,
                batch.slice(start, sizes.len() - start),
            ));
        }
        Ok(out)
    }

    /// Records the bytes actually written for partition `index` and relearns the ratio from every
    /// partition reported so far.
    pub fn record_actual(&mut self, index: usize, actual_bytes: u64) -> Result<(), DataError> {
        let count = self.parts.len();
        let part = self
            .parts
            .get_mut(index)
            .ok_or_else(|| DataError::InvalidOptions {
                what: "partition index",
                reason: format!("partition {index} does not exist; {count} partitions were cut"),
            })?;
        part.actual_bytes = Some(actual_bytes);
        let (mut measured, mut actual) = (0u64, 0u64);
        for p in &self.parts {
            if let Some(a) = p.actual_bytes {
                measured += p.measured_bytes;
                actual += a;
            }
        }
        if measured > 0 && actual > 0 {
            self.ratio = actual as f64 / measured as f64;
        }
        Ok(())
    }

    /// Estimated against actual sizes so far.
    pub fn report(&self) -> SizeReport {
        SizeReport {
            target_bytes: self.target_bytes,
            ratio: self.ratio,
            partitions: self.parts.clone(),
        }
    }

    fn open_new(&mut self) {
        self.parts.push(PartSize {
            index: self.parts.len(),
            rows: 0,
            measured_bytes: 0,
            estimated_bytes: 0,
            actual_bytes: None,
        });
        self.open_estimate = 0.0;
    }
}

/// The measured in-memory size of every row of `batch`, in bytes (see the module docs).
pub fn row_sizes(batch: &RecordBatch) -> Result<Vec<u64>, DataError> {
    let rows = batch.num_rows();
    let mut fixed = 0u64;
    let mut sizes = vec![0u64; rows];
    for array in batch.columns() {
        fixed += add_column_sizes(array, &mut sizes);
    }
    if fixed > 0 {
        for s in &mut sizes {
            *s += fixed;
        }
    }
    Ok(sizes)
}

/// Adds the variable part of `array`'s row sizes to `sizes`; returns its fixed bytes per row.
fn add_column_sizes(array: &ArrayRef, sizes: &mut [u64]) -> u64 {
    fn add_offsets<O: arrow::array::OffsetSizeTrait>(offsets: &[O], sizes: &mut [u64]) -> u64 {
        for (s, w) in sizes.iter_mut().zip(offsets.windows(2)) {
            *s += (w[1].as_usize() - w[0].as_usize()) as u64;
        }
        std::mem::size_of::<O>() as u64
    }
    let data_type = array.data_type();
    if let Some(width) = data_type.primitive_width() {
        return width as u64;
    }
    match data_type {
        DataType::Null => 0,
        DataType::Boolean => 1,
        DataType::Utf8 => add_offsets(array.as_string::<i32>().value_offsets(), sizes),
        DataType::LargeUtf8 => add_offsets(array.as_string::<i64>().value_offsets(), sizes),
        DataType::Binary => add_offsets(array.as_binary::<i32>().value_offsets(), sizes),
        DataType::LargeBinary => add_offsets(array.as_binary::<i64>().value_offsets(), sizes),
        DataType::Utf8View | DataType::BinaryView => {
            let views = match data_type {
                DataType::Utf8View => array.as_string_view().views(),
                _ => array.as_binary_view().views(),
            };
            for (s, &v) in sizes.iter_mut().zip(views.iter()) {
                // Values of up to 12 bytes live inside the 16-byte view itself.
                let len = u64::from(v as u32);
                *s += if len > 12 { len } else { 0 };
            }
            16
        }
        DataType::FixedSizeBinary(width) => u64::try_from(*width).unwrap_or(0),
        _ => {
            let rows = array.len().max(1) as u64;
            (array.get_array_memory_size() as u64).div_ceil(rows)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    fn batch(names: &[&str]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from_iter_values(0..names.len() as i64)),
                Arc::new(StringArray::from(names.to_vec())),
            ],
        )
        .unwrap()
    }

    #[test]
    fn row_sizes_count_fixed_width_and_string_bytes() {
        let sizes = row_sizes(&batch(&["", "abc", "hello world"])).unwrap();
        // 8 (id) + 4 (offset) + the string's bytes.
        assert_eq!(sizes, vec![12, 15, 23]);
    }

    #[test]
    fn partitions_span_batches_and_close_before_the_target() {
        let mut p = SizePartitioner::new(40).unwrap();
        let first = p.push(&batch(&["aaaa", "bbbb"])).unwrap(); // 16 + 16
        let second = p.push(&batch(&["cccc", "dddd", "eeee"])).unwrap();
        assert_eq!(
            first
                .iter()
                .map(|(i, b)| (*i, b.num_rows()))
                .collect::<Vec<_>>(),
            [(0, 2)]
        );
        assert_eq!(
            second
                .iter()
                .map(|(i, b)| (*i, b.num_rows()))
                .collect::<Vec<_>>(),
            [(1, 2), (2, 1)]
        );
        assert_eq!(p.report().partitions[0].estimated_bytes, 32);
    }

    #[test]
    fn bad_options_are_errors() {
        assert!(SizePartitioner::new(0).is_err());
        assert!(SizePartitioner::with_initial_ratio(10, 0.0).is_err());
        assert!(
            SizePartitioner::new(10)
                .unwrap()
                .record_actual(0, 5)
                .is_err()
        );
    }
}
