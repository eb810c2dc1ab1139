//! A filter on a partition column reads only the matching partition; predicates on data columns
//! skip row groups.

use std::sync::Arc;

use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use weir_data::{Dataset, PartitionKey, WriteOptions};
use weir_query::QueryEngine;

/// Seven daily partitions of 1,000 rows each; ids run 0..7000 in order.
fn week(dir: &std::path::Path) -> u64 {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("region", DataType::Utf8, false),
    ]));
    let dataset = Dataset::open(dir).unwrap();
    let mut bytes_of_day3 = 0;
    for day in 1..=7 {
        let ids: Vec<i64> = ((day - 1) * 1000..day * 1000).collect();
        let regions: Vec<&str> = ids
            .iter()
            .map(|i| if i % 2 == 0 { "EU" } else { "NA" })
            .collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(regions)),
            ],
        )
        .unwrap();
        let key = PartitionKey::date(jiff::civil::date(2026, 3, day as i8));
        let opts = WriteOptions {
            row_group_size: 100,
            ..WriteOptions::default()
        };
        let commit = dataset
            .write_partition(&key, schema.clone(), [&batch], opts)
            .unwrap();
        if day == 3 {
            bytes_of_day3 = commit.bytes;
        }
    }
    bytes_of_day3
}

#[tokio::test]
async fn a_filter_on_dt_reads_only_that_partition() {
    let dir = tempfile::tempdir().unwrap();
    let day3_bytes = week(dir.path());
    let engine = QueryEngine::new();
    let columns = engine.register("orders", dir.path()).await.unwrap();
    assert_eq!(columns, vec!["dt"]);

    let (_, all) = engine
        .explain("SELECT count(*) FROM orders WHERE region = 'EU'")
        .await
        .unwrap();
    assert_eq!(
        all.files.len(),
        7,
        "without a dt filter every partition is read: {:?}",
        all.files
    );

    let (batches, one) = engine
        .explain("SELECT count(id) AS n FROM orders WHERE dt = '2026-03-03' AND id >= 0")
        .await
        .unwrap();
    assert_eq!(one.files.len(), 1, "{:#?}", one.files);
    assert!(
        one.files[0].path.contains("dt=2026-03-03"),
        "{:?}",
        one.files
    );
    assert_eq!(one.files[0].bytes, day3_bytes);
    assert!(
        one.bytes_scanned <= day3_bytes,
        "read {} bytes, the partition has {day3_bytes}",
        one.bytes_scanned
    );
    let n = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(n, 1000);
}

#[tokio::test]
async fn a_predicate_on_a_sorted_column_skips_row_groups() {
    let dir = tempfile::tempdir().unwrap();
    week(dir.path());
    let engine = QueryEngine::new();
    engine.register("orders", dir.path()).await.unwrap();
    let (batches, report) = engine
        .explain("SELECT id FROM orders WHERE id BETWEEN 2050 AND 2060")
        .await
        .unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 11);
    // Min/max statistics rule out six of the seven files, then nine of the ten row groups of
    // 100 ids in the file holding 2050..2060: a few hundred bytes are read, not the dataset.
    assert_eq!(report.row_groups_pruned, 9, "{}", report.plan);
    let on_disk: u64 = report.files.iter().map(|f| f.bytes).sum();
    assert!(
        report.bytes_scanned * 10 < on_disk,
        "read {} of {on_disk} bytes:\n{}",
        report.bytes_scanned,
        report.plan
    );
}

#[tokio::test]
async fn registering_a_missing_folder_is_a_clear_error() {
    let engine = QueryEngine::new();
    let err = engine
        .register("t", std::path::Path::new("/no/such/dataset"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/no/such/dataset") && err.contains("does not exist"),
        "{err}"
    );
}

/// The same orders, date-partitioned, in each file format.
fn orders_in(dir: &std::path::Path, format: weir_data::FileFormat) {
    let csv = dir.join("orders.csv");
    let spec = weir_data::SampleSpec {
        rows: 4_000,
        days: 5,
        ..weir_data::SampleSpec::default()
    };
    weir_data::write_orders_csv(&spec, &csv).unwrap();
    let opts = weir_data::ReadOptions {
        schema: Some(weir_data::orders_schema()),
        ..weir_data::ReadOptions::default()
    };
    let batches = weir_data::open_source(&csv, &opts)
        .unwrap()
        .collect_batches()
        .unwrap();
    let dataset = Dataset::open(&dir.join("data")).unwrap();
    let zone = jiff::tz::TimeZone::UTC;
    let mut parts: std::collections::BTreeMap<PartitionKey, Vec<RecordBatch>> = Default::default();
    for batch in &batches {
        for (key, part) in weir_data::partition_by_local_date(batch, "event_time", &zone).unwrap() {
            parts.entry(key).or_default().push(part);
        }
    }
    for (key, batches) in parts {
        let opts = WriteOptions {
            format,
            ..WriteOptions::default()
        };
        dataset
            .write_partition(&key, weir_data::orders_schema(), &batches, opts)
            .unwrap();
    }
}

#[tokio::test]
async fn csv_and_json_lines_datasets_answer_like_parquet_and_prune_by_dt() {
    use weir_data::FileFormat;
    let sql = "SELECT count(*) AS n, CAST(sum(amount) AS VARCHAR) AS total, \
               CAST(max(event_time) AS VARCHAR) AS last \
               FROM orders WHERE dt = '2026-03-03'";
    let mut answers = Vec::new();
    for format in FileFormat::ALL {
        let dir = tempfile::tempdir().unwrap();
        orders_in(dir.path(), format);
        let engine = QueryEngine::new();
        engine
            .register("orders", &dir.path().join("data"))
            .await
            .unwrap();
        let (batches, report) = engine.explain(sql).await.unwrap();
        assert_eq!(report.files.len(), 1, "{format}: {:?}", report.files);
        assert!(
            report.files[0].path.contains("dt=2026-03-03")
                && report.files[0].path.ends_with(format.extension()),
            "{format}: {:?}",
            report.files
        );
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        answers.push((format, text));
    }
    let (_, parquet) = &answers[0];
    assert!(parquet.contains("2026-03-03T"), "{parquet}");
    for (format, text) in &answers[1..] {
        assert_eq!(text, parquet, "{format} answers differently from Parquet");
    }
}

/// Copies every file under `dir` into `store` under `prefix`, keeping relative paths.
async fn upload(
    store: &dyn datafusion::object_store::ObjectStore,
    dir: &std::path::Path,
    prefix: &str,
) {
    use datafusion::object_store::ObjectStoreExt;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if path.is_dir() {
            Box::pin(upload(store, &path, &format!("{prefix}/{name}"))).await;
        } else {
            let location = datafusion::object_store::path::Path::from(format!("{prefix}/{name}"));
            let bytes = std::fs::read(&path).unwrap();
            store.put(&location, bytes.into()).await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_dataset_in_an_object_store_prunes_and_answers_like_the_local_folder() {
    use datafusion::object_store::memory::InMemory;
    use weir_data::FileFormat;
    let sql = "SELECT count(*) AS n, CAST(sum(amount) AS VARCHAR) AS total \
               FROM orders WHERE dt = '2026-03-04'";
    for format in [FileFormat::Parquet, FileFormat::Csv] {
        let dir = tempfile::tempdir().unwrap();
        orders_in(dir.path(), format);
        let local = QueryEngine::new();
        local
            .register("orders", &dir.path().join("data"))
            .await
            .unwrap();
        let expected = local.sql(sql).await.unwrap();

        let store = Arc::new(InMemory::new());
        upload(store.as_ref(), &dir.path().join("data"), "warehouse/orders").await;
        // A writer's leftovers in the store are never read.
        std::fs::write(dir.path().join("junk"), b"not parquet").unwrap();
        upload(
            store.as_ref(),
            dir.path(),
            "warehouse/orders/_staging/123-0",
        )
        .await;

        let engine = QueryEngine::new();
        let url = weir_query::Url::parse("memory://lake").unwrap();
        engine.register_object_store(&url, store);
        let columns = engine
            .register_location("orders", "memory://lake/warehouse/orders")
            .await
            .unwrap();
        assert_eq!(columns, ["dt"]);
        let (batches, report) = engine.explain(sql).await.unwrap();
        assert_eq!(batches, expected, "{format}");
        assert_eq!(report.files.len(), 1, "{format}: {:?}", report.files);
        assert!(
            report.files[0].path.contains("dt=2026-03-04"),
            "{:?}",
            report.files
        );
    }
}

#[tokio::test]
async fn an_object_store_location_without_a_registered_store_is_a_clear_error() {
    let engine = QueryEngine::new();
    let err = engine
        .register_location("orders", "s3://bucket/orders")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no object store is registered for s3://bucket"),
        "{err}"
    );
}

/// Regression: a region split keeps its `region` column in the files, and `weir data query` over
/// it failed with "duplicate qualified field name". The files' column is used; values agree.
#[tokio::test]
async fn a_partition_column_the_files_also_hold_is_queryable() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new("region", DataType::Utf8, false),
    ]));
    let dataset = Dataset::open(dir.path()).unwrap();
    for (region, ids) in [("EU", vec![1, 2, 3]), ("US", vec![4, 5])] {
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids.clone())),
                Arc::new(StringArray::from(vec![region; ids.len()])),
            ],
        )
        .unwrap();
        dataset
            .write_partition(
                &PartitionKey::new([("region", region)]).unwrap(),
                schema.clone(),
                [&batch],
                WriteOptions::default(),
            )
            .unwrap();
    }
    let engine = QueryEngine::new();
    engine.register("geo", dir.path()).await.unwrap();
    let batches = engine
        .sql("SELECT region, count(*) AS n FROM geo GROUP BY region ORDER BY region")
        .await
        .unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert!(
        text.contains("| EU     | 3 |") && text.contains("| US     | 2 |"),
        "{text}"
    );
}

/// Regions as Hive partitions, one of them null: the default partition reads back as a null
/// (as DuckDB and pyarrow read it), and a filter on the region still reads only its folder.
#[tokio::test]
async fn a_null_region_reads_as_null_and_region_filters_still_prune() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("region", DataType::Utf8, true),
    ]));
    let dataset = Dataset::open(dir.path()).unwrap();
    for (region, ids) in [(Some("EU"), 0..10), (Some("US"), 10..25), (None, 25..28)] {
        let n = (ids.end - ids.start) as usize;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(ids)),
                Arc::new(StringArray::from(vec![region; n])),
            ],
        )
        .unwrap();
        let key = PartitionKey::new([("region", region.unwrap_or(""))]).unwrap();
        dataset
            .write_partition(&key, schema.clone(), [&batch], WriteOptions::default())
            .unwrap();
    }
    let engine = QueryEngine::new();
    engine.register("t", dir.path()).await.unwrap();
    let rows = engine
        .sql("SELECT count(*) AS n FROM t WHERE region IS NULL")
        .await
        .unwrap();
    let n = rows[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(n.value(0), 3);
    let (_, report) = engine
        .explain("SELECT sum(id) FROM t WHERE region = 'US'")
        .await
        .unwrap();
    assert_eq!(report.files.len(), 1, "{:?}\n{}", report.files, report.plan);
    assert!(report.files[0].path.contains("region=US"));
}
