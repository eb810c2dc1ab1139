//! SQL over weir datasets with DataFusion: register Hive-partitioned datasets (Parquet, CSV or
//! JSON lines) as tables,
//! run queries that prune partitions and push predicates into Parquet row groups, and report what
//! a query actually read.
//!
//! This crate holds the DataFusion dependency on its own, so the crates that only read and write
//! partitions (weir-data, the patterns) do not pay its build time and binary size.

mod functions;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::datasource::file_format::FileFormat as DfFileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::ListingOptions;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::object_store::{ObjectStore, ObjectStoreExt};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use datafusion::physical_plan::metrics::MetricValue;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
pub use url::Url;
use weir_data::{Dataset, FileFormat, ReadOptions, Reject};

/// The error type of weir-query.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Data(#[from] weir_data::DataError),
    /// DataFusion rejected or failed the query (its message names the place).
    #[error("query failed: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// A table registration that cannot work.
    #[error("cannot register table `{name}` at {}: {reason}", .path.display())]
    Table {
        name: String,
        path: PathBuf,
        reason: String,
    },
}

impl weir_core::Transient for QueryError {
    /// Reading files may hit an I/O hiccup (a network filesystem, an object store) that a retry
    /// survives; a query DataFusion refuses (a typo, a missing column, a type error) refuses
    /// again, and so does a table that cannot be registered.
    fn is_transient(&self) -> bool {
        use datafusion::error::DataFusionError as E;
        match self {
            QueryError::Data(e) => e.is_transient(),
            QueryError::DataFusion(E::IoError(e)) => e.is_transient(),
            QueryError::DataFusion(E::ObjectStore(_)) => true,
            // A source table's reader failing (a network share's hiccup) retries like a load.
            QueryError::DataFusion(E::External(e)) => e
                .downcast_ref::<weir_data::DataError>()
                .is_some_and(weir_core::Transient::is_transient),
            QueryError::DataFusion(E::ArrowError(_, _) | E::ParquetError(_)) => false,
            QueryError::DataFusion(_) | QueryError::Table { .. } => false,
        }
    }
}

/// One Parquet file a query plan reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedFile {
    pub path: String,
    pub bytes: u64,
}

/// What running a query read, beside its plan.
#[derive(Debug, Clone)]
pub struct ExplainReport {
    /// The physical plan, indented, with the metrics of the run.
    pub plan: String,
    /// The files left to read after partition pruning.
    pub files: Vec<ScannedFile>,
    /// Bytes the Parquet readers actually fetched (after row-group and page pruning).
    pub bytes_scanned: u64,
    /// Row groups skipped by statistics (predicate pushdown).
    pub row_groups_pruned: u64,
    /// Rows the query returned.
    pub rows: u64,
}

/// A typed value for a `$name` placeholder of [`QueryEngine::sql_with_params`].
#[derive(Debug, Clone, PartialEq)]
pub enum QueryParam {
    /// An instant, microseconds since the Unix epoch (a `TIMESTAMP WITH TIME ZONE 'UTC'`).
    TimestampMicros(i64),
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl QueryParam {
    fn to_scalar(&self) -> ScalarValue {
        match self {
            QueryParam::TimestampMicros(us) => {
                ScalarValue::TimestampMicrosecond(Some(*us), Some("UTC".into()))
            }
            QueryParam::Int(n) => ScalarValue::Int64(Some(*n)),
            QueryParam::Float(x) => ScalarValue::Float64(Some(*x)),
            QueryParam::Bool(b) => ScalarValue::Boolean(Some(*b)),
            QueryParam::Text(t) => ScalarValue::Utf8(Some(t.clone())),
        }
    }
}

/// Whether a table location is a file pattern (`dir/*.parquet`, `day-??.csv`).
pub fn is_pattern(location: &str) -> bool {
    location.contains(['*', '?', '['])
}

/// The files a pattern matches, sorted: `*` and `?` match within one path segment, `[abc]` one
/// of its characters. Files and folders whose names start with `_` or `.` (staging, trash,
/// markers, hidden files) match only a segment that starts the same way, as Spark and Hive skip
/// them.
pub fn expand_pattern(pattern: &str) -> Vec<PathBuf> {
    let absolute = pattern.starts_with('/');
    let mut current: Vec<PathBuf> = vec![if absolute {
        PathBuf::from("/")
    } else {
        PathBuf::from(".")
    }];
    let segments: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let mut next = Vec::new();
        for dir in &current {
            if !is_pattern(segment) {
                let path = dir.join(segment);
                if path.exists() {
                    next.push(path);
                }
                continue;
            }
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if (name.starts_with('_') || name.starts_with('.'))
                    && !segment.starts_with(['_', '.'])
                {
                    continue;
                }
                let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
                if wildcard(segment.as_bytes(), name.as_bytes()) && (last || is_dir) {
                    next.push(entry.path());
                }
            }
        }
        current = next;
    }
    let mut files: Vec<PathBuf> = current
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| p.strip_prefix("./").map(Path::to_path_buf).unwrap_or(p))
        .collect();
    files.sort();
    files
}

/// Matches `name` against a one-segment pattern of `*`, `?` and `[…]`.
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| wildcard(rest, &name[i..])),
        Some((b'?', rest)) => !name.is_empty() && wildcard(rest, &name[1..]),
        Some((b'[', rest)) => match rest.iter().position(|&c| c == b']') {
            Some(end) if !name.is_empty() => {
                rest[..end].contains(&name[0]) && wildcard(&rest[end + 1..], &name[1..])
            }
            _ => false,
        },
        Some((&c, rest)) => name.first() == Some(&c) && wildcard(rest, &name[1..]),
    }
}

/// Whether `sql` has the placeholder `$name` (not merely a longer name starting with it).
fn mentions(sql: &str, name: &str) -> bool {
    let needle = format!("${name}");
    sql.match_indices(&needle).any(|(at, _)| {
        sql[at + needle.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
    })
}

/// A DataFusion session with weir datasets registered as tables.
pub struct QueryEngine {
    ctx: SessionContext,
    /// Rows the source tables could not read, set aside while queries ran.
    rejects: Arc<Mutex<Vec<Reject>>>,
}

impl Default for QueryEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl QueryEngine {
    pub fn new() -> Self {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .set_bool("datafusion.execution.parquet.pushdown_filters", true)
            .set_bool("datafusion.execution.parquet.reorder_filters", true);
        let ctx = SessionContext::new_with_config(config);
        for f in functions::all() {
            ctx.register_udf(f);
        }
        QueryEngine {
            ctx,
            rejects: Arc::default(),
        }
    }

    /// Registers the source file at `path` (CSV, JSON lines or Parquet) as table `name`, read
    /// the way weir loads a source: streamed batch by batch (never all in memory), its
    /// `opts.time_column` parsed to a UTC timestamp. Rows it cannot read are set aside, not
    /// lost: [`QueryEngine::take_rejects`] hands them over after the query.
    pub fn register_source(
        &self,
        name: &str,
        path: &Path,
        opts: ReadOptions,
    ) -> Result<(), QueryError> {
        let schema = weir_data::open_source(path, &opts)?.schema();
        let stream = SourceStream {
            path: path.to_path_buf(),
            opts,
            schema: schema.clone(),
            rejects: self.rejects.clone(),
        };
        let table = datafusion::catalog::streaming::StreamingTable::try_new(
            schema,
            vec![Arc::new(stream)],
        )?;
        self.ctx.register_table(name, Arc::new(table))?;
        Ok(())
    }

    /// Registers source files (CSV, JSON lines or Parquet, one format) as one table `name`,
    /// read as [`QueryEngine::register_source`] reads one: the first file's schema (inferred,
    /// or as `opts` declares it) is every file's, so a later file's value that does not fit is
    /// a reject, not a silent null.
    pub fn register_files(
        &self,
        name: &str,
        paths: &[PathBuf],
        mut opts: ReadOptions,
    ) -> Result<(), QueryError> {
        let Some(first) = paths.first() else {
            return Err(QueryError::Table {
                name: name.to_owned(),
                path: PathBuf::new(),
                reason: "no files match; check the path or pattern".into(),
            });
        };
        let schema = weir_data::open_source(first, &opts)?.schema();
        let text = !matches!(
            first.extension().and_then(|e| e.to_str()),
            Some("parquet" | "parq")
        );
        if text && opts.schema.is_none() {
            // The first file's columns for all: the time column, if any, is already a UTC
            // timestamp in it, and the reader keeps it so.
            opts.schema = Some(schema.clone());
            opts.column_types.clear();
        }
        let mut streams: Vec<Arc<dyn datafusion::physical_plan::streaming::PartitionStream>> =
            Vec::new();
        for path in paths {
            if path.extension() != first.extension() {
                return Err(QueryError::Table {
                    name: name.to_owned(),
                    path: path.clone(),
                    reason: format!(
                        "it is not a .{} file like {}; query one format per table",
                        first
                            .extension()
                            .and_then(|e| e.to_str())
                            .unwrap_or_default(),
                        first.display()
                    ),
                });
            }
            let got = weir_data::open_source(path, &opts)?.schema();
            if got.fields() != schema.fields() {
                return Err(QueryError::Table {
                    name: name.to_owned(),
                    path: path.clone(),
                    reason: format!(
                        "its columns differ from those of {}; query files of one schema per table",
                        first.display()
                    ),
                });
            }
            streams.push(Arc::new(SourceStream {
                path: path.clone(),
                opts: opts.clone(),
                schema: schema.clone(),
                rejects: self.rejects.clone(),
            }));
        }
        let table = datafusion::catalog::streaming::StreamingTable::try_new(schema, streams)?;
        self.ctx.register_table(name, Arc::new(table))?;
        Ok(())
    }

    /// Registers `batches` (held in memory) as table `name` with `schema`: a small table a
    /// caller made itself, or an empty one (no batches) with the columns a query expects.
    pub fn register_batches(
        &self,
        name: &str,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<(), QueryError> {
        let table = datafusion::datasource::MemTable::try_new(schema, vec![batches])?;
        self.ctx.register_table(name, Arc::new(table))?;
        Ok(())
    }

    /// The rows source tables set aside since the last call (malformed, or a bad time), each
    /// once however many times a query scanned its file.
    pub fn take_rejects(&self) -> Vec<Reject> {
        let all = std::mem::take(&mut *self.rejects.lock().unwrap_or_else(|p| p.into_inner()));
        let mut seen = std::collections::HashSet::new();
        all.into_iter()
            .filter(|r| seen.insert((r.file.clone(), r.line)))
            .collect()
    }

    /// Makes the object store `store` readable under `url`'s scheme and authority (say
    /// `s3://bucket` or `memory://test`), for [`QueryEngine::register_location`].
    pub fn register_object_store(&self, url: &Url, store: Arc<dyn ObjectStore>) {
        self.ctx.register_object_store(url, store);
    }

    /// Registers the dataset at `location` as table `name`: a local folder (a path or a
    /// `file://` URL, read through [`QueryEngine::register`]) or a prefix in an object store
    /// registered with [`QueryEngine::register_object_store`] (`memory://…`, `s3://…`). The
    /// partition layout and file format are discovered by listing the prefix; folders whose
    /// names start with `_` or `.` (staging, trash) are never read.
    pub async fn register_location(
        &self,
        name: &str,
        location: &str,
    ) -> Result<Vec<String>, QueryError> {
        let Some((scheme, _)) = location.split_once("://") else {
            return self.register(name, Path::new(location)).await;
        };
        let table_err = |reason: String| QueryError::Table {
            name: name.to_owned(),
            path: PathBuf::from(location),
            reason,
        };
        if scheme == "file" {
            let url = Url::parse(location).map_err(|e| table_err(e.to_string()))?;
            let dir = url
                .to_file_path()
                .map_err(|()| table_err("not a local file URL".into()))?;
            return self.register(name, &dir).await;
        }
        let mut url = Url::parse(location).map_err(|e| {
            table_err(format!(
                "{e}; write a URL like s3://bucket/prefix or a folder path"
            ))
        })?;
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        let store = self
            .ctx
            .runtime_env()
            .object_store_registry
            .get_store(&url)
            .map_err(|_| {
                table_err(format!(
                    "no object store is registered for {scheme}://{}; this build reads local \
                 folders, file:// URLs and stores registered with register_object_store",
                    url.host_str().unwrap_or_default()
                ))
            })?;
        let prefix = ObjectPath::from_url_path(url.path()).map_err(|e| table_err(e.to_string()))?;
        let layout = discover(store.as_ref(), &prefix)
            .await
            .map_err(|e| table_err(e.to_string()))?;
        let Some(format) = layout.format else {
            return Err(table_err(
                "no part files found under the prefix; check the location".into(),
            ));
        };
        // The schema the dataset keeps, if it has one (see `register`).
        let kept_path = prefix.clone().join(weir_data::layout::DATASET_SCHEMA_FILE);
        if let Ok(got) = store.get(&kept_path).await {
            let bytes = got.bytes().await.map_err(|e| table_err(e.to_string()))?;
            let kept = weir_data::DatasetSchema::from_json(&bytes).map_err(table_err)?;
            self.register_kept(name, url.as_str(), format, &kept)
                .await?;
            return Ok(kept.partition_names());
        }
        let schema = match (format, &layout.sample_partition) {
            (FileFormat::Parquet, _) | (_, None) => None,
            (_, Some(dir)) => {
                let sidecar = dir.clone().join("_schema.json");
                let bytes = store
                    .get(&sidecar)
                    .await
                    .map_err(|e| table_err(e.to_string()))?
                    .bytes()
                    .await
                    .map_err(|e| table_err(e.to_string()))?;
                Some(
                    weir_data::dataset::parse_schema_json(&bytes)
                        .map_err(|e| table_err(e.to_string()))?,
                )
            }
        };
        let typed: Vec<(String, DataType)> = layout
            .columns
            .iter()
            .map(|c| (c.clone(), DataType::Utf8))
            .collect();
        self.register_listing(name, url.as_str(), format, schema, &typed)
            .await?;
        Ok(layout.columns)
    }

    /// Registers the dataset under `dir` as table `name`. Its partition columns (`dt`, `hr`, …)
    /// come from the committed partitions' paths and are queryable like other columns; a filter
    /// on them prunes whole partitions.
    pub async fn register(&self, name: &str, dir: &Path) -> Result<Vec<String>, QueryError> {
        let table_err = |reason: String| QueryError::Table {
            name: name.to_owned(),
            path: dir.to_path_buf(),
            reason,
        };
        if !dir.is_dir() {
            return Err(table_err(
                "the folder does not exist; pass an existing dataset folder".to_owned(),
            ));
        }
        let dataset = Dataset::open(dir)?;
        let partitions = dataset.partitions()?;
        let columns: Vec<String> = partitions
            .first()
            .map(|p| p.key.parts().iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default();
        if let Some(odd) = partitions
            .iter()
            .find(|p| p.key.parts().iter().map(|(n, _)| n).ne(columns.iter()))
        {
            return Err(table_err(format!(
                "partition {} does not have the layout {} of the others",
                odd.partition,
                columns.join("/")
            )));
        }
        let format = partitions.first().map_or(FileFormat::Parquet, |p| p.format);
        if let Some(odd) = partitions.iter().find(|p| p.format != format) {
            return Err(table_err(format!(
                "partition {} holds {} files but {} holds {format}; rewrite it in one format",
                odd.partition, odd.format, partitions[0].partition
            )));
        }
        let root = std::fs::canonicalize(dir).map_err(|e| table_err(e.to_string()))?;
        let url = format!("file://{}/", root.display());
        // The schema the dataset keeps: the files' columns in their kept types (older files of
        // a widened column are cast), and the partition columns typed, from the paths, whether
        // or not the files repeat them.
        if let Some(kept) = dataset.schema()? {
            self.register_kept(name, &url, format, &kept).await?;
            return Ok(kept.partition_names());
        }
        // A dataset written before weir kept its schema. Text files do not carry their types:
        // give DataFusion the schema kept beside them.
        let file_schema = match partitions.first() {
            Some(p) => Some(dataset.partition_schema(&p.key)?),
            None => None,
        };
        let schema = match format {
            FileFormat::Parquet => None,
            FileFormat::Csv | FileFormat::JsonLines => file_schema.clone(),
        };
        // A partition column the files also hold (a region split keeps its `region` column) is
        // read from the files: the values are the same, and two columns of one name are an
        // error in every SQL engine.
        let columns: Vec<String> = columns
            .into_iter()
            .filter(|c| {
                file_schema
                    .as_ref()
                    .is_none_or(|s| s.field_with_name(c).is_err())
            })
            .collect();
        let typed: Vec<(String, DataType)> = columns
            .iter()
            .map(|c| (c.clone(), DataType::Utf8))
            .collect();
        self.register_listing(name, &url, format, schema, &typed)
            .await?;
        Ok(columns)
    }

    /// A dataset with a kept schema: files read as their kept types, partition columns typed
    /// from the paths, and Hive's default partition of a text column read as the null it
    /// stands for (as DuckDB, pyarrow and Spark read it); filters on partition columns still
    /// prune folders.
    async fn register_kept(
        &self,
        name: &str,
        url: &str,
        format: FileFormat,
        kept: &weir_data::DatasetSchema,
    ) -> Result<(), QueryError> {
        use datafusion::datasource::listing::{ListingTable, ListingTableConfig, ListingTableUrl};
        use datafusion::prelude::{ident, lit, nullif};
        let typed: Vec<(String, DataType)> = kept
            .partition_columns
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        let text: Vec<&String> = kept
            .partition_columns
            .iter()
            .filter(|f| f.data_type() == &DataType::Utf8)
            .map(|f| f.name())
            .collect();
        if text.is_empty() {
            return self
                .register_listing(name, url, format, Some(kept.columns.clone()), &typed)
                .await;
        }
        let config = ListingTableConfig::new(ListingTableUrl::parse(url)?)
            .with_listing_options(listing_options(format, &typed))
            .with_schema(kept.columns.clone());
        let provider = ListingTable::try_new(config)?;
        let df = self.ctx.read_table(Arc::new(provider))?;
        let columns: Vec<datafusion::prelude::Expr> = kept
            .table_schema()
            .fields()
            .iter()
            .map(|f| {
                if text.contains(&f.name()) {
                    nullif(
                        ident(f.name()),
                        lit(weir_data::partition::DEFAULT_PARTITION),
                    )
                    .alias(f.name())
                } else {
                    ident(f.name())
                }
            })
            .collect();
        self.ctx
            .register_table(name, df.select(columns)?.into_view())?;
        Ok(())
    }

    async fn register_listing(
        &self,
        name: &str,
        url: &str,
        format: FileFormat,
        schema: Option<SchemaRef>,
        columns: &[(String, DataType)],
    ) -> Result<(), QueryError> {
        let options = listing_options(format, columns);
        self.ctx
            .register_listing_table(name, url, options, schema, None)
            .await?;
        Ok(())
    }

    /// Runs a query and returns its rows.
    pub async fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
        Ok(self.ctx.sql(sql).await?.collect().await?)
    }

    /// Runs a query whose `$name` placeholders are bound to typed values: run values reach the
    /// query as parameters, never pasted into its text, so no value can change what it means.
    pub async fn sql_with_params(
        &self,
        sql: &str,
        params: &[(String, QueryParam)],
    ) -> Result<Vec<RecordBatch>, QueryError> {
        Ok(self.bound(sql, params).await?.collect().await?)
    }

    /// [`QueryEngine::sql_with_params`] as a stream of batches, for results too big to hold:
    /// batches come as the query makes them.
    pub async fn sql_stream_with_params(
        &self,
        sql: &str,
        params: &[(String, QueryParam)],
    ) -> Result<datafusion::execution::SendableRecordBatchStream, QueryError> {
        Ok(self.bound(sql, params).await?.execute_stream().await?)
    }

    async fn bound(
        &self,
        sql: &str,
        params: &[(String, QueryParam)],
    ) -> Result<datafusion::dataframe::DataFrame, QueryError> {
        let df = self.ctx.sql(sql).await?;
        let used: Vec<(String, ScalarValue)> = params
            .iter()
            .filter(|(name, _)| mentions(sql, name))
            .map(|(name, value)| (name.clone(), value.to_scalar()))
            .collect();
        Ok(if used.is_empty() {
            df
        } else {
            df.with_param_values(ParamValues::from(used))?
        })
    }

    /// Runs a query and reports its physical plan and what it read: the files left after
    /// partition pruning, bytes fetched and row groups pruned.
    pub async fn explain(
        &self,
        sql: &str,
    ) -> Result<(Vec<RecordBatch>, ExplainReport), QueryError> {
        let df = self.ctx.sql(sql).await?;
        let plan = df.create_physical_plan().await?;
        let batches = datafusion::physical_plan::collect(plan.clone(), self.ctx.task_ctx()).await?;
        let mut report = ExplainReport {
            plan: String::new(),
            files: Vec::new(),
            bytes_scanned: 0,
            row_groups_pruned: 0,
            rows: batches.iter().map(|b| b.num_rows() as u64).sum(),
        };
        walk(plan.as_ref(), &mut report);
        // Rendered after the run, so the plan shows each operator's metrics.
        report.plan = DisplayableExecutionPlan::with_metrics(plan.as_ref())
            .indent(true)
            .to_string();
        report.files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((batches, report))
    }
}

/// How DataFusion lists and reads a dataset of `format` with these typed partition columns.
fn listing_options(format: FileFormat, columns: &[(String, DataType)]) -> ListingOptions {
    let file_format: Arc<dyn DfFileFormat> = match format {
        FileFormat::Parquet => Arc::new(ParquetFormat::default()),
        FileFormat::Csv => Arc::new(CsvFormat::default().with_has_header(true)),
        FileFormat::JsonLines => Arc::new(JsonFormat::default()),
    };
    ListingOptions::new(file_format)
        .with_file_extension(format!(".{}", format.extension()))
        .with_table_partition_cols(columns.to_vec())
}

/// What listing an object-store prefix found.
#[derive(Debug, Default)]
struct Layout {
    /// Partition column names, outermost first.
    columns: Vec<String>,
    format: Option<FileFormat>,
    /// A partition folder holding part files (for a text dataset's `_schema.json`).
    sample_partition: Option<ObjectPath>,
}

/// Lists every object under `prefix` and works out the partition columns and file format,
/// refusing mixed layouts or formats the way [`QueryEngine::register`] does for folders.
async fn discover(store: &dyn ObjectStore, prefix: &ObjectPath) -> Result<Layout, String> {
    let mut layout = Layout::default();
    let mut seen_columns: Option<Vec<String>> = None;
    let mut objects = store.list(Some(prefix));
    while let Some(meta) = objects.next().await {
        let meta = meta.map_err(|e| e.to_string())?;
        let Some(parts) = meta.location.prefix_match(prefix) else {
            continue;
        };
        let segments: Vec<String> = parts.map(|p| p.as_ref().to_owned()).collect();
        let Some((file, dirs)) = segments.split_last() else {
            continue;
        };
        if segments
            .iter()
            .any(|s| s.starts_with('_') || s.starts_with('.'))
            || !file.starts_with("part-")
        {
            continue;
        }
        let Some(format) = FileFormat::of_path(Path::new(file)) else {
            continue;
        };
        let columns: Vec<String> = dirs
            .iter()
            .map(|d| d.split_once('=').map(|(n, _)| n.to_owned()))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("{} is not under name=value folders", meta.location))?;
        match &seen_columns {
            None => seen_columns = Some(columns),
            Some(cols) if *cols != columns => {
                return Err(format!(
                    "{} does not have the layout {} of the others",
                    meta.location,
                    cols.join("/")
                ));
            }
            Some(_) => {}
        }
        match layout.format {
            None => layout.format = Some(format),
            Some(f) if f != format => {
                return Err(format!(
                    "{} is a {format} file but others are {f}; rewrite it in one format",
                    meta.location
                ));
            }
            Some(_) => {}
        }
        if layout.sample_partition.is_none() {
            let mut dir = prefix.clone();
            for d in dirs {
                dir = dir.join(d.as_str());
            }
            layout.sample_partition = Some(dir);
        }
    }
    layout.columns = seen_columns.unwrap_or_default();
    Ok(layout)
}

fn walk(plan: &dyn ExecutionPlan, report: &mut ExplainReport) {
    if let Some(exec) = plan.downcast_ref::<DataSourceExec>() {
        if let Some(config) = exec.data_source().downcast_ref::<FileScanConfig>() {
            for group in &config.file_groups {
                for file in group.files() {
                    report.files.push(ScannedFile {
                        path: file.object_meta.location.to_string(),
                        bytes: file.object_meta.size,
                    });
                }
            }
        }
        if let Some(metrics) = plan.metrics() {
            for metric in metrics.iter() {
                match metric.value() {
                    MetricValue::Count { name, count } if name == "bytes_scanned" => {
                        report.bytes_scanned += count.value() as u64;
                    }
                    MetricValue::PruningMetrics {
                        name,
                        pruning_metrics,
                    } if name == "row_groups_pruned_statistics" => {
                        report.row_groups_pruned += pruning_metrics.pruned() as u64;
                    }
                    _ => {}
                }
            }
        }
    }
    for child in plan.children() {
        walk(child.as_ref(), report);
    }
}

/// One source file as a stream of batches for DataFusion: each scan reopens it and reads it on
/// a blocking thread, a couple of batches ahead of the query.
#[derive(Debug)]
struct SourceStream {
    path: PathBuf,
    opts: ReadOptions,
    schema: SchemaRef,
    rejects: Arc<Mutex<Vec<Reject>>>,
}

impl datafusion::physical_plan::streaming::PartitionStream for SourceStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(
        &self,
        _ctx: Arc<datafusion::execution::TaskContext>,
    ) -> datafusion::execution::SendableRecordBatchStream {
        use datafusion::error::DataFusionError;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, DataFusionError>>(2);
        let (path, opts, rejects) = (self.path.clone(), self.opts.clone(), self.rejects.clone());
        tokio::task::spawn_blocking(move || {
            let mut reader = match weir_data::open_source(&path, &opts) {
                Ok(reader) => reader,
                Err(e) => {
                    let _ = tx.blocking_send(Err(DataFusionError::External(Box::new(e))));
                    return;
                }
            };
            let keep = |reader: &mut weir_data::SourceReader| {
                let found = reader.take_rejects();
                if !found.is_empty() {
                    rejects
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend(found);
                }
            };
            // Rejects are kept as each batch is read, so a query that stops early (a LIMIT)
            // still keeps those it met.
            while let Some(batch) = reader.next() {
                keep(&mut reader);
                let batch = batch.map_err(|e| DataFusionError::External(Box::new(e)));
                let failed = batch.is_err();
                if tx.blocking_send(batch).is_err() || failed {
                    return;
                }
            }
            keep(&mut reader);
        });
        let batches = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|batch| (batch, rx))
        });
        Box::pin(
            datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                self.schema.clone(),
                batches,
            ),
        )
    }
}
