//! One function per subcommand: validate the raw flags, call the library, print the result.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use weir_core::timetable::{
    CronDataIntervalTimetable, CronTriggerTimetable, DeltaDataIntervalTimetable,
    DeltaTriggerTimetable, parse_duration, parse_start, parse_zone, preview,
};
use weir_core::{DagId, RunId, RunState, TaskState, Timetable};
use weir_runtime::{
    BackfillEvent, BackfillOptions, DagDef, Executor, ExecutorOptions, PlanAction, Registry,
    Reprocess, RunOutcome, Scheduler, TokioClock, TriggerRequest,
};
use weir_store::{RunFilter, RunRecord, Store};

use crate::args::*;

/// `println!` that reports a closed stdout (`weir runs list | head -1`) as [`ClosedPipe`]
/// instead of panicking: the command then ends quietly, with success.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, $($arg)*).map_err(crate::pipe_error)?;
    }};
}

/// The DAG files loaded at start: where each file DAG came from, and the files that did not
/// load (import errors).
#[derive(Debug, Default)]
pub struct FileDags {
    /// DAG id → (file, version).
    pub by_id: BTreeMap<String, (PathBuf, String)>,
    pub errors: Vec<weir_dagfile::Problem>,
    /// The binary's own DAGs, without the files: what a reload starts from.
    pub base: Registry,
    /// The folders the files came from.
    pub dirs: Vec<PathBuf>,
}

/// Loads the DAG files of HOME/dags and every `--dags DIR` into `registry`. A file that does
/// not load, or declares an id the binary already has, is an import error; the rest load.
pub fn load_dag_files(cli: &Cli, registry: &mut Registry) -> FileDags {
    let mut dirs = vec![cli.home.join("dags")];
    dirs.extend(cli.dags.iter().cloned());
    // A run of a DAG file resumed after the file changed runs the version it started with.
    registry.set_loader(weir_dagfile::loader());
    let loaded = weir_dagfile::load_dirs(&dirs);
    let mut files = FileDags {
        errors: loaded.errors,
        base: registry.clone(),
        dirs,
        ..FileDags::default()
    };
    for dag in loaded.dags {
        let id = dag.def.dag.id.to_string();
        if registry.get(&id).is_some() {
            files.errors.push(weir_dagfile::Problem {
                path: dag.path,
                line: None,
                message: format!(
                    "DAG id `{id}` is already a DAG of this binary; give the file's DAG another id"
                ),
            });
            continue;
        }
        files.by_id.insert(id, (dag.path, dag.version));
        registry.add(dag.def);
    }
    let broken: BTreeSet<&Path> = files.errors.iter().map(|p| p.path.as_path()).collect();
    let listing = matches!(
        cli.command,
        Command::Dags(DagsCmd::List { .. } | DagsCmd::Validate { .. })
    );
    if !broken.is_empty() && !listing {
        eprintln!(
            "warning: {} DAG file{} did not load ({}); `weir dags list` shows why",
            broken.len(),
            if broken.len() == 1 { "" } else { "s" },
            broken
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    files
}

pub async fn dispatch(cli: Cli, registry: Registry, files: FileDags) -> Result<ExitCode> {
    let home = cli.home.clone();
    if let Some(url) = &cli.store {
        let _ = STORE_URL.set(url.clone());
    }
    match cli.command {
        Command::Dags(DagsCmd::List { json }) => dags_list(&registry, &files, json),
        Command::Dags(DagsCmd::Validate { files: paths }) => {
            dags_validate(&registry, &files, &paths)
        }
        Command::Dags(DagsCmd::Show { dag, json }) => dags_show(&registry, &files, &dag, json),
        Command::Dags(DagsCmd::Run {
            dag,
            logical_date,
            conf,
            queue,
            json,
        }) => {
            let def = find_dag(&registry, &dag)?;
            let conf = parse_conf(&conf)?;
            // Dates on the command line are wall-clock time in the zone the run is cut in.
            let tz = def.run_zone(&def.resolve_params(&conf)?);
            let at = logical_date
                .map(|d| parse_instant(&d, &tz, "--logical-date"))
                .transpose()?;
            let ex = executor(&home, &cli.lease, registry).await?;
            let run = weir_runtime::trigger_run(
                &ex,
                TriggerRequest {
                    dag_id: def.id().clone(),
                    logical_date: at,
                    conf,
                },
            )
            .await?;
            let (ex, outcome) = match queue {
                None => {
                    let outcome = ex.take_over(&run.dag_id, &run.run_id).await?;
                    (ex, outcome)
                }
                Some(queue) => {
                    let ex = Arc::new(ex);
                    let state = weir_runtime::Dispatcher::new(ex.clone(), queue)
                        .drive(&run)
                        .await?;
                    let run = ex
                        .store()
                        .get_run(&run.dag_id, &run.run_id)
                        .await?
                        .ok_or_else(|| anyhow!("run {} vanished", run.run_id))?;
                    let outcome = RunOutcome {
                        run,
                        state,
                        resumed: false,
                    };
                    let ex = Arc::try_unwrap(ex)
                        .map_err(|_| anyhow!("the dispatcher still holds the executor"))?;
                    (ex, outcome)
                }
            };
            print_outcome(ex.store().as_ref(), &def, &outcome, &tz, json).await?;
            if outcome.state == RunState::Failed {
                let tis = ex.store().task_instances(&run.dag_id, &run.run_id).await?;
                if let Some(ti) = tis.iter().find(|ti| ti.state == TaskState::Failed) {
                    eprintln!(
                        "error: run {} failed: task {}{} failed on try {} of {}: {}",
                        run.run_id,
                        ti.key.task_id,
                        ti.key
                            .map_index
                            .position()
                            .map(|i| format!("[{i}]"))
                            .unwrap_or_default(),
                        ti.try_number,
                        ti.max_tries,
                        ti.error.as_deref().unwrap_or("no error recorded")
                    );
                }
            }
            Ok(exit_for(outcome.state))
        }
        Command::Dags(DagsCmd::Backfill {
            dag,
            from,
            to,
            reprocess,
            max_active_runs,
            dry_run,
            conf,
            queue,
            json,
        }) => {
            let def = find_dag(&registry, &dag)?;
            let conf = parse_conf(&conf)?;
            let tz = def.run_zone(&def.resolve_params(&conf)?);
            let opts = BackfillOptions {
                from: parse_instant(&from, &tz, "--from")?,
                to: parse_instant(&to, &tz, "--to")?,
                reprocess: match reprocess {
                    ReprocessArg::None => Reprocess::None,
                    ReprocessArg::Failed => Reprocess::Failed,
                    ReprocessArg::Completed => Reprocess::Completed,
                },
                max_active_runs,
                conf,
                queue,
            };
            let ex = Arc::new(executor(&home, &cli.lease, registry).await?);
            backfill(ex, &def, &opts, &tz, dry_run, json).await
        }
        Command::Runs(RunsCmd::List {
            dag,
            state,
            limit,
            json,
        }) => {
            let store = open_store(&home).await?;
            let filter = RunFilter {
                dag_id: dag.map(DagId::new).transpose()?,
                states: state
                    .map(|s| {
                        RunState::try_from(s.as_str()).map_err(|_| {
                            anyhow!(
                                "unknown run state `{s}`; use queued, running, success or failed"
                            )
                        })
                    })
                    .transpose()?
                    .into_iter()
                    .collect(),
                limit: Some(limit),
                ..Default::default()
            };
            let runs = store.list_runs(&filter).await?;
            print_runs(&runs, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Tasks(TasksCmd::Logs {
            run,
            task,
            map_index,
            try_number,
            dag,
        }) => tasks_logs(&home, &run, &task, map_index, try_number, dag.as_deref()).await,
        Command::Tasks(TasksCmd::Clear {
            run,
            task,
            map_index,
            failed_only,
            downstream,
            no_run,
            dag,
            json,
        }) => {
            let store = open_store(&home).await?;
            let found = find_run(store.as_ref(), &run, dag.as_deref()).await?;
            let def = find_dag(&registry, found.dag_id.as_str())?;
            let tis = store.task_instances(&found.dag_id, &found.run_id).await?;
            let sel = weir_runtime::ClearSelection::of(
                &def,
                &tis,
                task.as_deref(),
                map_index,
                failed_only,
                downstream,
            )
            .map_err(|e| anyhow!("{e}"))?;
            store
                .clear_tasks(&found.dag_id, &found.run_id, &sel.whole, &sel.instances)
                .await?;
            let named: Vec<String> = sel
                .whole
                .iter()
                .cloned()
                .chain(sel.instances.iter().map(|(t, i)| format!("{t}[{i}]")))
                .collect();
            if no_run {
                out!(
                    "cleared {} in run {}; `weir scheduler` runs them",
                    named.join(", "),
                    found.run_id
                );
                return Ok(ExitCode::SUCCESS);
            }
            if !json {
                out!("cleared {} in run {}", named.join(", "), found.run_id);
            }
            let tz = def.run_zone(&def.resolve_params(&found.conf)?);
            let ex = executor(&home, &cli.lease, registry).await?;
            let outcome = ex.take_over(&found.dag_id, &found.run_id).await?;
            print_outcome(ex.store().as_ref(), &def, &outcome, &tz, json).await?;
            Ok(exit_for(outcome.state))
        }
        Command::Tasks(TasksCmd::Errors { dag, runs, json }) => {
            let def = find_dag(&registry, &dag)?;
            let store = open_store(&home).await?;
            let classes = weir_runtime::error_classes(store.as_ref(), def.id(), runs).await?;
            for c in &classes {
                if json {
                    out!("{}", serde_json::to_string(c)?);
                } else {
                    out!(
                        "{:>4} tries in {:>3} runs  {}  [{}]",
                        c.tries,
                        c.runs.len(),
                        c.class,
                        c.tasks.iter().cloned().collect::<Vec<_>>().join(", ")
                    );
                    out!("      e.g. {} ({})", c.example, c.runs[0]);
                }
            }
            if !json {
                out!("{} error classes", classes.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Runs(RunsCmd::Diagnose { run, dag, json }) => {
            let store = open_store(&home).await?;
            let found = find_run(store.as_ref(), &run, dag.as_deref()).await?;
            let def = find_dag(&registry, found.dag_id.as_str())?;
            let d = weir_runtime::diagnose(store.as_ref(), &def, &found.run_id, &home).await?;
            if json {
                out!("{}", serde_json::to_string(&d)?);
                return Ok(ExitCode::SUCCESS);
            }
            out!("run {} of {} is {}", d.run_id, d.dag_id, d.state);
            match &d.root {
                None => out!("no task failed"),
                Some(r) => {
                    let at = if r.map_index >= 0 {
                        format!("{}[{}]", r.task_id, r.map_index)
                    } else {
                        r.task_id.clone()
                    };
                    out!(
                        "root cause: {at} failed on try {}: {}",
                        r.try_number,
                        r.error
                    );
                    out!("  error class: {}", r.class);
                    out!("  log: {}", r.log.display());
                    for (task, value) in &r.inputs {
                        out!("  input from {task}: {value}");
                    }
                }
            }
            if !d.failed.is_empty() {
                out!("failed: {}", d.failed.join(", "));
            }
            if !d.upstream_failed.is_empty() {
                out!(
                    "did not run (upstream failed): {}",
                    d.upstream_failed.join(", ")
                );
            }
            out!("dead letters of the run: {}", d.dead_letters);
            if !d.recovery.is_empty() {
                out!("to recover:");
                for cmd in &d.recovery {
                    out!("  {cmd}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tasks(TasksCmd::List { run, dag, json }) => {
            tasks_list(&home, &run, dag.as_deref(), json).await
        }
        Command::Scheduler(SchedulerArgs {
            queue: Some(queue),
            once,
            poll,
        }) => dispatch_scheduler(&home, &cli.lease, registry, files, &queue, once, poll).await,
        Command::Worker(args) => worker(&home, &cli.lease, registry, args).await,
        Command::Scheduler(args) => {
            let mut ex = executor(&home, &cli.lease, registry).await?;
            // With --once, a run whose sensors wait is left for the next pass, not waited for.
            ex.set_yield_waiting_sensors(args.once);
            let ex = Arc::new(ex);
            if !args.once {
                tokio::spawn(watch_dag_files(
                    ex.clone(),
                    files,
                    Duration::from_secs(args.poll.max(1)),
                ));
            }
            let scheduler = Scheduler::new(ex);
            let shutdown = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            let mut failed = 0usize;
            scheduler
                .serve(
                    Duration::from_secs(args.poll.max(1)),
                    args.once,
                    shutdown,
                    |outcome: &RunOutcome| {
                        if outcome.state == RunState::Failed {
                            failed += 1;
                        }
                        eprintln!(
                            "{} {} {}{}",
                            outcome.run.dag_id,
                            outcome.run.run_id,
                            if outcome.state.is_terminal() {
                                outcome.state.to_string()
                            } else {
                                "waiting (sensors poke again at a later pass)".to_owned()
                            },
                            if outcome.resumed { " (resumed)" } else { "" }
                        );
                    },
                )
                .await?;
            Ok(if failed > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Schedule(ScheduleCmd::Preview(args)) => schedule_preview(&args),
        Command::Data(DataCmd::Generate {
            out,
            rows,
            start,
            days,
            seed,
            json,
        }) => {
            let out = out.unwrap_or_else(|| weir_patterns::default_sample_path(&home));
            let start = parse_instant(&start, &TimeZone::UTC, "--start")?;
            let spec = weir_data::SampleSpec {
                rows,
                start,
                days,
                seed,
                ..Default::default()
            };
            let summary = generate(&spec, &out).await?;
            if json {
                out!(
                    "{}",
                    json!({"path": out, "rows": summary.rows, "malformed": summary.malformed, "late": summary.late, "bytes": summary.bytes})
                );
            } else {
                out!(
                    "wrote {} rows ({} malformed, {} late) to {} ({} bytes)",
                    summary.rows,
                    summary.malformed,
                    summary.late,
                    out.display(),
                    summary.bytes
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Data(DataCmd::Ls { dir, json }) => data_ls(&dir, json).await,
        Command::Data(DataCmd::Manifests { dir, json }) => {
            let store = open_store(&home).await?;
            let name = weir_ops::load::dataset_name(&dir);
            let manifests = store.manifests(&name).await?;
            if manifests.is_empty() && !json {
                bail!(
                    "no manifests recorded for {} in this home; `weir data ls` lists partitions, and manifests are kept in the home (--home) of the run that wrote them",
                    dir.display()
                );
            }
            for m in &manifests {
                if json {
                    out!("{}", serde_json::to_string(m)?);
                } else {
                    out!(
                        "{:<32} in {:>10} out {:>10} rejected {:>6} {:>12} bytes {:>3} files  {} {} try {}",
                        m.partition,
                        m.rows_in,
                        m.rows_out,
                        m.rows_rejected,
                        m.bytes,
                        m.files,
                        m.run_id,
                        m.task_id,
                        m.try_number
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Data(DataCmd::Rejects {
            source,
            dag,
            run,
            json,
        }) => {
            let store = open_store(&home).await?;
            let filter = weir_store::RejectFilter {
                source: source.map(|s| weir_ops::load::dataset_name(&s)),
                dag_id: dag,
                run_id: run,
                ..Default::default()
            };
            let rejects = store.dead_letters(&filter).await?;
            for r in &rejects {
                if json {
                    out!("{}", serde_json::to_string(r)?);
                } else {
                    out!(
                        "{}:{}: {}  [{} {} try {}]",
                        r.source,
                        r.line,
                        r.reason,
                        r.run_id,
                        r.task_id,
                        r.try_number
                    );
                    out!("    {}", r.raw);
                }
            }
            if !json {
                out!("{} rejected rows", rejects.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Data(DataCmd::Query {
            sql,
            tables,
            explain,
            json,
            null_values,
            source_tz,
            schema,
        }) => {
            let read = FileReading {
                null_values,
                source_tz,
                schema,
            };
            data_query(&sql, &tables, &read, explain, json).await
        }
        Command::Checkpoints(cmd) => {
            let store = open_store(&home).await?;
            crate::checkpoints::checkpoints(cmd, store).await
        }
        Command::Dlq(cmd) => {
            let store = open_store(&home).await?;
            crate::dlq::dlq(cmd, store, &registry, &home).await
        }
        Command::Datasets(cmd) => {
            let store = open_store(&home).await?;
            crate::datasets::datasets(cmd, store).await
        }
        Command::Checks(cmd) => {
            let store = open_store(&home).await?;
            crate::checks::checks(cmd, store.as_ref()).await
        }
        Command::Pools(PoolsCmd::List { json }) => {
            let store = open_store(&home).await?;
            for pool in store.pools().await? {
                if json {
                    out!("{}", serde_json::to_string(&pool)?);
                } else {
                    out!("{:<24} {:>6}  {}", pool.name, pool.slots, pool.description);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Pools(PoolsCmd::Set {
            name,
            slots,
            description,
        }) => {
            let store = open_store(&home).await?;
            store.set_pool(&name, slots, &description).await?;
            out!("pool {name} has {slots} slots");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn generate(spec: &weir_data::SampleSpec, out: &Path) -> Result<weir_data::SampleSummary> {
    let spec = spec.clone();
    let out = out.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<weir_data::SampleSummary> {
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let summary = match out.extension().and_then(|e| e.to_str()) {
            Some("parquet") => weir_data::write_orders_parquet(&spec, &out)?,
            Some("csv") => {
                let summary = weir_data::write_orders_csv(&spec, &out)?;
                // Its declared types, beside it: loads pick it up (a stray "N/A" amount is then
                // a reject, not a reason to read the column as text).
                weir_data::write_orders_schema(&out)?;
                summary
            }
            _ => bail!("--out {} must end in .csv or .parquet", out.display()),
        };
        Ok(summary)
    })
    .await?
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM: how a scheduler or worker is asked to stop.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `weir scheduler --queue Q`: creates due runs and plans every unfinished run for the workers
/// of queue Q, waking when a worker reports a try or at each poll.
async fn dispatch_scheduler(
    home: &Path,
    lease: &str,
    registry: Registry,
    files: FileDags,
    queue: &str,
    once: bool,
    poll: u64,
) -> Result<ExitCode> {
    let ex = Arc::new(executor(home, lease, registry).await?);
    if !once {
        tokio::spawn(watch_dag_files(
            ex.clone(),
            files,
            Duration::from_secs(poll.max(1)),
        ));
    }
    let scheduler = Scheduler::new(ex.clone());
    let dispatcher = weir_runtime::Dispatcher::new(ex.clone(), queue);
    let mut wakeup = ex.store().listen(&[weir_store::channel::DONE]).await?;
    let mut stop = std::pin::pin!(stop_signal());
    let mut failed = 0usize;
    loop {
        // A store away for a moment is waited out, not the end of the scheduler.
        let pass = async {
            scheduler.create_due_runs(ex.clock().now()).await?;
            dispatcher.pass_all().await
        };
        match pass.await {
            Ok(ended) => {
                for (run, state) in ended {
                    if state == RunState::Failed {
                        failed += 1;
                    }
                    eprintln!("{} {} {state}", run.dag_id, run.run_id);
                }
            }
            Err(weir_runtime::RuntimeError::Store(e)) if weir_core::Transient::is_transient(&e) => {
                tracing::warn!("scheduling pass did not finish: {e}; trying again");
            }
            Err(e) => return Err(e.into()),
        }
        if once {
            break;
        }
        tokio::select! {
            () = &mut stop => break,
            woke = wakeup.wait(Duration::from_secs(poll.max(1))) => { woke?; }
        }
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `weir worker`: claims and runs instances until SIGINT or SIGTERM, then finishes its tries.
async fn worker(
    home: &Path,
    lease: &str,
    registry: Registry,
    args: WorkerArgs,
) -> Result<ExitCode> {
    let ex = Arc::new(executor(home, lease, registry).await?);
    let concurrency = args.concurrency.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    if concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let worker = weir_runtime::Worker::new(
        ex,
        weir_runtime::WorkerOptions {
            queues: args.queues,
            concurrency,
            poll: Duration::from_secs(args.poll.max(1)),
        },
    );
    eprintln!("worker {} ready ({concurrency} at once)", worker.owner());
    let report = worker.run(stop_signal()).await?;
    eprintln!(
        "worker {} stopped: {} succeeded, {} failed, {} lost",
        worker.owner(),
        report.succeeded,
        report.failed,
        report.lost
    );
    Ok(ExitCode::SUCCESS)
}

/// `--store` (or `WEIR_STORE_URL`), set once when the command line is read.
static STORE_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn store_url(home: &Path) -> String {
    STORE_URL
        .get()
        .cloned()
        .unwrap_or_else(|| format!("sqlite://{}", home.join("weir.db").display()))
}

async fn open_store(home: &Path) -> Result<Arc<dyn Store>> {
    let url = store_url(home);
    weir_store::open(&url)
        .await
        .with_context(|| format!("cannot open the metadata store at {url}"))
}

async fn executor(home: &Path, lease: &str, registry: Registry) -> Result<Executor> {
    let lease = parse_duration(lease).map_err(|e| anyhow!("--lease / WEIR_LEASE: {e}"))?;
    if lease < jiff::SignedDuration::from_millis(300) {
        bail!(
            "--lease {lease:#} is too short; give at least 300ms (heartbeats come every third of it)"
        );
    }
    let store = open_store(home).await?;
    let parallelism = match std::env::var("WEIR_PARALLELISM") {
        Ok(v) => v
            .parse()
            .map_err(|_| anyhow!("WEIR_PARALLELISM=`{v}` is not a whole number"))?,
        Err(_) => 64,
    };
    let opts = ExecutorOptions {
        parallelism,
        lease,
        home: home.to_path_buf(),
        ..Default::default()
    };
    Ok(Executor::new(
        store,
        Arc::new(registry),
        Arc::new(TokioClock::system()),
        opts,
    ))
}

fn find_dag(registry: &Registry, id: &str) -> Result<Arc<DagDef>> {
    registry.get(id).cloned().ok_or_else(|| {
        anyhow!("no DAG named `{id}`; `weir dags list` shows the DAGs this binary knows")
    })
}

fn parse_instant(text: &str, tz: &TimeZone, flag: &str) -> Result<Timestamp> {
    parse_start(text, tz).map_err(|e| anyhow!("{flag}: {e}"))
}

/// `name=value` pairs into a JSON object of strings.
fn parse_conf(pairs: &[String]) -> Result<Value> {
    let mut conf = serde_json::Map::new();
    for pair in pairs {
        let (name, value) = pair.split_once('=').ok_or_else(|| {
            anyhow!("--conf `{pair}` is not NAME=VALUE; write e.g. --conf source=orders.csv")
        })?;
        if name.is_empty() {
            bail!("--conf `{pair}` has an empty name; write e.g. --conf source=orders.csv");
        }
        conf.insert(name.to_owned(), Value::String(value.to_owned()));
    }
    Ok(Value::Object(conf))
}

fn exit_for(state: RunState) -> ExitCode {
    if state == RunState::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn fmt_ts(ts: Timestamp, tz: &TimeZone) -> String {
    ts.to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// What the DAG folders hold now: every `*.toml` with its modification time and length.
fn dag_files_fingerprint(dirs: &[PathBuf]) -> Vec<(PathBuf, Option<std::time::SystemTime>, u64)> {
    let mut out = Vec::new();
    for dir in dirs {
        for path in weir_dagfile::dag_files(dir).unwrap_or_default() {
            let meta = std::fs::metadata(&path).ok();
            out.push((
                path,
                meta.as_ref().and_then(|m| m.modified().ok()),
                meta.map(|m| m.len()).unwrap_or(0),
            ));
        }
    }
    out
}

/// A running scheduler's watch on its DAG folders: when a file is added, changed or removed,
/// the DAGs are loaded again and swapped in whole; runs keep the version they were created
/// with (the registry keeps every version it held).
async fn watch_dag_files(ex: Arc<Executor>, files: FileDags, every: Duration) {
    let mut seen = dag_files_fingerprint(&files.dirs);
    loop {
        tokio::time::sleep(every).await;
        let now = dag_files_fingerprint(&files.dirs);
        if now == seen {
            continue;
        }
        seen = now;
        let mut registry = files.base.clone();
        let loaded = weir_dagfile::load_dirs(&files.dirs);
        let mut errors = loaded.errors;
        let mut ids = Vec::new();
        for dag in loaded.dags {
            let id = dag.def.dag.id.to_string();
            if files.base.get(&id).is_some() {
                errors.push(weir_dagfile::Problem {
                    path: dag.path,
                    line: None,
                    message: format!("DAG id `{id}` is already a DAG of this binary"),
                });
                continue;
            }
            ids.push(format!("{id}@{}", dag.version));
            registry.add(dag.def);
        }
        registry.keep_versions_of(&ex.registry());
        ex.set_registry(Arc::new(registry));
        eprintln!("DAG files reloaded: {}", ids.join(", "));
        for p in errors {
            eprintln!("import error: {p}");
        }
    }
}

/// `weir dags validate FILE...`: every problem of every file, one line each; exit 1 if any.
fn dags_validate(registry: &Registry, files: &FileDags, paths: &[PathBuf]) -> Result<ExitCode> {
    let same_file = |a: &Path, b: &Path| {
        std::fs::canonicalize(a)
            .ok()
            .is_some_and(|a| std::fs::canonicalize(b).ok() == Some(a))
    };
    let mut problems = 0;
    for path in paths {
        match weir_dagfile::load_file(path) {
            Ok(dag) => {
                let id = dag.def.dag.id.to_string();
                // The id of a DAG of the binary (or of another file) is taken; this file's own
                // DAG, loaded at start, is not a clash.
                let own = files
                    .by_id
                    .get(&id)
                    .is_some_and(|(loaded, _)| same_file(loaded, path));
                if registry.get(&id).is_some() && !own {
                    problems += 1;
                    let owner = match files.by_id.get(&id) {
                        Some((other, _)) => format!("declared by {}", other.display()),
                        None => "a DAG of this binary".to_owned(),
                    };
                    out!(
                        "{}: DAG id `{id}` is already {owner}; give the file's DAG another id",
                        path.display()
                    );
                } else {
                    out!(
                        "{}: ok: DAG `{id}`, {} tasks, version {}",
                        path.display(),
                        dag.def.dag.tasks().len(),
                        dag.version
                    );
                }
            }
            Err(found) => {
                problems += found.len();
                for p in found {
                    out!("{p}");
                }
            }
        }
    }
    if problems > 0 {
        eprintln!(
            "{problems} problem{} in {} file{}",
            if problems == 1 { "" } else { "s" },
            paths.len(),
            if paths.len() == 1 { "" } else { "s" }
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn dags_list(registry: &Registry, files: &FileDags, json: bool) -> Result<ExitCode> {
    for p in &files.errors {
        if json {
            out!(
                "{}",
                json!({"import_error": p.path, "line": p.line, "message": p.message})
            );
        }
    }
    for def in registry.dags() {
        let schedule = def
            .dag
            .schedule
            .as_ref()
            .map(|s| s.summary())
            .unwrap_or_else(|| "none".to_owned());
        if json {
            out!(
                "{}",
                json!({"dag_id": def.id().as_str(), "schedule": schedule, "tasks": def.dag.tasks().len(), "description": def.dag.description, "tags": def.dag.tags})
            );
        } else {
            out!("{:<48} {:<32} {}", def.id(), schedule, def.dag.description);
        }
    }
    if !json && !files.errors.is_empty() {
        out!("");
        out!("import errors (these DAG files did not load):");
        for p in &files.errors {
            out!("  {p}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn dags_show(registry: &Registry, files: &FileDags, id: &str, json: bool) -> Result<ExitCode> {
    let def = find_dag(registry, id)?;
    let file = files.by_id.get(id);
    let dag = &def.dag;
    let schedule = dag
        .schedule
        .as_ref()
        .map(|s| s.summary())
        .unwrap_or_else(|| "none".to_owned());
    let tasks: Vec<Value> = dag
        .tasks()
        .iter()
        .map(|t| {
            json!({
                "task_id": t.id.as_str(),
                "upstream": t.upstream.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
                "trigger_rule": t.trigger_rule.as_str(),
                "retries": t.retry.retries,
                "pool": t.pool,
                "pool_slots": t.pool_slots,
                "mapped": t.is_mapped(),
                "doc": t.doc,
            })
        })
        .collect();
    if json {
        out!(
            "{}",
            json!({
                "dag_id": dag.id.as_str(), "description": dag.description, "schedule": schedule,
                "start_date": dag.start_date.map(|t| t.to_string()), "catchup": dag.catchup,
                "max_active_runs": dag.max_active_runs, "max_active_tasks": dag.max_active_tasks,
                "params": dag.params.iter().map(|p| json!({
                    "name": p.name, "accepts": p.accepts(), "kind": p.kind, "default": p.default, "doc": p.doc,
                })).collect::<Vec<_>>(),
                "tasks": tasks,
                "file": file.map(|(path, _)| path),
                "version": file.map(|(_, version)| version),
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    out!("{}  ({schedule})", dag.id);
    if let Some((path, version)) = file {
        out!(
            "  file {}  (version {version}, the current one)",
            path.display()
        );
    }
    if !dag.description.is_empty() {
        out!("  {}", dag.description);
    }
    out!(
        "  max_active_runs {}  max_active_tasks {}  catchup {}",
        dag.max_active_runs,
        dag.max_active_tasks,
        dag.catchup
    );
    for p in dag.params.iter() {
        let default = match &p.default {
            None => String::new(),
            Some(Value::String(s)) => format!(" = {s}"),
            Some(v) => format!(" = {v}"),
        };
        out!(
            "  --conf {:<16} {}{default}\n  {:<23} {}",
            p.name,
            p.accepts(),
            "",
            p.doc
        );
    }
    for t in dag.tasks() {
        let ups: Vec<&str> = t.upstream.iter().map(|u| u.as_str()).collect();
        out!(
            "  task {:<28} after [{}] {}{}",
            t.id,
            ups.join(", "),
            t.trigger_rule.as_str(),
            if t.is_mapped() { " (mapped)" } else { "" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Final tasks' outputs: what a run produced ("what landed").
async fn leaf_outputs(
    store: &dyn Store,
    def: &DagDef,
    run: &RunRecord,
) -> Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    for (pos, task) in def.dag.tasks().iter().enumerate() {
        if def.dag.downstream_of(pos).is_empty() {
            let outputs = store
                .outputs(&run.dag_id, &run.run_id, task.id.as_str())
                .await?;
            let value = match outputs.len() {
                0 => continue,
                1 if outputs[0].0 < 0 => outputs[0].1.clone(),
                _ => Value::Array(outputs.into_iter().map(|(_, v)| v).collect()),
            };
            out.insert(task.id.to_string(), value);
        }
    }
    Ok(out)
}

async fn print_outcome(
    store: &dyn Store,
    def: &DagDef,
    outcome: &RunOutcome,
    tz: &TimeZone,
    json: bool,
) -> Result<()> {
    let run = &outcome.run;
    let tz = tz.clone();
    let tis = store.task_instances(&run.dag_id, &run.run_id).await?;
    let outputs = leaf_outputs(store, def, run).await?;
    if json {
        let mut states: BTreeMap<&str, usize> = BTreeMap::new();
        for ti in &tis {
            *states.entry(ti.state.as_str()).or_default() += 1;
        }
        out!(
            "{}",
            json!({
                "dag_id": run.dag_id.as_str(), "run_id": run.run_id.as_str(), "state": outcome.state.as_str(),
                "resumed": outcome.resumed,
                "data_interval_start": fmt_ts(run.interval_start, &tz), "data_interval_end": fmt_ts(run.interval_end, &tz),
                "task_states": states, "outputs": outputs,
            })
        );
        return Ok(());
    }
    out!(
        "{} {} {}  [{} .. {}){}",
        run.dag_id,
        run.run_id,
        outcome.state,
        fmt_ts(run.interval_start, &tz),
        fmt_ts(run.interval_end, &tz),
        if outcome.resumed {
            "  (resumed: its previous process stopped)"
        } else {
            ""
        }
    );
    let mut per_task: BTreeMap<&str, BTreeMap<TaskState, usize>> = BTreeMap::new();
    for ti in &tis {
        *per_task
            .entry(ti.key.task_id.as_str())
            .or_default()
            .entry(ti.state)
            .or_default() += 1;
    }
    for task in def.dag.tasks() {
        let Some(states) = per_task.get(task.id.as_str()) else {
            continue;
        };
        let parts: Vec<String> = states.iter().map(|(s, n)| format!("{n} {s}")).collect();
        out!("  {:<32} {}", task.id, parts.join(", "));
    }
    for ti in tis.iter().filter(|ti| ti.state == TaskState::Failed) {
        out!(
            "  ! {}[{}] failed on try {}: {}",
            ti.key.task_id,
            ti.key.map_index,
            ti.try_number,
            ti.error.as_deref().unwrap_or("")
        );
    }
    for (task, value) in outputs {
        out!("  => {task}: {value}");
    }
    Ok(())
}

async fn backfill(
    ex: Arc<Executor>,
    def: &DagDef,
    opts: &BackfillOptions,
    tz: &TimeZone,
    dry_run: bool,
    json: bool,
) -> Result<ExitCode> {
    let tz = tz.clone();
    let plan = weir_runtime::plan_backfill(&ex, def.id(), opts).await?;
    if dry_run {
        for e in &plan.entries {
            if json {
                out!(
                    "{}",
                    json!({
                        "logical_date": fmt_ts(e.logical_date, &tz), "data_interval_start": fmt_ts(e.interval_start, &tz),
                        "data_interval_end": fmt_ts(e.interval_end, &tz), "existing": e.existing.map(|s| s.as_str()),
                        "action": e.action,
                    })
                );
            } else {
                let action = match e.action {
                    PlanAction::Create => "create",
                    PlanAction::Rerun => "rerun",
                    PlanAction::Resume => "resume",
                    PlanAction::Skip => "skip",
                };
                out!(
                    "{:<7} [{} .. {}){}",
                    action,
                    fmt_ts(e.interval_start, &tz),
                    fmt_ts(e.interval_end, &tz),
                    e.existing
                        .map(|s| format!("  (existing run: {s})"))
                        .unwrap_or_default()
                );
            }
        }
        if !json {
            out!("dry run: {} intervals, nothing changed", plan.entries.len());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let bar = if std::io::stderr().is_terminal() && !json {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} backfill {msg} [{bar:30}] {pos}/{len} runs {elapsed}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(def.id().to_string());
    let started = std::time::Instant::now();
    let report = weir_runtime::backfill(ex.clone(), def.id(), opts, |event| match event {
        BackfillEvent::Started { runs } => bar.set_length(*runs as u64),
        BackfillEvent::RunFinished {
            logical_date,
            state,
            ..
        } => {
            bar.inc(1);
            if *state == RunState::Failed {
                bar.println(format!("run for {} failed", fmt_ts(*logical_date, &tz)));
            }
        }
    })
    .await?;
    bar.finish_and_clear();
    let store = ex.store();
    let mut runs = report.runs.clone();
    runs.sort_by_key(|(r, _)| r.logical_date);
    for (run, state) in &runs {
        let outputs = leaf_outputs(store.as_ref(), def, run).await?;
        if json {
            out!(
                "{}",
                json!({
                    "run_id": run.run_id.as_str(), "state": state.as_str(),
                    "data_interval_start": fmt_ts(run.interval_start, &tz), "data_interval_end": fmt_ts(run.interval_end, &tz),
                    "outputs": outputs,
                })
            );
        } else {
            let landed: Vec<String> = outputs.iter().map(|(t, v)| format!("{t}: {v}")).collect();
            out!(
                "{:<8} [{} .. {})  {}",
                state.as_str(),
                fmt_ts(run.interval_start, &tz),
                fmt_ts(run.interval_end, &tz),
                landed.join("; ")
            );
        }
    }
    let (ok, failed) = (
        report.count(RunState::Success),
        report.count(RunState::Failed),
    );
    for run_id in &report.held {
        eprintln!(
            "run {run_id} is being run by another live process; left to it (run this backfill again once it has finished)"
        );
    }
    if json {
        out!(
            "{}",
            json!({
                "summary": true, "succeeded": ok, "failed": failed, "resumed": report.resumed,
                "skipped": report.skipped, "held_by_another_process": report.held.len(),
            })
        );
    } else {
        out!(
            "backfill of {}: {} runs succeeded, {} failed, {} resumed, {} skipped (already run){} in {:.1}s",
            def.id(),
            ok,
            failed,
            report.resumed,
            report.skipped,
            if report.held.is_empty() {
                String::new()
            } else {
                format!(", {} left to another live process", report.held.len())
            },
            started.elapsed().as_secs_f64()
        );
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_runs(runs: &[RunRecord], json: bool) -> Result<()> {
    for run in runs {
        if json {
            out!("{}", serde_json::to_string(run).expect("runs serialize"));
        } else {
            out!(
                "{:<44} {:<40} {:<8} {} .. {}",
                run.dag_id,
                run.run_id,
                run.state,
                run.interval_start,
                run.interval_end
            );
        }
    }
    Ok(())
}

async fn tasks_logs(
    home: &Path,
    run: &str,
    task: &str,
    map_index: Option<i64>,
    try_number: Option<u32>,
    dag: Option<&str>,
) -> Result<ExitCode> {
    let store = open_store(home).await?;
    let run = find_run(store.as_ref(), run, dag).await?;
    let tis = store.task_instances(&run.dag_id, &run.run_id).await?;
    let wanted = map_index.unwrap_or(-1);
    let ti = tis
        .iter()
        .find(|ti| ti.key.task_id.as_str() == task && ti.key.map_index.raw() == wanted)
        .ok_or_else(|| {
            let mapped = tis
                .iter()
                .any(|ti| ti.key.task_id.as_str() == task && ti.key.map_index.raw() >= 0);
            if mapped && map_index.is_none() {
                anyhow!("task `{task}` of run {} is mapped; pick an instance with --map-index N (`weir tasks list {}` lists them)", run.run_id, run.run_id)
            } else {
                anyhow!("run {} has no task instance `{task}`{}; `weir tasks list {}` lists them", run.run_id, map_index.map(|i| format!(" [{i}]")).unwrap_or_default(), run.run_id)
            }
        })?;
    let try_number = try_number.unwrap_or(ti.try_number);
    if try_number == 0 {
        bail!(
            "task `{task}` of run {} has not started a try yet",
            run.run_id
        );
    }
    let path = weir_runtime::try_log_path(
        &home.join("logs"),
        run.dag_id.as_str(),
        run.run_id.as_str(),
        task,
        wanted,
        run.clear_number,
        try_number,
    );
    // A try this host ran has its file here; one a worker ran elsewhere is in the store.
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => match store.try_log(&ti.key, run.clear_number, try_number).await? {
            Some(log) => log.text,
            None => bail!(
                "no log of try {try_number} of `{task}` in run {}: not at {} ({e}) nor in the store; the try may not have started, or ran under another --home",
                run.run_id,
                path.display()
            ),
        },
    };
    for line in text.lines() {
        out!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The run with this id (in `dag`, when given), or an error saying how to find one.
async fn find_run(store: &dyn Store, run: &str, dag: Option<&str>) -> Result<RunRecord> {
    let run_id = RunId::new(run)?;
    let filter = RunFilter {
        dag_id: dag.map(DagId::new).transpose()?,
        ..Default::default()
    };
    let matches: Vec<RunRecord> = store
        .list_runs(&filter)
        .await?
        .into_iter()
        .filter(|r| r.run_id == run_id)
        .collect();
    match matches.as_slice() {
        [] => bail!(
            "no run `{run}`{}; `weir runs list` shows the runs",
            dag.map(|d| format!(" in DAG `{d}`")).unwrap_or_default()
        ),
        [one] => Ok(one.clone()),
        _ => bail!("several DAGs have a run `{run}`; name one with --dag"),
    }
}

async fn tasks_list(home: &Path, run: &str, dag: Option<&str>, json: bool) -> Result<ExitCode> {
    let store = open_store(home).await?;
    let run = find_run(store.as_ref(), run, dag).await?;
    let tis = store.task_instances(&run.dag_id, &run.run_id).await?;
    for ti in &tis {
        if json {
            out!("{}", serde_json::to_string(ti)?);
        } else {
            let took = match (ti.started_at, ti.ended_at) {
                (Some(s), Some(e)) => format!("{:.3}s", e.duration_since(s).as_secs_f64()),
                _ => String::new(),
            };
            out!(
                "{:<32} {:>6} {:<16} try {:<2} {:>10}  {}",
                ti.key.task_id,
                ti.key.map_index,
                ti.state,
                ti.try_number,
                took,
                ti.error.as_deref().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn schedule_preview(args: &PreviewArgs) -> Result<ExitCode> {
    let tz = parse_zone(&args.tz)?;
    let start = parse_instant(&args.start, &tz, "--start")?;
    let interval = args
        .interval
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| anyhow!("--interval: {e}"))?;
    if interval.is_some() && args.kind == KindArg::Interval {
        bail!(
            "--interval applies to --kind trigger only; window schedules take their interval from the schedule"
        );
    }
    let interval = interval.unwrap_or(jiff::SignedDuration::ZERO);
    let tt: Arc<dyn Timetable> = match (&args.cron, &args.every, args.kind) {
        (Some(cron), _, KindArg::Interval) => {
            Arc::new(CronDataIntervalTimetable::new(cron, tz.clone())?)
        }
        (Some(cron), _, KindArg::Trigger) => {
            Arc::new(CronTriggerTimetable::new(cron, tz.clone(), interval)?)
        }
        (None, Some(every), kind) => {
            let delta = parse_duration(every).map_err(|e| anyhow!("--every: {e}"))?;
            match kind {
                KindArg::Interval => Arc::new(DeltaDataIntervalTimetable::new(delta)?),
                KindArg::Trigger => Arc::new(DeltaTriggerTimetable::new(delta, interval)?),
            }
        }
        (None, None, _) => bail!("give a schedule with --cron or --every"),
    };
    for info in preview(tt.as_ref(), start, args.count) {
        let (s, e, r) = (
            fmt_ts(info.data_interval.start, &tz),
            fmt_ts(info.data_interval.end, &tz),
            fmt_ts(info.run_after, &tz),
        );
        if args.json {
            let hours = info
                .data_interval
                .end
                .duration_since(info.data_interval.start)
                .as_secs_f64()
                / 3600.0;
            out!(
                "{}",
                json!({"logical_date": s, "data_interval_start": s, "data_interval_end": e, "run_after": r, "interval_hours": hours})
            );
        } else {
            out!("{s}  ->  {e}   run after {r}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn data_ls(dir: &Path, json: bool) -> Result<ExitCode> {
    if !dir.is_dir() {
        bail!(
            "{} is not a folder; pass a dataset folder such as .weir/data/110_01_01_daily_batch_processing",
            dir.display()
        );
    }
    let root = dir.to_path_buf();
    let partitions =
        tokio::task::spawn_blocking(move || weir_data::Dataset::open(&root)?.partitions())
            .await??;
    let (mut rows, mut bytes, mut files) = (0u64, 0u64, 0u64);
    for p in &partitions {
        rows += p.rows;
        bytes += p.bytes;
        files += u64::from(p.files);
        if json {
            out!(
                "{}",
                json!({"partition": p.partition, "rows": p.rows, "bytes": p.bytes, "files": p.files, "format": p.format.extension()})
            );
        } else {
            out!(
                "{:<40} {:>12} rows {:>12} bytes {:>4} {} files",
                p.partition,
                p.rows,
                p.bytes,
                p.files,
                p.format
            );
        }
    }
    if !json {
        out!(
            "{} partitions, {rows} rows, {bytes} bytes in {files} files",
            partitions.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// How `weir data query` reads source files.
struct FileReading {
    null_values: Option<String>,
    source_tz: Option<String>,
    schema: Option<PathBuf>,
}

impl FileReading {
    fn options(&self, first: &Path) -> Result<weir_data::ReadOptions> {
        let mut opts = weir_data::ReadOptions::default();
        if let Some(list) = &self.null_values {
            opts.null_values = weir_data::source::parse_null_values(list);
        }
        if let Some(zone) = &self.source_tz {
            opts.source_tz = Some(
                weir_core::timetable::parse_zone(zone).map_err(|e| anyhow!("--source-tz: {e}"))?,
            );
        }
        opts.column_types = match &self.schema {
            Some(file) => weir_data::source::read_schema_file(file)?,
            None => weir_data::source::sidecar_column_types(first)?,
        };
        Ok(opts)
    }
}

async fn data_query(
    sql: &str,
    tables: &[String],
    read: &FileReading,
    explain: bool,
    json: bool,
) -> Result<ExitCode> {
    let engine = weir_query::QueryEngine::new();
    for table in tables {
        let (name, location) = table.split_once('=').ok_or_else(|| {
            anyhow!(
                "--table `{table}` is not NAME=LOCATION; write e.g. --table orders=.weir/data/orders or --table f=flights.csv"
            )
        })?;
        if weir_query::is_pattern(location) || Path::new(location).is_file() {
            let files = if weir_query::is_pattern(location) {
                weir_query::expand_pattern(location)
            } else {
                vec![PathBuf::from(location)]
            };
            let Some(first) = files.first() else {
                bail!("--table {name}={location}: no files match; check the pattern");
            };
            engine.register_files(name, &files, read.options(first)?)?;
        } else {
            engine.register_location(name, location).await?;
        }
    }
    let (batches, report) = if explain {
        let (batches, report) = engine.explain(sql).await?;
        (batches, Some(report))
    } else {
        (engine.sql(sql).await?, None)
    };
    if json {
        let mut writer = arrow::json::LineDelimitedWriter::new(std::io::stdout().lock());
        for batch in &batches {
            writer.write(batch)?;
        }
        writer.finish()?;
    } else {
        out!("{}", arrow::util::pretty::pretty_format_batches(&batches)?);
    }
    let rejects = engine.take_rejects();
    if let Some(first) = rejects.first() {
        eprintln!(
            "note: {} source rows could not be read and were left out (first: {}:{}: {})",
            rejects.len(),
            first.file.display(),
            first.line,
            first.reason
        );
    }
    if let Some(report) = report {
        let out = if json {
            json!({
            "files_scanned": report.files.len(),
            "files": report.files.iter().map(|f| json!({"path": f.path, "bytes": f.bytes})).collect::<Vec<_>>(),
            "bytes_scanned": report.bytes_scanned,
            "row_groups_pruned": report.row_groups_pruned,
            "rows": report.rows,
            "plan": report.plan,
        }).to_string()
        } else {
            format!(
                "{}\nfiles scanned: {} ({} bytes on disk), bytes read: {}, row groups pruned: {}",
                report.plan.trim_end(),
                report.files.len(),
                report.files.iter().map(|f| f.bytes).sum::<u64>(),
                report.bytes_scanned,
                report.row_groups_pruned
            )
        };
        eprintln!("{out}");
    }
    Ok(ExitCode::SUCCESS)
}
