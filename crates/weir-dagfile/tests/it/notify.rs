//! Notifiers in DAG files: `[[notify]]` tables for the whole DAG and a task's `notify` list
//! become notification rules; a misspelt key, an unknown event or an https webhook is a
//! problem at its line.

use std::path::Path;

use weir_dagfile::parse;
use weir_runtime::NotifyEvent;

const NOTIFIED: &str = r#"[dag]
id = "notified"

[[notify]]
webhook = "http://127.0.0.1:9000/hooks/secret-token"
on = ["failure", "retry_exhausted"]
headers = { Authorization = "Bearer x" }
timeout = "5s"

[[notify]]
log_file = "{home}/notify.log"

[[tasks]]
id = "a"
op = "sql"
query = "SELECT 1"
notify = [{ command = ["/bin/echo", "weir"], on = ["retry", "success"], timeout = "2s" }]

[[tasks]]
id = "b"
op = "sql"
after = ["a"]
query = "SELECT 2"
"#;

#[test]
fn notify_tables_become_the_dags_and_the_tasks_rules() {
    let def = parse(Path::new("notified.toml"), NOTIFIED).expect("a good file");
    let dag_rules: Vec<(String, Vec<NotifyEvent>)> = def
        .notify_rules()
        .iter()
        .map(|r| (r.notifier.describe(), r.on.clone()))
        .collect();
    assert_eq!(
        dag_rules,
        vec![
            // The webhook's path (here its token) is not shown.
            (
                "webhook http://127.0.0.1:9000".to_owned(),
                vec![NotifyEvent::Failure, NotifyEvent::RetryExhausted]
            ),
            // Without `on`: the failures.
            (
                "log file {home}/notify.log".to_owned(),
                NotifyEvent::DEFAULT.to_vec()
            ),
        ]
    );
    // Task `a` has the DAG's rules, then its own; `b` only the DAG's.
    let a: Vec<(String, Vec<NotifyEvent>)> = def
        .notify_rules_of("a")
        .iter()
        .map(|r| (r.notifier.describe(), r.on.clone()))
        .collect();
    assert_eq!(a.len(), 3, "{a:?}");
    assert_eq!(
        a[2],
        (
            "command /bin/echo".to_owned(),
            vec![NotifyEvent::Retry, NotifyEvent::Success]
        )
    );
    assert_eq!(def.notify_rules_of("b").len(), 2);
    // The webhook's headers and timeout, and the command's timeout, are taken as written.
    assert_eq!(
        def.notify_rules()[0].notifier.timeout(),
        std::time::Duration::from_secs(5)
    );
    assert_eq!(
        def.notify_rules_of("a")[2].notifier.timeout(),
        std::time::Duration::from_secs(2)
    );
}

/// Line numbers below are the lines of this text (the `[dag]` line is 1).
const BROKEN: &str = r#"[dag]
id = "bad_notify"

[[notify]]
webhok = "http://127.0.0.1:9000/hook"

[[notify]]
webhook = "http://127.0.0.1:9000/hook"
on = ["failure", "explode"]

[[notify]]
webhook = "https://127.0.0.1:9443/hook"

[[notify]]
log_file = "{home}/notify.log"
headers = { Authorization = "Bearer x" }

[[tasks]]
id = "a"
op = "sql"
query = "SELECT 1"
notify = [{ log_file = "x.log", command = ["true"] }]

[[tasks]]
id = "b"
op = "sql"
query = "SELECT 2"
notify = [{ webhook = "http://127.0.0.1:9000/hook", on = ["sucess"] }]

[[tasks]]
id = "c"
op = "sql"
query = "SELECT 3"
"#;

#[test]
fn notifier_mistakes_are_reported_at_their_lines() {
    let problems = parse(Path::new("bad.toml"), BROKEN).expect_err("a broken file");
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    let has = |line: usize, needle: &str| {
        assert!(
            text.iter()
                .any(|p| p.starts_with(&format!("bad.toml:{line}:")) && p.contains(needle)),
            "no problem at line {line} with {needle:?} in\n{}",
            text.join("\n")
        )
    };
    has(5, "unknown key `webhok`");
    has(4, "names no notifier");
    has(9, "unknown event \"explode\"");
    has(
        12,
        "https webhooks need TLS, which this build does not include",
    );
    has(16, "`headers` are for webhooks only");
    has(
        22,
        "are two notifiers; give one of webhook, command and log_file",
    );
    has(28, "unknown event \"sucess\"");
    assert_eq!(problems.len(), 7, "{}", text.join("\n"));
}
