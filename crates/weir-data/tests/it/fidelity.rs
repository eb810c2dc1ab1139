//! Data fidelity: a real-world CSV (the nycflights13 sample, written by R with `NA`s) reads with
//! the types a data engineer expects, reads the same with CRLF, a BOM and quoted newlines, keeps
//! values past the inference sample honest, and a dataset keeps its schema across commits.
//!
//! Expected values come from the `csv` crate reading the fixture here, not from weir-data.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use weir_data::source::ColumnType;
use weir_data::{
    DataError, Dataset, PartitionKey, ReadOptions, SchemaEvolution, WriteOptions, open_source,
};

fn flights() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/nycflights13/flights_sample.csv")
}

/// The fixture's records as the `csv` crate reads them: header and rows of text.
fn records(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header = r.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

fn read_all(path: &Path, opts: &ReadOptions) -> (RecordBatch, Vec<weir_data::Reject>) {
    let mut reader = open_source(path, opts).unwrap();
    let schema = reader.schema();
    let batches = reader.collect_batches().unwrap();
    let rejects = reader.take_rejects();
    (
        arrow::compute::concat_batches(&schema, &batches).unwrap(),
        rejects,
    )
}

#[test]
fn flights_read_with_numbers_for_na_columns_and_utc_times() {
    let (header, rows) = records(&flights());
    let (batch, rejects) = read_all(&flights(), &ReadOptions::default());
    assert!(rejects.is_empty(), "{:?}", &rejects[..1]);
    assert_eq!(batch.num_rows(), rows.len());
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let schema = batch.schema();
    let t = |name: &str| schema.field_with_name(name).unwrap().data_type().clone();
    for numeric in ["dep_time", "dep_delay", "arr_delay", "air_time", "distance"] {
        assert_eq!(t(numeric), DataType::Int64, "{numeric}");
    }
    assert_eq!(t("tailnum"), DataType::Utf8);
    assert_eq!(
        t("time_hour"),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    // NA is a null, in numeric and text columns alike; every other value is kept as written.
    for name in ["arr_delay", "dep_time", "tailnum"] {
        let na = rows.iter().filter(|r| r[col(name)] == "NA").count();
        assert!(na > 0, "{name}: the fixture has NAs");
        assert_eq!(
            batch.column_by_name(name).unwrap().null_count(),
            na,
            "{name}"
        );
    }
    let arr: &Int64Array = batch
        .column_by_name("arr_delay")
        .unwrap()
        .as_any()
        .downcast_ref()
        .unwrap();
    let expected: i64 = rows
        .iter()
        .filter_map(|r| r[col("arr_delay")].parse::<i64>().ok())
        .sum();
    assert_eq!(arr.iter().flatten().sum::<i64>(), expected);
}

#[test]
fn crlf_a_bom_and_quoted_newlines_read_the_same_as_a_clean_file() {
    let (header, mut rows) = records(&flights());
    // One value with an embedded newline and a comma, which must be quoted.
    let tail = header.iter().position(|h| h == "tailnum").unwrap();
    rows[7][tail] = "N14\n228, spare".to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, bom: bool, crlf: bool| {
        let path = tmp.path().join(name);
        let mut out = Vec::new();
        if bom {
            out.extend_from_slice(b"\xEF\xBB\xBF");
        }
        let mut w = csv::WriterBuilder::new()
            .terminator(if crlf {
                csv::Terminator::CRLF
            } else {
                csv::Terminator::Any(b'\n')
            })
            .from_writer(Vec::new());
        w.write_record(&header).unwrap();
        for r in &rows {
            w.write_record(r).unwrap();
        }
        out.extend(w.into_inner().unwrap());
        std::fs::write(&path, out).unwrap();
        path
    };
    let clean = write("clean.csv", false, false);
    let messy = write("messy.csv", true, true);
    assert!(
        std::fs::read(&messy)
            .unwrap()
            .windows(2)
            .any(|w| w == b"\r\n")
    );
    let (a, ra) = read_all(&clean, &ReadOptions::default());
    let (b, rb) = read_all(&messy, &ReadOptions::default());
    assert!(ra.is_empty() && rb.is_empty(), "{ra:?} {rb:?}");
    assert_eq!(
        a.schema().field(0).name(),
        "year",
        "the BOM is not part of the name"
    );
    assert_eq!(a, b);
    let tails: &StringArray = b
        .column_by_name("tailnum")
        .unwrap()
        .as_any()
        .downcast_ref()
        .unwrap();
    assert_eq!(tails.value(7), "N14\n228, spare");
}

#[test]
fn a_value_past_the_sample_that_does_not_fit_is_a_reject_with_its_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("late.csv");
    let mut text = String::from("id,delay,when\n");
    for i in 0..500 {
        text.push_str(&format!("{i},{},2026-03-08 0{}:30:00\n", i % 7, i % 10));
    }
    text.push_str("500,12.5,2026-03-08 01:30:00\n"); // line 502: a float widens nothing now
    text.push_str("501,n/a,2026-03-08 02:30:00\n"); // line 503: text in an int column
    std::fs::write(&path, text).unwrap();
    let opts = ReadOptions {
        infer_rows: 100,
        ..ReadOptions::default()
    };
    let (batch, rejects) = read_all(&path, &opts);
    assert_eq!(batch.schema().field(1).data_type(), &DataType::Int64);
    // Zone-less times stay wall times without a declared zone.
    assert_eq!(
        batch.schema().field(2).data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    assert_eq!(batch.num_rows(), 500);
    let lines: Vec<(u64, &str)> = rejects
        .iter()
        .map(|r| (r.line, r.reason.as_str()))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0].0, 502);
    assert!(
        lines[0].1.contains("\"delay\"") && lines[0].1.contains("12.5"),
        "{lines:?}"
    );
    assert_eq!(lines[1].0, 503);
    // Over the whole file, the column widens to float (and n/a is text only because it is).
    let (whole, _) = read_all(&path, &ReadOptions::default());
    assert_eq!(whole.schema().field(1).data_type(), &DataType::Utf8);
    let no_text = ReadOptions {
        null_values: vec!["n/a".into()],
        ..ReadOptions::default()
    };
    let (widened, rejects) = read_all(&path, &no_text);
    assert!(rejects.is_empty());
    assert_eq!(widened.schema().field(1).data_type(), &DataType::Float64);
    let delays: &Float64Array = widened.column(1).as_any().downcast_ref().unwrap();
    assert_eq!(delays.value(500), 12.5);
    assert!(delays.is_null(501));
}

#[test]
fn local_times_read_in_a_declared_zone_and_an_explicit_schema_overrides_inference() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("local.csv");
    // 01:30 happens twice in New York on 2026-11-01: the earlier (EDT) instant is taken.
    std::fs::write(
        &path,
        "id,at,price,flag\n1,2026-11-01 01:30:00,10.50,true\n2,2026-03-08T12:00:00,3,FALSE\n",
    )
    .unwrap();
    let opts = ReadOptions {
        source_tz: Some(jiff::tz::TimeZone::get("America/New_York").unwrap()),
        column_types: vec![ColumnType::parse("price", "decimal(12,2)").unwrap()],
        time_column: Some("at".into()),
        ..ReadOptions::default()
    };
    let (batch, rejects) = read_all(&path, &opts);
    assert!(rejects.is_empty(), "{rejects:?}");
    let schema = batch.schema();
    assert_eq!(schema.field(2).data_type(), &DataType::Decimal128(12, 2));
    assert_eq!(schema.field(3).data_type(), &DataType::Boolean);
    let at: &arrow::array::TimestampMicrosecondArray =
        batch.column(1).as_any().downcast_ref().unwrap();
    let first: jiff::Timestamp = "2026-11-01T05:30:00Z".parse().unwrap();
    let second: jiff::Timestamp = "2026-03-08T16:00:00Z".parse().unwrap();
    assert_eq!(at.value(0), first.as_microsecond());
    assert_eq!(at.value(1), second.as_microsecond());
    // Without the zone, the time column cannot place them: rejects that say what to do.
    let no_zone = ReadOptions {
        source_tz: None,
        ..opts
    };
    let (_, rejects) = read_all(&path, &no_zone);
    assert_eq!(rejects.len(), 2);
    assert!(
        rejects[0].reason.contains("source_tz"),
        "{}",
        rejects[0].reason
    );
}

fn one_column(name: &str, array: Arc<dyn Array>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new(
        name,
        array.data_type().clone(),
        true,
    )]));
    RecordBatch::try_new(schema, vec![array]).unwrap()
}

#[test]
fn a_dataset_keeps_its_schema_and_widens_only_by_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = Dataset::open(tmp.path()).unwrap();
    let day = |d: &str| PartitionKey::new([("dt", d)]).unwrap();
    let ints = one_column("delay", Arc::new(Int64Array::from(vec![1, 2, 3])));
    let floats = one_column("delay", Arc::new(Float64Array::from(vec![1.5, 2.5])));
    ds.write_partition(
        &day("2026-03-02"),
        ints.schema(),
        [&ints],
        WriteOptions::default(),
    )
    .unwrap();
    let kept = ds.schema().unwrap().expect("fixed by the first commit");
    assert_eq!(kept.columns.field(0).data_type(), &DataType::Int64);
    assert_eq!(kept.partition_columns[0].data_type(), &DataType::Date32);

    // Tuesday infers float: refused, one sentence naming the column and both types.
    let err = ds
        .write_partition(
            &day("2026-03-03"),
            floats.schema(),
            [&floats],
            WriteOptions::default(),
        )
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DataError::DatasetSchema { .. }), "{text}");
    assert!(
        text.contains("\"delay\"") && text.contains("Float64") && text.contains("Int64"),
        "{text}"
    );
    assert!(text.contains("schema_evolution=widen"), "{text}");
    assert_eq!(ds.partitions().unwrap().len(), 1, "nothing was committed");

    // With the rule, the dataset widens; Monday's file is read as floats.
    let widen = WriteOptions {
        schema_evolution: SchemaEvolution::Widen,
        ..WriteOptions::default()
    };
    ds.write_partition(&day("2026-03-03"), floats.schema(), [&floats], widen)
        .unwrap();
    let kept = ds.schema().unwrap().unwrap();
    assert_eq!(kept.columns.field(0).data_type(), &DataType::Float64);
    let monday = ds.read_partition(&day("2026-03-02")).unwrap();
    let values: &Float64Array = monday[0].column(0).as_any().downcast_ref().unwrap();
    assert_eq!(values.values().to_vec(), vec![1.0, 2.0, 3.0]);
    // The partition column comes back from the path as a date.
    assert_eq!(monday[0].schema().field(1).name(), "dt");
    assert_eq!(monday[0].column(1).data_type(), &DataType::Date32);

    // Ints into the float dataset fit exactly: cast, no rule needed.
    ds.write_partition(
        &day("2026-03-04"),
        ints.schema(),
        [&ints],
        WriteOptions::default(),
    )
    .unwrap();
    let wednesday = ds.read_partition(&day("2026-03-04")).unwrap();
    assert_eq!(wednesday[0].column(0).data_type(), &DataType::Float64);
}

#[test]
fn partition_columns_stay_out_of_the_files_and_must_match_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = Dataset::open(tmp.path()).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("region", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
    ]));
    let batch = |region: &str| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![region, region])),
                Arc::new(Int64Array::from(vec![1, 2])),
            ],
        )
        .unwrap()
    };
    let eu = PartitionKey::new([("region", "EU")]).unwrap();
    ds.write_partition(&eu, schema.clone(), [&batch("EU")], WriteOptions::default())
        .unwrap();
    let file_schema = ds.partition_schema(&eu).unwrap();
    let names: Vec<&str> = file_schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["n"], "the file does not repeat region");
    let back = ds.read_partition(&eu).unwrap();
    assert_eq!(back[0].schema().field(1).name(), "region");
    let regions: &StringArray = back[0].column(1).as_any().downcast_ref().unwrap();
    assert_eq!(regions.iter().flatten().collect::<Vec<_>>(), ["EU", "EU"]);
    // A row whose region is not its partition's would be lost: refused.
    let us = PartitionKey::new([("region", "US")]).unwrap();
    let err = ds
        .write_partition(&us, schema.clone(), [&batch("EU")], WriteOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"region\"") && err.contains("region=US"),
        "{err}"
    );
}

#[test]
fn json_lines_strings_of_dates_and_instants_are_typed_and_quoted_numbers_stay_text() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("events.jsonl");
    std::fs::write(
        &path,
        "\u{feff}{\"id\": 1, \"at\": \"2026-03-08T05:00:00Z\", \"day\": \"2026-03-08\", \"code\": \"42\", \"ok\": true}\r\n\
         {\"id\": 2, \"at\": \"2026-03-08T06:30:00+01:00\", \"day\": null, \"code\": \"007\", \"ok\": false}\r\n",
    )
    .unwrap();
    let (batch, rejects) = read_all(&path, &ReadOptions::default());
    assert!(rejects.is_empty(), "{rejects:?}");
    let schema = batch.schema();
    let t = |n: &str| schema.field_with_name(n).unwrap().data_type().clone();
    assert_eq!(t("id"), DataType::Int64);
    assert_eq!(
        t("at"),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert_eq!(t("day"), DataType::Date32);
    assert_eq!(
        t("code"),
        DataType::Utf8,
        "a quoted number is what its writer meant: text"
    );
    assert_eq!(t("ok"), DataType::Boolean);
    let at: &arrow::array::TimestampMicrosecondArray = batch
        .column_by_name("at")
        .unwrap()
        .as_any()
        .downcast_ref()
        .unwrap();
    let second: jiff::Timestamp = "2026-03-08T05:30:00Z".parse().unwrap();
    assert_eq!(at.value(1), second.as_microsecond());
}

#[test]
fn kept_partition_columns_are_in_the_files_and_read_back_once() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = Dataset::open(tmp.path()).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("region", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["EU", "EU"])),
            Arc::new(Int64Array::from(vec![1, 2])),
        ],
    )
    .unwrap();
    let eu = PartitionKey::new([("region", "EU")]).unwrap();
    let keep = WriteOptions {
        keep_partition_columns: true,
        ..WriteOptions::default()
    };
    ds.write_partition(&eu, schema, [&batch], keep).unwrap();
    let in_files = ds.partition_schema(&eu).unwrap();
    assert!(in_files.field_with_name("region").is_ok(), "{in_files:?}");
    let kept = ds.schema().unwrap().unwrap();
    assert!(kept.files_keep_partition_columns);
    let back = ds.read_partition(&eu).unwrap();
    let names: Vec<&str> = back[0]
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["n", "region"]);
}

#[test]
fn what_would_read_back_wrong_is_refused_not_written() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = Dataset::open(tmp.path()).unwrap();
    let day = |d: &str| PartitionKey::new([("dt", d)]).unwrap();
    let floats = one_column("delay", Arc::new(Float64Array::from(vec![1.5])));
    ds.write_partition(
        &day("2026-03-02"),
        floats.schema(),
        [&floats],
        WriteOptions::default(),
    )
    .unwrap();
    // A dt that is not a date in a dataset whose dt is a date.
    let err = ds
        .write_partition(
            &day("unknown"),
            floats.schema(),
            [&floats],
            WriteOptions::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("dt=unknown is not a Date32"), "{err}");
    // An id beyond 2^53 would round in the float column.
    let big = one_column("delay", Arc::new(Int64Array::from(vec![(1i64 << 53) + 1])));
    let err = ds
        .write_partition(
            &day("2026-03-03"),
            big.schema(),
            [&big],
            WriteOptions::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot hold exactly"), "{err}");
    // A column of nulls inferred as text does not widen the kept type, even under widen.
    let empty = one_column("delay", Arc::new(StringArray::from(vec![None::<&str>; 2])));
    let widen = WriteOptions {
        schema_evolution: SchemaEvolution::Widen,
        ..WriteOptions::default()
    };
    ds.write_partition(&day("2026-03-04"), empty.schema(), [&empty], widen.clone())
        .unwrap();
    let kept = ds.schema().unwrap().unwrap();
    assert_eq!(kept.columns.field(0).data_type(), &DataType::Float64);
    let text = one_column("delay", Arc::new(StringArray::from(vec![Some("late")])));
    let err = ds
        .write_partition(&day("2026-03-05"), text.schema(), [&text], widen)
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"delay\" is Utf8"), "{err}");
    assert_eq!(ds.partitions().unwrap().len(), 2);

    // A null in a typed partition column cannot be read back typed: refused.
    let tmp = tempfile::tempdir().unwrap();
    let ds = Dataset::open(tmp.path()).unwrap();
    let by_year = Arc::new(Schema::new(vec![
        Field::new("year", DataType::Int64, true),
        Field::new("n", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        by_year.clone(),
        vec![
            Arc::new(Int64Array::from(vec![None::<i64>])),
            Arc::new(Int64Array::from(vec![1])),
        ],
    )
    .unwrap();
    let null_year = PartitionKey::new([("year", "")]).unwrap();
    let err = ds
        .write_partition(&null_year, by_year, [&batch], WriteOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("Hive's default partition"), "{err}");
}

#[test]
fn ids_beyond_i64_stay_text_and_values_that_change_meaning_are_rejects() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ids.csv");
    let mut text = String::from("id,day,at\n");
    for i in 0..50 {
        text.push_str(&format!(
            "1234567890123456789{i},2026-03-0{},2026-03-08 10:00:00\n",
            1 + i % 9
        ));
    }
    text.push_str("1,2026-03-08T10:00:00,2026-03-08 10:00:00+05:00\n");
    std::fs::write(&path, text).unwrap();
    let (batch, rejects) = read_all(
        &path,
        &ReadOptions {
            infer_rows: 50,
            ..ReadOptions::default()
        },
    );
    assert_eq!(
        batch.schema().field(0).data_type(),
        &DataType::Utf8,
        "ids would round as floats"
    );
    assert_eq!(batch.schema().field(1).data_type(), &DataType::Date32);
    assert_eq!(batch.num_rows(), 50);
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert!(
        rejects[0].reason.contains("\"day\""),
        "{}",
        rejects[0].reason
    );
}
