//! `load_window` and the loading pieces it is made of: the window params every loading DAG
//! declares, the default sample data, streaming a source through a [`Partitioner`] into
//! atomically committed partitions, and recording what landed (manifests that say what was
//! read, written and rejected; every reject kept in the store).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::record_batch::RecordBatch;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weir_core::ParamSpec;
use weir_data::partitioners::{
    BucketScheme, DatePartitioner, GeoPartitioner, Granularity, HashPartitioner, Partitioner,
    RangePartitioner, SizePartitioner,
};
use weir_data::{
    CommitReport, DataError, Dataset, PartitionKey, ReadOptions, SampleSpec, WriteOptions,
    open_source,
};
use weir_runtime::{TaskContext, TaskError, ZONE_PARAM};

use crate::blocking;
use crate::check::{Check, CheckGate};
use weir_store::{DeadLetter, PartitionManifest, RejectRecord, ReplayOutcome};

/// What a window-loading pattern reads and where it writes, from the run's params.
#[derive(Debug, Clone)]
pub struct WindowParams {
    /// `--conf source=PATH`: a CSV, JSON-lines or Parquet file (default: the generated sample
    /// orders).
    pub source: PathBuf,
    /// `--conf time_column=NAME`: timestamps with an offset or `Z` (default `event_time`).
    pub time_column: String,
    /// The zone the run is cut in: `--conf tz=ZONE`, else the DAG's schedule zone.
    pub tz: TimeZone,
    /// `--conf output=DIR`: the dataset root partitions are written under.
    pub output: PathBuf,
    /// How partitions are written: `--conf format=parquet|csv|jsonl` (default parquet),
    /// `--conf compression=zstd|snappy|lz4|gzip|none` and `--conf row_group_size=N` (Parquet),
    /// `--conf schema_evolution=strict|widen`, `--conf keep_partition_columns=true`.
    pub write: WriteOptions,
    /// How the source is read (its time column is set by each load): `--conf
    /// null_values=NA,NULL`, `--conf source_tz=ZONE`, `--conf schema=FILE`, `--conf
    /// infer_rows=N`; the generated sample is read with its own schema.
    pub read: ReadOptions,
    /// What rejected source rows do to the load: `--conf on_reject=continue|fail_fast`,
    /// `--conf max_reject_ratio=R`.
    pub reject_policy: RejectPolicy,
    /// Source lines a dead-letter replay committed, by line, with the payload it used: a load
    /// that finds such a line still rejected reads the payload in its place, so a re-run keeps
    /// the replayed row — once.
    pub replayed: Arc<BTreeMap<u64, String>>,
}

/// What rejected source rows do to a load. By default they are kept and the load goes on; a
/// load can instead fail at the first one (`fail_fast`) or when more than a share of the
/// source's rows were rejected (`max_reject_ratio`). A load that fails by policy commits
/// nothing, and its rejects are still kept in the store (`weir data rejects`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RejectPolicy {
    pub fail_fast: bool,
    pub max_ratio: Option<f64>,
}

impl RejectPolicy {
    /// Why a load of `good` rows with `rejects` must fail, if it must.
    fn violation(&self, source: &Path, good: u64, rejects: &[weir_data::Reject]) -> Option<String> {
        let first = rejects.first()?;
        let first = format!("line {}: {}", first.line, first.reason);
        let total = good + rejects.len() as u64;
        if self.fail_fast {
            return Some(format!(
                "source {} has a row it cannot read ({first}) and on_reject is fail_fast; nothing \
                 was committed: fix the source, or set on_reject=continue",
                source.display()
            ));
        }
        let ratio = rejects.len() as f64 / total.max(1) as f64;
        match self.max_ratio {
            Some(max) if ratio > max => Some(format!(
                "source {}: {} of {total} rows ({:.2}%) were rejected, above max_reject_ratio \
                 {max} (first: {first}); nothing was committed: fix the source, or raise the ratio",
                source.display(),
                rejects.len(),
                ratio * 100.0
            )),
            _ => None,
        }
    }
}

/// The params every pattern that reads a source and writes partitions declares: declared once
/// here, with their types, defaults and docs, and checked when a run is created.
pub fn window_param_specs() -> Vec<ParamSpec> {
    vec![
        ParamSpec::path(
            "source",
            "CSV, JSON-lines or Parquet file to read (default: the generated sample orders)",
        ),
        ParamSpec::text(
            "time_column",
            "column of event times (RFC 3339 with an offset or Z)",
        )
        .default("event_time"),
        ParamSpec::zone(
            ZONE_PARAM,
            "zone the run's interval and partitions are cut in (default: the DAG's zone)",
        ),
        ParamSpec::path(
            "output",
            "dataset folder partitions are written under (default: HOME/data/DAG_ID)",
        ),
        ParamSpec::choice(
            "format",
            ["parquet", "csv", "jsonl"],
            "file format of the partitions",
        )
        .default("parquet"),
        ParamSpec::choice(
            "compression",
            ["zstd", "snappy", "lz4", "gzip", "none"],
            "Parquet compression codec",
        )
        .default("zstd"),
        ParamSpec::integer(
            "row_group_size",
            1,
            100_000_000,
            "rows per Parquet row group",
        )
        .default(WriteOptions::default().row_group_size as i64),
        ParamSpec::text(
            "null_values",
            "comma-separated CSV null tokens besides the empty field (default NA,N/A,NULL,null)",
        ),
        ParamSpec::zone(
            "source_tz",
            "zone of source timestamps written without an offset (default: none; such a time is a reject)",
        ),
        ParamSpec::path(
            "schema",
            "schema file (`column: type` lines) overriding inferred column types",
        ),
        ParamSpec::integer(
            "infer_rows",
            1,
            100_000_000,
            "rows sampled to infer the source's schema",
        )
        .default(ReadOptions::default().infer_rows as i64),
        ParamSpec::choice(
            "schema_evolution",
            ["strict", "widen"],
            "whether a write may widen a column type the dataset keeps",
        )
        .default("strict"),
        ParamSpec::boolean(
            "keep_partition_columns",
            "repeat the partition columns inside the data files",
        )
        .default(false),
        ParamSpec::choice(
            "on_reject",
            ["continue", "fail_fast"],
            "whether a source row that cannot be read fails the load (rejects are kept either way)",
        )
        .default("continue"),
        ParamSpec::number(
            "max_reject_ratio",
            0.0,
            1.0,
            "fail the load, committing nothing, when more than this share of source rows is rejected",
        ),
    ]
}

/// What a loading operator's config says instead of the run's params (a DAG file names its
/// source in the task, not in `--conf`); anything unset comes from the params when the DAG
/// declares them, else from the defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceOverrides {
    pub source: Option<PathBuf>,
    pub time_column: Option<String>,
    pub output: Option<PathBuf>,
    pub format: Option<String>,
    pub read: ReadConfig,
}

/// How an operator's config says to read its source, in place of `--conf null_values`,
/// `source_tz` and `schema`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadConfig {
    /// CSV null tokens besides the empty field (default `NA`, `N/A`, `NULL`, `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_values: Option<Vec<String>>,
    /// The zone of source timestamps written without an offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_tz: Option<String>,
    /// Column types instead of inferred ones: a schema file, or a table of `column = "type"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaConfig>,
    /// `continue` (default) or `fail_fast`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_reject: Option<String>,
    /// Fail the load when more than this share of the source's rows is rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reject_ratio: Option<f64>,
    /// Columns redacted in the payloads the dead-letter queue keeps (personal data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitive: Option<Vec<String>>,
}

/// An explicit schema in an operator's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SchemaConfig {
    /// A schema file (`column: type` per line).
    File(PathBuf),
    /// `column = "type"` pairs (`decimal(12,2)`, `timestamp`, `int not null`, …).
    Columns(BTreeMap<String, String>),
}

impl ReadConfig {
    /// What is wrong with it, for DAG-file validation.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(zone) = &self.source_tz
            && jiff::tz::TimeZone::get(zone).is_err()
        {
            problems.push(format!(
                "source_tz = {zone:?} is not a known time zone; use an IANA name such as America/New_York"
            ));
        }
        if let Some(on) = &self.on_reject
            && on != "continue"
            && on != "fail_fast"
        {
            problems.push(format!(
                "on_reject = {on:?} is not a policy; use continue or fail_fast"
            ));
        }
        if let Some(r) = self.max_reject_ratio
            && !(0.0..=1.0).contains(&r)
        {
            problems.push(format!("max_reject_ratio = {r}: use a share from 0 to 1"));
        }
        if let Some(SchemaConfig::Columns(columns)) = &self.schema {
            for (name, spec) in columns {
                if let Err(e) = weir_data::source::ColumnType::parse(name, spec) {
                    problems.push(format!("schema column {name:?}: {e}"));
                }
            }
        }
        problems
    }
}

/// The read options of a run: the operator's [`ReadConfig`], else the run's params, else the
/// defaults. With no schema named, a schema file beside the source (`orders.csv` →
/// `orders.schema`, as `weir data generate` writes one) declares its types.
pub fn read_options(
    ctx: &TaskContext,
    source: &Path,
    with: &ReadConfig,
) -> Result<ReadOptions, TaskError> {
    let mut opts = ReadOptions::default();
    let nulls = match &with.null_values {
        Some(list) => Some(list.clone()),
        None => param_or::<Option<String>>(ctx, "null_values", None)?
            .map(|text| weir_data::source::parse_null_values(&text)),
    };
    if let Some(nulls) = nulls {
        opts.null_values = nulls;
    }
    let zone = match &with.source_tz {
        Some(zone) => Some(zone.clone()),
        None => param_or::<Option<String>>(ctx, "source_tz", None)?,
    };
    if let Some(zone) = zone {
        opts.source_tz = Some(
            weir_core::timetable::parse_zone(&zone)
                .map_err(|e| TaskError::fatal(format!("source_tz: {e}")))?,
        );
    }
    opts.infer_rows = param_or(ctx, "infer_rows", opts.infer_rows)?;
    if let Some(columns) = &with.sensitive {
        opts.redact = columns.clone();
    }
    let schema = match &with.schema {
        Some(schema) => Some(schema.clone()),
        None => param_or::<Option<PathBuf>>(ctx, "schema", None)?.map(SchemaConfig::File),
    };
    match schema {
        Some(SchemaConfig::File(path)) => {
            let path = crate::expand_path(ctx, &path);
            opts.column_types = weir_data::source::read_schema_file(&path)?;
        }
        Some(SchemaConfig::Columns(columns)) => {
            for (name, spec) in &columns {
                opts.column_types.push(
                    weir_data::source::ColumnType::parse(name, spec)
                        .map_err(|e| TaskError::fatal(format!("schema column {name:?}: {e}")))?,
                );
            }
        }
        None => opts.column_types = weir_data::source::sidecar_column_types(source)?,
    }
    Ok(opts)
}

/// A declared param's value, or `default` when the DAG does not declare it.
fn param_or<T: serde::de::DeserializeOwned>(
    ctx: &TaskContext,
    name: &str,
    default: T,
) -> Result<T, TaskError> {
    if ctx.declares(name) {
        Ok(ctx.param_opt(name)?.unwrap_or(default))
    } else {
        Ok(default)
    }
}

/// The write options of `--conf format=…`, `compression=…` and `row_group_size=…`.
pub fn write_options(ctx: &TaskContext) -> Result<WriteOptions, TaskError> {
    let defaults = WriteOptions::default();
    Ok(WriteOptions {
        format: param_or(ctx, "format", "parquet".to_owned())?.parse()?,
        compression: param_or(ctx, "compression", "zstd".to_owned())?.parse()?,
        row_group_size: param_or(ctx, "row_group_size", defaults.row_group_size)?,
        schema_evolution: param_or(ctx, "schema_evolution", "strict".to_owned())?.parse()?,
        keep_partition_columns: param_or(ctx, "keep_partition_columns", false)?,
        ..defaults
    })
}

/// Reads the window params, generating the default sample data when no source is given.
pub async fn window_params(ctx: &TaskContext) -> Result<WindowParams, TaskError> {
    window_params_with(ctx, &SourceOverrides::default()).await
}

/// [`window_params`] with what an operator's config sets in place of the params.
pub async fn window_params_with(
    ctx: &TaskContext,
    with: &SourceOverrides,
) -> Result<WindowParams, TaskError> {
    let source = match &with.source {
        Some(path) => source_path(ctx, path).await?,
        None => match param_or::<Option<PathBuf>>(ctx, "source", None)? {
            Some(path) => source_path(ctx, &path).await?,
            None => ensure_sample(ctx.home()).await?,
        },
    };
    if !source.exists() {
        return Err(TaskError::fatal(format!(
            "source {} does not exist; pass an existing CSV, JSON-lines or Parquet file with --conf source=PATH",
            source.display()
        )));
    }
    let mut write = write_options(ctx)?;
    if let Some(format) = &with.format {
        write.format = format.parse()?;
    }
    let read = read_options(ctx, &source, &with.read)?;
    let on_reject = match &with.read.on_reject {
        Some(on) => on.clone(),
        None => param_or(ctx, "on_reject", "continue".to_owned())?,
    };
    let reject_policy = RejectPolicy {
        fail_fast: on_reject == "fail_fast",
        max_ratio: match with.read.max_reject_ratio {
            Some(r) => Some(r),
            None => param_or::<Option<f64>>(ctx, "max_reject_ratio", None)?,
        },
    };
    let replayed = ctx
        .store()
        .dead_letters(&weir_store::RejectFilter {
            source: Some(dataset_name(&source)),
            status: Some(weir_store::DeadLetterStatus::Replayed),
            ..Default::default()
        })
        .await
        .map_err(|e| TaskError::from(e).context("reading the replayed dead letters"))?
        .into_iter()
        .map(|d| (d.line, d.payload().to_owned()))
        .collect();
    Ok(WindowParams {
        read,
        reject_policy,
        replayed: Arc::new(replayed),
        source,
        time_column: match &with.time_column {
            Some(column) => column.clone(),
            None => param_or(ctx, "time_column", "event_time".to_owned())?,
        },
        tz: ctx.zone.clone(),
        output: match &with.output {
            Some(path) => crate::expand_path(ctx, path),
            None => output_dir(ctx)?,
        },
        write,
    })
}

/// A source path from a config or param, expanded (`{home}`, `{param:NAME}`); the default
/// sample orders (`{home}/data/sample/orders.csv`) are generated the first time they are named.
pub async fn source_path(ctx: &TaskContext, path: &Path) -> Result<PathBuf, TaskError> {
    let path = crate::expand_path(ctx, path);
    if path == default_sample_path(ctx.home()) {
        return ensure_sample(ctx.home()).await;
    }
    Ok(path)
}

/// `--conf output=DIR`, or `HOME/data/DAG_ID`.
pub fn output_dir(ctx: &TaskContext) -> Result<PathBuf, TaskError> {
    Ok(match param_or::<Option<PathBuf>>(ctx, "output", None)? {
        Some(path) => crate::expand_path(ctx, &path),
        None => ctx.home().join("data").join(ctx.dag_id.as_str()),
    })
}

/// A dataset derived from the run's output, next to it: `OUTPUT{suffix}` (the monthly close
/// records of `OUTPUT` are in `OUTPUT_close`).
pub fn sibling_dir(ctx: &TaskContext, suffix: &str) -> Result<PathBuf, TaskError> {
    let base = output_dir(ctx)?;
    let name = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ctx.dag_id.to_string());
    Ok(base.with_file_name(format!("{name}{suffix}")))
}

/// Where the sample orders live by default: `HOME/data/sample/orders.csv`. Loads generate it
/// on first use (deterministically) when no `--conf source=...` is given.
pub fn default_sample_path(home: &Path) -> PathBuf {
    home.join("data").join("sample").join("orders.csv")
}

static SAMPLE_LOCK: Mutex<()> = Mutex::new(());

/// The default sample orders under the weir home, generated (deterministically, seed 42) the
/// first time a pattern needs them. Written to a temporary name and renamed, so a reader never
/// sees a half-written file.
pub async fn ensure_sample(home: &Path) -> Result<PathBuf, TaskError> {
    let path = default_sample_path(home);
    if path.exists() && weir_data::source::schema_sidecar(&path).exists() {
        return Ok(path);
    }
    let target = path.clone();
    tokio::task::spawn_blocking(move || -> Result<(), TaskError> {
        let _guard = SAMPLE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        // A sample without its schema file was written by an older weir (North America was
        // `NA` then, now a null token): it is generated again.
        if target.exists() && weir_data::source::schema_sidecar(&target).exists() {
            return Ok(());
        }
        let dir = target.parent().expect("sample path has a parent");
        std::fs::create_dir_all(dir)
            .map_err(|e| TaskError::fatal(format!("cannot create {}: {e}", dir.display())))?;
        let tmp = dir.join(format!(".orders.csv.{}.tmp", std::process::id()));
        let spec = SampleSpec {
            rows: 200_000,
            ..SampleSpec::default()
        };
        weir_data::write_orders_csv(&spec, &tmp).map_err(|e| TaskError::fatal(e.to_string()))?;
        // The schema file last: a sample is complete once its schema file is beside it.
        std::fs::rename(&tmp, &target).map_err(|e| {
            TaskError::fatal(format!(
                "cannot move the sample into {}: {e}",
                target.display()
            ))
        })?;
        weir_data::write_orders_schema(&target).map_err(|e| TaskError::fatal(e.to_string()))?;
        Ok(())
    })
    .await
    .map_err(|e| TaskError::fatal(format!("sample generation stopped: {e}")))??;
    Ok(path)
}

/// One committed partition, as a task output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Landed {
    pub partition: String,
    pub rows: u64,
    pub bytes: u64,
    pub files: u32,
}

/// What loading a window committed: the output of every loading task, read back by its
/// downstreams as this type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Loaded {
    /// The dataset folder the partitions were committed under.
    #[serde(default)]
    pub dataset: Option<PathBuf>,
    /// Rows of the source inside the window (all of them landed).
    pub rows: u64,
    /// Rows of the whole source that could not be read (malformed), set aside.
    pub source_rejects: u64,
    pub partitions: Vec<Landed>,
    /// What the partitioner learned while cutting (size-based: the on-disk ratio, estimated
    /// against actual bytes), when it has something to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<Value>,
    /// The commits themselves (checksums, schemas), for the manifests; not part of the output.
    #[serde(skip)]
    pub commits: Vec<CommitReport>,
    /// Source rows read to make the commits (kept, rejected or outside them); `rows` when the
    /// input was not a source (a derived aggregate).
    #[serde(skip)]
    pub rows_read: Option<u64>,
    /// The rejected rows themselves, to keep in the store.
    #[serde(skip)]
    pub rejects: Vec<weir_data::Reject>,
    /// Why the load failed by its reject policy (nothing was committed); `record_commits` keeps
    /// the rejects and then fails the task with it.
    #[serde(skip)]
    pub violation: Option<String>,
    /// Lines a replay had committed that this read rejected again without a payload that
    /// reads: their dead letters go back to pending.
    #[serde(skip)]
    pub reopened: Vec<u64>,
}

impl Loaded {
    pub fn new(commits: Vec<CommitReport>, rows: u64, source_rejects: u64) -> Self {
        let mut loaded = Loaded {
            dataset: None,
            rows,
            source_rejects,
            partitions: Vec::new(),
            layout: None,
            commits: Vec::new(),
            rows_read: None,
            rejects: Vec::new(),
            violation: None,
            reopened: Vec::new(),
        };
        loaded.set_commits(commits);
        loaded
    }

    /// Sets the commits, and what landed per partition from them.
    fn set_commits(&mut self, commits: Vec<CommitReport>) {
        self.partitions = commits
            .iter()
            .map(|c| Landed {
                partition: c.partition.clone(),
                rows: c.rows,
                bytes: c.bytes,
                files: c.files,
            })
            .collect();
        self.commits = commits;
    }

    /// A load that failed by its reject policy: nothing committed, the rejects kept.
    fn refused(reader: &mut weir_data::SourceReader, why: String) -> Self {
        let mut loaded = Loaded::new(Vec::new(), 0, 0).read_from(reader);
        loaded.violation = Some(why);
        loaded
    }

    /// What the reader of the source saw: rows read in all, and the rows it set aside.
    pub fn read_from(mut self, reader: &mut weir_data::SourceReader) -> Self {
        self.rejects = reader.take_rejects();
        self.source_rejects = self.rejects.len() as u64;
        self.rows_read = Some(reader.rows_emitted() + self.source_rejects);
        self
    }

    /// Drops the rejects of `lines`: rows a replay committed, read from their payloads.
    fn without(mut self, lines: &[u64], replayed: &BTreeMap<u64, String>) -> Self {
        if !lines.is_empty() {
            self.rejects.retain(|r| !lines.contains(&r.line));
            self.source_rejects = self.rejects.len() as u64;
        }
        // Replayed lines still rejected here: their payload no longer reads, the row is gone.
        self.reopened = self
            .rejects
            .iter()
            .filter(|r| replayed.contains_key(&r.line))
            .map(|r| r.line)
            .collect();
        self
    }

    /// The task output: what landed, per partition.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a Loaded serializes")
    }
}

/// Streams `source`, keeps the rows whose time is in `[from, to)`, routes them with `route`
/// (which returns, per partition key, the rows of a batch that belong to it) and commits every
/// partition in `expected` plus any other the router produced. Every expected partition is
/// committed even when empty, so a re-run of an empty window replaces stale data too.
pub fn load_window(
    p: &WindowParams,
    from: Timestamp,
    to: Timestamp,
    expected: &[PartitionKey],
    route: impl FnMut(&RecordBatch) -> Result<Vec<(PartitionKey, RecordBatch)>, DataError>,
) -> Result<Loaded, DataError> {
    stage_window(p, from, to, expected, route)?.publish()
}

/// [`load_window`] up to its commit: every partition written and staged, none published, so
/// an output gate can check the staged files before [`Staged::publish`] swaps them in.
pub fn stage_window(
    p: &WindowParams,
    from: Timestamp,
    to: Timestamp,
    expected: &[PartitionKey],
    mut route: impl FnMut(&RecordBatch) -> Result<Vec<(PartitionKey, RecordBatch)>, DataError>,
) -> Result<Staged, DataError> {
    let column = p.time_column.clone();
    stage_into_partitions(p, expected, |batch| {
        let window = weir_data::filter_time_window(batch, &column, from, to)?;
        if window.num_rows() == 0 {
            Ok(Vec::new())
        } else {
            route(&window)
        }
    })
}

/// The shared loop: stream the source, route each batch, write every routed part to its
/// partition's writer (opened on first use; `expected` ones up front) and stage them all.
fn stage_into_partitions(
    p: &WindowParams,
    expected: &[PartitionKey],
    mut route: impl FnMut(&RecordBatch) -> Result<Vec<(PartitionKey, RecordBatch)>, DataError>,
) -> Result<Staged, DataError> {
    let opts = ReadOptions {
        time_column: Some(p.time_column.clone()),
        ..p.read.clone()
    };
    let mut reader = open_source(&p.source, &opts)?;
    let dataset = Dataset::open(&p.output)?;
    let schema = reader.schema();
    let mut writers = BTreeMap::new();
    for key in expected {
        writers.insert(
            key.clone(),
            dataset.writer(key, schema.clone(), p.write.clone())?,
        );
    }
    let mut rows = 0u64;
    while let Some(batch) = reader.next() {
        if p.reject_policy.fail_fast
            && let Some(why) = p.reject_policy.violation(&p.source, 0, reader.rejects())
        {
            return Ok(Staged::refused(
                Loaded::refused(&mut reader, why),
                schema.clone(),
            ));
        }
        write_routed(&dataset, p, &mut writers, &mut rows, route(&batch?)?)?;
    }
    let substituted = match replayed_rows(p, &reader)? {
        Some((batch, lines)) => {
            write_routed(&dataset, p, &mut writers, &mut rows, route(&batch)?)?;
            lines
        }
        None => Vec::new(),
    };
    if let Some(why) = p.reject_policy.violation(
        &p.source,
        reader.rows_emitted() + substituted.len() as u64,
        &still_rejected(reader.rejects(), &substituted),
    ) {
        return Ok(Staged::refused(
            Loaded::refused(&mut reader, why),
            schema.clone(),
        ));
    }
    let mut loaded = Loaded::new(Vec::new(), rows, 0)
        .read_from(&mut reader)
        .without(&substituted, &p.replayed);
    loaded.dataset = Some(p.output.clone());
    Staged::stage(writers, schema, Vec::new(), loaded, None)
}

/// A load's partitions, written and staged (their part files finished and fsynced in their
/// staging folders) but not published: an output gate checks them, then [`Staged::publish`]
/// swaps them all in — or dropping it (or [`Staged::discard`]) leaves the dataset as it was.
pub struct Staged {
    writers: Vec<(PartitionKey, weir_data::PartitionWriter)>,
    parts: Vec<StagedPartition>,
    /// The source's columns: a gate over a load that staged nothing has these.
    schema: arrow::datatypes::SchemaRef,
    /// Partitions a sequential (size) layout committed as it went.
    commits: Vec<CommitReport>,
    /// What the load read and rejected; publishing fills in its commits.
    loaded: Loaded,
    /// A whole-source layout: the dataset whose other partitions are retired on publishing.
    retire: Option<PathBuf>,
}

/// One partition of a [`Staged`] load: what an output gate reads.
#[derive(Debug, Clone)]
pub struct StagedPartition {
    pub key: PartitionKey,
    /// Its part files in the staging folder, in order.
    pub files: Vec<PathBuf>,
    pub rows: u64,
    /// The files' columns: the partition columns are left out unless the dataset keeps them.
    pub file_schema: arrow::datatypes::SchemaRef,
    pub format: weir_data::FileFormat,
}

impl Staged {
    /// A load that failed by its reject policy: nothing staged, nothing to publish.
    fn refused(loaded: Loaded, schema: arrow::datatypes::SchemaRef) -> Staged {
        Staged {
            writers: Vec::new(),
            parts: Vec::new(),
            schema,
            commits: Vec::new(),
            loaded,
            retire: None,
        }
    }

    /// Stages every writer.
    fn stage(
        writers: BTreeMap<PartitionKey, weir_data::PartitionWriter>,
        schema: arrow::datatypes::SchemaRef,
        commits: Vec<CommitReport>,
        loaded: Loaded,
        retire: Option<PathBuf>,
    ) -> Result<Staged, DataError> {
        let mut staged = Vec::with_capacity(writers.len());
        let mut parts = Vec::with_capacity(writers.len());
        for (key, mut writer) in writers {
            let files = writer.stage()?;
            parts.push(StagedPartition {
                key: key.clone(),
                files,
                rows: writer.rows(),
                file_schema: writer.file_schema(),
                format: writer.format(),
            });
            staged.push((key, writer));
        }
        Ok(Staged {
            writers: staged,
            parts,
            schema,
            commits,
            loaded,
            retire,
        })
    }

    /// The staged partitions, in key order.
    pub fn partitions(&self) -> &[StagedPartition] {
        &self.parts
    }

    /// The source's schema.
    pub fn source_schema(&self) -> arrow::datatypes::SchemaRef {
        self.schema.clone()
    }

    /// Whether the load failed by its reject policy (nothing was staged; publishing commits
    /// nothing and `record_commits` fails the task).
    pub fn is_refused(&self) -> bool {
        self.loaded.violation.is_some()
    }

    /// Commits every staged partition (each atomically) and says what landed.
    pub fn publish(self) -> Result<Loaded, DataError> {
        self.publish_to(None)
    }

    /// [`Staged::publish`], telling `partitioner` each commit's size and taking its report.
    pub fn publish_with(self, partitioner: &mut dyn Partitioner) -> Result<Loaded, DataError> {
        self.publish_to(Some(partitioner))
    }

    fn publish_to(
        self,
        mut partitioner: Option<&mut dyn Partitioner>,
    ) -> Result<Loaded, DataError> {
        let Staged {
            writers,
            commits,
            mut loaded,
            retire,
            ..
        } = self;
        if loaded.violation.is_some() {
            return Ok(loaded);
        }
        let mut commits = commits;
        for (key, writer) in writers {
            let commit = writer.commit()?;
            if let Some(partitioner) = partitioner.as_mut() {
                partitioner.committed(&key, commit.bytes)?;
            }
            commits.push(commit);
        }
        if let Some(root) = &retire {
            let keep: Vec<String> = commits.iter().map(|c| c.partition.clone()).collect();
            retire_others(root, &keep)?;
        }
        if let Some(partitioner) = partitioner {
            loaded.layout = partitioner.report();
        }
        loaded.set_commits(commits);
        Ok(loaded)
    }

    /// Drops every staged partition unpublished (their staging folders are deleted) and says
    /// what the load read: its rejects, and what a sequential layout committed before.
    pub fn discard(self) -> Loaded {
        let Staged {
            writers,
            commits,
            mut loaded,
            ..
        } = self;
        drop(writers);
        if loaded.violation.is_none() {
            loaded.set_commits(commits);
        }
        loaded
    }
}

/// Writes routed parts to their partitions' writers (opened on first use), counting the rows.
fn write_routed(
    dataset: &Dataset,
    p: &WindowParams,
    writers: &mut BTreeMap<PartitionKey, weir_data::PartitionWriter>,
    rows: &mut u64,
    parts: Vec<(PartitionKey, RecordBatch)>,
) -> Result<(), DataError> {
    for (key, part) in parts {
        if part.num_rows() == 0 {
            continue;
        }
        *rows += part.num_rows() as u64;
        let writer = match writers.entry(key) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let w = dataset.writer(e.key(), part.schema(), p.write.clone())?;
                e.insert(w)
            }
        };
        writer.write(&part)?;
    }
    Ok(())
}

/// The rows of the source lines that a replay committed and this read rejected again, read from
/// the payloads the replay used (in the source's schema), and those lines.
pub(crate) fn replayed_rows(
    p: &WindowParams,
    reader: &weir_data::SourceReader,
) -> Result<Option<(RecordBatch, Vec<u64>)>, DataError> {
    if p.replayed.is_empty() {
        return Ok(None);
    }
    let found: Vec<(u64, &str)> = reader
        .rejects()
        .iter()
        .filter_map(|r| {
            p.replayed
                .get(&r.line)
                .map(|payload| (r.line, payload.as_str()))
        })
        .collect();
    if found.is_empty() {
        return Ok(None);
    }
    let payloads: Vec<&str> = found.iter().map(|(_, payload)| *payload).collect();
    let opts = ReadOptions {
        time_column: None,
        ..p.read.clone()
    };
    let read = weir_data::read_payloads(&p.source, &reader.schema(), &payloads, &opts)?;
    // A payload that no longer reads (the schema changed since) stays a reject of this read.
    let lines = read.rows.iter().map(|&i| found[i].0).collect();
    Ok(Some((read.batch, lines)))
}

fn still_rejected(rejects: &[weir_data::Reject], substituted: &[u64]) -> Vec<weir_data::Reject> {
    rejects
        .iter()
        .filter(|r| !substituted.contains(&r.line))
        .cloned()
        .collect()
}

/// The marker a replay commits into every partition it adds rows to, naming its dead letters.
pub fn replay_marker(batch: &str) -> String {
    format!("{}replay-{batch}.json", weir_data::MARKER_PREFIX)
}

#[derive(Serialize, Deserialize)]
struct ReplayMarker {
    ids: Vec<i64>,
}

/// What [`replay_rows`] did: per dead letter, where it went or why not, and the commits.
#[derive(Debug, Default)]
pub struct Replayed {
    pub outcomes: Vec<ReplayOutcome>,
    pub commits: Vec<CommitReport>,
}

/// Feeds dead letters of the source of `p` through a load's transform again: each payload (as
/// corrected, else as read) is read with the source's schema and the load's rules (`opts`),
/// `route`d to its partition, and added to that partition as a new part file, with a marker
/// naming the dead letters, in one atomic commit per partition. A payload that does not read,
/// or that the route drops, fails with why. Dead letters a replay cut off after its commit
/// (still `replaying`) are found by their marker and count as replayed, not written twice.
/// `dry_run` routes and reports, committing nothing.
pub fn replay_rows(
    p: &WindowParams,
    opts: &ReadOptions,
    letters: &[DeadLetter],
    batch: &str,
    dry_run: bool,
    mut route: impl FnMut(&RecordBatch) -> Result<Vec<(PartitionKey, RecordBatch)>, DataError>,
) -> Result<Replayed, DataError> {
    let dataset = Dataset::open(&p.output)?;
    let name = dataset_name(&p.output);
    let mut out = Replayed::default();
    let landed = cut_off_replays(&dataset, letters)?;
    let mut todo = Vec::new();
    for d in letters {
        match landed.get(&d.id) {
            Some(partition) => out.outcomes.push(ReplayOutcome::Replayed {
                id: d.id,
                into: format!("{name}/{partition}"),
            }),
            _ => todo.push(d),
        }
    }
    if todo.is_empty() {
        return Ok(out);
    }
    let schema = open_source(&p.source, opts)?.schema();
    let payloads: Vec<&str> = todo.iter().map(|d| d.payload()).collect();
    let read_opts = ReadOptions {
        time_column: None,
        ..opts.clone()
    };
    let read = weir_data::read_payloads(&p.source, &schema, &payloads, &read_opts)?;
    for (i, reason) in &read.failed {
        out.outcomes.push(ReplayOutcome::Failed {
            id: todo[*i].id,
            reason: reason.clone(),
        });
    }
    let mut by_key: BTreeMap<PartitionKey, (Vec<i64>, Vec<RecordBatch>)> = BTreeMap::new();
    for (row, &i) in read.rows.iter().enumerate() {
        let parts: Vec<_> = route(&read.batch.slice(row, 1))?
            .into_iter()
            .filter(|(_, b)| b.num_rows() > 0)
            .collect();
        if parts.is_empty() {
            out.outcomes.push(ReplayOutcome::Failed {
                id: todo[i].id,
                reason: format!(
                    "the row falls outside what task `{}` of run `{}` writes (another run's interval)",
                    todo[i].task_id, todo[i].run_id
                ),
            });
            continue;
        }
        for (key, part) in parts {
            let entry = by_key.entry(key).or_default();
            entry.0.push(todo[i].id);
            entry.1.push(part);
        }
    }
    for (key, (ids, batches)) in by_key {
        let into = format!("{name}/{}", key.to_path_string());
        if !dry_run {
            let mut writer = dataset.appender(&key, batches[0].schema(), p.write.clone())?;
            for b in &batches {
                writer.write(b)?;
            }
            let marker = serde_json::to_vec(&ReplayMarker { ids: ids.clone() })
                .map_err(|e| DataError::Internal(e.to_string()))?;
            writer.add_marker(&replay_marker(batch), &marker)?;
            out.commits.push(writer.commit()?);
        }
        for id in ids {
            out.outcomes.push(ReplayOutcome::Replayed {
                id,
                into: into.clone(),
            });
        }
    }
    Ok(out)
}

/// The dead letters of `letters` that an earlier replay already committed, by id, with the
/// partition whose marker names them: whatever their status says (a replay cut off before it
/// recorded its outcome, or one whose later step failed after a commit), a letter a marker
/// names is in its partition and is not written again.
fn cut_off_replays(
    dataset: &Dataset,
    letters: &[DeadLetter],
) -> Result<BTreeMap<i64, String>, DataError> {
    let wanted: std::collections::BTreeSet<i64> = letters.iter().map(|d| d.id).collect();
    let mut landed = BTreeMap::new();
    let prefix = format!("{}replay-", weir_data::MARKER_PREFIX);
    for part in dataset.partitions()? {
        let dir = dataset.root().join(&part.partition);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !name.to_str().is_some_and(|n| n.starts_with(&prefix)) {
                continue;
            }
            let path = entry.path();
            let bytes = std::fs::read(&path).map_err(|e| DataError::io("read", &path, e))?;
            let m: ReplayMarker =
                serde_json::from_slice(&bytes).map_err(|e| DataError::Corrupt {
                    path: path.clone(),
                    reason: format!("not a replay marker: {e}"),
                })?;
            for id in m.ids.into_iter().filter(|id| wanted.contains(id)) {
                landed.insert(id, part.partition.clone());
            }
        }
    }
    Ok(landed)
}

/// Dead letters a quality check set aside are rows as the check saw them (JSON), not source
/// lines a replay can read again: they fail with why, and the others are replayed.
fn check_letters_apart(letters: Vec<DeadLetter>) -> (Vec<DeadLetter>, Vec<ReplayOutcome>) {
    let (checked, letters): (Vec<DeadLetter>, Vec<DeadLetter>) =
        letters.into_iter().partition(|d| d.error_class != "parse");
    let refused = checked
        .into_iter()
        .map(|d| ReplayOutcome::Failed {
            id: d.id,
            reason: format!(
                "a quality check set this row aside ({}); it is the row as the check saw it, \
                 not a source line a replay can read: fix the source and re-run the task",
                d.reason
            ),
        })
        .collect();
    (letters, refused)
}

/// Records a manifest marked incomplete (with `why`) for each of `keys` of the dataset at
/// `output`: what the partition holds now (nothing, if it was never written). Returns their
/// paths.
pub async fn mark_partitions_incomplete(
    ctx: &TaskContext,
    output: &Path,
    keys: &[PartitionKey],
    why: &str,
) -> Result<Vec<String>, TaskError> {
    let (root, want) = (output.to_owned(), keys.to_vec());
    let found = blocking(move || {
        let dataset = Dataset::open(&root)?;
        let existing = dataset.partitions()?;
        let mut out = Vec::new();
        for key in &want {
            let path = key.to_path_string();
            match existing.iter().find(|p| p.partition == path) {
                Some(info) => {
                    let checksum = dataset.checksum(key)?;
                    out.push((path, info.rows, info.bytes, info.files, checksum));
                }
                None => out.push((path, 0, 0, 0, String::new())),
            }
        }
        Ok(out)
    })
    .await?;
    let mut marked = Vec::new();
    for (partition, rows, bytes, files, checksum) in found {
        ctx.record_manifest(PartitionManifest {
            dataset: dataset_name(output),
            partition: partition.clone(),
            rows_in: 0,
            rows_out: rows,
            rows_rejected: 0,
            bytes,
            files,
            checksum,
            schema: String::new(),
            dag_id: String::new(),
            run_id: String::new(),
            task_id: String::new(),
            map_index: -1,
            try_number: 0,
            committed_at: Timestamp::UNIX_EPOCH,
            incomplete: Some(why.to_owned()),
        })
        .await?;
        marked.push(partition);
    }
    Ok(marked)
}

/// The manifest of commit `c` to the dataset at `dataset`: every row read was written and
/// none rejected (a caller that read more says so); the try's identity is stamped by
/// `ctx.record_manifest`.
pub fn manifest_of(dataset: &Path, c: &CommitReport) -> PartitionManifest {
    PartitionManifest {
        dataset: dataset_name(dataset),
        partition: c.partition.clone(),
        rows_in: c.rows,
        rows_out: c.rows,
        rows_rejected: 0,
        bytes: c.bytes,
        files: c.files,
        checksum: c.checksum.clone(),
        schema: c.schema.clone(),
        dag_id: String::new(),
        run_id: String::new(),
        task_id: String::new(),
        map_index: -1,
        try_number: 0,
        committed_at: Timestamp::UNIX_EPOCH,
        incomplete: None,
    }
}

/// Records the manifests of a replay's commits: each describes its whole partition after it.
pub async fn record_replay(
    ctx: &TaskContext,
    dataset: &Path,
    replayed: &Replayed,
) -> Result<(), TaskError> {
    for c in &replayed.commits {
        tracing::info!(
            dataset = %dataset.display(), partition = %c.partition, rows = c.rows, "replay committed"
        );
        ctx.record_manifest(manifest_of(dataset, c)).await?;
    }
    Ok(())
}

/// The name manifests are recorded under for the dataset at `dir`: its canonical path, so that
/// `out`, `./out` and `/abs/out` are one dataset.
pub fn dataset_name(dir: &Path) -> String {
    std::fs::canonicalize(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string()
}

/// Records a manifest per committed partition of `dataset` (rows read, written and rejected)
/// and keeps every rejected source row in the store's rejects table.
pub async fn record_commits(
    ctx: &TaskContext,
    dataset: &Path,
    loaded: &Loaded,
) -> Result<(), TaskError> {
    let rejected = loaded.rejects.len() as u64;
    for c in &loaded.commits {
        tracing::info!(
            dataset = %dataset.display(), partition = %c.partition, rows_in = loaded.rows_read.unwrap_or(c.rows),
            rows_out = c.rows, rows_rejected = rejected, bytes = c.bytes, "committed"
        );
        ctx.record_manifest(PartitionManifest {
            rows_in: loaded.rows_read.unwrap_or(c.rows),
            rows_rejected: rejected,
            ..manifest_of(dataset, c)
        })
        .await?;
    }
    if !loaded.rejects.is_empty() {
        let rejects = loaded
            .rejects
            .iter()
            .map(|r| RejectRecord {
                source: dataset_name(&r.file),
                line: r.line,
                raw: r.raw.clone(),
                reason: r.reason.clone(),
                error_class: "parse".to_owned(),
                dag_id: String::new(),
                run_id: String::new(),
                task_id: String::new(),
                map_index: -1,
                try_number: 0,
                rejected_at: Timestamp::UNIX_EPOCH,
            })
            .collect();
        ctx.record_rejects(rejects).await?;
        if let (false, Some(first)) = (loaded.reopened.is_empty(), loaded.rejects.first()) {
            tracing::warn!(
                lines = ?loaded.reopened,
                "replayed rows whose payload no longer reads were rejected again: their dead letters are pending again"
            );
            ctx.store()
                .reopen_dead_letters(&dataset_name(&first.file), &loaded.reopened)
                .await
                .map_err(|e| TaskError::from(e).context("reopening dead letters"))?;
        }
    }
    match &loaded.violation {
        Some(why) => Err(TaskError::fatal(why.clone())),
        None => Ok(()),
    }
}

/// Moves every committed partition of the dataset at `root` that is not in `keep` out of the
/// dataset (into `_trash`, then deletes it): readers see it disappear whole.
pub fn retire_others(root: &Path, keep: &[String]) -> Result<Vec<String>, DataError> {
    let dataset = Dataset::open(root)?;
    let keep: std::collections::HashSet<&str> = keep.iter().map(String::as_str).collect();
    let trash = root.join("_trash");
    let mut retired = Vec::new();
    for part in dataset.partitions()? {
        if keep.contains(part.partition.as_str()) {
            continue;
        }
        std::fs::create_dir_all(&trash).map_err(|e| DataError::Io {
            action: "create",
            path: trash.clone(),
            source: e,
        })?;
        let from = root.join(&part.partition);
        let to = trash.join(format!("retired-{}-{}", std::process::id(), retired.len()));
        std::fs::rename(&from, &to).map_err(|e| DataError::Io {
            action: "retire",
            path: from.clone(),
            source: e,
        })?;
        std::fs::remove_dir_all(&to).map_err(|e| DataError::Io {
            action: "delete",
            path: to.clone(),
            source: e,
        })?;
        retired.push(part.partition);
    }
    Ok(retired)
}

/// How a load checkpoints: `checkpoint = { every = 100000, on_damage = "previous", keep = 0 }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Source records (good and rejected) per chunk and checkpoint.
    pub every: u64,
    /// A damaged latest checkpoint: resume from the `previous` good one (default), or
    /// `start_over`.
    #[serde(default)]
    pub on_damage: weir_runtime::OnDamage,
    /// Checkpoints kept once the load has succeeded (default 0: deleted once its partitions
    /// are committed).
    #[serde(default)]
    pub keep: u32,
}

impl CheckpointConfig {
    fn problems(&self) -> Vec<String> {
        if self.every == 0 {
            vec![
                "checkpoint every = 0: give the source records per checkpoint, e.g. 100000"
                    .to_owned(),
            ]
        } else {
            Vec::new()
        }
    }

    fn policy(&self) -> crate::checkpointed::CheckpointPolicy {
        crate::checkpointed::CheckpointPolicy {
            every: self.every,
            on_damage: self.on_damage,
            keep: self.keep,
        }
    }
}

/// The problems of a load's two gates; a checkpointed load commits as it goes, so it has no
/// output gate.
fn gate_problems(checks: &[Check], input_checks: &[Check], checkpointed: bool) -> Vec<String> {
    let mut problems = crate::check::gate_problems(checks, CheckGate::Output);
    problems.extend(crate::check::gate_problems(input_checks, CheckGate::Input));
    if checkpointed && !checks.is_empty() {
        problems.push(
            "checks: a checkpointed load commits each chunk as it goes, so no output gate can \
             check them before they are published; use input_checks, or drop checkpoint"
                .to_owned(),
        );
    }
    problems
}

/// How `load_window` routes a window's rows to partitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case", deny_unknown_fields)]
pub enum PartitionBy {
    /// `dt=YYYY-MM-DD` (or `dt=/hr=` with `granularity = "hour"`) by the local date of the
    /// time column in the run's zone. Every partition of the window is written, empty or not,
    /// so a re-run of an emptied window replaces stale data too.
    Date {
        #[serde(default = "day")]
        granularity: String,
        /// Write the whole local periods the interval touches, also their rows just outside
        /// it: on a fall-back night the local hour 01 happens twice (two UTC hours, two runs),
        /// and each run then writes the one `hr=01` with the rows of both, so neither erases
        /// the other's and a re-run is idempotent.
        #[serde(default)]
        whole_local: bool,
    },
    /// `bucket=NN` by a stable hash of `key` (jump consistent hashing).
    Hash { key: String, buckets: u32 },
    /// `COLUMN=VALUE` by the value of `key` (a region, a country).
    Geo { key: String },
    /// One partition for the run's whole interval, named by its local start in the run's zone:
    /// `dt=YYYY-MM-DD/NAME=HHMM` (a shift, a custom window). Written even when empty.
    Interval { name: String },
}

fn day() -> String {
    "day".to_owned()
}

/// `load_window`: streams the run's source (CSV, JSON lines or Parquet, `--conf source`, else
/// the generated sample), keeps the rows of the run's data interval, routes them through the
/// configured partitioner and commits every partition atomically, with manifests and kept
/// rejects. Its output is [`Loaded`]. DAGs using it declare [`window_param_specs`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadWindow {
    pub partition_by: PartitionBy,
    /// The source file (CSV, JSON lines or Parquet; `{param:NAME}`, `{home}` expanded);
    /// default `--conf source`, else the generated sample orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<PathBuf>,
    /// The column of event times; default `--conf time_column`, else `event_time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_column: Option<String>,
    /// The dataset folder; default `--conf output`, else `HOME/data/DAG_ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<PathBuf>,
    /// `parquet`, `csv` or `jsonl`; default `--conf format`, else Parquet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// CSV null tokens; default `--conf null_values`, else `NA`, `N/A`, `NULL`, `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_values: Option<Vec<String>>,
    /// The zone of source times without an offset; default `--conf source_tz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_tz: Option<String>,
    /// Column types instead of inferred ones: a schema file or a `column = "type"` table;
    /// default `--conf schema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaConfig>,
    /// `continue` or `fail_fast` at the first rejected row; default `--conf on_reject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_reject: Option<String>,
    /// Fail, committing nothing, above this share of rejected rows; default `--conf
    /// max_reject_ratio`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reject_ratio: Option<f64>,
    /// Commit in chunks and checkpoint after each, so a retry or a restart resumes (`{ every =
    /// 100000 }`); see [`crate::checkpointed`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointConfig>,
    /// Columns redacted in the payloads of rejected rows the dead-letter queue keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitive: Option<Vec<String>>,
    /// The output gate: checks of the staged partitions before any is published (an `error`
    /// check that fails publishes nothing); see [`crate::check`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// The input gate: checks of the source before it is read into partitions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_checks: Vec<Check>,
}

impl LoadWindow {
    pub fn new(partition_by: PartitionBy) -> Self {
        LoadWindow {
            partition_by,
            source: None,
            time_column: None,
            output: None,
            format: None,
            null_values: None,
            source_tz: None,
            schema: None,
            on_reject: None,
            max_reject_ratio: None,
            checkpoint: None,
            sensitive: None,
            checks: Vec::new(),
            input_checks: Vec::new(),
        }
    }

    pub fn by_date(granularity: Granularity) -> Self {
        LoadWindow::new(PartitionBy::Date {
            granularity: granularity.as_str().to_owned(),
            whole_local: false,
        })
    }

    fn overrides(&self) -> SourceOverrides {
        SourceOverrides {
            source: self.source.clone(),
            time_column: self.time_column.clone(),
            output: self.output.clone(),
            format: self.format.clone(),
            read: ReadConfig {
                null_values: self.null_values.clone(),
                source_tz: self.source_tz.clone(),
                schema: self.schema.clone(),
                on_reject: self.on_reject.clone(),
                max_reject_ratio: self.max_reject_ratio,
                sensitive: self.sensitive.clone(),
            },
        }
    }

    fn partitioner(
        &self,
        p: &WindowParams,
        from: Timestamp,
    ) -> Result<(Box<dyn Partitioner>, Vec<PartitionKey>), TaskError> {
        Ok(match &self.partition_by {
            PartitionBy::Date { granularity, .. } => {
                let granularity: Granularity = granularity.parse()?;
                let dp = DatePartitioner::new(p.time_column.clone(), p.tz.clone(), granularity);
                (Box::new(dp), Vec::new())
            }
            PartitionBy::Hash { key, buckets } => (
                Box::new(HashPartitioner::new(
                    key.clone(),
                    *buckets,
                    BucketScheme::Jump,
                )?),
                Vec::new(),
            ),
            PartitionBy::Geo { key } => (Box::new(GeoPartitioner::new(key.clone())?), Vec::new()),
            PartitionBy::Interval { name } => {
                let key = interval_key(name, p.tz.clone(), from)?;
                (Box::new(Whole(key.clone())), vec![key])
            }
        })
    }
}

/// `dt=YYYY-MM-DD/NAME=HHMM` of the local time `start` in `tz`.
pub fn interval_key(name: &str, tz: TimeZone, start: Timestamp) -> Result<PartitionKey, DataError> {
    let local = start.to_zoned(tz);
    PartitionKey::new([
        ("dt".to_owned(), local.date().to_string()),
        (
            name.to_owned(),
            format!("{:02}{:02}", local.hour(), local.minute()),
        ),
    ])
}

/// Every row to one partition.
struct Whole(PartitionKey);

impl Partitioner for Whole {
    fn split(
        &mut self,
        batch: &RecordBatch,
    ) -> Result<Vec<(PartitionKey, RecordBatch)>, DataError> {
        Ok(vec![(self.0.clone(), batch.clone())])
    }
}

/// The partitions a date-partitioned window must (re)write even when empty.
fn window_keys(
    granularity: Granularity,
    tz: &TimeZone,
    from: Timestamp,
    to: Timestamp,
) -> Vec<PartitionKey> {
    let dp = DatePartitioner::new("", tz.clone(), granularity);
    let mut keys: Vec<PartitionKey> = Vec::new();
    let mut t = from;
    while t < to {
        let key = dp.key_of(t);
        if !keys.contains(&key) {
            keys.push(key);
        }
        t = match t.checked_add(jiff::SignedDuration::from_mins(30)) {
            Ok(next) => next,
            Err(_) => break,
        };
    }
    keys
}

#[async_trait::async_trait]
impl crate::Operator for LoadWindow {
    fn name(&self) -> &'static str {
        "load_window"
    }

    fn validate(&self) -> Vec<String> {
        let mut problems = self.partition_problems();
        problems.extend(self.overrides().read.problems());
        problems.extend(self.checkpoint.iter().flat_map(|c| c.problems()));
        problems.extend(gate_problems(
            &self.checks,
            &self.input_checks,
            self.checkpoint.is_some(),
        ));
        problems
    }

    async fn execute(&self, ctx: TaskContext) -> weir_runtime::TaskResult {
        self.run(ctx).await
    }

    async fn mark_incomplete(&self, ctx: TaskContext, error: String) -> weir_runtime::TaskResult {
        // Not the window params: the batch may have failed because its source is missing.
        let output = match &self.output {
            Some(path) => crate::expand_path(&ctx, path),
            None => output_dir(&ctx)?,
        };
        let (from, to) = (ctx.data_interval.start, ctx.data_interval.end);
        let keys = match &self.partition_by {
            PartitionBy::Date { granularity, .. } => {
                window_keys(granularity.parse()?, &ctx.zone, from, to)
            }
            PartitionBy::Interval { name } => vec![interval_key(name, ctx.zone.clone(), from)?],
            // Hash and region partitions are known only from the rows.
            PartitionBy::Hash { .. } | PartitionBy::Geo { .. } => Vec::new(),
        };
        let marked = mark_partitions_incomplete(&ctx, &output, &keys, &error).await?;
        Ok(serde_json::json!({ "partitions": marked }))
    }

    async fn replay(
        &self,
        ctx: TaskContext,
        letters: Vec<DeadLetter>,
        batch: String,
        dry_run: bool,
    ) -> Result<Vec<ReplayOutcome>, TaskError> {
        let (letters, refused) = check_letters_apart(letters);
        if letters.is_empty() {
            return Ok(refused);
        }
        let p = window_params_with(&ctx, &self.overrides()).await?;
        let (mut partitioner, expected) = self.partitioner(&p, ctx.data_interval.start)?;
        // An interval layout writes the run's one partition: only rows of its interval go there.
        let window = matches!(self.partition_by, PartitionBy::Interval { .. })
            .then_some((ctx.data_interval.start, ctx.data_interval.end));
        let (params, column) = (p.clone(), p.time_column.clone());
        let replayed = blocking(move || {
            let opts = ReadOptions {
                time_column: Some(column.clone()),
                ..params.read.clone()
            };
            replay_rows(&params, &opts, &letters, &batch, dry_run, |b| {
                let b = match window {
                    Some((from, to)) => weir_data::filter_time_window(b, &column, from, to)?,
                    None => b.clone(),
                };
                let mut parts = partitioner.split(&b)?;
                if window.is_some() {
                    parts.retain(|(key, _)| expected.contains(key));
                }
                Ok(parts)
            })
        })
        .await?;
        record_replay(&ctx, &p.output, &replayed).await?;
        let mut outcomes = replayed.outcomes;
        outcomes.extend(refused);
        Ok(outcomes)
    }
}

impl LoadWindow {
    fn partition_problems(&self) -> Vec<String> {
        match &self.partition_by {
            PartitionBy::Date { granularity, .. } => match granularity.parse::<Granularity>() {
                Ok(_) => Vec::new(),
                Err(e) => vec![e.to_string()],
            },
            PartitionBy::Hash { key, buckets } => {
                let mut problems = Vec::new();
                if key.is_empty() {
                    problems.push("hash partitioning needs a `key` column".to_owned());
                }
                if *buckets == 0 || *buckets > 4096 {
                    problems.push(format!("buckets = {buckets}: use 1 to 4096"));
                }
                problems
            }
            PartitionBy::Geo { key } if key.is_empty() => {
                vec!["geographic partitioning needs a `key` column".to_owned()]
            }
            PartitionBy::Geo { .. } => Vec::new(),
            PartitionBy::Interval { name } => {
                match interval_key(name, TimeZone::UTC, Timestamp::UNIX_EPOCH) {
                    Ok(_) if name != "dt" => Vec::new(),
                    _ => vec![format!(
                        "interval partitioning needs a `name` for its level other than dt (letters, digits and _), not {name:?}"
                    )],
                }
            }
        }
    }

    async fn run(&self, ctx: TaskContext) -> weir_runtime::TaskResult {
        let p = window_params_with(&ctx, &self.overrides()).await?;
        let (mut from, mut to) = (ctx.data_interval.start, ctx.data_interval.end);
        let (partitioner, mut expected) = self.partitioner(&p, from)?;
        let mut partitioner = partitioner;
        let mut only_expected = false;
        if let PartitionBy::Date {
            granularity,
            whole_local,
        } = &self.partition_by
        {
            expected = window_keys(granularity.parse()?, &p.tz, from, to);
            if *whole_local {
                // A zone's offset changes by at most an hour: a local period the interval
                // touches lies within an hour of it. Read that, keep the interval's periods.
                let hour = jiff::SignedDuration::from_hours(1);
                from = from.saturating_sub(hour).unwrap_or(from);
                to = to.saturating_add(hour).unwrap_or(to);
                only_expected = true;
            }
        }
        // The input gate, before the source is read into partitions (or a writer opened).
        let read = ReadOptions {
            time_column: Some(p.time_column.clone()),
            ..p.read.clone()
        };
        crate::check::input_gate(&ctx, &p, read, &self.input_checks).await?;
        if let Some(checkpoint) = &self.checkpoint {
            let column = p.time_column.clone();
            let keep = expected.clone();
            let route: crate::checkpointed::Route = Box::new(move |b| {
                let window = weir_data::filter_time_window(b, &column, from, to)?;
                if window.num_rows() == 0 {
                    return Ok(Vec::new());
                }
                let mut parts = partitioner.split(&window)?;
                if only_expected {
                    parts.retain(|(key, _)| keep.contains(key));
                }
                Ok(parts)
            });
            let opts = ReadOptions {
                time_column: Some(p.time_column.clone()),
                ..p.read.clone()
            };
            return crate::checkpointed::load_checkpointed(
                &ctx,
                &p,
                opts,
                checkpoint.policy(),
                route,
                expected,
                false,
            )
            .await;
        }
        let params = p.clone();
        let staged = blocking(move || {
            let keep = expected.clone();
            stage_window(&params, from, to, &expected, move |b| {
                let mut parts = partitioner.split(b)?;
                if only_expected {
                    parts.retain(|(key, _)| keep.contains(key));
                }
                Ok(parts)
            })
        })
        .await?;
        let loaded = publish_checked(&ctx, &p, &self.checks, staged, None).await?;
        record_commits(&ctx, &p.output, &loaded).await?;
        Ok(loaded.to_json())
    }
}

/// Publishes a staged load, after its output gate when it has `checks`: a gate that an
/// `error` check fails drops every staged partition (the dataset keeps what it had), keeps the
/// source's rejects and fails the task; a `warn` failure is recorded and the load publishes.
async fn publish_checked(
    ctx: &TaskContext,
    p: &WindowParams,
    checks: &[Check],
    staged: Staged,
    partitioner: Option<Box<dyn Partitioner>>,
) -> Result<Loaded, TaskError> {
    if !checks.is_empty() && !staged.is_refused() {
        let parts = staged.partitions().to_vec();
        let schema = staged.source_schema();
        let blocked = match crate::check::output_gate(ctx, p, checks, parts, schema).await {
            Ok(blocked) => blocked,
            Err(e) => {
                // Dropping the writers deletes their staging folders: file IO, off this thread.
                blocking(move || {
                    drop(staged);
                    Ok(())
                })
                .await?;
                return Err(e);
            }
        };
        if let Some(why) = blocked {
            let loaded = blocking(move || Ok(staged.discard())).await?;
            record_commits(ctx, &p.output, &loaded).await?;
            return Err(TaskError::fatal(why));
        }
    }
    blocking(move || match partitioner {
        Some(mut partitioner) => staged.publish_with(partitioner.as_mut()),
        None => staged.publish(),
    })
    .await
}

/// Streams the whole source of `p` through `partitioner` and commits every partition it makes;
/// the dataset then holds exactly those (partitions an earlier layout left are retired). A
/// [`Partitioner::sequential`] one has each partition committed as soon as the next starts and
/// learns its real size.
pub fn partition_source(
    p: &WindowParams,
    partitioner: &mut dyn Partitioner,
) -> Result<Loaded, DataError> {
    stage_source(p, partitioner)?.publish_with(partitioner)
}

/// [`partition_source`] up to its commit: every partition written and staged, none published
/// (but a sequential partitioner's, which are committed as the next starts), for an output
/// gate; [`Staged::publish_with`] the same partitioner commits them and retires the others.
pub fn stage_source(
    p: &WindowParams,
    partitioner: &mut dyn Partitioner,
) -> Result<Staged, DataError> {
    let mut reader = open_source(&p.source, &p.read)?;
    let schema = reader.schema();
    let dataset = Dataset::open(&p.output)?;
    let mut writers: BTreeMap<PartitionKey, weir_data::PartitionWriter> = BTreeMap::new();
    let mut commits = Vec::new();
    let mut rows = 0u64;
    // Feed small slices, so a sequential (size) partitioner can learn from each commit.
    let slice = if partitioner.sequential() {
        4096
    } else {
        usize::MAX
    };
    while let Some(batch) = reader.next() {
        if p.reject_policy.fail_fast
            && let Some(why) = p.reject_policy.violation(&p.source, 0, reader.rejects())
        {
            return Ok(Staged::refused(Loaded::refused(&mut reader, why), schema));
        }
        let batch = batch?;
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = slice.min(batch.num_rows() - offset);
            for (key, part) in partitioner.split(&batch.slice(offset, len))? {
                if part.num_rows() == 0 {
                    continue;
                }
                if partitioner.sequential() {
                    let done: Vec<PartitionKey> =
                        writers.keys().filter(|k| **k != key).cloned().collect();
                    for k in done {
                        let commit = writers.remove(&k).expect("listed").commit()?;
                        partitioner.committed(&k, commit.bytes)?;
                        commits.push(commit);
                    }
                }
                rows += part.num_rows() as u64;
                let writer = match writers.entry(key) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        let w = dataset.writer(e.key(), part.schema(), p.write.clone())?;
                        e.insert(w)
                    }
                };
                writer.write(&part)?;
            }
            offset += len;
        }
    }
    let substituted = match replayed_rows(p, &reader)? {
        Some((batch, lines)) => {
            write_routed(
                &dataset,
                p,
                &mut writers,
                &mut rows,
                partitioner.split(&batch)?,
            )?;
            lines
        }
        None => Vec::new(),
    };
    if let Some(why) = p.reject_policy.violation(
        &p.source,
        reader.rows_emitted() + substituted.len() as u64,
        &still_rejected(reader.rejects(), &substituted),
    ) {
        if commits.is_empty() {
            return Ok(Staged::refused(Loaded::refused(&mut reader, why), schema));
        }
        // A sequential (size) layout commits as it goes: what it committed before the ratio
        // was known stays, and is said.
        let mut loaded = Loaded::new(commits, rows, 0).read_from(&mut reader);
        loaded.violation = Some(format!(
            "{why} ({} chunks were committed before the end of the source showed it)",
            loaded.commits.len()
        ));
        return Ok(Staged::refused(loaded, schema));
    }
    let mut loaded = Loaded::new(Vec::new(), rows, 0)
        .read_from(&mut reader)
        .without(&substituted, &p.replayed);
    loaded.dataset = Some(p.output.clone());
    Staged::stage(writers, schema, commits, loaded, Some(p.output.clone()))
}

/// How `partition` lays out a whole source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case", deny_unknown_fields)]
pub enum Layout {
    /// `dt=` (or `dt=/hr=`) by the local date of the time column in the run's zone.
    Date {
        #[serde(default = "day")]
        granularity: String,
    },
    /// `bucket=NN` by a stable hash of `key`.
    Hash { key: String, buckets: u32 },
    /// `COLUMN=VALUE` by the value of `key`.
    Geo { key: String },
    /// `range=NN`: equal-count ranges of the integer `key`, planned from the data (exactly, or
    /// from a reservoir of `sample` keys and then recounted exactly).
    Range {
        key: String,
        partitions: usize,
        #[serde(default = "default_sample")]
        sample: usize,
    },
    /// `chunk=NNNNN` files of about `target_bytes` each, the estimate corrected by every commit.
    Size { target_bytes: u64 },
}

fn default_sample() -> usize {
    weir_data::partitioners::DEFAULT_SAMPLE_CAPACITY
}

/// `partition`: lays out the run's whole source (not a time window) with one of the five
/// partitioners, commits every partition atomically and retires partitions an earlier layout
/// left, so a re-run replaces the dataset rather than mixing two layouts. Its output is
/// [`Loaded`]. DAGs using it declare [`window_param_specs`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    pub layout: Layout,
    /// The source file (CSV, JSON lines or Parquet; `{param:NAME}`, `{home}` expanded);
    /// default `--conf source`, else the generated sample orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<PathBuf>,
    /// The column of event times; default `--conf time_column`, else `event_time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_column: Option<String>,
    /// The dataset folder; default `--conf output`, else `HOME/data/DAG_ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<PathBuf>,
    /// `parquet`, `csv` or `jsonl`; default `--conf format`, else Parquet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// CSV null tokens; default `--conf null_values`, else `NA`, `N/A`, `NULL`, `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_values: Option<Vec<String>>,
    /// The zone of source times without an offset; default `--conf source_tz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_tz: Option<String>,
    /// Column types instead of inferred ones: a schema file or a `column = "type"` table;
    /// default `--conf schema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaConfig>,
    /// `continue` or `fail_fast` at the first rejected row; default `--conf on_reject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_reject: Option<String>,
    /// Fail, committing nothing, above this share of rejected rows; default `--conf
    /// max_reject_ratio`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reject_ratio: Option<f64>,
    /// Commit in chunks and checkpoint after each, so a retry or a restart resumes (`{ every =
    /// 100000 }`); see [`crate::checkpointed`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointConfig>,
    /// Columns redacted in the payloads of rejected rows the dead-letter queue keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitive: Option<Vec<String>>,
    /// The output gate: checks of the staged partitions before any is published (an `error`
    /// check that fails publishes nothing); see [`crate::check`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// The input gate: checks of the source before it is read into partitions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_checks: Vec<Check>,
}

impl Partition {
    pub fn new(layout: Layout) -> Self {
        Partition {
            layout,
            source: None,
            time_column: None,
            output: None,
            format: None,
            null_values: None,
            source_tz: None,
            schema: None,
            on_reject: None,
            max_reject_ratio: None,
            checkpoint: None,
            sensitive: None,
            checks: Vec::new(),
            input_checks: Vec::new(),
        }
    }

    fn overrides(&self) -> SourceOverrides {
        SourceOverrides {
            source: self.source.clone(),
            time_column: self.time_column.clone(),
            output: self.output.clone(),
            format: self.format.clone(),
            read: ReadConfig {
                null_values: self.null_values.clone(),
                source_tz: self.source_tz.clone(),
                schema: self.schema.clone(),
                on_reject: self.on_reject.clone(),
                max_reject_ratio: self.max_reject_ratio,
                sensitive: self.sensitive.clone(),
            },
        }
    }
}

impl Layout {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match self {
            Layout::Date { granularity } => {
                if let Err(e) = granularity.parse::<Granularity>() {
                    problems.push(e.to_string());
                }
            }
            Layout::Hash { key, buckets } => {
                if key.is_empty() {
                    problems.push("hash partitioning needs a `key` column".to_owned());
                }
                if *buckets == 0 || *buckets > 4096 {
                    problems.push(format!("buckets = {buckets}: use 1 to 4096"));
                }
            }
            Layout::Geo { key } if key.is_empty() => {
                problems.push("geographic partitioning needs a `key` column".to_owned())
            }
            Layout::Geo { .. } => {}
            Layout::Range {
                key,
                partitions,
                sample,
            } => {
                if key.is_empty() {
                    problems.push("range partitioning needs an integer `key` column".to_owned());
                }
                if *partitions == 0 || *partitions > 4096 {
                    problems.push(format!("partitions = {partitions}: use 1 to 4096"));
                }
                if *sample == 0 {
                    problems.push("sample must be at least 1".to_owned());
                }
            }
            Layout::Size { target_bytes } if *target_bytes < 1024 => {
                problems.push(format!("target_bytes = {target_bytes}: use at least 1024"))
            }
            Layout::Size { .. } => {}
        }
        problems
    }

    /// The partitioner; range plans from a first pass over the source.
    fn partitioner(&self, p: &WindowParams) -> Result<Box<dyn Partitioner>, DataError> {
        Ok(match self {
            Layout::Date { granularity } => Box::new(DatePartitioner::new(
                p.time_column.clone(),
                p.tz.clone(),
                granularity.parse()?,
            )),
            Layout::Hash { key, buckets } => Box::new(HashPartitioner::new(
                key.clone(),
                *buckets,
                BucketScheme::Jump,
            )?),
            Layout::Geo { key } => Box::new(GeoPartitioner::new(key.clone())?),
            Layout::Range {
                key,
                partitions,
                sample,
            } => {
                let (plan, _) = crate::plan_ranges(&p.source, &p.read, key, *partitions, *sample)?;
                Box::new(RangePartitioner {
                    plan,
                    column: key.clone(),
                })
            }
            Layout::Size { target_bytes } => {
                let ratio = match p.write.format {
                    weir_data::FileFormat::Parquet => 0.35,
                    weir_data::FileFormat::Csv | weir_data::FileFormat::JsonLines => 1.0,
                };
                Box::new(SizePartitioner::with_initial_ratio(*target_bytes, ratio)?)
            }
        })
    }
}

#[async_trait::async_trait]
impl crate::Operator for Partition {
    fn name(&self) -> &'static str {
        "partition"
    }

    fn validate(&self) -> Vec<String> {
        let mut problems = self.layout.problems();
        problems.extend(self.overrides().read.problems());
        problems.extend(gate_problems(
            &self.checks,
            &self.input_checks,
            self.checkpoint.is_some(),
        ));
        if matches!(self.layout, Layout::Size { .. }) && !self.checks.is_empty() {
            problems.push(
                "checks: a size layout commits each chunk as the next starts, so no output gate \
                 can check them before they are published; use input_checks, or another layout"
                    .to_owned(),
            );
        }
        if let Some(checkpoint) = &self.checkpoint {
            problems.extend(checkpoint.problems());
            if matches!(self.layout, Layout::Size { .. }) {
                problems.push(
                    "a size layout commits its chunks as it goes and cannot be checkpointed; drop checkpoint or use another layout"
                        .to_owned(),
                );
            }
        }
        problems
    }

    async fn execute(&self, ctx: TaskContext) -> weir_runtime::TaskResult {
        let p = window_params_with(&ctx, &self.overrides()).await?;
        // The input gate, before the source is read into partitions (or a writer opened).
        crate::check::input_gate(&ctx, &p, p.read.clone(), &self.input_checks).await?;
        if let Some(checkpoint) = &self.checkpoint {
            let (params, layout) = (p.clone(), self.layout.clone());
            let mut partitioner = blocking(move || layout.partitioner(&params)).await?;
            let route: crate::checkpointed::Route = Box::new(move |b| partitioner.split(b));
            return crate::checkpointed::load_checkpointed(
                &ctx,
                &p,
                p.read.clone(),
                checkpoint.policy(),
                route,
                Vec::new(),
                true,
            )
            .await;
        }
        let (params, layout) = (p.clone(), self.layout.clone());
        let (staged, partitioner) = blocking(move || {
            let mut partitioner = layout.partitioner(&params)?;
            let staged = stage_source(&params, partitioner.as_mut())?;
            Ok((staged, partitioner))
        })
        .await?;
        let loaded = publish_checked(&ctx, &p, &self.checks, staged, Some(partitioner)).await?;
        record_commits(&ctx, &p.output, &loaded).await?;
        Ok(loaded.to_json())
    }

    async fn replay(
        &self,
        ctx: TaskContext,
        letters: Vec<DeadLetter>,
        batch: String,
        dry_run: bool,
    ) -> Result<Vec<ReplayOutcome>, TaskError> {
        let (letters, refused) = check_letters_apart(letters);
        if letters.is_empty() {
            return Ok(refused);
        }
        if matches!(self.layout, Layout::Size { .. }) {
            return Err(TaskError::fatal(format!(
                "task `{}` lays out chunks by size, which a replay cannot add to; clear and re-run it instead",
                ctx.task_id
            )));
        }
        let p = window_params_with(&ctx, &self.overrides()).await?;
        let (params, layout) = (p.clone(), self.layout.clone());
        let replayed = blocking(move || {
            let mut partitioner = layout.partitioner(&params)?;
            replay_rows(&params, &params.read, &letters, &batch, dry_run, |b| {
                partitioner.split(b)
            })
        })
        .await?;
        record_replay(&ctx, &p.output, &replayed).await?;
        let mut outcomes = replayed.outcomes;
        outcomes.extend(refused);
        Ok(outcomes)
    }
}
