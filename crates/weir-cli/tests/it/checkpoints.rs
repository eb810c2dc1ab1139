//! Checkpointed loads killed for real: a `weir` child process loading 1,000,000 rows is killed
//! with SIGKILL at 20 random moments and restarted each time, and the output ends with every
//! source row exactly once; the deterministic failpoints (before, in the middle of and after a
//! chunk's output, after its checkpoint) each end the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{edit_store, json_lines, spawn_weir, weir};

const ROWS: u64 = 1_000_000;
const EVERY: u64 = 20_000;

/// A tiny deterministic generator (the test prints its seed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// `n` rows `id,bucket_key,amount,note`, 17 of them malformed; returns the file and the ids
/// of the good rows' sum and count.
fn write_source(dir: &Path, n: u64) -> (PathBuf, u64, u64) {
    use std::io::Write as _;
    let path = dir.join("big.csv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(f, "id,customer,amount,note").unwrap();
    let (mut sum, mut count) = (0u64, 0u64);
    for id in 1..=n {
        if id % 58_823 == 0 {
            writeln!(f, "{id},{},not-a-number,\"bad, row\"", id % 97).unwrap();
            continue;
        }
        writeln!(
            f,
            "{id},{},{}.{:02},\"n {}\"",
            id % 97,
            id % 500,
            id % 100,
            id % 13
        )
        .unwrap();
        sum += id;
        count += 1;
    }
    f.flush().unwrap();
    std::fs::write(
        dir.join("big.schema"),
        "id: int not null\ncustomer: int not null\namount: decimal(10,2) not null\nnote: string\n",
    )
    .unwrap();
    (path, sum, count)
}

fn dag_file(dir: &Path, source: &Path, out: &Path) -> PathBuf {
    let dags = dir.join("dags");
    std::fs::create_dir_all(&dags).unwrap();
    std::fs::write(
        dags.join("ckpt.toml"),
        format!(
            r#"[dag]
id = "ckpt_load"

[[tasks]]
id = "load"
op = "partition"
layout = {{ by = "hash", key = "customer", buckets = 4 }}
source = "{}"
output = "{}"
checkpoint = {{ every = {EVERY} }}
retries = 40
retry_delay = "0s"
"#,
            source.display(),
            out.display()
        ),
    )
    .unwrap();
    dags
}

/// (rows, distinct ids, sum of ids) over the whole output.
fn totals(h: &Path, out: &Path) -> (u64, u64, u64) {
    let o = weir(h)
        .args(["data", "query", "--json"])
        .arg("SELECT count(*) AS n, count(DISTINCT id) AS ids, sum(id) AS s FROM t")
        .arg("--table")
        .arg(format!("t={}", out.display()))
        .assert()
        .success()
        .get_output()
        .clone();
    let r = &json_lines(&o.stdout)[0];
    (
        r["n"].as_u64().unwrap(),
        r["ids"].as_u64().unwrap(),
        r["s"].as_u64().unwrap(),
    )
}

fn run_args(dags: &str) -> Vec<&str> {
    vec![
        "--lease",
        "1s",
        "--dags",
        dags,
        "dags",
        "run",
        "ckpt_load",
        "--logical-date",
        "2026-03-02",
    ]
}

/// Reads the child's stderr until `count` lines contain `needle`, kills it with SIGKILL and
/// reaps it; `false` when the process finished first.
fn kill_at(mut child: std::process::Child, needle: &str, count: usize) -> bool {
    use std::io::BufRead;
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = 0;
    for line in stderr.lines() {
        if line.unwrap().contains(needle) {
            seen += 1;
            if seen == count {
                break;
            }
        }
    }
    let _ = std::process::Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status();
    let exit = child.wait().unwrap();
    seen == count && !exit.success()
}

fn checkpoints(h: &Path) -> Vec<serde_json::Value> {
    let o = weir(h)
        .args(["checkpoints", "list", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    json_lines(&o.stdout)
}

#[test]
fn a_checkpointed_load_killed_twenty_times_holds_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path();
    let (source, sum, count) = write_source(h, ROWS);
    let out = h.join("out");
    let dags = dag_file(h, &source, &out);
    let dags = dags.to_str().unwrap();
    let seed = 0x5eed_0010u64;
    eprintln!("kill moments from seed {seed:#x}");
    let mut rng = Lcg(seed);
    let mut kills = 0;
    while kills < 20 {
        // A random moment: after the k-th partition commit of this process (4 per chunk), so
        // kills land between commits, between a chunk's output and its checkpoint, and after.
        let k = 1 + (rng.next() % 5) as usize;
        let mut args = vec!["--log", "info"];
        args.extend(run_args(dags));
        if !kill_at(spawn_weir(h, &args), "chunk partition committed", k) {
            break;
        }
        kills += 1;
        let saved = checkpoints(h);
        // Two are kept; a kill between a save and the pruning after it leaves a third.
        assert!(saved.len() <= 3, "old checkpoints are pruned: {saved:?}");
        assert!(saved.iter().all(|c| c["health"] == "ok"), "{saved:?}");
    }
    assert_eq!(kills, 20, "the load finished before 20 kills");
    weir(h).args(run_args(dags)).assert().success();
    assert_eq!(
        totals(h, &out),
        (count, count, sum),
        "every source row exactly once"
    );
    assert!(
        checkpoints(h).is_empty(),
        "a finished load deletes its checkpoints"
    );
    // The malformed rows are dead letters, once each.
    let o = weir(h)
        .args(["dlq", "list", "--dag", "ckpt_load", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert_eq!(json_lines(&o.stdout).len() as u64, ROWS - count);
}

#[test]
fn every_failpoint_of_a_chunk_ends_with_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path();
    let (source, sum, count) = write_source(h, 200_000);
    let mut seen: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    for point in [
        "before_output",
        "mid_output",
        "after_output",
        "after_checkpoint",
    ] {
        let out = h.join(format!("out-{point}"));
        let home = h.join(format!("home-{point}"));
        let dags = dag_file(&home, &source, &out);
        let dags = dags.to_str().unwrap();
        let o = weir(&home)
            .env("WEIR_FAILPOINT", format!("{point}:3"))
            .args(run_args(dags))
            .output()
            .unwrap();
        assert!(
            !o.status.success(),
            "{point}: the failpoint aborts the process"
        );
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains(&format!("failpoint {point}:3")), "{stderr}");
        let saved = checkpoints(&home);
        assert!(
            !saved.is_empty(),
            "{point}: chunks 1 and 2 were checkpointed"
        );
        weir(&home).args(run_args(dags)).assert().success();
        seen.insert(point, totals(&home, &out));
    }
    for (point, t) in seen {
        assert_eq!(t, (count, count, sum), "{point}");
    }
}

#[test]
fn damaged_checkpoints_of_every_kind_are_named_and_never_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path();
    let (source, sum, count) = write_source(h, 200_000);
    // Each case: the damage, the sentence that names it, and whether the load then resumes
    // from the previous checkpoint (2) or starts over.
    let cases: [(&str, &str, bool, &str, Option<u64>); 5] = [
        (
            "checksum",
            "UPDATE checkpoints SET state = replace(state, '\"rows\":', '\"rows\":1') WHERE seq = 3",
            false,
            "its checksum does not match its contents",
            Some(2),
        ),
        (
            "truncated",
            "UPDATE checkpoints SET state = substr(state, 1, length(state) / 2) WHERE seq = 3",
            false,
            "is truncated or garbled",
            Some(2),
        ),
        (
            "old_format",
            "UPDATE checkpoints SET version = 0 WHERE seq = 3",
            true,
            "was written in checkpoint format 0",
            Some(2),
        ),
        (
            "past_end",
            "UPDATE checkpoints SET state = replace(state, '\"byte\":', '\"byte\":9999999') WHERE seq = 3",
            true,
            "points past the end of the source",
            Some(2),
        ),
        (
            "changed_source",
            "SELECT 1",
            false,
            "was modified since, so the task starts over",
            None,
        ),
    ];
    for (name, sql, rehash, sentence, resumed_from) in cases {
        let home = h.join(name);
        let src = home.join("big.csv");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::copy(&source, &src).unwrap();
        std::fs::copy(h.join("big.schema"), home.join("big.schema")).unwrap();
        let out = home.join("out");
        let dags = dag_file(&home, &src, &out);
        let dags = dags.to_str().unwrap();
        let o = weir(&home)
            .env("WEIR_FAILPOINT", "after_checkpoint:3")
            .args(run_args(dags))
            .output()
            .unwrap();
        assert!(!o.status.success(), "{name}: aborted at the failpoint");
        let seqs: Vec<u64> = checkpoints(&home)
            .iter()
            .map(|c| c["seq"].as_u64().unwrap())
            .collect();
        // Aborted right after saving 3, before pruning to the last two.
        assert_eq!(seqs, [3, 2, 1], "{name}");
        edit_store(&home, sql, rehash);
        let mut expected = (count, count, sum);
        if name == "changed_source" {
            // One more row at the end: the file is another source now.
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new().append(true).open(&src).unwrap();
            writeln!(f, "900001,5,1.00,\"late\"").unwrap();
            expected = (count + 1, count + 1, sum + 900_001);
        }
        let o = weir(&home)
            .args(run_args(dags))
            .arg("--json")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{name}: {stderr}");
        assert!(stderr.contains(sentence), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let ck = &report["outputs"]["load"]["checkpoints"];
        assert_eq!(ck["resumed_from"].as_u64(), resumed_from, "{name}: {ck}");
        assert!(
            ck["passed_over"][0].as_str().unwrap().contains(sentence),
            "{name}: {ck}"
        );
        assert_eq!(totals(&home, &out), expected, "{name}: every row once");
    }
}

/// 110.4.4 as a user runs it: killed after a chunk's output (before its checkpoint), the same
/// command resumes from the last checkpoint, and the day holds exactly what a load without
/// checkpoints writes; the checkpoints are gone once it succeeds.
#[test]
fn the_checkpointing_pattern_resumes_after_a_kill_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path();
    let src = h.join("orders.csv");
    weir(h)
        .args([
            "data",
            "generate",
            "--rows",
            "150000",
            "--start",
            "2026-03-04",
            "--days",
            "3",
        ])
        .arg("--out")
        .arg(&src)
        .assert()
        .success();
    let out = h.join("out");
    let plain = h.join("plain");
    let conf = |k: &str, v: &Path| format!("{k}={}", v.display());
    let args = |dag: &'static str, output: &Path| -> Vec<String> {
        vec![
            "--lease".into(),
            "1s".into(),
            "dags".into(),
            "run".into(),
            dag.into(),
            "--logical-date".into(),
            "2026-03-05".into(),
            "--conf".into(),
            conf("source", &src),
            "--conf".into(),
            conf("output", output),
        ]
    };
    let dag = "110_04_04_batch_checkpointing";
    let mut first = args(dag, &out);
    first.extend(["--conf".into(), "checkpoint_every=20000".into()]);
    let o = weir(h)
        .env("WEIR_FAILPOINT", "after_output:3")
        .args(&first)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let seqs: Vec<u64> = checkpoints(h)
        .iter()
        .map(|c| c["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        [2, 1],
        "killed after chunk 3's output, before its checkpoint"
    );
    let o = weir(h).args(&first).arg("--json").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        report["outputs"]["load"]["checkpoints"]["resumed_from"], 2,
        "{report}"
    );
    assert!(checkpoints(h).is_empty(), "cleaned up on success");
    weir(h)
        .args(args("110_01_01_daily_batch_processing", &plain))
        .assert()
        .success();
    let day = |dir: &Path| {
        let o = weir(h)
            .args(["data", "query", "--json"])
            .arg("SELECT count(*) AS n, count(DISTINCT order_id) AS ids, sum(order_id) AS s FROM t WHERE dt = '2026-03-05'")
            .arg("--table")
            .arg(format!("t={}", dir.display()))
            .assert()
            .success()
            .get_output()
            .clone();
        json_lines(&o.stdout)[0].clone()
    };
    let (a, b) = (day(&out), day(&plain));
    assert_eq!(a, b, "the checkpointed day equals the plain load's");
    assert_eq!(a["n"], a["ids"], "no row twice");
    assert!(a["n"].as_u64().unwrap() > 40_000, "{a}");
}
