//! `workers` and `chain`: how fast the store hands out work.
//!
//! `workers --store postgres://… --workers K`: the fan-out DAG (producer → N mapped no-op
//! instances → reducer) dispatched by this process (`Dispatcher`, as `weir dags run --queue`)
//! to K worker processes (this binary's hidden `worker` command, each a real `Worker` with its
//! own connection pool), all on one PostgreSQL in a fresh schema. `chain --length L` runs L
//! no-op tasks one after another: the latency of handing on one task. Without `--store`, both
//! run in one process on a fresh SQLite file (the in-process executor), for comparison.
//!
//! Reported: wall time from the run's trigger to its end, instances per second, wall time per
//! instance, CPU per instance (this process plus the workers, from `/proc`), and this process's
//! peak RSS.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use weir_core::RunState;
use weir_runtime::{
    DagDef, Dispatcher, Executor, ExecutorOptions, Registry, Task, TokioClock, TriggerRequest,
    Worker, WorkerOptions,
};
use weir_store::Store;

/// Which DAG a benchmark runs.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Shape {
    Fanout,
    Chain,
}

/// Producer → `n` mapped no-op instances → reducer.
pub fn fanout_dag(n: usize) -> Result<DagDef> {
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

/// `length` no-op tasks, each after the one before.
pub fn chain_dag(length: usize) -> Result<DagDef> {
    let mut b = DagDef::builder("bench_chain");
    for i in 0..length {
        let mut t = Task::new(format!("t{i:03}")).run(|_| async { Ok(Value::Null) });
        if i > 0 {
            t = t.after([format!("t{:03}", i - 1)]);
        }
        b = b.task(t);
    }
    Ok(b.build()?)
}

fn dag(shape: Shape, size: usize) -> Result<DagDef> {
    match shape {
        Shape::Fanout => fanout_dag(size),
        Shape::Chain => chain_dag(size),
    }
}

fn executor(store: Arc<dyn Store>, def: DagDef, parallelism: usize) -> Result<Executor> {
    let home = std::env::temp_dir().join(format!("weir-bench-{}", std::process::id()));
    let mut registry = Registry::new();
    registry.add(def);
    Ok(Executor::new(
        store,
        Arc::new(registry),
        Arc::new(TokioClock::system()),
        ExecutorOptions {
            parallelism,
            home,
            ..Default::default()
        },
    ))
}

/// CPU seconds of this process and of its waited-for children (`/proc/self/stat`).
fn cpu_seconds() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0);
    };
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // utime, stime, cutime, cstime are fields 14–17, i.e. 11–14 after the name.
    let tick = 100.0;
    let at = |i: usize| f.get(i).copied().unwrap_or(0.0) / tick;
    (at(11) + at(12), at(13) + at(14))
}

/// The hidden `worker` command: a worker over the benchmark DAG until SIGTERM.
pub async fn worker_process(
    store: &str,
    shape: Shape,
    size: usize,
    concurrency: usize,
) -> Result<()> {
    let store = weir_store::open(store).await?;
    let ex = Arc::new(executor(store, dag(shape, size)?, concurrency)?);
    let worker = Worker::new(
        ex,
        WorkerOptions {
            queues: vec!["default".into()],
            concurrency,
            poll: Duration::from_secs(1),
        },
    );
    println!("ready");
    let stop = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    worker.run(stop).await?;
    Ok(())
}

/// Options of the `workers` and `chain` benchmarks.
pub struct Options {
    /// `postgres://…` (a fresh schema is made in it); `None`: one process on SQLite.
    pub store: Option<String>,
    pub shape: Shape,
    /// Mapped instances (fan-out) or tasks (chain).
    pub size: usize,
    pub workers: usize,
    pub concurrency: usize,
}

pub async fn run(o: &Options) -> Result<Value> {
    let home = tempfile::tempdir().context("creating a temporary home")?;
    let (url, backend) = match &o.store {
        Some(base) => (
            weir_store::testing::fresh_schema_url(base, "bench")
                .await
                .with_context(|| format!("cannot make a schema in {base}"))?,
            "postgres",
        ),
        None => (
            format!("sqlite://{}", home.path().join("weir.db").display()),
            "sqlite",
        ),
    };
    let store = weir_store::open(&url).await?;
    store.set_pool("default_pool", 100_000, "bench").await?;
    let mut workers: Vec<Child> = Vec::new();
    if o.store.is_some() {
        for _ in 0..o.workers {
            let mut child = Command::new(std::env::current_exe()?)
                .args(["worker", "--store", &url, "--size", &o.size.to_string()])
                .args(["--concurrency", &o.concurrency.to_string()])
                .args(["--shape", shape_name(o.shape)])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()?;
            // Timing starts once every worker is listening.
            let mut line = String::new();
            BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
            if line.trim() != "ready" {
                bail!("a worker did not start: {line:?}");
            }
            workers.push(child);
        }
    }
    let instances = match o.shape {
        Shape::Fanout => o.size + 2,
        Shape::Chain => o.size,
    };
    let ex = Arc::new(executor(
        store.clone(),
        dag(o.shape, o.size)?,
        o.concurrency,
    )?);
    let (cpu0, _) = cpu_seconds();
    let started = Instant::now();
    let run = weir_runtime::trigger_run(
        ex.as_ref(),
        TriggerRequest {
            dag_id: weir_core::DagId::new(match o.shape {
                Shape::Fanout => "bench_fanout",
                Shape::Chain => "bench_chain",
            })?,
            logical_date: None,
            conf: Value::Object(Default::default()),
        },
    )
    .await?;
    let state = if o.store.is_some() {
        Dispatcher::new(ex.clone(), "default").drive(&run).await?
    } else {
        ex.run(&run.dag_id, &run.run_id).await?.state
    };
    let wall = started.elapsed().as_secs_f64();
    let (cpu1, _) = cpu_seconds();
    for w in &workers {
        let _ = Command::new("kill")
            .args(["-TERM", &w.id().to_string()])
            .status();
    }
    for mut w in workers {
        w.wait()?;
    }
    let (_, children_cpu) = cpu_seconds();
    if state != RunState::Success {
        bail!("the benchmark run ended {state}");
    }
    if let Shape::Fanout = o.shape {
        let reduced = store.outputs(&run.dag_id, &run.run_id, "reduce").await?;
        let received = reduced
            .first()
            .and_then(|(_, v)| v["received"].as_u64())
            .unwrap_or(0);
        if received != o.size as u64 {
            bail!(
                "the reducer received {received} outputs, expected {}",
                o.size
            );
        }
    }
    let cpu = (cpu1 - cpu0) + children_cpu;
    Ok(json!({
        "bench": shape_name(o.shape),
        "backend": backend,
        "workers": if o.store.is_some() { o.workers } else { 0 },
        "concurrency": o.concurrency,
        "task_instances": instances,
        "wall_s": wall,
        "instances_per_s": instances as f64 / wall,
        "per_task_us": wall * 1e6 / instances as f64,
        "cpu_per_task_us": cpu * 1e6 / instances as f64,
        "dispatcher_cpu_s": cpu1 - cpu0,
        "workers_cpu_s": children_cpu,
        "peak_rss_mb": crate::peak_rss_mb(),
    }))
}

fn shape_name(s: Shape) -> &'static str {
    match s {
        Shape::Fanout => "fanout",
        Shape::Chain => "chain",
    }
}
