//! 110.2.4 Size-based partitioning — `110_02_04_size_based_partitioning`.
//!
//! What it demonstrates:
//! - **Split data by size limits**: the source is cut into `chunk=NNNNN` partitions whose Parquet
//!   file is at most about `--conf target_bytes` (default 4 MiB) — the size downstream readers
//!   and object stores like, whatever the row count.
//! - **Calculate optimal partition sizes**: each row's size is measured (fixed-width columns by
//!   width, strings by their bytes), not assumed from an average.
//! - **Handle variable record sizes**: the sample's `note` column runs from a few bytes to a few
//!   KB, so equal row counts would give very unequal files; cutting by measured bytes does not.
//! - **Implement adaptive partitioning**: in-memory bytes are not Parquet bytes (compression,
//!   encoding). After each chunk is committed its real size is fed back, and the partitioner
//!   corrects its bytes-on-disk per byte-measured ratio, so later chunks land near the target. The
//!   run reports estimated against actual sizes.
//!
//! Run it: `weir dags run 110_02_04_size_based_partitioning --conf target_bytes=1000000`.

use serde_json::{Value, json};
use weir_core::ParamSpec;
use weir_ops::{Layout, Loaded, Operator, Partition, window_param_specs};
use weir_runtime::{DagDef, Task, TaskContext, TaskError};

pub const DAG_ID: &str = "110_02_04_size_based_partitioning";

pub fn dag() -> DagDef {
    DagDef::builder(DAG_ID)
        .description(
            "Cut a source into Parquet chunks of about a target size, learning the on-disk ratio",
        )
        .tags(["110.2", "partitioning", "intermediate"])
        .params(window_param_specs())
        .param(
            ParamSpec::integer(
                "target_bytes",
                1024,
                1 << 40,
                "about how large each chunk file should be on disk",
            )
            .default(4 * 1024 * 1024),
        )
        .task(Task::new("write_chunks").retries(2).run(write_chunks))
        .build()
        .expect("a valid DAG")
}

pub use weir_data::partitioners::chunk_key;

/// The whole source in `chunk=NNNNN` partitions: the `partition` operator with a size layout
/// (each chunk committed as soon as the next starts, its real size fed back), plus the largest
/// chunk and what the partitioner learned (`layout`: the ratio, estimated against actual bytes).
async fn write_chunks(ctx: TaskContext) -> Result<Value, TaskError> {
    let target: u64 = ctx.param("target_bytes")?;
    let layout = Partition::new(Layout::Size {
        target_bytes: target,
    });
    let mut out = layout.execute(ctx).await?;
    let loaded: Loaded = serde_json::from_value(out.clone())
        .map_err(|e| TaskError::fatal(format!("the partition output: {e}")))?;
    out["largest_bytes"] = json!(loaded.partitions.iter().map(|p| p.bytes).max());
    Ok(out)
}
