//! Notifications in real runs: a webhook served by a real HTTP server on loopback hears of
//! retries, successes, failures and exhausted retries; a log file gets one JSON line per event; a
//! command gets the notification on stdin and in its environment; a notifier that fails (a
//! closed port, a 500, a non-zero exit, a hang) is logged and never fails the task.

use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};
use weir_core::{RunState, TaskState};
use weir_runtime::{
    CommandNotifier, DagDef, LogFileNotifier, NotifyEvent, Task, TaskError, Webhook,
};

use crate::support::{World, secs, t0};

/// One request the test's HTTP server received.
#[derive(Debug)]
struct Received {
    method: String,
    path: String,
    content_type: Option<String>,
    authorization: Option<String>,
    body: Value,
}

/// A real HTTP server on 127.0.0.1 (a free port) on its own thread: it answers every request
/// with `status` and forwards what it received through a channel. Dropping it stops the thread.
struct Hook {
    url: String,
    received: mpsc::Receiver<Received>,
    server: Arc<tiny_http::Server>,
}

impl Hook {
    fn start(status: u16) -> Hook {
        let server =
            Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("an HTTP server on loopback"));
        let addr = server
            .server_addr()
            .to_ip()
            .expect("the server listens on an IP address");
        let (tx, rx) = mpsc::channel();
        let serving = server.clone();
        std::thread::spawn(move || {
            for mut request in serving.incoming_requests() {
                let mut body = String::new();
                let read = request.as_reader().read_to_string(&mut body);
                let header = |name: &'static str| {
                    request
                        .headers()
                        .iter()
                        .find(|h| h.field.equiv(name))
                        .map(|h| h.value.as_str().to_owned())
                };
                let content_type = header("Content-Type");
                let authorization = header("Authorization");
                let got = Received {
                    method: request.method().as_str().to_owned(),
                    path: request.url().to_owned(),
                    content_type,
                    authorization,
                    body: match read {
                        Ok(_) => serde_json::from_str(&body).unwrap_or(Value::String(body)),
                        Err(e) => Value::String(format!("unreadable body: {e}")),
                    },
                };
                // Into the channel before the answer: once the client has its answer, the test
                // can see the request.
                let sent = tx.send(got);
                let _ = request.respond(tiny_http::Response::empty(status));
                if sent.is_err() {
                    break;
                }
            }
        });
        Hook {
            url: format!("http://{addr}/hook"),
            received: rx,
            server,
        }
    }

    /// The next request the server got. The run has delivered its notifications before
    /// `Executor::run` returns, so this does not wait in a passing test; 10 s bounds a failing one.
    fn next(&self) -> Received {
        self.received
            .recv_timeout(Duration::from_secs(10))
            .expect("the webhook received a notification")
    }

    /// No request beyond those taken.
    fn assert_no_more(&self) {
        if let Ok(extra) = self.received.try_recv() {
            panic!("an unexpected notification: {extra:?}");
        }
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn timestamp(v: &Value) -> Timestamp {
    v.as_str()
        .unwrap_or_else(|| panic!("{v} is not a timestamp text"))
        .parse()
        .unwrap_or_else(|e| panic!("{v} is not an RFC 3339 timestamp: {e}"))
}

/// Fails on try 1 (retryable), succeeds on try 2.
fn flaky(id: &str) -> Task {
    Task::new(id)
        .retries(1)
        .retry_delay(secs(5))
        .run(|ctx| async move {
            if ctx.try_number == 1 {
                Err(TaskError::retryable("the source was busy"))
            } else {
                Ok(json!({"rows": 3}))
            }
        })
}

#[tokio::test(start_paused = true)]
async fn a_webhook_hears_of_the_retry_and_then_the_success() {
    let hook = Hook::start(200);
    let dag = DagDef::builder("notified")
        .notify(
            Arc::new(Webhook::new(&hook.url).header("Authorization", "Bearer test")),
            &[NotifyEvent::Retry, NotifyEvent::Success],
        )
        .task(flaky("flaky"))
        .build()
        .unwrap();
    let w = World::new([dag]).await;
    let (run, outcome) = w.run("notified").await;
    assert_eq!(outcome.state, RunState::Success);
    let tries = w.tries(&run, "flaky").await;
    assert_eq!(tries.len(), 2);

    let retry = hook.next();
    assert_eq!(retry.method, "POST");
    assert_eq!(retry.path, "/hook");
    assert_eq!(retry.content_type.as_deref(), Some("application/json"));
    assert_eq!(retry.authorization.as_deref(), Some("Bearer test"));
    let b = &retry.body;
    assert_eq!(b["event"], "retry", "{b}");
    assert_eq!(b["dag_id"], "notified");
    assert_eq!(b["run_id"], run.run_id.as_str());
    assert_eq!(b["task_id"], "flaky");
    assert_eq!(b["map_index"], -1);
    assert_eq!(b["try_number"], 1);
    assert_eq!(b["max_tries"], 2);
    assert_eq!(b["error"], "the source was busy");
    assert_eq!(timestamp(&b["logical_date"]), t0());
    // The next try may start one retry delay after the failed one ended.
    assert_eq!(timestamp(&b["retry_at"]), tries[0].ended_at + secs(5));
    assert_eq!(timestamp(&b["at"]), tries[0].ended_at);

    let success = hook.next();
    let b = &success.body;
    assert_eq!(b["event"], "success", "{b}");
    assert_eq!(b["task_id"], "flaky");
    assert_eq!(b["try_number"], 2);
    assert_eq!(b["error"], Value::Null);
    assert_eq!(b["retry_at"], Value::Null);
    assert_eq!(timestamp(&b["at"]), tries[1].ended_at);
    hook.assert_no_more();
}

#[tokio::test(start_paused = true)]
async fn a_task_that_uses_every_retry_sends_failure_and_retry_exhausted() {
    let hook = Hook::start(200);
    // On the task this time, with the default events: failures only, so no `retry`.
    let task = Task::new("doomed")
        .retries(1)
        .retry_delay(secs(5))
        .run(|ctx| async move {
            Err(TaskError::retryable(format!(
                "no luck on try {}",
                ctx.try_number
            )))
        })
        .notify(Arc::new(Webhook::new(&hook.url)), &NotifyEvent::DEFAULT);
    let dag = DagDef::builder("exhausted").task(task).build().unwrap();
    let w = World::new([dag]).await;
    let (run, outcome) = w.run("exhausted").await;
    assert_eq!(outcome.state, RunState::Failed);

    // One commit's notifications arrive in order: the failure, then the exhaustion.
    for event in ["failure", "retry_exhausted"] {
        let got = hook.next();
        let b = &got.body;
        assert_eq!(b["event"], event, "{b}");
        assert_eq!(b["dag_id"], "exhausted");
        assert_eq!(b["run_id"], run.run_id.as_str());
        assert_eq!(b["task_id"], "doomed");
        assert_eq!(b["try_number"], 2);
        assert_eq!(b["max_tries"], 2);
        assert_eq!(b["error"], "no luck on try 2");
    }
    hook.assert_no_more();
}

#[tokio::test(start_paused = true)]
async fn a_fatal_failure_with_retries_left_is_a_failure_but_not_an_exhaustion() {
    let hook = Hook::start(200);
    let task = Task::new("bad_input")
        .retries(3)
        .run(|_| async { Err(TaskError::fatal("the input file is not CSV")) })
        .notify(Arc::new(Webhook::new(&hook.url)), &NotifyEvent::ALL);
    let dag = DagDef::builder("fatal").task(task).build().unwrap();
    let w = World::new([dag]).await;
    let (_, outcome) = w.run("fatal").await;
    assert_eq!(outcome.state, RunState::Failed);

    let got = hook.next();
    assert_eq!(got.body["event"], "failure", "{}", got.body);
    assert_eq!(got.body["try_number"], 1);
    assert_eq!(got.body["max_tries"], 4);
    assert_eq!(got.body["error"], "the input file is not CSV");
    hook.assert_no_more();
}

#[tokio::test(start_paused = true)]
async fn a_failing_webhook_never_fails_the_task_and_the_other_notifiers_still_deliver() {
    // A port nobody listens on: bound, then closed.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.local_addr().expect("its address").port()
    };
    let refusing = Hook::start(500);
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("notify.jsonl");
    let dag = DagDef::builder("unbothered")
        .notify(
            Arc::new(Webhook::new(format!("http://127.0.0.1:{closed}/hook"))),
            &NotifyEvent::ALL,
        )
        .notify(Arc::new(Webhook::new(&refusing.url)), &NotifyEvent::ALL)
        .notify(
            Arc::new(Webhook::new("https://127.0.0.1:9/hook")),
            &NotifyEvent::ALL,
        )
        .notify(Arc::new(LogFileNotifier::new(&log)), &NotifyEvent::ALL)
        .task(Task::new("work").run(|_| async { Ok(json!("done")) }))
        .build()
        .unwrap();
    let w = World::new([dag]).await;
    let (run, outcome) = w.run("unbothered").await;

    assert_eq!(outcome.state, RunState::Success);
    assert_eq!(w.ti(&run, "work").await.state, TaskState::Success);
    // The server that answered 500 was asked, and the log file written, despite the others.
    assert_eq!(refusing.next().body["event"], "success");
    let lines = events_in(&log);
    assert_eq!(lines, vec![("success".to_owned(), 1)]);
}

/// The (event, try number) of each line of a notification log, in order.
fn events_in(path: &Path) -> Vec<(String, u64)> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("the notification log {}: {e}", path.display()));
    assert!(text.ends_with('\n'), "every line is ended: {text:?}");
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a line that is not JSON ({e}): {line}"));
            (
                v["event"].as_str().unwrap_or("?").to_owned(),
                v["try_number"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_log_file_gets_one_json_line_per_event_in_order() {
    // `{home}` is the executor's home: the world's `home` folder.
    let dag = DagDef::builder("logged")
        .notify(
            Arc::new(LogFileNotifier::new("{home}/notify/{dag_id}.log")),
            &NotifyEvent::ALL,
        )
        .task(flaky("flaky"))
        .task(
            Task::new("doomed")
                .retries(1)
                .retry_delay(secs(60))
                .after(["flaky"])
                .run(|_| async {
                    // A second of (virtual) work: `flaky`'s success is written before the clock
                    // can move on, so the lines are in a fixed order.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Err(TaskError::retryable("still broken"))
                }),
        )
        .build()
        .unwrap();
    let w = World::new([dag]).await;
    let (_, outcome) = w.run("logged").await;
    assert_eq!(outcome.state, RunState::Failed);

    let log = w.dir.path().join("home").join("notify").join("logged.log");
    assert_eq!(
        events_in(&log),
        vec![
            ("retry".to_owned(), 1),
            ("success".to_owned(), 2),
            ("retry".to_owned(), 1),
            ("failure".to_owned(), 2),
            ("retry_exhausted".to_owned(), 2),
        ]
    );
    let text = std::fs::read_to_string(&log).expect("the log");
    let last: Value = serde_json::from_str(text.lines().last().expect("a line")).expect("JSON");
    assert_eq!(last["task_id"], "doomed");
    assert_eq!(last["error"], "still broken");
}

/// On the real clock: a child process is waited on outside tokio's timer, so under a paused
/// clock the notifier's timeout would fire as soon as the runtime idles.
#[tokio::test]
async fn a_command_gets_the_notification_on_stdin_and_in_its_environment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json_out = dir.path().join("notification.json");
    let env_out = dir.path().join("notification.env");
    let script = r#"cat > "$1" && printf '%s|%s|%s|%s|%s|%s' "$WEIR_EVENT" "$WEIR_DAG_ID" "$WEIR_TASK_ID" "$WEIR_MAP_INDEX" "$WEIR_TRY_NUMBER" "$WEIR_ERROR" > "$2""#;
    let writes = CommandNotifier::new("sh").args([
        "-c".to_owned(),
        script.to_owned(),
        "sh".to_owned(),
        json_out.display().to_string(),
        env_out.display().to_string(),
    ]);
    let fails = CommandNotifier::new("sh").args(["-c", "echo 'no route to the pager' >&2; exit 3"]);
    // Killed at its timeout, long before it would end.
    let hangs = CommandNotifier::new("sleep")
        .args(["600"])
        .with_timeout(Duration::from_millis(200));
    let missing = CommandNotifier::new("/nonexistent/weir-notify-program");
    let dag = DagDef::builder("commanded")
        .notify(Arc::new(fails), &[NotifyEvent::Failure])
        .notify(Arc::new(hangs), &[NotifyEvent::Failure])
        .notify(Arc::new(missing), &[NotifyEvent::Failure])
        .notify(Arc::new(writes), &[NotifyEvent::Failure])
        .task(
            Task::new("parse").run(|_| async { Err(TaskError::fatal("the input was malformed")) }),
        )
        .build()
        .unwrap();
    let w = World::new([dag]).await;
    let started = std::time::Instant::now();
    let (run, outcome) = w.run("commanded").await;
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the hanging command was stopped at its timeout: {:?}",
        started.elapsed()
    );
    assert_eq!(outcome.state, RunState::Failed);
    assert_eq!(w.ti(&run, "parse").await.state, TaskState::Failed);

    let env = std::fs::read_to_string(&env_out).expect("the command wrote its environment");
    assert_eq!(env, "failure|commanded|parse|-1|1|the input was malformed");
    let json = std::fs::read_to_string(&json_out).expect("the command wrote its stdin");
    let v: Value = serde_json::from_str(&json).expect("stdin was one JSON object");
    assert_eq!(v["event"], "failure");
    assert_eq!(v["dag_id"], "commanded");
    assert_eq!(v["run_id"], run.run_id.as_str());
    assert_eq!(v["task_id"], "parse");
    assert_eq!(v["try_number"], 1);
    assert_eq!(v["max_tries"], 1);
    assert_eq!(v["error"], "the input was malformed");
}
