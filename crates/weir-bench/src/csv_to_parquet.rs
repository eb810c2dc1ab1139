//! `csv-to-parquet`: stream an orders CSV into a `dt=YYYY-MM-DD` (UTC `event_time`) partitioned,
//! zstd-compressed Parquet dataset through weir-data, one open writer per partition, committing
//! every partition at the end.
//!
//! Memory: a `PartitionWriter` keeps its row group in progress in memory (open pages,
//! dictionaries of up to 1 MiB per column, and the compressed pages of the row group) until it
//! holds `row_group_size` rows. With weir-data's default of 1 048 576 rows and one writer per
//! partition held open, a run whose partitions each stay under ~1M rows buffers its *whole* output
//! in memory, so peak RSS grows with the input (measured: 312 MiB at 1M orders, 841 MiB at 10M,
//! 35 daily partitions). The bench therefore caps row groups at [`DEFAULT_ROW_GROUP_ROWS`]
//! (override with `--row-group-rows`): buffered data is then bounded by
//! `partitions x row_group_rows`, independent of the input size (~170-190 MiB at both sizes).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use weir_data::{
    Dataset, PartitionKey, PartitionWriter, ReadOptions, SampleSpec, WriteOptions, open_source,
    orders_schema, partition_by_local_date, write_orders_csv,
};

use crate::peak_rss_mb;

/// Rows per Parquet row group. Measured on 10M orders / 35 open writers: 8 192 -> 166 MiB peak,
/// 16 384 -> 168 MiB, 65 536 -> 361 MiB, 1 048 576 -> 841 MiB; output ~10% larger than with 1M-row
/// groups (smaller dictionaries). 16 384 rows is the knee.
pub const DEFAULT_ROW_GROUP_ROWS: usize = 16_384;

/// The time column that decides the partition.
const TIME_COLUMN: &str = "event_time";

/// Benchmark knobs.
pub struct Options {
    /// Rows to generate when no input is given.
    pub rows: u64,
    /// An existing orders CSV to read instead of generating one.
    pub input: Option<PathBuf>,
    /// The dataset folder (default: a temporary folder, deleted afterwards).
    pub output: Option<PathBuf>,
    /// `WriteOptions::row_group_size`.
    pub row_group_rows: usize,
    /// `ReadOptions::batch_size`.
    pub batch_rows: usize,
}

/// Writes `rows` sample orders as CSV to `path` (not part of any measurement).
pub fn generate(rows: u64, path: &Path) -> Result<Value> {
    let started = Instant::now();
    let summary = write_orders_csv(
        &SampleSpec {
            rows,
            ..SampleSpec::default()
        },
        path,
    )
    .with_context(|| format!("generating {rows} orders into {}", path.display()))?;
    Ok(json!({
        "path": path.display().to_string(),
        "rows": summary.rows,
        "malformed": summary.malformed,
        "days": summary.per_day.len(),
        "bytes": summary.bytes,
        "gen_s": started.elapsed().as_secs_f64(),
    }))
}

/// Resets the process's peak-RSS mark (`VmHWM`) so that a following measurement excludes earlier
/// work such as generating the input. Linux only; returns whether it worked.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

pub fn run(opts: &Options) -> Result<Value> {
    let scratch = tempfile::tempdir().context("creating a scratch folder")?;
    let (input, generated) = match &opts.input {
        Some(path) => (path.clone(), None),
        None => {
            let path = scratch.path().join("orders.csv");
            let summary = generate(opts.rows, &path)?;
            (path, Some(summary))
        }
    };
    let output = match &opts.output {
        Some(dir) => dir.clone(),
        None => scratch.path().join("dataset"),
    };
    let input_bytes = std::fs::metadata(&input)
        .with_context(|| format!("reading the size of {}", input.display()))?
        .len();
    let peak_reset = reset_peak_rss();
    let rss_before_mb = peak_rss_mb();

    let mut t = Timings::default();
    let started = Instant::now();
    let tz = TimeZone::UTC;
    let dataset = Dataset::open(&output)?;
    let mut reader = open_source(
        &input,
        &ReadOptions {
            batch_size: opts.batch_rows,
            time_column: Some(TIME_COLUMN.into()),
            schema: Some(orders_schema()),
            ..ReadOptions::default()
        },
    )?;
    let schema = reader.schema();
    let write_opts = WriteOptions {
        row_group_size: opts.row_group_rows,
        ..WriteOptions::default()
    };
    let mut writers: HashMap<PartitionKey, PartitionWriter> = HashMap::new();
    let mut rejects = 0u64;
    loop {
        let batch = {
            let _s = t.span(Phase::Read);
            reader.next()
        };
        let Some(batch) = batch else { break };
        let batch = batch?;
        // Rejects pile up on the reader until taken: count and drop them to stay bounded.
        rejects += reader.take_rejects().len() as u64;
        let parts = {
            let _s = t.span(Phase::Split);
            partition_by_local_date(&batch, TIME_COLUMN, &tz)?
        };
        let _s = t.span(Phase::Write);
        for (key, part) in parts {
            let writer = match writers.entry(key) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    let w = dataset.writer(e.key(), schema.clone(), write_opts.clone())?;
                    e.insert(w)
                }
            };
            writer.write(&part)?;
        }
    }
    rejects += reader.take_rejects().len() as u64;
    let rows_read = reader.rows_emitted();
    let rss_before_commit_mb = peak_rss_mb();

    let mut writers: Vec<_> = writers.into_iter().collect();
    writers.sort_by(|a, b| a.0.cmp(&b.0));
    let partitions = writers.len();
    let (mut rows_written, mut output_bytes, mut files) = (0u64, 0u64, 0u64);
    {
        let _s = t.span(Phase::Commit);
        for (_, writer) in writers {
            let report = writer.commit()?;
            rows_written += report.rows;
            output_bytes += report.bytes;
            files += u64::from(report.files);
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let peak = peak_rss_mb();
    anyhow::ensure!(
        rows_written == rows_read,
        "read {rows_read} good rows but wrote {rows_written}"
    );

    let rows = rows_written + rejects;
    Ok(json!({
        "bench": "csv-to-parquet",
        "input": input.display().to_string(),
        "generated": generated,
        "rows": rows,
        "rows_written": rows_written,
        "rejects": rejects,
        "partitions": partitions,
        "files": files,
        "row_group_rows": opts.row_group_rows,
        "batch_rows": opts.batch_rows,
        "wall_s": wall,
        "rows_per_s": rows as f64 / wall,
        "input_bytes": input_bytes,
        "output_bytes": output_bytes,
        "input_mb_per_s": input_bytes as f64 / wall / (1024.0 * 1024.0),
        "peak_rss_mb": peak,
        "peak_rss_reset": peak_reset,
        "rss_at_start_mb": rss_before_mb,
        "peak_rss_before_commit_mb": rss_before_commit_mb,
        "phases_s": {
            "read_csv": t.get(Phase::Read),
            "split_by_date": t.get(Phase::Split),
            "write_parquet": t.get(Phase::Write),
            "commit": t.get(Phase::Commit),
        },
    }))
}

#[derive(Clone, Copy)]
enum Phase {
    Read,
    Split,
    Write,
    Commit,
}

/// Wall time per phase (a handful of `Instant::now` calls per 64k-row batch: negligible).
#[derive(Default)]
struct Timings {
    spent: [Duration; 4],
}

impl Timings {
    fn span(&mut self, phase: Phase) -> Span<'_> {
        Span {
            timings: self,
            phase,
            started: Instant::now(),
        }
    }

    fn get(&self, phase: Phase) -> f64 {
        self.spent[phase as usize].as_secs_f64()
    }
}

struct Span<'a> {
    timings: &'a mut Timings,
    phase: Phase,
    started: Instant,
}

impl Drop for Span<'_> {
    fn drop(&mut self) {
        self.timings.spent[self.phase as usize] += self.started.elapsed();
    }
}
