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
