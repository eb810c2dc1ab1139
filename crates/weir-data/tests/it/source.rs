//! Sources: CSV rejects carry the right line numbers and the rest is read; inference is simple;
//! batches are bounded; formats come from the extension.

use std::sync::Arc;

use arrow::array::{Array, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use weir_data::{DataError, ReadOptions, open_source};

const MESSY: &str = "\
id,ts,amount,name
1,2026-03-08T00:00:00Z,1.5,a
2,not-a-time,2.5,b
3,2026-03-08T01:00:00Z,2.5
5,2026-03-08T02:00:00Z,3.5,\"multi
line, \"\"quoted\"\"\"
7,2026-03-08T03:00:00Z,x,c
8,2026-03-08T03:00:00Z,1.0,d,extra
9,2026-03-08T02:00:00+01:00,4.5,
";

fn messy_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("ts", DataType::Utf8, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("name", DataType::Utf8, true),
    ]))
}

#[test]
fn csv_rejects_have_line_numbers_and_the_rest_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("messy.csv");
    std::fs::write(&path, MESSY).unwrap();
    let opts = ReadOptions {
        schema: Some(messy_schema()),
        time_column: Some("ts".into()),
        ..ReadOptions::default()
    };
    let mut reader = open_source(&path, &opts).unwrap();
    assert_eq!(
        reader.schema().field(1).data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    let batches = reader.collect_batches().unwrap();
    let lines: Vec<u64> = reader.rejects().iter().map(|r| r.line).collect();
    assert_eq!(lines, vec![3, 4, 7, 8]);
    let r = &reader.rejects()[0];
    assert_eq!(r.file, path);
    assert_eq!(r.raw, "2,not-a-time,2.5,b");
    assert!(r.reason.contains("\"ts\""), "{}", r.reason);
    assert!(
        reader.rejects()[1]
            .reason
            .contains("expected 4 fields, found 3")
    );
    assert!(reader.rejects()[2].reason.contains("\"amount\""));

    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(ids.values().to_vec(), vec![1, 5, 9]);
    let ts = b
        .column(1)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    let expect = |s: &str| s.parse::<jiff::Timestamp>().unwrap().as_microsecond();
    assert_eq!(
        ts.value(2),
        expect("2026-03-08T01:00:00Z"),
        "offsets are normalized to UTC"
    );
    let names = b.column(3).as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(names.value(1), "multi\nline, \"quoted\"");
    assert!(names.is_null(2), "an empty nullable field is null");
    let amounts = b.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!(amounts.values().to_vec(), vec![1.5, 3.5, 4.5]);
}

#[test]
fn inferred_schema_is_int_float_or_utf8() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("infer.csv");
    std::fs::write(
        &path,
        "i,f,s,e,mixed\n1,1.5,x,,1\n-2,2,y,,1.5\n3,,z,,nope\n",
    )
    .unwrap();
    let reader = open_source(&path, &ReadOptions::default()).unwrap();
    let types: Vec<DataType> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    assert_eq!(
        types,
        vec![
            DataType::Int64,
            DataType::Float64,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8
        ]
    );
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 3);
}

#[test]
fn batches_are_bounded_by_batch_size() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("n.csv");
    let mut text = String::from("n\n");
    for i in 0..1001 {
        text.push_str(&format!("{i}\n"));
    }
    std::fs::write(&path, text).unwrap();
    let opts = ReadOptions {
        batch_size: 100,
        ..ReadOptions::default()
    };
    let sizes: Vec<usize> = open_source(&path, &opts)
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .collect();
    assert_eq!(sizes.len(), 11);
    assert!(sizes.iter().all(|s| *s <= 100));
    assert_eq!(sizes.iter().sum::<usize>(), 1001);
}

#[test]
fn unknown_extension_and_missing_time_column_are_errors_naming_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("data.json");
    std::fs::write(&path, "{}").unwrap();
    let Err(err) = open_source(&path, &ReadOptions::default()) else {
        panic!("json accepted")
    };
    assert!(matches!(err, DataError::UnsupportedFormat { .. }));
    assert!(err.to_string().contains("data.json"), "{err}");

    let path = tmp.path().join("a.csv");
    std::fs::write(&path, "x,y\n1,2\n").unwrap();
    let opts = ReadOptions {
        time_column: Some("t".into()),
        ..ReadOptions::default()
    };
    let Err(err) = open_source(&path, &opts) else {
        panic!("missing column accepted")
    };
    assert!(matches!(err, DataError::MissingColumn { .. }), "{err}");
}

#[test]
fn parquet_timestamp_time_column_is_normalized_to_utc_micros() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("orders.parquet");
    weir_data::write_orders_parquet(
        &weir_data::SampleSpec {
            rows: 2000,
            ..Default::default()
        },
        &path,
    )
    .unwrap();
    let opts = ReadOptions {
        time_column: Some("ingested_at".into()),
        ..ReadOptions::default()
    };
    let mut reader = open_source(&path, &opts).unwrap();
    let rows: usize = reader.by_ref().map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 2000);
    assert!(reader.rejects().is_empty());
}
