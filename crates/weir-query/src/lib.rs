//! SQL over weir datasets with DataFusion: register Hive-partitioned Parquet datasets as tables,
//! run queries that prune partitions and push predicates into Parquet row groups, and report what
//! a query actually read.
//!
//! This crate holds the DataFusion dependency on its own, so the crates that only read and write
//! partitions (weir-data, the patterns) do not pay its build time and binary size.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::ListingOptions;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use datafusion::physical_plan::metrics::MetricValue;
use datafusion::prelude::{SessionConfig, SessionContext};
use weir_data::Dataset;

/// The error type of weir-query.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Data(#[from] weir_data::DataError),
    /// DataFusion rejected or failed the query (its message names the place).
    #[error("query failed: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// A table registration that cannot work.
    #[error("cannot register table `{name}` at {}: {reason}", .path.display())]
    Table {
        name: String,
        path: PathBuf,
        reason: String,
    },
}

/// One Parquet file a query plan reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedFile {
    pub path: String,
    pub bytes: u64,
}

/// What running a query read, beside its plan.
#[derive(Debug, Clone)]
pub struct ExplainReport {
    /// The physical plan, indented, with the metrics of the run.
    pub plan: String,
    /// The files left to read after partition pruning.
    pub files: Vec<ScannedFile>,
    /// Bytes the Parquet readers actually fetched (after row-group and page pruning).
    pub bytes_scanned: u64,
    /// Row groups skipped by statistics (predicate pushdown).
    pub row_groups_pruned: u64,
    /// Rows the query returned.
    pub rows: u64,
}

/// A DataFusion session with weir datasets registered as tables.
pub struct QueryEngine {
    ctx: SessionContext,
}

impl Default for QueryEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl QueryEngine {
    pub fn new() -> Self {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .set_bool("datafusion.execution.parquet.pushdown_filters", true)
            .set_bool("datafusion.execution.parquet.reorder_filters", true);
        QueryEngine {
            ctx: SessionContext::new_with_config(config),
        }
    }

    /// Registers the dataset under `dir` as table `name`. Its partition columns (`dt`, `hr`, …)
    /// come from the committed partitions' paths and are queryable like other columns; a filter
    /// on them prunes whole partitions.
    pub async fn register(&self, name: &str, dir: &Path) -> Result<Vec<String>, QueryError> {
        let table_err = |reason: String| QueryError::Table {
            name: name.to_owned(),
            path: dir.to_path_buf(),
            reason,
        };
        if !dir.is_dir() {
            return Err(table_err(
                "the folder does not exist; pass an existing dataset folder".to_owned(),
            ));
        }
        let dataset = Dataset::open(dir)?;
        let partitions = dataset.partitions()?;
        let columns: Vec<String> = partitions
            .first()
            .map(|p| p.key.parts().iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default();
        if let Some(odd) = partitions
            .iter()
            .find(|p| p.key.parts().iter().map(|(n, _)| n).ne(columns.iter()))
        {
            return Err(table_err(format!(
                "partition {} does not have the layout {} of the others",
                odd.partition,
                columns.join("/")
            )));
        }
        let root = std::fs::canonicalize(dir).map_err(|e| table_err(e.to_string()))?;
        let url = format!("file://{}/", root.display());
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(
                columns
                    .iter()
                    .map(|c| (c.clone(), DataType::Utf8))
                    .collect(),
            );
        self.ctx
            .register_listing_table(name, url, options, None, None)
            .await?;
        Ok(columns)
    }

    /// Runs a query and returns its rows.
    pub async fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
        Ok(self.ctx.sql(sql).await?.collect().await?)
    }

    /// Runs a query and reports its physical plan and what it read: the files left after
    /// partition pruning, bytes fetched and row groups pruned.
    pub async fn explain(
        &self,
        sql: &str,
    ) -> Result<(Vec<RecordBatch>, ExplainReport), QueryError> {
        let df = self.ctx.sql(sql).await?;
        let plan = df.create_physical_plan().await?;
        let batches = datafusion::physical_plan::collect(plan.clone(), self.ctx.task_ctx()).await?;
        let mut report = ExplainReport {
            plan: String::new(),
            files: Vec::new(),
            bytes_scanned: 0,
            row_groups_pruned: 0,
            rows: batches.iter().map(|b| b.num_rows() as u64).sum(),
        };
        walk(plan.as_ref(), &mut report);
        // Rendered after the run, so the plan shows each operator's metrics.
        report.plan = DisplayableExecutionPlan::with_metrics(plan.as_ref())
            .indent(true)
            .to_string();
        report.files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((batches, report))
    }
}

fn walk(plan: &dyn ExecutionPlan, report: &mut ExplainReport) {
    if let Some(exec) = plan.downcast_ref::<DataSourceExec>() {
        if let Some(config) = exec.data_source().downcast_ref::<FileScanConfig>() {
            for group in &config.file_groups {
                for file in group.files() {
                    report.files.push(ScannedFile {
                        path: file.object_meta.location.to_string(),
                        bytes: file.object_meta.size,
                    });
                }
            }
        }
        if let Some(metrics) = plan.metrics() {
            for metric in metrics.iter() {
                match metric.value() {
                    MetricValue::Count { name, count } if name == "bytes_scanned" => {
                        report.bytes_scanned += count.value() as u64;
                    }
                    MetricValue::PruningMetrics {
                        name,
                        pruning_metrics,
                    } if name == "row_groups_pruned_statistics" => {
                        report.row_groups_pruned += pruning_metrics.pruned() as u64;
                    }
                    _ => {}
                }
            }
        }
    }
    for child in plan.children() {
        walk(child.as_ref(), report);
    }
}
