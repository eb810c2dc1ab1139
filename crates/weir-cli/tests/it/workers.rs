//! `weir worker` processes sharing one PostgreSQL store: a run handed to them (`dags run
//! --queue`) has every instance succeed exactly once, within its pool, even when a worker is
//! killed with SIGKILL in the middle.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use crate::{json_lines, weir};

/// A DAG file of `count` mapped instances in pool `narrow`, each appending
/// `map_index,try,worker,start_ns,end_ns` to `ledger` after a short sleep.
fn ledger_dag(dags: &Path, ledger: &Path, count: usize) {
    let items: Vec<String> = (0..count).map(|i| i.to_string()).collect();
    let text = format!(
        r#"[dag]
id = "ledger"
schedule = "none"
max_active_tasks = 64

[[tasks]]
id = "start"
op = "command"
program = "true"

[[tasks]]
id = "work"
op = "command"
after = "start"
pool = "narrow"
retries = 3
retry_delay = "1s"
expand = {{ items = [{items}] }}
program = "sh"
args = ["-c", "s=$(date +%s%N); sleep 0.15; echo \"$WEIR_MAP_INDEX,$WEIR_TRY_NUMBER,$WORKER,$s,$(date +%s%N)\" >> {ledger}"]

[[tasks]]
id = "finish"
op = "command"
after = "work"
program = "true"
"#,
        items = items.join(", "),
        ledger = ledger.display()
    );
    std::fs::write(dags.join("ledger.toml"), text).unwrap();
}

fn spawn_worker(home: &Path, dags: &Path, url: &str, name: &str) -> Child {
    StdCommand::new(assert_cmd::cargo::cargo_bin("weir"))
        .args(["--home"])
        .arg(home.join(name))
        .arg("--dags")
        .arg(dags)
        .args([
            "--store",
            url,
            "--lease",
            "1s",
            "worker",
            "--concurrency",
            "3",
        ])
        .env("WORKER", name)
        .env_remove("WEIR_HOME")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn ledger_lines(ledger: &Path) -> Vec<(i64, u32, String, u128, u128)> {
    std::fs::read_to_string(ledger)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].to_owned(),
                f[3].parse().unwrap(),
                f[4].parse().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn workers_on_postgres_run_every_instance_once_within_its_pool_and_outlive_a_killed_one() {
    let url = weir_store::testing::postgres_schema_url().await;
    tokio::task::spawn_blocking(move || workers_run_a_mapped_dag(&url))
        .await
        .unwrap();
}

fn workers_run_a_mapped_dag(url: &str) {
    const COUNT: usize = 60;
    const SLOTS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let (home, dags, ledger) = (
        dir.path().join("home"),
        dir.path().join("dags"),
        dir.path().join("ledger.csv"),
    );
    std::fs::create_dir_all(&dags).unwrap();
    ledger_dag(&dags, &ledger, COUNT);
    let store = ["--store", url];
    weir(&home)
        .args(store)
        .args(["pools", "set", "narrow", &SLOTS.to_string()])
        .assert()
        .success();

    let mut workers: BTreeMap<&str, Child> = ["w1", "w2", "w3"]
        .into_iter()
        .map(|name| (name, spawn_worker(&home, &dags, url, name)))
        .collect();
    let run = StdCommand::new(assert_cmd::cargo::cargo_bin("weir"))
        .arg("--home")
        .arg(&home)
        .arg("--dags")
        .arg(&dags)
        .args([
            "--store", url, "--lease", "1s", "dags", "run", "ledger", "--queue", "default",
            "--json",
        ])
        .env_remove("WEIR_HOME")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Once a dozen tries have ended, a worker that holds a running instance dies without a
    // word, whatever it was running.
    let started = Instant::now();
    let victim = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the workers made no progress"
        );
        if ledger_lines(&ledger).len() >= 12
            && let Some(name) = holder(&home, url, &workers)
        {
            break name;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut dead = workers.remove(victim).unwrap();
    let status = StdCommand::new("kill")
        .args(["-9", &dead.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(!dead.wait().unwrap().success());

    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the run failed: {stderr}");
    for (_, mut w) in workers {
        let _ = StdCommand::new("kill")
            .args(["-TERM", &w.id().to_string()])
            .status();
        assert!(w.wait().unwrap().success(), "a stopped worker exits 0");
    }

    // The store's view: every instance succeeded once, on the try the ledger names.
    let tis = json_lines(
        &weir(&home)
            .args(store)
            .args(["tasks", "list"])
            .arg(run_id(&home, url))
            .arg("--json")
            .assert()
            .success()
            .get_output()
            .stdout,
    );
    let work: Vec<_> = tis
        .iter()
        .filter(|t| t["key"]["task_id"] == "work")
        .collect();
    assert_eq!(work.len(), COUNT);
    assert!(work.iter().all(|t| t["state"] == "success"), "{work:?}");
    let success_try: HashMap<i64, u32> = work
        .iter()
        .map(|t| {
            (
                t["key"]["map_index"].as_i64().unwrap(),
                t["try_number"].as_u64().unwrap() as u32,
            )
        })
        .collect();
    let lines = ledger_lines(&ledger);
    for i in 0..COUNT as i64 {
        let successes: Vec<_> = lines
            .iter()
            .filter(|l| l.0 == i && l.1 == success_try[&i])
            .collect();
        assert_eq!(successes.len(), 1, "instance {i}: {successes:?}");
    }
    // w1's instances that were running when it died ran again elsewhere, after their lease.
    let retried: Vec<_> = success_try.iter().filter(|(_, t)| **t > 1).collect();
    assert!(
        !retried.is_empty(),
        "the killed worker held no instance: {lines:?}"
    );
    for (i, _) in &retried {
        let last = lines
            .iter()
            .find(|l| l.0 == **i && l.1 == success_try[i])
            .unwrap();
        assert_ne!(last.2, victim, "instance {i} re-ran on a live worker");
    }
    let workers_used: std::collections::BTreeSet<&str> =
        lines.iter().map(|l| l.2.as_str()).collect();
    assert!(workers_used.len() >= 2, "{workers_used:?}");
    // The dispatcher's home ran no try, yet shows any try's log: the worker kept it in the
    // store, and says where it ran.
    let logs = weir(&home)
        .args(store)
        .args([
            "tasks",
            "logs",
            &run_id(&home, url),
            "work",
            "--map-index",
            "7",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let logs = String::from_utf8_lossy(&logs);
    assert!(
        logs.contains(&format!("try {} of 4 started on worker", success_try[&7]))
            && logs.contains("ended success"),
        "{logs}"
    );
    assert!(
        !home.join("logs").exists(),
        "the dispatcher wrote no try log of its own"
    );

    // The pool held across three processes: never more than SLOTS tries at once.
    let mut edges: Vec<(u128, i32)> = lines.iter().flat_map(|l| [(l.3, 1), (l.4, -1)]).collect();
    edges.sort();
    let (mut now, mut peak) = (0, 0);
    for (_, d) in edges {
        now += d;
        peak = peak.max(now);
    }
    assert!(
        (1..=SLOTS as i32).contains(&peak),
        "{peak} tries of a {SLOTS}-slot pool ran at once"
    );
}

/// The worker (by name) whose process owns a running instance of the ledger run, if any.
fn holder<'a>(home: &Path, url: &str, workers: &BTreeMap<&'a str, Child>) -> Option<&'a str> {
    let runs = json_lines(
        &weir(home)
            .args(["--store", url, "runs", "list", "--dag", "ledger", "--json"])
            .assert()
            .success()
            .get_output()
            .stdout,
    );
    let run = runs.first()?["run_id"].as_str()?.to_owned();
    let tis = json_lines(
        &weir(home)
            .args(["--store", url, "tasks", "list", &run, "--json"])
            .assert()
            .success()
            .get_output()
            .stdout,
    );
    tis.iter()
        .filter(|t| t["state"] == "running")
        .filter_map(|t| t["owner"].as_str())
        .find_map(|owner| {
            // An owner is HOST:PID:…/worker.
            let pid: u32 = owner.split(':').nth(1)?.parse().ok()?;
            workers
                .iter()
                .find(|(_, child)| child.id() == pid)
                .map(|(name, _)| *name)
        })
}

fn run_id(home: &Path, url: &str) -> String {
    let runs = json_lines(
        &weir(home)
            .args(["--store", url, "runs", "list", "--dag", "ledger", "--json"])
            .assert()
            .success()
            .get_output()
            .stdout,
    );
    runs[0]["run_id"].as_str().unwrap().to_owned()
}

/// A worker whose DAG file differs from the one the run was created with refuses the
/// instance, saying which versions differ and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_worker_refuses_an_instance_of_another_dag_version() {
    let url = weir_store::testing::postgres_schema_url().await;
    tokio::task::spawn_blocking(move || refuses_another_version(&url))
        .await
        .unwrap();
}

fn refuses_another_version(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let (ours, theirs) = (dir.path().join("ours"), dir.path().join("theirs"));
    let dag = "[dag]\nid = \"versioned\"\nschedule = \"none\"\n\n[[tasks]]\nid = \"only\"\nop = \"command\"\nprogram = \"true\"\n";
    for (folder, text) in [
        (&ours, dag.to_owned()),
        (&theirs, format!("# edited\n{dag}")),
    ] {
        std::fs::create_dir_all(folder).unwrap();
        std::fs::write(folder.join("versioned.toml"), text).unwrap();
    }
    let mut worker = spawn_worker(&home, &theirs, url, "stale");
    let out = weir(&home)
        .arg("--dags")
        .arg(&ours)
        .args([
            "--store",
            url,
            "dags",
            "run",
            "versioned",
            "--queue",
            "default",
        ])
        .assert()
        .failure()
        .get_output()
        .clone();
    let _ = StdCommand::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    worker.wait().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("holds version")
            && stderr.contains("but the run was created with version")
            && stderr.contains("deploy the same DAG files to every worker"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
