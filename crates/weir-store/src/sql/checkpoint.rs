//! [`CheckpointStore`] on SQLite.

use async_trait::async_trait;
use sqlx::Row;

use super::{Builder, SqlStore, micros, ts};
use crate::{CheckpointFilter, CheckpointKey, CheckpointRecord, CheckpointStore, Result};

fn push_filter<'a>(q: &mut Builder<'a>, f: &'a CheckpointFilter) {
    if let Some(v) = &f.dag_id {
        q.push(" AND dag_id = ").push_bind(v);
    }
    if let Some(v) = &f.run_id {
        q.push(" AND run_id = ").push_bind(v);
    }
    if let Some(v) = &f.task_id {
        q.push(" AND task_id = ").push_bind(v);
    }
    if let Some(v) = f.map_index {
        q.push(" AND map_index = ").push_bind(v);
    }
    if let Some(v) = f.clear_number {
        q.push(" AND clear_number = ").push_bind(v as i64);
    }
}

#[async_trait]
impl CheckpointStore for SqlStore {
    async fn save_checkpoint(&self, c: &CheckpointRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO checkpoints (dag_id, run_id, task_id, map_index, clear_number, seq, state, source, version, checksum, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (dag_id, run_id, task_id, map_index, clear_number, seq) DO UPDATE SET
                state = excluded.state, source = excluded.source, version = excluded.version,
                checksum = excluded.checksum, created_at = excluded.created_at",
        )
        .bind(&c.key.dag_id)
        .bind(&c.key.run_id)
        .bind(&c.key.task_id)
        .bind(c.key.map_index)
        .bind(c.key.clear_number as i64)
        .bind(c.seq as i64)
        .bind(&c.state)
        .bind(&c.source)
        .bind(c.version as i64)
        .bind(&c.checksum)
        .bind(micros(c.created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn checkpoints(&self, filter: &CheckpointFilter) -> Result<Vec<CheckpointRecord>> {
        let mut q = Builder::new(
            "SELECT dag_id, run_id, task_id, map_index, clear_number, seq, state, source, version, checksum, created_at FROM checkpoints WHERE 1 = 1",
        );
        push_filter(&mut q, filter);
        q.push(" ORDER BY dag_id, run_id, task_id, map_index, clear_number, seq DESC");
        q.build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok(CheckpointRecord {
                    key: CheckpointKey {
                        dag_id: row.try_get("dag_id")?,
                        run_id: row.try_get("run_id")?,
                        task_id: row.try_get("task_id")?,
                        map_index: row.try_get("map_index")?,
                        clear_number: row.try_get::<i64, _>("clear_number")? as u32,
                    },
                    seq: row.try_get::<i64, _>("seq")? as u64,
                    state: row.try_get("state")?,
                    source: row.try_get("source")?,
                    version: row.try_get::<i64, _>("version")? as u32,
                    checksum: row.try_get("checksum")?,
                    created_at: ts(row.try_get("created_at")?)?,
                })
            })
            .collect()
    }

    async fn delete_checkpoints(&self, filter: &CheckpointFilter, keep_last: u32) -> Result<u64> {
        let mut q = Builder::new(
            "DELETE FROM checkpoints WHERE rowid IN (SELECT rowid FROM (SELECT rowid, ROW_NUMBER() OVER (PARTITION BY dag_id, run_id, task_id, map_index, clear_number ORDER BY seq DESC) AS rn FROM checkpoints WHERE 1 = 1",
        );
        push_filter(&mut q, filter);
        q.push(") AS ranked WHERE rn > ")
            .push_bind(keep_last as i64)
            .push(")");
        Ok(q.build().execute(&self.pool).await?.rows_affected())
    }
}
