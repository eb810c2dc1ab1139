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
//!   reads the regional partitions back and writes one aggregate dataset (`OUTPUT_cross_region`)
//!   with rows and revenue per region and a total that must equal the sum of the regions, checked
//!   against what the split counted.
//!
//! Run it: `weir dags run 110_02_05_geographic_partitioning --conf key=country`.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Decimal128Array, Int64Array, StringArray, new_null_array,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weir_core::ParamSpec;
use weir_data::partitioners::{GeoPartitioner, RegionCounts};
use weir_data::{DataError, Dataset, PartitionKey, WriteOptions};
use weir_runtime::{DagDef, Task, TaskContext, TaskError};

use weir_ops::blocking;
use weir_ops::load::{
    Loaded, load_all, output_dir, record_commits, window_param_specs, window_params,
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

async fn split_regions(ctx: TaskContext) -> Result<Value, TaskError> {
    let p = window_params(&ctx).await?;
    let key: String = ctx.param("key")?;
    let params = p.clone();
    let (loaded, counts) = blocking(move || {
        let geo = GeoPartitioner::new(key.clone())?
            .with_hook("EU", Box::new(redact_note))
            .with_fallback_hook(Box::new(redact_eu_rows));
        let mut counts = RegionCounts::default();
        let loaded = load_all(&params, None, |batch| {
            let parts = geo.split(batch)?;
            counts.merge(&RegionCounts::from_parts(&key, &parts));
            Ok(parts)
        })?;
        Ok((loaded, counts))
    })
    .await?;
    record_commits(&ctx, &p.output, &loaded).await?;
    let split = Split {
        per_region: counts.per_region().clone(),
        total: counts.total(),
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

async fn cross_region(ctx: TaskContext) -> Result<Value, TaskError> {
    let split: Split = ctx.input("split_regions").await?;
    let regional = output_dir(&ctx)?;
    let key: String = ctx.param("key")?;
    let aggregate_dir = regional.with_file_name(format!(
        "{}_cross_region",
        regional
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| DAG_ID.to_owned())
    ));
    let day = ctx.logical_date.to_zoned(ctx.zone.clone()).date();
    let agg_dir = aggregate_dir.clone();
    let (loaded, per_region) = blocking(move || {
        let dataset = Dataset::open(&regional)?;
        let mut per_region: BTreeMap<String, (i64, i128)> = BTreeMap::new();
        for part in dataset.partitions()? {
            let region = part.key.get(&key).unwrap_or_default().to_owned();
            let entry = per_region.entry(region).or_default();
            for batch in dataset.read_partition(&part.key)? {
                entry.0 += batch.num_rows() as i64;
                if let Some(amount) = batch.column_by_name("amount") {
                    let cents = arrow::compute::cast(amount, &DataType::Decimal128(38, 2))
                        .map_err(|e| DataError::arrow("reading amount", e))?;
                    let cents = cents
                        .as_any()
                        .downcast_ref::<Decimal128Array>()
                        .expect("Decimal128");
                    entry.1 += (0..cents.len())
                        .filter(|&i| !cents.is_null(i))
                        .map(|i| cents.value(i))
                        .sum::<i128>();
                }
            }
        }
        let total = per_region
            .values()
            .fold((0i64, 0i128), |t, v| (t.0 + v.0, t.1 + v.1));
        let mut names: Vec<String> = per_region.keys().cloned().collect();
        names.push("(all regions)".to_owned());
        let mut rows: Vec<i64> = per_region.values().map(|v| v.0).collect();
        rows.push(total.0);
        let mut revenue: Vec<i128> = per_region.values().map(|v| v.1).collect();
        revenue.push(total.1);
        let schema = Arc::new(Schema::new(vec![
            Field::new("region", DataType::Utf8, false),
            Field::new("orders", DataType::Int64, false),
            Field::new("revenue", DataType::Decimal128(38, 2), false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(names)),
                Arc::new(Int64Array::from(rows)),
                Arc::new(
                    Decimal128Array::from(revenue)
                        .with_precision_and_scale(38, 2)
                        .map_err(|e| DataError::arrow("revenue", e))?,
                ),
            ],
        )
        .map_err(|e| DataError::arrow("building the aggregate", e))?;
        let key = PartitionKey::date(day);
        let commit = Dataset::open(&agg_dir)?.write_partition(
            &key,
            schema,
            [&batch],
            WriteOptions::default(),
        )?;
        Ok((
            Loaded::new(vec![commit.clone()], commit.rows, 0),
            per_region,
        ))
    })
    .await?;
    // Coordination check: what landed per region equals what the split counted.
    for (region, (rows, _)) in &per_region {
        let counted = split.per_region.get(region).copied().unwrap_or(0);
        if counted != *rows as u64 {
            return Err(TaskError::fatal(format!(
                "region {region} holds {rows} rows but the split wrote {counted}; re-run the DAG"
            )));
        }
    }
    record_commits(&ctx, &aggregate_dir, &loaded).await?;
    let total: i64 = per_region.values().map(|v| v.0).sum();
    Ok(json!({
        "regions": per_region.len(),
        "total_orders": total,
        "per_region": per_region.iter().map(|(r, v)| (r.clone(), json!({"orders": v.0, "revenue_cents": v.1.to_string()}))).collect::<BTreeMap<_, _>>(),
        "dataset": aggregate_dir,
    }))
}
