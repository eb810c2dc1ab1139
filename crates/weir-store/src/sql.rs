//! The SQL store: one implementation of every store trait over sqlx's `Any` driver, for the two
//! backends weir ships — SQLite (the embedded default, one file under the weir home) and
//! PostgreSQL (many processes on many hosts).
//!
//! Every statement is written once, with numbered placeholders (`$1`, `$2`, …) that both
//! backends take, in the SQL both speak; the schemas differ only in column types and live side
//! by side under `migrations/sqlite` and `migrations/postgres`.
//!
//! SQLite runs in WAL mode with `synchronous = FULL`, so a commit is on disk before the call
//! returns. One connection per process serializes writers without `SQLITE_BUSY`; other processes
//! (a CLI listing runs while a scheduler works) wait on the busy timeout. PostgreSQL gets a pool
//! of connections; its row locks do what SQLite's single writer does (see the comments where a
//! statement relies on them).

use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::any::{AnyArguments, AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Arguments as _, Executor as _, Row, Transaction};
use weir_core::ids::RunKind;
use weir_core::{DagId, MapIndex, RunId, RunState, TaskId, TaskState};

mod checkpoint;
mod commit;
mod coord;

use crate::records::*;
use crate::{
    ManifestStore, PoolStore, RejectStore, Result, RunStore, StoreError, TaskInstanceStore,
};

/// Which database a [`SqlStore`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Ordered schema migrations of one backend; each runs once, in its own transaction.
type Migrations = &'static [(i64, &'static str, &'static str)];

const SQLITE_MIGRATIONS: Migrations = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "clear_number",
        include_str!("../migrations/sqlite/0002_clear_number.sql"),
    ),
    (
        3,
        "run_owner",
        include_str!("../migrations/sqlite/0003_run_owner.sql"),
    ),
    (
        4,
        "rejects",
        include_str!("../migrations/sqlite/0004_rejects.sql"),
    ),
    (
        5,
        "up_for_reschedule",
        include_str!("../migrations/sqlite/0005_up_for_reschedule.sql"),
    ),
    (
        6,
        "dag_version",
        include_str!("../migrations/sqlite/0006_dag_version.sql"),
    ),
    (
        7,
        "dag_versions",
        include_str!("../migrations/sqlite/0007_dag_versions.sql"),
    ),
    (
        8,
        "dead_letters",
        include_str!("../migrations/sqlite/0008_dead_letters.sql"),
    ),
    (
        9,
        "check_results",
        include_str!("../migrations/sqlite/0009_check_results.sql"),
    ),
    (
        10,
        "checkpoints",
        include_str!("../migrations/sqlite/0010_checkpoints.sql"),
    ),
    (
        11,
        "incomplete_manifests",
        include_str!("../migrations/sqlite/0011_incomplete_manifests.sql"),
    ),
    (
        12,
        "coordination",
        include_str!("../migrations/sqlite/0012_coordination.sql"),
    ),
    (
        13,
        "try_logs",
        include_str!("../migrations/sqlite/0013_try_logs.sql"),
    ),
    (
        14,
        "claim_index",
        include_str!("../migrations/sqlite/0014_claim_index.sql"),
    ),
    (
        15,
        "dataset_commits",
        include_str!("../migrations/sqlite/0015_dataset_commits.sql"),
    ),
    (
        16,
        "state_index",
        include_str!("../migrations/sqlite/0016_state_index.sql"),
    ),
];

/// PostgreSQL arrived with schema version 11: its first migration is the SQLite schema as
/// versions 1–11 left it. From here on a schema change is one file in each folder, same number.
const POSTGRES_MIGRATIONS: Migrations = &[
    (
        11,
        "init",
        include_str!("../migrations/postgres/0011_init.sql"),
    ),
    (
        12,
        "coordination",
        include_str!("../migrations/postgres/0012_coordination.sql"),
    ),
    (
        13,
        "try_logs",
        include_str!("../migrations/postgres/0013_try_logs.sql"),
    ),
    (
        14,
        "claim_index",
        include_str!("../migrations/postgres/0014_claim_index.sql"),
    ),
    (
        15,
        "dataset_commits",
        include_str!("../migrations/postgres/0015_dataset_commits.sql"),
    ),
    (
        16,
        "state_index",
        include_str!("../migrations/postgres/0016_state_index.sql"),
    ),
];

/// The metadata store on SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    /// PostgreSQL's URL, for the dedicated connections of `LISTEN`.
    url: Option<String>,
}

fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

fn ts(us: i64) -> Result<Timestamp> {
    Timestamp::from_microsecond(us).map_err(|e| StoreError::Corrupt(format!("timestamp {us}: {e}")))
}

fn opt_ts(us: Option<i64>) -> Result<Option<Timestamp>> {
    us.map(ts).transpose()
}

/// A boolean column: SQLite keeps 0 or 1 in an INTEGER, PostgreSQL a BOOLEAN.
fn flag(row: &AnyRow, column: &str) -> Result<bool> {
    match row.try_get::<bool, _>(column) {
        Ok(b) => Ok(b),
        Err(_) => Ok(row.try_get::<i64, _>(column)? != 0),
    }
}

/// The drivers behind sqlx's `Any` are registered once per process.
fn install_drivers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(sqlx::any::install_default_drivers);
}

/// A `sqlite://` URL for a file path: the characters a URL gives a meaning are escaped.
fn sqlite_url(path: &Path) -> String {
    let mut url = String::from("sqlite://");
    for c in path.display().to_string().chars() {
        match c {
            '%' | '?' | '#' | ' ' => write!(url, "%{:02X}", c as u32).expect("write to a String"),
            c => url.push(c),
        }
    }
    url.push_str("?mode=rwc");
    url
}

impl SqlStore {
    /// Opens (creating if needed) the SQLite database file and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Corrupt(format!(
                    "cannot create the folder {}: {e}",
                    parent.display()
                ))
            })?;
        }
        install_drivers();
        let options = AnyConnectOptions::from_str(&sqlite_url(path))?;
        // Two processes opening a new store at once (a scheduler and a `weir runs list`)
        // contend for its first write locks; SQLite answers some of those at once with
        // SQLITE_BUSY instead of waiting, so the open is tried again a few times.
        let mut delay = Duration::from_millis(20);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = std::time::Instant::now();
            match Self::connect_sqlite(options.clone()).await {
                // A busy answer that already waited out the busy timeout is not retried.
                Err(e)
                    if attempt < 12
                        && started.elapsed() < Duration::from_secs(1)
                        && weir_core::Transient::is_transient(&e) =>
                {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                result => return result,
            }
        }
    }

    async fn connect_sqlite(options: AnyConnectOptions) -> Result<Self> {
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA busy_timeout = 30000; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
                    )
                    .await?;
                    // Switching to WAL takes a lock that SQLite does not wait for: only a new
                    // file needs it (the mode is kept in the file), so ask first.
                    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                        .fetch_one(&mut *conn)
                        .await?;
                    if !mode.eq_ignore_ascii_case("wal") {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let store = SqlStore {
            pool,
            backend: Backend::Sqlite,
            url: None,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to the PostgreSQL database a `postgres://` URL names and brings its schema up to
    /// date (the database must exist; weir creates its tables in it).
    pub async fn connect_postgres(url: &str) -> Result<Self> {
        install_drivers();
        let options = AnyConnectOptions::from_str(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        let store = SqlStore {
            pool,
            backend: Backend::Postgres,
            url: Some(url.to_owned()),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The database this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    async fn migrate(&self) -> Result<()> {
        let migrations = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        // Up to date already (every open but the first): a read, no write lock — a CLI command
        // that opens the store every second must not queue for a live scheduler's writes.
        if let Ok(applied) = sqlx::query_scalar::<_, i64>("SELECT version FROM weir_migrations")
            .fetch_all(&self.pool)
            .await
            && migrations.iter().all(|(v, _, _)| applied.contains(v))
        {
            return Ok(());
        }
        let table = "CREATE TABLE IF NOT EXISTS weir_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";
        if self.backend == Backend::Sqlite {
            sqlx::query(table).execute(&self.pool).await?;
        }
        for &(version, name, sql) in migrations {
            let mut tx = match self.backend {
                // IMMEDIATE: take the write lock before reading, so two processes migrating at
                // once queue on the busy timeout instead of failing on a stale read.
                Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
                Backend::Postgres => {
                    // One migrator at a time across every process and host: the others wait
                    // on the lock, then find the work done.
                    let mut tx = self.pool.begin().await?;
                    sqlx::query("SELECT pg_advisory_xact_lock(7745021)")
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(table).execute(&mut *tx).await?;
                    tx
                }
            };
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM weir_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some() {
                continue;
            }
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO weir_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(version)
            .bind(name)
            .bind(micros(Timestamp::now()))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }
}

/// A statement built in pieces, with numbered placeholders (`$1`, `$2`, …) that every backend
/// takes — sqlx's own `QueryBuilder` writes `?` for the `Any` driver, which PostgreSQL refuses.
pub(crate) struct Builder<'q> {
    sql: String,
    args: Option<AnyArguments<'q>>,
    binds: usize,
}

impl<'q> Builder<'q> {
    pub(crate) fn new(init: impl Into<String>) -> Self {
        Builder {
            sql: init.into(),
            args: Some(AnyArguments::default()),
            binds: 0,
        }
    }

    pub(crate) fn push(&mut self, sql: impl std::fmt::Display) -> &mut Self {
        write!(self.sql, "{sql}").expect("write to a String");
        self
    }

    pub(crate) fn push_bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'q + sqlx::Encode<'q, Any> + sqlx::Type<Any>,
    {
        self.binds += 1;
        write!(self.sql, "${}", self.binds).expect("write to a String");
        self.args
            .as_mut()
            .expect("a built statement is not extended")
            .add(value)
            .expect("every value weir binds encodes");
        self
    }

    /// ` VALUES (…), (…)`: one parenthesized row per item, its values bound by `row`.
    pub(crate) fn push_values<I: IntoIterator>(
        &mut self,
        items: I,
        mut row: impl FnMut(Separated<'_, 'q>, I::Item),
    ) -> &mut Self {
        self.sql.push_str(" VALUES ");
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.sql.push('(');
            row(self.separated(", "), item);
            self.sql.push(')');
        }
        self
    }

    /// Values bound one after another with `separator` between them.
    pub(crate) fn separated(&mut self, separator: &'static str) -> Separated<'_, 'q> {
        Separated {
            builder: self,
            separator,
            first: true,
        }
    }

    pub(crate) fn build(&mut self) -> sqlx::query::Query<'_, Any, AnyArguments<'_>> {
        let args = self.args.take().expect("a statement is built once");
        sqlx::query_with(&self.sql, args)
    }
}

/// See [`Builder::separated`].
pub(crate) struct Separated<'b, 'q> {
    builder: &'b mut Builder<'q>,
    separator: &'static str,
    first: bool,
}

impl<'q> Separated<'_, 'q> {
    pub(crate) fn push_bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'q + sqlx::Encode<'q, Any> + sqlx::Type<Any>,
    {
        if !self.first {
            self.builder.sql.push_str(self.separator);
        }
        self.first = false;
        self.builder.push_bind(value);
        self
    }
}

/// Why a run could not be cleared: it is not finished, or it does not exist.
async fn not_finished(
    tx: &mut Transaction<'_, Any>,
    dag_id: &DagId,
    run_id: &RunId,
) -> Result<StoreError> {
    let exists: Option<String> =
        sqlx::query_scalar("SELECT state FROM dag_runs WHERE dag_id = $1 AND run_id = $2")
            .bind(dag_id.as_str())
            .bind(run_id.as_str())
            .fetch_optional(&mut **tx)
            .await?;
    Ok(match exists {
        Some(state) => StoreError::Conflict {
            what: format!("run `{run_id}` of DAG `{dag_id}` (it is {state})"),
            expected: "a finished run".to_owned(),
        },
        None => StoreError::NotFound(format!("run `{run_id}` of DAG `{dag_id}`")),
    })
}

fn run_from_row(row: &AnyRow) -> Result<RunRecord> {
    let conf: String = row.try_get("conf")?;
    Ok(RunRecord {
        dag_id: DagId::new(row.try_get::<String, _>("dag_id")?)?,
        run_id: RunId::new(row.try_get::<String, _>("run_id")?)?,
        kind: RunKind::try_from(row.try_get::<&str, _>("kind")?)?,
        state: RunState::try_from(row.try_get::<&str, _>("state")?)?,
        logical_date: ts(row.try_get("logical_date")?)?,
        interval_start: ts(row.try_get("interval_start")?)?,
        interval_end: ts(row.try_get("interval_end")?)?,
        run_after: ts(row.try_get("run_after")?)?,
        conf: serde_json::from_str(&conf)
            .map_err(|e| StoreError::Corrupt(format!("run conf: {e}")))?,
        created_at: ts(row.try_get("created_at")?)?,
        started_at: opt_ts(row.try_get("started_at")?)?,
        ended_at: opt_ts(row.try_get("ended_at")?)?,
        owner: match row.try_get::<Option<String>, _>("owner")? {
            None => None,
            Some(id) => Some(RunOwner {
                id,
                token: row.try_get::<i64, _>("owner_token")? as u64,
                lease_until: opt_ts(row.try_get("owner_lease_until")?)?
                    .ok_or_else(|| StoreError::Corrupt("a run owner without a lease".to_owned()))?,
            }),
        },
        dag_version: row.try_get("dag_version")?,
        clear_number: row.try_get::<i64, _>("clear_number")? as u32,
    })
}

fn ti_from_row(row: &AnyRow) -> Result<TaskInstanceRecord> {
    Ok(TaskInstanceRecord {
        key: TiKey {
            dag_id: DagId::new(row.try_get::<String, _>("dag_id")?)?,
            run_id: RunId::new(row.try_get::<String, _>("run_id")?)?,
            task_id: TaskId::new(row.try_get::<String, _>("task_id")?)?,
            map_index: MapIndex::from_raw(row.try_get("map_index")?)?,
        },
        state: TaskState::try_from(row.try_get::<&str, _>("state")?)?,
        try_number: row.try_get::<i64, _>("try_number")? as u32,
        max_tries: row.try_get::<i64, _>("max_tries")? as u32,
        pool: row.try_get("pool")?,
        pool_slots: row.try_get::<i64, _>("pool_slots")? as u32,
        started_at: opt_ts(row.try_get("started_at")?)?,
        ended_at: opt_ts(row.try_get("ended_at")?)?,
        retry_at: opt_ts(row.try_get("retry_at")?)?,
        lease_until: opt_ts(row.try_get("lease_until")?)?,
        error: row.try_get("error")?,
        owner: row.try_get("owner")?,
        queue: row.try_get("queue")?,
    })
}

const RUN_COLUMNS: &str = "dag_id, run_id, kind, state, logical_date, interval_start, interval_end, run_after, conf, created_at, started_at, ended_at, owner, owner_token, owner_lease_until, dag_version, clear_number";
const TI_COLUMNS: &str = "dag_id, run_id, task_id, map_index, state, try_number, max_tries, pool, pool_slots, started_at, ended_at, retry_at, lease_until, error, owner, queue";

#[async_trait]
impl RunStore for SqlStore {
    async fn create_run(&self, run: NewRun) -> Result<(RunRecord, bool)> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO dag_runs (dag_id, run_id, kind, state, logical_date, interval_start, interval_end, run_after, conf, created_at, dag_version)
             VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
        )
        .bind(run.dag_id.as_str())
        .bind(run.run_id.as_str())
        .bind(run.kind.as_str())
        .bind(micros(run.logical_date))
        .bind(micros(run.interval_start))
        .bind(micros(run.interval_end))
        .bind(micros(run.run_after))
        .bind(run.conf.to_string())
        .bind(micros(run.created_at))
        .bind(run.dag_version.as_deref())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM dag_runs WHERE dag_id = $1 AND logical_date = $2"
        ))
        .bind(run.dag_id.as_str())
        .bind(micros(run.logical_date))
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        match row {
            Some(row) => Ok((run_from_row(&row)?, inserted)),
            // The insert lost to a run with the same id at another logical date.
            None => Err(StoreError::Conflict {
                what: format!("run `{}` of DAG `{}`", run.run_id, run.dag_id),
                expected: "a free run id".to_owned(),
            }),
        }
    }

    async fn get_run(&self, dag_id: &DagId, run_id: &RunId) -> Result<Option<RunRecord>> {
        sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM dag_runs WHERE dag_id = $1 AND run_id = $2"
        ))
        .bind(dag_id.as_str())
        .bind(run_id.as_str())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(run_from_row)
        .transpose()
    }

    async fn run_at(&self, dag_id: &DagId, logical_date: Timestamp) -> Result<Option<RunRecord>> {
        sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM dag_runs WHERE dag_id = $1 AND logical_date = $2"
        ))
        .bind(dag_id.as_str())
        .bind(micros(logical_date))
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(run_from_row)
        .transpose()
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        let mut q = Builder::new(format!("SELECT {RUN_COLUMNS} FROM dag_runs WHERE 1 = 1"));
        if let Some(dag) = &filter.dag_id {
            q.push(" AND dag_id = ").push_bind(dag.as_str());
        }
        if !filter.states.is_empty() {
            q.push(" AND state IN (");
            let mut states = q.separated(", ");
            for state in &filter.states {
                states.push_bind(state.as_str());
            }
            q.push(")");
        }
        if let Some(from) = filter.logical_date_from {
            q.push(" AND logical_date >= ").push_bind(micros(from));
        }
        if let Some(to) = filter.logical_date_to {
            q.push(" AND logical_date <= ").push_bind(micros(to));
        }
        q.push(" ORDER BY logical_date DESC, dag_id");
        if let Some(limit) = filter.limit {
            q.push(format!(" LIMIT {limit}"));
        }
        q.build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(run_from_row)
            .collect()
    }

    async fn last_scheduled_run(&self, dag_id: &DagId) -> Result<Option<RunRecord>> {
        sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM dag_runs WHERE dag_id = $1 AND kind = 'scheduled' ORDER BY logical_date DESC LIMIT 1"
        ))
        .bind(dag_id.as_str())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(run_from_row)
        .transpose()
    }

    async fn set_run_state(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        from: RunState,
        to: RunState,
        at: Timestamp,
    ) -> Result<()> {
        from.transition(to)?;
        let query = match to {
            RunState::Running => sqlx::query(
                "UPDATE dag_runs SET state = $1, started_at = COALESCE(started_at, $2), ended_at = NULL WHERE dag_id = $3 AND run_id = $4 AND state = $5",
            )
            .bind(to.as_str())
            .bind(micros(at)),
            RunState::Success | RunState::Failed => {
                sqlx::query("UPDATE dag_runs SET state = $1, ended_at = $2 WHERE dag_id = $3 AND run_id = $4 AND state = $5")
                    .bind(to.as_str())
                    .bind(micros(at))
            }
            RunState::Queued => sqlx::query(
                "UPDATE dag_runs SET state = $1, started_at = NULL, ended_at = NULL WHERE dag_id = $2 AND run_id = $3 AND state = $4",
            )
            .bind(to.as_str()),
        };
        let query = query
            .bind(dag_id.as_str())
            .bind(run_id.as_str())
            .bind(from.as_str());
        let changed = query.execute(&self.pool).await?.rows_affected();
        if changed != 1 {
            return Err(StoreError::Conflict {
                what: format!("run `{run_id}` of DAG `{dag_id}`"),
                expected: from.to_string(),
            });
        }
        Ok(())
    }

    async fn claim_run(&self, claim: ClaimRun) -> Result<RunClaim> {
        let lookup = || async {
            sqlx::query(
                "SELECT state, owner, owner_token, owner_lease_until FROM dag_runs WHERE dag_id = $1 AND run_id = $2",
            )
            .bind(claim.dag_id.as_str())
            .bind(claim.run_id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| {
                StoreError::NotFound(format!("run `{}` of DAG `{}`", claim.run_id, claim.dag_id))
            })
        };
        // Who held it before (only to report a resume); the claim itself is one conditional
        // UPDATE, atomic across processes, which waits for SQLite's write lock like any write.
        let before: Option<String> = lookup().await?.try_get("owner")?;
        let claimed: Option<i64> = sqlx::query_scalar(
            "UPDATE dag_runs SET owner = $1, owner_token = owner_token + 1, owner_lease_until = $2
             WHERE dag_id = $3 AND run_id = $4 AND state IN ('queued', 'running')
               AND (owner IS NULL OR owner = $5 OR owner_lease_until <= $6)
             RETURNING owner_token",
        )
        .bind(&claim.owner)
        .bind(micros(claim.lease_until))
        .bind(claim.dag_id.as_str())
        .bind(claim.run_id.as_str())
        .bind(&claim.owner)
        .bind(micros(claim.now))
        .fetch_optional(&self.pool)
        .await?;
        if let Some(token) = claimed {
            return Ok(RunClaim::Claimed {
                resumed: before.is_some_and(|id| id != claim.owner),
                fence: RunFence {
                    dag_id: claim.dag_id,
                    run_id: claim.run_id,
                    owner: claim.owner,
                    token: token as u64,
                },
            });
        }
        let row = lookup().await?;
        let state = RunState::try_from(row.try_get::<&str, _>("state")?)?;
        if state.is_terminal() {
            return Ok(RunClaim::Finished(state));
        }
        match (
            row.try_get::<Option<String>, _>("owner")?,
            opt_ts(row.try_get("owner_lease_until")?)?,
        ) {
            (Some(id), Some(lease_until)) => Ok(RunClaim::Held(RunOwner {
                id,
                token: row.try_get::<i64, _>("owner_token")? as u64,
                lease_until,
            })),
            _ => Err(StoreError::Conflict {
                what: format!(
                    "the owner of run `{}` of DAG `{}`",
                    claim.run_id, claim.dag_id
                ),
                expected: "a claimable run".to_owned(),
            }),
        }
    }

    async fn renew_run(&self, fence: &RunFence, lease_until: Timestamp) -> Result<()> {
        fenced_update(&self.pool, fence, "owner_lease_until = $5 WHERE", |q| {
            q.bind(micros(lease_until))
        })
        .await
    }

    async fn release_run(&self, fence: &RunFence) -> Result<()> {
        fenced_update(
            &self.pool,
            fence,
            "owner = NULL, owner_lease_until = NULL WHERE",
            |q| q,
        )
        .await
    }

    async fn finish_run(&self, fence: &RunFence, to: RunState, at: Timestamp) -> Result<()> {
        RunState::Running.transition(to)?;
        fenced_update(
            &self.pool,
            fence,
            "state = $5, ended_at = $6, owner = NULL, owner_lease_until = NULL WHERE state = 'running' AND",
            |q| q.bind(to.as_str()).bind(micros(at)),
        )
        .await
    }

    async fn reset_run(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        conf: Option<serde_json::Value>,
        dag_version: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // Only a finished run is cleared: the state check and the clear are one write, so two
        // processes re-running the same interval cannot clear a run the other is driving.
        let changed = sqlx::query(
            "UPDATE dag_runs SET state = 'queued', started_at = NULL, ended_at = NULL, owner = NULL, owner_lease_until = NULL,
                conf = COALESCE($1, conf), clear_number = clear_number + 1, dag_version = $2
             WHERE dag_id = $3 AND run_id = $4 AND state IN ('success', 'failed')",
        )
        .bind(conf.map(|c| c.to_string()))
        .bind(dag_version)
        .bind(dag_id.as_str())
        .bind(run_id.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            return Err(not_finished(&mut tx, dag_id, run_id).await?);
        }
        for table in ["task_instances", "task_outputs"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE dag_id = $1 AND run_id = $2"
            ))
            .bind(dag_id.as_str())
            .bind(run_id.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn clear_tasks(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        whole: &[String],
        instances: &[(String, i64)],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE dag_runs SET state = 'queued', started_at = NULL, ended_at = NULL, owner = NULL, owner_lease_until = NULL,
                clear_number = clear_number + 1
             WHERE dag_id = $1 AND run_id = $2 AND state IN ('success', 'failed')",
        )
        .bind(dag_id.as_str())
        .bind(run_id.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            return Err(not_finished(&mut tx, dag_id, run_id).await?);
        }
        // A whole task goes back to not yet created: the run loop makes it again (a mapped
        // task expands again over its upstream's new output).
        for task in whole {
            for table in ["task_instances", "task_outputs"] {
                sqlx::query(&format!(
                    "DELETE FROM {table} WHERE dag_id = $1 AND run_id = $2 AND task_id = $3"
                ))
                .bind(dag_id.as_str())
                .bind(run_id.as_str())
                .bind(task)
                .execute(&mut *tx)
                .await?;
            }
        }
        // One instance (a mapped one, say) is reset in place: its siblings stay as they are.
        for (task, index) in instances {
            sqlx::query(
                "UPDATE task_instances SET state = 'none', try_number = 0, started_at = NULL, ended_at = NULL,
                    retry_at = NULL, lease_until = NULL, error = NULL, owner = NULL
                 WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND map_index = $4",
            )
            .bind(dag_id.as_str())
            .bind(run_id.as_str())
            .bind(task)
            .bind(index)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM task_outputs WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND map_index = $4",
            )
            .bind(dag_id.as_str())
            .bind(run_id.as_str())
            .bind(task)
            .bind(index)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn save_dag_version(
        &self,
        dag_id: &DagId,
        version: &str,
        source: &str,
        at: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO dag_versions (dag_id, version, source, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (dag_id, version) DO NOTHING",
        )
        .bind(dag_id.as_str())
        .bind(version)
        .bind(source)
        .bind(micros(at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn dag_version_source(&self, dag_id: &DagId, version: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar(
                "SELECT source FROM dag_versions WHERE dag_id = $1 AND version = $2",
            )
            .bind(dag_id.as_str())
            .bind(version)
            .fetch_optional(&self.pool)
            .await?,
        )
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, Any, AnyArguments<'q>>;

/// `UPDATE dag_runs SET {set_where} <the fence>`: changes the run only while `fence` is its
/// owner's, else [`StoreError::Fenced`]. The fence takes `$1`..`$4`; `bind` binds the
/// placeholders of `set_where`, which start at `$5`.
async fn fenced_update(
    pool: &AnyPool,
    fence: &RunFence,
    set_where: &str,
    bind: impl for<'q> FnOnce(AnyQuery<'q>) -> AnyQuery<'q>,
) -> Result<()> {
    let sql = format!(
        "UPDATE dag_runs SET {set_where} dag_id = $1 AND run_id = $2 AND owner = $3 AND owner_token = $4"
    );
    let query = sqlx::query(&sql)
        .bind(fence.dag_id.as_str())
        .bind(fence.run_id.as_str())
        .bind(&fence.owner)
        .bind(fence.token as i64);
    let changed = bind(query).execute(pool).await?.rows_affected();
    if changed != 1 {
        return Err(fenced(fence));
    }
    Ok(())
}

fn fenced(fence: &RunFence) -> StoreError {
    StoreError::Fenced {
        dag: fence.dag_id.to_string(),
        run: fence.run_id.to_string(),
    }
}

/// Rows per multi-row INSERT (SQLite allows 32,766 bound values).
const INSERT_CHUNK: usize = 500;

/// Keeps try `try_number` of an instance, as it ended (`state`, `error`), in the run's history.
async fn record_try(
    tx: &mut Transaction<'static, Any>,
    key: &TiKey,
    try_number: u32,
    state: TaskState,
    ended_at: i64,
    error: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO task_tries (dag_id, run_id, clear_number, task_id, map_index, try_number, state, started_at, ended_at, error)
         SELECT dag_id, run_id,
                (SELECT clear_number FROM dag_runs r WHERE r.dag_id = task_instances.dag_id AND r.run_id = task_instances.run_id),
                task_id, map_index, $1, $2, started_at, $3, $4 FROM task_instances
         WHERE dag_id = $5 AND run_id = $6 AND task_id = $7 AND map_index = $8
         ON CONFLICT (dag_id, run_id, clear_number, task_id, map_index, try_number) DO UPDATE SET
            state = excluded.state, started_at = excluded.started_at, ended_at = excluded.ended_at,
            error = excluded.error",
    )
    .bind(try_number as i64)
    .bind(state.as_str())
    .bind(ended_at)
    .bind(error)
    .bind(key.dag_id.as_str())
    .bind(key.run_id.as_str())
    .bind(key.task_id.as_str())
    .bind(key.map_index.raw())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Keeps an instance's output (a re-run replaces it).
async fn record_output(
    tx: &mut Transaction<'static, Any>,
    key: &TiKey,
    output: &serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO task_outputs (dag_id, run_id, task_id, map_index, value) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (dag_id, run_id, task_id, map_index) DO UPDATE SET value = excluded.value",
    )
    .bind(key.dag_id.as_str())
    .bind(key.run_id.as_str())
    .bind(key.task_id.as_str())
    .bind(key.map_index.raw())
    .bind(output.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A change to a claimed task instance whose claim was handed to someone else.
fn fenced_ti(key: &TiKey) -> StoreError {
    StoreError::FencedTask(format!(
        "{}/{}/{}[{}]",
        key.dag_id, key.run_id, key.task_id, key.map_index
    ))
}

async fn apply_one(tx: &mut Transaction<'static, Any>, c: &TiChange) -> Result<()> {
    // A claim moves an instance straight to running: queued is transient inside one process.
    if !(c.state == TaskState::Running && c.expect_state.is_claimable()) {
        c.expect_state.transition(c.state)?;
    }
    let at = micros(c.at);
    let starts = c.state == TaskState::Running;
    let ends_try = c.expect_state == TaskState::Running;
    let changed = sqlx::query(
        "UPDATE task_instances SET state = $1, try_number = $2,
            started_at = CASE WHEN $3 THEN $4 ELSE started_at END,
            ended_at = CASE WHEN $5 THEN $6 ELSE NULL END,
            lease_until = $7, retry_at = $8, error = COALESCE($9, CASE WHEN $10 THEN NULL ELSE error END)
         WHERE dag_id = $11 AND run_id = $12 AND task_id = $13 AND map_index = $14 AND state = $15 AND try_number = $16",
    )
    .bind(c.state.as_str())
    .bind(c.try_number as i64)
    .bind(starts)
    .bind(at)
    .bind(c.state.is_terminal() || c.state == TaskState::UpForRetry)
    .bind(at)
    .bind(c.lease_until.map(micros))
    .bind(c.retry_at.map(micros))
    .bind(c.error.as_deref())
    .bind(starts)
    .bind(c.key.dag_id.as_str())
    .bind(c.key.run_id.as_str())
    .bind(c.key.task_id.as_str())
    .bind(c.key.map_index.raw())
    .bind(c.expect_state.as_str())
    .bind(c.expect_try as i64)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if changed != 1 {
        return Err(StoreError::Conflict {
            what: format!(
                "task instance {}/{}/{}[{}]",
                c.key.dag_id, c.key.run_id, c.key.task_id, c.key.map_index
            ),
            expected: format!("{} at try {}", c.expect_state, c.expect_try),
        });
    }
    if ends_try {
        record_try(tx, &c.key, c.expect_try, c.state, at, c.error.as_deref()).await?;
    }
    if let Some(output) = c.output.as_ref().filter(|o| !o.is_null()) {
        record_output(tx, &c.key, output).await?;
    }
    Ok(())
}

#[async_trait]
impl TaskInstanceStore for SqlStore {
    async fn insert_task_instances(&self, tis: &[NewTaskInstance]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for chunk in tis.chunks(INSERT_CHUNK) {
            let mut q = Builder::new(
                "INSERT INTO task_instances (dag_id, run_id, task_id, map_index, state, try_number, max_tries, pool, pool_slots, queue)",
            );
            q.push_values(chunk, |mut b, ti| {
                b.push_bind(ti.key.dag_id.as_str())
                    .push_bind(ti.key.run_id.as_str())
                    .push_bind(ti.key.task_id.as_str())
                    .push_bind(ti.key.map_index.raw())
                    .push_bind(ti.state.as_str())
                    .push_bind(0_i64)
                    .push_bind(ti.max_tries as i64)
                    .push_bind(ti.pool.as_str())
                    .push_bind(ti.pool_slots as i64)
                    .push_bind(ti.queue.as_str());
            });
            q.push(" ON CONFLICT DO NOTHING");
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn expand_mapped(&self, placeholder: &NewTaskInstance, count: usize) -> Result<()> {
        let key = &placeholder.key;
        let mut tx = self.pool.begin().await?;
        let removed = sqlx::query(
            "DELETE FROM task_instances WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND map_index = -1 AND state = 'none'",
        )
        .bind(key.dag_id.as_str())
        .bind(key.run_id.as_str())
        .bind(key.task_id.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if removed == 1 {
            let indices: Vec<i64> = (0..count as i64).collect();
            for chunk in indices.chunks(INSERT_CHUNK) {
                let mut q = Builder::new(
                    "INSERT INTO task_instances (dag_id, run_id, task_id, map_index, state, try_number, max_tries, pool, pool_slots, queue)",
                );
                q.push_values(chunk, |mut b, &i| {
                    b.push_bind(key.dag_id.as_str())
                        .push_bind(key.run_id.as_str())
                        .push_bind(key.task_id.as_str())
                        .push_bind(i)
                        .push_bind(TaskState::None.as_str())
                        .push_bind(0_i64)
                        .push_bind(placeholder.max_tries as i64)
                        .push_bind(placeholder.pool.as_str())
                        .push_bind(placeholder.pool_slots as i64)
                        .push_bind(placeholder.queue.as_str());
                });
                q.push(" ON CONFLICT DO NOTHING");
                q.build().execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn task_instances(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
    ) -> Result<Vec<TaskInstanceRecord>> {
        sqlx::query(&format!(
            "SELECT {TI_COLUMNS} FROM task_instances WHERE dag_id = $1 AND run_id = $2 ORDER BY rowid"
        ))
        .bind(dag_id.as_str())
        .bind(run_id.as_str())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(ti_from_row)
        .collect()
    }

    async fn instance_counts(&self, dag_id: &DagId, run_id: &RunId) -> Result<Vec<InstanceCount>> {
        sqlx::query(
            "SELECT task_id, state, CASE WHEN map_index >= 0 THEN 1 ELSE 0 END AS mapped,
                    COUNT(*) AS n
             FROM task_instances WHERE dag_id = $1 AND run_id = $2
             GROUP BY task_id, state, CASE WHEN map_index >= 0 THEN 1 ELSE 0 END",
        )
        .bind(dag_id.as_str())
        .bind(run_id.as_str())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(InstanceCount {
                task_id: row.try_get("task_id")?,
                state: TaskState::try_from(row.try_get::<&str, _>("state")?)?,
                mapped: row
                    .try_get::<i32, _>("mapped")
                    .map(|m| m != 0)
                    .or_else(|_| row.try_get::<i64, _>("mapped").map(|m| m != 0))?,
                count: row.try_get::<i64, _>("n")? as u64,
            })
        })
        .collect()
    }

    async fn apply(&self, changes: &[TiChange]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for change in changes {
            apply_one(&mut tx, change).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn apply_fenced(&self, fence: &RunFence, changes: &[TiChange]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // The fence check is the transaction's first statement and a write, so the transaction
        // holds SQLite's write lock from here on: no other process can take the run over
        // between the check and the changes.
        let held = sqlx::query(
            "UPDATE dag_runs SET owner_token = owner_token WHERE dag_id = $1 AND run_id = $2 AND owner = $3 AND owner_token = $4",
        )
        .bind(fence.dag_id.as_str())
        .bind(fence.run_id.as_str())
        .bind(&fence.owner)
        .bind(fence.token as i64)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if held != 1 {
            return Err(fenced(fence));
        }
        for change in changes {
            apply_one(&mut tx, change).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn renew_leases(&self, keys: &[TiKey], lease_until: Timestamp) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for key in keys {
            sqlx::query(
                "UPDATE task_instances SET lease_until = $1 WHERE dag_id = $2 AND run_id = $3 AND task_id = $4 AND map_index = $5 AND state = 'running'",
            )
            .bind(micros(lease_until))
            .bind(key.dag_id.as_str())
            .bind(key.run_id.as_str())
            .bind(key.task_id.as_str())
            .bind(key.map_index.raw())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn orphaned(&self, now: Timestamp) -> Result<Vec<TaskInstanceRecord>> {
        sqlx::query(&format!(
            "SELECT {TI_COLUMNS} FROM task_instances WHERE state = 'running' AND (lease_until IS NULL OR lease_until < $1) ORDER BY rowid"
        ))
        .bind(micros(now))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(ti_from_row)
        .collect()
    }

    async fn outputs(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        task_id: &str,
    ) -> Result<Vec<(i64, serde_json::Value)>> {
        let rows = sqlx::query(
            "SELECT map_index, value FROM task_outputs WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 ORDER BY map_index",
        )
        .bind(dag_id.as_str())
        .bind(run_id.as_str())
        .bind(task_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let value: &str = row.try_get("value")?;
                let value = serde_json::from_str(value)
                    .map_err(|e| StoreError::Corrupt(format!("task output: {e}")))?;
                Ok((row.try_get("map_index")?, value))
            })
            .collect()
    }

    async fn tries(&self, dag_id: &DagId, run_id: &RunId) -> Result<Vec<TryRecord>> {
        let rows = sqlx::query(
            "SELECT clear_number, task_id, map_index, try_number, state, started_at, ended_at, error FROM task_tries
             WHERE dag_id = $1 AND run_id = $2 ORDER BY clear_number, ended_at, task_id, map_index, try_number",
        )
        .bind(dag_id.as_str())
        .bind(run_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TryRecord {
                    clear_number: row.try_get::<i64, _>("clear_number")? as u32,
                    task_id: TaskId::new(row.try_get::<String, _>("task_id")?)?,
                    map_index: MapIndex::from_raw(row.try_get("map_index")?)?,
                    try_number: row.try_get::<i64, _>("try_number")? as u32,
                    state: TaskState::try_from(row.try_get::<&str, _>("state")?)?,
                    started_at: opt_ts(row.try_get("started_at")?)?,
                    ended_at: ts(row.try_get("ended_at")?)?,
                    error: row.try_get("error")?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl PoolStore for SqlStore {
    async fn set_pool(&self, name: &str, slots: u32, description: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO pools (name, slots, description) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET slots = excluded.slots, description = excluded.description",
        )
        .bind(name)
        .bind(slots as i64)
        .bind(description)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn pools(&self) -> Result<Vec<PoolRecord>> {
        let rows = sqlx::query("SELECT name, slots, description FROM pools ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(PoolRecord {
                    name: row.try_get("name")?,
                    slots: row.try_get::<i64, _>("slots")? as u32,
                    description: row.try_get("description")?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl ManifestStore for SqlStore {
    async fn record_manifest(&self, m: &PartitionManifest) -> Result<()> {
        sqlx::query(
            "INSERT INTO partition_manifests (dataset, partition, rows_in, rows_out, rows_rejected, bytes, files, checksum, schema,
                dag_id, run_id, task_id, map_index, try_number, committed_at, incomplete) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(&m.dataset)
        .bind(&m.partition)
        .bind(m.rows_in as i64)
        .bind(m.rows_out as i64)
        .bind(m.rows_rejected as i64)
        .bind(m.bytes as i64)
        .bind(m.files as i64)
        .bind(&m.checksum)
        .bind(&m.schema)
        .bind(&m.dag_id)
        .bind(&m.run_id)
        .bind(&m.task_id)
        .bind(m.map_index)
        .bind(m.try_number as i64)
        .bind(micros(m.committed_at))
        .bind(&m.incomplete)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn manifests(&self, dataset: &str) -> Result<Vec<PartitionManifest>> {
        let rows = sqlx::query(
            "SELECT * FROM partition_manifests m WHERE dataset = $1
               AND id = (SELECT MAX(id) FROM partition_manifests n WHERE n.dataset = m.dataset AND n.partition = m.partition)
             ORDER BY partition",
        )
        .bind(dataset)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PartitionManifest {
                    dataset: row.try_get("dataset")?,
                    partition: row.try_get("partition")?,
                    rows_in: row.try_get::<i64, _>("rows_in")? as u64,
                    rows_out: row.try_get::<i64, _>("rows_out")? as u64,
                    rows_rejected: row.try_get::<i64, _>("rows_rejected")? as u64,
                    bytes: row.try_get::<i64, _>("bytes")? as u64,
                    files: row.try_get::<i64, _>("files")? as u32,
                    checksum: row.try_get("checksum")?,
                    schema: row.try_get("schema")?,
                    dag_id: row.try_get("dag_id")?,
                    run_id: row.try_get("run_id")?,
                    task_id: row.try_get("task_id")?,
                    map_index: row.try_get("map_index")?,
                    try_number: row.try_get::<i64, _>("try_number")? as u32,
                    committed_at: ts(row.try_get("committed_at")?)?,
                    incomplete: row.try_get("incomplete")?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl RejectStore for SqlStore {
    async fn record_rejects(&self, rejects: &[RejectRecord]) -> Result<()> {
        if rejects.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for chunk in rejects.chunks(INSERT_CHUNK / 2) {
            let mut q = Builder::new(
                "INSERT INTO dead_letters (source, line, raw, reason, error_class, dag_id, run_id, task_id, map_index, try_number, first_seen, last_seen) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(&r.source)
                    .push_bind(r.line as i64)
                    .push_bind(&r.raw)
                    .push_bind(&r.reason)
                    .push_bind(&r.error_class)
                    .push_bind(&r.dag_id)
                    .push_bind(&r.run_id)
                    .push_bind(&r.task_id)
                    .push_bind(r.map_index)
                    .push_bind(r.try_number as i64)
                    .push_bind(micros(r.rejected_at))
                    .push_bind(micros(r.rejected_at));
            });
            q.push(
                " ON CONFLICT (source, line) DO UPDATE SET raw = excluded.raw, reason = excluded.reason,
                  error_class = excluded.error_class,
                  dag_id = excluded.dag_id, run_id = excluded.run_id, task_id = excluded.task_id,
                  map_index = excluded.map_index, try_number = excluded.try_number, last_seen = excluded.last_seen",
            );
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn dead_letters(&self, filter: &RejectFilter) -> Result<Vec<DeadLetter>> {
        let mut q = Builder::new(format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE 1 = 1"
        ));
        if let Some(source) = &filter.source {
            q.push(" AND source = ").push_bind(source);
        }
        if let Some(dag) = &filter.dag_id {
            q.push(" AND dag_id = ").push_bind(dag);
        }
        if let Some(run) = &filter.run_id {
            q.push(" AND run_id = ").push_bind(run);
        }
        if let Some(task) = &filter.task_id {
            q.push(" AND task_id = ").push_bind(task);
        }
        if let Some(status) = filter.status {
            q.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(batch) = &filter.replay_batch {
            q.push(" AND replay_batch = ").push_bind(batch);
        }
        q.push(" ORDER BY id");
        if let Some(limit) = filter.limit {
            q.push(" LIMIT ").push_bind(limit as i64);
        }
        q.build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(dead_letter_of)
            .collect()
    }

    async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetter>> {
        sqlx::query(&format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(dead_letter_of)
        .transpose()
    }

    async fn correct_dead_letter(&self, id: i64, payload: Option<&str>) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE dead_letters SET corrected = $1,
                 status = CASE WHEN status = 'quarantined' THEN 'pending' ELSE status END
             WHERE id = $2 AND status != 'replayed'",
        )
        .bind(payload)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated == 1 {
            return Ok(());
        }
        match self.dead_letter(id).await? {
            None => Err(StoreError::NotFound(format!("dead letter {id}"))),
            Some(d) => Err(StoreError::Conflict {
                what: format!(
                    "dead letter {id}, already replayed into {}",
                    d.replayed_into.as_deref().unwrap_or("its partition")
                ),
                expected: "pending, replaying or quarantined".into(),
            }),
        }
    }

    async fn begin_replay(&self, ids: &[i64], batch: &str) -> Result<Vec<i64>> {
        let mut tx = self.pool.begin().await?;
        let mut claimed = Vec::new();
        for chunk in ids.chunks(INSERT_CHUNK) {
            let mut q =
                Builder::new("UPDATE dead_letters SET status = 'replaying', replay_batch = ");
            q.push_bind(batch);
            q.push(" WHERE status = 'pending' AND id IN (");
            let mut sep = q.separated(", ");
            for id in chunk {
                sep.push_bind(*id);
            }
            q.push(") RETURNING id");
            for row in q.build().fetch_all(&mut *tx).await? {
                claimed.push(row.try_get::<i64, _>("id")?);
            }
        }
        tx.commit().await?;
        claimed.sort_unstable();
        Ok(claimed)
    }

    async fn finish_replay(
        &self,
        outcomes: &[ReplayOutcome],
        max_replays: u32,
        at: Timestamp,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for outcome in outcomes {
            match outcome {
                ReplayOutcome::Replayed { id, into } => {
                    sqlx::query(
                        "UPDATE dead_letters SET status = 'replayed', replays = replays + 1,
                             replayed_into = $1, replayed_at = $2, last_error = NULL WHERE id = $3",
                    )
                    .bind(into)
                    .bind(micros(at))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                ReplayOutcome::Released { id } => {
                    sqlx::query(
                        "UPDATE dead_letters SET status = 'pending' WHERE id = $1 AND status = 'replaying'",
                    )
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                ReplayOutcome::Failed { id, reason } => {
                    sqlx::query(
                        "UPDATE dead_letters SET replays = replays + 1, last_error = $1,
                             status = CASE WHEN replays + 1 >= $2 THEN 'quarantined' ELSE 'pending' END
                         WHERE id = $3 AND status != 'replayed'",
                    )
                    .bind(reason)
                    .bind(max_replays as i64)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn reopen_dead_letters(&self, source: &str, lines: &[u64]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for chunk in lines.chunks(INSERT_CHUNK) {
            let mut q = Builder::new(
                "UPDATE dead_letters SET status = 'pending', replayed_into = NULL, replayed_at = NULL WHERE status = 'replayed' AND source = ",
            );
            q.push_bind(source);
            q.push(" AND line IN (");
            let mut sep = q.separated(", ");
            for line in chunk {
                sep.push_bind(*line as i64);
            }
            q.push(")");
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn purge_dead_letters(
        &self,
        before: Timestamp,
        statuses: &[DeadLetterStatus],
    ) -> Result<u64> {
        if statuses.is_empty() {
            return Ok(0);
        }
        let mut q = Builder::new("DELETE FROM dead_letters WHERE last_seen < ");
        q.push_bind(micros(before));
        q.push(" AND status IN (");
        let mut sep = q.separated(", ");
        for st in statuses {
            sep.push_bind(st.as_str());
        }
        q.push(")");
        Ok(q.build().execute(&self.pool).await?.rows_affected())
    }
}

const DEAD_LETTER_COLUMNS: &str = "id, source, line, raw, corrected, reason, error_class, dag_id, run_id, task_id, map_index, try_number, first_seen, last_seen, status, replays, last_error, replay_batch, replayed_into, replayed_at";

fn dead_letter_of(row: &AnyRow) -> Result<DeadLetter> {
    let status: String = row.try_get("status")?;
    Ok(DeadLetter {
        id: row.try_get("id")?,
        source: row.try_get("source")?,
        line: row.try_get::<i64, _>("line")? as u64,
        raw: row.try_get("raw")?,
        corrected: row.try_get("corrected")?,
        reason: row.try_get("reason")?,
        error_class: row.try_get("error_class")?,
        dag_id: row.try_get("dag_id")?,
        run_id: row.try_get("run_id")?,
        task_id: row.try_get("task_id")?,
        map_index: row.try_get("map_index")?,
        try_number: row.try_get::<i64, _>("try_number")? as u32,
        first_seen: ts(row.try_get("first_seen")?)?,
        last_seen: ts(row.try_get("last_seen")?)?,
        status: DeadLetterStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("dead-letter status {status:?}")))?,
        replays: row.try_get::<i64, _>("replays")? as u32,
        last_error: row.try_get("last_error")?,
        replay_batch: row.try_get("replay_batch")?,
        replayed_into: row.try_get("replayed_into")?,
        replayed_at: opt_ts(row.try_get("replayed_at")?)?,
    })
}

#[async_trait]
impl crate::CheckStore for SqlStore {
    async fn record_checks(&self, results: &[CheckResult]) -> Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(results.len());
        for r in results {
            let rule = serde_json::to_string(&r.rule)
                .map_err(|e| StoreError::Corrupt(format!("check rule: {e}")))?;
            let sample = serde_json::to_string(&r.sample)
                .map_err(|e| StoreError::Corrupt(format!("check sample: {e}")))?;
            rows.push((r, rule, sample));
        }
        let mut tx = self.pool.begin().await?;
        for chunk in rows.chunks(INSERT_CHUNK / 2) {
            let mut q = Builder::new(
                "INSERT INTO check_results (dag_id, run_id, task_id, map_index, try_number, gate, name, rule, severity, passed, failing, observed, sample, checked_at) ",
            );
            q.push_values(chunk, |mut b, (r, rule, sample)| {
                b.push_bind(&r.dag_id)
                    .push_bind(&r.run_id)
                    .push_bind(&r.task_id)
                    .push_bind(r.map_index)
                    .push_bind(r.try_number as i64)
                    .push_bind(r.gate.as_str())
                    .push_bind(&r.name)
                    .push_bind(rule)
                    .push_bind(r.severity.as_str())
                    .push_bind(r.passed)
                    .push_bind(r.failing as i64)
                    .push_bind(&r.observed)
                    .push_bind(sample)
                    .push_bind(micros(r.checked_at));
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn checks(&self, filter: &CheckFilter) -> Result<Vec<CheckResult>> {
        let mut q = Builder::new(format!(
            "SELECT id, {CHECK_COLUMNS} FROM check_results WHERE 1 = 1"
        ));
        if let Some(dag) = &filter.dag_id {
            q.push(" AND dag_id = ").push_bind(dag);
        }
        if let Some(run) = &filter.run_id {
            q.push(" AND run_id = ").push_bind(run);
        }
        if let Some(task) = &filter.task_id {
            q.push(" AND task_id = ").push_bind(task);
        }
        if filter.failed_only {
            q.push(" AND NOT passed");
        }
        q.push(" ORDER BY id DESC");
        if let Some(limit) = filter.limit {
            q.push(" LIMIT ").push_bind(limit as i64);
        }
        let mut results = q
            .build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(check_of)
            .collect::<Result<Vec<_>>>()?;
        // Newest first to apply the limit; listed oldest first.
        results.reverse();
        Ok(results)
    }
}

const CHECK_COLUMNS: &str = "dag_id, run_id, task_id, map_index, try_number, gate, name, rule, severity, passed, failing, observed, sample, checked_at";

fn check_of(row: &AnyRow) -> Result<CheckResult> {
    let gate: String = row.try_get("gate")?;
    let severity: String = row.try_get("severity")?;
    let rule: String = row.try_get("rule")?;
    let sample: String = row.try_get("sample")?;
    Ok(CheckResult {
        dag_id: row.try_get("dag_id")?,
        run_id: row.try_get("run_id")?,
        task_id: row.try_get("task_id")?,
        map_index: row.try_get("map_index")?,
        try_number: row.try_get::<i64, _>("try_number")? as u32,
        gate: CheckGate::parse(&gate)
            .ok_or_else(|| StoreError::Corrupt(format!("check gate {gate:?}")))?,
        name: row.try_get("name")?,
        rule: serde_json::from_str(&rule)
            .map_err(|e| StoreError::Corrupt(format!("check rule {rule:?}: {e}")))?,
        severity: CheckSeverity::parse(&severity)
            .ok_or_else(|| StoreError::Corrupt(format!("check severity {severity:?}")))?,
        passed: flag(row, "passed")?,
        failing: row.try_get::<i64, _>("failing")? as u64,
        observed: row.try_get("observed")?,
        sample: serde_json::from_str(&sample)
            .map_err(|e| StoreError::Corrupt(format!("check sample: {e}")))?,
        checked_at: ts(row.try_get("checked_at")?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every schema change after PostgreSQL's first migration is made on both backends, with
    /// the same number and name.
    #[test]
    fn both_backends_have_every_migration() {
        let after_init = |m: Migrations| -> Vec<(i64, &str)> {
            m.iter()
                .filter(|(v, _, _)| *v > 11)
                .map(|(v, n, _)| (*v, *n))
                .collect()
        };
        assert_eq!(
            after_init(SQLITE_MIGRATIONS),
            after_init(POSTGRES_MIGRATIONS)
        );
        assert_eq!(POSTGRES_MIGRATIONS[0].0, 11);
    }
}
