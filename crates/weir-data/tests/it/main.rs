//! The one integration-test binary of weir-data: generator, sources, windows, partition keys and
//! atomic dataset commits, each in its own module.

mod dataset;
mod fidelity;
mod partition;
mod partitioners;
mod sample;
mod shared;
mod source;
mod window;

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// `(id Int64, value Int64)`.
pub fn id_value_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("value", DataType::Int64, false),
    ]))
}

/// Rows `ids` with `value` in every row.
pub fn id_value_batch(ids: std::ops::Range<i64>, value: i64) -> RecordBatch {
    let n = (ids.end - ids.start) as usize;
    RecordBatch::try_new(
        id_value_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(ids)),
            Arc::new(Int64Array::from(vec![value; n])),
        ],
    )
    .unwrap()
}
