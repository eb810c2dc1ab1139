//! `weir datasets` on a real S3-compatible server (s3s-fs on loopback): a put killed with
//! SIGKILL half-way is never visible, the committed version stays whole, and the dead writer's
//! files are deleted from what the store recorded once its lease ran out.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use weir_data::testing::S3Server;

use crate::{json_lines, weir};

/// Part files under a bucket's folder on the server's disk.
fn parts_on_disk(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                out.push(path.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

fn csv(path: &Path, rows: std::ops::Range<u64>) {
    use std::io::Write as _;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "id,name,amount").unwrap();
    for i in rows {
        writeln!(f, "{i},customer-{},{}.{:02}", i % 977, i % 5000, i % 100).unwrap();
    }
}

#[test]
fn a_put_killed_half_way_is_never_seen_and_is_rolled_back_from_the_store() {
    // Encoding 600,000 rows keeps a core busy: not beside the live-scheduler tests.
    let _alone = crate::heavy();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let server = S3Server::start(Ipv4Addr::LOCALHOST, &dir.path().join("s3"));
    server.bucket("lake");
    let bucket = server.root.join("lake");
    let (small, big) = (dir.path().join("small.csv"), dir.path().join("big.csv"));
    csv(&small, 0..1000);
    csv(&big, 0..600_000);
    let put = |file: &Path, extra: &[&str]| {
        let mut cmd = weir(&home);
        cmd.envs(server.env())
            .args(["datasets", "put", "s3://lake/sales", "--commit-lease", "1s"])
            .args(["--partition", "day=2026-03-02", "--json"])
            .args(extra)
            .arg(file);
        cmd
    };
    let list = || {
        json_lines(
            &weir(&home)
                .envs(server.env())
                .args(["datasets", "list", "s3://lake/sales", "--json"])
                .output()
                .unwrap()
                .stdout,
        )
    };
    // Version 1: 1,000 rows.
    let v1 = json_lines(&put(&small, &[]).assert().success().get_output().stdout)[0].clone();
    assert_eq!(
        (v1["version"].as_i64(), v1["rows"].as_u64()),
        (Some(1), Some(1000))
    );
    let v1_files = parts_on_disk(&bucket);
    assert_eq!(v1_files.len(), 1);

    // A rewrite of 600,000 rows in ~100 KB parts, killed once it has put three of them.
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("weir"))
        .env_remove("WEIR_HOME")
        .env_remove("WEIR_STORE_URL")
        .envs(server.env())
        .arg("--home")
        .arg(&home)
        .args(["datasets", "put", "s3://lake/sales", "--commit-lease", "1s"])
        .args(["--partition", "day=2026-03-02", "--part-bytes", "100000"])
        .arg(&big)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while parts_on_disk(&bucket).len() < 1 + 3 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the put finished before it was killed; give it more rows"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the put made no progress"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        StdCommand::new("kill")
            .args(["-9", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(!child.wait().unwrap().success());
    let left = parts_on_disk(&bucket);
    assert!(
        left.len() > v1_files.len(),
        "the dead writer left part files behind"
    );

    // Readers see version 1, whole, whatever the bucket holds.
    let heads = list();
    assert_eq!(heads.len(), 1);
    assert_eq!(
        (heads[0]["version"].as_i64(), heads[0]["rows"].as_u64()),
        (Some(1), Some(1000))
    );
    let verify = weir(&home)
        .envs(server.env())
        .args(["datasets", "verify", "s3://lake/sales"])
        .assert()
        .success();
    assert!(
        String::from_utf8_lossy(&verify.get_output().stdout)
            .contains("1 committed partitions of s3://lake/sales, every file present and complete")
    );

    // Once the dead writer's 1 s lease has run out, a collection rolls it back and deletes
    // every file the store recorded for it; version 1's file stays.
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        let out = weir(&home)
            .envs(server.env())
            .args([
                "datasets",
                "gc",
                "s3://lake/sales",
                "--grace",
                "0s",
                "--json",
            ])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let report = json_lines(&out)[0].clone();
        if !report["rolled_back"].as_array().unwrap().is_empty() {
            break report;
        }
        assert!(
            Instant::now() < deadline,
            "the dead writer was never rolled back"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(report["rolled_back"].as_array().unwrap().len(), 1);
    assert_eq!(
        report["deleted_files"].as_u64(),
        Some((left.len() - 1) as u64)
    );
    assert_eq!(parts_on_disk(&bucket), v1_files);

    // Running the same put again finishes the job: version 2, every row once.
    let v2 = json_lines(
        &put(&big, &["--part-bytes", "1000000"])
            .assert()
            .success()
            .get_output()
            .stdout,
    )[0]
    .clone();
    assert_eq!(
        (v2["version"].as_i64(), v2["rows"].as_u64()),
        (Some(2), Some(600_000))
    );
    let heads = list();
    assert_eq!(
        (heads[0]["version"].as_i64(), heads[0]["rows"].as_u64()),
        (Some(2), Some(600_000))
    );
    weir(&home)
        .envs(server.env())
        .args(["datasets", "gc", "s3://lake/sales", "--grace", "0s"])
        .assert()
        .success();
    assert_eq!(
        parts_on_disk(&bucket).len() as u64,
        v2["files"].as_u64().unwrap()
    );
}

#[test]
fn a_put_of_a_file_with_a_bad_row_commits_nothing_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let file = dir.path().join("bad.csv");
    std::fs::write(&file, "id,amount\n1,2.5\n2,3.5,extra\n3,4.5\n").unwrap();
    let lake = dir.path().join("lake");
    let err = crate::fails_with(
        &home,
        &[
            "datasets",
            "put",
            lake.to_str().unwrap(),
            "--partition",
            "day=1",
            file.to_str().unwrap(),
        ],
        "nothing was committed",
    );
    assert!(err.contains("1 row of") && err.contains("line 3"), "{err}");
    let out = weir(&home)
        .args(["datasets", "list", lake.to_str().unwrap(), "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(json_lines(&out).is_empty());
    // The aborted writer's part (if it put one) is gone: the folder holds no part file.
    assert!(parts_on_disk(&lake).is_empty());
}
