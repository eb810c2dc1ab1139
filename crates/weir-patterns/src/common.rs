//! Pieces the patterns share: their `--conf` params, the default sample data, and loading the
//! rows of a time window into committed Parquet partitions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use arrow::record_batch::RecordBatch;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use weir_core::timetable::parse_zone;
use weir_data::{
    CommitReport, DataError, Dataset, PartitionKey, ReadOptions, SampleSpec, WriteOptions,
    open_source,
};
use weir_runtime::{TaskContext, TaskError};
use weir_store::PartitionManifest;

/// What a window-loading pattern reads and where it writes, from the run's params.
#[derive(Debug, Clone)]
pub struct WindowParams {
    /// `--conf source=PATH`: a CSV, JSON-lines or Parquet file (default: the generated sample
    /// orders).
    pub source: PathBuf,
    /// `--conf time_column=NAME`: timestamps with an offset or `Z` (default `event_time`).
    pub time_column: String,
    /// `--conf tz=ZONE`: the zone windows are cut in (default: the DAG's schedule zone).
    pub tz: TimeZone,
    /// `--conf output=DIR`: the dataset root partitions are written under.
    pub output: PathBuf,
    /// How partitions are written: `--conf format=parquet|csv|jsonl` (default parquet),
    /// `--conf compression=zstd|snappy|lz4|gzip|none` and `--conf row_group_size=N` (Parquet).
    pub write: WriteOptions,
}

/// The write options of `--conf format=…`, `compression=…` and `row_group_size=…`.
pub fn write_options(ctx: &TaskContext) -> Result<WriteOptions, TaskError> {
    let mut opts = WriteOptions::default();
    if let Some(format) = ctx.param_str("format") {
        opts.format = format
            .parse()
            .map_err(|e: DataError| TaskError::fatal(format!("--conf format: {e}")))?;
    }
    if let Some(codec) = ctx.param_str("compression") {
        opts.compression = codec
            .parse()
            .map_err(|e: DataError| TaskError::fatal(format!("--conf compression: {e}")))?;
    }
    if let Some(rows) = ctx.param_str("row_group_size") {
        opts.row_group_size = rows.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            TaskError::fatal(format!(
                "--conf row_group_size: {rows:?} is not a positive number of rows"
            ))
        })?;
    }
    Ok(opts)
}

/// Reads the window params, generating the default sample data when no source is given.
pub async fn window_params(
    ctx: &TaskContext,
    dag_tz: &TimeZone,
) -> Result<WindowParams, TaskError> {
    let source = match ctx.param_str("source") {
        Some(path) => PathBuf::from(path),
        None => ensure_sample(ctx.home()).await?,
    };
    if !source.exists() {
        return Err(TaskError::fatal(format!(
            "source {} does not exist; pass an existing CSV, JSON-lines or Parquet file with --conf source=PATH",
            source.display()
        )));
    }
    let tz = match ctx.param_str("tz") {
        Some(name) => parse_zone(&name).map_err(|e| TaskError::fatal(format!("--conf tz: {e}")))?,
        None => dag_tz.clone(),
    };
    Ok(WindowParams {
        source,
        time_column: ctx
            .param_str("time_column")
            .unwrap_or_else(|| "event_time".to_owned()),
        tz,
        output: output_dir(ctx, "output", ctx.dag_id.as_str()),
        write: write_options(ctx)?,
    })
}

/// `--conf NAME=DIR`, or `HOME/data/DEFAULT`.
pub fn output_dir(ctx: &TaskContext, param: &str, default: &str) -> PathBuf {
    ctx.param_str(param)
        .map(PathBuf::from)
        .unwrap_or_else(|| ctx.home().join("data").join(default))
}

static SAMPLE_LOCK: Mutex<()> = Mutex::new(());

/// The default sample orders under the weir home, generated (deterministically, seed 42) the
/// first time a pattern needs them. Written to a temporary name and renamed, so a reader never
/// sees a half-written file.
pub async fn ensure_sample(home: &Path) -> Result<PathBuf, TaskError> {
    let path = crate::default_sample_path(home);
    if path.exists() {
        return Ok(path);
    }
    let target = path.clone();
    tokio::task::spawn_blocking(move || -> Result<(), TaskError> {
        let _guard = SAMPLE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        if target.exists() {
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
        std::fs::rename(&tmp, &target).map_err(|e| {
            TaskError::fatal(format!(
                "cannot move the sample into {}: {e}",
                target.display()
            ))
        })
    })
    .await
    .map_err(|e| TaskError::fatal(format!("sample generation stopped: {e}")))??;
    Ok(path)
}

/// What loading a window committed.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub commits: Vec<CommitReport>,
    /// Rows of the source inside the window (all of them landed).
    pub rows: u64,
    /// Rows of the whole source that could not be read (malformed), set aside.
    pub source_rejects: u64,
}

impl Loaded {
    /// The task output: what landed, per partition.
    pub fn to_json(&self) -> Value {
        let partitions: Vec<Value> = self
            .commits
            .iter()
            .map(|c| json!({"partition": c.partition, "rows": c.rows, "bytes": c.bytes, "files": c.files}))
            .collect();
        json!({"rows": self.rows, "source_rejects": self.source_rejects, "partitions": partitions})
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
    route: impl Fn(&RecordBatch) -> Result<Vec<(PartitionKey, RecordBatch)>, DataError>,
) -> Result<Loaded, DataError> {
    let column = p.time_column.clone();
    stream_into_partitions(p, Some(&p.time_column), expected, |batch| {
        let window = weir_data::filter_time_window(batch, &column, from, to)?;
        if window.num_rows() == 0 {
            Ok(Vec::new())
        } else {
            route(&window)
        }
    })
}

/// The shared loop: stream the source, route each batch, write every routed part to its
/// partition's writer (opened on first use; `expected` ones up front) and commit them all.
fn stream_into_partitions(
    p: &WindowParams,
    time_column: Option<&str>,
    expected: &[PartitionKey],
    mut route: impl FnMut(&RecordBatch) -> Result<Vec<(PartitionKey, RecordBatch)>, DataError>,
) -> Result<Loaded, DataError> {
    let opts = ReadOptions {
        time_column: time_column.map(str::to_owned),
        ..ReadOptions::default()
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
    for batch in reader.by_ref() {
        for (key, part) in route(&batch?)? {
            if part.num_rows() == 0 {
                continue;
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
    }
    let source_rejects = reader.rejects().len() as u64;
    let mut commits = Vec::new();
    for (_, writer) in writers {
        commits.push(writer.commit()?);
    }
    Ok(Loaded {
        commits,
        rows,
        source_rejects,
    })
}

/// Runs blocking data work off the async threads; data errors fail the try (retryable, since
/// most are IO).
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DataError> + Send + 'static,
) -> Result<T, TaskError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(TaskError::retryable(e.to_string())),
        Err(e) => Err(TaskError::fatal(format!("data work stopped: {e}"))),
    }
}

/// The name manifests are recorded under for the dataset at `dir`: its canonical path, so that
/// `out`, `./out` and `/abs/out` are one dataset.
pub fn dataset_name(dir: &Path) -> String {
    std::fs::canonicalize(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string()
}

/// Records a manifest per committed partition of `dataset`.
pub async fn record_commits(
    ctx: &TaskContext,
    dataset: &Path,
    loaded: &Loaded,
) -> Result<(), TaskError> {
    for c in &loaded.commits {
        ctx.record_manifest(PartitionManifest {
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
        })
        .await?;
    }
    Ok(())
}

/// Checks that what landed reads back: each partition's row count from its Parquet footers
/// equals the count the load wrote.
pub async fn verify_partitions(output: PathBuf, loaded: Value) -> Result<Value, TaskError> {
    let parts = loaded["partitions"].as_array().cloned().unwrap_or_default();
    blocking(move || {
        let dataset = Dataset::open(&output)?;
        let mut checked = Vec::new();
        for part in parts {
            let path = part["partition"].as_str().unwrap_or_default();
            let key = PartitionKey::parse(path)?;
            let on_disk = dataset.count_rows(&key)?;
            let expected = part["rows"].as_u64().unwrap_or(u64::MAX);
            if on_disk != expected {
                return Err(DataError::InvalidOptions {
                    what: "partition verification",
                    reason: format!("{path} holds {on_disk} rows but {expected} were written; re-run the interval"),
                });
            }
            checked.push(json!({"partition": path, "rows": on_disk}));
        }
        Ok(json!({"verified": checked}))
    })
    .await
}

/// Streams the whole `source`, routes every batch with `route` and commits each partition the
/// router produced. The dataset is then made to hold exactly those partitions: any partition a
/// previous run left that this run did not write (say, with more buckets) is moved out, so a
/// re-run replaces the dataset rather than mixing two layouts.
pub fn load_all(
    p: &WindowParams,
    time_column: Option<&str>,
    route: impl FnMut(&RecordBatch) -> Result<Vec<(PartitionKey, RecordBatch)>, DataError>,
) -> Result<Loaded, DataError> {
    let loaded = stream_into_partitions(p, time_column, &[], route)?;
    retire_others(&p.output, &loaded.commits)?;
    Ok(loaded)
}

/// Moves every committed partition of the dataset at `root` that is not in `keep` out of the
/// dataset (into `_trash`, then deletes it): readers see it disappear whole.
pub fn retire_others(root: &Path, keep: &[CommitReport]) -> Result<Vec<String>, DataError> {
    let dataset = Dataset::open(root)?;
    let keep: std::collections::HashSet<&str> = keep.iter().map(|c| c.partition.as_str()).collect();
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
