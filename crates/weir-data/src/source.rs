//! Streaming readers over CSV, JSON lines and Parquet files that yield Arrow record batches and set
//! malformed rows aside as [`Reject`]s (file, 1-based line, raw text, reason) instead of failing.
//!
//! Memory is bounded by the batch size: rows are parsed one at a time into column builders and a
//! batch is emitted every `batch_size` good rows. Rejected rows are kept on the reader until taken
//! with [`SourceReader::take_rejects`].
//!
//! Text formats infer their schema over a sample (the first [`ReadOptions::infer_rows`] rows or
//! [`ReadOptions::infer_bytes`] bytes, whichever ends first; see [`infer`] for the rules): integers
//! widen to floats, and a column is text only when a value really is text. In CSV, the
//! [`ReadOptions::null_values`] tokens (by default empty, `NA`, `N/A`, `NULL`, `null`) are nulls,
//! and `NaN` is a float column's null. A value past the sample that does not fit the inferred type
//! is a [`Reject`] naming its line and column, never a silent null. [`ReadOptions::column_types`]
//! (from a schema file or a DAG file's table) override inference column by column, and
//! [`ReadOptions::schema`] replaces it. CRLF line endings, a byte-order mark and quoted newlines
//! read the same as a clean file.
//!
//! JSON lines (`.jsonl`, `.ndjson`, `.json`) hold one object per line; blank lines are skipped.
//! Both text formats share one typed path: each row becomes one optional text per column, parsed
//! by the column's type, so CSV and JSON accept the same spellings (a JSON string `"42"` fits an
//! `Int64` column). A JSON `null` or missing key is a null; an empty string stays an empty string.
//! Inference over the first `infer_rows` objects takes the union of their keys in first-seen
//! order; a column is `Int64` if every non-null value is an integer that fits an `i64`, else
//! `Float64` if every one is a number, else `Boolean` if every one is a bool, else a date or
//! timestamp if every one is a string of that shape, else `Utf8`, where nested arrays and objects
//! are kept as compact JSON text. JSON numbers pass through `f64`
//! unless they are integers, so write exact decimals as strings for a `Decimal128` column.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanBuilder, Decimal128Builder, Float64Builder, Int32Builder, Int64Builder,
    RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray, make_array,
};
use arrow::compute::kernels::cast_utils::parse_decimal;
use arrow::datatypes::{DataType, Decimal128Type, Field, Schema, SchemaRef, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use jiff::Timestamp;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::DataError;
use crate::window::timestamp_from_unit;

pub mod infer;
mod json;

pub use infer::{ColumnType, parse_schema_text, parse_type, read_schema_file};

/// The schema file a source may keep beside it: `orders.csv` → `orders.schema`. Loads read a
/// source with it when no other schema is named.
pub fn schema_sidecar(source: &Path) -> PathBuf {
    source.with_extension("schema")
}

/// The column types of the schema file beside `source` ([`schema_sidecar`]), or none.
pub fn sidecar_column_types(source: &Path) -> Result<Vec<ColumnType>, DataError> {
    let sidecar = schema_sidecar(source);
    if sidecar.is_file() {
        read_schema_file(&sidecar)
    } else {
        Ok(Vec::new())
    }
}

/// A comma-separated list of null tokens (`--conf null_values=NA,-`), trimmed; an empty
/// list leaves only the empty field a null.
pub fn parse_null_values(list: &str) -> Vec<String> {
    list.split(',')
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The null tokens of CSV files besides the empty field: `NA`, `N/A`, `NULL`, `null`.
pub const DEFAULT_NULL_VALUES: [&str; 4] = ["NA", "N/A", "NULL", "null"];

/// How to read a source file.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// Good rows per emitted batch (default 65 536).
    pub batch_size: usize,
    /// A column to normalize to `Timestamp(Microsecond, "UTC")`: strings with an offset or `Z`
    /// (RFC 3339), or any Arrow/Parquet timestamp. A row whose value is missing or unparseable is
    /// a reject.
    pub time_column: Option<String>,
    /// CSV and JSON lines: the columns instead of inferring them (for CSV, in header order; for
    /// JSON lines, keys not in the schema are ignored). Supported types: Int64, Int32, Float64,
    /// Decimal128, Boolean, Utf8, Date32, Timestamp. A non-nullable column rejects empty CSV
    /// fields and missing or null JSON values. Ignored for Parquet, whose files carry their
    /// schema.
    pub schema: Option<SchemaRef>,
    /// CSV and JSON lines: types of named columns instead of inferring them (from a schema file
    /// or a DAG file's table); the other columns are inferred. Ignored when `schema` is set.
    pub column_types: Vec<ColumnType>,
    /// CSV and JSON lines: rows sampled to infer a schema (default 100 000).
    pub infer_rows: usize,
    /// CSV and JSON lines: bytes sampled to infer a schema, at most (default 64 MiB).
    pub infer_bytes: u64,
    /// CSV: field texts that are nulls besides the empty field (default
    /// [`DEFAULT_NULL_VALUES`]). A null token is a null in every column, text columns included.
    pub null_values: Vec<String>,
    /// CSV: `NaN` is a null in a float column (default true); else it is the float NaN.
    pub nan_is_null: bool,
    /// The zone of timestamps written without an offset (`2026-03-08 01:30:00`): such values
    /// are read as that zone's local time (on a fall-back hour, the earlier instant; in a
    /// spring-forward gap, shifted forward) and become UTC instants. Without it they stay
    /// zone-less `Timestamp(µs)` values, and a time column holding one is a reject.
    pub source_tz: Option<jiff::tz::TimeZone>,
    /// Columns whose values never leave the reader in a reject's raw text (personal data: a
    /// dead-letter queue keeps payloads): each is replaced by `[redacted]`.
    pub redact: Vec<String>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            batch_size: 65_536,
            time_column: None,
            schema: None,
            column_types: Vec::new(),
            infer_rows: 100_000,
            infer_bytes: 64 << 20,
            null_values: DEFAULT_NULL_VALUES.map(String::from).to_vec(),
            nan_is_null: true,
            source_tz: None,
            redact: Vec::new(),
        }
    }
}

/// A row that could not be read, kept for a dead-letter queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// The source file.
    pub file: PathBuf,
    /// CSV: the 1-based line where the record starts (the header is line 1). JSON lines: the
    /// 1-based line (blank lines count). Parquet: the 1-based row number in the file.
    pub line: u64,
    /// CSV and Parquet: the record as one CSV line (fields re-quoted where needed). JSON lines:
    /// the line as read, without its line terminator. Invalid UTF-8 is replaced.
    pub raw: String,
    /// Why it was rejected, naming the column.
    pub reason: String,
}

/// A streaming reader over one source file; see [`open_source`].
pub struct SourceReader {
    path: PathBuf,
    schema: SchemaRef,
    redact: Vec<String>,
    batch_size: usize,
    rejects: Vec<Reject>,
    rows_emitted: u64,
    done: bool,
    inner: Inner,
}

enum Inner {
    Csv(Box<TextState<CsvRows>>),
    Json(Box<TextState<json::JsonRows>>),
    Parquet(ParquetState),
}

/// Opens `path` for streaming; the format comes from the extension: `.csv`, `.parquet` (or
/// `.parq`), or JSON lines (`.jsonl`, `.ndjson`, and `.json`, which is read as JSON lines too).
pub fn open_source(path: &Path, opts: &ReadOptions) -> Result<SourceReader, DataError> {
    if opts.batch_size == 0 {
        return Err(DataError::InvalidOptions {
            what: "read options",
            reason: "batch_size must be at least 1".into(),
        });
    }
    if path.is_dir() {
        return Err(DataError::NotAFile {
            path: path.to_owned(),
        });
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let (schema, inner) = match ext.as_deref() {
        Some("csv") => {
            let (schema, state) = CsvRows::open(path, opts)?;
            (schema, Inner::Csv(Box::new(state)))
        }
        Some("jsonl") | Some("ndjson") | Some("json") => {
            let (schema, state) = json::JsonRows::open(path, opts)?;
            (schema, Inner::Json(Box::new(state)))
        }
        Some("parquet") | Some("parq") => {
            let (schema, state) = ParquetState::open(path, opts)?;
            (schema, Inner::Parquet(state))
        }
        _ => {
            return Err(DataError::UnsupportedFormat {
                path: path.to_owned(),
            });
        }
    };
    Ok(SourceReader {
        path: path.to_owned(),
        schema,
        redact: opts.redact.clone(),
        batch_size: opts.batch_size,
        rejects: Vec::new(),
        rows_emitted: 0,
        done: false,
        inner,
    })
}

/// `raw` (a CSV record of columns `names`, or a JSON-lines object) with the values of the
/// `redact` columns replaced by `[redacted]`; a line that cannot be split into fields is
/// replaced whole, so nothing of it is kept.
pub fn redact_raw(raw: &str, names: &[String], redact: &[String], json: bool) -> String {
    const MARK: &str = "[redacted]";
    if json {
        return match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw) {
            Ok(mut object) => {
                for column in redact {
                    if let Some(v) = object.get_mut(column) {
                        *v = serde_json::Value::String(MARK.to_owned());
                    }
                }
                serde_json::Value::Object(object).to_string()
            }
            Err(_) => format!(
                "{MARK} (the line is not a JSON object, and the source has redacted columns)"
            ),
        };
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(raw.as_bytes());
    let Some(Ok(record)) = reader.records().next() else {
        return format!(
            "{MARK} (the line could not be split into fields, and the source has redacted columns)"
        );
    };
    let fields: Vec<&str> = record
        .iter()
        .enumerate()
        .map(|(i, f)| {
            // An empty field (a null) says nothing and stays a null on a replay.
            if !f.is_empty() && names.get(i).is_some_and(|n| redact.contains(n)) {
                MARK
            } else {
                f
            }
        })
        .collect();
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    if w.write_record(&fields).is_err() {
        return MARK.to_owned();
    }
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .trim_end_matches('\n')
        .to_owned()
}

/// Payloads that [`read_payloads`] read: the rows, and per payload whether it made one.
#[derive(Debug)]
pub struct ReadPayloads {
    /// One row per payload that read, in payload order.
    pub batch: RecordBatch,
    /// The index of the payload each row of `batch` came from.
    pub rows: Vec<usize>,
    /// Payloads that did not read: index and why.
    pub failed: Vec<(usize, String)>,
}

/// Reads payloads a dead-letter queue keeps (one record each: a CSV line, or for a JSON-lines
/// `source` a JSON line) as rows of `schema` — the schema the source's reader has — with the
/// same parser and rules (`opts`) a load of `source` uses. A payload that is empty or holds
/// more than one record fails by itself.
pub fn read_payloads(
    source: &Path,
    schema: &SchemaRef,
    payloads: &[&str],
    opts: &ReadOptions,
) -> Result<ReadPayloads, DataError> {
    let json = matches!(
        source
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("jsonl" | "ndjson" | "json")
    );
    let mut failed = Vec::new();
    let mut text = String::new();
    if !json {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(schema.fields().iter().map(|f| f.name().as_str()))
            .map_err(|e| DataError::Internal(format!("writing a payload header: {e}")))?;
        let header = w
            .into_inner()
            .map_err(|e| DataError::Internal(format!("writing a payload header: {e}")))?;
        text.push_str(&String::from_utf8_lossy(&header));
    }
    // The line each kept payload starts at, and its index.
    let mut starts: Vec<(u64, usize)> = Vec::new();
    let mut line = if json { 1u64 } else { 2 };
    for (i, payload) in payloads.iter().enumerate() {
        let payload = payload.trim_matches(['\r', '\n']);
        let records = if payload.trim().is_empty() {
            0
        } else if json {
            payload.lines().filter(|l| !l.trim().is_empty()).count()
        } else {
            csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(payload.as_bytes())
                .byte_records()
                .count()
        };
        if records != 1 {
            failed.push((
                i,
                if records == 0 {
                    "the payload is empty; correct it with one record".to_owned()
                } else {
                    format!("the payload holds {records} records; a payload is one record")
                },
            ));
            continue;
        }
        starts.push((line, i));
        line += payload.matches('\n').count() as u64 + 1;
        text.push_str(payload);
        text.push('\n');
    }
    let tmp = std::env::temp_dir().join(format!(
        "weir-payloads-{}-{}.{}",
        std::process::id(),
        PAYLOAD_FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        if json { "jsonl" } else { "csv" }
    ));
    std::fs::write(&tmp, text.as_bytes()).map_err(|e| DataError::io("write", &tmp, e))?;
    let read = (|| {
        let opts = ReadOptions {
            schema: Some(schema.clone()),
            column_types: Vec::new(),
            ..opts.clone()
        };
        let mut reader = open_source(&tmp, &opts)?;
        let batches = reader.collect_batches()?;
        let batch = arrow::compute::concat_batches(&reader.schema(), &batches)
            .map_err(|e| DataError::arrow("reading payloads", e))?;
        Ok::<_, DataError>((batch, reader.take_rejects()))
    })();
    let _ = std::fs::remove_file(&tmp);
    let (batch, rejects) = read?;
    let mut rejected = std::collections::BTreeMap::new();
    for r in rejects {
        if let Ok(at) = starts.binary_search_by_key(&r.line, |(l, _)| *l) {
            rejected.insert(starts[at].1, r.reason);
        }
    }
    let rows: Vec<usize> = starts
        .iter()
        .map(|(_, i)| *i)
        .filter(|i| !rejected.contains_key(i))
        .collect();
    if rows.len() != batch.num_rows() {
        return Err(DataError::Internal(format!(
            "{} payloads read into {} rows",
            rows.len(),
            batch.num_rows()
        )));
    }
    failed.extend(rejected);
    failed.sort();
    Ok(ReadPayloads {
        batch,
        rows,
        failed,
    })
}

static PAYLOAD_FILES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl SourceReader {
    /// The schema of every emitted batch (the time column, if any, is `Timestamp(µs, "UTC")`).
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The rows rejected so far (and not yet taken).
    pub fn rejects(&self) -> &[Reject] {
        &self.rejects
    }

    /// Takes the rows rejected so far, leaving the reader's list empty.
    pub fn take_rejects(&mut self) -> Vec<Reject> {
        std::mem::take(&mut self.rejects)
    }

    /// Good rows emitted in batches so far.
    pub fn rows_emitted(&self) -> u64 {
        self.rows_emitted
    }

    /// Where the next record starts, between the batches emitted so far and the rest; `None`
    /// for Parquet (its reader does not resume by position).
    pub fn position(&self) -> Option<SourcePosition> {
        match &self.inner {
            Inner::Csv(state) => Some(state.rows.position()),
            Inner::Json(state) => Some(state.rows.position()),
            Inner::Parquet(_) => None,
        }
    }

    /// Continues from `at`, a [`SourceReader::position`] of a reader of the same file with the
    /// same options: the batches and rejects are those a reader that never stopped would give
    /// from there, with the same line numbers.
    pub fn seek(&mut self, at: SourcePosition) -> Result<(), DataError> {
        let size = std::fs::metadata(&self.path)
            .map_err(|e| DataError::io("stat", &self.path, e))?
            .len();
        if at.byte > size {
            return Err(DataError::InvalidOptions {
                what: "resume position",
                reason: format!(
                    "byte {} is past the end of {} ({size} bytes)",
                    at.byte,
                    self.path.display()
                ),
            });
        }
        match &mut self.inner {
            Inner::Csv(state) => state.rows.seek(&self.path, at)?,
            Inner::Json(state) => state.rows.seek(&self.path, at)?,
            Inner::Parquet(_) => {
                return Err(DataError::InvalidOptions {
                    what: "resume position",
                    reason: format!(
                        "{} is Parquet, which resumes by row group, not by position",
                        self.path.display()
                    ),
                });
            }
        }
        self.done = false;
        Ok(())
    }

    /// Reads the whole source into memory (for small files and tests).
    pub fn collect_batches(&mut self) -> Result<Vec<RecordBatch>, DataError> {
        self.by_ref().collect()
    }
}

impl Iterator for SourceReader {
    type Item = Result<RecordBatch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let before = self.rejects.len();
        let result = self.next_inner();
        if !self.redact.is_empty() {
            let json = matches!(self.inner, Inner::Json(_));
            let names: Vec<String> = self
                .schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            for r in &mut self.rejects[before..] {
                r.raw = redact_raw(&r.raw, &names, &self.redact, json);
            }
        }
        result
    }
}

impl SourceReader {
    fn next_inner(&mut self) -> Option<Result<RecordBatch, DataError>> {
        let result = match &mut self.inner {
            Inner::Csv(state) => {
                state.next_batch(&self.path, &self.schema, self.batch_size, &mut self.rejects)
            }
            Inner::Json(state) => {
                state.next_batch(&self.path, &self.schema, self.batch_size, &mut self.rejects)
            }
            Inner::Parquet(state) => state.next_batch(&self.path, &self.schema, &mut self.rejects),
        };
        match result {
            Ok(Some(batch)) => {
                self.rows_emitted += batch.num_rows() as u64;
                Some(Ok(batch))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Text formats (CSV and JSON lines): typed columns built from one text per field

/// How one column of a text format is parsed and built.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Int64,
    Int32,
    Float64,
    Decimal128(u8, i8),
    Boolean,
    Utf8,
    Date32,
    /// The unit, and whether the column holds UTC instants (else zone-less wall times).
    Timestamp(TimeUnit, bool),
}

impl Kind {
    fn of(data_type: &DataType) -> Option<Kind> {
        Some(match data_type {
            DataType::Int64 => Kind::Int64,
            DataType::Int32 => Kind::Int32,
            DataType::Float64 => Kind::Float64,
            DataType::Decimal128(p, s) => Kind::Decimal128(*p, *s),
            DataType::Boolean => Kind::Boolean,
            DataType::Utf8 => Kind::Utf8,
            DataType::Date32 => Kind::Date32,
            DataType::Timestamp(unit, tz) => Kind::Timestamp(*unit, tz.is_some()),
            _ => return None,
        })
    }
}

enum Builder {
    I64(Int64Builder),
    I32(Int32Builder),
    F64(Float64Builder),
    I128(Decimal128Builder),
    Bool(BooleanBuilder),
    Str(StringBuilder),
}

impl Builder {
    fn new(kind: Kind, capacity: usize) -> Builder {
        match kind {
            Kind::Int64 | Kind::Timestamp(..) => {
                Builder::I64(Int64Builder::with_capacity(capacity))
            }
            Kind::Int32 | Kind::Date32 => Builder::I32(Int32Builder::with_capacity(capacity)),
            Kind::Float64 => Builder::F64(Float64Builder::with_capacity(capacity)),
            Kind::Decimal128(..) => Builder::I128(Decimal128Builder::with_capacity(capacity)),
            Kind::Boolean => Builder::Bool(BooleanBuilder::with_capacity(capacity)),
            Kind::Utf8 => Builder::Str(StringBuilder::with_capacity(capacity, capacity * 16)),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::I64(b) => Arc::new(b.finish()),
            Builder::I32(b) => Arc::new(b.finish()),
            Builder::F64(b) => Arc::new(b.finish()),
            Builder::I128(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Str(b) => Arc::new(b.finish()),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Cell {
    Null,
    I64(i64),
    I32(i32),
    F64(f64),
    I128(i128),
    Bool(bool),
    Str,
}

/// One row of a text format as seen by [`Columns`]: one optional text per column.
trait TextRow {
    /// What a null looks like in this format, for the "required" reject reason.
    const NULL: &'static str;

    /// Column `i`'s text, `Ok(None)` for a null, or why the field cannot be read as text.
    fn field(&self, i: usize) -> Result<Option<&str>, &'static str>;
}

/// The typed side of a text format: the columns' kinds and builders, and the cells of the row
/// being parsed. A row is parsed completely before any of it is appended, so a rejected row
/// leaves the builders untouched.
struct Columns {
    kinds: Vec<Kind>,
    nullable: Vec<bool>,
    names: Vec<String>,
    builders: Vec<Builder>,
    cells: Vec<Cell>,
    rules: ParseRules,
}

/// What parsing a text value depends on besides the column's type.
#[derive(Clone, Debug)]
struct ParseRules {
    /// The zone of timestamps without an offset in an instant column.
    source_tz: Option<jiff::tz::TimeZone>,
    /// `NaN` in a float column is a null.
    nan_is_null: bool,
}

impl Columns {
    /// Columns typed by `base` (an explicit or inferred schema), with the time column, if any,
    /// turned into a required `Timestamp(µs, "UTC")`. Also returns the schema of the batches.
    fn new(
        path: &Path,
        base: &Schema,
        opts: &ReadOptions,
    ) -> Result<(SchemaRef, Columns), DataError> {
        let names: Vec<String> = base.fields().iter().map(|f| f.name().clone()).collect();
        let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
        if let Some(time) = &opts.time_column {
            let i =
                names
                    .iter()
                    .position(|n| n == time)
                    .ok_or_else(|| DataError::MissingColumn {
                        column: time.clone(),
                        place: path.display().to_string(),
                        available: names.clone(),
                    })?;
            fields[i] = Field::new(time, crate::utc_micros_type(), false);
        }
        let mut kinds = Vec::with_capacity(fields.len());
        for f in &fields {
            kinds.push(
                Kind::of(f.data_type()).ok_or_else(|| DataError::ColumnType {
                    column: f.name().clone(),
                    place: path.display().to_string(),
                    found: f.data_type().to_string(),
                    expected: format!("a column type: {}", infer::TYPE_NAMES),
                })?,
            );
        }
        let nullable = fields.iter().map(|f| f.is_nullable()).collect();
        let schema = Arc::new(Schema::new_with_metadata(fields, base.metadata().clone()));
        let capacity = opts.batch_size.min(8192);
        let builders = kinds.iter().map(|k| Builder::new(*k, capacity)).collect();
        let cells = vec![Cell::Null; kinds.len()];
        let rules = ParseRules {
            source_tz: opts.source_tz.clone(),
            nan_is_null: opts.nan_is_null,
        };
        Ok((
            schema,
            Columns {
                kinds,
                nullable,
                names,
                builders,
                cells,
                rules,
            },
        ))
    }

    fn len(&self) -> usize {
        self.kinds.len()
    }

    /// Parses `row` and appends it to the builders, or says why it is rejected.
    fn push_row(&mut self, row: &impl TextRow) -> Result<(), String> {
        self.parse_row(row)?;
        self.append_row(row);
        Ok(())
    }

    /// Parses `row` into `self.cells`, or says why it is rejected.
    fn parse_row<R: TextRow>(&mut self, row: &R) -> Result<(), String> {
        for i in 0..self.kinds.len() {
            let name = &self.names[i];
            let mut text = row
                .field(i)
                .map_err(|why| format!("column {name:?}: {why}"))?;
            if self.rules.nan_is_null
                && matches!(self.kinds[i], Kind::Float64)
                && text == Some("NaN")
            {
                text = None;
            }
            self.cells[i] = match text {
                None if !self.nullable[i] => {
                    return Err(format!(
                        "column {name:?}: the value is {} but required",
                        R::NULL
                    ));
                }
                None => Cell::Null,
                Some(text) => parse_cell(self.kinds[i], text, &self.rules)
                    .map_err(|why| format!("column {name:?}: {text:?} {why}"))?,
            };
        }
        Ok(())
    }

    fn append_row(&mut self, row: &impl TextRow) {
        for (i, b) in self.builders.iter_mut().enumerate() {
            match (b, self.cells[i]) {
                (Builder::I64(b), Cell::I64(v)) => b.append_value(v),
                (Builder::I64(b), _) => b.append_null(),
                (Builder::I32(b), Cell::I32(v)) => b.append_value(v),
                (Builder::I32(b), _) => b.append_null(),
                (Builder::F64(b), Cell::F64(v)) => b.append_value(v),
                (Builder::F64(b), _) => b.append_null(),
                (Builder::I128(b), Cell::I128(v)) => b.append_value(v),
                (Builder::I128(b), _) => b.append_null(),
                (Builder::Bool(b), Cell::Bool(v)) => b.append_value(v),
                (Builder::Bool(b), _) => b.append_null(),
                (Builder::Str(b), Cell::Str) => {
                    // Read successfully in parse_row.
                    b.append_value(row.field(i).ok().flatten().unwrap_or_default())
                }
                (Builder::Str(b), _) => b.append_null(),
            }
        }
    }

    /// Emits the rows appended since the last batch.
    fn finish(&mut self, path: &Path, schema: &SchemaRef) -> Result<RecordBatch, DataError> {
        let columns = self
            .builders
            .iter_mut()
            .zip(schema.fields())
            .map(|(b, f)| relabel(b.finish(), f.data_type()))
            .collect::<Result<Vec<_>, _>>()?;
        RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| DataError::arrow(format!("building a batch from {}", path.display()), e))
    }
}

/// What reading one row of a text format did.
enum Next {
    /// The row was parsed and appended to the columns.
    Pushed,
    /// The row was set aside.
    Rejected(Reject),
    /// The file is exhausted.
    End,
}

/// The rows of one text format, each read, parsed into [`Columns`] and appended, or rejected.
trait TextRows {
    fn next_row(&mut self, path: &Path, columns: &mut Columns) -> Result<Next, DataError>;
    /// Where the next record starts.
    fn position(&self) -> SourcePosition;
    /// Continues from `at` (a position [`TextRows::position`] gave for the same file).
    fn seek(&mut self, path: &Path, at: SourcePosition) -> Result<(), DataError>;
}

/// Where a reader is in its source, between two records: what a checkpoint keeps to resume
/// from. `byte` is the offset of the next record, `line` the number of lines before it (so the
/// next record starts on line `line + 1`), `record` the records before it (header included for
/// CSV; rejected ones too).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourcePosition {
    pub byte: u64,
    pub line: u64,
    pub record: u64,
}

/// A text format's rows and the columns they are built into.
struct TextState<R> {
    rows: R,
    columns: Columns,
}

impl<R: TextRows> TextState<R> {
    fn next_batch(
        &mut self,
        path: &Path,
        schema: &SchemaRef,
        batch_size: usize,
        rejects: &mut Vec<Reject>,
    ) -> Result<Option<RecordBatch>, DataError> {
        let mut rows = 0usize;
        while rows < batch_size {
            match self.rows.next_row(path, &mut self.columns)? {
                Next::Pushed => rows += 1,
                Next::Rejected(reject) => rejects.push(reject),
                Next::End => break,
            }
        }
        if rows == 0 {
            return Ok(None);
        }
        self.columns.finish(path, schema).map(Some)
    }
}

fn parse_cell(kind: Kind, text: &str, rules: &ParseRules) -> Result<Cell, &'static str> {
    Ok(match kind {
        Kind::Int64 => Cell::I64(text.parse().map_err(|_| "is not an integer")?),
        Kind::Int32 => Cell::I32(text.parse().map_err(|_| "is not a 32-bit integer")?),
        Kind::Float64 => {
            if text == "NaN" {
                // Reached only when NaN is not a null token.
                return Ok(Cell::F64(f64::NAN));
            }
            if !looks_numeric(text) {
                return Err("is not a number");
            }
            Cell::F64(text.parse().map_err(|_| "is not a number")?)
        }
        Kind::Decimal128(p, s) => Cell::I128(
            parse_decimal::<Decimal128Type>(text, p, s)
                .map_err(|_| "is not a decimal number that fits the column")?,
        ),
        Kind::Boolean => Cell::Bool(match text.to_ascii_lowercase().as_str() {
            "true" | "t" | "1" | "yes" => true,
            "false" | "f" | "0" | "no" => false,
            _ => return Err("is not a boolean"),
        }),
        Kind::Utf8 => Cell::Str,
        Kind::Date32 => {
            if text.len() != 10 {
                return Err("is not a date (YYYY-MM-DD)");
            }
            let date: jiff::civil::Date = text.parse().map_err(|_| "is not a date (YYYY-MM-DD)")?;
            let days = date
                .since(jiff::civil::date(1970, 1, 1))
                .map_err(|_| "is not a date in range")?
                .get_days();
            Cell::I32(days)
        }
        Kind::Timestamp(unit, true) => {
            let ts = parse_timestamp(text, rules.source_tz.as_ref())?;
            Cell::I64(timestamp_in_unit(ts, unit).ok_or("is out of range for the column's unit")?)
        }
        Kind::Timestamp(unit, false) => {
            if text.parse::<Timestamp>().is_ok() {
                return Err("has an offset but the column holds local times without one");
            }
            let wall: jiff::civil::DateTime = text
                .parse()
                .map_err(|_| "is not a date and time (e.g. 2026-03-08 01:30:00)")?;
            let ts = wall
                .to_zoned(jiff::tz::TimeZone::UTC)
                .map_err(|_| "is not a date and time in range")?
                .timestamp();
            Cell::I64(timestamp_in_unit(ts, unit).ok_or("is out of range for the column's unit")?)
        }
    })
}

/// Parses an instant written with an offset or `Z` (RFC 3339 and close relatives), or, when
/// the source declares its zone, a local date and time in that zone.
pub(crate) fn parse_timestamp(
    text: &str,
    source_tz: Option<&jiff::tz::TimeZone>,
) -> Result<Timestamp, &'static str> {
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(ts);
    }
    let Some(tz) = source_tz else {
        return Err(
            "is not a timestamp with an offset or Z (e.g. 2026-03-08T05:00:00Z); declare \
             source_tz to read local times",
        );
    };
    let wall: jiff::civil::DateTime = text
        .parse()
        .map_err(|_| "is not a timestamp (e.g. 2026-03-08 01:30:00 or 2026-03-08T05:00:00Z)")?;
    wall.to_zoned(tz.clone())
        .map(|z| z.timestamp())
        .map_err(|_| "is not a local time in range")
}

fn timestamp_in_unit(ts: Timestamp, unit: TimeUnit) -> Option<i64> {
    match unit {
        TimeUnit::Second => Some(ts.as_second()),
        TimeUnit::Millisecond => Some(ts.as_millisecond()),
        TimeUnit::Microsecond => Some(ts.as_microsecond()),
        TimeUnit::Nanosecond => i64::try_from(ts.as_nanosecond()).ok(),
    }
}

use infer::looks_numeric;

/// Gives an array built with a storage builder its final type (timestamps, dates, decimals).
fn relabel(array: ArrayRef, data_type: &DataType) -> Result<ArrayRef, DataError> {
    if array.data_type() == data_type {
        return Ok(array);
    }
    let data = array
        .to_data()
        .into_builder()
        .data_type(data_type.clone())
        .build()
        .map_err(|e| DataError::arrow(format!("giving a column the type {data_type}"), e))?;
    Ok(make_array(data))
}

// ---------------------------------------------------------------------------------------------
// CSV

struct CsvRows {
    reader: csv::Reader<File>,
    record: csv::ByteRecord,
    nulls: Vec<String>,
}

/// A CSV record as a [`TextRow`]: an empty field or a null token is a null.
struct CsvRow<'a> {
    record: &'a csv::ByteRecord,
    nulls: &'a [String],
}

impl TextRow for CsvRow<'_> {
    const NULL: &'static str = "empty or a null token";

    fn field(&self, i: usize) -> Result<Option<&str>, &'static str> {
        let text =
            std::str::from_utf8(&self.record[i]).map_err(|_| "the value is not valid UTF-8")?;
        Ok((!is_null(text, self.nulls)).then_some(text))
    }
}

fn is_null(text: &str, nulls: &[String]) -> bool {
    text.is_empty() || nulls.iter().any(|n| n == text)
}

fn csv_reader(path: &Path) -> Result<csv::Reader<File>, DataError> {
    let file = File::open(path).map_err(|e| DataError::io("open", path, e))?;
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .buffer_capacity(256 * 1024)
        .from_reader(file))
}

fn csv_error(path: &Path, e: csv::Error) -> DataError {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    match e.into_kind() {
        csv::ErrorKind::Io(io) => DataError::io("read", path, io),
        other => DataError::Csv {
            path: path.to_owned(),
            line,
            reason: format!("{other:?}"),
        },
    }
}

impl CsvRows {
    fn open(path: &Path, opts: &ReadOptions) -> Result<(SchemaRef, TextState<CsvRows>), DataError> {
        let mut reader = csv_reader(path)?;
        let header = reader
            .byte_headers()
            .map_err(|e| csv_error(path, e))?
            .clone();
        let bad_header = |reason: String| DataError::Csv {
            path: path.to_owned(),
            line: 1,
            reason,
        };
        if header.is_empty() {
            return Err(bad_header(
                "the file is empty but a header row is required".into(),
            ));
        }
        let mut names = Vec::with_capacity(header.len());
        for (i, field) in header.iter().enumerate() {
            // A byte-order mark (Excel writes one) is not part of the first name.
            let field = match field.strip_prefix(b"\xEF\xBB\xBF") {
                Some(rest) if i == 0 => rest,
                _ => field,
            };
            let name = std::str::from_utf8(field)
                .map_err(|_| bad_header("the header is not valid UTF-8".into()))?;
            if name.is_empty() {
                return Err(bad_header(format!(
                    "column {} has an empty name",
                    names.len() + 1
                )));
            }
            if names.iter().any(|n| n == name) {
                return Err(bad_header(format!("column name {name:?} appears twice")));
            }
            names.push(name.to_owned());
        }

        let base: Schema = match &opts.schema {
            Some(schema) => {
                let expected: Vec<&str> =
                    schema.fields().iter().map(|f| f.name().as_str()).collect();
                if expected != names {
                    return Err(bad_header(format!(
                        "the header {names:?} does not match the schema's columns {expected:?}"
                    )));
                }
                schema.as_ref().clone()
            }
            None => infer::with_column_types(path, infer_csv_schema(path, &names, opts)?, opts)?,
        };
        let (schema, columns) = Columns::new(path, &base, opts)?;
        let rows = CsvRows {
            reader,
            record: csv::ByteRecord::new(),
            nulls: opts.null_values.clone(),
        };
        Ok((schema, TextState { rows, columns }))
    }
}

impl TextRows for CsvRows {
    fn next_row(&mut self, path: &Path, columns: &mut Columns) -> Result<Next, DataError> {
        let more = self
            .reader
            .read_byte_record(&mut self.record)
            .map_err(|e| csv_error(path, e))?;
        if !more {
            return Ok(Next::End);
        }
        let pushed = if self.record.len() == columns.len() {
            columns.push_row(&CsvRow {
                record: &self.record,
                nulls: &self.nulls,
            })
        } else {
            Err(format!(
                "expected {} fields, found {}",
                columns.len(),
                self.record.len()
            ))
        };
        Ok(match pushed {
            Ok(()) => Next::Pushed,
            Err(reason) => Next::Rejected(Reject {
                file: path.to_owned(),
                line: self.record.position().map(|p| p.line()).unwrap_or(0),
                raw: raw_csv_line(self.record.iter()),
                reason,
            }),
        })
    }

    fn position(&self) -> SourcePosition {
        let p = self.reader.position();
        SourcePosition {
            byte: p.byte(),
            line: p.line().saturating_sub(1),
            record: p.record(),
        }
    }

    fn seek(&mut self, path: &Path, at: SourcePosition) -> Result<(), DataError> {
        let mut p = csv::Position::new();
        p.set_byte(at.byte)
            .set_line(at.line + 1)
            .set_record(at.record);
        self.reader.seek(p).map_err(|e| csv_error(path, e))
    }
}

fn infer_csv_schema(
    path: &Path,
    names: &[String],
    opts: &ReadOptions,
) -> Result<Schema, DataError> {
    let mut seen = vec![infer::Seen::default(); names.len()];
    let mut reader = csv_reader(path)?;
    let mut record = csv::ByteRecord::new();
    let mut sampled = 0;
    while sampled < opts.infer_rows
        && reader.position().byte() < opts.infer_bytes
        && reader
            .read_byte_record(&mut record)
            .map_err(|e| csv_error(path, e))?
    {
        if record.len() != names.len() {
            continue;
        }
        sampled += 1;
        for (s, raw) in seen.iter_mut().zip(record.iter()) {
            match std::str::from_utf8(raw) {
                Ok(text) if is_null(text, &opts.null_values) => {}
                Ok(text) => s.text(text, opts.nan_is_null),
                Err(_) => s.not_text(false, false, false),
            }
        }
    }
    let zoned_naive = opts.source_tz.is_some();
    Ok(Schema::new(
        names
            .iter()
            .zip(&seen)
            .map(|(name, s)| Field::new(name, s.data_type(zoned_naive), true))
            .collect::<Vec<_>>(),
    ))
}

/// Re-encodes fields as one CSV line (quoted where needed, no line terminator).
fn raw_csv_line<'a>(fields: impl Iterator<Item = &'a [u8]>) -> String {
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let record: csv::ByteRecord = fields.collect();
    // Writing to a Vec cannot fail.
    let _ = w.write_byte_record(&record);
    let bytes = w.into_inner().unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    text.strip_suffix('\n').unwrap_or(&text).to_owned()
}

// ---------------------------------------------------------------------------------------------
// Parquet

enum TimeSource {
    None,
    Strings(usize),
    /// The column, its unit, and the zone its wall times are in (a zone-less Parquet timestamp
    /// read with a `source_tz`); `None`: the values are UTC.
    Timestamps(usize, TimeUnit, Option<jiff::tz::TimeZone>),
}

struct ParquetState {
    reader: ParquetRecordBatchReader,
    time: TimeSource,
    next_row: u64,
    source_tz: Option<jiff::tz::TimeZone>,
}

impl ParquetState {
    fn open(path: &Path, opts: &ReadOptions) -> Result<(SchemaRef, ParquetState), DataError> {
        let file = File::open(path).map_err(|e| DataError::io("open", path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| DataError::parquet(path, e))?
            .with_batch_size(opts.batch_size);
        let file_schema = builder.schema().clone();
        let mut fields: Vec<Field> = file_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let mut time = TimeSource::None;
        if let Some(name) = &opts.time_column {
            let i = file_schema
                .index_of(name)
                .map_err(|_| DataError::MissingColumn {
                    column: name.clone(),
                    place: path.display().to_string(),
                    available: fields.iter().map(|f| f.name().clone()).collect(),
                })?;
            time = match fields[i].data_type() {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => TimeSource::Strings(i),
                DataType::Timestamp(unit, zone) => TimeSource::Timestamps(
                    i,
                    *unit,
                    zone.is_none().then(|| opts.source_tz.clone()).flatten(),
                ),
                other => {
                    return Err(DataError::ColumnType {
                        column: name.clone(),
                        place: path.display().to_string(),
                        found: other.to_string(),
                        expected: "a string or timestamp time column".into(),
                    });
                }
            };
            fields[i] = Field::new(name, crate::utc_micros_type(), false);
        }
        let schema = Arc::new(Schema::new_with_metadata(
            fields,
            file_schema.metadata().clone(),
        ));
        let reader = builder.build().map_err(|e| DataError::parquet(path, e))?;
        Ok((
            schema,
            ParquetState {
                reader,
                time,
                next_row: 1,
                source_tz: opts.source_tz.clone(),
            },
        ))
    }

    fn next_batch(
        &mut self,
        path: &Path,
        schema: &SchemaRef,
        rejects: &mut Vec<Reject>,
    ) -> Result<Option<RecordBatch>, DataError> {
        loop {
            let Some(batch) = self.reader.next() else {
                return Ok(None);
            };
            let batch =
                batch.map_err(|e| DataError::arrow(format!("reading {}", path.display()), e))?;
            let first_row = self.next_row;
            self.next_row += batch.num_rows() as u64;
            let (index, micros) = match self.time {
                TimeSource::None => {
                    return RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
                        .map(Some)
                        .map_err(|e| DataError::arrow("relabelling a Parquet batch", e));
                }
                TimeSource::Strings(i) => (
                    i,
                    strings_to_micros(batch.column(i), self.source_tz.as_ref())?,
                ),
                TimeSource::Timestamps(i, unit, ref zone) => {
                    let mut micros = timestamps_to_micros(batch.column(i), unit);
                    if let Some(zone) = zone {
                        for m in &mut micros {
                            if let Ok(v) = *m {
                                *m = wall_micros_in(v, zone);
                            }
                        }
                    }
                    (i, micros)
                }
            };
            let mut keep = Vec::with_capacity(batch.num_rows());
            let mut values = Vec::with_capacity(batch.num_rows());
            for (row, m) in micros.into_iter().enumerate() {
                match m {
                    Ok(v) => {
                        keep.push(true);
                        values.push(v);
                    }
                    Err(reason) => {
                        keep.push(false);
                        values.push(0);
                        rejects.push(Reject {
                            file: path.to_owned(),
                            line: first_row + row as u64,
                            raw: render_row(&batch, row),
                            reason: format!("column {:?}: {reason}", schema.field(index).name()),
                        });
                    }
                }
            }
            let mut columns = batch.columns().to_vec();
            columns[index] =
                crate::window::utc_micros_array(TimestampMicrosecondArray::from(values));
            let all_good = keep.iter().all(|k| *k);
            let out = RecordBatch::try_new(schema.clone(), columns)
                .map_err(|e| DataError::arrow("normalizing the time column", e))?;
            let out = if all_good {
                out
            } else {
                arrow::compute::filter_record_batch(&out, &keep.into())
                    .map_err(|e| DataError::arrow("dropping rejected rows", e))?
            };
            if out.num_rows() > 0 {
                return Ok(Some(out));
            }
        }
    }
}

type Micros = Result<i64, String>;

/// A zone-less timestamp (microseconds of a wall time read as UTC) as the instant that wall
/// time is in `zone`.
fn wall_micros_in(micros: i64, zone: &jiff::tz::TimeZone) -> Micros {
    let wall = Timestamp::from_microsecond(micros)
        .map_err(|_| format!("{micros} is outside the supported time range"))?
        .to_zoned(jiff::tz::TimeZone::UTC)
        .datetime();
    wall.to_zoned(zone.clone())
        .map(|z| z.timestamp().as_microsecond())
        .map_err(|_| format!("{wall} is not a local time in range"))
}

fn strings_to_micros(
    array: &ArrayRef,
    source_tz: Option<&jiff::tz::TimeZone>,
) -> Result<Vec<Micros>, DataError> {
    let array = arrow::compute::cast(array, &DataType::Utf8)
        .map_err(|e| DataError::arrow("reading the time column as text", e))?;
    let strings = array
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| DataError::Internal("a Utf8 cast did not give a StringArray".into()))?;
    Ok(strings
        .iter()
        .map(|v| match v {
            None => Err("the value is missing".to_owned()),
            Some(text) => parse_timestamp(text, source_tz)
                .map(|ts| ts.as_microsecond())
                .map_err(|why| format!("{text:?} {why}")),
        })
        .collect())
}

fn timestamps_to_micros(array: &ArrayRef, unit: TimeUnit) -> Vec<Micros> {
    let ints = array
        .to_data()
        .into_builder()
        .data_type(DataType::Int64)
        .build()
        .map(arrow::array::Int64Array::from);
    let Ok(ints) = ints else {
        return vec![Err("the column is not a 64-bit timestamp".to_owned()); array.len()];
    };
    ints.iter()
        .map(|v| match v {
            None => Err("the value is missing".to_owned()),
            Some(v) => timestamp_from_unit(v, unit)
                .map(|ts| ts.as_microsecond())
                .ok_or_else(|| format!("{v} is outside the supported time range")),
        })
        .collect()
}

/// Renders one row of a batch as a CSV line, for a reject's `raw` text.
fn render_row(batch: &RecordBatch, row: usize) -> String {
    let options = FormatOptions::default();
    let values: Vec<String> = batch
        .columns()
        .iter()
        .map(|col| {
            if col.is_null(row) {
                return String::new();
            }
            if let DataType::Timestamp(unit, _) = col.data_type() {
                let ints = timestamps_to_micros(&col.slice(row, 1), *unit);
                return match &ints[0] {
                    Ok(m) => Timestamp::from_microsecond(*m)
                        .map(|t| t.to_string())
                        .unwrap_or_default(),
                    Err(_) => String::new(),
                };
            }
            ArrayFormatter::try_new(col.as_ref(), &options)
                .map(|f| f.value(row).to_string())
                .unwrap_or_else(|_| "<unprintable>".into())
        })
        .collect();
    raw_csv_line(values.iter().map(|v| v.as_bytes()))
}
