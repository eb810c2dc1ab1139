//! `sql`: a DataFusion query over named datasets, its result committed as a partitioned dataset
//! or returned as rows.
//!
//! Run values reach the query as bound, typed parameters, never pasted into its text:
//! `$data_interval_start`, `$data_interval_end` and `$logical_date` (UTC timestamps), `$ds` (the
//! logical date's calendar date in the run's zone, `YYYY-MM-DD`), `$data_interval_start_ds` and
//! `$data_interval_end_ds` (the interval's bounds as local dates) and every run param by its
//! name (`$region`), typed as declared. Paths in the config may name params: `{param:output}`. A query that mentions a parameter that does not exist fails
//! at once, naming it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use arrow::array::{Array, BooleanArray, StringArray};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use weir_data::{Dataset, PartitionKey, WriteOptions};
use weir_query::{QueryEngine, QueryError, QueryParam};
use weir_runtime::{TaskContext, TaskError, TaskResult};

use crate::{Operator, expand_path, to_output};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sql {
    /// The query. `$name` placeholders are bound to run values (see the module docs).
    pub query: String,
    /// The tables it reads, by name: a dataset folder (a filter on a partition column — `dt`,
    /// `bucket`, … — prunes whole partitions) or a source file. Paths expand `{param:NAME}`,
    /// `{home}` and `{dag_id}`.
    #[serde(default)]
    pub tables: BTreeMap<String, Table>,
    /// What becomes of the result.
    #[serde(default)]
    pub result: SqlResult,
    /// Tables that are upstream tasks' datasets: name in the query → upstream task id, whose
    /// output names the dataset it committed (`load_window`, `partition`, a `sql` dataset).
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// More `$name` values, bound like the run values and winning over one of the same name:
    /// numbers, booleans or text (a DAG file's `{{ item.lo }}` renders to its typed value).
    #[serde(default)]
    pub bind: BTreeMap<String, serde_json::Value>,
    /// Typed values a DAG written in Rust computes itself (an instant), bound likewise.
    #[serde(skip)]
    pub typed: Vec<(String, QueryParam)>,
}

/// The dataset an upstream's output names.
#[derive(Debug, Deserialize)]
struct DatasetOf {
    dataset: Option<PathBuf>,
}

/// One table of a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Table {
    /// A dataset folder weir committed (`"{home}/data/orders"`).
    Dataset(PathBuf),
    /// A source file (CSV, JSON lines or Parquet), streamed the way `load_window` reads it:
    /// `time_column` parsed to a UTC timestamp, unreadable rows kept in the rejects table
    /// (`{ source = "…", time_column = "event_time" }`).
    Source {
        source: PathBuf,
        #[serde(default)]
        time_column: Option<String>,
    },
}

/// Where a query's result goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SqlResult {
    /// The rows are the task's output: a list of objects, column → value, that a mapped task
    /// can `expand` over. More than `max_rows` rows fail the task: big results are datasets.
    Rows {
        #[serde(default = "default_max_rows")]
        max_rows: usize,
    },
    /// The rows are committed to the dataset at `path` (each partition atomically), one partition per value of
    /// the `partition_by` columns (which leave the files and become the folder names); a
    /// re-run replaces the partitions it writes. Without `partition_by`, one `part=all`. The
    /// batches stream into the partitions as the query makes them (a big result is never held
    /// whole) and are committed only once the query has finished.
    Dataset {
        path: PathBuf,
        #[serde(default)]
        partition_by: Vec<String>,
        /// `parquet` (default), `csv` or `jsonl`; `{param:NAME}` takes it from a run param.
        #[serde(default)]
        format: Option<String>,
    },
}

fn default_max_rows() -> usize {
    1000
}

impl Default for SqlResult {
    fn default() -> Self {
        SqlResult::Rows {
            max_rows: default_max_rows(),
        }
    }
}

/// What a query committed (for [`SqlResult::Dataset`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlOutput {
    pub dataset: PathBuf,
    pub rows: u64,
    /// `partition → rows`.
    pub partitions: BTreeMap<String, u64>,
}

impl Sql {
    pub fn new(query: impl Into<String>) -> Self {
        Sql {
            query: query.into(),
            tables: BTreeMap::new(),
            result: SqlResult::default(),
            inputs: BTreeMap::new(),
            bind: BTreeMap::new(),
            typed: Vec::new(),
        }
    }

    /// Binds `$name` to `value` for this query.
    pub fn bind(mut self, name: impl Into<String>, value: QueryParam) -> Self {
        self.typed.push((name.into(), value));
        self
    }

    /// Reads the dataset upstream task `task` committed as table `name`.
    pub fn input(mut self, name: impl Into<String>, task: impl Into<String>) -> Self {
        self.inputs.insert(name.into(), task.into());
        self
    }

    /// Reads the dataset folder `dir` as table `name`.
    pub fn table(mut self, name: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        self.tables.insert(name.into(), Table::Dataset(dir.into()));
        self
    }

    /// Streams the source file `path` as table `name`, its `time_column` (if any) parsed to a
    /// UTC timestamp.
    pub fn source(
        mut self,
        name: impl Into<String>,
        path: impl Into<PathBuf>,
        time_column: Option<&str>,
    ) -> Self {
        self.tables.insert(
            name.into(),
            Table::Source {
                source: path.into(),
                time_column: time_column.map(str::to_owned),
            },
        );
        self
    }

    pub fn into_dataset(mut self, path: impl Into<PathBuf>, partition_by: &[&str]) -> Self {
        self.result = SqlResult::Dataset {
            path: path.into(),
            partition_by: partition_by.iter().map(|s| s.to_string()).collect(),
            format: None,
        };
        self
    }
}

/// A column name from a param, for a query's text: letters, digits and `_` only, quoted. Run
/// values are bound as parameters; a column is an identifier, so it is checked instead, and
/// anything else is refused naming the param.
pub fn identifier(param: &str, name: &str) -> Result<String, TaskError> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(format!("\"{name}\""))
    } else {
        Err(TaskError::fatal(format!(
            "--conf {param}={name} is not a column name (letters, digits and _ only)"
        )))
    }
}

/// The run values a query may use, as typed parameters.
pub(crate) fn run_params(ctx: &TaskContext) -> Vec<(String, QueryParam)> {
    let ts = |t: jiff::Timestamp| QueryParam::TimestampMicros(t.as_microsecond());
    let mut params = vec![
        (
            "data_interval_start".to_owned(),
            ts(ctx.data_interval.start),
        ),
        ("data_interval_end".to_owned(), ts(ctx.data_interval.end)),
        ("logical_date".to_owned(), ts(ctx.logical_date)),
        // The zone the run is cut in, for `local_date(ts, $tz)`.
        (
            weir_runtime::ZONE_PARAM.to_owned(),
            QueryParam::Text(ctx.zone.iana_name().unwrap_or("UTC").to_owned()),
        ),
        (
            "ds".to_owned(),
            QueryParam::Text(
                ctx.logical_date
                    .to_zoned(ctx.zone.clone())
                    .date()
                    .to_string(),
            ),
        ),
        // The interval's first day and the day after its last, in the run's zone: a filter
        // `dt >= $data_interval_start_ds AND dt < $data_interval_end_ds` prunes to its days.
        (
            "data_interval_start_ds".to_owned(),
            QueryParam::Text(local_date(ctx.data_interval.start, ctx)),
        ),
        (
            "data_interval_end_ds".to_owned(),
            QueryParam::Text(local_date(ctx.data_interval.end, ctx)),
        ),
    ];
    for (name, value) in ctx.params.iter() {
        if name == weir_runtime::ZONE_PARAM {
            continue;
        }
        params.push((name.clone(), json_param(value)));
    }
    params
}

/// A JSON value as a query parameter: a number, a boolean or text.
fn json_param(value: &serde_json::Value) -> QueryParam {
    match value {
        serde_json::Value::Bool(b) => QueryParam::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => QueryParam::Int(i),
            None => QueryParam::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => QueryParam::Text(s.clone()),
        other => QueryParam::Text(other.to_string()),
    }
}

fn local_date(t: jiff::Timestamp, ctx: &TaskContext) -> String {
    t.to_zoned(ctx.zone.clone()).date().to_string()
}

/// Placeholders the query uses that no run value fills.
fn unknown_placeholders(query: &str, known: &[(String, QueryParam)]) -> Vec<String> {
    let mut unknown = Vec::new();
    let bytes = query.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let name: String = query[i + 1..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty()
                && !name.chars().all(|c| c.is_ascii_digit())
                && !known.iter().any(|(k, _)| *k == name)
                && !unknown.contains(&name)
            {
                unknown.push(name.clone());
            }
            i += name.len().max(1);
        } else {
            i += 1;
        }
    }
    unknown
}

#[async_trait]
impl Operator for Sql {
    fn name(&self) -> &'static str {
        "sql"
    }

    fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.query.trim().is_empty() {
            problems.push("`query` is empty".to_owned());
        }
        match &self.result {
            SqlResult::Rows { max_rows } if *max_rows == 0 => {
                problems.push("result.max_rows must be at least 1".to_owned())
            }
            SqlResult::Dataset { path, .. } if path.as_os_str().is_empty() => {
                problems.push("result.path is empty; name the dataset folder".to_owned())
            }
            SqlResult::Dataset {
                format: Some(f), ..
            } if !f.contains("{param:") => {
                if let Err(e) = f.parse::<weir_data::FileFormat>() {
                    problems.push(format!("result.format: {e}"));
                }
            }
            _ => {}
        }
        problems
    }

    async fn execute(&self, ctx: TaskContext) -> TaskResult {
        let mut params = run_params(&ctx);
        let mut extra: Vec<(String, QueryParam)> = self
            .bind
            .iter()
            .map(|(name, value)| (name.clone(), json_param(value)))
            .collect();
        extra.extend(self.typed.iter().cloned());
        params.retain(|(name, _)| !extra.iter().any(|(b, _)| b == name));
        params.extend(extra);
        let unknown = unknown_placeholders(&self.query, &params);
        if !unknown.is_empty() {
            return Err(TaskError::fatal(format!(
                "the query uses ${} but the run has no such value; it has {}",
                unknown.join(", $"),
                params
                    .iter()
                    .map(|(n, _)| format!("${n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let engine = QueryEngine::new();
        for (name, task) in &self.inputs {
            let value: serde_json::Value = ctx.input(task).await?;
            // A mapped upstream gives a list of outputs: they must name one dataset.
            let outputs = match value {
                serde_json::Value::Array(items) => items,
                other => vec![other],
            };
            let mut dirs: Vec<PathBuf> = outputs
                .into_iter()
                .filter_map(|o| serde_json::from_value::<DatasetOf>(o).ok()?.dataset)
                .collect();
            dirs.dedup();
            let dir = match dirs.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(TaskError::fatal(format!(
                        "input `{name}`: task `{task}` committed no dataset (its output names none); read a load_window, partition or sql dataset task"
                    )));
                }
                many => {
                    return Err(TaskError::fatal(format!(
                        "input `{name}`: the instances of task `{task}` committed {} different datasets; give it one output folder",
                        many.len()
                    )));
                }
            };
            engine
                .register(name, &dir)
                .await
                .map_err(|e| TaskError::fatal(format!("input `{name}` (task `{task}`): {e}")))?;
        }
        for (name, table) in &self.tables {
            match table {
                Table::Dataset(dir) => {
                    let dir = expand_path(&ctx, dir);
                    engine
                        .register(name, &dir)
                        .await
                        .map_err(|e| TaskError::fatal(format!("table `{name}`: {e}")))?;
                }
                Table::Source {
                    source,
                    time_column,
                } => {
                    let path = crate::load::source_path(&ctx, source).await?;
                    // The run's null tokens and zone apply to every source table; `--conf
                    // schema` names the columns of the run's source, so a table takes its
                    // types from its own `.schema` file only.
                    let mut opts = weir_data::ReadOptions {
                        time_column: time_column.clone(),
                        ..crate::load::read_options(&ctx, &path, &Default::default())?
                    };
                    opts.column_types = weir_data::source::sidecar_column_types(&path)?;
                    engine
                        .register_source(name, &path, opts)
                        .map_err(|e| TaskError::fatal(format!("table `{name}`: {e}")))?;
                }
            }
        }
        // A query DataFusion refuses (a typo, a missing column) refuses again: fatal; an I/O
        // error while it reads is retried. Its batches stream: a big result is never held whole.
        let mut stream = engine
            .sql_stream_with_params(&self.query, &params)
            .await
            .map_err(TaskError::from)?;
        match &self.result {
            SqlResult::Rows { max_rows } => {
                let mut batches = Vec::new();
                let mut rows = 0;
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(|e| TaskError::from(QueryError::from(e)))?;
                    rows += batch.num_rows();
                    if rows > *max_rows {
                        return Err(TaskError::fatal(format!(
                            "the query returned more than result.max_rows = {max_rows} rows; write big results to a dataset (result.kind = \"dataset\")"
                        )));
                    }
                    batches.push(batch);
                }
                // Rows a source table could not read are kept, like a load's.
                let rejects = engine.take_rejects();
                let rows = rows_as_json(&batches)?;
                if !rejects.is_empty() {
                    let mut kept = crate::Loaded::new(Vec::new(), 0, 0);
                    kept.rejects = rejects;
                    crate::load::record_commits(&ctx, std::path::Path::new(""), &kept).await?;
                }
                Ok(serde_json::Value::Array(rows))
            }
            SqlResult::Dataset {
                path,
                partition_by,
                format,
            } => {
                let dir = expand_path(&ctx, path);
                let write = WriteOptions {
                    format: match format {
                        Some(f) => crate::expand_text(&ctx, f).parse()?,
                        None => weir_data::FileFormat::Parquet,
                    },
                    ..WriteOptions::default()
                };
                // The writer runs on a blocking thread, fed a batch at a time; it commits only
                // when told the query finished, so a query failing half-way commits nothing.
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Option<RecordBatch>>(2);
                let (schema, by, target) = (stream.schema(), partition_by.clone(), dir.clone());
                let writer = tokio::task::spawn_blocking(move || {
                    let mut out = PartitionedWriter::new(&target, &schema, &by, write)?;
                    while let Some(message) = rx.blocking_recv() {
                        match message {
                            Some(batch) => out.write(&batch)?,
                            None => return out.commit().map(Some),
                        }
                    }
                    Ok(None)
                });
                let mut failed = None;
                while let Some(batch) = stream.next().await {
                    match batch {
                        Ok(batch) => {
                            if tx.send(Some(batch)).await.is_err() {
                                break; // the writer failed; its error is below
                            }
                        }
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                if failed.is_none() {
                    let _ = tx.send(None).await;
                }
                drop(tx);
                let written = writer
                    .await
                    .map_err(|e| TaskError::fatal(format!("the result writer stopped: {e}")))?;
                if let Some(e) = failed {
                    return Err(TaskError::from(QueryError::from(e)));
                }
                let commits = written?.unwrap_or_default();
                let partitions: BTreeMap<String, u64> = commits
                    .iter()
                    .map(|c| (c.partition.clone(), c.rows))
                    .collect();
                let rows = commits.iter().map(|c| c.rows).sum();
                // The query's input is not one source: the manifests say rows in = rows out,
                // and rows rejected for what its source tables set aside.
                let mut loaded = crate::Loaded::new(commits, rows, 0);
                loaded.rejects = engine.take_rejects();
                crate::load::record_commits(&ctx, &dir, &loaded).await?;
                to_output(&SqlOutput {
                    dataset: dir,
                    rows,
                    partitions,
                })
            }
        }
    }
}

/// Rows as JSON objects, column → value.
pub(crate) fn rows_as_json(batches: &[RecordBatch]) -> Result<Vec<serde_json::Value>, TaskError> {
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    for batch in batches {
        writer
            .write(batch)
            .map_err(|e| TaskError::fatal(format!("the result does not convert to JSON: {e}")))?;
    }
    writer
        .finish()
        .map_err(|e| TaskError::fatal(format!("the result does not convert to JSON: {e}")))?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| TaskError::fatal(format!("the result does not convert to JSON: {e}")))
}

/// Writes a query's batches under a dataset folder, one partition per distinct value of the
/// `by` columns (which leave the files), and commits them all at the end.
struct PartitionedWriter {
    dataset: Dataset,
    by: Vec<String>,
    by_idx: Vec<usize>,
    /// The result's schema: the writer leaves the `by` columns out of the files and records
    /// their types.
    schema: arrow::datatypes::SchemaRef,
    write: WriteOptions,
    writers: BTreeMap<PartitionKey, weir_data::PartitionWriter>,
}

impl PartitionedWriter {
    fn new(
        dir: &std::path::Path,
        schema: &arrow::datatypes::SchemaRef,
        by: &[String],
        write: WriteOptions,
    ) -> Result<Self, weir_data::DataError> {
        use weir_data::DataError;
        let mut by_idx = Vec::new();
        for name in by {
            let idx = schema
                .index_of(name)
                .map_err(|_| DataError::MissingColumn {
                    column: name.clone(),
                    place: "the query result".to_owned(),
                    available: schema.fields().iter().map(|f| f.name().clone()).collect(),
                })?;
            by_idx.push(idx);
        }
        Ok(PartitionedWriter {
            dataset: Dataset::open(dir)?,
            by: by.to_vec(),
            by_idx,
            schema: schema.clone(),
            write,
            writers: BTreeMap::new(),
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), weir_data::DataError> {
        use weir_data::DataError;
        let keys: Vec<StringArray> = self
            .by_idx
            .iter()
            .map(|&i| {
                let text = arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Utf8)
                    .map_err(|e| DataError::arrow("reading a partition column", e))?;
                Ok(text
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("cast to Utf8")
                    .clone())
            })
            .collect::<Result<_, DataError>>()?;
        let mut groups: BTreeMap<Vec<String>, Vec<bool>> = BTreeMap::new();
        for row in 0..batch.num_rows() {
            let values: Vec<String> = keys
                .iter()
                .map(|k| {
                    if k.is_null(row) {
                        // Hive's default partition.
                        String::new()
                    } else {
                        k.value(row).to_owned()
                    }
                })
                .collect();
            groups
                .entry(values)
                .or_insert_with(|| vec![false; batch.num_rows()])[row] = true;
        }
        for (values, mask) in groups {
            let key = if self.by.is_empty() {
                PartitionKey::new([("part", "all")])?
            } else {
                PartitionKey::new(self.by.iter().cloned().zip(values))?
            };
            let rows = arrow::compute::filter_record_batch(batch, &BooleanArray::from(mask))
                .map_err(|e| DataError::arrow("splitting the result", e))?;
            let writer = match self.writers.entry(key) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let w =
                        self.dataset
                            .writer(e.key(), self.schema.clone(), self.write.clone())?;
                    e.insert(w)
                }
            };
            writer.write(&rows)?;
        }
        Ok(())
    }

    fn commit(self) -> Result<Vec<weir_data::CommitReport>, weir_data::DataError> {
        self.writers.into_values().map(|w| w.commit()).collect()
    }
}
