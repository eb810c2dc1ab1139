//! weir benchmarks, run in release mode: `cargo run --release -p weir-bench -- fanout --tasks N`.
//!
//! `fanout`: one producer returns a list of N items, N mapped no-op task instances run over it,
//! and a reducer receives all N outputs in map-index order — through the real executor and the
//! real SQLite store (WAL, synchronous=FULL) in a temporary home. It reports wall time, time per
//! task instance and peak resident memory.
//!
//! `workers` / `chain`: the same fan-out (or a chain of L tasks) handed by a dispatcher to K
//! worker processes over PostgreSQL, or in one process on SQLite without `--store`: instances
//! per second, wall and CPU time per instance. See [`workers`].
//!
//! `csv-to-parquet`: streams an orders CSV (generated with `write_orders_csv` unless `--input` is
//! given; generation is not measured) into a `dt=YYYY-MM-DD` partitioned, zstd Parquet dataset
//! through weir-data, and reports throughput, bytes, rejects, per-phase time and peak RSS. See
//! [`csv_to_parquet`]. `gen-orders-csv` writes such an input file once, to reuse across runs and
//! tools.

mod csv_to_parquet;
mod workers;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use weir_core::RunState;
use weir_runtime::{Executor, ExecutorOptions, Registry, TokioClock, TriggerRequest};

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
    /// The fan-out DAG handed to K worker processes over PostgreSQL (`--store`), or run in
    /// one process on SQLite (no `--store`).
    Workers {
        /// `postgres://…`: a fresh schema is made in the database for each run.
        #[arg(long)]
        store: Option<String>,
        #[arg(long, default_value_t = 10_000)]
        tasks: usize,
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// Tries at once per worker (or in the one process).
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long)]
        json: bool,
    },
    /// L no-op tasks one after another: the latency of handing on a task.
    Chain {
        #[arg(long)]
        store: Option<String>,
        #[arg(long, default_value_t = 50)]
        length: usize,
        #[arg(long, default_value_t = 1)]
        workers: usize,
        #[arg(long)]
        json: bool,
    },
    /// A worker process of `workers` / `chain` (started by them).
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        store: String,
        #[arg(long, value_enum)]
        shape: workers::Shape,
        #[arg(long)]
        size: usize,
        #[arg(long)]
        concurrency: usize,
    },
    /// Write N sample orders as CSV (input for csv-to-parquet --input and other tools).
    GenOrdersCsv {
        #[arg(long)]
        rows: u64,
        #[arg(long)]
        output: PathBuf,
    },
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
    registry.add(workers::fanout_dag(n)?);
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

fn print_dispatch(result: &Value, json: bool) {
    if json {
        println!("{result}");
    } else {
        println!(
            "{} on {} with {} workers: {} task instances in {:.3}s = {:.0}/s, {:.0} us wall and {:.0} us CPU per instance, peak RSS {:.0} MiB",
            result["bench"].as_str().unwrap_or(""),
            result["backend"].as_str().unwrap_or(""),
            result["workers"],
            result["task_instances"],
            result["wall_s"].as_f64().unwrap_or(0.0),
            result["instances_per_s"].as_f64().unwrap_or(0.0),
            result["per_task_us"].as_f64().unwrap_or(0.0),
            result["cpu_per_task_us"].as_f64().unwrap_or(0.0),
            result["peak_rss_mb"].as_f64().unwrap_or(0.0)
        );
    }
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
        Bench::Workers {
            store,
            tasks,
            workers,
            concurrency,
            json,
        } => {
            let result = runtime.block_on(workers::run(&workers::Options {
                store,
                shape: workers::Shape::Fanout,
                size: tasks,
                workers,
                concurrency,
            }))?;
            print_dispatch(&result, json);
        }
        Bench::Chain {
            store,
            length,
            workers,
            json,
        } => {
            let result = runtime.block_on(workers::run(&workers::Options {
                store,
                shape: workers::Shape::Chain,
                size: length,
                workers,
                concurrency: 4,
            }))?;
            print_dispatch(&result, json);
        }
        Bench::Worker {
            store,
            shape,
            size,
            concurrency,
        } => runtime.block_on(workers::worker_process(&store, shape, size, concurrency))?,
        Bench::GenOrdersCsv { rows, output } => {
            println!("{}", csv_to_parquet::generate(rows, &output)?);
        }
    }
    Ok(())
}
