//! Datasets: commits are atomic and idempotent, survive injected crashes at every step, and keep
//! hostile partition values inside the root.

use std::fs;
use std::path::{Path, PathBuf};

use arrow::array::{Array, Int64Array};
use weir_data::{
    Compression, DataError, Dataset, Failpoint, FileFormat, PartitionKey, ReadOptions, SampleSpec,
    WriteOptions, open_source, orders_schema, write_orders_csv,
};

use crate::{id_value_batch, id_value_schema};

fn key(dt: &str) -> PartitionKey {
    PartitionKey::new([("dt", dt)]).unwrap()
}

fn values(dataset: &Dataset, key: &PartitionKey) -> Vec<i64> {
    let mut out = Vec::new();
    for batch in dataset.read_partition(key).unwrap() {
        let col = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        out.extend(col.values().iter().copied());
    }
    out
}

fn commit(dataset: &Dataset, key: &PartitionKey, rows: i64, value: i64) -> weir_data::CommitReport {
    let mut w = dataset
        .writer(key, id_value_schema(), WriteOptions::default())
        .unwrap();
    w.write(&id_value_batch(0..rows, value)).unwrap();
    w.commit().unwrap()
}

/// Every entry under `dir`, recursively.
fn all_entries(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_entries(&path));
        }
        out.push(path);
    }
    out
}

fn assert_no_leftovers(root: &Path) {
    for dir in ["_staging", "_trash"] {
        let left: Vec<_> = fs::read_dir(root.join(dir)).unwrap().collect();
        assert!(left.is_empty(), "{dir} still holds {left:?}");
    }
}

#[test]
fn commit_reports_rows_bytes_files_and_checksum() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = Dataset::open(tmp.path()).unwrap();
    let k = key("2026-03-08");
    let report = commit(&ds, &k, 1000, 7);
    assert_eq!(report.partition, "dt=2026-03-08");
    assert_eq!(report.rows, 1000);
    assert_eq!(report.files, 1);
    let file = tmp.path().join("dt=2026-03-08/part-00000.parquet");
    let bytes = fs::read(&file).unwrap();
    assert_eq!(report.bytes, bytes.len() as u64);
    assert_eq!(
        report.checksum,
        sha1_smol::Sha1::from(&bytes).digest().to_string()
    );
    assert!(
        report.schema.contains("\"name\":\"id\""),
        "{}",
        report.schema
    );

    assert_eq!(ds.count_rows(&k).unwrap(), 1000);
    assert_eq!(values(&ds, &k).len(), 1000);
    let parts = ds.partitions().unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(
        (parts[0].rows, parts[0].files, parts[0].bytes),
        (1000, 1, report.bytes)
    );
    assert_eq!(parts[0].key, k);
    assert_no_leftovers(tmp.path());
}

#[test]
fn recommit_replaces_never_appends() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = Dataset::open(tmp.path()).unwrap();
    let k = key("2026-03-08");
    commit(&ds, &k, 10, 1);
    let report = commit(&ds, &k, 7, 2);
    assert_eq!(report.rows, 7);
    assert_eq!(
        ds.count_rows(&k).unwrap(),
        7,
        "a re-run must replace, not add to, the partition"
    );
    assert_eq!(values(&ds, &k), vec![2; 7]);
    assert_eq!(ds.partitions().unwrap().len(), 1);
    assert_no_leftovers(tmp.path());
}

#[test]
fn dropping_a_writer_leaves_nothing_visible() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = Dataset::open(tmp.path()).unwrap();
    let k = key("2026-03-08");
    let mut w = ds
        .writer(&k, id_value_schema(), WriteOptions::default())
        .unwrap();
    w.write(&id_value_batch(0..100, 1)).unwrap();
    drop(w);
    assert!(ds.partitions().unwrap().is_empty());
    assert!(matches!(
        ds.count_rows(&k),
        Err(DataError::PartitionNotFound { .. })
    ));
    assert_no_leftovers(tmp.path());
}

/// `stage` finishes the files where nothing reads them (what a quality gate checks): staging
/// again gives the same files, a write after it is refused, dropping the staged writer
/// publishes nothing — the old partition stays — and committing publishes what was staged.
#[test]
fn a_staged_writer_publishes_only_on_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = Dataset::open(tmp.path()).unwrap();
    let k = key("2026-03-08");
    commit(&ds, &k, 10, 1);
    let old = ds.checksum(&k).unwrap();

    let mut w = ds
        .writer(&k, id_value_schema(), WriteOptions::default())
        .unwrap();
    w.write(&id_value_batch(0..20, 2)).unwrap();
    let files = w.stage().unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].starts_with(tmp.path().join("_staging")),
        "{files:?}"
    );
    assert!(files[0].is_file());
    assert!(w.is_staged());
    assert_eq!(w.stage().unwrap(), files, "staging again changes nothing");
    let err = w.write(&id_value_batch(0..1, 3)).unwrap_err();
    assert!(err.to_string().contains("already staged"), "{err}");
    assert_eq!(values(&ds, &k), vec![1; 10], "nothing is published yet");
    drop(w);
    assert_eq!(ds.checksum(&k).unwrap(), old);
    assert_eq!(values(&ds, &k), vec![1; 10]);
    assert_no_leftovers(tmp.path());

    let mut w = ds
        .writer(&k, id_value_schema(), WriteOptions::default())
        .unwrap();
    w.write(&id_value_batch(0..20, 2)).unwrap();
    w.stage().unwrap();
    let report = w.commit().unwrap();
    assert_eq!(report.rows, 20);
    assert_eq!(ds.checksum(&k).unwrap(), report.checksum);
    assert_eq!(values(&ds, &k), vec![2; 20]);
    assert_no_leftovers(tmp.path());
}

#[test]
fn crash_at_each_commit_step_leaves_old_or_new_partition_after_reopen() {
    for failpoint in Failpoint::ALL {
        let tmp = tempfile::tempdir().unwrap();
        let ds = Dataset::open(tmp.path()).unwrap();
        let k = PartitionKey::date_hour(jiff::civil::date(2026, 3, 8), 2);
        commit(&ds, &k, 10, 1);

        let mut w = ds
            .writer(&k, id_value_schema(), WriteOptions::default())
            .unwrap();
        w.write(&id_value_batch(0..20, 2)).unwrap();
        let err = w.commit_with_failpoint(failpoint).unwrap_err();
        assert!(
            matches!(err, DataError::InjectedFailure { .. }),
            "{failpoint:?}: {err}"
        );

        let ds = Dataset::open(tmp.path()).unwrap();
        let (rows, value) = if failpoint.keeps_new_partition() {
            (20, 2)
        } else {
            (10, 1)
        };
        assert_eq!(ds.count_rows(&k).unwrap(), rows, "{failpoint:?}");
        assert_eq!(values(&ds, &k), vec![value; rows as usize], "{failpoint:?}");
        let parts = ds.partitions().unwrap();
        assert_eq!(parts.len(), 1, "{failpoint:?}: {parts:?}");
        assert_eq!(parts[0].files, 1, "{failpoint:?}: a doubled partition");
        assert_no_leftovers(tmp.path());

        // And the dataset keeps working.
        commit(&ds, &k, 5, 3);
        assert_eq!(values(&ds, &k), vec![3; 5], "{failpoint:?}");
    }
}

#[test]
fn crash_during_first_commit_leaves_no_partition_and_no_empty_folders() {
    for failpoint in Failpoint::ALL {
        let tmp = tempfile::tempdir().unwrap();
        let ds = Dataset::open(tmp.path()).unwrap();
        let k = PartitionKey::date_hour(jiff::civil::date(2026, 3, 8), 2);
        let mut w = ds
            .writer(&k, id_value_schema(), WriteOptions::default())
            .unwrap();
        w.write(&id_value_batch(0..20, 2)).unwrap();
        w.commit_with_failpoint(failpoint).unwrap_err();

        let ds = Dataset::open(tmp.path()).unwrap();
        let parts = ds.partitions().unwrap();
        if failpoint.keeps_new_partition() {
            assert_eq!(parts.len(), 1, "{failpoint:?}");
            assert_eq!(ds.count_rows(&k).unwrap(), 20);
        } else {
            assert!(parts.is_empty(), "{failpoint:?}: {parts:?}");
            assert!(
                !tmp.path().join("dt=2026-03-08").exists(),
                "{failpoint:?}: empty dt folder left"
            );
        }
        assert_no_leftovers(tmp.path());
    }
}

#[test]
fn reopening_does_not_disturb_a_live_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = Dataset::open(tmp.path()).unwrap();
    let k = key("2026-03-08");
    let mut w = ds
        .writer(&k, id_value_schema(), WriteOptions::default())
        .unwrap();
    w.write(&id_value_batch(0..3, 1)).unwrap();
    // Another task opens the same dataset while this writer is still writing.
    let other = Dataset::open(tmp.path()).unwrap();
    w.write(&id_value_batch(3..6, 1)).unwrap();
    w.commit().unwrap();
    assert_eq!(other.count_rows(&k).unwrap(), 6);
}

#[test]
fn files_roll_past_max_file_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = Dataset::open(tmp.path()).unwrap();
    let k = key("2026-03-08");
    let opts = WriteOptions {
        compression: Compression::None,
        row_group_size: 4096,
        max_file_bytes: Some(64 * 1024),
        ..WriteOptions::default()
    };
    let mut w = ds.writer(&k, id_value_schema(), opts).unwrap();
    for i in 0..10 {
        w.write(&id_value_batch(i * 20_000..(i + 1) * 20_000, i))
            .unwrap();
    }
    let report = w.commit().unwrap();
    assert!(report.files > 1, "{report:?}");
    assert_eq!(report.rows, 200_000);
    assert_eq!(ds.count_rows(&k).unwrap(), 200_000);
    let dir = tmp.path().join("dt=2026-03-08");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let expected: Vec<String> = (0..report.files)
        .map(|i| format!("part-{i:05}.parquet"))
        .collect();
    assert_eq!(names, expected);
    // Rows keep their order across files.
    let ids: Vec<i64> = ds
        .read_partition(&k)
        .unwrap()
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] + 1 == w[1]));
}

#[test]
fn every_compression_round_trips() {
    for compression in [
        Compression::Zstd,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Gzip,
        Compression::None,
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let ds = Dataset::open(tmp.path()).unwrap();
        let k = key("2026-03-08");
        let opts = WriteOptions {
            compression,
            ..WriteOptions::default()
        };
        let report = ds
            .write_partition(&k, id_value_schema(), [&id_value_batch(0..5000, 9)], opts)
            .unwrap();
        assert_eq!(report.rows, 5000, "{compression:?}");
        assert_eq!(values(&ds, &k), vec![9; 5000], "{compression:?}");
    }
}

#[test]
fn empty_commit_is_an_empty_partition() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = Dataset::open(tmp.path()).unwrap();
    let k = key("2026-03-08");
    commit(&ds, &k, 10, 1);
    let report = ds
        .writer(&k, id_value_schema(), WriteOptions::default())
        .unwrap()
        .commit()
        .unwrap();
    assert_eq!((report.rows, report.files), (0, 1));
    assert_eq!(ds.count_rows(&k).unwrap(), 0);
    assert_eq!(ds.partitions().unwrap()[0].rows, 0);
}

#[test]
fn wrong_schema_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = Dataset::open(tmp.path()).unwrap();
    let other = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, false),
    ]));
    let mut w = ds
        .writer(&key("2026-03-08"), other, WriteOptions::default())
        .unwrap();
    let err = w.write(&id_value_batch(0..3, 1)).unwrap_err();
    assert!(matches!(err, DataError::SchemaMismatch { .. }), "{err}");
}

#[test]
fn underscore_and_dot_folders_are_never_partitions() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = Dataset::open(tmp.path()).unwrap();
    let k = key("2026-03-08");
    commit(&ds, &k, 4, 1);
    let part = tmp.path().join("dt=2026-03-08/part-00000.parquet");
    for stray in ["_tmp/dt=x", ".spark/dt=y", "dt=2026-03-08/_meta", "notakey"] {
        let dir = tmp.path().join(stray);
        fs::create_dir_all(&dir).unwrap();
        fs::copy(&part, dir.join("part-00000.parquet")).unwrap();
    }
    let parts = ds.partitions().unwrap();
    assert_eq!(
        parts
            .iter()
            .map(|p| p.partition.as_str())
            .collect::<Vec<_>>(),
        ["dt=2026-03-08"]
    );
    assert_eq!(ds.count_rows(&k).unwrap(), 4);
}

#[test]
fn hostile_partition_values_stay_inside_the_root_and_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let ds = Dataset::open(&root).unwrap();
    let hostile = [
        "../".to_owned(),
        "..".to_owned(),
        "/".to_owned(),
        "/etc".to_owned(),
        "=".to_owned(),
        "a=b/c=d".to_owned(),
        "\0".to_owned(),
        String::new(),
        ".".to_owned(),
        "_staging".to_owned(),
        "x".repeat(5_000),
        format!("{}/..", "y".repeat(5_000)),
    ];
    for (i, value) in hostile.iter().enumerate() {
        let k = PartitionKey::new([("region", value.as_str()), ("n", &i.to_string())]).unwrap();
        let report = commit(&ds, &k, i as i64 + 1, i as i64);
        assert_eq!(report.rows, i as u64 + 1);
    }
    // Nothing was written outside the root, and every path is a plain folder inside it.
    let outside: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, vec![std::ffi::OsString::from("data")]);
    let canonical_root = root.canonicalize().unwrap();
    for entry in all_entries(&root) {
        assert!(
            entry.canonicalize().unwrap().starts_with(&canonical_root),
            "{entry:?}"
        );
        assert!(entry.file_name().unwrap().len() <= 255, "{entry:?}");
    }
    let parts = ds.partitions().unwrap();
    assert_eq!(parts.len(), hostile.len());
    for (i, value) in hostile.iter().enumerate() {
        let k = PartitionKey::new([("region", value.as_str()), ("n", &i.to_string())]).unwrap();
        let info = parts
            .iter()
            .find(|p| p.key == k)
            .unwrap_or_else(|| panic!("{value:?} not listed"));
        assert_eq!(info.rows, i as u64 + 1, "{value:?}");
        assert_eq!(values(&ds, &k), vec![i as i64; i + 1], "{value:?}");
    }
}

/// The well-formed rows of a small generated orders feed, read with the explicit schema.
fn sample_orders(dir: &Path, rows: u64) -> Vec<arrow::array::RecordBatch> {
    let csv = dir.join("orders.csv");
    let spec = SampleSpec {
        rows,
        seed: 11,
        ..SampleSpec::default()
    };
    write_orders_csv(&spec, &csv).unwrap();
    let opts = ReadOptions {
        schema: Some(orders_schema()),
        batch_size: 700,
        ..ReadOptions::default()
    };
    open_source(&csv, &opts).unwrap().collect_batches().unwrap()
}

fn text_opts(format: FileFormat) -> WriteOptions {
    WriteOptions {
        format,
        ..WriteOptions::default()
    }
}

#[test]
fn text_partitions_read_back_with_their_types() {
    let src = tempfile::tempdir().unwrap();
    let batches = sample_orders(src.path(), 3_000);
    let expected = arrow::compute::concat_batches(&orders_schema(), &batches).unwrap();
    assert!(expected.num_rows() > 2_900, "{}", expected.num_rows());
    for format in [FileFormat::Csv, FileFormat::JsonLines, FileFormat::Parquet] {
        let tmp = tempfile::tempdir().unwrap();
        let ds = Dataset::open(tmp.path()).unwrap();
        let k = key("2026-03-08");
        let report = ds
            .write_partition(&k, orders_schema(), &batches, text_opts(format))
            .unwrap();
        assert_eq!(report.rows, expected.num_rows() as u64, "{format}");
        let file = tmp
            .path()
            .join(format!("dt=2026-03-08/part-00000.{}", format.extension()));
        assert_eq!(fs::metadata(&file).unwrap().len(), report.bytes, "{format}");
        // Types and values come back exactly: decimals, UTC timestamps, nulls in `note`.
        let back = ds.read_partition(&k).unwrap();
        let back = arrow::compute::concat_batches(&orders_schema(), &back).unwrap();
        assert_eq!(back, expected, "{format}");
        let listed = ds.partitions().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].format, format);
        assert_eq!(listed[0].rows, expected.num_rows() as u64, "{format}");
        assert_eq!(listed[0].bytes, report.bytes, "{format}");
        assert_eq!(ds.count_rows(&k).unwrap(), report.rows);
        assert_no_leftovers(tmp.path());
    }
}

#[test]
fn a_rerun_in_another_format_replaces_the_partition_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = Dataset::open(tmp.path()).unwrap();
    let k = key("2026-03-08");
    ds.write_partition(
        &k,
        id_value_schema(),
        [&id_value_batch(0..100, 1)],
        WriteOptions::default(),
    )
    .unwrap();
    ds.write_partition(
        &k,
        id_value_schema(),
        [&id_value_batch(0..40, 2)],
        text_opts(FileFormat::Csv),
    )
    .unwrap();
    let mut names: Vec<String> = fs::read_dir(tmp.path().join("dt=2026-03-08"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["_schema.json", "part-00000.csv"]);
    assert_eq!(values(&ds, &k), vec![2; 40]);
    let text = fs::read_to_string(tmp.path().join("dt=2026-03-08/part-00000.csv")).unwrap();
    assert!(text.starts_with("id,value\n0,2\n1,2\n"), "{text:.40}");
}

#[test]
fn text_files_roll_past_max_file_bytes_and_an_injected_crash_keeps_the_old_partition() {
    for format in [FileFormat::Csv, FileFormat::JsonLines] {
        let tmp = tempfile::tempdir().unwrap();
        let ds = Dataset::open(tmp.path()).unwrap();
        let k = key("2026-03-08");
        let opts = WriteOptions {
            max_file_bytes: Some(100_000),
            ..text_opts(format)
        };
        let report = ds
            .write_partition(&k, id_value_schema(), [&id_value_batch(0..50_000, 7)], opts)
            .unwrap();
        assert!(report.files > 3, "{format}: {report:?}");
        for i in 0..report.files {
            let part = tmp
                .path()
                .join(format!("dt=2026-03-08/part-{i:05}.{}", format.extension()));
            // Checked every 8 192 rows of at most ~25 bytes each.
            assert!(fs::metadata(&part).unwrap().len() < 100_000 + 8192 * 25);
        }
        assert_eq!(ds.count_rows(&k).unwrap(), 50_000, "{format}");
        let ids: Vec<i64> = ds
            .read_partition(&k)
            .unwrap()
            .iter()
            .flat_map(|b| {
                let col = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                col.values().to_vec()
            })
            .collect();
        assert_eq!(ids, (0..50_000).collect::<Vec<_>>(), "{format}");

        let mut w = ds.writer(&k, id_value_schema(), text_opts(format)).unwrap();
        w.write(&id_value_batch(0..5, 8)).unwrap();
        let err = w
            .commit_with_failpoint(Failpoint::AfterStagingRename)
            .unwrap_err();
        assert!(matches!(err, DataError::InjectedFailure { .. }), "{err}");
        let ds = Dataset::open(tmp.path()).unwrap();
        assert_eq!(ds.count_rows(&k).unwrap(), 50_000, "{format}");
        assert_no_leftovers(tmp.path());
    }
}

#[test]
fn a_column_a_text_file_cannot_hold_is_refused_up_front() {
    use arrow::datatypes::{DataType, Field, Schema};
    let tmp = tempfile::tempdir().unwrap();
    let ds = Dataset::open(tmp.path()).unwrap();
    let schema = std::sync::Arc::new(Schema::new(vec![Field::new(
        "tags",
        DataType::new_list(DataType::Utf8, true),
        true,
    )]));
    let err = ds
        .writer(&key("2026-03-08"), schema, text_opts(FileFormat::Csv))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("\"tags\"") && msg.contains("write Parquet"),
        "{msg}"
    );
    assert_no_leftovers(tmp.path());
    let err = "xlsx".parse::<FileFormat>().unwrap_err().to_string();
    assert!(err.contains("parquet, csv or jsonl"), "{err}");
    assert_eq!(
        "JSONL".parse::<FileFormat>().unwrap(),
        FileFormat::JsonLines
    );
}

/// Rows added to a partition (a dead-letter replay) while another commit replaces it: the
/// adding commit refuses, naming the partition, and the other commit's rows are what remains —
/// never the old files swapped back in over them.
#[test]
fn an_appender_refuses_to_commit_over_a_partition_replaced_meanwhile() {
    use weir_data::{DataError, Dataset, PartitionKey, WriteOptions};
    let dir = tempfile::tempdir().unwrap();
    let dataset = Dataset::open(dir.path()).unwrap();
    let key = PartitionKey::new([("dt".to_owned(), "2026-03-01".to_owned())]).unwrap();
    let schema = crate::id_value_schema();
    dataset
        .write_partition(
            &key,
            schema.clone(),
            &[crate::id_value_batch(0..10, 1)],
            WriteOptions::default(),
        )
        .unwrap();
    let mut appender = dataset
        .appender(&key, schema.clone(), WriteOptions::default())
        .unwrap();
    appender.write(&crate::id_value_batch(100..101, 9)).unwrap();
    // Another run replaces the partition before the appender commits.
    dataset
        .write_partition(
            &key,
            schema.clone(),
            &[crate::id_value_batch(0..25, 2)],
            WriteOptions::default(),
        )
        .unwrap();
    let err = appender.commit().unwrap_err();
    assert!(matches!(err, DataError::PartitionChanged { .. }), "{err}");
    assert!(
        err.to_string().contains("dt=2026-03-01") && err.to_string().contains("add them again")
    );
    assert_eq!(
        dataset.count_rows(&key).unwrap(),
        25,
        "the replacing commit's rows, not the old ones"
    );
    // Added again, against the new partition, it lands.
    let mut again = dataset
        .appender(&key, schema, WriteOptions::default())
        .unwrap();
    again.write(&crate::id_value_batch(100..101, 9)).unwrap();
    again.commit().unwrap();
    assert_eq!(dataset.count_rows(&key).unwrap(), 26);
}
