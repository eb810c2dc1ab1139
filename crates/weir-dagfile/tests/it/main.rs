//! Integration tests of weir-dagfile: DAG files parse into DAGs, and every problem of a file is
//! reported at once with its line.

use std::path::Path;

use weir_dagfile::{load_dirs, parse};

mod notify;

const GOOD: &str = r#"[dag]
id = "orders_daily"
schedule = "@daily"
timezone = "America/New_York"
start_date = 2026-03-01
catchup = false
description = "Daily orders and a per-region count"

[params]
source = { default = "orders.csv", doc = "CSV of orders", type = "path" }
buckets = 8

[[tasks]]
id = "load"
op = "load_window"
source = "{{ params.source }}"
partition_by = "dt"
retries = 2
retry_delay = "30s"

[[tasks]]
id = "per_region"
op = "sql"
inputs = { orders = "load" }
query = "SELECT region, count(*) AS orders FROM orders GROUP BY region"
"#;

#[test]
fn a_good_file_parses_into_its_dag() {
    let def = parse(Path::new("good.toml"), GOOD).expect("a good file");
    assert_eq!(def.dag.id.as_str(), "orders_daily");
    let tasks: Vec<&str> = def.dag.tasks().iter().map(|t| t.id.as_str()).collect();
    assert_eq!(tasks, ["load", "per_region"]);
    // The sql task reads load's dataset, so it runs after it.
    let per_region = &def.dag.tasks()[1];
    assert_eq!(
        per_region
            .upstream
            .iter()
            .map(|u| u.as_str())
            .collect::<Vec<_>>(),
        ["load"]
    );
    assert_eq!(def.dag.tasks()[0].retry.retries, 2);
    assert_eq!(def.schedule_zone().iana_name(), Some("America/New_York"));
    let params: Vec<&str> = def.dag.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(params, ["buckets", "source"]);
}

/// One file with one of each problem: all are reported in one call, each with its line.
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
partition_by = "dt"

[[tasks]]
id = "teleport"
op = "teleport"

[[tasks]]
id = "count"
op = "sql"
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

[[tasks]]
id = "paths"
op = "verify"
dataset = "{{ params.nope }}/{{ tomorrow }}"
"#;

#[test]
fn every_problem_of_a_file_is_reported_with_its_line() {
    let problems = parse(Path::new("broken.toml"), BROKEN).expect_err("a broken file");
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    let has = |line: usize, needle: &str| {
        assert!(
            text.iter()
                .any(|p| p.starts_with(&format!("broken.toml:{line}:")) && p.contains(needle)),
            "no problem at line {line} with {needle:?} in\n{}",
            text.join("\n")
        )
    };
    has(3, "schedule \"every fortnight\"");
    has(4, "unknown time zone \"Mars/Olympus\"");
    has(7, "param `n`: the default \"ten\" is invalid");
    has(12, "unknown field `sourc`");
    has(17, "unknown operator `teleport`");
    has(22, "`after` names `lod`, which is not a task of this file");
    has(31, "tasks form a cycle: b -> a -> b");
    has(40, "params.nope, which [params] does not declare");
    has(40, "`tomorrow`, which is not a variable");
    assert_eq!(problems.len(), 9, "{}", text.join("\n"));
}

#[test]
fn a_toml_syntax_error_names_its_line() {
    let text = "[dag]\nid = \"x\"\n[[tasks]]\nid = \"a\nop = \"sql\"\n";
    let problems = parse(Path::new("syntax.toml"), text).expect_err("bad TOML");
    assert_eq!(problems.len(), 1);
    let p = problems[0].to_string();
    assert!(p.starts_with("syntax.toml:4: TOML:"), "{p}");
}

/// A broken file beside a good one: the good DAG loads, the broken file is an import error.
#[test]
fn a_broken_file_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.toml"), GOOD).unwrap();
    std::fs::write(dir.path().join("broken.toml"), BROKEN).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a DAG").unwrap();
    let loaded = load_dirs(&[dir.path().to_path_buf()]);
    let ids: Vec<&str> = loaded.dags.iter().map(|d| d.def.dag.id.as_str()).collect();
    assert_eq!(ids, ["orders_daily"]);
    assert_eq!(loaded.dags[0].version.len(), 12);
    assert_eq!(loaded.errors.len(), 9);
    assert!(
        loaded
            .errors
            .iter()
            .all(|p| p.path.ends_with("broken.toml"))
    );
    // The same id twice is refused for the second file.
    std::fs::write(dir.path().join("good2.toml"), GOOD).unwrap();
    let loaded = load_dirs(&[dir.path().to_path_buf()]);
    assert_eq!(loaded.dags.len(), 1);
    assert!(
        loaded
            .errors
            .iter()
            .any(|p| p.path.ends_with("good2.toml") && p.message.contains("already declared")),
        "{:?}",
        loaded.errors
    );
}

/// `after` and `expand` of the wrong shape are problems, not dropped dependencies; an unknown
/// upstream named twice is reported once.
#[test]
fn dependencies_of_the_wrong_shape_are_reported() {
    let text = r#"[dag]
id = "shapes"

[[tasks]]
id = "a"
op = "sql"
query = "SELECT 1"

[[tasks]]
id = "b"
op = "sql"
after = 5
expand = ["a"]
query = "SELECT 1"

[[tasks]]
id = "c"
op = "sql"
after = ["ghost"]
inputs = { t = "ghost" }
query = "SELECT 1"
"#;
    let problems = parse(Path::new("shapes.toml"), text).expect_err("bad shapes");
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert!(
        text.iter()
            .any(|p| p.starts_with("shapes.toml:12:") && p.contains("`after` is a task id")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|p| p.starts_with("shapes.toml:13:") && p.contains("`expand` is the id")),
        "{text:?}"
    );
    assert_eq!(
        text.iter().filter(|p| p.contains("`ghost`")).count(),
        1,
        "{text:?}"
    );
    assert_eq!(problems.len(), 3, "{text:?}");
}

/// A task with templates is checked as its params' defaults render it: a default the operator
/// refuses, or a typed field given text, is a problem before any run.
#[test]
fn templated_tasks_are_checked_with_the_defaults() {
    let text = r#"[dag]
id = "probe"

[params]
n = { default = 0, doc = "ranges" }
source = { type = "path", default = "orders.csv" }

[[tasks]]
id = "plan"
op = "plan_ranges"
source = "{{ params.source }}"
key = "customer_id"
partitions = "{{ params.n }}"

[[tasks]]
id = "count"
op = "sql"
expand = "plan"
bind = { lo = "{{ item.lo }}" }
query = "SELECT $lo AS lo"
result = { kind = "rows", max_rows = "ten" }
"#;
    let problems = parse(Path::new("probe.toml"), text).expect_err("bad defaults");
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert!(
        text.iter()
            .any(|p| p.contains("task `plan` (plan_ranges): partitions = 0")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|p| p.contains("task `count` (sql)") && p.contains("invalid type")),
        "{text:?}"
    );
    assert_eq!(problems.len(), 2, "{text:?}");
}
