//! Dataset commits whose commit point is a row in the store.
//!
//! A folder rename is atomic on one file system only; an object store has no rename at all. So a
//! dataset that writers on many hosts share commits through the store instead: a writer opens a
//! *pending* commit, records each part file's path before it puts it (under a name no other
//! writer can pick), and then commits — one transaction that sets the partition's head to its
//! commit by compare-and-set on the head's version and marks the commit it replaced
//! *superseded*. Readers read the head's files and nothing else, so a part file that is not in a
//! committed commit is never seen. A writer holds its pending commit under a lease that each
//! recorded file extends; once the lease has run out the commit can be *rolled back* (its files
//! deleted) by anyone, from what the store recorded — never by asking whether a process lives.

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::Result;

/// One part file of a commit: its path in the dataset's object store and what it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitFile {
    /// The object's path, relative to the store's root (`sales/day=2026-03-02/part-….parquet`).
    pub path: String,
    /// Rows in the file (0 while the commit is pending).
    pub rows: u64,
    /// Bytes of the file (0 while the commit is pending).
    pub bytes: u64,
}

/// Where a commit stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitState {
    /// Its writer is putting files; nothing of it is visible.
    Pending,
    /// It is its partition's head: readers read its files.
    Committed,
    /// A later commit replaced it; its files are deleted once no reader can still need them.
    Superseded,
    /// Its writer's lease ran out (or the writer gave up) before it committed.
    RolledBack,
}

impl CommitState {
    /// The name kept in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            CommitState::Pending => "pending",
            CommitState::Committed => "committed",
            CommitState::Superseded => "superseded",
            CommitState::RolledBack => "rolled_back",
        }
    }

    /// The state a stored name names.
    pub fn parse(s: &str) -> Option<CommitState> {
        Some(match s {
            "pending" => CommitState::Pending,
            "committed" => CommitState::Committed,
            "superseded" => CommitState::Superseded,
            "rolled_back" => CommitState::RolledBack,
            _ => return None,
        })
    }
}

/// A new pending commit.
#[derive(Clone, Debug)]
pub struct BeginCommit {
    /// The dataset's identity: its URL (`s3://bucket/sales`, `file:///data/sales`).
    pub dataset: String,
    /// The partition's relative path (`day=2026-03-02`).
    pub partition: String,
    /// Unique across hosts; the writer's part files carry it in their names.
    pub commit_id: String,
    /// Who writes (a task instance and try, a CLI command), for people reading the store.
    pub owner: String,
    /// When the writer started.
    pub at: Timestamp,
    /// Until when the writer holds the commit; each recorded file extends it.
    pub lease_until: Timestamp,
}

/// What a commit expects of its partition's head: the compare of its compare-and-set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitBase {
    /// Replace whatever is there (a re-run rewriting its partition): the last commit wins.
    Any,
    /// The head must still be at this version (0: the partition must not exist yet), or the
    /// commit fails with [`crate::StoreError::Conflict`] and changes nothing.
    Version(i64),
}

/// How a commit's files relate to the head it replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitMode {
    /// The commit's files are the whole partition.
    Replace,
    /// The commit adds its files to the head's (the files of the head it read are carried).
    Append,
}

/// The committed version of a partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionHead {
    /// The dataset's URL.
    pub dataset: String,
    /// The partition's relative path.
    pub partition: String,
    /// 1 for the first commit, one more for each later one.
    pub version: i64,
    /// The commit the head points at.
    pub commit_id: String,
    /// Its writer.
    pub owner: String,
    /// Its part files (the only files a reader reads).
    pub files: Vec<CommitFile>,
    /// Rows over all files.
    pub rows: u64,
    /// Bytes over all files.
    pub bytes: u64,
    /// When it was committed.
    pub committed_at: Timestamp,
}

/// A commit as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetCommit {
    /// The dataset's URL.
    pub dataset: String,
    /// The partition's relative path.
    pub partition: String,
    /// The commit's id.
    pub commit_id: String,
    /// Its writer.
    pub owner: String,
    /// Where it stands.
    pub state: CommitState,
    /// Its files (for a pending commit: every path recorded so far).
    pub files: Vec<CommitFile>,
    /// The writer's lease.
    pub lease_until: Timestamp,
    /// When it was superseded or rolled back.
    pub ended_at: Option<Timestamp>,
}

/// Commits of datasets shared by writers on many hosts (see the module documentation).
#[async_trait]
pub trait DatasetCommitStore: Send + Sync {
    /// Opens a pending commit.
    async fn begin_commit(&self, begin: &BeginCommit) -> Result<()>;
    /// Records a file the writer is about to put, and extends its lease. Fails with
    /// [`crate::StoreError::Conflict`] when the commit is no longer pending (its lease ran out and
    /// it was rolled back): the writer must not put the file.
    async fn record_commit_file(
        &self,
        commit_id: &str,
        path: &str,
        lease_until: Timestamp,
    ) -> Result<()>;
    /// The commit point: makes the pending commit, with these files, its partition's head, in
    /// one transaction. Fails with [`crate::StoreError::Conflict`], changing nothing, when the
    /// head is not at `base`, or the commit is no longer pending.
    async fn commit_partition(
        &self,
        commit_id: &str,
        files: &[CommitFile],
        base: CommitBase,
        mode: CommitMode,
        at: Timestamp,
    ) -> Result<PartitionHead>;
    /// The head of one partition, if it was ever committed.
    async fn partition_head(&self, dataset: &str, partition: &str)
    -> Result<Option<PartitionHead>>;
    /// The heads of every partition of a dataset, by partition path.
    async fn partition_heads(&self, dataset: &str) -> Result<Vec<PartitionHead>>;
    /// Rolls back a pending commit — one whose writer gave up, or (`only_if_expired`) one whose
    /// lease ran out before `at`; returns it when this call rolled it back.
    async fn roll_back_commit(
        &self,
        commit_id: &str,
        at: Timestamp,
        only_if_expired: bool,
    ) -> Result<Option<DatasetCommit>>;
    /// Rolls back every pending commit of the dataset whose lease ran out before `now`.
    async fn roll_back_expired_commits(
        &self,
        dataset: &str,
        now: Timestamp,
    ) -> Result<Vec<DatasetCommit>>;
    /// Commits whose files may be deleted: every rolled back one, and those superseded before
    /// `superseded_before`. Each lists only the files its partition's head does not hold.
    async fn collectable_commits(
        &self,
        dataset: &str,
        superseded_before: Timestamp,
    ) -> Result<Vec<DatasetCommit>>;
    /// Forgets a rolled back or superseded commit whose files are gone.
    async fn forget_commit(&self, commit_id: &str) -> Result<()>;
    /// Every commit of a dataset that is not yet forgotten, oldest first.
    async fn dataset_commits(&self, dataset: &str) -> Result<Vec<DatasetCommit>>;
}
