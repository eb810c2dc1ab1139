//! weir-data: the batch data layer — sample data, streaming sources, time windows, Hive-style
//! partitions and atomic, idempotent partition commits on Arrow and Parquet.
//!
//! Everything here but [`shared`] is synchronous and does blocking file IO: async callers run
//! it on `spawn_blocking`. [`shared`] is async, as the object stores it writes to are. Time is always an argument (`jiff::Timestamp`); nothing here reads the clock
//! except to make staging directory names unique.
//!
//! Code map:
//! - [`sample`]: the deterministic, seeded generator of realistic (and partly malformed) orders.
//! - [`source`]: streaming CSV / JSON lines / Parquet readers that set malformed rows aside as
//!   [`Reject`]s.
//! - [`window`]: time-window filters and splitting a batch into partitions by a computed key.
//! - [`partition`]: [`PartitionKey`], Hive-style `name=value` paths whose values cannot escape.
//! - [`partitioners`]: date, id-range (equal-count), hash (stable xxh64, jump consistent
//!   hashing), size (adaptive byte targets) and geographic partitioners.
//! - [`dataset`]: [`Dataset`], [`PartitionWriter`] and the staging → swap commit protocol.
//! - [`shared`]: [`SharedDataset`], partitions that writers on many hosts commit to in a
//!   folder or an S3-compatible object store, with the commit point in the metadata store.
//! - [`layout`]: the schema a dataset keeps (`_dataset.json`), typed partition columns left out
//!   of the files, and the rules for a commit whose schema differs.

pub mod dataset;
mod error;
pub mod layout;
pub mod partition;
pub mod partitioners;
pub mod sample;
pub mod shared;
pub mod source;
pub mod testing;
pub mod window;

pub use dataset::{
    CommitReport, Compression, Dataset, Failpoint, FileFormat, MARKER_PREFIX, PartitionInfo,
    PartitionWriter, WriteOptions,
};
pub use error::{DataError, ObjectStoreError};
pub use layout::{DatasetSchema, SchemaEvolution};
pub use partition::PartitionKey;
pub use sample::{
    ORDERS_SCHEMA_TEXT, SampleSpec, SampleSummary, orders_schema, write_orders_csv,
    write_orders_parquet, write_orders_schema,
};
pub use shared::{GarbageReport, SharedDataset, SharedWriteOptions, SharedWriter};
pub use source::{
    ReadOptions, ReadPayloads, Reject, SourcePosition, SourceReader, open_source, read_payloads,
};
pub use window::{
    filter_time_window, local_date_hour_keys, local_date_keys, partition_by_local_date,
    partition_by_local_hour, split_by_key,
};

/// The Arrow time zone label of every normalized time column (`Timestamp(Microsecond, "UTC")`).
///
/// Note: without arrow's `chrono-tz` feature (DataFusion enables it), arrow's pretty printer and
/// string casts cannot render a column labelled `"UTC"`; compare, filter and take work regardless.
pub const UTC_TZ: &str = "UTC";

/// The Arrow type of a normalized time column: `Timestamp(Microsecond, Some("UTC"))`.
pub fn utc_micros_type() -> arrow::datatypes::DataType {
    arrow::datatypes::DataType::Timestamp(
        arrow::datatypes::TimeUnit::Microsecond,
        Some(UTC_TZ.into()),
    )
}
