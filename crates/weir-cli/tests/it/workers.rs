//! `weir worker` processes sharing one PostgreSQL store: a run handed to them (`dags run
//! --queue`) has every instance succeed exactly once, within its pool, even when a worker is
//! killed with SIGKILL in the middle.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use weir_data::testing::S3Server;

use crate::{json_lines, weir};

/// A DAG file of `count` mapped instances in pool `narrow`, each appending
/// `map_index,try,worker,start_ns,end_ns` to `ledger` after a short sleep (instance 20 sleeps
/// 3 s, so that a worker killed while it holds it is caught holding it).
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
args = ["-c", "s=$(date +%s%N); if [ $WEIR_MAP_INDEX = 20 ]; then sleep 3; else sleep 0.15; fi; echo \"$WEIR_MAP_INDEX,$WEIR_TRY_NUMBER,$WORKER,$s,$(date +%s%N)\" >> {ledger}"]

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

/// Runs `test` — blocking: it drives weir processes — with the URL of a fresh PostgreSQL
/// schema.
async fn on_postgres(test: fn(&str)) {
    let url = weir_store::testing::postgres_schema_url().await;
    tokio::task::spawn_blocking(move || test(&url))
        .await
        .unwrap();
}

/// One ledger line: map index, try, worker, start and end (ns since the epoch).
type Entry = (i64, u32, String, u128, u128);

/// The most ledger tries that ran at once (their start/end times overlapping).
fn peak_overlap(lines: &[Entry]) -> usize {
    let mut edges: Vec<(u128, i32)> = lines.iter().flat_map(|l| [(l.3, 1), (l.4, -1)]).collect();
    edges.sort();
    let (mut now, mut peak) = (0, 0);
    for (_, d) in edges {
        now += d;
        peak = peak.max(now);
    }
    peak as usize
}

/// Each instance's try number, by map index (`weir tasks list --json` objects).
fn tries_by_index<'a>(tis: impl Iterator<Item = &'a serde_json::Value>) -> HashMap<i64, u32> {
    tis.map(|t| {
        (
            t["key"]["map_index"].as_i64().unwrap(),
            t["try_number"].as_u64().unwrap() as u32,
        )
    })
    .collect()
}

fn ledger_lines(ledger: &Path) -> Vec<Entry> {
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
    on_postgres(workers_run_a_mapped_dag).await;
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

    // Once a dozen tries have ended, the worker that holds instance 20 (a 3 s try) dies
    // without a word.
    let started = Instant::now();
    let victim = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the workers made no progress"
        );
        if ledger_lines(&ledger).len() >= 12
            && let Some(name) = holder(&home, url, "ledger", &workers, |t| {
                t["key"]["map_index"].as_i64() == Some(20)
            })
        {
            break name;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut dead = workers.remove(victim).unwrap();
    let killed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
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
    let run_id = newest_run(&home, url, "ledger").unwrap();
    let tis = instances(&home, url, &run_id);
    let work: Vec<_> = tis
        .iter()
        .filter(|t| t["key"]["task_id"] == "work")
        .collect();
    assert_eq!(work.len(), COUNT);
    assert!(work.iter().all(|t| t["state"] == "success"), "{work:?}");
    let success_try = tries_by_index(work.iter().copied());
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
        .args(["tasks", "logs", &run_id, "work", "--map-index", "7"])
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

    // The pool held across three processes: never more than SLOTS tries at once. (The dead
    // worker's task process outlives it — nothing kills a SIGKILLed worker's children — and
    // ends its lost try after the instance was handed on: that try is weir's no longer.)
    let managed: Vec<Entry> = lines
        .iter()
        .filter(|l| !(l.2 == victim && l.4 > killed_at))
        .cloned()
        .collect();
    let peak = peak_overlap(&managed);
    assert!(
        (1..=SLOTS).contains(&peak),
        "{peak} tries of a {SLOTS}-slot pool ran at once"
    );
}

/// A worker whose DAG file differs from the one the run was created with refuses the
/// instance, saying which versions differ and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_worker_refuses_an_instance_of_another_dag_version() {
    on_postgres(refuses_another_version).await;
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

/// Three hosts, each a network namespace whose only link is a veth pair to this one, where
/// PostgreSQL listens: the workers reach the store over those links alone.
struct Hosts {
    names: Vec<String>,
}

impl Hosts {
    /// Makes `count` namespaces; panics, saying why, when the machine does not allow it (the
    /// test needs root and `ip` from iproute2).
    fn new(count: usize) -> Hosts {
        let tag = std::process::id() % 10_000;
        let mut hosts = Hosts { names: Vec::new() };
        for n in 1..=count {
            let ns = format!("weir-h{n}-{tag}");
            let (outer, inner) = (format!("wv{tag}h{n}"), format!("wv{tag}g{n}"));
            let subnet = format!("10.{}.{}", 100 + (tag % 100), n);
            hosts.names.push(ns.clone());
            for args in [
                vec!["netns", "add", &ns],
                vec![
                    "link", "add", &outer, "type", "veth", "peer", "name", &inner,
                ],
                vec!["link", "set", &inner, "netns", &ns],
                vec!["addr", "add", &format!("{subnet}.1/24"), "dev", &outer],
                vec!["link", "set", &outer, "up"],
                vec![
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("{subnet}.2/24"),
                    "dev",
                    &inner,
                ],
                vec!["-n", &ns, "link", "set", &inner, "up"],
                vec!["-n", &ns, "link", "set", "lo", "up"],
            ] {
                let out = StdCommand::new("ip").args(&args).output().unwrap_or_else(|e| {
                    panic!("cannot make the test's hosts: `ip` did not start ({e}); install iproute2 and run as root")
                });
                assert!(
                    out.status.success(),
                    "cannot make the test's hosts: `ip {}` failed: {}; network namespaces need root",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        hosts
    }

    /// The address this machine has on host `n`'s link (1-based), where PostgreSQL answers.
    fn gateway(&self, n: usize) -> String {
        let tag = std::process::id() % 10_000;
        format!("10.{}.{}.1", 100 + (tag % 100), n)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in &self.names {
            // The veth pair goes with the namespace.
            let _ = StdCommand::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// The URL of the store as host `n` sees it: the same database and schema, over its link.
fn url_on(url: &str, gateway: &str) -> String {
    url.replacen("127.0.0.1", gateway, 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn three_hosts_run_ten_thousand_instances_once_and_lose_nothing_when_one_is_killed() {
    on_postgres(three_hosts).await;
}

fn three_hosts(url: &str) {
    let _alone = crate::heavy();
    const COUNT: usize = 10_000;
    const SLOTS: usize = 8;
    assert!(
        url.contains("127.0.0.1"),
        "the multi-host test reaches PostgreSQL on this machine's links: {url}"
    );
    let hosts = Hosts::new(3);
    let dir = tempfile::tempdir().unwrap();
    let (home, dags, ledger) = (
        dir.path().join("home"),
        dir.path().join("dags"),
        dir.path().join("ledger.csv"),
    );
    std::fs::create_dir_all(&dags).unwrap();
    // The shared object store: a real S3-compatible server on this machine, which the hosts
    // reach over their links. Every 100th instance commits a partition of `SHARDS` rows to
    // it through `weir datasets put`, from whichever host runs it.
    let s3 = S3Server::start(std::net::Ipv4Addr::UNSPECIFIED, &dir.path().join("s3"));
    s3.bucket("lake");
    let weir_bin = assert_cmd::cargo::cargo_bin("weir");
    let items: Vec<String> = (0..COUNT).map(|i| i.to_string()).collect();
    std::fs::write(
        dags.join("hosts.toml"),
        format!(
            r#"[dag]
id = "hosts"
schedule = "none"
max_active_tasks = 64

[[tasks]]
id = "work"
op = "command"
pool = "hosts"
retries = 3
retry_delay = "1s"
expand = {{ items = [{items}] }}
program = "sh"
args = ["-c", "s=$(date +%s%N); [ $((WEIR_MAP_INDEX % 250)) = 0 ] && sleep 1; if [ $((WEIR_MAP_INDEX % 100)) = 0 ]; then f=$WEIR_HOME/shard-$WEIR_MAP_INDEX-$WEIR_TRY_NUMBER.csv; echo n,map_index,worker > $f; seq 1 $((WEIR_MAP_INDEX / 100 + 1)) | sed \"s/$/,$WEIR_MAP_INDEX,$WORKER/\" >> $f; {weir} datasets put s3://lake/shards --commit-lease 2s --partition shard=$WEIR_MAP_INDEX $f > /dev/null || exit 1; fi; echo \"$WEIR_MAP_INDEX,$WEIR_TRY_NUMBER,$WORKER,$s,$(date +%s%N)\" >> {ledger}"]
"#,
            items = items.join(", "),
            ledger = ledger.display(),
            weir = weir_bin.display(),
        ),
    )
    .unwrap();
    weir(&home)
        .args(["--store", url, "pools", "set", "hosts", &SLOTS.to_string()])
        .assert()
        .success();
    let mut workers: BTreeMap<String, Child> = (1..=3)
        .map(|n| {
            let name = format!("host{n}");
            let child = StdCommand::new("ip")
                .args(["netns", "exec", &hosts.names[n - 1]])
                .arg(assert_cmd::cargo::cargo_bin("weir"))
                .arg("--home")
                .arg(home.join(&name))
                .arg("--dags")
                .arg(&dags)
                .args(["--lease", "2s", "worker", "--concurrency", "4"])
                // The store as this host sees it, for the worker and the tasks it runs.
                .env("WEIR_STORE_URL", url_on(url, &hosts.gateway(n)))
                .envs(s3.env_at(&format!("http://{}:{}", hosts.gateway(n), s3.port)))
                .env("WORKER", &name)
                .env_remove("WEIR_HOME")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            (name, child)
        })
        .collect();
    let run = StdCommand::new(assert_cmd::cargo::cargo_bin("weir"))
        .arg("--home")
        .arg(&home)
        .arg("--dags")
        .arg(&dags)
        .args([
            "--store", url, "--lease", "2s", "dags", "run", "hosts", "--queue", "default",
        ])
        .env_remove("WEIR_HOME")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // A fifth of the way in, a host that holds a running instance dies (one instance in 250
    // takes a second, so a host is caught holding one).
    let started = Instant::now();
    let victim = loop {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the hosts made no progress"
        );
        if ledger_lines(&ledger).len() >= COUNT / 5
            && let Some(name) = holder(&home, url, "hosts", &workers, |t| {
                t["key"]["map_index"].as_i64().is_some_and(|i| i % 250 == 0)
            })
        {
            break name;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut dead = workers.remove(&victim).unwrap();
    // `ip netns exec` execs the worker: the child is the worker itself.
    assert!(
        StdCommand::new("kill")
            .args(["-9", &dead.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(!dead.wait().unwrap().success());

    let out = run.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (_, mut w) in workers {
        let _ = StdCommand::new("kill")
            .args(["-TERM", &w.id().to_string()])
            .status();
        assert!(w.wait().unwrap().success(), "a stopped worker exits 0");
    }

    let run_id = newest_run(&home, url, "hosts").unwrap();
    let tis = instances(&home, url, &run_id);
    assert_eq!(tis.len(), COUNT);
    assert!(tis.iter().all(|t| t["state"] == "success"));
    let success_try = tries_by_index(tis.iter());
    let lines = ledger_lines(&ledger);
    let mut successes: HashMap<i64, Vec<&Entry>> = HashMap::new();
    for l in &lines {
        if success_try.get(&l.0) == Some(&l.1) {
            successes.entry(l.0).or_default().push(l);
        }
    }
    assert_eq!(successes.len(), COUNT, "every instance has its success");
    let doubled: Vec<_> = successes.iter().filter(|(_, s)| s.len() != 1).collect();
    assert!(doubled.is_empty(), "succeeded more than once: {doubled:?}");
    let retried: Vec<_> = successes
        .iter()
        .filter(|(i, _)| success_try[i] > 1)
        .collect();
    assert!(!retried.is_empty(), "the dead host held no instance");
    assert!(
        retried.iter().all(|(_, s)| s[0].2 != victim),
        "the dead host's instances were re-claimed by live ones"
    );
    let peak = peak_overlap(&lines);
    assert!(
        (1..=SLOTS).contains(&peak),
        "{peak} tries of a {SLOTS}-slot pool ran at once across the hosts"
    );

    // Every committed partition of the shared dataset is complete: one per 100th instance,
    // holding exactly the rows its task wrote, every file present with the rows its commit
    // names; and once the leases have run out nothing else is left in the bucket.
    let datasets = |args: &[&str]| {
        weir(&home)
            .envs(s3.env())
            .args(["--store", url, "datasets"])
            .args(args)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone()
    };
    let heads = json_lines(&datasets(&["list", "s3://lake/shards", "--json"]));
    let expected: BTreeMap<String, u64> = (0..COUNT / 100)
        .map(|k| (format!("shard={}", k * 100), k as u64 + 1))
        .collect();
    let got: BTreeMap<String, u64> = heads
        .iter()
        .map(|h| {
            (
                h["partition"].as_str().unwrap().to_owned(),
                h["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected, "partitions and their rows");
    let verified = json_lines(&datasets(&["verify", "s3://lake/shards", "--json"]));
    assert_eq!(verified.len(), COUNT / 100);
    assert!(
        verified.iter().all(|v| v["complete"] == true),
        "{verified:?}"
    );
    datasets(&["gc", "s3://lake/shards", "--grace", "0s"]);
    let files: u64 = heads.iter().map(|h| h["files"].as_u64().unwrap()).sum();
    let on_disk = walk_files(&s3.root.join("lake"));
    assert_eq!(
        on_disk.len() as u64,
        files,
        "only committed files are left: {on_disk:?}"
    );
}

/// Every file under a folder.
fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Two schedulers on one PostgreSQL: each due run is created once and each of its instances
/// handed out once, whichever scheduler gets there first.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn two_schedulers_create_each_run_once_and_hand_out_each_instance_once() {
    on_postgres(two_schedulers).await;
}

fn two_schedulers(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (home, dags, ledger) = (
        dir.path().join("home"),
        dir.path().join("dags"),
        dir.path().join("ledger.csv"),
    );
    std::fs::create_dir_all(&dags).unwrap();
    std::fs::write(
        dags.join("hourly.toml"),
        format!(
            r#"[dag]
id = "hourly"
schedule = "@hourly"
start_date = "2026-01-01T00:00:00Z"
end_date = "2026-01-01T05:00:00Z"
catchup = true

[[tasks]]
id = "work"
op = "command"
expand = {{ items = [0, 1, 2, 3, 4] }}
program = "sh"
args = ["-c", "echo \"$WEIR_RUN_ID,$WEIR_MAP_INDEX,$WEIR_TRY_NUMBER\" >> {ledger}"]
"#,
            ledger = ledger.display()
        ),
    )
    .unwrap();
    let spawn = |name: &str, args: &[&str]| {
        StdCommand::new(assert_cmd::cargo::cargo_bin("weir"))
            .arg("--home")
            .arg(home.join(name))
            .arg("--dags")
            .arg(&dags)
            .args(["--store", url, "--lease", "2s"])
            .args(args)
            .env_remove("WEIR_HOME")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join(format!("{name}.err"))).unwrap())
            .spawn()
            .unwrap()
    };
    let processes = [
        spawn("s1", &["scheduler", "--queue", "default", "--poll", "1"]),
        spawn("s2", &["scheduler", "--queue", "default", "--poll", "1"]),
        spawn("w", &["worker", "--concurrency", "4"]),
    ];
    let started = Instant::now();
    let runs = loop {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the runs did not finish"
        );
        let runs = json_lines(
            &weir(&home)
                .args(["--store", url, "runs", "list", "--dag", "hourly", "--json"])
                .assert()
                .success()
                .get_output()
                .stdout,
        );
        if runs.len() >= 6 && runs.iter().all(|r| r["state"] == "success") {
            break runs;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for mut p in processes {
        let _ = StdCommand::new("kill")
            .args(["-TERM", &p.id().to_string()])
            .status();
        // Exit 1 is a scheduler's way to say one of its runs failed — the stock binary's own
        // DAGs are scheduled too, and some have no data here; a signal or an error is not.
        let status = p.wait().unwrap();
        let logs = ["s1", "s2", "w"].map(|n| {
            std::fs::read_to_string(dir.path().join(format!("{n}.err"))).unwrap_or_default()
        });
        assert!(
            status.code().is_some() && logs.iter().all(|l| !l.contains("error:")),
            "a scheduler or the worker did not stop cleanly ({status}): s1: {} s2: {} w: {}",
            logs[0],
            logs[1],
            logs[2]
        );
    }
    let mut dates: Vec<&str> = runs
        .iter()
        .map(|r| r["logical_date"].as_str().unwrap())
        .collect();
    dates.sort();
    dates.dedup();
    assert_eq!(
        (runs.len(), dates.len()),
        (6, 6),
        "one run per hour 00..05, none twice"
    );
    let text = std::fs::read_to_string(&ledger).unwrap();
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f[2], "1", "no try was lost or run twice: {line}");
        *seen.entry((f[0].to_owned(), f[1].to_owned())).or_default() += 1;
    }
    assert_eq!(seen.len(), 30, "6 runs × 5 instances ran");
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
}

/// `dags backfill --queue`: the main job's runs planned here, their loads run by two workers
/// in other homes, into one dataset folder — every day committed once, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_backfill_handed_to_workers_commits_every_day_once() {
    on_postgres(backfill_on_workers).await;
}

fn backfill_on_workers(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let source = dir.path().join("orders.csv");
    let output = dir.path().join("daily");
    crate::new_user::write_orders(&source, 6, 500, 50_000);
    let dags = dir.path().join("no-dag-files");
    std::fs::create_dir_all(&dags).unwrap();
    let mut workers: Vec<Child> = ["a", "b"]
        .into_iter()
        .map(|name| spawn_worker(&home, &dags, url, name))
        .collect();
    let source_conf = format!("source={}", source.display());
    let output_conf = format!("output={}", output.display());
    let out = weir(&home)
        .args(["--store", url, "--lease", "1s", "dags", "backfill"])
        .args([
            "110_01_01_daily_batch_processing",
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-06",
        ])
        .args([
            "--conf",
            &source_conf,
            "--conf",
            &output_conf,
            "--queue",
            "default",
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    for w in &mut workers {
        let _ = StdCommand::new("kill")
            .args(["-TERM", &w.id().to_string()])
            .status();
        w.wait().unwrap();
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("6 runs succeeded, 0 failed"), "{stdout}");
    let parts = json_lines(
        &weir(&home)
            .args(["data", "ls", output.to_str().unwrap(), "--json"])
            .assert()
            .success()
            .get_output()
            .stdout,
    );
    assert_eq!(parts.len(), 6, "{parts:?}");
    for (d, part) in parts.iter().enumerate() {
        assert_eq!(part["partition"], format!("dt=2026-03-{:02}", d + 1));
        assert_eq!(part["rows"], 500, "{part}");
    }
    // The tries ran on the workers, not here.
    assert!(!home.join("logs").exists());
    assert!(home.join("a").join("logs").exists() || home.join("b").join("logs").exists());
}

/// 110.3.3 on workers: the shards scatter over two workers; the one running the slow shard is
/// killed; the shard runs again on the other, the gather folds it last, and the day's totals
/// equal those of the same day run in one process.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn scatter_gather_on_workers_reruns_a_dead_workers_shard_elsewhere() {
    on_postgres(scatter_gather_on_workers).await;
}

fn scatter_gather_on_workers(url: &str) {
    let dag = "110_03_03_scatter_gather_pattern";
    let dir = tempfile::tempdir().unwrap();
    let (home, alone) = (dir.path().join("home"), dir.path().join("alone"));
    let source = dir.path().join("orders.csv");
    weir(&home)
        .args([
            "data",
            "generate",
            "--rows",
            "20000",
            "--days",
            "3",
            "--start",
            "2026-03-07",
        ])
        .arg("--out")
        .arg(&source)
        .assert()
        .success();
    let dags = dir.path().join("no-dag-files");
    std::fs::create_dir_all(&dags).unwrap();
    let mut workers: BTreeMap<&str, Child> = ["a", "b"]
        .into_iter()
        .map(|name| (name, spawn_worker(&home, &dags, url, name)))
        .collect();
    let source_conf = format!("source={}", source.display());
    let args = [
        "dags",
        "run",
        dag,
        "--logical-date",
        "2026-03-08",
        "--conf",
        &source_conf,
        "--conf",
        "shards=6",
        "--conf",
        "slow_shard=2",
        "--json",
    ];
    let run = StdCommand::new(assert_cmd::cargo::cargo_bin("weir"))
        .arg("--home")
        .arg(&home)
        .args(["--store", url, "--lease", "1s"])
        .args(args)
        .args(["--queue", "default"])
        .env_remove("WEIR_HOME")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the worker running the slow shard, while it runs it.
    let started = Instant::now();
    let victim = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "shard 2 never ran"
        );
        if let Some(name) = holder(&home, url, dag, &workers, |t| {
            t["key"]["task_id"] == "work" && t["key"]["map_index"] == 2
        }) {
            break name;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut dead = workers.remove(victim).unwrap();
    assert!(
        StdCommand::new("kill")
            .args(["-9", &dead.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    dead.wait().unwrap();
    let out = run.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (_, mut w) in workers {
        let _ = StdCommand::new("kill")
            .args(["-TERM", &w.id().to_string()])
            .status();
        w.wait().unwrap();
    }
    let run_id = newest_run(&home, url, dag).unwrap();
    let tis = instances(&home, url, &run_id);
    let shard2 = tis
        .iter()
        .find(|t| t["key"]["task_id"] == "work" && t["key"]["map_index"] == 2)
        .unwrap();
    assert_eq!(shard2["try_number"], 2, "shard 2 ran again: {shard2}");
    let gathered = |stdout: &[u8]| -> serde_json::Value {
        let outcome: serde_json::Value =
            serde_json::from_str(String::from_utf8_lossy(stdout).trim()).unwrap();
        outcome["outputs"]["gather"].clone()
    };
    let on_workers = gathered(&out.stdout);
    let arrivals = on_workers["arrivals"].as_array().unwrap();
    assert_eq!(arrivals.len(), 6);
    assert_eq!(
        arrivals.last().unwrap()["shard"],
        2,
        "the slow shard came last"
    );

    // The same day in one process, on its own SQLite home: the same totals.
    let alone_out = weir(&alone)
        .args(args)
        .assert()
        .success()
        .get_output()
        .clone();
    let in_process = gathered(&alone_out.stdout);
    assert!(on_workers["orders"].as_u64().unwrap() > 1000);
    for key in ["orders", "amount_cents", "regions"] {
        assert_eq!(on_workers[key], in_process[key], "{key}");
    }
}

/// The newest run of `dag`, if any.
fn newest_run(home: &Path, url: &str, dag: &str) -> Option<String> {
    let runs = json_lines(
        &weir(home)
            .args(["--store", url, "runs", "list", "--dag", dag, "--json"])
            .assert()
            .success()
            .get_output()
            .stdout,
    );
    Some(runs.first()?["run_id"].as_str()?.to_owned())
}

/// The task instances of a run, as `weir tasks list --json` prints them.
fn instances(home: &Path, url: &str, run: &str) -> Vec<serde_json::Value> {
    json_lines(
        &weir(home)
            .args(["--store", url, "tasks", "list", run, "--json"])
            .assert()
            .success()
            .get_output()
            .stdout,
    )
}

/// The worker (its key in `workers`) whose process owns a running instance of the newest run
/// of `dag` that `pick` accepts, if any. An owner is `HOST:PID:…/worker`.
fn holder<K: Clone>(
    home: &Path,
    url: &str,
    dag: &str,
    workers: &BTreeMap<K, Child>,
    pick: impl Fn(&serde_json::Value) -> bool,
) -> Option<K> {
    let run = newest_run(home, url, dag)?;
    instances(home, url, &run)
        .iter()
        .filter(|t| t["state"] == "running" && pick(t))
        .filter_map(|t| t["owner"].as_str())
        .find_map(|owner| {
            let pid: u32 = owner.split(':').nth(1)?.parse().ok()?;
            workers
                .iter()
                .find(|(_, child)| child.id() == pid)
                .map(|(name, _)| name.clone())
        })
}
