//! What weir writes is right and every tool reads it the same way: each of the ten patterns of
//! spec 110.1–110.2 and the flights file of the data-fidelity issue, run as a user runs them,
//! their outputs read back by `weir data query` (counts and column-wise sums against the csv
//! crate's reading of the source) and by DuckDB and pyarrow (same columns, types and rows).
//!
//! DuckDB and pyarrow are real: `scripts/interop_read.py` imports them, and `.ci/run` installs
//! them. Without them these tests fail, they do not skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use jiff::civil::date;
use jiff::tz::TimeZone;
use serde_json::Value;

use super::{json_lines, weir};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn flights() -> PathBuf {
    repo().join("fixtures/nycflights13/flights_sample.csv")
}

fn query(home: &Path, sql: &str, tables: &[(&str, &Path)]) -> Vec<Value> {
    let mut cmd = weir(home);
    cmd.args(["data", "query", sql, "--json"]);
    for (name, path) in tables {
        cmd.arg("--table").arg(format!("{name}={}", path.display()));
    }
    json_lines(&cmd.assert().success().get_output().stdout)
}

/// Arrow's type name (as `_dataset.json` and `arrow_typeof` write it) as DuckDB and pyarrow
/// name the type they read.
fn tool_types(arrow: &str) -> (String, String) {
    match arrow {
        "Int64" => ("BIGINT".into(), "int64".into()),
        "Int32" => ("INTEGER".into(), "int32".into()),
        "UInt32" => ("UINTEGER".into(), "uint32".into()),
        "UInt64" => ("UBIGINT".into(), "uint64".into()),
        "Utf8" => ("VARCHAR".into(), "string".into()),
        "Float64" => ("DOUBLE".into(), "double".into()),
        "Boolean" => ("BOOLEAN".into(), "bool".into()),
        "Date32" => ("DATE".into(), "date32[day]".into()),
        t if t.starts_with("Timestamp(µs, \"UTC\")") => (
            "TIMESTAMP WITH TIME ZONE".into(),
            "timestamp[us, tz=UTC]".into(),
        ),
        t if t.starts_with("Decimal128(") => {
            let args = t.trim_start_matches("Decimal128(").trim_end_matches(')');
            let (p, s) = args.split_once(',').unwrap();
            let (p, s) = (p.trim(), s.trim());
            (format!("DECIMAL({p},{s})"), format!("decimal128({p}, {s})"))
        }
        other => panic!("no DuckDB/pyarrow name for {other}"),
    }
}

/// Reads the dataset at `dir` with weir, DuckDB and pyarrow and asserts all three see the same
/// column names, types and row count; returns weir's (column, Arrow type) list and rows.
fn same_everywhere(home: &Path, dir: &Path) -> (Vec<(String, String)>, u64) {
    let kept: Value =
        serde_json::from_slice(&std::fs::read(dir.join("_dataset.json")).unwrap()).unwrap();
    let mut columns: Vec<String> = Vec::new();
    for c in kept["columns"]
        .as_array()
        .unwrap()
        .iter()
        .chain(kept["partition_columns"].as_array().unwrap())
    {
        columns.push(c["name"].as_str().unwrap().to_owned());
    }
    let typeof_list: Vec<String> = columns
        .iter()
        .map(|c| format!("arrow_typeof(\"{c}\") AS \"{c}\""))
        .collect();
    let types = query(
        home,
        &format!("SELECT {} FROM t LIMIT 1", typeof_list.join(", ")),
        &[("t", dir)],
    );
    let weir_columns: Vec<(String, String)> = columns
        .iter()
        .map(|c| (c.clone(), types[0][c].as_str().unwrap().to_owned()))
        .collect();
    let rows = query(home, "SELECT count(*) AS n FROM t", &[("t", dir)])[0]["n"]
        .as_u64()
        .unwrap();
    let out = std::process::Command::new("python3")
        .arg(repo().join("scripts/interop_read.py"))
        .arg(dir)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "DuckDB/pyarrow could not read {} (does .ci/run's pip install of duckdb and pyarrow work?): {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let tools: Value = serde_json::from_slice(&out.stdout).unwrap();
    for (tool, pick) in [("duckdb", 0usize), ("pyarrow", 1)] {
        let seen: Vec<(String, String)> = tools[tool]["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c[0].as_str().unwrap().into(), c[1].as_str().unwrap().into()))
            .collect();
        let expected: Vec<(String, String)> = weir_columns
            .iter()
            .map(|(n, t)| {
                let (duck, arrow) = tool_types(t);
                (n.clone(), if pick == 0 { duck } else { arrow })
            })
            .collect();
        assert_eq!(seen, expected, "{tool} over {}", dir.display());
        assert_eq!(
            tools[tool]["rows"],
            rows,
            "{tool} rows of {}",
            dir.display()
        );
    }
    (weir_columns, rows)
}

#[test]
fn flights_avg_arr_delay_by_dest_is_the_same_over_the_output_and_the_source() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("by_dest");
    weir(home.path())
        .args(["dags", "run", "110_02_05_geographic_partitioning"])
        .args(["--logical-date", "2026-03-01", "--conf"])
        .arg(format!("source={}", flights().display()))
        .args(["--conf", "key=dest", "--conf"])
        .arg(format!("output={}", out.display()))
        .assert()
        .success();
    let sql = "SELECT dest, avg(arr_delay) AS d, count(arr_delay) AS n, count(*) AS flights \
               FROM f GROUP BY dest ORDER BY dest";
    let from_output = query(home.path(), sql, &[("f", &out)]);
    let source = flights();
    let from_source = query(home.path(), sql, &[("f", &source)]);
    assert_eq!(from_output, from_source);
    // Against the csv crate: NA is missing, everything else a number.
    let mut reader = csv::Reader::from_path(&source).unwrap();
    let h = reader.headers().unwrap().clone();
    let (dest, delay) = (
        h.iter().position(|c| c == "dest").unwrap(),
        h.iter().position(|c| c == "arr_delay").unwrap(),
    );
    let mut expected: BTreeMap<String, (i64, i64, u64)> = BTreeMap::new();
    for r in reader.records() {
        let r = r.unwrap();
        let e = expected.entry(r[dest].to_owned()).or_default();
        e.2 += 1;
        if r[delay] != *"NA" {
            e.0 += r[delay].parse::<i64>().unwrap();
            e.1 += 1;
        }
    }
    assert_eq!(from_output.len(), expected.len());
    for (row, (name, (sum, n, flights))) in from_output.iter().zip(&expected) {
        assert_eq!(row["dest"], *name);
        assert_eq!(row["flights"], *flights, "{name}");
        assert_eq!(row["n"], *n, "{name}");
        if *n > 0 {
            let avg = row["d"].as_f64().unwrap();
            assert!(
                (avg - *sum as f64 / *n as f64).abs() < 1e-9,
                "{name}: {avg}"
            );
        }
    }
    let (columns, rows) = same_everywhere(home.path(), &out);
    assert_eq!(rows, 2807);
    let ty = |c: &str| columns.iter().find(|(n, _)| n == c).unwrap().1.clone();
    assert_eq!(ty("arr_delay"), "Int64");
    assert_eq!(ty("dest"), "Utf8");
    assert!(ty("time_hour").starts_with("Timestamp(µs, \"UTC\")"));
    assert_eq!(
        columns.iter().filter(|(n, _)| n == "dest").count(),
        1,
        "dest once: from the path, not repeated by the files"
    );
}

/// A well-formed row of the generated orders, read with the csv crate.
struct Order {
    id: i64,
    at: Timestamp,
    cents: i64,
}

fn orders(path: &Path) -> Vec<Order> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let mut out = Vec::new();
    for r in reader.records() {
        let Ok(r) = r else { continue };
        if r.len() != 10 {
            continue;
        }
        let (Ok(id), Ok(at)) = (r[0].parse::<i64>(), r[4].parse::<Timestamp>()) else {
            continue;
        };
        let Some((units, cents)) = r[6].split_once('.') else {
            continue;
        };
        let (Ok(units), Ok(c)) = (units.parse::<i64>(), cents.parse::<i64>()) else {
            continue;
        };
        if cents.len() != 2 || units < 0 {
            continue;
        }
        out.push(Order {
            id,
            at,
            cents: units * 100 + c,
        });
    }
    out
}

/// (rows, sum of order ids, sum of amounts in cents) of the orders in `[from, to)`.
fn expected(orders: &[Order], window: Option<(Timestamp, Timestamp)>) -> (u64, i64, i64) {
    let mut out = (0, 0, 0);
    for o in orders {
        if window.is_some_and(|(from, to)| o.at < from || o.at >= to) {
            continue;
        }
        out.0 += 1;
        out.1 += o.id;
        out.2 += o.cents;
    }
    out
}

/// The same three figures, read back by `weir data query` over a dataset of orders.
fn measured(home: &Path, dir: &Path) -> (u64, i64, i64) {
    let row = &query(
        home,
        "SELECT count(*) AS n, sum(order_id) AS ids, CAST(sum(amount) * 100 AS BIGINT) AS cents FROM t",
        &[("t", dir)],
    )[0];
    (
        row["n"].as_u64().unwrap(),
        row["ids"].as_i64().unwrap_or(0),
        row["cents"].as_i64().unwrap_or(0),
    )
}

fn at(zone: &str, y: i16, m: i8, d: i8, h: i8) -> Timestamp {
    date(y, m, d)
        .at(h, 0, 0, 0)
        .to_zoned(TimeZone::get(zone).unwrap())
        .unwrap()
        .timestamp()
}

fn run(home: &Path, dag: &str, logical: &str, source: &Path) {
    weir(home)
        .args(["dags", "run", dag, "--logical-date", logical, "--conf"])
        .arg(format!("source={}", source.display()))
        .assert()
        .success();
}

/// Every dataset the ten patterns write: read back with the rows and sums the source says it
/// should hold, and read the same by DuckDB and pyarrow. Prints each output's schema as written.
#[test]
fn every_pattern_output_round_trips_and_reads_the_same_in_duckdb_and_pyarrow() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let source = h.join("orders.csv");
    weir(h)
        .args([
            "data",
            "generate",
            "--rows",
            "30000",
            "--start",
            "2026-03-01",
        ])
        .args(["--days", "35", "--out"])
        .arg(&source)
        .assert()
        .success();
    let all = orders(&source);
    let ny = "America/New_York";
    let data = |name: &str| h.join("data").join(name);

    // Windows of the run's interval.
    run(h, "110_01_01_daily_batch_processing", "2026-03-03", &source);
    let daily = data("110_01_01_daily_batch_processing");
    let day = (at(ny, 2026, 3, 3, 0), at(ny, 2026, 3, 4, 0));
    assert_eq!(measured(h, &daily), expected(&all, Some(day)), "daily");

    run(
        h,
        "110_01_02_hourly_batch_processing",
        "2026-03-03T15:00:00-05:00",
        &source,
    );
    let hour = (at(ny, 2026, 3, 3, 15), at(ny, 2026, 3, 3, 16));
    assert_eq!(
        measured(h, &data("110_01_02_hourly_batch_processing")),
        expected(&all, Some(hour)),
        "hourly"
    );

    run(
        h,
        "110_01_04_monthly_batch_processing",
        "2026-03-01",
        &source,
    );
    let march = (at(ny, 2026, 3, 1, 0), at(ny, 2026, 4, 1, 0));
    assert_eq!(
        measured(h, &data("110_01_04_monthly_batch_processing")),
        expected(&all, Some(march)),
        "monthly"
    );

    run(
        h,
        "110_01_05_custom_batch_windows",
        "2026-03-03T06:00:00Z",
        &source,
    );
    let london = "Europe/London";
    let shift = (at(london, 2026, 3, 3, 6), at(london, 2026, 3, 3, 14));
    assert_eq!(
        measured(h, &data("110_01_05_custom_batch_windows")),
        expected(&all, Some(shift)),
        "custom shift"
    );

    run(
        h,
        "110_02_01_date_based_partitioning",
        "2026-03-03",
        &source,
    );
    let utc_day = (at("UTC", 2026, 3, 3, 0), at("UTC", 2026, 3, 4, 0));
    assert_eq!(
        measured(h, &data("110_02_01_date_based_partitioning")),
        expected(&all, Some(utc_day)),
        "date-based"
    );

    // The weekly rollup over a week of daily partitions: its totals are the week's orders.
    weir(h)
        .args(["dags", "backfill", "110_01_01_daily_batch_processing"])
        .args(["--from", "2026-03-02", "--to", "2026-03-08", "--conf"])
        .arg(format!("source={}", source.display()))
        .assert()
        .success();
    weir(h)
        .args(["dags", "run", "110_01_03_weekly_batch_aggregation"])
        .args(["--logical-date", "2026-03-02"])
        .assert()
        .success();
    let weekly = data("110_01_03_weekly_batch_aggregation");
    let week = expected(&all, Some((at(ny, 2026, 3, 2, 0), at(ny, 2026, 3, 9, 0))));
    let totals = &query(
        h,
        "SELECT sum(orders) AS n, CAST(sum(amount_sum) * 100 AS BIGINT) AS cents FROM w",
        &[("w", &weekly)],
    )[0];
    assert_eq!(
        (
            totals["n"].as_u64().unwrap(),
            totals["cents"].as_i64().unwrap()
        ),
        (week.0, week.2),
        "weekly"
    );

    // Whole-source layouts: every well-formed order, once.
    let whole = expected(&all, None);
    for dag in [
        "110_02_02_id_range_partitioning",
        "110_02_03_hash_based_partitioning",
        "110_02_04_size_based_partitioning",
        "110_02_05_geographic_partitioning",
    ] {
        run(h, dag, "2026-03-03", &source);
        assert_eq!(measured(h, &data(dag)), whole, "{dag}");
    }
    let cross = &query(
        h,
        "SELECT orders FROM c WHERE region = '(all regions)'",
        &[("c", &data("110_02_05_geographic_partitioning_cross_region"))],
    )[0];
    assert_eq!(cross["orders"], whole.0);

    // The anti-patterns write beside them (a day loaded four ways; a day counted three ways).
    run(
        h,
        "110_06_03_no_batch_idempotency_antipattern",
        "2026-03-05",
        &source,
    );
    run(
        h,
        "110_06_04_ignoring_batch_boundaries_antipattern",
        "2026-03-05",
        &source,
    );
    let fifth = expected(&all, Some((at(ny, 2026, 3, 5, 0), at(ny, 2026, 3, 6, 0))));
    for dag in ["", "_dedup", "_upsert"] {
        let dir = data(&format!("110_06_03_no_batch_idempotency_antipattern{dag}"));
        assert_eq!(measured(h, &dir), fifth, "110.6.3{dag}");
    }
    let exact = &query(
        h,
        "SELECT count(*) AS n, sum(order_id) AS ids, sum(amount_cents) AS cents FROM e",
        &[(
            "e",
            &data("110_06_04_ignoring_batch_boundaries_antipattern"),
        )],
    )[0];
    assert_eq!(
        (
            exact["n"].as_u64().unwrap(),
            exact["ids"].as_i64().unwrap(),
            exact["cents"].as_i64().unwrap()
        ),
        fifth,
        "110.6.4 exact interval"
    );

    // Every Parquet dataset written, derived ones included, reads the same in all three tools
    // (110.6.3's replayed feed is CSV on purpose: weir reads it, see its own tests).
    let mut schemas = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(h.join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.join("_dataset.json").is_file()
                && !p.ends_with("110_06_03_no_batch_idempotency_antipattern_feed")
        })
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 17, "{dirs:?}");
    for dir in &dirs {
        let (columns, rows) = same_everywhere(h, dir);
        let list: Vec<String> = columns.iter().map(|(n, t)| format!("{n}: {t}")).collect();
        schemas.push(format!(
            "{} ({rows} rows): {}",
            dir.file_name().unwrap().to_string_lossy(),
            list.join(", ")
        ));
    }
    // The schemas as written, for the record (`cargo test … -- --nocapture`).
    println!("{}", schemas.join("\n"));
    // Typed partition columns: dates are dates, buckets and ranges integers.
    let ty = |dir: &str, col: &str| {
        query(
            h,
            &format!("SELECT arrow_typeof(\"{col}\") AS t FROM d LIMIT 1"),
            &[("d", &data(dir))],
        )[0]["t"]
            .clone()
    };
    assert_eq!(ty("110_01_01_daily_batch_processing", "dt"), "Date32");
    assert_eq!(ty("110_02_03_hash_based_partitioning", "bucket"), "Int32");
    assert_eq!(ty("110_02_02_id_range_partitioning", "range"), "Int32");
    assert_eq!(ty("110_01_02_hourly_batch_processing", "hr"), "Int32");
}

/// A DAG file declares its source's types and null tokens: they win over inference, and the
/// dataset keeps them.
#[test]
fn a_dag_file_schema_and_null_values_are_the_types_written() {
    let home = tempfile::tempdir().unwrap();
    let dags = home.path().join("dags");
    std::fs::create_dir_all(&dags).unwrap();
    std::fs::write(
        dags.join("flights.toml"),
        format!(
            r#"[dag]
id = "flights_daily"
schedule = "@daily"
timezone = "UTC"
start_date = "2013-01-01"
catchup = false

[[tasks]]
id = "load"
op = "load_window"
source = "{}"
time_column = "time_hour"
partition_by = "dt"
null_values = ["NA"]
schema = {{ arr_delay = "float", dep_delay = "decimal(8,1)", tailnum = "string" }}
"#,
            flights().display()
        ),
    )
    .unwrap();
    weir(home.path())
        .args([
            "dags",
            "run",
            "flights_daily",
            "--logical-date",
            "2013-01-01",
        ])
        .assert()
        .success();
    let out = home.path().join("data/flights_daily");
    let (columns, rows) = same_everywhere(home.path(), &out);
    let ty = |c: &str| columns.iter().find(|(n, _)| n == c).unwrap().1.clone();
    assert_eq!(ty("arr_delay"), "Float64");
    assert_eq!(ty("dep_delay"), "Decimal128(8, 1)");
    assert_eq!(ty("dep_time"), "Int64", "undeclared columns are inferred");
    assert_eq!(ty("dt"), "Date32");
    // The day's flights, counted with the csv crate.
    let mut reader = csv::Reader::from_path(flights()).unwrap();
    let day = reader
        .records()
        .filter(|r| r.as_ref().unwrap()[18].starts_with("2013-01-01T"))
        .count() as u64;
    assert!(day > 0);
    assert_eq!(rows, day);
    let nulls = &query(
        home.path(),
        "SELECT count(*) - count(arr_delay) AS missing FROM f",
        &[("f", &out)],
    )[0];
    let mut reader = csv::Reader::from_path(flights()).unwrap();
    let na = reader
        .records()
        .map(|r| r.unwrap())
        .filter(|r| r[18].starts_with("2013-01-01T") && &r[8] == "NA")
        .count() as u64;
    assert_eq!(nulls["missing"], na);
}

/// `--table f='DIR/*.csv'` reads plain files as one table, with the same inference as one file.
#[test]
fn a_glob_of_source_files_queries_like_the_one_file_they_were_split_from() {
    let home = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(flights()).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let parts = home.path().join("landing");
    std::fs::create_dir_all(&parts).unwrap();
    for (i, chunk) in rows.chunks(1000).enumerate() {
        let body = format!("{header}\n{}\n", chunk.join("\n"));
        std::fs::write(parts.join(format!("part-{i}.csv")), body).unwrap();
    }
    let sql = "SELECT origin, count(*) AS n, sum(arr_delay) AS delay, min(time_hour) AS first \
               FROM f GROUP BY origin ORDER BY origin";
    let glob = parts.join("*.csv");
    let source = flights();
    let split = query(home.path(), sql, &[("f", &glob)]);
    let whole = query(home.path(), sql, &[("f", &source)]);
    assert_eq!(split.len(), 3, "{split:?}");
    assert_eq!(split, whole);
    let total: u64 = split.iter().map(|r| r["n"].as_u64().unwrap()).sum();
    assert_eq!(total, rows.len() as u64);
}
