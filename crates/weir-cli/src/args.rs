//! The command line, as clap parses it: raw flags, validated later into typed requests.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "weir",
    version,
    about = "weir: batch pipelines on the Airflow model, one fast binary"
)]
pub struct Cli {
    /// Home folder: the SQLite store, logs and data [default: $WEIR_HOME or ./.weir]
    #[arg(long, global = true, env = "WEIR_HOME", default_value = ".weir")]
    pub home: PathBuf,
    /// The metadata store: `sqlite://PATH` or `postgres://USER@HOST:PORT/DATABASE`
    /// [default: $WEIR_STORE_URL or sqlite://HOME/weir.db]
    #[arg(
        long = "store",
        global = true,
        env = "WEIR_STORE_URL",
        value_name = "URL"
    )]
    pub store: Option<String>,
    /// Log filter, e.g. `info` or `weir_runtime=debug` [default: warn]
    #[arg(long, global = true, env = "WEIR_LOG", default_value = "warn")]
    pub log: String,
    /// How long a run (and a task try) stays this process's without a heartbeat, e.g. `30s`.
    /// A killed process's runs are taken over by the next `weir` that runs them after this long.
    #[arg(long, global = true, env = "WEIR_LEASE", default_value = "30s")]
    pub lease: String,
    /// A folder of DAG files (`*.toml`) to load besides HOME/dags; repeatable.
    #[arg(long = "dags", global = true, value_name = "DIR")]
    pub dags: Vec<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List, inspect, run and backfill DAGs.
    #[command(subcommand)]
    Dags(DagsCmd),
    /// List DAG runs.
    #[command(subcommand)]
    Runs(RunsCmd),
    /// List a run's task instances.
    #[command(subcommand)]
    Tasks(TasksCmd),
    /// Create due runs of scheduled DAGs and run them; resume runs a stopped process left.
    Scheduler(SchedulerArgs),
    /// Claim and run task instances that schedulers hand out (`--queue`), until stopped.
    Worker(WorkerArgs),
    /// Check a schedule before deploying it.
    #[command(subcommand)]
    Schedule(ScheduleCmd),
    /// Sample data.
    #[command(subcommand)]
    Data(DataCmd),
    /// List and size pools.
    #[command(subcommand)]
    Pools(PoolsCmd),
    /// The dead-letter queue: rows and batches tasks set aside; correct, replay, purge.
    #[command(subcommand)]
    Dlq(DlqCmd),
    /// Quality-check results: every check a gate ran, passed or failed, with failing rows.
    #[command(subcommand)]
    Checks(ChecksCmd),
    /// Checkpoints long tasks saved: list, show (each checked), clear.
    #[command(subcommand)]
    Checkpoints(CheckpointsCmd),
    /// Shared datasets (a folder or `s3://BUCKET/PREFIX`) that workers on many hosts commit
    /// to, with the commit point in the store: put, list, verify, collect garbage.
    #[command(subcommand)]
    Datasets(DatasetsCmd),
}

#[derive(Debug, Subcommand)]
pub enum DatasetsCmd {
    /// Commit the rows of source files (CSV, JSON lines, Parquet) as one partition: nothing is
    /// visible until the commit, and a file with a row that does not read commits nothing.
    Put {
        /// `s3://BUCKET/PREFIX` (S3 settings from `AWS_*`), `file:///PATH` or a folder.
        location: String,
        /// The partition, `name=value[/name=value…]`.
        #[arg(long)]
        partition: String,
        /// Source files, read in order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Add to the partition's committed files instead of replacing them (fails, committing
        /// nothing, if another writer committed the partition meanwhile).
        #[arg(long)]
        append: bool,
        /// Fail, committing nothing, if another writer committed the partition meanwhile.
        #[arg(long, conflicts_with = "append")]
        if_unchanged: bool,
        /// Put a part file whenever this many encoded bytes are buffered.
        #[arg(long, default_value_t = 64 << 20)]
        part_bytes: usize,
        /// How long the commit stays this writer's without a new part file; a writer that dies
        /// is rolled back by `weir datasets gc` once this has passed. Longer than one part's
        /// upload on the slowest link.
        #[arg(long, default_value = "10m")]
        commit_lease: String,
        #[arg(long)]
        json: bool,
    },
    /// The committed partitions: version, rows, bytes, files, writer.
    List {
        location: String,
        #[arg(long)]
        json: bool,
    },
    /// Check every committed partition against its files: each file present, its footer's row
    /// count equal to the commit's. Exits 1 on any difference.
    Verify {
        location: String,
        #[arg(long)]
        json: bool,
    },
    /// Roll back commits whose writer's lease ran out (their files deleted) and delete the
    /// files of commits superseded more than `--grace` ago.
    Gc {
        location: String,
        /// How long a replaced version's files stay for readers that listed them, e.g. `1h`.
        #[arg(long, default_value = "1h")]
        grace: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CheckpointsCmd {
    /// List checkpoints: task instance, clear number, sequence, whether each reads back intact.
    List {
        #[arg(long)]
        dag: Option<String>,
        #[arg(long)]
        run: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show a task's checkpoints whole: source identity and state.
    Show {
        run: String,
        task: String,
        #[arg(long)]
        dag: Option<String>,
        #[arg(long)]
        map_index: Option<i64>,
    },
    /// Delete checkpoints, so the next try starts over.
    Clear {
        #[arg(long)]
        dag: String,
        #[arg(long)]
        run: Option<String>,
        #[arg(long)]
        task: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChecksCmd {
    /// List check results, oldest first: run, task, gate, check, severity, passed, failing
    /// rows, what it observed, and the sampled failing rows under a failed one.
    List {
        #[arg(long)]
        dag: Option<String>,
        #[arg(long)]
        run: Option<String>,
        #[arg(long)]
        task: Option<String>,
        /// Only checks that failed.
        #[arg(long)]
        failed: bool,
        /// At most this many (the newest).
        #[arg(long)]
        limit: Option<u32>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DlqCmd {
    /// List dead letters: id, status, where each came from, why, replays.
    List {
        #[arg(long)]
        dag: Option<String>,
        #[arg(long)]
        run: Option<String>,
        #[arg(long)]
        task: Option<String>,
        /// pending, replaying, replayed or quarantined.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// Show one dead letter whole: payload, correction, error, source position, history.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Correct a payload: `--payload TEXT`, or in $VISUAL/$EDITOR; or many at once from
    /// `--file F`, JSON lines of `{"id": N, "payload": "..."}`.
    Edit {
        /// The dead letter to correct (not with --file).
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        id: Option<i64>,
        /// The corrected payload (one record: a CSV line, or a JSON line for a JSON-lines source).
        #[arg(long)]
        payload: Option<String>,
        /// A file of corrections, one JSON object per line.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Remove the correction: a replay uses the payload as read.
        #[arg(long, conflicts_with_all = ["payload", "file"])]
        clear: bool,
    },
    /// Send pending dead letters through the task that set them aside again; what passes is
    /// committed into its partition, what fails stays (quarantined past --max-replays).
    Replay {
        #[arg(long)]
        dag: String,
        #[arg(long)]
        run: Option<String>,
        /// Only the dead letters of this task (with --run: the failed records of one batch).
        #[arg(long)]
        task: Option<String>,
        /// Route and report; commit nothing.
        #[arg(long)]
        dry_run: bool,
        /// At most this many dead letters.
        #[arg(long)]
        limit: Option<u32>,
        /// Quarantine a dead letter once it has failed this many replays.
        #[arg(long, default_value_t = 3)]
        max_replays: u32,
        #[arg(long)]
        json: bool,
    },
    /// Delete dead letters last seen longer ago than --older-than (default: replayed and
    /// quarantined ones; pending ones only when named).
    Purge {
        /// e.g. 30d, 12h.
        #[arg(long)]
        older_than: String,
        /// Which statuses to purge; repeatable [default: replayed, quarantined].
        #[arg(long)]
        status: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DagsCmd {
    /// List the DAGs this binary knows.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Check DAG files: every problem of every file, each with its file and line.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Show a DAG's tasks, schedule and settings.
    Show {
        dag: String,
        #[arg(long)]
        json: bool,
    },
    /// Run a DAG once, now, for the interval containing the logical date, and wait for it.
    Run {
        dag: String,
        /// A date (`2026-03-08`, midnight in the DAG's zone) or an RFC 3339 instant [default: now]
        #[arg(long)]
        logical_date: Option<String>,
        /// A run param, `name=value`; repeatable. Overrides the DAG's default params.
        #[arg(long = "conf", value_name = "NAME=VALUE")]
        conf: Vec<String>,
        /// Hand the run's tasks to `weir worker`s of this queue (on this host or others, over
        /// one PostgreSQL store); this process only plans the run and waits for it.
        #[arg(long, value_name = "QUEUE")]
        queue: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Run a DAG for every interval whose logical date is in [--from, --to].
    Backfill {
        dag: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// Which existing runs to run again.
        #[arg(long, value_enum, default_value_t = ReprocessArg::None)]
        reprocess: ReprocessArg,
        /// Runs of this backfill at once [default: the DAG's max_active_runs]
        #[arg(long)]
        max_active_runs: Option<u32>,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long = "conf", value_name = "NAME=VALUE")]
        conf: Vec<String>,
        /// Hand the runs' tasks to `weir worker`s of this queue; this process only plans them.
        #[arg(long, value_name = "QUEUE")]
        queue: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReprocessArg {
    None,
    Failed,
    Completed,
}

#[derive(Debug, Subcommand)]
pub enum RunsCmd {
    /// Why a run failed: the first task that failed on its own, what its upstreams gave it,
    /// its error and log, the dead letters, and the commands that recover.
    Diagnose {
        run: String,
        #[arg(long)]
        dag: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List runs, newest logical date first.
    List {
        #[arg(long)]
        dag: Option<String>,
        /// Only runs in this state (queued, running, success, failed).
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TasksCmd {
    /// The errors of a DAG's failed tries across its last runs, grouped by class (numbers,
    /// quoted values and paths taken out), the most frequent first.
    Errors {
        #[arg(long)]
        dag: String,
        /// How many of the newest runs to look at.
        #[arg(long, default_value_t = 50)]
        runs: u32,
        #[arg(long)]
        json: bool,
    },
    /// Show the log of one try of a task instance (by default its latest try).
    Logs {
        /// The run id (see `weir runs list`).
        run: String,
        /// The task id.
        task: String,
        /// The instance of a mapped task.
        #[arg(long)]
        map_index: Option<i64>,
        /// Which try (1 for the first) [default: the latest].
        #[arg(long = "try")]
        try_number: Option<u32>,
        /// The DAG, when several DAGs have a run with this id.
        #[arg(long)]
        dag: Option<String>,
    },
    /// Clear part of a finished run and run that part again (the rest keeps its state):
    /// one task, one mapped instance, only what failed, and what depends on it.
    Clear {
        /// The run id (see `weir runs list`).
        run: String,
        /// The task to clear [default: every task, with --failed-only the failed ones].
        task: Option<String>,
        /// Only this instance of a mapped task.
        #[arg(long, requires = "task")]
        map_index: Option<i64>,
        /// Only instances that failed or were upstream_failed.
        #[arg(long)]
        failed_only: bool,
        /// Also every task downstream of the cleared ones.
        #[arg(long)]
        downstream: bool,
        /// Clear, and leave the run queued for `weir scheduler` instead of running it now.
        #[arg(long)]
        no_run: bool,
        /// The DAG, when several DAGs have a run with this id.
        #[arg(long)]
        dag: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List the task instances of a run, with tries, timings and errors.
    List {
        /// The run id (see `weir runs list`).
        run: String,
        /// The DAG, when several DAGs have a run with this id.
        #[arg(long)]
        dag: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// Create what is due, run everything queued or running, then exit.
    #[arg(long)]
    pub once: bool,
    /// Seconds between scheduling passes.
    #[arg(long, default_value_t = 5)]
    pub poll: u64,
    /// Hand every run's tasks to `weir worker`s of this queue instead of running them here.
    #[arg(long, value_name = "QUEUE")]
    pub queue: Option<String>,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Take only instances routed to this queue; repeatable [default: every queue]
    #[arg(long = "queue", value_name = "QUEUE")]
    pub queues: Vec<String>,
    /// Tries at once [default: the number of cores]
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Seconds between looks for work when no notification came (PostgreSQL notifies at once).
    #[arg(long, default_value_t = 5)]
    pub poll: u64,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCmd {
    /// Print the first runs a DAG with this schedule and start date gets (catchup on).
    Preview(PreviewArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["cron", "every"])))]
pub struct PreviewArgs {
    /// A 5-field cron or a preset (@hourly, @daily, @weekly, @monthly, @yearly).
    #[arg(long)]
    pub cron: Option<String>,
    /// A fixed duration between runs, e.g. 90m, 1h, 86400s.
    #[arg(long)]
    pub every: Option<String>,
    /// The IANA zone the schedule runs in, e.g. Europe/London.
    #[arg(long)]
    pub tz: String,
    /// The DAG's start date: a date or date-time (wall clock in --tz) or RFC 3339 with offset.
    #[arg(long)]
    pub start: String,
    #[arg(long)]
    pub count: usize,
    /// interval: each run covers the period before it (window); trigger: runs at each tick.
    #[arg(long, value_enum, default_value_t = KindArg::Interval)]
    pub kind: KindArg,
    /// For --kind trigger: the length of each run's data interval, ending at the tick.
    #[arg(long)]
    pub interval: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum KindArg {
    Interval,
    Trigger,
}

#[derive(Debug, Subcommand)]
pub enum DataCmd {
    /// Write deterministic sample orders (UTC event times across DST changes, skewed customers,
    /// regions, variable record sizes, a few malformed and late rows).
    Generate {
        /// Output file (.csv or .parquet) [default: HOME/data/sample/orders.csv]
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 200_000)]
        rows: u64,
        /// First day of event times (UTC).
        #[arg(long, default_value = "2026-03-01")]
        start: String,
        #[arg(long, default_value_t = 35)]
        days: u32,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
    /// List a dataset's committed partitions with rows, bytes and files.
    Ls {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Show the manifests of a dataset's partitions: rows read, written and rejected, bytes,
    /// checksum, and the run, task and try that committed each.
    Manifests {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// List the source rows that could not be read: file, line, reason, original text, and the
    /// run, task and try that set each aside.
    Rejects {
        /// Only rows of this source file.
        #[arg(long)]
        source: Option<PathBuf>,
        /// Only rows rejected by this DAG's runs.
        #[arg(long)]
        dag: Option<String>,
        /// Only rows rejected by this run.
        #[arg(long)]
        run: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Run SQL over datasets; filters on partition columns prune partitions.
    Query {
        sql: String,
        /// A table, `NAME=DIR` (or `NAME=file:///DIR`): a dataset of Parquet, CSV or JSON-lines
        /// partitions; or `NAME=FILE` / `NAME='DIR/*.csv'`: source files read with weir's
        /// schema inference (a `.schema` file beside them declares types). Repeatable.
        #[arg(long = "table", value_name = "NAME=DIR|FILE|GLOB", required = true)]
        tables: Vec<String>,
        /// Source files: null tokens besides the empty field, comma-separated (default
        /// NA,N/A,NULL,null).
        #[arg(long, value_name = "LIST")]
        null_values: Option<String>,
        /// Source files: the zone of timestamps written without an offset.
        #[arg(long, value_name = "ZONE")]
        source_tz: Option<String>,
        /// Source files: a schema file (`column: type` lines) declaring column types.
        #[arg(long, value_name = "FILE")]
        schema: Option<std::path::PathBuf>,
        /// Also print the physical plan and what the query read (files, bytes, row groups).
        #[arg(long)]
        explain: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PoolsCmd {
    List {
        #[arg(long)]
        json: bool,
    },
    /// Create a pool or change its slots.
    Set {
        name: String,
        slots: u32,
        #[arg(long, default_value = "")]
        description: String,
    },
}
