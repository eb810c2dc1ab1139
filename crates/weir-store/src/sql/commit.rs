//! [`DatasetCommitStore`] on SQLite and PostgreSQL.
//!
//! Every change is one transaction: `BEGIN IMMEDIATE` on SQLite (one writer at a time), row
//! locks (`FOR UPDATE`) on PostgreSQL, so two writers committing one partition at once take
//! turns and the second sees the first's head.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Backend, SqlStore, micros, opt_ts, ts};
use crate::commit::*;
use crate::{Result, StoreError};

const COLUMNS: &str = "commit_id, dataset, partition, owner, state, files, lease_until, ended_at";

fn files_json(files: &[CommitFile]) -> String {
    serde_json::to_string(files).expect("commit files serialize")
}

fn files_of(row: &AnyRow) -> Result<Vec<CommitFile>> {
    let text: String = row.try_get("files")?;
    serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("files of a dataset commit: {e}")))
}

fn commit_from_row(row: &AnyRow) -> Result<DatasetCommit> {
    let state: String = row.try_get("state")?;
    Ok(DatasetCommit {
        commit_id: row.try_get("commit_id")?,
        dataset: row.try_get("dataset")?,
        partition: row.try_get("partition")?,
        owner: row.try_get("owner")?,
        state: CommitState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("dataset commit state {state:?}")))?,
        files: files_of(row)?,
        lease_until: ts(row.try_get("lease_until")?)?,
        ended_at: opt_ts(row.try_get("ended_at")?)?,
    })
}

fn head_from_row(row: &AnyRow) -> Result<PartitionHead> {
    Ok(PartitionHead {
        dataset: row.try_get("dataset")?,
        partition: row.try_get("partition")?,
        version: row.try_get("version")?,
        commit_id: row.try_get("commit_id")?,
        owner: row.try_get("owner")?,
        files: files_of(row)?,
        rows: row.try_get::<i64, _>("rows")? as u64,
        bytes: row.try_get::<i64, _>("bytes")? as u64,
        committed_at: opt_ts(row.try_get("committed_at")?)?
            .ok_or_else(|| StoreError::Corrupt("a partition head without a commit time".into()))?,
    })
}

/// Why a commit that is not pending cannot take another file or commit.
fn not_pending(state: CommitState) -> &'static str {
    match state {
        CommitState::RolledBack => {
            "it was rolled back (its writer's lease ran out, or it gave up) and its files deleted"
        }
        CommitState::Committed => "it is committed already",
        CommitState::Superseded => "it was committed and has since been replaced",
        CommitState::Pending => "it is pending",
    }
}

const HEAD_SELECT: &str = "SELECT h.dataset, h.partition, h.version, h.commit_id, c.owner, c.files, c.rows, c.bytes, c.committed_at
     FROM dataset_heads h JOIN dataset_commits c ON c.commit_id = h.commit_id";

impl SqlStore {
    async fn write_tx(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// `FOR UPDATE` where the database has row locks (SQLite's transaction holds the file).
    fn locking(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }

    /// One try of [`DatasetCommitStore::commit_partition`]; `None` when a concurrent first
    /// commit of the partition won the insert of its head (the caller tries again).
    async fn try_commit_partition(
        &self,
        commit_id: &str,
        files: &[CommitFile],
        base: CommitBase,
        mode: CommitMode,
        at: Timestamp,
    ) -> Result<Option<PartitionHead>> {
        let mut tx = self.write_tx().await?;
        let lock = self.locking();
        let Some(row) = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM dataset_commits WHERE commit_id = $1{lock}"
        ))
        .bind(commit_id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Err(StoreError::NotFound(format!("dataset commit {commit_id}")));
        };
        let commit = commit_from_row(&row)?;
        if commit.state != CommitState::Pending {
            return Err(StoreError::Conflict {
                what: format!(
                    "commit {commit_id} of partition `{}` of {}",
                    commit.partition, commit.dataset
                ),
                expected: format!("pending, but {}", not_pending(commit.state)),
            });
        }
        let head = sqlx::query(&format!(
            "SELECT version, commit_id FROM dataset_heads WHERE dataset = $1 AND partition = $2{lock}"
        ))
        .bind(&commit.dataset)
        .bind(&commit.partition)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| -> Result<(i64, String)> { Ok((r.try_get("version")?, r.try_get("commit_id")?)) })
        .transpose()?;
        let current = head.as_ref().map_or(0, |(v, _)| *v);
        if let CommitBase::Version(expected) = base
            && expected != current
        {
            return Err(StoreError::Conflict {
                what: format!("partition `{}` of {}", commit.partition, commit.dataset),
                expected: format!(
                    "version {expected} when the commit started, but another writer committed version {current} since"
                ),
            });
        }
        let mut all = Vec::new();
        if let (CommitMode::Append, Some((_, old))) = (mode, &head) {
            let row = sqlx::query("SELECT files FROM dataset_commits WHERE commit_id = $1")
                .bind(old)
                .fetch_one(&mut *tx)
                .await?;
            all = files_of(&row)?;
        }
        all.extend(files.iter().cloned());
        let version = current + 1;
        match &head {
            Some((_, old)) => {
                let moved = sqlx::query(
                    "UPDATE dataset_heads SET version = $1, commit_id = $2, committed_at = $3
                     WHERE dataset = $4 AND partition = $5 AND version = $6",
                )
                .bind(version)
                .bind(commit_id)
                .bind(micros(at))
                .bind(&commit.dataset)
                .bind(&commit.partition)
                .bind(current)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if moved != 1 {
                    return Err(StoreError::Conflict {
                        what: format!("partition `{}` of {}", commit.partition, commit.dataset),
                        expected: format!("version {current} under this transaction's lock"),
                    });
                }
                sqlx::query(
                    "UPDATE dataset_commits SET state = 'superseded', ended_at = $1 WHERE commit_id = $2",
                )
                .bind(micros(at))
                .bind(old)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                let inserted = sqlx::query(
                    "INSERT INTO dataset_heads (dataset, partition, version, commit_id, committed_at)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (dataset, partition) DO NOTHING",
                )
                .bind(&commit.dataset)
                .bind(&commit.partition)
                .bind(version)
                .bind(commit_id)
                .bind(micros(at))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    // Another first commit got in between the read and the insert.
                    tx.rollback().await?;
                    if base == CommitBase::Version(0) {
                        return Err(StoreError::Conflict {
                            what: format!("partition `{}` of {}", commit.partition, commit.dataset),
                            expected: "no version yet, but another writer committed one".into(),
                        });
                    }
                    return Ok(None);
                }
            }
        }
        let rows: u64 = all.iter().map(|f| f.rows).sum();
        let bytes: u64 = all.iter().map(|f| f.bytes).sum();
        sqlx::query(
            "UPDATE dataset_commits SET state = 'committed', files = $1, rows = $2, bytes = $3,
                version = $4, committed_at = $5 WHERE commit_id = $6 AND state = 'pending'",
        )
        .bind(files_json(&all))
        .bind(rows as i64)
        .bind(bytes as i64)
        .bind(version)
        .bind(micros(at))
        .bind(commit_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(PartitionHead {
            dataset: commit.dataset,
            partition: commit.partition,
            version,
            commit_id: commit_id.to_owned(),
            owner: commit.owner,
            files: all,
            rows,
            bytes,
            committed_at: at,
        }))
    }
}

#[async_trait]
impl DatasetCommitStore for SqlStore {
    async fn begin_commit(&self, b: &BeginCommit) -> Result<()> {
        sqlx::query(
            "INSERT INTO dataset_commits (commit_id, dataset, partition, owner, state, files, rows, bytes, created_at, lease_until)
             VALUES ($1, $2, $3, $4, 'pending', '[]', 0, 0, $5, $6)",
        )
        .bind(&b.commit_id)
        .bind(&b.dataset)
        .bind(&b.partition)
        .bind(&b.owner)
        .bind(micros(b.at))
        .bind(micros(b.lease_until))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn record_commit_file(
        &self,
        commit_id: &str,
        path: &str,
        lease_until: Timestamp,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM dataset_commits WHERE commit_id = $1{}",
            self.locking()
        ))
        .bind(commit_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("dataset commit {commit_id}")))?;
        let mut commit = commit_from_row(&row)?;
        if commit.state != CommitState::Pending {
            return Err(StoreError::Conflict {
                what: format!("commit {commit_id} of partition `{}`", commit.partition),
                expected: format!("pending, but {}", not_pending(commit.state)),
            });
        }
        commit.files.push(CommitFile {
            path: path.to_owned(),
            rows: 0,
            bytes: 0,
        });
        sqlx::query("UPDATE dataset_commits SET files = $1, lease_until = $2 WHERE commit_id = $3")
            .bind(files_json(&commit.files))
            .bind(micros(lease_until))
            .bind(commit_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn commit_partition(
        &self,
        commit_id: &str,
        files: &[CommitFile],
        base: CommitBase,
        mode: CommitMode,
        at: Timestamp,
    ) -> Result<PartitionHead> {
        loop {
            if let Some(head) = self
                .try_commit_partition(commit_id, files, base, mode, at)
                .await?
            {
                return Ok(head);
            }
        }
    }

    async fn partition_head(
        &self,
        dataset: &str,
        partition: &str,
    ) -> Result<Option<PartitionHead>> {
        sqlx::query(&format!(
            "{HEAD_SELECT} WHERE h.dataset = $1 AND h.partition = $2"
        ))
        .bind(dataset)
        .bind(partition)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(head_from_row)
        .transpose()
    }

    async fn partition_heads(&self, dataset: &str) -> Result<Vec<PartitionHead>> {
        sqlx::query(&format!(
            "{HEAD_SELECT} WHERE h.dataset = $1 ORDER BY h.partition"
        ))
        .bind(dataset)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(head_from_row)
        .collect()
    }

    async fn roll_back_commit(
        &self,
        commit_id: &str,
        at: Timestamp,
        only_if_expired: bool,
    ) -> Result<Option<DatasetCommit>> {
        let expiry = if only_if_expired {
            " AND lease_until < $2"
        } else {
            ""
        };
        sqlx::query(&format!(
            "UPDATE dataset_commits SET state = 'rolled_back', ended_at = $2
             WHERE commit_id = $1 AND state = 'pending'{expiry} RETURNING {COLUMNS}"
        ))
        .bind(commit_id)
        .bind(micros(at))
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(commit_from_row)
        .transpose()
    }

    async fn roll_back_expired_commits(
        &self,
        dataset: &str,
        now: Timestamp,
    ) -> Result<Vec<DatasetCommit>> {
        sqlx::query(&format!(
            "UPDATE dataset_commits SET state = 'rolled_back', ended_at = $2
             WHERE dataset = $1 AND state = 'pending' AND lease_until < $2 RETURNING {COLUMNS}"
        ))
        .bind(dataset)
        .bind(micros(now))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(commit_from_row)
        .collect()
    }

    async fn collectable_commits(
        &self,
        dataset: &str,
        superseded_before: Timestamp,
    ) -> Result<Vec<DatasetCommit>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM dataset_commits WHERE dataset = $1
               AND (state = 'rolled_back' OR (state = 'superseded' AND ended_at < $2))
             ORDER BY created_at, commit_id"
        ))
        .bind(dataset)
        .bind(micros(superseded_before))
        .fetch_all(&self.pool)
        .await?;
        let mut commits = rows
            .iter()
            .map(commit_from_row)
            .collect::<Result<Vec<_>>>()?;
        // A file stays while any commit that is not collectable holds it: the head, a pending
        // append, or a version replaced within the grace period (an append carries the files
        // of the version it replaced, so those can be in several commits).
        let collectable: BTreeSet<String> = commits.iter().map(|c| c.commit_id.clone()).collect();
        let mut kept: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for other in self.dataset_commits(dataset).await? {
            if !collectable.contains(&other.commit_id) {
                kept.entry(other.partition)
                    .or_default()
                    .extend(other.files.into_iter().map(|f| f.path));
            }
        }
        for commit in &mut commits {
            if let Some(keep) = kept.get(&commit.partition) {
                commit.files.retain(|f| !keep.contains(&f.path));
            }
        }
        Ok(commits)
    }

    async fn forget_commit(&self, commit_id: &str) -> Result<()> {
        sqlx::query(
            "DELETE FROM dataset_commits WHERE commit_id = $1 AND state IN ('rolled_back', 'superseded')",
        )
        .bind(commit_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn dataset_commits(&self, dataset: &str) -> Result<Vec<DatasetCommit>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM dataset_commits WHERE dataset = $1 ORDER BY created_at, commit_id"
        ))
        .bind(dataset)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(commit_from_row)
        .collect()
    }
}
