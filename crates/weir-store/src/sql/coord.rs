//! [`CoordinationStore`] on SQLite and PostgreSQL.
//!
//! A claim is one transaction. On SQLite it begins `IMMEDIATE`: the write lock is held from the
//! first read, so claims from several processes run one after another. On PostgreSQL the
//! candidates are locked `FOR UPDATE SKIP LOCKED` (two claimers never wait on, or take, the same
//! instance), then the rows of the pools and DAG limits they need are locked in name order,
//! so the running counts read after the locks stay true until the commit: the claimers of one
//! pool take turns, and the claimers of different pools do not wait for each other.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::Row;
use weir_core::TaskState;

use super::{Backend, Builder, SqlStore, TI_COLUMNS, fenced_ti, micros, ti_from_row};
use crate::coord::*;
use crate::{Result, TiKey};

/// How many candidates a claim looks at per instance it may take: some will not fit their pool.
const LOOKAHEAD: i64 = 4;

/// ` AND ti.queue IN (…)`, unless every queue is wanted.
fn push_queues<'q>(q: &mut Builder<'q>, queues: &'q [String]) {
    if !queues.is_empty() {
        q.push(" AND ti.queue IN (");
        let mut list = q.separated(", ");
        for queue in queues {
            list.push_bind(queue.as_str());
        }
        q.push(")");
    }
}

#[async_trait]
impl CoordinationStore for SqlStore {
    async fn set_dag_limit(
        &self,
        dag_id: &str,
        max_active_tasks: u32,
        at: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO dag_limits (dag_id, max_active_tasks, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (dag_id) DO UPDATE SET max_active_tasks = excluded.max_active_tasks,
                updated_at = excluded.updated_at",
        )
        .bind(dag_id)
        .bind(max_active_tasks as i64)
        .bind(micros(at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn claim_tasks(&self, claim: &ClaimTasks) -> Result<Vec<ClaimedTask>> {
        if claim.limit == 0 {
            return Ok(Vec::new());
        }
        let mut tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        let columns = TI_COLUMNS
            .split(", ")
            .map(|c| format!("ti.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        // Instances whose pool is full or whose DAG is at its limit (as of this snapshot) are
        // left out here, so a backlog that cannot start does not hide work that can; the
        // counts are checked again under the locks below.
        let limits = "WITH used AS (SELECT pool, SUM(pool_slots) AS slots FROM task_instances
                           WHERE state = 'running' GROUP BY pool),
                  busy AS (SELECT d.dag_id FROM dag_limits d
                           WHERE d.max_active_tasks <= (SELECT COUNT(*) FROM task_instances y
                                                        WHERE y.dag_id = d.dag_id AND y.state = 'running'))";
        let take = claim.limit as i64 * LOOKAHEAD;
        let mut candidates = Vec::new();
        match self.backend {
            // Run by running run, oldest logical date first, each run's instances in creation
            // order straight off an index, locked only as many as are still wanted: a claim
            // reads and locks about as many rows as it may take, not every scheduled one.
            Backend::Postgres => {
                let runs = sqlx::query(&format!(
                    "{limits}
                     SELECT dag_id, run_id FROM dag_runs
                     WHERE state = 'running' AND dag_id NOT IN (SELECT dag_id FROM busy)
                     ORDER BY logical_date, run_id"
                ))
                .fetch_all(&mut *tx)
                .await?;
                for run in runs {
                    let wanted = take - candidates.len() as i64;
                    if wanted <= 0 {
                        break;
                    }
                    let (dag_id, run_id): (String, String) =
                        (run.try_get("dag_id")?, run.try_get("run_id")?);
                    let mut q = Builder::new(format!(
                        "WITH used AS (SELECT pool, SUM(pool_slots) AS slots FROM task_instances
                                       WHERE state = 'running' GROUP BY pool)
                         SELECT {columns} FROM task_instances ti
                         JOIN pools p ON p.name = ti.pool
                         LEFT JOIN used u ON u.pool = ti.pool
                         WHERE ti.state = 'scheduled'
                           AND ti.pool_slots <= p.slots - COALESCE(u.slots, 0)
                           AND ti.dag_id = "
                    ));
                    q.push_bind(dag_id.as_str())
                        .push(" AND ti.run_id = ")
                        .push_bind(run_id.as_str());
                    push_queues(&mut q, &claim.queues);
                    q.push(" ORDER BY ti.rowid LIMIT ")
                        .push_bind(wanted)
                        .push(" FOR UPDATE OF ti SKIP LOCKED");
                    for row in q.build().fetch_all(&mut *tx).await? {
                        candidates.push(ti_from_row(&row)?);
                    }
                }
            }
            Backend::Sqlite => {
                let mut q = Builder::new(format!(
                    "{limits}
                     SELECT {columns} FROM task_instances ti
                     JOIN dag_runs r ON r.dag_id = ti.dag_id AND r.run_id = ti.run_id
                     JOIN pools p ON p.name = ti.pool
                     LEFT JOIN used u ON u.pool = ti.pool
                     WHERE ti.state = 'scheduled' AND r.state = 'running'
                       AND ti.pool_slots <= p.slots - COALESCE(u.slots, 0)
                       AND ti.dag_id NOT IN (SELECT dag_id FROM busy)"
                ));
                push_queues(&mut q, &claim.queues);
                q.push(" ORDER BY r.logical_date, ti.rowid LIMIT ")
                    .push_bind(take);
                for row in q.build().fetch_all(&mut *tx).await? {
                    candidates.push(ti_from_row(&row)?);
                }
            }
        }
        if candidates.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }

        // The limits the candidates need, locked (PostgreSQL) in a fixed order, then the
        // instances that hold them now.
        let pools: BTreeSet<&str> = candidates.iter().map(|c| c.pool.as_str()).collect();
        let dags: BTreeSet<&str> = candidates.iter().map(|c| c.key.dag_id.as_str()).collect();
        let lock = if self.backend == Backend::Postgres {
            " ORDER BY 1 FOR UPDATE"
        } else {
            ""
        };
        let mut slots: BTreeMap<String, i64> = BTreeMap::new();
        {
            let mut q = Builder::new("SELECT name, slots FROM pools WHERE name IN (");
            let mut names = q.separated(", ");
            for p in &pools {
                names.push_bind(*p);
            }
            q.push(")").push(lock);
            for row in q.build().fetch_all(&mut *tx).await? {
                slots.insert(row.try_get("name")?, row.try_get("slots")?);
            }
        }
        let mut dag_limit: BTreeMap<String, i64> = BTreeMap::new();
        {
            let mut q =
                Builder::new("SELECT dag_id, max_active_tasks FROM dag_limits WHERE dag_id IN (");
            let mut names = q.separated(", ");
            for d in &dags {
                names.push_bind(*d);
            }
            q.push(")").push(lock);
            for row in q.build().fetch_all(&mut *tx).await? {
                dag_limit.insert(row.try_get("dag_id")?, row.try_get("max_active_tasks")?);
            }
        }
        let mut pool_used: BTreeMap<String, i64> = BTreeMap::new();
        {
            let mut q = Builder::new(
                "SELECT pool, CAST(SUM(pool_slots) AS BIGINT) AS used FROM task_instances WHERE state = 'running' AND pool IN (",
            );
            let mut names = q.separated(", ");
            for p in &pools {
                names.push_bind(*p);
            }
            q.push(") GROUP BY pool");
            for row in q.build().fetch_all(&mut *tx).await? {
                pool_used.insert(row.try_get("pool")?, row.try_get("used")?);
            }
        }
        let mut dag_used: BTreeMap<String, i64> = BTreeMap::new();
        if !dag_limit.is_empty() {
            let mut q = Builder::new(
                "SELECT dag_id, COUNT(*) AS used FROM task_instances WHERE state = 'running' AND dag_id IN (",
            );
            let mut names = q.separated(", ");
            for d in dag_limit.keys() {
                names.push_bind(d.as_str());
            }
            q.push(") GROUP BY dag_id");
            for row in q.build().fetch_all(&mut *tx).await? {
                dag_used.insert(row.try_get("dag_id")?, row.try_get("used")?);
            }
        }

        // Which candidates fit, in order, counting each one taken against its pool and DAG.
        let mut chosen = Vec::new();
        for candidate in candidates {
            if chosen.len() as u32 == claim.limit {
                break;
            }
            let need = candidate.pool_slots as i64;
            // A missing pool holds nothing: the instance waits until someone creates it.
            let free = slots.get(&candidate.pool).copied().unwrap_or(0)
                - pool_used.get(&candidate.pool).copied().unwrap_or(0);
            if need > free {
                continue;
            }
            let dag = candidate.key.dag_id.as_str();
            if let Some(&limit) = dag_limit.get(dag)
                && dag_used.get(dag).copied().unwrap_or(0) >= limit
            {
                continue;
            }
            *pool_used.entry(candidate.pool.clone()).or_default() += need;
            *dag_used.entry(dag.to_owned()).or_default() += 1;
            chosen.push(candidate);
        }
        // All of them taken in one statement (each raises its try number and fencing token).
        let mut tokens: BTreeMap<(String, String, String, i64), (i64, i64)> = BTreeMap::new();
        for chunk in chosen.chunks(200) {
            let mut q = Builder::new(
                "UPDATE task_instances SET state = 'running', try_number = try_number + 1, owner = ",
            );
            q.push_bind(claim.owner.as_str())
                .push(", owner_token = owner_token + 1, lease_until = ")
                .push_bind(micros(claim.lease_until))
                .push(", started_at = ")
                .push_bind(micros(claim.now))
                .push(
                    ", ended_at = NULL, retry_at = NULL, error = NULL
                     WHERE state = 'scheduled' AND (dag_id, run_id, task_id, map_index) IN (",
                );
            for (i, c) in chunk.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.push("(")
                    .push_bind(c.key.dag_id.as_str())
                    .push(", ")
                    .push_bind(c.key.run_id.as_str())
                    .push(", ")
                    .push_bind(c.key.task_id.as_str())
                    .push(", ")
                    .push_bind(c.key.map_index.raw())
                    .push(")");
            }
            q.push(") RETURNING dag_id, run_id, task_id, map_index, try_number, owner_token");
            for row in q.build().fetch_all(&mut *tx).await? {
                tokens.insert(
                    (
                        row.try_get("dag_id")?,
                        row.try_get("run_id")?,
                        row.try_get("task_id")?,
                        row.try_get("map_index")?,
                    ),
                    (row.try_get("try_number")?, row.try_get("owner_token")?),
                );
            }
        }
        let mut claimed = Vec::with_capacity(chosen.len());
        for candidate in chosen {
            let k = (
                candidate.key.dag_id.to_string(),
                candidate.key.run_id.to_string(),
                candidate.key.task_id.to_string(),
                candidate.key.map_index.raw(),
            );
            // Locked above, so every chosen instance was taken; one that was not is left.
            let Some(&(try_number, token)) = tokens.get(&k) else {
                continue;
            };
            let try_number = try_number as u32;
            let fence = TiFence {
                key: candidate.key.clone(),
                owner: claim.owner.clone(),
                token: token as u64,
                try_number,
            };
            let mut instance = candidate;
            instance.state = TaskState::Running;
            instance.try_number = try_number;
            instance.lease_until = Some(claim.lease_until);
            instance.started_at = Some(claim.now);
            instance.ended_at = None;
            instance.retry_at = None;
            instance.error = None;
            instance.owner = Some(claim.owner.clone());
            claimed.push(ClaimedTask { instance, fence });
        }
        tx.commit().await?;
        Ok(claimed)
    }

    async fn renew_tasks(
        &self,
        fences: &[TiFence],
        lease_until: Timestamp,
    ) -> Result<Vec<TiFence>> {
        let mut lost = Vec::new();
        let mut tx = self.pool.begin().await?;
        for f in fences {
            let held = sqlx::query(
                "UPDATE task_instances SET lease_until = $1
                 WHERE dag_id = $2 AND run_id = $3 AND task_id = $4 AND map_index = $5
                   AND state = 'running' AND owner = $6 AND owner_token = $7",
            )
            .bind(micros(lease_until))
            .bind(f.key.dag_id.as_str())
            .bind(f.key.run_id.as_str())
            .bind(f.key.task_id.as_str())
            .bind(f.key.map_index.raw())
            .bind(&f.owner)
            .bind(f.token as i64)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if held != 1 {
                lost.push(f.clone());
            }
        }
        tx.commit().await?;
        Ok(lost)
    }

    async fn finish_task(&self, fence: &TiFence, end: &TryEnd) -> Result<()> {
        let mut results = self.finish_tasks(&[(fence.clone(), end.clone())]).await?;
        results.pop().unwrap_or(Ok(()))
    }

    async fn finish_tasks(&self, done: &[(TiFence, TryEnd)]) -> Result<Vec<Result<()>>> {
        let mut tx = self.pool.begin().await?;
        let mut results = Vec::with_capacity(done.len());
        for (fence, end) in done {
            if let Err(e) = TaskState::Running.transition(end.state) {
                results.push(Err(e.into()));
                continue;
            }
            let at = micros(end.at);
            let changed = sqlx::query(
                "UPDATE task_instances SET state = $1, ended_at = $2, lease_until = NULL, retry_at = $3,
                    error = $4, owner = NULL
                 WHERE dag_id = $5 AND run_id = $6 AND task_id = $7 AND map_index = $8
                   AND state = 'running' AND owner = $9 AND owner_token = $10 AND try_number = $11",
            )
            .bind(end.state.as_str())
            .bind(at)
            .bind(end.retry_at.map(micros))
            .bind(end.error.as_deref())
            .bind(fence.key.dag_id.as_str())
            .bind(fence.key.run_id.as_str())
            .bind(fence.key.task_id.as_str())
            .bind(fence.key.map_index.raw())
            .bind(&fence.owner)
            .bind(fence.token as i64)
            .bind(fence.try_number as i64)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed != 1 {
                results.push(Err(fenced_ti(&fence.key)));
                continue;
            }
            super::record_try(
                &mut tx,
                &fence.key,
                fence.try_number,
                end.state,
                at,
                end.error.as_deref(),
            )
            .await?;
            if let Some(output) = end.output.as_ref().filter(|o| !o.is_null()) {
                super::record_output(&mut tx, &fence.key, output).await?;
            }
            if let Some(log) = &end.log {
                save_log(&mut *tx, log).await?;
            }
            results.push(Ok(()));
        }
        if self.backend == Backend::Postgres && results.iter().any(Result::is_ok) {
            // Delivered at the commit, with the changes it announces.
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(channel::DONE)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(results)
    }

    async fn save_try_log(&self, log: &TryLog) -> Result<()> {
        save_log(&self.pool, log).await
    }

    async fn try_log(
        &self,
        key: &TiKey,
        clear_number: u32,
        try_number: u32,
    ) -> Result<Option<TryLog>> {
        let row = sqlx::query(
            "SELECT host, text, saved_at FROM try_logs
             WHERE dag_id = $1 AND run_id = $2 AND clear_number = $3 AND task_id = $4 AND map_index = $5 AND try_number = $6",
        )
        .bind(key.dag_id.as_str())
        .bind(key.run_id.as_str())
        .bind(clear_number as i64)
        .bind(key.task_id.as_str())
        .bind(key.map_index.raw())
        .bind(try_number as i64)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(TryLog {
                key: key.clone(),
                clear_number,
                try_number,
                host: row.try_get("host")?,
                text: row.try_get("text")?,
                saved_at: super::ts(row.try_get("saved_at")?)?,
            })
        })
        .transpose()
    }

    async fn notify(&self, channel: &str) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(channel)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    async fn listen(&self, channels: &[&str]) -> Result<Box<dyn Wakeup>> {
        match (&self.backend, &self.url) {
            (Backend::Postgres, Some(url)) => {
                let mut listener = sqlx::postgres::PgListener::connect(url).await?;
                listener.listen_all(channels.iter().copied()).await?;
                Ok(Box::new(PgWakeup { listener }))
            }
            _ => Ok(Box::new(PollWakeup)),
        }
    }

    async fn requeue_expired(&self, now: Timestamp) -> Result<Requeued> {
        let mut tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        let lock = if self.backend == Backend::Postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let expired = sqlx::query(&format!(
            "SELECT dag_id, run_id, task_id, map_index, try_number, max_tries FROM task_instances
             WHERE state = 'running' AND lease_until < $1{lock}"
        ))
        .bind(micros(now))
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Requeued::default();
        for row in &expired {
            let key = TiKey {
                dag_id: weir_core::DagId::new(row.try_get::<String, _>("dag_id")?)?,
                run_id: weir_core::RunId::new(row.try_get::<String, _>("run_id")?)?,
                task_id: weir_core::TaskId::new(row.try_get::<String, _>("task_id")?)?,
                map_index: weir_core::MapIndex::from_raw(row.try_get("map_index")?)?,
            };
            let try_number: i64 = row.try_get("try_number")?;
            let last = try_number >= row.try_get::<i64, _>("max_tries")?;
            let error = format!(
                "try {try_number} was lost: its worker stopped renewing its lease (killed, or cut off from the store)"
            );
            let to = if last {
                TaskState::Failed
            } else {
                TaskState::Scheduled
            };
            // The token moves on: the lost owner's late changes name the old one.
            sqlx::query(
                "UPDATE task_instances SET state = $1, owner = NULL, owner_token = owner_token + 1,
                    lease_until = NULL, ended_at = $2, error = $3
                 WHERE dag_id = $4 AND run_id = $5 AND task_id = $6 AND map_index = $7 AND state = 'running'",
            )
            .bind(to.as_str())
            .bind(micros(now))
            .bind(&error)
            .bind(key.dag_id.as_str())
            .bind(key.run_id.as_str())
            .bind(key.task_id.as_str())
            .bind(key.map_index.raw())
            .execute(&mut *tx)
            .await?;
            super::record_try(
                &mut tx,
                &key,
                try_number as u32,
                TaskState::Failed,
                micros(now),
                Some(&error),
            )
            .await?;
            if last {
                out.failed.push(key);
            } else {
                out.scheduled.push(key);
            }
        }
        tx.commit().await?;
        Ok(out)
    }
}

/// PostgreSQL's `LISTEN`: a dedicated connection that the server pushes notifications to.
struct PgWakeup {
    listener: sqlx::postgres::PgListener,
}

#[async_trait]
impl Wakeup for PgWakeup {
    async fn wait(&mut self, timeout: std::time::Duration) -> Result<bool> {
        match tokio::time::timeout(timeout, self.listener.recv()).await {
            Err(_) => Ok(false),
            Ok(got) => {
                got?;
                // Drain what else came meanwhile: one wake-up for all of it.
                while self.listener.next_buffered().is_some() {}
                Ok(true)
            }
        }
    }
}

/// SQLite has no notifications: the listener sleeps out its timeout (the poll interval).
struct PollWakeup;

#[async_trait]
impl Wakeup for PollWakeup {
    async fn wait(&mut self, timeout: std::time::Duration) -> Result<bool> {
        tokio::time::sleep(timeout).await;
        Ok(false)
    }
}

/// Keeps a try's log (replacing a kept one of the same try).
async fn save_log<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    log: &TryLog,
) -> Result<()> {
    sqlx::query(
            "INSERT INTO try_logs (dag_id, run_id, clear_number, task_id, map_index, try_number, host, text, saved_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (dag_id, run_id, clear_number, task_id, map_index, try_number) DO UPDATE SET
                host = excluded.host, text = excluded.text, saved_at = excluded.saved_at",
        )
        .bind(log.key.dag_id.as_str())
        .bind(log.key.run_id.as_str())
        .bind(log.clear_number as i64)
        .bind(log.key.task_id.as_str())
        .bind(log.key.map_index.raw())
        .bind(log.try_number as i64)
        .bind(&log.host)
        .bind(&log.text)
        .bind(micros(log.saved_at))
        .execute(db)
        .await?;
    Ok(())
}
