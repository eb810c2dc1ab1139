//! `DataError`: every way the data layer can fail, each message one sentence saying what failed,
//! where (file, line, partition) and what to do about it.

use std::path::PathBuf;

/// The error type of weir-data.
///
/// Malformed *rows* are not errors: readers set them aside as [`crate::Reject`]s. These variants
/// are for things that stop a whole operation: unreadable files, bad options (the caller's
/// mistake), and bugs ([`DataError::Internal`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A filesystem operation failed.
    #[error("cannot {action} {path}: {source}; check that the path exists and is writable")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A source path that is a folder.
    #[error("source {path} is a folder, not a file; pass one CSV, JSON-lines or Parquet file")]
    NotAFile { path: PathBuf },

    /// The file extension does not name a format this crate reads.
    #[error(
        "cannot read {path}: unknown file format; use a file ending in .csv, .parquet, .jsonl, .ndjson or .json (JSON lines)"
    )]
    UnsupportedFormat { path: PathBuf },

    /// A CSV file is unusable as a whole (no header, bad header, unreadable bytes).
    #[error(
        "cannot read CSV {path} at line {line}: {reason}; fix the file or pass an explicit schema"
    )]
    Csv {
        path: PathBuf,
        line: u64,
        reason: String,
    },

    /// A JSON lines file is unusable as a whole (no columns to read).
    #[error("cannot read JSON lines {path}: {reason}; fix the file or pass an explicit schema")]
    Json { path: PathBuf, reason: String },

    /// Reading or writing a Parquet file failed.
    #[error("Parquet error in {path}: {source}; check that the file is a complete Parquet file")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },

    /// An Arrow compute kernel or batch construction failed.
    #[error("Arrow error while {context}: {source}; check that the batch matches the schema")]
    Arrow {
        context: String,
        #[source]
        source: arrow::error::ArrowError,
    },

    /// A named column is absent.
    #[error("column {column:?} not found in {place}; available columns are {available:?}")]
    MissingColumn {
        column: String,
        place: String,
        available: Vec<String>,
    },

    /// A column has a type this operation cannot use.
    #[error(
        "column {column:?} in {place} has type {found}, but {expected} is required; cast it or pick another column"
    )]
    ColumnType {
        column: String,
        place: String,
        found: String,
        expected: String,
    },

    /// A column has a null where the operation needs a value.
    #[error("column {column:?} has a null at row {row}; drop or fill null rows before this step")]
    NullValue { column: String, row: usize },

    /// A partition key or path is not valid.
    #[error("invalid partition key {input:?}: {reason}")]
    InvalidPartitionKey { input: String, reason: String },

    /// An option or argument is out of range or inconsistent.
    #[error("invalid {what}: {reason}")]
    InvalidOptions { what: &'static str, reason: String },

    /// A batch written to a partition does not match the writer's schema.
    #[error(
        "batch does not match the schema of partition {partition}: expected {expected}, found {found}; write batches with the writer's schema"
    )]
    SchemaMismatch {
        partition: String,
        expected: String,
        found: String,
    },

    /// What a commit would write does not fit the schema the dataset keeps (a column's type
    /// changed, a column was added or dropped, the partition layout differs), or a partition
    /// column's values disagree with the partition; `reason` says which and what to do.
    #[error("cannot write partition {partition} of the dataset at {}: {reason}", .root.display())]
    DatasetSchema {
        root: PathBuf,
        partition: String,
        reason: String,
    },

    /// Rows were being added to a partition that another commit replaced meanwhile: nothing
    /// was committed, and adding them again (to the new partition) will do.
    #[error(
        "partition {partition} of the dataset at {} changed while rows were being added to it; nothing was committed: add them again",
        .root.display()
    )]
    PartitionChanged { root: PathBuf, partition: String },

    /// The partition asked for does not exist.
    #[error(
        "partition {partition} does not exist under {root}; list partitions to see which exist"
    )]
    PartitionNotFound { partition: String, root: PathBuf },

    /// A commit journal or sidecar file could not be understood.
    #[error("cannot understand {path}: {reason}; move the file aside and reopen the dataset")]
    Corrupt { path: PathBuf, reason: String },

    /// A failure injected by a test through [`crate::Failpoint`].
    #[error(
        "injected failure at {failpoint:?} while committing {partition}; this only happens in tests"
    )]
    InjectedFailure {
        failpoint: crate::Failpoint,
        partition: String,
    },

    /// An object store (S3, a local or shared folder through `object_store`) refused or failed.
    #[error(
        "cannot {action} {location}: {cause}; check the store's address, bucket and credentials"
    )]
    ObjectStore {
        action: &'static str,
        location: String,
        /// Shown in the message, not chained: object_store's errors name their own causes.
        cause: ObjectStoreError,
    },

    /// The metadata store, which holds the commit point of a shared dataset, failed or refused.
    #[error("cannot commit partition {partition} of {dataset}: {reason}")]
    Commit {
        dataset: String,
        partition: String,
        reason: String,
        /// Whether trying again may succeed (the store was busy or unreachable).
        transient: bool,
    },

    /// The metadata store could not say what a shared dataset holds.
    #[error("cannot read the commits of {dataset} from the metadata store: {reason}")]
    CommitStore {
        dataset: String,
        reason: String,
        /// Whether trying again may succeed (the store was busy or unreachable).
        transient: bool,
    },

    /// A bug in weir-data.
    #[error("internal error in weir-data (this is a bug, please report it): {0}")]
    Internal(String),
}

impl weir_core::Transient for DataError {
    /// Only failures of the environment retry: an I/O error of a transient kind (interrupted,
    /// out of space, a network filesystem hiccup) or an injected test failure. A missing
    /// column, a bad option, a malformed or missing file will fail the same way again.
    fn is_transient(&self) -> bool {
        match self {
            DataError::Io { source, .. } => source.is_transient(),
            DataError::Parquet {
                source: parquet::errors::ParquetError::External(e),
                ..
            } => e
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.is_transient()),
            DataError::InjectedFailure { .. } | DataError::PartitionChanged { .. } => true,
            DataError::Commit { transient, .. } | DataError::CommitStore { transient, .. } => {
                *transient
            }
            DataError::ObjectStore { cause, .. } => !matches!(
                &cause.0,
                object_store::Error::NotFound { .. }
                    | object_store::Error::InvalidPath { .. }
                    | object_store::Error::NotSupported { .. }
                    | object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. }
                    | object_store::Error::NotImplemented { .. }
                    | object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
                    | object_store::Error::UnknownConfigurationKey { .. }
            ),
            DataError::NotAFile { .. }
            | DataError::UnsupportedFormat { .. }
            | DataError::Csv { .. }
            | DataError::Json { .. }
            | DataError::Parquet { .. }
            | DataError::Arrow { .. }
            | DataError::MissingColumn { .. }
            | DataError::ColumnType { .. }
            | DataError::NullValue { .. }
            | DataError::InvalidPartitionKey { .. }
            | DataError::InvalidOptions { .. }
            | DataError::SchemaMismatch { .. }
            | DataError::DatasetSchema { .. }
            | DataError::PartitionNotFound { .. }
            | DataError::Corrupt { .. }
            | DataError::Internal(_) => false,
        }
    }
}

/// An `object_store` error, displayed once: its `Display` already names its causes.
#[derive(Debug)]
pub struct ObjectStoreError(pub object_store::Error);

impl std::fmt::Display for ObjectStoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<object_store::Error> for ObjectStoreError {
    fn from(e: object_store::Error) -> Self {
        ObjectStoreError(e)
    }
}

impl DataError {
    /// An I/O error while doing `action` on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub fn arrow(context: impl Into<String>, source: arrow::error::ArrowError) -> Self {
        DataError::Arrow {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn parquet(path: impl Into<PathBuf>, source: parquet::errors::ParquetError) -> Self {
        DataError::Parquet {
            path: path.into(),
            source,
        }
    }

    /// Whether this error is a (possibly wrapped) "file not found".
    pub(crate) fn is_not_found(&self) -> bool {
        match self {
            DataError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            DataError::Parquet {
                source: parquet::errors::ParquetError::External(e),
                ..
            } => e
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound),
            _ => false,
        }
    }
}
