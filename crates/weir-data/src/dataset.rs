//! Datasets of Hive-style Parquet partitions with atomic, idempotent partition commits.
//!
//! A [`PartitionWriter`] writes `part-00000.parquet`, `part-00001.parquet`, … into a private
//! staging folder, `<root>/_staging/<id>/`. [`PartitionWriter::commit`] then swaps it into place:
//!
//! 1. fsync every file and the staging folder ([`PartitionWriter::stage`], which a caller may
//!    also call first, to check the staged files before anything is published);
//! 2. write a commit journal `<root>/_staging/<id>.journal` (atomically, fsynced);
//! 3. rename the old partition folder, if any, to `<root>/_trash/<id>`;
//! 4. rename the staging folder to the partition path, and fsync the parent folders;
//! 5. remove the journal (the commit point), then delete the trash.
//!
//! So a re-run replaces a partition, never appends to it, and a reader never sees a partial or
//! doubled partition (between steps 3 and 4 it briefly sees none). A crash before step 5 is rolled
//! back by [`Dataset::open`], which finds the journal and puts the old partition back; a crash after
//! it keeps the new one. `open` also deletes staging and trash folders left by dead writers. A
//! writer dropped without `commit` (staged or not) deletes its staging folder: nothing of it is
//! ever published.
//!
//! Folder names starting with `_` or `.` are never partitions. Writers of one process are told
//! apart by a registry; other processes by their pid (Linux: `/proc/<pid>`; elsewhere leftovers are
//! removed once a day old). Two processes committing the *same* partition at the same time is not
//! supported; commits within one process are serialized.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde::{Deserialize, Serialize};

use crate::DataError;
use crate::layout::{self, ColumnPlan, DATASET_SCHEMA_FILE, DatasetSchema, SchemaEvolution};
use crate::partition::{PartitionKey, parse_segment};

const STAGING: &str = "_staging";
const TRASH: &str = "_trash";
const JOURNAL_EXT: &str = "journal";
/// Stores the full key beside the data when a value had to be truncated in the path.
const KEY_SIDECAR: &str = "_key.json";
/// Serializes changes of the kept schema (`_dataset.json`) across processes.
const DATASET_SCHEMA_LOCK: &str = "_dataset.lock";
/// Stores the Arrow schema beside the files of a CSV or JSON-lines partition.
const SCHEMA_SIDECAR: &str = "_schema.json";
/// Files a commit carries besides its part files (see [`PartitionWriter::add_marker`]).
pub const MARKER_PREFIX: &str = "_mark-";
/// Leftovers of other processes are removed after this long where liveness cannot be checked.
const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Parquet compression codec of written files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// zstd (level 1): the best ratio for its speed; the default.
    #[default]
    Zstd,
    /// Snappy: fastest to decode, larger files.
    Snappy,
    /// LZ4 (the `LZ4_RAW` codec).
    Lz4,
    /// Gzip (level 6): widely readable, slow to write.
    Gzip,
    /// No compression.
    None,
}

impl Compression {
    pub(crate) fn to_parquet(self) -> parquet::basic::Compression {
        use parquet::basic::Compression as P;
        match self {
            Compression::Zstd => P::ZSTD(ZstdLevel::default()),
            Compression::Snappy => P::SNAPPY,
            Compression::Lz4 => P::LZ4_RAW,
            Compression::Gzip => P::GZIP(GzipLevel::default()),
            Compression::None => P::UNCOMPRESSED,
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "zstd" => Compression::Zstd,
            "snappy" => Compression::Snappy,
            "lz4" => Compression::Lz4,
            "gzip" => Compression::Gzip,
            "none" | "uncompressed" => Compression::None,
            _ => {
                return Err(DataError::InvalidOptions {
                    what: "compression",
                    reason: format!("{s:?} is not a codec; use zstd, snappy, lz4, gzip or none"),
                });
            }
        })
    }
}

/// The file format of a partition's part files.
///
/// Parquet is the default and the only format that carries its own schema, statistics and
/// compression; CSV and JSON lines are for hand-offs to tools that want text. A text partition
/// keeps its Arrow schema beside the data in `_schema.json`, so it reads back with its types
/// (CSV cannot tell an empty string from a null: both read back as null).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileFormat {
    /// Apache Parquet (`part-NNNNN.parquet`).
    #[default]
    Parquet,
    /// CSV with a header row (`part-NNNNN.csv`); timestamps in RFC 3339.
    Csv,
    /// One JSON object per line (`part-NNNNN.jsonl`); nulls are left out of the object.
    JsonLines,
}

impl FileFormat {
    /// Every format.
    pub const ALL: [FileFormat; 3] = [FileFormat::Parquet, FileFormat::Csv, FileFormat::JsonLines];

    /// The extension of part files in this format, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Parquet => "parquet",
            FileFormat::Csv => "csv",
            FileFormat::JsonLines => "jsonl",
        }
    }

    /// The format a file name's extension names, if any (`.parquet`/`.parq`, `.csv`,
    /// `.jsonl`/`.ndjson`/`.json`).
    pub fn of_path(path: &Path) -> Option<FileFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Self::from_name(&ext)
    }

    fn from_name(name: &str) -> Option<FileFormat> {
        match name {
            "parquet" | "parq" => Some(FileFormat::Parquet),
            "csv" => Some(FileFormat::Csv),
            "jsonl" | "ndjson" | "json" => Some(FileFormat::JsonLines),
            _ => None,
        }
    }
}

impl std::fmt::Display for FileFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.extension())
    }
}

impl std::str::FromStr for FileFormat {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(&s.to_ascii_lowercase()).ok_or_else(|| DataError::InvalidOptions {
            what: "file format",
            reason: format!("{s:?} is not a file format; use parquet, csv or jsonl"),
        })
    }
}

/// How a [`PartitionWriter`] writes its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOptions {
    /// The format of the part files (default Parquet).
    pub format: FileFormat,
    /// Parquet only: codec for every column (default zstd).
    pub compression: Compression,
    /// Parquet only: maximum rows per row group (default 65 536). An open writer buffers its current
    /// row group in memory, so this bounds a writer's memory; with many partitions open at once
    /// (one writer each) keep it modest — 1M-row groups made a 35-partition load of 10M rows
    /// peak at 841 MiB against 361 MiB at 64k (weir-bench csv-to-parquet).
    pub row_group_size: usize,
    /// Start a new part file once a file reaches about this many bytes (checked every 8 192
    /// rows); `None` writes one file.
    pub max_file_bytes: Option<u64>,
    /// Repeat the partition columns inside the part files (default false: like Spark and
    /// DuckDB, the path holds them). Fixed by the dataset's first commit.
    pub keep_partition_columns: bool,
    /// Whether a commit may widen a column type the dataset keeps (default strict).
    pub schema_evolution: SchemaEvolution,
    /// Declared types of partition columns the data does not have (say `bucket` as Int32);
    /// by default a column's own type, else by name (see [`crate::layout`]).
    pub partition_types: Vec<arrow::datatypes::Field>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            format: FileFormat::Parquet,
            compression: Compression::Zstd,
            row_group_size: 64 * 1024,
            max_file_bytes: None,
            keep_partition_columns: false,
            schema_evolution: SchemaEvolution::Strict,
            partition_types: Vec::new(),
        }
    }
}

/// What one commit wrote; the store records it as the partition's manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitReport {
    /// The partition's path relative to the dataset root, `/`-separated.
    pub partition: String,
    /// Rows written.
    pub rows: u64,
    /// Bytes of the part files.
    pub bytes: u64,
    /// Number of part files.
    pub files: u32,
    /// SHA-1 (hex) over the files' bytes, in file order.
    pub checksum: String,
    /// The Arrow schema as JSON: `[{"name", "type", "nullable"}, …]`.
    pub schema: String,
}

/// One committed partition, as listed by [`Dataset::partitions`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The path relative to the dataset root, `/`-separated.
    pub partition: String,
    /// The parsed key (full values, even where the path had to truncate them).
    pub key: PartitionKey,
    /// Rows, from the Parquet footers (text formats: counted).
    pub rows: u64,
    /// Bytes of the part files.
    pub bytes: u64,
    /// Number of part files.
    pub files: u32,
    /// The format of the part files.
    pub format: FileFormat,
}

/// Points in the commit protocol where a test can simulate a crash; see
/// [`PartitionWriter::commit_with_failpoint`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failpoint {
    /// Files are written and fsynced; no journal yet. Recovery: the old partition stays.
    BeforeJournal,
    /// The journal is written; nothing renamed. Recovery: the old partition stays.
    AfterJournal,
    /// The old partition was moved to the trash. Recovery: it is moved back.
    AfterTrashRename,
    /// The new partition is in place; the journal is still there. Recovery: rolled back.
    AfterStagingRename,
    /// The journal is removed (the commit point); the trash is not yet deleted. Recovery: the
    /// new partition stays and the trash is deleted.
    AfterJournalRemove,
}

impl Failpoint {
    /// Every failpoint, in protocol order.
    pub const ALL: [Failpoint; 5] = [
        Failpoint::BeforeJournal,
        Failpoint::AfterJournal,
        Failpoint::AfterTrashRename,
        Failpoint::AfterStagingRename,
        Failpoint::AfterJournalRemove,
    ];

    /// Whether a crash here keeps the new partition (else the old one is restored).
    pub fn keeps_new_partition(self) -> bool {
        matches!(self, Failpoint::AfterJournalRemove)
    }
}

/// A folder of Hive-style partitions of Parquet files.
#[derive(Clone, Debug)]
pub struct Dataset {
    root: PathBuf,
}

impl Dataset {
    /// Opens (creating it if needed) the dataset at `root`, rolling back commits interrupted by a
    /// crash and deleting leftovers of dead writers.
    pub fn open(root: &Path) -> Result<Dataset, DataError> {
        fs::create_dir_all(root).map_err(|e| DataError::io("create", root, e))?;
        let dataset = Dataset {
            root: root.to_owned(),
        };
        for dir in [dataset.staging_root(), dataset.trash_root()] {
            fs::create_dir_all(&dir).map_err(|e| DataError::io("create", &dir, e))?;
        }
        let _guard = commit_lock();
        dataset.recover()?;
        Ok(dataset)
    }

    /// The dataset's root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of a partition (whether or not it exists).
    pub fn partition_path(&self, key: &PartitionKey) -> PathBuf {
        self.root.join(key.to_relative_path())
    }

    /// Starts writing a new version of the partition `key`; nothing is visible until
    /// [`PartitionWriter::commit`].
    pub fn writer(
        &self,
        key: &PartitionKey,
        schema: SchemaRef,
        opts: WriteOptions,
    ) -> Result<PartitionWriter, DataError> {
        if key.is_empty() {
            return Err(DataError::InvalidPartitionKey {
                input: String::new(),
                reason: "a partition key needs at least one name=value level".into(),
            });
        }
        if opts.row_group_size == 0 || opts.max_file_bytes == Some(0) {
            return Err(DataError::InvalidOptions {
                what: "write options",
                reason: "row_group_size and max_file_bytes must be at least 1".into(),
            });
        }
        if opts.format != FileFormat::Parquet {
            check_text_types(&schema, opts.format)?;
        }
        let shape = self.shape(key, &schema, &opts)?;
        let id = unique_id();
        let staging = self.staging_root().join(&id);
        live().insert(id.clone());
        if let Err(e) = fs::create_dir_all(&staging) {
            live().remove(&id);
            return Err(DataError::io("create", &staging, e));
        }
        let props = WriterProperties::builder()
            .set_compression(opts.compression.to_parquet())
            .set_max_row_group_row_count(Some(opts.row_group_size))
            .build();
        Ok(PartitionWriter {
            root: self.root.clone(),
            key: key.clone(),
            schema,
            shape,
            opts,
            props,
            id,
            staging,
            current: None,
            sha: Some(sha1_smol::Sha1::new()),
            files: Vec::new(),
            rows: 0,
            bytes: 0,
            finished: false,
            staged: None,
            adopted: None,
        })
    }

    /// The schema the dataset keeps (`_dataset.json`), once a commit has fixed it; datasets
    /// written before weir kept one have none (their files repeat the partition columns).
    pub fn schema(&self) -> Result<Option<DatasetSchema>, DataError> {
        DatasetSchema::read(&self.root)
    }

    /// How a writer of `schema` into partition `key` lays out its files against the schema the
    /// dataset keeps; refuses what does not fit.
    fn shape(
        &self,
        key: &PartitionKey,
        schema: &SchemaRef,
        opts: &WriteOptions,
    ) -> Result<Shape, DataError> {
        let refuse = |reason: String| DataError::DatasetSchema {
            root: self.root.clone(),
            partition: key.to_path_string(),
            reason,
        };
        let kept = self.schema()?;
        let names: Vec<String> = key.parts().iter().map(|(n, _)| n.clone()).collect();
        if let Some(k) = &kept
            && k.partition_names() != names
        {
            return Err(refuse(format!(
                "its layout {} is not the dataset's {}; write partitions of one layout",
                names.join("/"),
                k.partition_names().join("/")
            )));
        }
        let keep = kept.as_ref().map_or(opts.keep_partition_columns, |k| {
            k.files_keep_partition_columns
        });
        if keep && opts.format != FileFormat::Parquet {
            return Err(refuse(format!(
                "{} files cannot repeat the partition columns (their readers take columns by \
                 position); write Parquet, or leave keep_partition_columns off",
                opts.format
            )));
        }
        let checks: Vec<(usize, String)> = key
            .parts()
            .iter()
            .filter_map(|(n, v)| schema.index_of(n).ok().map(|i| (i, v.clone())))
            .collect();
        let partition_columns: Vec<arrow::datatypes::Field> = match &kept {
            Some(k) => k.partition_columns.clone(),
            None => key
                .parts()
                .iter()
                .map(|(n, v)| {
                    let declared = opts.partition_types.iter().find(|f| f.name() == n);
                    let t = match (declared, schema.field_with_name(n)) {
                        (Some(f), _) => f.data_type().clone(),
                        // A text `dt` of dates (`$ds AS dt`) is a date column like any `dt`.
                        (None, Ok(f)) if f.data_type() == &DataType::Utf8 => {
                            layout::conventional_type(n, v)
                        }
                        (None, Ok(f)) => f.data_type().clone(),
                        (None, Err(_)) => layout::conventional_type(n, v),
                    };
                    arrow::datatypes::Field::new(n, t, true)
                })
                .collect(),
        };
        for (field, (name, value)) in partition_columns.iter().zip(key.parts()) {
            // A data column's long value would come back truncated from the path.
            let in_data = schema.field_with_name(name).is_ok();
            check_partition_type(field, name, value, in_data && key.is_truncated())
                .map_err(&refuse)?;
        }
        let data: Vec<usize> = (0..schema.fields().len())
            .filter(|i| !checks.iter().any(|(c, _)| c == i))
            .collect();
        let incoming = schema
            .project(&data)
            .map_err(|e| DataError::arrow("projecting the data columns", e))?;
        let (plans, columns) = match &kept {
            None => (None, data.clone()),
            Some(k) => {
                let plans =
                    layout::plan(&k.columns, &incoming, opts.schema_evolution).map_err(refuse)?;
                let columns = plans.iter().map(|(i, _)| data[*i]).collect();
                (Some(plans.into_iter().map(|(_, p)| p).collect()), columns)
            }
        };
        let mut fields: Vec<arrow::datatypes::Field> = Vec::new();
        for (n, &i) in columns.iter().enumerate() {
            let f = schema.field(i);
            fields.push(match plans.as_ref().map(|p: &Vec<ColumnPlan>| &p[n]) {
                Some(ColumnPlan::Cast(t)) | Some(ColumnPlan::NullsOnly(t)) => {
                    arrow::datatypes::Field::new(f.name(), t.clone(), true)
                }
                _ => f.clone(),
            });
        }
        let mut columns = columns;
        if keep {
            for (i, _) in &checks {
                columns.push(*i);
                fields.push(schema.field(*i).clone());
            }
        }
        Ok(Shape {
            checks,
            columns,
            plans,
            file_schema: Arc::new(arrow::datatypes::Schema::new(fields)),
            partition_columns,
            keep,
        })
    }

    /// Writes `batches` as the whole content of partition `key` and commits.
    pub fn write_partition<'a>(
        &self,
        key: &PartitionKey,
        schema: SchemaRef,
        batches: impl IntoIterator<Item = &'a RecordBatch>,
        opts: WriteOptions,
    ) -> Result<CommitReport, DataError> {
        let mut writer = self.writer(key, schema, opts)?;
        for batch in batches {
            writer.write(batch)?;
        }
        writer.commit()
    }

    /// Starts a new version of partition `key` that keeps every file of the current one
    /// (hard-linked, so nothing is copied) and adds what is written after them: rows added to
    /// a partition (a dead-letter replay) land in a new part file, committed atomically with a
    /// checksum over all the files, as any commit.
    pub fn appender(
        &self,
        key: &PartitionKey,
        schema: SchemaRef,
        opts: WriteOptions,
    ) -> Result<PartitionWriter, DataError> {
        let mut writer = self.writer(key, schema, opts)?;
        let dir = self.partition_path(key);
        if dir.is_dir() {
            writer.adopt(&dir)?;
        }
        Ok(writer)
    }

    /// The committed partition (its relative path) holding a marker file `name` that
    /// [`PartitionWriter::add_marker`] committed, if any.
    pub fn find_marker(&self, name: &str) -> Result<Option<String>, DataError> {
        for part in self.partitions()? {
            if self.root.join(&part.partition).join(name).is_file() {
                return Ok(Some(part.partition));
            }
        }
        Ok(None)
    }

    /// What a commit of partition `key` as it is now would report: rows, bytes, files, the
    /// checksum over its part files and its files' schema (a process that committed it and
    /// died before recording it can record it after all).
    pub fn commit_report(&self, key: &PartitionKey) -> Result<CommitReport, DataError> {
        let dir = self.existing_partition(key)?;
        let (mut rows, mut bytes, mut files) = (0, 0, 0);
        for (path, format) in part_files(&dir)? {
            rows += file_rows(&path, format)?;
            bytes += fs::metadata(&path)
                .map_err(|e| DataError::io("stat", &path, e))?
                .len();
            files += 1;
        }
        let schema = match read_schema_sidecar(&dir) {
            Ok(schema) => schema,
            Err(_) => {
                let first = part_files(&dir)?
                    .into_iter()
                    .next()
                    .map(|(p, _)| p)
                    .ok_or_else(|| DataError::PartitionNotFound {
                        partition: key.to_path_string(),
                        root: self.root.clone(),
                    })?;
                let file = File::open(&first).map_err(|e| DataError::io("open", &first, e))?;
                ParquetRecordBatchReaderBuilder::try_new(file)
                    .map_err(|e| DataError::parquet(&first, e))?
                    .schema()
                    .clone()
            }
        };
        Ok(CommitReport {
            partition: key.to_path_string(),
            rows,
            bytes,
            files,
            checksum: self.checksum(key)?,
            schema: schema_json(&schema),
        })
    }

    /// Every committed partition, sorted by path.
    pub fn partitions(&self) -> Result<Vec<PartitionInfo>, DataError> {
        let mut out = Vec::new();
        self.walk(&self.root, &mut Vec::new(), &mut out)?;
        out.sort_by(|a, b| a.partition.cmp(&b.partition));
        Ok(out)
    }

    /// Reads every row of partition `key`, file by file, with the partition columns restored
    /// from the path (typed as the dataset declares them) and columns in the types the dataset
    /// keeps.
    pub fn read_partition(&self, key: &PartitionKey) -> Result<Vec<RecordBatch>, DataError> {
        // A concurrent commit may swap the folder between listing and opening: retry then.
        let mut attempt = 0;
        let batches = loop {
            match self.read_partition_once(key) {
                Err(e) if e.is_not_found() && attempt < 3 => attempt += 1,
                other => break other?,
            }
        };
        match self.schema()? {
            Some(kept) => batches.iter().map(|b| kept.restore(b, key)).collect(),
            None => Ok(batches),
        }
    }

    /// The Arrow schema of partition `key`'s files (partition columns only if the files repeat
    /// them): from the first Parquet footer, or from the schema kept beside a CSV or JSON-lines
    /// partition.
    pub fn partition_schema(&self, key: &PartitionKey) -> Result<SchemaRef, DataError> {
        let dir = self.existing_partition(key)?;
        match part_files(&dir)?.first() {
            Some((path, FileFormat::Parquet)) => {
                let file = File::open(path).map_err(|e| DataError::io("open", path, e))?;
                let builder = ParquetRecordBatchReaderBuilder::try_new(file)
                    .map_err(|e| DataError::parquet(path, e))?;
                Ok(builder.schema().clone())
            }
            Some(_) => read_schema_sidecar(&dir),
            None => Err(DataError::PartitionNotFound {
                partition: key.to_path_string(),
                root: self.root.clone(),
            }),
        }
    }

    /// The SHA-1 of the partition's part files read back in order: what the commit recorded as
    /// its checksum, if no byte changed since.
    pub fn checksum(&self, key: &PartitionKey) -> Result<String, DataError> {
        let dir = self.partition_path(key);
        if !dir.is_dir() {
            return Err(DataError::PartitionNotFound {
                partition: key.to_path_string(),
                root: self.root.clone(),
            });
        }
        let mut sha = sha1_smol::Sha1::new();
        let mut buf = vec![0u8; 1 << 16];
        for (path, _) in part_files(&dir)? {
            let mut file = File::open(&path).map_err(|e| DataError::io("open", &path, e))?;
            loop {
                let n = std::io::Read::read(&mut file, &mut buf)
                    .map_err(|e| DataError::io("read", &path, e))?;
                if n == 0 {
                    break;
                }
                sha.update(&buf[..n]);
            }
        }
        Ok(sha.digest().to_string())
    }

    /// Rows of partition `key`, from the Parquet footers (no data is read).
    pub fn count_rows(&self, key: &PartitionKey) -> Result<u64, DataError> {
        let dir = self.existing_partition(key)?;
        let mut rows = 0;
        for (file, format) in part_files(&dir)? {
            rows += file_rows(&file, format)?;
        }
        Ok(rows)
    }

    fn read_partition_once(&self, key: &PartitionKey) -> Result<Vec<RecordBatch>, DataError> {
        let dir = self.existing_partition(key)?;
        let mut batches = Vec::new();
        for (path, format) in part_files(&dir)? {
            if format != FileFormat::Parquet {
                batches.extend(read_text_file(&dir, &path)?);
                continue;
            }
            let file = File::open(&path).map_err(|e| DataError::io("open", &path, e))?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .and_then(|b| b.build())
                .map_err(|e| DataError::parquet(&path, e))?;
            for batch in reader {
                batches.push(
                    batch
                        .map_err(|e| DataError::arrow(format!("reading {}", path.display()), e))?,
                );
            }
        }
        Ok(batches)
    }

    fn existing_partition(&self, key: &PartitionKey) -> Result<PathBuf, DataError> {
        let dir = self.partition_path(key);
        if dir.is_dir() {
            Ok(dir)
        } else {
            Err(DataError::PartitionNotFound {
                partition: key.to_path_string(),
                root: self.root.clone(),
            })
        }
    }

    fn staging_root(&self) -> PathBuf {
        self.root.join(STAGING)
    }

    fn trash_root(&self) -> PathBuf {
        self.root.join(TRASH)
    }

    fn walk(
        &self,
        dir: &Path,
        segments: &mut Vec<String>,
        out: &mut Vec<PartitionInfo>,
    ) -> Result<(), DataError> {
        let entries = fs::read_dir(dir).map_err(|e| DataError::io("list", dir, e))?;
        let mut subdirs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| DataError::io("list", dir, e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('_') || name.starts_with('.') || parse_segment(&name).is_err() {
                continue;
            }
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                subdirs.push(name);
            }
        }
        subdirs.sort();
        for name in subdirs {
            let path = dir.join(&name);
            segments.push(name);
            let files = match part_files(&path) {
                Ok(files) => files,
                // Swapped away by a concurrent commit between listing and reading.
                Err(e) if e.is_not_found() => {
                    segments.pop();
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some((_, format)) = files.first() {
                let format = *format;
                let partition = segments.join("/");
                let key = match PartitionKey::parse(&partition) {
                    Ok(key) => key,
                    Err(_) => read_key_sidecar(&path)?,
                };
                let mut info = PartitionInfo {
                    partition,
                    key,
                    rows: 0,
                    bytes: 0,
                    files: files.len() as u32,
                    format,
                };
                for (file, format) in &files {
                    info.rows += file_rows(file, *format)?;
                    info.bytes += fs::metadata(file)
                        .map_err(|e| DataError::io("inspect", file, e))?
                        .len();
                }
                out.push(info);
            }
            self.walk(&path, segments, out)?;
            segments.pop();
        }
        Ok(())
    }

    /// Rolls back interrupted commits and deletes leftovers of dead writers. Holds the commit lock.
    fn recover(&self) -> Result<(), DataError> {
        let staging_root = self.staging_root();
        let trash_root = self.trash_root();
        let mut pending = HashSet::new();
        for (name, path) in list(&staging_root)? {
            if let Some(id) = name.strip_suffix(&format!(".{JOURNAL_EXT}")) {
                if owner_alive(id, &path) {
                    pending.insert(id.to_owned());
                    continue;
                }
                let journal: Journal = serde_json::from_slice(
                    &fs::read(&path).map_err(|e| DataError::io("read", &path, e))?,
                )
                .map_err(|e| DataError::Corrupt {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                self.roll_back(id, &journal, &path)?;
            }
        }
        for (name, path) in list(&staging_root)? {
            let id = name.split('.').next().unwrap_or(&name);
            if pending.contains(id) || owner_alive(id, &path) {
                continue;
            }
            remove_any(&path)?;
        }
        for (name, path) in list(&trash_root)? {
            let id = name.split('.').next().unwrap_or(&name);
            if pending.contains(id) || owner_alive(id, &path) {
                continue;
            }
            remove_any(&path)?;
        }
        sync_dir(&staging_root)?;
        sync_dir(&trash_root)
    }

    /// Undoes an interrupted swap whose journal is at `journal_path`.
    fn roll_back(&self, id: &str, journal: &Journal, journal_path: &Path) -> Result<(), DataError> {
        let partition = self.journal_partition(journal, journal_path)?;
        let staging = self.staging_root().join(id);
        let trash = self.trash_root().join(id);
        let parent = partition.parent().unwrap_or(&self.root).to_owned();
        if !staging.exists() && partition.exists() {
            // Step 4 happened: the folder in place is the new one; move it aside.
            let aside = self.trash_root().join(format!("{id}.new"));
            rename(&partition, &aside)?;
        }
        if trash.exists() && !partition.exists() {
            // Step 3 happened: put the old partition back.
            fs::create_dir_all(&parent).map_err(|e| DataError::io("create", &parent, e))?;
            rename(&trash, &partition)?;
        }
        if parent.exists() {
            sync_dir(&parent)?;
        }
        sync_dir(&self.trash_root())?;
        fs::remove_file(journal_path).map_err(|e| DataError::io("remove", journal_path, e))?;
        sync_dir(&self.staging_root())?;
        if !partition.exists() {
            remove_empty_parents(&partition, &self.root);
        }
        Ok(())
    }

    fn journal_partition(&self, journal: &Journal, path: &Path) -> Result<PathBuf, DataError> {
        let mut out = self.root.clone();
        for segment in journal.partition.split('/') {
            if segment.starts_with('_')
                || segment.starts_with('.')
                || parse_segment(segment).is_err()
            {
                return Err(DataError::Corrupt {
                    path: path.to_owned(),
                    reason: format!("the partition path {:?} is not valid", journal.partition),
                });
            }
            out.push(segment);
        }
        Ok(out)
    }
}

/// Writes one new version of a partition; see [`Dataset::writer`] and the module docs.
pub struct PartitionWriter {
    root: PathBuf,
    key: PartitionKey,
    schema: SchemaRef,
    shape: Shape,
    opts: WriteOptions,
    props: WriterProperties,
    id: String,
    staging: PathBuf,
    current: Option<FileWriter>,
    sha: Option<sha1_smol::Sha1>,
    files: Vec<PathBuf>,
    rows: u64,
    bytes: u64,
    finished: bool,
    /// Set by [`PartitionWriter::stage`]: the files are finished and fsynced, and this is what
    /// the commit will report; no more rows or markers are taken.
    staged: Option<CommitReport>,
    /// An appender's partition files when it took them (see `check_adopted`).
    adopted: Option<Vec<(String, u64)>>,
}

/// How a writer's batches become file batches; see [`Dataset::shape`].
#[derive(Debug)]
struct Shape {
    /// Partition columns the data has, by index in the writer's schema, with the partition's
    /// value: every row must hold it.
    checks: Vec<(usize, String)>,
    /// The writer's columns that go into the files, in file order.
    columns: Vec<usize>,
    /// Per file data column (not the repeated partition columns), how it fits the kept schema;
    /// `None` for the dataset's first commit.
    plans: Option<Vec<ColumnPlan>>,
    file_schema: SchemaRef,
    partition_columns: Vec<arrow::datatypes::Field>,
    /// Whether the files repeat the partition columns.
    keep: bool,
}

impl std::fmt::Debug for PartitionWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionWriter")
            .field("partition", &self.key.to_path_string())
            .field("staging", &self.staging)
            .field("rows", &self.rows)
            .field("files", &self.files.len())
            .finish()
    }
}

impl PartitionWriter {
    /// The schema every batch must have.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The partition this writer writes.
    pub fn key(&self) -> &PartitionKey {
        &self.key
    }

    /// The schema of the part files: the writer's columns without the partition columns
    /// (unless the dataset keeps them in its files), in the types the dataset keeps.
    pub fn file_schema(&self) -> SchemaRef {
        self.shape.file_schema.clone()
    }

    /// The format of the part files.
    pub fn format(&self) -> FileFormat {
        self.opts.format
    }

    /// Whether [`PartitionWriter::stage`] has run.
    pub fn is_staged(&self) -> bool {
        self.staged.is_some()
    }

    /// Appends a batch (column names and types must match the writer's schema).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), DataError> {
        self.refuse_if_staged("rows")?;
        let batch = self.conform(batch)?;
        const CHUNK: usize = 8192;
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = CHUNK.min(batch.num_rows() - offset);
            let chunk = batch.slice(offset, len);
            offset += len;
            if self.current.is_none() {
                self.start_file()?;
            }
            let (Some(writer), Some(path)) = (self.current.as_mut(), self.files.last()) else {
                return Err(DataError::Internal("no open part file".into()));
            };
            writer.write(&chunk, path)?;
            self.rows += len as u64;
            if let Some(max) = self.opts.max_file_bytes
                && writer.size() >= max
            {
                self.finish_file()?;
            }
        }
        Ok(())
    }

    /// Adds a small file to the new version (its name starts with `_`, so readers skip it),
    /// committed with it: a replay names the dead letters it holds, so a replay cut off after
    /// its commit is known to have landed.
    pub fn add_marker(&mut self, name: &str, bytes: &[u8]) -> Result<(), DataError> {
        self.refuse_if_staged("markers")?;
        if !name.starts_with(MARKER_PREFIX) || name.contains(['/', '\\']) {
            return Err(DataError::InvalidOptions {
                what: "partition marker",
                reason: format!("{name:?} is not a marker name: use {MARKER_PREFIX}NAME"),
            });
        }
        write_durably(&self.staging.join(name), bytes)
    }

    /// Takes the part files (and markers) of the committed partition at `dir` into this version,
    /// before anything is written.
    fn adopt(&mut self, dir: &Path) -> Result<(), DataError> {
        self.adopted = Some(file_fingerprint(dir)?);
        let sha = self.sha.get_or_insert_with(sha1_smol::Sha1::new);
        let mut buf = vec![0u8; 1 << 16];
        for (path, format) in part_files(dir)? {
            if format != self.opts.format {
                return Err(DataError::InvalidOptions {
                    what: "write options",
                    reason: format!(
                        "partition {} holds {} files; add to it in that format",
                        self.key.to_path_string(),
                        format.extension()
                    ),
                });
            }
            let to = self.staging.join(part_name(self.files.len(), format));
            if fs::hard_link(&path, &to).is_err() {
                fs::copy(&path, &to).map_err(|e| DataError::io("copy", &path, e))?;
            }
            let mut file = File::open(&to).map_err(|e| DataError::io("open", &to, e))?;
            loop {
                let n = std::io::Read::read(&mut file, &mut buf)
                    .map_err(|e| DataError::io("read", &to, e))?;
                if n == 0 {
                    break;
                }
                sha.update(&buf[..n]);
                self.bytes += n as u64;
            }
            self.rows += file_rows(&to, format)?;
            self.files.push(to);
        }
        for entry in fs::read_dir(dir).map_err(|e| DataError::io("list", dir, e))? {
            let entry = entry.map_err(|e| DataError::io("list", dir, e))?;
            let name = entry.file_name();
            if name.to_str().is_some_and(|n| n.starts_with(MARKER_PREFIX)) {
                let to = self.staging.join(&name);
                if fs::hard_link(entry.path(), &to).is_err() {
                    fs::copy(entry.path(), &to).map_err(|e| DataError::io("copy", &to, e))?;
                }
            }
        }
        Ok(())
    }

    /// Finishes the part files and the sidecars in the staging folder and fsyncs them, without
    /// publishing anything, and returns the part files' paths in order (a partition with no
    /// rows has one empty file). Callers check the staged files (a quality gate) and then
    /// [`PartitionWriter::commit`], or drop the writer to discard them. Calling it again
    /// returns the same paths; the writer takes no rows or markers after it.
    pub fn stage(&mut self) -> Result<Vec<PathBuf>, DataError> {
        if self.staged.is_none() {
            let report = self.stage_files()?;
            self.staged = Some(report);
        }
        Ok(self.files.clone())
    }

    fn refuse_if_staged(&self, what: &str) -> Result<(), DataError> {
        if self.staged.is_some() {
            return Err(DataError::InvalidOptions {
                what: "partition write",
                reason: format!(
                    "partition {} is already staged for its commit and takes no more {what}; \
                     write everything before staging it",
                    self.key.to_path_string()
                ),
            });
        }
        Ok(())
    }

    /// Step 1 of the commit: finish and fsync the part files and the sidecars, and say what
    /// the commit will report.
    fn stage_files(&mut self) -> Result<CommitReport, DataError> {
        if self.files.is_empty() {
            // An empty partition is still a partition: one file with the schema and no rows.
            self.start_file()?;
        }
        self.finish_file()?;
        if self.opts.format != FileFormat::Parquet {
            // Text files do not carry their types: keep the Arrow schema beside them.
            write_durably(
                &self.staging.join(SCHEMA_SIDECAR),
                schema_json(&self.shape.file_schema).as_bytes(),
            )?;
        }
        if self.key.is_truncated() {
            let sidecar = self.staging.join(KEY_SIDECAR);
            let json = serde_json::to_vec(&SidecarKey {
                key: self.key.parts().to_vec(),
            })
            .map_err(|e| DataError::Internal(e.to_string()))?;
            write_durably(&sidecar, &json)?;
        }
        sync_dir(&self.staging)?;
        Ok(CommitReport {
            partition: self.key.to_path_string(),
            rows: self.rows,
            bytes: self.bytes,
            files: self.files.len() as u32,
            checksum: self.sha.take().unwrap_or_default().digest().to_string(),
            schema: schema_json(&self.shape.file_schema),
        })
    }

    /// Atomically replaces the partition with what was written (see the module docs), staging
    /// it first unless [`PartitionWriter::stage`] already did.
    pub fn commit(self) -> Result<CommitReport, DataError> {
        self.commit_inner(None)
    }

    /// Test hook: runs the commit and simulates a crash at `failpoint` (the process state is left
    /// as a crash would leave it). Reopen the dataset to recover.
    #[doc(hidden)]
    pub fn commit_with_failpoint(self, failpoint: Failpoint) -> Result<CommitReport, DataError> {
        self.commit_inner(Some(failpoint))
    }

    /// Discards everything written; same as dropping the writer.
    pub fn abort(self) {}

    fn conform(&self, batch: &RecordBatch) -> Result<RecordBatch, DataError> {
        let got = batch.schema();
        let same = got.fields().len() == self.schema.fields().len()
            && got
                .fields()
                .iter()
                .zip(self.schema.fields())
                .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
        let mismatch = |found: String| DataError::SchemaMismatch {
            partition: self.key.to_path_string(),
            expected: describe_fields(&self.schema),
            found,
        };
        if !same {
            return Err(mismatch(describe_fields(&got)));
        }
        let refuse = |reason: String| DataError::DatasetSchema {
            root: self.root.clone(),
            partition: self.key.to_path_string(),
            reason,
        };
        for (i, value) in &self.shape.checks {
            check_partition_value(self.schema.field(*i).name(), batch.column(*i), value)
                .map_err(refuse)?;
        }
        let mut columns = Vec::with_capacity(self.shape.columns.len());
        for (n, &i) in self.shape.columns.iter().enumerate() {
            let column = batch.column(i);
            columns.push(match self.shape.plans.as_ref().and_then(|p| p.get(n)) {
                Some(plan) => {
                    layout::apply(self.schema.field(i).name(), column, plan).map_err(refuse)?
                }
                None => column.clone(),
            });
        }
        RecordBatch::try_new(self.shape.file_schema.clone(), columns)
            .map_err(|e| mismatch(e.to_string()))
    }

    fn start_file(&mut self) -> Result<(), DataError> {
        let path = self
            .staging
            .join(part_name(self.files.len(), self.opts.format));
        let file = File::create(&path).map_err(|e| DataError::io("create", &path, e))?;
        let sink = HashingFile {
            inner: BufWriter::with_capacity(1 << 20, file),
            sha: self.sha.take().unwrap_or_default(),
            bytes: Arc::new(AtomicU64::new(0)),
        };
        let writer = match self.opts.format {
            FileFormat::Parquet => FileWriter::Parquet(Box::new(
                ArrowWriter::try_new(
                    sink,
                    self.shape.file_schema.clone(),
                    Some(self.props.clone()),
                )
                .map_err(|e| DataError::parquet(&path, e))?,
            )),
            FileFormat::Csv => {
                let bytes = sink.bytes.clone();
                let writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .with_timestamp_tz_format(RFC3339_MICROS.into())
                    .build(sink);
                FileWriter::Csv(Box::new(writer), bytes)
            }
            FileFormat::JsonLines => {
                let bytes = sink.bytes.clone();
                let writer = arrow::json::WriterBuilder::new()
                    .with_timestamp_tz_format(RFC3339_MICROS.into())
                    .build::<_, arrow::json::writer::LineDelimited>(sink);
                FileWriter::Json(Box::new(writer), bytes)
            }
        };
        self.current = Some(writer);
        self.files.push(path);
        Ok(())
    }

    fn finish_file(&mut self) -> Result<(), DataError> {
        let Some(writer) = self.current.take() else {
            return Ok(());
        };
        let path = self
            .files
            .last()
            .cloned()
            .ok_or_else(|| DataError::Internal("an open writer without a file".into()))?;
        let sink = writer.finish(&path)?;
        self.bytes += sink.bytes.load(Ordering::Relaxed);
        self.sha = Some(sink.sha);
        let file = sink
            .inner
            .into_inner()
            .map_err(|e| DataError::io("write", &path, e.into_error()))?;
        file.sync_all()
            .map_err(|e| DataError::io("fsync", &path, e))?;
        Ok(())
    }

    /// Fixes the dataset's schema at its first commit, widens it where this commit's plan
    /// says so, and refuses a commit that no longer fits (another writer fixed or widened the
    /// schema since this one started). Runs under the commit lock, before the journal.
    fn keep_schema(&self) -> Result<(), DataError> {
        let refuse = |reason: String| DataError::DatasetSchema {
            root: self.root.clone(),
            partition: self.key.to_path_string(),
            reason,
        };
        let data_fields: Vec<arrow::datatypes::Field> = self
            .shape
            .file_schema
            .fields()
            .iter()
            .take(
                self.shape.columns.len()
                    - if self.shape.keep {
                        self.shape.checks.len()
                    } else {
                        0
                    },
            )
            .map(|f| f.as_ref().clone())
            .collect();
        let written = arrow::datatypes::Schema::new(data_fields);
        let path = self.root.join(DATASET_SCHEMA_FILE);
        let tmp = self
            .root
            .join(format!("{DATASET_SCHEMA_FILE}.{}.tmp", self.id));
        // The caller holds the dataset's file lock (see `lock_dataset`): other processes
        // commit to the dataset too.
        let Some(kept) = DatasetSchema::read(&self.root)? else {
            let first = DatasetSchema {
                columns: Arc::new(written),
                partition_columns: self.shape.partition_columns.clone(),
                files_keep_partition_columns: self.shape.keep,
            };
            write_file_synced(&tmp, &first.to_json())?;
            rename(&tmp, &path)?;
            return sync_dir(&self.root);
        };
        // Another commit may have fixed or widened the schema since this writer started: its
        // files must still fit exactly (same layout, every column its kept type or a type that
        // the kept one holds exactly); a widening this writer's plan asked for is applied.
        let names: Vec<String> = self.key.parts().iter().map(|(n, _)| n.clone()).collect();
        if kept.partition_names() != names || kept.files_keep_partition_columns != self.shape.keep {
            return Err(refuse(format!(
                "another commit fixed the dataset's layout as {} while this one was written; \
                 write it again",
                kept.partition_names().join("/")
            )));
        }
        let plans =
            layout::plan(&kept.columns, &written, self.opts.schema_evolution).map_err(refuse)?;
        if let Some((_, ColumnPlan::NullsOnly(t))) = plans
            .iter()
            .find(|(_, p)| matches!(p, ColumnPlan::NullsOnly(_)))
        {
            return Err(refuse(format!(
                "another commit fixed a column as {t} while this one wrote text; write it again"
            )));
        }
        if !plans.iter().any(|(_, p)| *p == ColumnPlan::Widen) {
            return Ok(());
        }
        let widened = DatasetSchema {
            columns: Arc::new(layout::widened(&kept.columns, &written, &plans)),
            ..kept
        };
        write_file_synced(&tmp, &widened.to_json())?;
        rename(&tmp, &path)?;
        sync_dir(&self.root)
    }

    /// Takes the dataset's file lock, held from the schema check to the swap: the commit
    /// lock only orders this process's writers, and other processes commit to the dataset
    /// too. Released when the file is dropped (also by a crash).
    fn lock_dataset(&self) -> Result<File, DataError> {
        let lock_path = self.root.join(DATASET_SCHEMA_LOCK);
        let lock = File::create(&lock_path).map_err(|e| DataError::io("create", &lock_path, e))?;
        lock.lock()
            .map_err(|e| DataError::io("lock", &lock_path, e))?;
        Ok(lock)
    }

    /// An appender's partition must still hold the files it took: a commit in between (another
    /// run's) would otherwise be swapped out and lost.
    fn check_adopted(&self) -> Result<(), DataError> {
        let Some(adopted) = &self.adopted else {
            return Ok(());
        };
        let dir = self.root.join(self.key.to_relative_path());
        let now = if dir.is_dir() {
            file_fingerprint(&dir)?
        } else {
            Vec::new()
        };
        if &now != adopted {
            return Err(DataError::PartitionChanged {
                root: self.root.clone(),
                partition: self.key.to_path_string(),
            });
        }
        Ok(())
    }

    fn commit_inner(mut self, failpoint: Option<Failpoint>) -> Result<CommitReport, DataError> {
        let partition_rel = self.key.to_path_string();
        let report = match self.staged.take() {
            Some(report) => report,
            None => self.stage_files()?,
        };

        let crash = |this: &mut PartitionWriter, at: Failpoint| -> Result<(), DataError> {
            if failpoint == Some(at) {
                // Simulate the process dying here: leave the files, forget the writer is alive.
                this.finished = true;
                live().remove(&this.id);
                return Err(DataError::InjectedFailure {
                    failpoint: at,
                    partition: this.key.to_path_string(),
                });
            }
            Ok(())
        };
        crash(&mut self, Failpoint::BeforeJournal)?;

        let _guard = commit_lock();
        let _flock = self.lock_dataset()?;
        self.keep_schema()?;
        self.check_adopted()?;
        let staging_root = self.root.join(STAGING);
        let trash_root = self.root.join(TRASH);
        let partition = self.root.join(self.key.to_relative_path());
        let parent = partition.parent().unwrap_or(&self.root).to_owned();
        let trash = trash_root.join(&self.id);
        let journal_path = staging_root.join(format!("{}.{JOURNAL_EXT}", self.id));
        let had_old = partition.exists();
        let journal = serde_json::to_vec(&Journal {
            partition: partition_rel,
            had_old,
        })
        .map_err(|e| DataError::Internal(e.to_string()))?;
        write_durably(&journal_path, &journal)?;
        sync_dir(&staging_root)?;
        crash(&mut self, Failpoint::AfterJournal)?;

        if had_old {
            fs::create_dir_all(&trash_root).map_err(|e| DataError::io("create", &trash_root, e))?;
            rename(&partition, &trash)?;
        }
        crash(&mut self, Failpoint::AfterTrashRename)?;

        fs::create_dir_all(&parent).map_err(|e| DataError::io("create", &parent, e))?;
        rename(&self.staging, &partition)?;
        sync_dir(&parent)?;
        sync_dir(&trash_root)?;
        sync_dir(&staging_root)?;
        crash(&mut self, Failpoint::AfterStagingRename)?;

        fs::remove_file(&journal_path).map_err(|e| DataError::io("remove", &journal_path, e))?;
        sync_dir(&staging_root)?;
        crash(&mut self, Failpoint::AfterJournalRemove)?;

        if had_old {
            remove_any(&trash)?;
        }
        self.finished = true;
        live().remove(&self.id);
        Ok(report)
    }
}

impl Drop for PartitionWriter {
    fn drop(&mut self) {
        if !self.finished {
            drop(self.current.take());
            let _ = fs::remove_dir_all(&self.staging);
            live().remove(&self.id);
        }
    }
}

/// Timestamps with a zone in text part files: RFC 3339 with microseconds and the offset, which
/// the readers of [`crate::source`] and DataFusion both parse.
const RFC3339_MICROS: &str = "%Y-%m-%dT%H:%M:%S%.6f%:z";

/// One open part file, in the writer's format.
enum FileWriter {
    Parquet(Box<ArrowWriter<HashingFile>>),
    Csv(Box<arrow::csv::Writer<HashingFile>>, Arc<AtomicU64>),
    Json(
        Box<arrow::json::LineDelimitedWriter<HashingFile>>,
        Arc<AtomicU64>,
    ),
}

impl FileWriter {
    fn write(&mut self, batch: &RecordBatch, path: &Path) -> Result<(), DataError> {
        let context = || format!("writing {}", path.display());
        match self {
            FileWriter::Parquet(w) => w.write(batch).map_err(|e| DataError::parquet(path, e)),
            FileWriter::Csv(w, _) => w.write(batch).map_err(|e| DataError::arrow(context(), e)),
            FileWriter::Json(w, _) => w.write(batch).map_err(|e| DataError::arrow(context(), e)),
        }
    }

    /// Bytes of the file so far, including what is buffered for it in memory.
    fn size(&self) -> u64 {
        match self {
            FileWriter::Parquet(w) => (w.bytes_written() + w.in_progress_size()) as u64,
            FileWriter::Csv(_, bytes) | FileWriter::Json(_, bytes) => bytes.load(Ordering::Relaxed),
        }
    }

    /// Writes what is buffered (and the Parquet footer) and hands back the sink.
    fn finish(self, path: &Path) -> Result<HashingFile, DataError> {
        let mut sink = match self {
            FileWriter::Parquet(w) => w.into_inner().map_err(|e| DataError::parquet(path, e))?,
            FileWriter::Csv(w, _) => w.into_inner(),
            FileWriter::Json(mut w, _) => {
                w.finish()
                    .map_err(|e| DataError::arrow(format!("writing {}", path.display()), e))?;
                w.into_inner()
            }
        };
        sink.flush().map_err(|e| DataError::io("write", path, e))?;
        Ok(sink)
    }
}

/// A `Write` that hashes and counts what it writes.
struct HashingFile {
    inner: BufWriter<File>,
    sha: sha1_smol::Sha1,
    bytes: Arc<AtomicU64>,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[derive(Serialize, Deserialize)]
struct Journal {
    partition: String,
    had_old: bool,
}

#[derive(Serialize, Deserialize)]
struct SidecarKey {
    key: Vec<(String, String)>,
}

fn read_key_sidecar(dir: &Path) -> Result<PartitionKey, DataError> {
    let path = dir.join(KEY_SIDECAR);
    let bytes = fs::read(&path).map_err(|e| DataError::io("read", &path, e))?;
    let sidecar: SidecarKey = serde_json::from_slice(&bytes).map_err(|e| DataError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    PartitionKey::new(sidecar.key)
}

/// The part files of a partition folder by name and identity (the inode on Unix, which the
/// appender's hard links share; else the size): what an appender checks is still there when it
/// commits.
fn file_fingerprint(dir: &Path) -> Result<Vec<(String, u64)>, DataError> {
    let mut out = Vec::new();
    for (path, _) in part_files(dir)? {
        let meta = fs::metadata(&path).map_err(|e| DataError::io("stat", &path, e))?;
        #[cfg(unix)]
        let len = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let len = meta.len();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push((name, len));
    }
    Ok(out)
}

fn part_name(index: usize, format: FileFormat) -> String {
    format!("part-{index:05}.{}", format.extension())
}

/// The part files of a partition folder, in numeric order, with their formats.
fn part_files(dir: &Path) -> Result<Vec<(PathBuf, FileFormat)>, DataError> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| DataError::io("list", dir, e))? {
        let entry = entry.map_err(|e| DataError::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((number, ext)) = name.strip_prefix("part-").and_then(|n| n.split_once('.')) else {
            continue;
        };
        let format = FileFormat::ALL.into_iter().find(|f| f.extension() == ext);
        if let (Ok(number), Some(format)) = (number.parse::<u64>(), format) {
            files.push((number, entry.path(), format));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, p, f)| (p, f)).collect())
}

/// Rows of one part file: from the footer for Parquet, counted for text formats.
fn file_rows(path: &Path, format: FileFormat) -> Result<u64, DataError> {
    let file = File::open(path).map_err(|e| DataError::io("open", path, e))?;
    match format {
        FileFormat::Parquet => {
            let reader =
                SerializedFileReader::new(file).map_err(|e| DataError::parquet(path, e))?;
            Ok(reader.metadata().file_metadata().num_rows().max(0) as u64)
        }
        FileFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(true)
                .flexible(true)
                .from_reader(std::io::BufReader::new(file));
            let mut record = csv::ByteRecord::new();
            let mut rows = 0;
            while reader
                .read_byte_record(&mut record)
                .map_err(|e| DataError::Corrupt {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?
            {
                rows += 1;
            }
            Ok(rows)
        }
        FileFormat::JsonLines => {
            let mut rows = 0;
            for line in std::io::BufRead::split(std::io::BufReader::new(file), b'\n') {
                let line = line.map_err(|e| DataError::io("read", path, e))?;
                if !line.trim_ascii().is_empty() {
                    rows += 1;
                }
            }
            Ok(rows)
        }
    }
}

/// Reads a CSV or JSON-lines part file with the schema kept beside it; a row that does not
/// read back means the file was changed behind weir's back.
fn read_text_file(dir: &Path, path: &Path) -> Result<Vec<RecordBatch>, DataError> {
    let schema = read_schema_sidecar(dir)?;
    let opts = crate::ReadOptions {
        schema: Some(schema),
        ..crate::ReadOptions::default()
    };
    let mut reader = crate::open_source(path, &opts)?;
    let batches = reader.collect_batches()?;
    if let Some(reject) = reader.rejects().first() {
        return Err(DataError::Corrupt {
            path: path.to_owned(),
            reason: format!("line {} does not read back: {}", reject.line, reject.reason),
        });
    }
    Ok(batches)
}

/// Refuses columns a CSV or JSON-lines partition could not read back with their type.
fn check_text_types(schema: &SchemaRef, format: FileFormat) -> Result<(), DataError> {
    use arrow::datatypes::DataType as T;
    for field in schema.fields() {
        let ok = matches!(
            field.data_type(),
            T::Int64
                | T::Int32
                | T::Float64
                | T::Decimal128(..)
                | T::Boolean
                | T::Utf8
                | T::Date32
                | T::Timestamp(..)
        );
        if !ok {
            return Err(DataError::ColumnType {
                column: field.name().clone(),
                place: format!("a {format} partition"),
                found: field.data_type().to_string(),
                expected: "one of Int64, Int32, Float64, Decimal128, Boolean, Utf8, Date32, \
                           Timestamp (or write Parquet)"
                    .into(),
            });
        }
    }
    Ok(())
}

/// The Arrow schema kept beside a text partition's files.
fn read_schema_sidecar(dir: &Path) -> Result<SchemaRef, DataError> {
    let path = dir.join(SCHEMA_SIDECAR);
    let bytes = fs::read(&path).map_err(|e| DataError::io("read", &path, e))?;
    parse_schema_json(&bytes).map_err(|reason| DataError::Corrupt { path, reason })
}

/// Parses the schema JSON of [`CommitReport::schema`] (and of the `_schema.json` kept beside
/// CSV and JSON-lines partitions) back into an Arrow schema.
pub fn parse_schema_json(bytes: &[u8]) -> Result<SchemaRef, String> {
    let fields: Vec<SchemaField> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let fields = fields
        .into_iter()
        .map(|f| {
            let data_type = f
                .data_type
                .parse::<arrow::datatypes::DataType>()
                .map_err(|e| format!("column {:?}: {e}", f.name))?;
            Ok(arrow::datatypes::Field::new(f.name, data_type, f.nullable))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Arc::new(arrow::datatypes::Schema::new(fields)))
}

/// One column of [`schema_json`]'s output.
#[derive(Deserialize)]
struct SchemaField {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
    nullable: bool,
}

fn describe_fields(schema: &SchemaRef) -> String {
    let fields: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect();
    format!("[{}]", fields.join(", "))
}

fn schema_json(schema: &SchemaRef) -> String {
    let fields: Vec<serde_json::Value> = schema
        .fields()
        .iter()
        .map(|f| {
            serde_json::json!({
                "name": f.name(),
                "type": f.data_type().to_string(),
                "nullable": f.is_nullable(),
            })
        })
        .collect();
    serde_json::Value::Array(fields).to_string()
}

fn commit_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Ids of writers alive in this process.
fn live() -> MutexGuard<'static, HashSet<String>> {
    static LIVE: std::sync::OnceLock<Mutex<HashSet<String>>> = std::sync::OnceLock::new();
    LIVE.get_or_init(|| Mutex::new(HashSet::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn unique_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{nanos:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether the writer that owns staging/trash entry `id` may still be running.
fn owner_alive(id: &str, path: &Path) -> bool {
    let Some(pid) = id.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
        return false; // Not ours: a stray folder.
    };
    if pid == std::process::id() {
        return live().contains(id);
    }
    if Path::new("/proc/self").exists() {
        return Path::new("/proc").join(pid.to_string()).exists();
    }
    let age = fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok());
    age.is_none_or(|age| age < STALE_AFTER)
}

fn list(dir: &Path) -> Result<Vec<(String, PathBuf)>, DataError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| DataError::io("list", dir, e))? {
        let entry = entry.map_err(|e| DataError::io("list", dir, e))?;
        if let Ok(name) = entry.file_name().into_string() {
            out.push((name, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn rename(from: &Path, to: &Path) -> Result<(), DataError> {
    fs::rename(from, to).map_err(|e| DataError::io("rename", from, e))
}

fn remove_any(path: &Path) -> Result<(), DataError> {
    let result = if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(DataError::io("remove", path, e)),
        _ => Ok(()),
    }
}

/// Removes now-empty parent folders of `path` up to (not including) `root`; best effort.
fn remove_empty_parents(path: &Path, root: &Path) {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) || fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

/// Writes a small file via a temporary name and rename, fsynced.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let tmp = path.with_extension("tmp");
    write_file_synced(&tmp, bytes)?;
    rename(&tmp, path)
}

fn write_file_synced(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let mut file = File::create(path).map_err(|e| DataError::io("create", path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| DataError::io("write", path, e))
}

/// Whether partition `name=value` can be read back as `field` declares it: a typed column's
/// value must parse as its type and may not be Hive's default partition (readers cannot type
/// it), and a value too long for a folder name cannot be restored from the path at all.
fn check_partition_type(
    field: &arrow::datatypes::Field,
    name: &str,
    value: &str,
    truncated: bool,
) -> Result<(), String> {
    if truncated {
        let path_value = PartitionKey::new([(name, value)])
            .map(|k| k.to_path_string())
            .unwrap_or_default();
        if path_value.contains("%%") {
            return Err(format!(
                "the value of {name} is too long for a folder name, so readers could not \
                 restore it from the path; partition by a shorter key (a hash or a code)"
            ));
        }
    }
    if field.data_type() == &DataType::Utf8 {
        return Ok(());
    }
    if value.is_empty() {
        return Err(format!(
            "{name} is null or empty in some rows, but it is a {} partition column and readers \
             cannot type Hive's default partition; fill the column, or partition by a text column",
            field.data_type()
        ));
    }
    let one: arrow::array::ArrayRef = Arc::new(arrow::array::StringArray::from(vec![value]));
    let options = arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    arrow::compute::cast_with_options(&one, field.data_type(), &options).map_err(|_| {
        format!(
            "{name}={value} is not a {} as the dataset declares {name}; write values of its type",
            field.data_type()
        )
    })?;
    Ok(())
}

/// Every row of `column` holds the partition's `value` (Hive's default partition: null or
/// empty), or one sentence saying it does not.
fn check_partition_value(
    name: &str,
    column: &arrow::array::ArrayRef,
    value: &str,
) -> Result<(), String> {
    use arrow::array::Array;
    let text = arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8)
        .map_err(|e| format!("column {name:?} cannot be read as text: {e}"))?;
    let text = text
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .ok_or_else(|| format!("column {name:?} did not cast to text"))?;
    let default = value.is_empty();
    let odd = text.iter().find(|v| match v {
        None => !default,
        Some(v) => {
            if default {
                !v.is_empty()
            } else {
                *v != value
            }
        }
    });
    match odd {
        None => Ok(()),
        Some(v) => Err(format!(
            "column {name:?} holds {} in partition {name}={value}; the files leave the \
             partition column out and readers take it from the path, so every row must hold \
             the partition's value (rename the column, or partition by it)",
            v.map_or("null".to_owned(), |v| format!("{v:?}"))
        )),
    }
}

fn sync_dir(dir: &Path) -> Result<(), DataError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(|e| DataError::io("fsync", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
