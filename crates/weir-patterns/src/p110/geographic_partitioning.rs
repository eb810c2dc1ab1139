//! 110.2.5 Geographic partitioning — `110_02_05_geographic_partitioning`.
//!
//! What it demonstrates:
//! - **Partition data by region/country**: rows go to `COLUMN=VALUE` partitions of `--conf key`
//!   (default `region`; `country` works too), escaped so any value is a safe folder name.
//! - **Handle regional processing**: each region is its own partition, committed atomically, so
//!   a region can be re-processed or served (data residency) on its own.
//! - **Implement region-specific logic**: per-region hooks run before the write: EU rows have
//!   their free-text `note` blanked (personal data stays out of the analytics copy); every other
//!   region keeps it. The hook sees only its region's rows.
//! - **Coordinate cross-region aggregation**: after all regions are committed, `cross_region`
//!   runs one `sql` query over the regional partitions and commits the aggregate dataset
//!   (`OUTPUT_cross_region`): rows and revenue per region and the all-regions total, read back
//!   and checked against what the split counted.
//!
//! Run it: `weir dags run 110_02_05_geographic_partitioning --conf key=country`.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, StringArray, new_null_array};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weir_core::ParamSpec;
use weir_data::partitioners::GeoPartitioner;
use weir_data::{DataError, Dataset, PartitionKey};
use weir_ops::{Operator, Sql, identifier};
use weir_runtime::{DagDef, Task, TaskContext, TaskError};

use weir_ops::blocking;
use weir_ops::load::{
    Loaded, output_dir, partition_source, record_commits, sibling_dir, window_param_specs,
    window_params,
};

pub const DAG_ID: &str = "110_02_05_geographic_partitioning";

pub fn dag() -> DagDef {
    DagDef::builder(DAG_ID)
        .description("Region partitions with per-region logic and a cross-region aggregate")
        .tags(["110.2", "partitioning", "intermediate"])
        .params(window_param_specs())
        .param(ParamSpec::text("key", "column whose value names the partition").default("region"))
        .task(Task::new("split_regions").retries(2).run(split_regions))
        .task(
            Task::new("cross_region")
                .after(["split_regions"])
                .run(cross_region),
        )
        .build()
        .expect("a valid DAG")
}

/// EU: blank the free-text note (it may hold personal data).
fn redact_note(batch: &RecordBatch) -> Result<RecordBatch, DataError> {
    let Some((i, field)) = batch
        .schema()
        .column_with_name("note")
        .map(|(i, f)| (i, f.clone()))
    else {
        return Ok(batch.clone());
    };
    let mut columns = batch.columns().to_vec();
    columns[i] = if field.is_nullable() {
        new_null_array(field.data_type(), batch.num_rows())
    } else {
        arrow::compute::cast(
            &(Arc::new(StringArray::from(vec![""; batch.num_rows()])) as ArrayRef),
            field.data_type(),
        )
        .map_err(|e| DataError::arrow("redacting note", e))?
    };
    RecordBatch::try_new(batch.schema(), columns).map_err(|e| DataError::arrow("redacting note", e))
}

/// Any other partition (say `key=country`): blank the note of the rows whose `region` is EU, so
/// the rule follows the row's region whatever the partition key.
fn redact_eu_rows(batch: &RecordBatch) -> Result<RecordBatch, DataError> {
    let (Some(region), Some((i, _))) = (
        batch.column_by_name("region"),
        batch.schema().column_with_name("note"),
    ) else {
        return Ok(batch.clone());
    };
    let region = arrow::compute::cast(region, &DataType::Utf8)
        .map_err(|e| DataError::arrow("reading region", e))?;
    let region = region.as_any().downcast_ref::<StringArray>().expect("Utf8");
    let eu: BooleanArray = region.iter().map(|r| Some(r == Some("EU"))).collect();
    if eu.true_count() == 0 {
        return Ok(batch.clone());
    }
    let redacted = redact_note(batch)?;
    let mut columns = batch.columns().to_vec();
    columns[i] = arrow::compute::kernels::zip::zip(&eu, redacted.column(i), batch.column(i))
        .map_err(|e| DataError::arrow("redacting note", e))?;
    RecordBatch::try_new(batch.schema(), columns).map_err(|e| DataError::arrow("redacting note", e))
}

/// The whole source in `COLUMN=VALUE` partitions, the way the `partition` operator lays it out
/// (every region committed atomically, stale regions retired), through a geographic
/// partitioner carrying the per-region hooks; rows per region are read off the commits.
async fn split_regions(ctx: TaskContext) -> Result<Value, TaskError> {
    let mut p = window_params(&ctx).await?;
    // The note is free text that may hold personal data: a rejected row's payload in the
    // dead-letter queue keeps it redacted too.
    p.read.redact.push("note".to_owned());
    let key: String = ctx.param("key")?;
    let params = p.clone();
    let column = key.clone();
    let loaded = blocking(move || {
        let mut geo = GeoPartitioner::new(column)?
            .with_hook("EU", Box::new(redact_note))
            .with_fallback_hook(Box::new(redact_eu_rows));
        partition_source(&params, &mut geo)
    })
    .await?;
    record_commits(&ctx, &p.output, &loaded).await?;
    let mut per_region = BTreeMap::new();
    for landed in &loaded.partitions {
        let partition = PartitionKey::parse(&landed.partition)?;
        let region = partition.get(&key).unwrap_or_default().to_owned();
        per_region.insert(region, landed.rows);
    }
    let split = Split {
        per_region,
        total: loaded.rows,
        loaded,
    };
    Ok(serde_json::to_value(split).expect("a Split serializes"))
}

/// The output of `split_regions`: what landed, and rows per region as the split counted them.
#[derive(Debug, Serialize, Deserialize)]
struct Split {
    #[serde(flatten)]
    loaded: Loaded,
    per_region: BTreeMap<String, u64>,
    total: u64,
}

/// The cross-region aggregate is one `sql` query over the committed regional partitions —
/// orders and exact revenue per region plus the all-regions total — committed to
/// `OUTPUT_cross_region/dt=DAY`; a second query reads it back to check it against what the
/// split counted.
async fn cross_region(ctx: TaskContext) -> Result<Value, TaskError> {
    let split: Split = ctx.input("split_regions").await?;
    let regional = output_dir(&ctx)?;
    let key: String = ctx.param("key")?;
    let column = identifier("key", &key)?;
    let aggregate_dir = sibling_dir(&ctx, "_cross_region")?;
    // Revenue is the sum of `amount` where the data has one (a source without it still gets
    // its per-region counts).
    let dir = regional.clone();
    let has_amount = blocking(move || {
        let dataset = Dataset::open(&dir)?;
        Ok(match dataset.partitions()?.first() {
            Some(p) => dataset
                .partition_schema(&p.key)?
                .field_with_name("amount")
                .is_ok(),
            None => false,
        })
    })
    .await?;
    let revenue = if has_amount {
        "arrow_cast(sum(amount), 'Decimal128(38, 2)')"
    } else {
        "arrow_cast(0, 'Decimal128(38, 2)')"
    };
    let query = format!(
        "SELECT arrow_cast({column}, 'Utf8') AS region, count(*) AS orders, {revenue} AS revenue, $ds AS dt \
           FROM regional GROUP BY {column} \
         UNION ALL \
         SELECT '(all regions)' AS region, count(*) AS orders, {revenue} AS revenue, $ds AS dt FROM regional"
    );
    Sql::new(query)
        .table("regional", &regional)
        .into_dataset(&aggregate_dir, &["dt"])
        .execute(ctx.clone())
        .await?;
    let rows = Sql::new(
        "SELECT region, orders, arrow_cast(revenue, 'Utf8') AS revenue FROM agg WHERE dt = $ds",
    )
    .table("agg", &aggregate_dir)
    .execute(ctx)
    .await?;
    let rows: Vec<AggregateRow> = serde_json::from_value(rows)
        .map_err(|e| TaskError::fatal(format!("reading the aggregate back: {e}")))?;
    // Coordination check: what landed per region equals what the split counted.
    let mut per_region = BTreeMap::new();
    for row in rows.iter().filter(|r| r.region != "(all regions)") {
        let counted = split.per_region.get(&row.region).copied().unwrap_or(0);
        if counted != row.orders {
            return Err(TaskError::fatal(format!(
                "region {} holds {} rows but the split wrote {counted}; re-run the DAG",
                row.region, row.orders
            )));
        }
        per_region.insert(
            row.region.clone(),
            json!({"orders": row.orders, "revenue": row.revenue}),
        );
    }
    let total: u64 = rows
        .iter()
        .find(|r| r.region == "(all regions)")
        .map(|r| r.orders)
        .unwrap_or(0);
    Ok(json!({
        "regions": per_region.len(),
        "total_orders": total,
        "per_region": per_region,
        "dataset": aggregate_dir,
    }))
}

/// One row of the cross-region aggregate, as the check reads it.
#[derive(Debug, Deserialize)]
struct AggregateRow {
    region: String,
    orders: u64,
    revenue: String,
}
