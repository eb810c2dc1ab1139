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
use weir_data::partitioners::SizePartitioner;
use weir_data::{CommitReport, Dataset, FileFormat, ReadOptions, open_source};
use weir_runtime::{DagDef, Task, TaskContext, TaskError};

use weir_ops::blocking;
use weir_ops::load::{Loaded, record_commits, retire_others, window_param_specs, window_params};

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

async fn write_chunks(ctx: TaskContext) -> Result<Value, TaskError> {
    let p = window_params(&ctx).await?;
    let target: u64 = ctx.param("target_bytes")?;
    let params = p.clone();
    let (loaded, report) = blocking(move || {
        // Zstd Parquet is typically a third of Arrow's in-memory size (text about its size):
        // start there, then learn from each committed chunk.
        let ratio = match params.write.format {
            FileFormat::Parquet => 0.35,
            FileFormat::Csv | FileFormat::JsonLines => 1.0,
        };
        let mut sizer = SizePartitioner::with_initial_ratio(target, ratio)?;
        let mut reader = open_source(&params.source, &ReadOptions::default())?;
        let dataset = Dataset::open(&params.output)?;
        let schema = reader.schema();
        let mut commits: Vec<CommitReport> = Vec::new();
        let mut current: Option<(usize, weir_data::PartitionWriter)> = None;
        let mut rows = 0u64;
        let finish = |current: Option<(usize, weir_data::PartitionWriter)>,
                      sizer: &mut SizePartitioner,
                      commits: &mut Vec<CommitReport>|
         -> Result<(), weir_data::DataError> {
            if let Some((index, writer)) = current {
                let commit = writer.commit()?;
                sizer.record_actual(index, commit.bytes)?;
                commits.push(commit);
            }
            Ok(())
        };
        // Feed the sizer small slices so that each committed chunk's real size can correct the
        // cuts that follow, rather than one 65k-row batch being cut with the first guess.
        let slices = reader.by_ref().flat_map(|batch| match batch {
            Ok(batch) => (0..batch.num_rows())
                .step_by(4096)
                .map(|offset| Ok(batch.slice(offset, 4096.min(batch.num_rows() - offset))))
                .collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        });
        for batch in slices {
            for (index, chunk) in sizer.push(&batch?)? {
                rows += chunk.num_rows() as u64;
                if current.as_ref().is_none_or(|(i, _)| *i != index) {
                    finish(current.take(), &mut sizer, &mut commits)?;
                    current = Some((
                        index,
                        dataset.writer(&chunk_key(index), schema.clone(), params.write.clone())?,
                    ));
                }
                current.as_mut().expect("set above").1.write(&chunk)?;
            }
        }
        finish(current.take(), &mut sizer, &mut commits)?;
        let keep: Vec<String> = commits.iter().map(|c| c.partition.clone()).collect();
        retire_others(&params.output, &keep)?;
        let report = sizer.report();
        Ok((Loaded::new(commits, rows, 0).read_from(&mut reader), report))
    })
    .await?;
    record_commits(&ctx, &p.output, &loaded).await?;
    let sizes: Vec<u64> = loaded.commits.iter().map(|c| c.bytes).collect();
    let mut out = loaded.to_json();
    out["target_bytes"] = json!(target);
    out["largest_bytes"] = json!(sizes.iter().max());
    out["learned_ratio"] = json!(report.ratio);
    out["estimated_bytes"] = json!(report.estimated_reported());
    out["actual_bytes"] = json!(report.actual_reported());
    Ok(out)
}
