//! Source files as tables, and `local_date`: SQL that cuts days the way `dt=` partitions do.

use weir_data::ReadOptions;
use weir_query::{QueryEngine, QueryParam};

/// Rows around New York's spring-forward day (2026-03-08 has 23 hours), one malformed.
const CSV: &str = "order_id,event_time,amount
1,2026-03-08T04:59:59Z,1.00
2,2026-03-08T05:00:00Z,2.00
3,2026-03-09T03:59:59Z,3.00
4,2026-03-09T04:00:00Z,4.00
5,not-a-time,5.00
6,2026-03-08T12:00:00+01:00,6.00
";

fn source() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.csv");
    std::fs::write(&path, CSV).unwrap();
    (dir, path)
}

fn engine_over(path: &std::path::Path) -> QueryEngine {
    let engine = QueryEngine::new();
    let opts = ReadOptions {
        time_column: Some("event_time".into()),
        ..ReadOptions::default()
    };
    engine.register_source("src", path, opts).unwrap();
    engine
}

fn text(batches: &[arrow::record_batch::RecordBatch]) -> String {
    arrow::util::pretty::pretty_format_batches(batches)
        .unwrap()
        .to_string()
}

/// Local days in New York, across the DST change: 23:59:59 EST is still the 7th, 00:00 EST the
/// 8th, 23:59:59 EDT (03:59:59Z) the 8th. The malformed row is set aside and handed over with its
/// line, not lost.
#[tokio::test]
async fn local_date_groups_a_source_by_local_day_and_keeps_its_rejects() {
    let (_dir, path) = source();
    let engine = engine_over(&path);
    let batches = engine
        .sql_with_params(
            "SELECT CAST(local_date(event_time, $tz) AS VARCHAR) AS day, count(*) AS n \
             FROM src GROUP BY day ORDER BY day",
            &[("tz".to_owned(), QueryParam::Text("America/New_York".into()))],
        )
        .await
        .unwrap();
    let got = text(&batches);
    for row in [
        "| 2026-03-07 | 1 |",
        "| 2026-03-08 | 3 |",
        "| 2026-03-09 | 1 |",
    ] {
        assert!(got.contains(row), "{row} missing from\n{got}");
    }
    let rejects = engine.take_rejects();
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert_eq!(rejects[0].line, 6);
    assert!(rejects[0].raw.contains("not-a-time"), "{:?}", rejects[0]);

    // The same instants in Tokyo fall on other days.
    let batches = engine
        .sql_with_params(
            "SELECT CAST(local_date(event_time, $tz) AS VARCHAR) AS day, count(*) AS n \
             FROM src GROUP BY day ORDER BY day",
            &[("tz".to_owned(), QueryParam::Text("Asia/Tokyo".into()))],
        )
        .await
        .unwrap();
    let got = text(&batches);
    assert!(
        got.contains("| 2026-03-08 | 3 |") && got.contains("| 2026-03-09 | 2 |"),
        "{got}"
    );
}

/// A zone that does not exist, and a column that is not a timestamp, are one-sentence errors.
#[tokio::test]
async fn local_date_refuses_a_bad_zone_and_a_text_column() {
    let (_dir, path) = source();
    let engine = engine_over(&path);
    let err = engine
        .sql("SELECT local_date(event_time, 'Mars/Olympus') FROM src")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"Mars/Olympus\" is not a time zone"), "{err}");
    let err = engine
        .sql("SELECT local_date(CAST(order_id AS VARCHAR), 'UTC') FROM src")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("takes a timestamp, not Utf8"), "{err}");
}

/// A source scanned twice in one query (a self-join) is read twice, whole: streaming does not
/// lose the second scan.
#[tokio::test]
async fn a_source_table_can_be_scanned_twice() {
    let (_dir, path) = source();
    let engine = engine_over(&path);
    let batches = engine
        .sql("SELECT count(*) AS n FROM src a JOIN src b ON a.order_id = b.order_id")
        .await
        .unwrap();
    assert!(text(&batches).contains("| 5 |"), "{}", text(&batches));
    // Its malformed row was met by both scans and is handed over once.
    assert_eq!(engine.take_rejects().len(), 1);
}

/// `hash_bucket` names the bucket a hash layout puts each key in: the same as the partitioner's,
/// for integer and text keys.
#[tokio::test]
async fn hash_bucket_matches_the_hash_layout() {
    use arrow::array::{Array, Int64Array, StringArray, UInt32Array};
    use weir_data::partitioners::{BucketScheme, HashPartitioner};
    let (_dir, path) = source();
    let engine = engine_over(&path);
    let batches = engine
        .sql(
            "SELECT order_id, arrow_cast(order_id * 7919, 'Utf8') AS text_key, \
                    hash_bucket(order_id, 8) AS b, hash_bucket(arrow_cast(order_id * 7919, 'Utf8'), 8) AS tb \
             FROM src ORDER BY order_id",
        )
        .await
        .unwrap();
    let hp = HashPartitioner::new("k", 8, BucketScheme::Jump).unwrap();
    let mut seen = 0;
    let mut buckets = std::collections::BTreeSet::new();
    for batch in &batches {
        let col = |name: &str| batch.column_by_name(name).unwrap().clone();
        let ids = col("order_id");
        let ids = ids.as_any().downcast_ref::<Int64Array>().unwrap();
        let texts = col("text_key");
        let texts = texts.as_any().downcast_ref::<StringArray>().unwrap();
        let (b, tb) = (col("b"), col("tb"));
        let b = b.as_any().downcast_ref::<UInt32Array>().unwrap();
        let tb = tb.as_any().downcast_ref::<UInt32Array>().unwrap();
        for i in 0..batch.num_rows() {
            assert_eq!(b.value(i), hp.bucket_of_i64(ids.value(i)));
            assert_eq!(tb.value(i), hp.bucket_of_str(texts.value(i)));
            buckets.insert(b.value(i));
            seen += 1;
        }
    }
    assert_eq!(seen, 5);
    assert!(buckets.len() > 1, "five ids all in one bucket? {buckets:?}");
    let err = engine
        .sql("SELECT hash_bucket(order_id, 0) FROM src")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("buckets must be a whole number from 1"),
        "{err}"
    );
}
