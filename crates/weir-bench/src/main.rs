//! weir benchmarks, run in release mode: `cargo run --release -p weir-bench -- fanout --tasks N`.
//!
//! `fanout`: one producer returns a list of N items, N mapped no-op task instances run over it,
//! and a reducer receives all N outputs in map-index order — through the real executor and the
//! real SQLite store (WAL, synchronous=FULL) in a temporary home. It reports wall time, time per
//! task instance and peak resident memory.
//!
//! `csv-to-parquet`: streams an orders CSV (generated with `write_orders_csv` unless `--input` is
//! given; generation is not measured) into a `dt=YYYY-MM-DD` partitioned, zstd Parquet dataset
//! through weir-data, and reports throughput, bytes, rejects, per-phase time and peak RSS. See
//! [`csv_to_parquet`]. `gen-orders-csv` writes such an input file once, to reuse across runs and
//! tools.

mod csv_to_parquet;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use weir_core::RunState;
use weir_runtime::{DagDef, Executor, ExecutorOptions, Registry, Task, TokioClock, TriggerRequest};

#[derive(Parser)]
#[command(name = "weir-bench")]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Producer -> N mapped no-op tasks -> reducer.
    Fanout {
        #[arg(long, default_value_t = 10_000)]
        tasks: usize,
        /// Task instances running at once.
        #[arg(long, default_value_t = 64)]
        parallelism: usize,
        #[arg(long)]
        json: bool,
    },
    /// Orders CSV -> date-partitioned (UTC event_time) zstd Parquet through weir-data.
    CsvToParquet {
        /// Rows to generate (ignored with --input).
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// Read this orders CSV instead of generating one.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Dataset folder to write (default: a temporary folder, deleted afterwards).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Max rows per Parquet row group; each open partition writer buffers up to this many.
        #[arg(long, default_value_t = csv_to_parquet::DEFAULT_ROW_GROUP_ROWS)]
        row_group_rows: usize,
        /// Rows per record batch read from the CSV.
        #[arg(long, default_value_t = 65_536)]
        batch_rows: usize,
        #[arg(long)]
        json: bool,
    },
    /// Write N sample orders as CSV (input for csv-to-parquet --input and other tools).
    GenOrdersCsv {
        #[arg(long)]
        rows: u64,
        #[arg(long)]
        output: PathBuf,
    },
}

fn fanout_dag(n: usize) -> Result<DagDef> {
    Ok(DagDef::builder("bench_fanout")
        .max_active_tasks(100_000)
        .task(Task::new("produce").run(move |_| async move {
            Ok(Value::Array((0..n as u64).map(Value::from).collect()))
        }))
        .task(
            Task::new("noop")
                .expand("produce")
                .run(|_| async { Ok(Value::Null) }),
        )
        .task(Task::new("reduce").after(["noop"]).run(|ctx| async move {
            let outputs: Vec<Value> = ctx.input("noop").await?;
            Ok(json!({ "received": outputs.len() }))
        }))
        .build()?)
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`).
pub(crate) fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

async fn fanout(n: usize, parallelism: usize) -> Result<Value> {
    let home = tempfile::tempdir().context("creating a temporary home")?;
    let store = weir_store::open(&format!(
        "sqlite://{}",
        home.path().join("weir.db").display()
    ))
    .await?;
    let mut registry = Registry::new();
    registry.add(fanout_dag(n)?);
    let pools_slots = parallelism.max(1) as u32;
    store.set_pool("default_pool", pools_slots, "bench").await?;
    let opts = ExecutorOptions {
        parallelism,
        home: home.path().to_path_buf(),
        ..Default::default()
    };
    let ex = Executor::new(
        store.clone(),
        Arc::new(registry),
        Arc::new(TokioClock::system()),
        opts,
    );
    let started = Instant::now();
    let dag_id = weir_core::DagId::new("bench_fanout")?;
    let run = weir_runtime::trigger_run(
        &ex,
        TriggerRequest {
            dag_id,
            logical_date: None,
            conf: Value::Object(Default::default()),
        },
    )
    .await?;
    let outcome = ex.run(&run.dag_id, &run.run_id).await?;
    let wall = started.elapsed().as_secs_f64();
    if outcome.state != RunState::Success {
        bail!("the benchmark run ended {}", outcome.state);
    }
    let reduced = store.outputs(&run.dag_id, &run.run_id, "reduce").await?;
    let received = reduced
        .first()
        .and_then(|(_, v)| v["received"].as_u64())
        .unwrap_or(0);
    if received != n as u64 {
        bail!("the reducer received {received} outputs, expected {n}");
    }
    let instances = n + 2;
    Ok(json!({
        "bench": "fanout",
        "tasks": n,
        "task_instances": instances,
        "parallelism": parallelism,
        "wall_s": wall,
        "per_task_us": wall * 1e6 / instances as f64,
        "peak_rss_mb": peak_rss_mb(),
    }))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.bench {
        Bench::Fanout {
            tasks,
            parallelism,
            json,
        } => {
            let result = runtime.block_on(fanout(tasks, parallelism))?;
            if json {
                println!("{result}");
            } else {
                println!(
                    "fanout: {} mapped tasks in {:.2}s = {:.0} us per task instance, peak RSS {:.0} MiB",
                    result["tasks"],
                    result["wall_s"].as_f64().unwrap_or(0.0),
                    result["per_task_us"].as_f64().unwrap_or(0.0),
                    result["peak_rss_mb"].as_f64().unwrap_or(0.0)
                );
            }
        }
        Bench::CsvToParquet {
            rows,
            input,
            output,
            row_group_rows,
            batch_rows,
            json,
        } => {
            let result = csv_to_parquet::run(&csv_to_parquet::Options {
                rows,
                input,
                output,
                row_group_rows,
                batch_rows,
            })?;
            if json {
                println!("{result}");
            } else {
                println!(
                    "csv-to-parquet: {} rows ({} written, {} rejected) into {} partitions in {:.2}s = {:.0} rows/s, {:.0} MiB -> {:.0} MiB, peak RSS {:.0} MiB",
                    result["rows"],
                    result["rows_written"],
                    result["rejects"],
                    result["partitions"],
                    result["wall_s"].as_f64().unwrap_or(0.0),
                    result["rows_per_s"].as_f64().unwrap_or(0.0),
                    result["input_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
                    result["output_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
                    result["peak_rss_mb"].as_f64().unwrap_or(0.0)
                );
            }
        }
        Bench::GenOrdersCsv { rows, output } => {
            println!("{}", csv_to_parquet::generate(rows, &output)?);
        }
    }
    Ok(())
}
