//! Datasets that writers on many hosts commit to: a local folder, a shared folder or an
//! S3-compatible object store, through `object_store`, with the commit point in the metadata
//! store ([`weir_store::DatasetCommitStore`]).
//!
//! [`crate::Dataset`] commits by renaming folders, which is atomic on one file system and
//! nowhere else. A [`SharedDataset`] renames nothing:
//!
//! 1. [`SharedDataset::writer`] opens a *pending* commit in the store, under a lease;
//! 2. each part file gets a name no other writer can pick
//!    (`<partition>/part-<commit id>-<n>.parquet`), and its path is recorded in the store
//!    *before* it is put (one atomic put per file; the record extends the lease);
//! 3. [`SharedWriter::commit`] is the commit point: one store transaction makes the commit the
//!    partition's head by compare-and-set on the head's version, and marks the commit it
//!    replaced *superseded*.
//!
//! Readers read the head's files and nothing else, so a file of a pending, rolled back or
//! superseded commit is never seen — whatever else the folder or bucket holds. A writer that
//! dies leaves a pending commit; once its lease has run out, [`SharedDataset::collect_garbage`]
//! rolls it back and deletes the files the store recorded for it (never by asking whether a
//! process lives), and deletes the files of commits superseded longer ago than a grace period
//! that lets readers finish. The protocol is the same on every store: the tests run it on a local
//! folder and against a real S3-compatible server.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use futures::TryStreamExt;
use jiff::Timestamp;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::properties::WriterProperties;
use weir_store::{
    BeginCommit, CommitBase, CommitFile, CommitMode, CommitState, DatasetCommit,
    DatasetCommitStore, PartitionHead, StoreError,
};

use crate::DataError;
use crate::dataset::Compression;
use crate::error::ObjectStoreError;
use crate::partition::PartitionKey;

/// How long a rolled back commit's record is kept, whatever the grace period, so that a put
/// that was in flight when it was rolled back is deleted by a later collection.
const ROLLED_BACK_MEMORY: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

/// How a [`SharedWriter`] writes.
#[derive(Clone, Debug)]
pub struct SharedWriteOptions {
    /// Parquet codec.
    pub compression: Compression,
    /// Rows per row group.
    pub row_group_size: usize,
    /// A part file is put once its encoded size reaches this many bytes (the writer holds at
    /// most one part in memory).
    pub part_bytes: usize,
    /// How long the writer holds its pending commit without recording a file; a writer that
    /// dies is rolled back once this has passed.
    pub lease: Duration,
    /// Who writes, kept with the commit (`dag/run/task[map]#try`).
    pub owner: String,
}

impl Default for SharedWriteOptions {
    fn default() -> Self {
        SharedWriteOptions {
            compression: Compression::Zstd,
            row_group_size: 122_880,
            part_bytes: 64 << 20,
            lease: Duration::from_secs(600),
            owner: String::from("weir"),
        }
    }
}

/// What [`SharedDataset::collect_garbage`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GarbageReport {
    /// Pending commits whose lease had run out, now rolled back.
    pub rolled_back: Vec<String>,
    /// Files deleted (of rolled back and of superseded commits).
    pub deleted_files: usize,
    /// Commits forgotten by the store once their files were gone.
    pub forgotten: usize,
}

/// Where a dataset's objects live: the store and the dataset's root in it.
#[derive(Clone)]
struct Location {
    url: String,
    objects: Arc<dyn ObjectStore>,
    root: ObjectPath,
}

/// A dataset of Hive-style Parquet partitions that writers on many hosts commit to.
#[derive(Clone)]
pub struct SharedDataset {
    at: Location,
    commits: Arc<dyn DatasetCommitStore>,
}

impl std::fmt::Debug for SharedDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedDataset")
            .field("url", &self.at.url)
            .finish()
    }
}

impl SharedDataset {
    /// Opens the dataset a location names: `s3://bucket/prefix` (configured from the standard
    /// `AWS_*` variables: `AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`), `file:///path`, or a folder path (local or a
    /// shared mount; created if missing).
    pub fn open(location: &str, commits: Arc<dyn DatasetCommitStore>) -> Result<Self, DataError> {
        let bad = |reason: String| DataError::InvalidOptions {
            what: "dataset location",
            reason,
        };
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad(format!(
                    "{location:?} names no bucket; write s3://BUCKET/PREFIX"
                )));
            }
            let objects = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|source| DataError::ObjectStore {
                    action: "configure the S3 store for",
                    location: location.to_owned(),
                    cause: ObjectStoreError(source),
                })?;
            let root = ObjectPath::parse(prefix.trim_end_matches('/'))
                .map_err(|e| bad(format!("{location:?}: {e}")))?;
            let url = format!("s3://{bucket}/{root}");
            return Ok(Self::with_store(
                url.trim_end_matches('/'),
                Arc::new(objects),
                root,
                commits,
            ));
        }
        if location.contains("://") && !location.starts_with("file://") {
            return Err(bad(format!(
                "{location:?} is not a location weir can write to; use s3://BUCKET/PREFIX, file:///PATH or a folder path"
            )));
        }
        let path = std::path::Path::new(location.strip_prefix("file://").unwrap_or(location));
        std::fs::create_dir_all(path).map_err(|e| DataError::io("create", path, e))?;
        let path = path
            .canonicalize()
            .map_err(|e| DataError::io("resolve", path, e))?;
        let objects =
            object_store::local::LocalFileSystem::new_with_prefix(&path).map_err(|source| {
                DataError::ObjectStore {
                    action: "open the folder",
                    location: path.display().to_string(),
                    cause: ObjectStoreError(source),
                }
            })?;
        let url = format!("file://{}", path.display());
        Ok(Self::with_store(
            &url,
            Arc::new(objects),
            ObjectPath::default(),
            commits,
        ))
    }

    /// A dataset at `root` in an object store the caller built; `url` is its identity in the
    /// metadata store (two hosts must name one dataset by the same URL).
    pub fn with_store(
        url: &str,
        objects: Arc<dyn ObjectStore>,
        root: ObjectPath,
        commits: Arc<dyn DatasetCommitStore>,
    ) -> Self {
        SharedDataset {
            at: Location {
                url: url.to_owned(),
                objects,
                root,
            },
            commits,
        }
    }

    /// The dataset's URL, its identity in the metadata store.
    pub fn url(&self) -> &str {
        &self.at.url
    }

    /// Starts writing a new version of the partition `key`; nothing is visible until
    /// [`SharedWriter::commit`]. `now` starts the lease.
    pub async fn writer(
        &self,
        key: &PartitionKey,
        schema: SchemaRef,
        opts: SharedWriteOptions,
        now: Timestamp,
    ) -> Result<SharedWriter, DataError> {
        if key.is_empty() {
            return Err(DataError::InvalidPartitionKey {
                input: String::new(),
                reason: "a partition key needs at least one name=value level".into(),
            });
        }
        if opts.row_group_size == 0 || opts.part_bytes == 0 {
            return Err(DataError::InvalidOptions {
                what: "write options",
                reason: "row_group_size and part_bytes must be at least 1".into(),
            });
        }
        let partition = key.to_path_string();
        let base = self.head(key).await?.map_or(0, |h| h.version);
        let commit_id = commit_id(now);
        self.commits
            .begin_commit(&BeginCommit {
                dataset: self.at.url.clone(),
                partition: partition.clone(),
                commit_id: commit_id.clone(),
                owner: opts.owner.clone(),
                at: now,
                lease_until: lease_end(now, opts.lease),
            })
            .await
            .map_err(|e| self.commit_error(&partition, e))?;
        let props = WriterProperties::builder()
            .set_compression(opts.compression.to_parquet())
            .set_max_row_group_row_count(Some(opts.row_group_size))
            .build();
        Ok(SharedWriter {
            dataset: self.clone(),
            key: key.clone(),
            partition,
            commit_id,
            base,
            schema,
            props,
            opts,
            current: None,
            recorded: Vec::new(),
            files: Vec::new(),
            rows: 0,
            part_rows: 0,
            failed: false,
        })
    }

    /// The committed version of a partition, if any.
    pub async fn head(&self, key: &PartitionKey) -> Result<Option<PartitionHead>, DataError> {
        let partition = key.to_path_string();
        self.commits
            .partition_head(&self.at.url, &partition)
            .await
            .map_err(|e| self.commit_error(&partition, e))
    }

    /// Every committed partition, by path.
    pub async fn partitions(&self) -> Result<Vec<PartitionHead>, DataError> {
        self.commits
            .partition_heads(&self.at.url)
            .await
            .map_err(|e| self.store_error(e))
    }

    /// The rows of a partition's committed files, in file order.
    pub async fn read_partition(&self, key: &PartitionKey) -> Result<Vec<RecordBatch>, DataError> {
        let head = self
            .head(key)
            .await?
            .ok_or_else(|| DataError::PartitionNotFound {
                partition: key.to_path_string(),
                root: self.at.url.clone().into(),
            })?;
        let mut batches = Vec::new();
        for file in &head.files {
            let bytes = self.get(&file.path).await?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .and_then(|b| b.build())
                .map_err(|e| DataError::parquet(self.describe(&file.path), e))?;
            for batch in reader {
                batches.push(batch.map_err(|e| DataError::arrow(self.describe(&file.path), e))?);
            }
        }
        Ok(batches)
    }

    /// Rows of a partition's committed files, counted from each file's own footer (not from
    /// the store's record), for checking a commit against what it claims.
    pub async fn count_rows(&self, key: &PartitionKey) -> Result<u64, DataError> {
        let Some(head) = self.head(key).await? else {
            return Ok(0);
        };
        let mut rows = 0;
        for file in &head.files {
            let bytes = self.get(&file.path).await?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .map_err(|e| DataError::parquet(self.describe(&file.path), e))?;
            rows += builder.metadata().file_metadata().num_rows() as u64;
        }
        Ok(rows)
    }

    /// Every object under the dataset's root, by path relative to the root, sorted.
    pub async fn objects(&self) -> Result<Vec<String>, DataError> {
        let prefix = (!self.at.root.as_ref().is_empty()).then_some(&self.at.root);
        let mut paths: Vec<String> = self
            .at
            .objects
            .list(prefix)
            .map_ok(|meta| match meta.location.prefix_match(&self.at.root) {
                Some(parts) => parts
                    .map(|p| p.as_ref().to_owned())
                    .collect::<Vec<_>>()
                    .join("/"),
                None => meta.location.to_string(),
            })
            .try_collect()
            .await
            .map_err(|source| DataError::ObjectStore {
                action: "list",
                location: self.at.url.clone(),
                cause: ObjectStoreError(source),
            })?;
        paths.sort();
        Ok(paths)
    }

    /// Objects under the root that no commit the store knows of holds: strays a reader never
    /// sees (a put that finished after its commit was rolled back and collected).
    pub async fn unreferenced_objects(&self) -> Result<Vec<String>, DataError> {
        let known: BTreeSet<String> = self
            .commits
            .dataset_commits(&self.at.url)
            .await
            .map_err(|e| self.store_error(e))?
            .into_iter()
            .flat_map(|c| c.files.into_iter().map(|f| f.path))
            .collect();
        Ok(self
            .objects()
            .await?
            .into_iter()
            .filter(|p| !known.contains(p))
            .collect())
    }

    /// Rolls back the pending commits whose lease ran out before `now` and deletes their files,
    /// then deletes the files of commits superseded more than `grace` before `now` (readers
    /// that listed a partition before it was replaced have that long to finish).
    pub async fn collect_garbage(
        &self,
        now: Timestamp,
        grace: Duration,
    ) -> Result<GarbageReport, DataError> {
        let mut report = GarbageReport::default();
        for commit in self
            .commits
            .roll_back_expired_commits(&self.at.url, now)
            .await
            .map_err(|e| self.store_error(e))?
        {
            report.rolled_back.push(commit.commit_id);
        }
        let before = now
            .checked_sub(jiff::SignedDuration::try_from(grace).unwrap_or(jiff::SignedDuration::MAX))
            .unwrap_or(Timestamp::MIN);
        let collectable = self
            .commits
            .collectable_commits(&self.at.url, before)
            .await
            .map_err(|e| self.store_error(e))?;
        for commit in collectable {
            for file in &commit.files {
                if self.delete(&file.path).await? {
                    report.deleted_files += 1;
                }
            }
            // A rolled back commit is remembered for the grace period, and at least an hour: a
            // put that was in flight when it was rolled back may land after the delete, and
            // each collection until then deletes it again.
            let remember_until = match commit.state {
                CommitState::RolledBack => before.min(
                    now.checked_sub(ROLLED_BACK_MEMORY)
                        .unwrap_or(Timestamp::MIN),
                ),
                _ => before,
            };
            let ended_long_ago = commit.ended_at.is_some_and(|t| t < remember_until);
            if commit.state == CommitState::Superseded || ended_long_ago {
                self.commits
                    .forget_commit(&commit.commit_id)
                    .await
                    .map_err(|e| self.commit_error(&commit.partition, e))?;
                report.forgotten += 1;
            }
        }
        Ok(report)
    }

    /// The commits the store holds for this dataset (for inspection and tests).
    pub async fn commits(&self) -> Result<Vec<DatasetCommit>, DataError> {
        self.commits
            .dataset_commits(&self.at.url)
            .await
            .map_err(|e| self.store_error(e))
    }

    fn object_path(&self, relative: &str) -> ObjectPath {
        if self.at.root.as_ref().is_empty() {
            ObjectPath::from(relative)
        } else {
            ObjectPath::from(format!("{}/{relative}", self.at.root))
        }
    }

    fn describe(&self, relative: &str) -> String {
        format!("{}/{relative}", self.at.url)
    }

    async fn get(&self, relative: &str) -> Result<Bytes, DataError> {
        let location = self.object_path(relative);
        let fail = |source| DataError::ObjectStore {
            action: "read",
            location: self.describe(relative),
            cause: ObjectStoreError(source),
        };
        self.at
            .objects
            .get(&location)
            .await
            .map_err(fail)?
            .bytes()
            .await
            .map_err(fail)
    }

    /// Deletes one object; `false` when it was not there (S3 answers a delete of a missing
    /// object with success, so it is looked up first).
    async fn delete(&self, relative: &str) -> Result<bool, DataError> {
        let location = self.object_path(relative);
        let fail = |action, source| DataError::ObjectStore {
            action,
            location: self.describe(relative),
            cause: ObjectStoreError(source),
        };
        match self.at.objects.head(&location).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(fail("look up", e)),
        }
        match self.at.objects.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
            Err(e) => Err(fail("delete", e)),
        }
    }

    fn store_error(&self, e: StoreError) -> DataError {
        DataError::CommitStore {
            dataset: self.at.url.clone(),
            transient: weir_core::Transient::is_transient(&e),
            reason: e.to_string(),
        }
    }

    fn commit_error(&self, partition: &str, e: StoreError) -> DataError {
        DataError::Commit {
            dataset: self.at.url.clone(),
            partition: partition.to_owned(),
            transient: weir_core::Transient::is_transient(&e),
            reason: e.to_string(),
        }
    }
}

/// Writes one new version of a partition of a [`SharedDataset`].
///
/// Dropped without [`SharedWriter::commit`], it leaves a pending commit that
/// [`SharedDataset::collect_garbage`] rolls back once its lease has run out; call
/// [`SharedWriter::abort`] to roll it back at once.
pub struct SharedWriter {
    dataset: SharedDataset,
    key: PartitionKey,
    partition: String,
    commit_id: String,
    /// The head's version when the writer started (for [`CommitBase::Version`]).
    base: i64,
    schema: SchemaRef,
    props: WriterProperties,
    opts: SharedWriteOptions,
    current: Option<ArrowWriter<Vec<u8>>>,
    /// Paths recorded in the store (every file put, or about to be).
    recorded: Vec<String>,
    files: Vec<CommitFile>,
    rows: u64,
    /// Rows in the part being encoded.
    part_rows: u64,
    /// A part could not be recorded or put: its rows are lost, so this writer cannot commit.
    failed: bool,
}

impl std::fmt::Debug for SharedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedWriter")
            .field("dataset", &self.dataset.at.url)
            .field("partition", &self.partition)
            .field("commit_id", &self.commit_id)
            .finish()
    }
}

impl SharedWriter {
    /// The commit's id (its part files carry it in their names).
    pub fn commit_id(&self) -> &str {
        &self.commit_id
    }

    /// The partition being written.
    pub fn key(&self) -> &PartitionKey {
        &self.key
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Adds rows; a part file is put whenever the one being encoded reaches
    /// [`SharedWriteOptions::part_bytes`].
    pub async fn write(&mut self, batch: &RecordBatch, now: Timestamp) -> Result<(), DataError> {
        self.check_usable()?;
        if batch.schema().fields() != self.schema.fields() {
            return Err(DataError::SchemaMismatch {
                partition: self.partition.clone(),
                expected: format!("{:?}", self.schema.fields()),
                found: format!("{:?}", batch.schema().fields()),
            });
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let writer = match &mut self.current {
            Some(w) => w,
            None => self.current.insert(
                ArrowWriter::try_new(Vec::new(), self.schema.clone(), Some(self.props.clone()))
                    .map_err(|e| DataError::parquet(self.dataset.describe(&self.partition), e))?,
            ),
        };
        writer
            .write(batch)
            .map_err(|e| DataError::parquet(self.dataset.describe(&self.partition), e))?;
        self.rows += batch.num_rows() as u64;
        self.part_rows += batch.num_rows() as u64;
        if writer.bytes_written() + writer.in_progress_size() >= self.opts.part_bytes {
            self.put_part(now).await?;
        }
        Ok(())
    }

    fn check_usable(&self) -> Result<(), DataError> {
        if self.failed {
            return Err(DataError::Commit {
                dataset: self.dataset.at.url.clone(),
                partition: self.partition.clone(),
                reason: "an earlier part of this writer could not be written, so its rows are \
                         incomplete; nothing was committed: write the partition again"
                    .into(),
                transient: false,
            });
        }
        Ok(())
    }

    /// Puts the part being encoded, after recording its path in the store; a failure leaves
    /// the writer unable to commit (the part's rows are gone).
    async fn put_part(&mut self, now: Timestamp) -> Result<(), DataError> {
        let result = self.try_put_part(now).await;
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    async fn try_put_part(&mut self, now: Timestamp) -> Result<(), DataError> {
        let Some(writer) = self.current.take() else {
            return Ok(());
        };
        let relative = format!(
            "{}/part-{}-{:05}.parquet",
            self.partition,
            self.commit_id,
            self.recorded.len()
        );
        let rows = std::mem::take(&mut self.part_rows);
        let encoded = writer
            .into_inner()
            .map_err(|e| DataError::parquet(self.dataset.describe(&relative), e))?;
        self.dataset
            .commits
            .record_commit_file(&self.commit_id, &relative, lease_end(now, self.opts.lease))
            .await
            .map_err(|e| self.dataset.commit_error(&self.partition, e))?;
        self.recorded.push(relative.clone());
        let bytes = encoded.len() as u64;
        self.dataset
            .at
            .objects
            .put(
                &self.dataset.object_path(&relative),
                PutPayload::from(encoded),
            )
            .await
            .map_err(|source| DataError::ObjectStore {
                action: "write",
                location: self.dataset.describe(&relative),
                cause: ObjectStoreError(source),
            })?;
        self.files.push(CommitFile {
            path: relative,
            rows,
            bytes,
        });
        Ok(())
    }

    /// Publishes the partition, replacing whatever version is there (a re-run's rewrite: the
    /// last commit wins).
    pub async fn commit(self, now: Timestamp) -> Result<PartitionHead, DataError> {
        self.commit_as(CommitBase::Any, CommitMode::Replace, now)
            .await
    }

    /// Publishes the partition only if no other writer committed it since this writer started;
    /// otherwise fails with [`DataError::Commit`] and nothing of this writer is visible.
    pub async fn commit_if_unchanged(self, now: Timestamp) -> Result<PartitionHead, DataError> {
        let base = CommitBase::Version(self.base);
        self.commit_as(base, CommitMode::Replace, now).await
    }

    /// Adds this writer's files to the partition's committed ones, if no other writer
    /// committed it since this writer started.
    pub async fn append(self, now: Timestamp) -> Result<PartitionHead, DataError> {
        let base = CommitBase::Version(self.base);
        self.commit_as(base, CommitMode::Append, now).await
    }

    async fn commit_as(
        mut self,
        base: CommitBase,
        mode: CommitMode,
        now: Timestamp,
    ) -> Result<PartitionHead, DataError> {
        if let Err(e) = self.check_usable() {
            self.give_up(now).await;
            return Err(e);
        }
        if let Err(e) = self.put_part(now).await {
            self.give_up(now).await;
            return Err(e);
        }
        match self
            .dataset
            .commits
            .commit_partition(&self.commit_id, &self.files, base, mode, now)
            .await
        {
            Ok(head) => Ok(head),
            Err(e) => {
                let error = self.dataset.commit_error(&self.partition, e);
                // A conflict (or a rollback after the lease ran out) changed nothing: this
                // writer's files are garbage. A store that did not answer may have committed.
                if let DataError::Commit {
                    transient: false, ..
                } = &error
                {
                    self.give_up(now).await;
                }
                Err(error)
            }
        }
    }

    /// Rolls the pending commit back and deletes the files put so far.
    pub async fn abort(self, now: Timestamp) -> Result<(), DataError> {
        self.dataset
            .commits
            .roll_back_commit(&self.commit_id, now, false)
            .await
            .map_err(|e| self.dataset.commit_error(&self.partition, e))?;
        for path in &self.recorded {
            self.dataset.delete(path).await?;
        }
        Ok(())
    }

    /// Best effort: what fails here is left to [`SharedDataset::collect_garbage`].
    async fn give_up(&mut self, now: Timestamp) {
        if let Ok(Some(_)) = self
            .dataset
            .commits
            .roll_back_commit(&self.commit_id, now, false)
            .await
        {
            for path in &self.recorded {
                let _ = self.dataset.delete(path).await;
            }
        }
    }
}

fn lease_end(now: Timestamp, lease: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(lease)
        .ok()
        .and_then(|d| now.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// A commit id no other writer on any host picks: the time, then 128 bits from the process's
/// randomly keyed hasher over the pid, a counter and the clock.
fn commit_id(now: Timestamp) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut words = [0u64; 2];
    for (i, word) in words.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i as u64);
        h.write_u32(std::process::id());
        h.write_u64(n);
        h.write_i128(now.as_nanosecond());
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        *word = h.finish();
    }
    format!(
        "{}{:016x}{:016x}",
        now.strftime("%Y%m%dT%H%M%S-"),
        words[0],
        words[1]
    )
}
