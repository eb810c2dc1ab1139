//! DAG files run by the stock binary: a file like the issue's runs over the sample orders with
//! counts equal to independent ones, `dags validate` reports every problem with its line, a
//! broken file leaves the others runnable, and the example files commit what their Rust twins
//! commit on the same data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;
use serde_json::Value;

use crate::{json_lines, kill_after, spawn_weir, weir};

/// The repository's `examples/dags`.
fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/dags")
}

/// Sample orders written with `weir data generate`.
fn orders(home: &Path) -> PathBuf {
    let path = home.join("orders.csv");
    weir(home)
        .args([
            "data",
            "generate",
            "--rows",
            "30000",
            "--start",
            "2026-03-01",
        ])
        .args(["--days", "10", "--out"])
        .arg(&path)
        .assert()
        .success();
    path
}

/// (event time, region, amount in cents) of every well-formed row, read with the csv crate.
fn rows_of(path: &Path) -> Vec<(jiff::Timestamp, String, i64)> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (t, r, a) = (col("event_time"), col("region"), col("amount"));
    let mut out = Vec::new();
    for record in reader.records().flatten() {
        let (Some(time), Some(region), Some(amount)) =
            (record.get(t), record.get(r), record.get(a))
        else {
            continue;
        };
        let (Ok(time), Some((units, cents))) =
            (time.parse::<jiff::Timestamp>(), amount.split_once('.'))
        else {
            continue;
        };
        let (Ok(units), Ok(cents)) = (units.parse::<i64>(), cents.parse::<i64>()) else {
            continue;
        };
        if region.is_empty() || cents.to_string().len() > 2 {
            continue;
        }
        out.push((time, region.to_owned(), units * 100 + cents));
    }
    out
}

/// Partition → rows of the dataset at `dir`.
fn partitions(dir: &Path) -> BTreeMap<String, u64> {
    weir_data::Dataset::open(dir)
        .unwrap()
        .partitions()
        .unwrap()
        .into_iter()
        .map(|p| (p.partition, p.rows))
        .collect()
}

fn run_json(home: &Path, args: &[&str]) -> Value {
    let out = weir(home)
        .arg("--dags")
        .arg(examples())
        .args(args)
        .arg("--json")
        .assert()
        .success();
    json_lines(&out.get_output().stdout)
        .pop()
        .expect("the run's summary")
}

/// The issue's example, on the sample orders: the load's `dt=` partition holds exactly the
/// orders of the New York day, and the SQL step's per-region orders and revenue equal sums
/// computed here from the CSV.
#[test]
fn a_dag_file_runs_with_counts_equal_to_independent_ones() {
    let home = tempfile::tempdir().unwrap();
    let source = orders(home.path());
    let run = run_json(
        home.path(),
        &[
            "dags",
            "run",
            "orders_by_region",
            "--logical-date",
            "2026-03-05",
        ],
    );
    // The default source is the sample path (generated on first use). Running the same
    // interval again on another file replaces the partition, never adds to it.
    assert_eq!(run["state"], "success", "{run}");
    let from_sample = partitions(&home.path().join("data/orders_by_region"))["dt=2026-03-05"];
    assert!(from_sample > 0);
    let run = run_json(
        home.path(),
        &[
            "dags",
            "run",
            "orders_by_region",
            "--logical-date",
            "2026-03-05",
            "--conf",
            &format!("source={}", source.display()),
        ],
    );
    assert_eq!(run["state"], "success", "{run}");
    let ny = TimeZone::get("America/New_York").unwrap();
    let day = jiff::civil::date(2026, 3, 5);
    let in_day: Vec<_> = rows_of(&source)
        .into_iter()
        .filter(|(t, _, _)| t.to_zoned(ny.clone()).date() == day)
        .collect();
    assert!(in_day.len() > 1000, "{}", in_day.len());
    let landed = partitions(&home.path().join("data/orders_by_region"));
    assert_eq!(
        landed.get("dt=2026-03-05"),
        Some(&(in_day.len() as u64)),
        "{landed:?}"
    );
    assert_ne!(
        from_sample,
        in_day.len() as u64,
        "the two sources differ that day"
    );
    let mut want: BTreeMap<String, (u64, i64)> = BTreeMap::new();
    for (_, region, cents) in &in_day {
        let e = want.entry(region.clone()).or_default();
        e.0 += 1;
        e.1 += cents;
    }
    let got: BTreeMap<String, (u64, i64)> = run["outputs"]["per_region"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let revenue = r["revenue"].as_f64().unwrap();
            (
                r["region"].as_str().unwrap().to_owned(),
                (
                    r["orders"].as_u64().unwrap(),
                    (revenue * 100.0).round() as i64,
                ),
            )
        })
        .collect();
    assert_eq!(got, want);
}

const BROKEN: &str = r#"[dag]
id = "broken"
schedule = "every fortnight"
timezone = "Mars/Olympus"

[params]
n = { type = "integer", default = "ten" }

[[tasks]]
id = "load"
op = "load_window"
sourc = "orders.csv"

[[tasks]]
id = "count"
op = "teleport"

[[tasks]]
id = "per_region"
op = "sql"
inputs = { orders = "nope" }
after = ["lod"]
query = "SELECT 1"

[[tasks]]
id = "a"
op = "sql"
after = ["b"]
query = "SELECT 1"

[[tasks]]
id = "b"
op = "sql"
after = ["a"]
query = "SELECT 1"
"#;

/// `weir dags validate` lists every problem of every file with its file and line and exits 1;
/// the broken file beside a good one is an import error in `dags list`, and the good one runs.
#[test]
fn validate_reports_every_problem_and_a_broken_file_leaves_the_good_one_runnable() {
    let home = tempfile::tempdir().unwrap();
    let dags = home.path().join("dags");
    std::fs::create_dir_all(&dags).unwrap();
    std::fs::write(dags.join("broken.toml"), BROKEN).unwrap();
    std::fs::write(dags.join("bad_syntax.toml"), "[dag\nid = 1\n").unwrap();
    std::fs::copy(
        examples().join("orders_by_region.toml"),
        dags.join("good.toml"),
    )
    .unwrap();

    let out = weir(home.path())
        .args(["dags", "validate"])
        .arg(dags.join("broken.toml"))
        .arg(dags.join("bad_syntax.toml"))
        .arg(dags.join("good.toml"))
        .assert()
        .failure()
        .get_output()
        .clone();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let broken = dags.join("broken.toml").display().to_string();
    for (line, needle) in [
        (3, "schedule \"every fortnight\""),
        (4, "unknown time zone \"Mars/Olympus\""),
        (7, "the default \"ten\" is invalid"),
        (12, "unknown field `sourc`"),
        (16, "unknown operator `teleport`"),
        (
            21,
            "`inputs` names `nope`, which is not a task of this file",
        ),
        (22, "`after` names `lod`, which is not a task of this file"),
        (31, "tasks form a cycle: b -> a -> b"),
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("{broken}:{line}:")) && l.contains(needle)),
            "no {needle:?} at line {line}:\n{stdout}"
        );
    }
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("bad_syntax.toml:1: TOML:")),
        "{stdout}"
    );
    assert!(
        stdout.contains("good.toml: ok: DAG `orders_by_region`"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("problems in 3 files"), "{stderr}");

    // dags list: the good DAG beside the binary's, the broken files as import errors.
    let out = weir(home.path()).args(["dags", "list"]).assert().success();
    let listing = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(listing.contains("orders_by_region"), "{listing}");
    assert!(
        listing.contains("110_01_01_daily_batch_processing"),
        "{listing}"
    );
    assert!(listing.contains("import errors"), "{listing}");
    assert!(listing.contains("unknown operator `teleport`"), "{listing}");
    let out = weir(home.path())
        .args(["dags", "list", "--json"])
        .assert()
        .success();
    let errors = json_lines(&out.get_output().stdout)
        .into_iter()
        .filter(|v| v.get("import_error").is_some())
        .count();
    assert_eq!(errors, 9, "{errors}");

    // The good file runs; the broken ones only cost a warning.
    let out = weir(home.path())
        .args([
            "dags",
            "run",
            "orders_by_region",
            "--logical-date",
            "2026-03-05",
            "--json",
        ])
        .assert()
        .success();
    let run = json_lines(&out.get_output().stdout).pop().unwrap();
    assert_eq!(run["state"], "success", "{run}");
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(stderr.contains("2 DAG files did not load"), "{stderr}");
}

/// 110.1.1 as a file and as Rust, over the same week: the same `dt=` partitions with the same
/// rows.
#[test]
fn the_daily_file_commits_what_its_rust_twin_commits() {
    let home = tempfile::tempdir().unwrap();
    let source = orders(home.path());
    let conf = format!("source={}", source.display());
    for dag in [
        "110_01_01_daily_batch_processing",
        "110_01_01_daily_batch_processing_file",
    ] {
        weir(home.path())
            .arg("--dags")
            .arg(examples())
            .args([
                "dags",
                "backfill",
                dag,
                "--from",
                "2026-03-02",
                "--to",
                "2026-03-08",
            ])
            .args(["--conf", &conf])
            .assert()
            .success();
    }
    let rust = partitions(&home.path().join("data/110_01_01_daily_batch_processing"));
    let file = partitions(
        &home
            .path()
            .join("data/110_01_01_daily_batch_processing_file"),
    );
    assert_eq!(rust.len(), 7, "{rust:?}");
    assert_eq!(rust, file);
}

/// 110.1.3 as a file and as Rust, over the same daily partitions: the same `wk=` partition,
/// the same rows, and the same aggregate values.
#[test]
fn the_weekly_file_commits_what_its_rust_twin_commits() {
    let home = tempfile::tempdir().unwrap();
    let source = orders(home.path());
    weir(home.path())
        .args(["dags", "backfill", "110_01_01_daily_batch_processing"])
        .args(["--from", "2026-03-02", "--to", "2026-03-08", "--conf"])
        .arg(format!("source={}", source.display()))
        .assert()
        .success();
    for dag in [
        "110_01_03_weekly_batch_aggregation",
        "110_01_03_weekly_batch_aggregation_file",
    ] {
        let run = run_json(
            home.path(),
            &["dags", "run", dag, "--logical-date", "2026-03-02"],
        );
        assert_eq!(run["state"], "success", "{run}");
    }
    let rust_dir = home.path().join("data/110_01_03_weekly_batch_aggregation");
    let file_dir = home
        .path()
        .join("data/110_01_03_weekly_batch_aggregation_file");
    let rust = partitions(&rust_dir);
    assert_eq!(rust.keys().collect::<Vec<_>>(), ["wk=2026-W10"]);
    assert_eq!(rust, partitions(&file_dir));
    let query = |dir: &Path| {
        let out = weir(home.path())
            .args(["data", "query", "--table"])
            .arg(format!("w={}", dir.display()))
            .arg("SELECT region, orders, CAST(amount_sum AS VARCHAR) AS amount, customers, days_with_data FROM w ORDER BY region")
            .arg("--json")
            .assert()
            .success();
        json_lines(&out.get_output().stdout)
    };
    let rust_rows = query(&rust_dir);
    assert_eq!(rust_rows.len(), 4, "{rust_rows:?}");
    assert_eq!(rust_rows, query(&file_dir));
}

/// 110.2.2 as a file (plan_ranges + a mapped sql per range) and as Rust: the same `range=NN`
/// partitions with the same rows.
#[test]
fn the_id_range_file_commits_what_its_rust_twin_commits() {
    let home = tempfile::tempdir().unwrap();
    let source = orders(home.path());
    let conf = format!("source={}", source.display());
    for dag in [
        "110_02_02_id_range_partitioning",
        "110_02_02_id_range_partitioning_file",
    ] {
        let run = run_json(
            home.path(),
            &[
                "dags",
                "run",
                dag,
                "--conf",
                &conf,
                "--conf",
                "partitions=6",
            ],
        );
        assert_eq!(run["state"], "success", "{run}");
    }
    let rust = partitions(&home.path().join("data/110_02_02_id_range_partitioning"));
    let file = partitions(
        &home
            .path()
            .join("data/110_02_02_id_range_partitioning_file"),
    );
    assert_eq!(rust.len(), 6, "{rust:?}");
    assert_eq!(rust, file);
}

/// A daily DAG file starting `days` days ago (UTC), whose one task runs `true`.
fn live_dag(id: &str, days: i64, description: &str) -> String {
    let start = jiff::Timestamp::now()
        .to_zoned(TimeZone::UTC)
        .date()
        .checked_sub(jiff::Span::new().days(days))
        .unwrap();
    format!(
        "[dag]\nid = \"{id}\"\nschedule = \"@daily\"\ntimezone = \"UTC\"\nstart_date = \"{start}\"\n\
         catchup = true\ndescription = \"{description}\"\n\n[[tasks]]\nid = \"noop\"\nop = \"command\"\nprogram = \"true\"\n"
    )
}

fn file_runs(home: &Path, dag: &str) -> Vec<Value> {
    let out = weir(home)
        .args(["runs", "list", "--dag", dag, "--json"])
        .assert()
        .success();
    json_lines(&out.get_output().stdout)
}

/// Waits (for a real process, at most three minutes: CI runs the multi-host test beside it)
/// until `dag` has `n` successful runs.
fn wait_for_runs(home: &Path, dag: &str, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let runs = file_runs(home, dag);
        if runs.iter().filter(|r| r["state"] == "success").count() >= n {
            return runs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{dag} did not get {n} successful runs: {runs:?}; the scheduler said: {}",
            std::fs::read_to_string(home.join("scheduler.err")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Living files: a running `weir scheduler` picks up a DAG file added while it runs, without a
/// restart; every run stores the version (content hash) of the file it was created from, and
/// after a change `dags show` names the current version, which new runs get.
#[test]
fn a_running_scheduler_picks_up_a_new_dag_file_and_runs_keep_their_version() {
    let _alone = crate::heavy();
    let home = tempfile::tempdir().unwrap();
    let dags = home.path().join("dags");
    std::fs::create_dir_all(&dags).unwrap();
    let v1 = live_dag("live", 3, "first version");
    std::fs::write(dags.join("live.toml"), &v1).unwrap();
    let mut scheduler = std::process::Command::new(assert_cmd::cargo::cargo_bin("weir"))
        .env_remove("WEIR_HOME")
        .arg("--home")
        .arg(home.path())
        .args(["scheduler", "--poll", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(home.path().join("scheduler.err")).unwrap())
        .spawn()
        .unwrap();
    let runs = wait_for_runs(home.path(), "live", 3);
    let v1_version = weir_dagfile::version_of(&v1);
    assert!(
        runs.iter().all(|r| r["dag_version"] == v1_version.as_str()),
        "{runs:?}"
    );

    // A new file while the scheduler runs: it is loaded and scheduled without a restart.
    let second = live_dag("second", 2, "added later");
    std::fs::write(dags.join("second.toml"), &second).unwrap();
    let runs = wait_for_runs(home.path(), "second", 2);
    assert!(
        runs.iter()
            .all(|r| r["dag_version"] == weir_dagfile::version_of(&second).as_str()),
        "{runs:?}"
    );

    // A changed file: the earlier runs keep the version they were created with; the file's
    // new version is the current one, and a new run gets it.
    let v2 = live_dag("live", 3, "second version");
    std::fs::write(dags.join("live.toml"), &v2).unwrap();
    let v2_version = weir_dagfile::version_of(&v2);
    let out = weir(home.path())
        .args(["dags", "show", "live"])
        .assert()
        .success();
    let show = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        show.contains(&format!("version {v2_version}, the current one")),
        "{show}"
    );
    weir(home.path())
        .args(["dags", "run", "live"])
        .assert()
        .success();
    let runs = file_runs(home.path(), "live");
    let versions: Vec<&str> = runs
        .iter()
        .filter_map(|r| r["dag_version"].as_str())
        .collect();
    assert_eq!(
        versions.iter().filter(|v| **v == v1_version).count(),
        3,
        "{runs:?}"
    );
    assert_eq!(
        versions.iter().filter(|v| **v == v2_version).count(),
        1,
        "{runs:?}"
    );

    scheduler.kill().unwrap();
    scheduler.wait().unwrap();
    let stderr = std::fs::read_to_string(home.path().join("scheduler.err")).unwrap();
    assert!(
        stderr.contains("DAG files reloaded:") && stderr.contains("second@"),
        "{stderr}"
    );
}

/// A DAG file whose first task sleeps and whose second prints `word`.
fn pinned_dag(word: &str) -> String {
    format!(
        "[dag]\nid = \"pinned\"\nschedule = \"none\"\n\n\
         [[tasks]]\nid = \"first\"\nop = \"command\"\nprogram = \"sleep\"\nargs = [\"2\"]\nretries = 1\n\n\
         [[tasks]]\nid = \"second\"\nop = \"command\"\nafter = [\"first\"]\nprogram = \"echo\"\nargs = [\"{word}\"]\n"
    )
}

/// A run keeps its version across processes: `weir dags run` of a DAG file is killed with
/// `kill -9` mid-run, the file is changed, and the same command run again resumes the run with
/// the version it was created with (kept in the store), not the file's new one.
#[test]
fn a_run_resumed_after_its_file_changed_runs_the_version_it_started_with() {
    let home = tempfile::tempdir().unwrap();
    let dags = home.path().join("dags");
    std::fs::create_dir_all(&dags).unwrap();
    let v1 = pinned_dag("one");
    std::fs::write(dags.join("pinned.toml"), &v1).unwrap();
    let args = [
        "--lease",
        "1s",
        "dags",
        "run",
        "pinned",
        "--logical-date",
        "2026-03-05",
    ];
    let mut first = vec!["--log", "info"];
    first.extend(args);
    kill_after(
        spawn_weir(home.path(), &first),
        &["task state", "task_id=first", "to=running"],
        1,
    );

    std::fs::write(dags.join("pinned.toml"), pinned_dag("two")).unwrap();
    let out = weir(home.path())
        .args(args)
        .arg("--json")
        .assert()
        .success();
    let run = json_lines(&out.get_output().stdout).pop().unwrap();
    assert_eq!(run["state"], "success", "{run}");
    assert_eq!(run["resumed"], true, "{run}");
    assert_eq!(
        run["outputs"]["second"]["stdout_tail"],
        serde_json::json!(["one"]),
        "{run}"
    );
    let runs = file_runs(home.path(), "pinned");
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0]["dag_version"],
        weir_dagfile::version_of(&v1).as_str()
    );
}
