//! `write_table`: loads a dataset or a query result into a table of a SQLite file, the embedded
//! warehouse.
//!
//! Rows go in with multi-row `INSERT`s, committed every `batch_rows` rows, so a load of millions
//! of rows neither holds one huge transaction nor pays a commit per row. Modes:
//! - `append` adds the rows;
//! - `upsert` inserts or, where a row with the same `key` exists, updates it (a unique index on
//!   the key is created if missing), so re-loading an interval is idempotent;
//! - `replace` loads into a staging table and swaps it in with one transaction: readers see the
//!   old table or the new one, never half of it.
//!
//! With `rebuild_indexes`, the table's other indexes are dropped before the load and created
//! again after it (much faster for big loads). The backend is behind [`TableSink`]; the
//! PostgreSQL work adds a second one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use arrow::array::{Array, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Schema};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{Connection, Row, SqliteConnection};
use weir_query::QueryEngine;
use weir_runtime::{TaskContext, TaskError, TaskResult};

use crate::sql::run_params;
use crate::{Operator, expand_path, to_output};

/// How rows meet what the table holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TableMode {
    Append,
    Upsert { key: Vec<String> },
    Replace,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteTable {
    /// The SQLite file (created if missing; `{home}` and `{dag_id}` are expanded).
    pub database: PathBuf,
    pub table: String,
    /// Load every row of this dataset (its partition columns included)…
    #[serde(default)]
    pub dataset: Option<PathBuf>,
    /// …or the rows of this query (run values bound as in the `sql` operator) over `tables`.
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub tables: BTreeMap<String, PathBuf>,
    pub mode: TableMode,
    /// Rows per transaction.
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    /// Drop the table's other indexes before the load and create them again after.
    #[serde(default)]
    pub rebuild_indexes: bool,
}

fn default_batch_rows() -> usize {
    50_000
}

/// What a load did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableWritten {
    pub database: PathBuf,
    pub table: String,
    pub rows: u64,
    pub transactions: u64,
    /// Indexes dropped and created again.
    pub indexes_rebuilt: Vec<String>,
    /// Rows in the table after the load.
    pub table_rows: u64,
}

/// A warehouse a table load writes to.
#[async_trait]
pub trait TableSink: Send + Sync {
    async fn load(
        &self,
        spec: &WriteTable,
        database: &Path,
        batches: &[RecordBatch],
    ) -> Result<TableWritten, TaskError>;
}

/// The SQLite backend.
#[derive(Debug, Default, Clone, Copy)]
pub struct SqliteSink;

impl WriteTable {
    pub fn from_dataset(
        database: impl Into<PathBuf>,
        table: impl Into<String>,
        dataset: impl Into<PathBuf>,
        mode: TableMode,
    ) -> Self {
        WriteTable {
            database: database.into(),
            table: table.into(),
            dataset: Some(dataset.into()),
            query: None,
            tables: BTreeMap::new(),
            mode,
            batch_rows: default_batch_rows(),
            rebuild_indexes: false,
        }
    }
}

#[async_trait]
impl Operator for WriteTable {
    fn name(&self) -> &'static str {
        "write_table"
    }

    fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.table.is_empty()
            || !self
                .table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            problems.push(format!(
                "table `{}` must be letters, digits and _ only",
                self.table
            ));
        }
        match (&self.dataset, &self.query) {
            (Some(_), Some(_)) => problems.push("give `dataset` or `query`, not both".to_owned()),
            (None, None) => problems.push("give the rows to load: `dataset` or `query`".to_owned()),
            _ => {}
        }
        if self.batch_rows == 0 {
            problems.push("batch_rows must be at least 1".to_owned());
        }
        if let TableMode::Upsert { key } = &self.mode
            && key.is_empty()
        {
            problems.push("upsert needs `key`: the columns that identify a row".to_owned());
        }
        problems
    }

    async fn execute(&self, ctx: TaskContext) -> TaskResult {
        let engine = QueryEngine::new();
        let query = match (&self.dataset, &self.query) {
            (Some(dir), _) => {
                engine
                    .register("source", &expand_path(&ctx, dir))
                    .await
                    .map_err(|e| TaskError::fatal(e.to_string()))?;
                "SELECT * FROM source".to_owned()
            }
            (None, Some(query)) => {
                for (name, dir) in &self.tables {
                    engine
                        .register(name, &expand_path(&ctx, dir))
                        .await
                        .map_err(|e| TaskError::fatal(format!("table `{name}`: {e}")))?;
                }
                query.clone()
            }
            (None, None) => return Err(TaskError::fatal("nothing to load")),
        };
        let batches = engine
            .sql_with_params(&query, &run_params(&ctx))
            .await
            .map_err(TaskError::from)?;
        let database = expand_path(&ctx, &self.database);
        let written = SqliteSink.load(self, &database, &batches).await?;
        tracing::info!(table = %self.table, rows = written.rows, transactions = written.transactions, "loaded");
        to_output(&written)
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn sql_type(dt: &DataType) -> &'static str {
    match dt {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Boolean => "INTEGER",
        DataType::Float16 | DataType::Float32 | DataType::Float64 => "REAL",
        // Text keeps decimals exact and instants in RFC 3339.
        _ => "TEXT",
    }
}

/// One column, ready to bind.
enum Column {
    Int(Int64Array),
    Real(Float64Array),
    Bool(BooleanArray),
    Text(StringArray),
}

fn columns(batch: &RecordBatch) -> Result<Vec<Column>, TaskError> {
    let cast = |a: &dyn Array, to: &DataType| {
        arrow::compute::cast(a, to)
            .map_err(|e| TaskError::fatal(format!("converting a column for SQLite: {e}")))
    };
    batch
        .columns()
        .iter()
        .map(|c| {
            Ok(match sql_type(c.data_type()) {
                "INTEGER" if *c.data_type() == DataType::Boolean => Column::Bool(
                    c.as_any()
                        .downcast_ref::<BooleanArray>()
                        .expect("bool")
                        .clone(),
                ),
                "INTEGER" => Column::Int(
                    cast(c, &DataType::Int64)?
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .expect("Int64")
                        .clone(),
                ),
                "REAL" => Column::Real(
                    cast(c, &DataType::Float64)?
                        .as_any()
                        .downcast_ref::<Float64Array>()
                        .expect("Float64")
                        .clone(),
                ),
                _ => Column::Text(
                    cast(c, &DataType::Utf8)?
                        .as_any()
                        .downcast_ref::<StringArray>()
                        .expect("Utf8")
                        .clone(),
                ),
            })
        })
        .collect()
}

fn db_err(action: &str) -> impl Fn(sqlx::Error) -> TaskError + '_ {
    move |e| {
        let transient = matches!(
            &e,
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed
        ) || e.to_string().contains("database is locked");
        let message = format!("{action}: {e}");
        if transient {
            TaskError::retryable(message)
        } else {
            TaskError::fatal(message)
        }
    }
}

#[async_trait]
impl TableSink for SqliteSink {
    async fn load(
        &self,
        spec: &WriteTable,
        database: &Path,
        batches: &[RecordBatch],
    ) -> Result<TableWritten, TaskError> {
        if let Some(parent) = database.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(TaskError::from)?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(db_err("opening the database"))?
            .filename(database)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(30));
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .map_err(db_err("opening the database"))?;
        let schema: std::sync::Arc<Schema> = match batches.first() {
            Some(b) => b.schema(),
            None => {
                return Ok(TableWritten {
                    database: database.to_path_buf(),
                    table: spec.table.clone(),
                    rows: 0,
                    transactions: 0,
                    indexes_rebuilt: Vec::new(),
                    table_rows: count(&mut conn, &spec.table).await.unwrap_or(0),
                });
            }
        };
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let target = match spec.mode {
            TableMode::Replace => format!("{}__weir_staging", spec.table),
            _ => spec.table.clone(),
        };
        let column_defs: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| format!("{} {}", quote(f.name()), sql_type(f.data_type())))
            .collect();
        if matches!(spec.mode, TableMode::Replace) {
            sqlx::query(&format!("DROP TABLE IF EXISTS {}", quote(&target)))
                .execute(&mut conn)
                .await
                .map_err(db_err("dropping the staging table"))?;
        }
        sqlx::query(&format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            quote(&target),
            column_defs.join(", ")
        ))
        .execute(&mut conn)
        .await
        .map_err(db_err("creating the table"))?;
        // The table must have every column the rows bring.
        let existing: Vec<String> = sqlx::query(&format!("PRAGMA table_info({})", quote(&target)))
            .fetch_all(&mut conn)
            .await
            .map_err(db_err("reading the table's columns"))?
            .iter()
            .map(|r| r.get::<String, _>("name"))
            .collect();
        let missing: Vec<&String> = names.iter().filter(|n| !existing.contains(n)).collect();
        if !missing.is_empty() {
            return Err(TaskError::fatal(format!(
                "table {} has no column {:?} (it has {:?}); add them or load into another table",
                spec.table, missing, existing
            )));
        }
        let key_index = format!("weir_key_{}", spec.table);
        if let TableMode::Upsert { key } = &spec.mode {
            if let Some(k) = key.iter().find(|k| !names.contains(k)) {
                return Err(TaskError::fatal(format!(
                    "upsert key column `{k}` is not in the rows (they have {names:?})"
                )));
            }
            sqlx::query(&format!(
                "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({})",
                quote(&key_index),
                quote(&target),
                key.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ")
            ))
            .execute(&mut conn)
            .await
            .map_err(db_err("creating the key index"))?;
        }
        // Secondary indexes: dropped now and created after (replace always recreates the old
        // table's on the new one).
        let rebuild = spec.rebuild_indexes || matches!(spec.mode, TableMode::Replace);
        let mut indexes: Vec<(String, String)> = Vec::new();
        if rebuild {
            indexes = sqlx::query(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL AND name != ?",
            )
            .bind(&spec.table)
            .bind(&key_index)
            .fetch_all(&mut conn)
            .await
            .map_err(db_err("listing the indexes"))?
            .iter()
            .map(|r| (r.get("name"), r.get("sql")))
            .collect();
            if !matches!(spec.mode, TableMode::Replace) {
                for (name, _) in &indexes {
                    sqlx::query(&format!("DROP INDEX {}", quote(name)))
                        .execute(&mut conn)
                        .await
                        .map_err(db_err("dropping an index"))?;
                }
            }
        }
        let conflict = match &spec.mode {
            TableMode::Upsert { key } => {
                let set: Vec<String> = names
                    .iter()
                    .filter(|n| !key.contains(n))
                    .map(|n| format!("{0} = excluded.{0}", quote(n)))
                    .collect();
                let action = if set.is_empty() {
                    "DO NOTHING".to_owned()
                } else {
                    format!("DO UPDATE SET {}", set.join(", "))
                };
                format!(
                    " ON CONFLICT ({}) {action}",
                    key.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ")
                )
            }
            TableMode::Append | TableMode::Replace => String::new(),
        };
        let insert = format!(
            "INSERT INTO {} ({}) ",
            quote(&target),
            names
                .iter()
                .map(|n| quote(n))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let per_statement = (32_000 / names.len().max(1)).clamp(1, 500);
        let loaded = insert_all(
            &mut conn,
            spec,
            &target,
            &insert,
            &conflict,
            per_statement,
            batches,
            &indexes,
        )
        .await;
        let (rows, transactions) = match loaded {
            Ok(done) => done,
            Err(e) => {
                // Indexes dropped for the load are put back (a failed load must not leave the
                // table without them; a retry would not know they existed).
                if !matches!(spec.mode, TableMode::Replace) {
                    for (_, sql) in &indexes {
                        let _ = sqlx::query(&sql.replacen(
                            "CREATE INDEX",
                            "CREATE INDEX IF NOT EXISTS",
                            1,
                        ))
                        .execute(&mut conn)
                        .await;
                    }
                }
                return Err(e);
            }
        };
        let table_rows = count(&mut conn, &spec.table).await?;
        Ok(TableWritten {
            database: database.to_path_buf(),
            table: spec.table.clone(),
            rows,
            transactions,
            indexes_rebuilt: indexes.into_iter().map(|(n, _)| n).collect(),
            table_rows,
        })
    }
}

async fn count(conn: &mut SqliteConnection, table: &str) -> Result<u64, TaskError> {
    let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", quote(table)))
        .fetch_one(conn)
        .await
        .map_err(db_err("counting rows"))?;
    Ok(n as u64)
}

/// The inserts in transactions of `batch_rows`, the replace swap and the index rebuild in the
/// last one; returns (rows, transactions).
#[allow(clippy::too_many_arguments)]
async fn insert_all(
    conn: &mut SqliteConnection,
    spec: &WriteTable,
    target: &str,
    insert: &str,
    conflict: &str,
    per_statement: usize,
    batches: &[RecordBatch],
    indexes: &[(String, String)],
) -> Result<(u64, u64), TaskError> {
    let (mut rows, mut transactions, mut in_tx) = (0u64, 0u64, 0usize);
    let mut tx = conn
        .begin()
        .await
        .map_err(db_err("starting a transaction"))?;
    for batch in batches {
        let cols = columns(batch)?;
        let mut start = 0;
        while start < batch.num_rows() {
            let end = (start + per_statement)
                .min(batch.num_rows())
                .min(start + (spec.batch_rows - in_tx));
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(insert);
            q.push_values(start..end, |mut b, row| {
                for col in &cols {
                    match col {
                        Column::Int(a) => b.push_bind(a.is_valid(row).then(|| a.value(row))),
                        Column::Real(a) => b.push_bind(a.is_valid(row).then(|| a.value(row))),
                        Column::Bool(a) => b.push_bind(a.is_valid(row).then(|| a.value(row))),
                        Column::Text(a) => {
                            b.push_bind(a.is_valid(row).then(|| a.value(row).to_owned()))
                        }
                    };
                }
            });
            q.push(conflict);
            q.build()
                .execute(&mut *tx)
                .await
                .map_err(db_err("inserting rows"))?;
            rows += (end - start) as u64;
            in_tx += end - start;
            start = end;
            if in_tx >= spec.batch_rows {
                tx.commit().await.map_err(db_err("committing rows"))?;
                transactions += 1;
                in_tx = 0;
                tx = conn
                    .begin()
                    .await
                    .map_err(db_err("starting a transaction"))?;
            }
        }
    }
    if matches!(spec.mode, TableMode::Replace) {
        // The swap: in the same transaction as the last rows.
        sqlx::query(&format!("DROP TABLE IF EXISTS {}", quote(&spec.table)))
            .execute(&mut *tx)
            .await
            .map_err(db_err("dropping the old table"))?;
        sqlx::query(&format!(
            "ALTER TABLE {} RENAME TO {}",
            quote(target),
            quote(&spec.table)
        ))
        .execute(&mut *tx)
        .await
        .map_err(db_err("swapping the new table in"))?;
    }
    for (_, sql) in indexes {
        sqlx::query(sql)
            .execute(&mut *tx)
            .await
            .map_err(db_err("creating an index again"))?;
    }
    tx.commit().await.map_err(db_err("committing rows"))?;
    transactions += 1;
    Ok((rows, transactions))
}
