//! Sources: CSV and JSON lines rejects carry the right line numbers and the rest is read; inference
//! is simple; batches are bounded; formats come from the extension.

use std::sync::Arc;

use arrow::array::{
    Array, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array,
    StringArray, TimestampMicrosecondArray,
};
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
    let path = tmp.path().join("data.xml");
    std::fs::write(&path, "<a/>").unwrap();
    let Err(err) = open_source(&path, &ReadOptions::default()) else {
        panic!("xml accepted")
    };
    assert!(matches!(err, DataError::UnsupportedFormat { .. }));
    assert!(err.to_string().contains("data.xml"), "{err}");

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

// ---------------------------------------------------------------------------------------------
// JSON lines

/// Writes `text` to `name` in a fresh temporary directory.
fn json_file(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(name);
    std::fs::write(&path, text).unwrap();
    (tmp, path)
}

fn column<'a, T: 'static>(batch: &'a arrow::array::RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| panic!("column {name} has another type"))
}

#[test]
fn jsonl_inference_unions_keys_in_first_seen_order_and_types_them() {
    let (_tmp, path) = json_file(
        "infer.jsonl",
        concat!(
            r#"{"id": 1, "price": 1.5, "ok": true, "name": "a", "tags": ["x", {"k": "v\"q"}], "z": null, "big": 9223372036854775808}"#,
            "\n",
            r#"{"id": 2, "price": 2, "ok": false, "name": "", "extra": {"b": 1, "a": [true, null]}}"#,
            "\n",
            r#"{"id": 3, "name": null, "ok": null, "price": -0.25, "mixed": "s"}"#,
            "\n",
            r#"{"mixed": 5, "id": 4, "price": 1e3}"#,
            "\n",
        ),
    );
    let mut reader = open_source(&path, &ReadOptions::default()).unwrap();
    let schema = reader.schema();
    let fields: Vec<(&str, &DataType, bool)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type(), f.is_nullable()))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("id", &DataType::Int64, true),
            ("price", &DataType::Float64, true),
            ("ok", &DataType::Boolean, true),
            ("name", &DataType::Utf8, true),
            ("tags", &DataType::Utf8, true),
            ("z", &DataType::Utf8, true),
            ("big", &DataType::Float64, true),
            ("extra", &DataType::Utf8, true),
            ("mixed", &DataType::Utf8, true),
        ]
    );
    let batches = reader.collect_batches().unwrap();
    assert!(reader.rejects().is_empty(), "{:?}", reader.rejects());
    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    assert_eq!(
        column::<Int64Array>(b, "id").values().to_vec(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(
        column::<Float64Array>(b, "price").values().to_vec(),
        vec![1.5, 2.0, -0.25, 1000.0]
    );
    let ok = column::<BooleanArray>(b, "ok");
    assert_eq!(
        ok.iter().collect::<Vec<_>>(),
        vec![Some(true), Some(false), None, None]
    );
    let name = column::<StringArray>(b, "name");
    assert_eq!(
        name.iter().collect::<Vec<_>>(),
        vec![Some("a"), Some(""), None, None],
        "an empty JSON string stays an empty string; null and a missing key are null"
    );
    let tags = column::<StringArray>(b, "tags");
    assert_eq!(tags.value(0), r#"["x",{"k":"v\"q"}]"#, "compact JSON");
    assert_eq!(tags.null_count(), 3);
    assert_eq!(column::<StringArray>(b, "z").null_count(), 4);
    let extra = column::<StringArray>(b, "extra");
    assert_eq!(
        extra.value(1),
        r#"{"b":1,"a":[true,null]}"#,
        "nested objects keep their key order"
    );
    let mixed = column::<StringArray>(b, "mixed");
    assert_eq!(
        mixed.iter().collect::<Vec<_>>(),
        vec![None, None, Some("s"), Some("5")]
    );
}

#[test]
fn jsonl_infer_rows_bounds_the_sample_and_skips_bad_lines() {
    // Line 1 is not JSON and line 2 not an object, so they are not in the sample; with
    // infer_rows = 2 the sample is lines 3 and 4 and "n" is Int64, so line 5 is a reject.
    let (_tmp, path) = json_file(
        "sample.json",
        "{\"n\": \"x\"\n[1]\n{\"n\": 1}\n{\"n\": 2, \"late\": true}\n{\"n\": \"abc\"}\n{\"n\": 3}\n",
    );
    let opts = ReadOptions {
        infer_rows: 2,
        ..ReadOptions::default()
    };
    let mut reader = open_source(&path, &opts).unwrap();
    let schema = reader.schema();
    assert_eq!(schema.fields().len(), 2);
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    assert_eq!(schema.field(1).data_type(), &DataType::Boolean);
    let batches = reader.collect_batches().unwrap();
    let ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| column::<Int64Array>(b, "n").values().to_vec())
        .collect();
    assert_eq!(ids, vec![1, 2, 3]);
    let lines: Vec<u64> = reader.rejects().iter().map(|r| r.line).collect();
    assert_eq!(lines, vec![1, 2, 5]);
}

/// Lines 2 and 8 are blank; line 3 ends in CRLF; lines 4, 5, 6, 7, 9, 10 and 11 are rejects.
const MESSY_JSONL: &str = concat!(
    r#"{"id": 1, "ts": "2026-03-08T00:00:00Z", "amount": 1.5, "name": "a"}"#,
    "\n\n",
    r#"{"id": 2, "ts": "2026-03-08T02:00:00+01:00", "amount": 2, "name": ""}"#,
    "\r\n",
    r#"{"id": 3, "ts": "2026-03-08T01:00:00Z", "amount": 2.5"#,
    "\n",
    "[1, 2, 3]\n",
    r#"{"id": "abc", "ts": "2026-03-08T01:00:00Z", "amount": 1}"#,
    "\n",
    r#"{"id": 7, "amount": 1}"#,
    "\n   \t\n",
    r#"{"id": 9, "ts": null, "amount": 1}"#,
    "\n",
    r#"{"id": 10, "ts": "not-a-time", "amount": 1}"#,
    "\n",
    r#"{"id": 11, "ts": "2026-03-08T03:00:00Z", "amount": null, "name": "k"}"#,
    "\n",
    r#"{"unknown": {"x": [1]}, "amount": 3.25, "ts": "2026-03-08T04:00:00Z", "id": 12}"#,
);

#[test]
fn jsonl_rejects_have_line_numbers_raw_text_and_reasons_and_the_rest_is_read() {
    let (_tmp, path) = json_file("messy.ndjson", MESSY_JSONL);
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
    let rejects = reader.take_rejects();
    let got: Vec<(u64, &str)> = rejects.iter().map(|r| (r.line, r.raw.as_str())).collect();
    let lines: Vec<&str> = MESSY_JSONL.split('\n').collect();
    let expected: Vec<(u64, &str)> = [4u64, 5, 6, 7, 9, 10, 11]
        .into_iter()
        .map(|n| (n, lines[n as usize - 1]))
        .collect();
    assert_eq!(got, expected);
    assert!(rejects.iter().all(|r| r.file == path));

    let reason = |line: u64| {
        rejects
            .iter()
            .find(|r| r.line == line)
            .map(|r| r.reason.as_str())
            .unwrap()
    };
    assert!(
        reason(4).starts_with("the line is not valid JSON"),
        "{}",
        reason(4)
    );
    assert_eq!(reason(5), "the line is an array, not a JSON object");
    assert_eq!(reason(6), "column \"id\": \"abc\" is not an integer");
    assert_eq!(
        reason(7),
        "column \"ts\": the value is missing or null but required"
    );
    assert_eq!(reason(9), reason(7));
    assert!(
        reason(10).starts_with("column \"ts\": \"not-a-time\" is not a timestamp"),
        "{}",
        reason(10)
    );
    assert_eq!(
        reason(11),
        "column \"amount\": the value is missing or null but required"
    );

    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    assert_eq!(
        column::<Int64Array>(b, "id").values().to_vec(),
        vec![1, 2, 12]
    );
    let expect = |s: &str| s.parse::<jiff::Timestamp>().unwrap().as_microsecond();
    assert_eq!(
        column::<TimestampMicrosecondArray>(b, "ts")
            .values()
            .to_vec(),
        vec![
            expect("2026-03-08T00:00:00Z"),
            expect("2026-03-08T01:00:00Z"),
            expect("2026-03-08T04:00:00Z"),
        ],
        "offsets are normalized to UTC"
    );
    assert_eq!(
        column::<Float64Array>(b, "amount").values().to_vec(),
        vec![1.5, 2.0, 3.25]
    );
    assert_eq!(
        column::<StringArray>(b, "name").iter().collect::<Vec<_>>(),
        vec![Some("a"), Some(""), None]
    );
}

#[test]
fn jsonl_time_column_is_normalized_when_the_schema_is_inferred() {
    let (_tmp, path) = json_file(
        "t.jsonl",
        concat!(
            r#"{"at": "2026-03-29T01:30:00+01:00", "v": 1}"#,
            "\n",
            r#"{"v": 2}"#,
            "\n",
            r#"{"at": 1774747800, "v": 3}"#,
            "\n",
            r#"{"at": "2026-03-29T03:30:00+02:00", "v": 4}"#,
            "\n",
        ),
    );
    let opts = ReadOptions {
        time_column: Some("at".into()),
        ..ReadOptions::default()
    };
    let mut reader = open_source(&path, &opts).unwrap();
    let field = reader.schema().field(0).clone();
    assert_eq!(field.data_type(), &weir_data::utc_micros_type());
    assert!(!field.is_nullable());
    let batches = reader.collect_batches().unwrap();
    let lines: Vec<u64> = reader.rejects().iter().map(|r| r.line).collect();
    assert_eq!(lines, vec![2, 3], "missing and numeric times are rejects");
    let at = column::<TimestampMicrosecondArray>(&batches[0], "at");
    let expect = "2026-03-29T00:30:00Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_microsecond();
    assert_eq!(at.values().to_vec(), vec![expect, expect + 3_600_000_000]);

    let missing = ReadOptions {
        time_column: Some("when".into()),
        ..ReadOptions::default()
    };
    let Err(err) = open_source(&path, &missing) else {
        panic!("missing time column accepted")
    };
    assert!(matches!(err, DataError::MissingColumn { .. }), "{err}");
}

#[test]
fn jsonl_explicit_schema_types_values_and_ignores_other_keys() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("qty", DataType::Int32, false),
        Field::new("amount", DataType::Decimal128(10, 2), true),
        Field::new("day", DataType::Date32, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("code", DataType::Utf8, true),
    ]));
    let (_tmp, path) = json_file(
        "typed.json",
        concat!(
            r#"{"day": "1970-01-03", "amount": "12.50", "qty": 7, "flag": true, "code": 5, "x": 1}"#,
            "\n",
            r#"{"qty": "8", "amount": 0.1, "code": {"a": 1}}"#,
            "\n",
            r#"{"qty": 3000000000, "amount": 1}"#,
            "\n",
            r#"{"qty": 1.5}"#,
            "\n",
            r#"{"qty": 9, "flag": "maybe"}"#,
            "\n",
            r#"{"qty": 10, "day": 3}"#,
            "\n",
        ),
    );
    let opts = ReadOptions {
        schema: Some(schema.clone()),
        ..ReadOptions::default()
    };
    let mut reader = open_source(&path, &opts).unwrap();
    assert_eq!(reader.schema(), schema);
    let batches = reader.collect_batches().unwrap();
    let rejects: Vec<(u64, &str)> = reader
        .rejects()
        .iter()
        .map(|r| (r.line, r.reason.as_str()))
        .collect();
    assert_eq!(
        rejects,
        vec![
            (3, "column \"qty\": \"3000000000\" is not a 32-bit integer"),
            (4, "column \"qty\": \"1.5\" is not a 32-bit integer"),
            (5, "column \"flag\": \"maybe\" is not a boolean"),
            (6, "column \"day\": \"3\" is not a date (YYYY-MM-DD)"),
        ]
    );
    let b = &batches[0];
    assert_eq!(
        column::<Int32Array>(b, "qty").values().to_vec(),
        vec![7, 8],
        "a string holding an integer fits an integer column, as in CSV"
    );
    let amount = column::<Decimal128Array>(b, "amount");
    assert_eq!(amount.values().to_vec(), vec![1250, 10]);
    let day = column::<Date32Array>(b, "day");
    assert_eq!(day.iter().collect::<Vec<_>>(), vec![Some(2), None]);
    let flag = column::<BooleanArray>(b, "flag");
    assert_eq!(flag.iter().collect::<Vec<_>>(), vec![Some(true), None]);
    let code = column::<StringArray>(b, "code");
    assert_eq!(
        code.iter().collect::<Vec<_>>(),
        vec![Some("5"), Some(r#"{"a":1}"#)]
    );
}

#[test]
fn jsonl_batches_are_bounded_by_batch_size() {
    let (_tmp, path) = json_file(
        "five.jsonl",
        "{\"n\": 1}\n\n{\"n\": 2}\nnope\n{\"n\": 3}\n{\"n\": 4}\n{\"n\": \"x\"}\n{\"n\": 5}\n",
    );
    let opts = ReadOptions {
        batch_size: 2,
        schema: Some(Arc::new(Schema::new(vec![Field::new(
            "n",
            DataType::Int64,
            false,
        )]))),
        ..ReadOptions::default()
    };
    let mut reader = open_source(&path, &opts).unwrap();
    let batches = reader.collect_batches().unwrap();
    let sizes: Vec<usize> = batches.iter().map(|b| b.num_rows()).collect();
    assert_eq!(sizes, vec![2, 2, 1]);
    let ns: Vec<i64> = batches
        .iter()
        .flat_map(|b| column::<Int64Array>(b, "n").values().to_vec())
        .collect();
    assert_eq!(ns, vec![1, 2, 3, 4, 5]);
    assert_eq!(reader.rows_emitted(), 5);
    let lines: Vec<u64> = reader.rejects().iter().map(|r| r.line).collect();
    assert_eq!(lines, vec![4, 7]);
}

#[test]
fn jsonl_row_and_reject_counts_match_an_independent_count() {
    // Every 7th line is a broken object, every 11th a wrong type, every 13th blank: decided
    // here by position, then counted independently of the reader.
    let mut text = String::new();
    let (mut good, mut bad) = (0usize, Vec::new());
    for i in 1..=2_000u64 {
        if i % 13 == 0 {
            text.push('\n');
        } else if i % 7 == 0 {
            text.push_str(&format!("{{\"id\": {i}, \"v\": \n"));
            bad.push(i);
        } else if i % 11 == 0 {
            text.push_str(&format!("{{\"id\": {i}, \"v\": \"eleven\"}}\n"));
            bad.push(i);
        } else {
            text.push_str(&format!("{{\"v\": {}, \"id\": {i}}}\n", i * 2));
            good += 1;
        }
    }
    let (_tmp, path) = json_file("many.jsonl", &text);
    let opts = ReadOptions {
        batch_size: 64,
        // The sample is lines 1 to 10 but the broken line 7, so both columns are Int64.
        infer_rows: 9,
        ..ReadOptions::default()
    };
    let mut reader = open_source(&path, &opts).unwrap();
    let mut rows = 0;
    for batch in reader.by_ref() {
        let batch = batch.unwrap();
        assert!(batch.num_rows() <= 64);
        let ids = column::<Int64Array>(&batch, "id");
        let vs = column::<Int64Array>(&batch, "v");
        for (id, v) in ids.values().iter().zip(vs.values()) {
            assert_eq!(*v, id * 2);
        }
        rows += batch.num_rows();
    }
    assert_eq!(rows, good);
    assert_eq!(reader.rows_emitted(), good as u64);
    let lines: Vec<u64> = reader.rejects().iter().map(|r| r.line).collect();
    assert_eq!(lines, bad);
}

#[test]
fn jsonl_round_trips_the_sample_orders_with_orders_schema() {
    // Good sample orders, written as JSON lines by arrow's writer, read back identically.
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("orders.csv");
    weir_data::write_orders_csv(
        &weir_data::SampleSpec {
            rows: 3000,
            ..Default::default()
        },
        &csv,
    )
    .unwrap();
    let opts = ReadOptions {
        schema: Some(weir_data::orders_schema()),
        batch_size: 1000,
        ..ReadOptions::default()
    };
    let from_csv = open_source(&csv, &opts).unwrap().collect_batches().unwrap();

    let jsonl = tmp.path().join("orders.jsonl");
    let mut writer = arrow::json::LineDelimitedWriter::new(std::fs::File::create(&jsonl).unwrap());
    for b in &from_csv {
        writer.write(b).unwrap();
    }
    writer.finish().unwrap();

    let mut reader = open_source(&jsonl, &opts).unwrap();
    let from_json = reader.collect_batches().unwrap();
    assert!(reader.rejects().is_empty(), "{:?}", &reader.rejects()[..1]);
    let schema = weir_data::orders_schema();
    let a = arrow::compute::concat_batches(&schema, &from_csv).unwrap();
    let b = arrow::compute::concat_batches(&schema, &from_json).unwrap();
    assert!(a.num_rows() > 2500);
    assert_eq!(a, b);
}

#[test]
fn jsonl_file_without_keys_is_an_error_naming_the_path() {
    let (_tmp, path) = json_file("empty.jsonl", "\n[1]\n");
    let Err(err) = open_source(&path, &ReadOptions::default()) else {
        panic!("a file without objects accepted")
    };
    assert!(matches!(err, DataError::Json { .. }), "{err}");
    assert!(err.to_string().contains("empty.jsonl"), "{err}");

    // With an explicit schema an empty file is simply empty.
    let opts = ReadOptions {
        schema: Some(messy_schema()),
        ..ReadOptions::default()
    };
    let mut reader = open_source(&path, &opts).unwrap();
    assert!(reader.collect_batches().unwrap().is_empty());
    assert_eq!(reader.rejects().len(), 1);
}

/// A reader stopped after any batch and a new reader seeked to its position give together
/// exactly the rows and rejects (same line numbers) of one reader that never stopped: CSV with
/// quoted commas and newlines, CRLF and malformed lines; JSON lines with blank and bad lines.
#[test]
fn a_reader_resumed_at_its_position_continues_exactly_where_it_stopped() {
    use weir_data::{ReadOptions, open_source};
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("id,name,amount\r\n");
    let mut jsonl = String::new();
    for i in 0..997u64 {
        match i % 11 {
            3 => csv.push_str(&format!("{i},\"multi\nline, {i}\",1.5\r\n")),
            5 => csv.push_str(&format!("{i},bad,not-a-number\r\n")),
            7 => csv.push_str(&format!("{i},too,many,fields\n")),
            _ => csv.push_str(&format!("{i},\"n, {i}\",{}.25\n", i % 50)),
        }
        match i % 13 {
            4 => jsonl.push('\n'),
            6 => jsonl.push_str(&format!("{{\"id\": {i}, \"amount\": \"x\"}}\n")),
            _ => jsonl.push_str(&format!("{{\"id\": {i}, \"amount\": {}.5}}\n", i % 9)),
        }
    }
    let csv_path = dir.path().join("s.csv");
    let json_path = dir.path().join("s.jsonl");
    std::fs::write(&csv_path, csv).unwrap();
    std::fs::write(&json_path, jsonl).unwrap();
    std::fs::write(
        dir.path().join("s.schema"),
        "id: int not null\namount: float\n",
    )
    .unwrap();
    for path in [&csv_path, &json_path] {
        let opts = ReadOptions {
            batch_size: 37,
            column_types: weir_data::source::sidecar_column_types(path).unwrap(),
            ..ReadOptions::default()
        };
        let mut whole = open_source(path, &opts).unwrap();
        let all = whole.collect_batches().unwrap();
        let all_rejects = whole.take_rejects();
        assert!(!all_rejects.is_empty(), "{}", path.display());
        for stop in [0usize, 1, 2, 7, 13, all.len() - 1, all.len()] {
            let mut first = open_source(path, &opts).unwrap();
            let mut got: Vec<_> = first.by_ref().take(stop).map(|b| b.unwrap()).collect();
            let mut rejects = first.take_rejects();
            let at = first.position().unwrap();
            let mut second = open_source(path, &opts).unwrap();
            second.seek(at).unwrap();
            got.extend(second.by_ref().map(|b| b.unwrap()));
            rejects.extend(second.take_rejects());
            let rows = |bs: &[arrow::array::RecordBatch]| {
                arrow::compute::concat_batches(&bs[0].schema(), bs).unwrap()
            };
            assert_eq!(
                rows(&got),
                rows(&all),
                "{} stopped after {stop}",
                path.display()
            );
            assert_eq!(
                rejects,
                all_rejects,
                "{} stopped after {stop}",
                path.display()
            );
        }
        let mut past = open_source(path, &opts).unwrap();
        let err = past
            .seek(weir_data::SourcePosition {
                byte: 1 << 40,
                ..Default::default()
            })
            .unwrap_err()
            .to_string();
        assert!(err.contains("past the end"), "{err}");
    }
}

/// Columns marked to redact never leave the reader in a reject's raw text: CSV fields and JSON
/// keys are replaced by `[redacted]`, the rest of the payload kept for a replay.
#[test]
fn redacted_columns_are_blanked_in_rejects_and_nothing_else() {
    use weir_data::{ReadOptions, open_source};
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("r.csv");
    std::fs::write(
        &csv,
        "id,amount,note\n1,2.50,fine\n2,oops,\"call me at +44 20 7946 0000, ask for Ann\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("r.schema"),
        "id: int\namount: float\nnote: string\n",
    )
    .unwrap();
    let json = dir.path().join("r.jsonl");
    std::fs::write(
        &json,
        "{\"id\": 1, \"amount\": 2.5, \"note\": \"fine\"}\n{\"id\": 2, \"amount\": \"oops\", \"note\": \"ann@example.com\"}\n",
    )
    .unwrap();
    for (path, expected) in [
        (&csv, "2,oops,[redacted]"),
        (
            &json,
            "{\"amount\":\"oops\",\"id\":2,\"note\":\"[redacted]\"}",
        ),
    ] {
        let opts = ReadOptions {
            column_types: weir_data::source::sidecar_column_types(path).unwrap(),
            redact: vec!["note".into()],
            ..ReadOptions::default()
        };
        let mut reader = open_source(path, &opts).unwrap();
        let rows: usize = reader.by_ref().map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 1);
        let rejects = reader.take_rejects();
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].raw, expected, "{}", path.display());
        assert!(!rejects[0].raw.contains("Ann") && !rejects[0].raw.contains("example.com"));
    }
}
