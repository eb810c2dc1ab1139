//! Notifications: telling people and systems outside weir that a task retried, failed, succeeded
//! or ran out of retries.
//!
//! A [`Notifier`] is a sink; a [`NotifyRule`] says which [`NotifyEvent`]s go to it. Rules are
//! set for a whole DAG ([`crate::DagDefBuilder::notify`]: every task) or for one task
//! ([`crate::Task::notify`]), in Rust or in a DAG file's `[[notify]]` tables.
//!
//! Delivery never changes a run. The executor builds a [`Notification`] only once the state
//! change it tells of is committed (where it calls the task's callbacks), starts delivering it
//! without waiting, and a notifier that fails or does not answer within its timeout is logged at
//! `warn` — the task's state is already decided and stays so. The notifications of one commit are
//! delivered in order (a task's `failure` before its `retry_exhausted`), those of different
//! commits concurrently. Before [`crate::Executor::run`] returns, however the run ended, it
//! waits for every delivery it started (each bounded by its notifier's timeout), so a process
//! that exits after a run has sent them all.
//!
//! Three sinks come with weir:
//! - [`Webhook`]: an HTTP POST of the notification as JSON. Plain `http://` only: this build
//!   carries no TLS, and an `https://` URL is refused with an error saying so (send through a
//!   relay on the machine, or a [`CommandNotifier`] running `curl`).
//! - [`CommandNotifier`]: runs a program with the notification as JSON on its stdin and in
//!   `WEIR_*` environment variables.
//! - [`LogFileNotifier`]: appends the notification as one JSON line to a file.
//!
//! What every sink receives (one JSON object; `error` and `retry_at` are `null` when they do
//! not apply):
//!
//! ```json
//! {"event":"retry","dag_id":"orders","run_id":"manual__2026-03-02T09:00:00+00:00",
//!  "task_id":"load","map_index":-1,"try_number":1,"max_tries":3,
//!  "logical_date":"2026-03-02T09:00:00Z","error":"the source was busy",
//!  "retry_at":"2026-03-02T09:05:00Z","at":"2026-03-02T09:00:00Z"}
//! ```
//!
//! `{home}` in a log file's path is the weir home folder: the executor hands its home to every
//! delivery ([`Notifier::notify`]'s `home`), so a DAG file can name `"{home}/notify.log"`
//! without knowing where the home is when it is parsed.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weir_core::{DagId, RunId, TaskId};

/// How long a notifier may take unless it says otherwise ([`Notifier::timeout`]).
pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// What a notification tells of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// A try failed and the task will be tried again (`retry_at` says when).
    Retry,
    /// The task failed for good: its last try failed, or it failed with an error that a retry
    /// cannot fix.
    Failure,
    /// A try succeeded.
    Success,
    /// A task with retries failed on its last try: every retry was used. Sent together with
    /// (after) [`NotifyEvent::Failure`]; a task without retries never sends it.
    RetryExhausted,
}

impl NotifyEvent {
    /// Every event, in the order the docs list them.
    pub const ALL: [NotifyEvent; 4] = [
        NotifyEvent::Retry,
        NotifyEvent::Failure,
        NotifyEvent::Success,
        NotifyEvent::RetryExhausted,
    ];

    /// The events a rule that does not say sends: the failures someone must look at.
    pub const DEFAULT: [NotifyEvent; 2] = [NotifyEvent::Failure, NotifyEvent::RetryExhausted];

    /// The event's name, as in JSON and DAG files (`retry_exhausted`).
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Retry => "retry",
            NotifyEvent::Failure => "failure",
            NotifyEvent::Success => "success",
            NotifyEvent::RetryExhausted => "retry_exhausted",
        }
    }

    /// The event named `text` (`retry`, `failure`, `success`, `retry_exhausted`), if any.
    pub fn parse(text: &str) -> Option<NotifyEvent> {
        NotifyEvent::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

impl fmt::Display for NotifyEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One notification: what happened to which try of which task instance, and when. Serialized
/// as the JSON object every sink receives (timestamps in RFC 3339, UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub event: NotifyEvent,
    pub dag_id: DagId,
    pub run_id: RunId,
    pub task_id: TaskId,
    /// The instance's map index; -1 for an unmapped task.
    pub map_index: i64,
    /// The try this is about (1-based).
    pub try_number: u32,
    /// How many tries the task has in all (retries + 1).
    pub max_tries: u32,
    /// The run's logical date.
    pub logical_date: Timestamp,
    /// Why the try failed (retry and failure events).
    pub error: Option<String>,
    /// When the next try may start (retry events).
    pub retry_at: Option<Timestamp>,
    /// When the executor recorded the event, on its clock.
    pub at: Timestamp,
}

impl Notification {
    /// The notification as one line of JSON: what a webhook receives, a command reads on its
    /// stdin and a log file gets as a line.
    pub fn to_json(&self) -> Result<String, String> {
        serde_json::to_string(self).map_err(|e| {
            format!("cannot write the notification as JSON (a bug in weir; please report it): {e}")
        })
    }
}

/// A sink for notifications, used as `Arc<dyn Notifier>`: a webhook, a command, a log file, or
/// one of your own.
#[async_trait]
pub trait Notifier: Send + Sync + fmt::Debug {
    /// What this notifier is, for log lines ("webhook http://127.0.0.1:9000"); it should not
    /// show secrets (tokens in a URL's path or in headers).
    fn describe(&self) -> String;

    /// How long [`deliver`] lets [`Notifier::notify`] take before it stops it and logs a
    /// timeout.
    fn timeout(&self) -> Duration {
        DEFAULT_NOTIFY_TIMEOUT
    }

    /// Delivers one notification. `home` is the weir home folder of the executor that sends it
    /// (what `{home}` in a path stands for). `Err` says, in one sentence, why it was not
    /// delivered: it is logged, and never fails the task.
    async fn notify(&self, n: &Notification, home: &Path) -> Result<(), String>;
}

/// Which events go to a notifier.
#[derive(Debug, Clone)]
pub struct NotifyRule {
    pub notifier: Arc<dyn Notifier>,
    pub on: Vec<NotifyEvent>,
}

impl NotifyRule {
    /// Sends the events `on` (each once, whatever the repeats) to `notifier`.
    pub fn new(notifier: Arc<dyn Notifier>, on: &[NotifyEvent]) -> Self {
        let mut events = Vec::with_capacity(on.len());
        for &e in on {
            if !events.contains(&e) {
                events.push(e);
            }
        }
        NotifyRule {
            notifier,
            on: events,
        }
    }

    /// Whether this rule sends `event`.
    pub fn wants(&self, event: NotifyEvent) -> bool {
        self.on.contains(&event)
    }
}

/// Delivers `n` to every rule of `rules` that wants its event, all at once, each bounded by its
/// notifier's [`Notifier::timeout`]. A notifier that fails or times out is logged at `warn`
/// (naming the notifier, the event, the task and the error); nothing is returned, because a
/// notification never changes what happened to the task.
pub async fn deliver(rules: &[NotifyRule], n: &Notification, home: &Path) {
    let sends = rules
        .iter()
        .filter(|r| r.wants(n.event))
        .map(|rule| async move {
            let notifier = &rule.notifier;
            let limit = notifier.timeout();
            let outcome = match tokio::time::timeout(limit, notifier.notify(n, home)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!(
                    "it did not finish within its timeout of {limit:?} and was stopped"
                )),
            };
            match outcome {
                Ok(()) => tracing::debug!(
                    notifier = %notifier.describe(), event = %n.event, dag_id = %n.dag_id,
                    run_id = %n.run_id, task_id = %n.task_id, map_index = n.map_index,
                    try_number = n.try_number, "notification delivered"
                ),
                Err(e) => tracing::warn!(
                    notifier = %notifier.describe(), event = %n.event, dag_id = %n.dag_id,
                    run_id = %n.run_id, task_id = %n.task_id, map_index = n.map_index,
                    try_number = n.try_number,
                    "the {} notification of task {} (try {}) was not delivered by {}: {}",
                    n.event,
                    n.task_id,
                    n.try_number,
                    notifier.describe(),
                    e
                ),
            }
        });
    futures::future::join_all(sends).await;
}

/// POSTs each notification as JSON (`Content-Type: application/json`) to an `http://` URL; any
/// answer but a 2xx is an error naming the status.
///
/// Plain HTTP only: this build carries no TLS, so an `https://` URL is refused (at load for a
/// DAG file, see [`Webhook::problems`]; at delivery otherwise) with an error saying so. Use a
/// relay on the machine, or a [`CommandNotifier`] running `curl`, for an HTTPS endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    /// Extra request headers (an `Authorization`, say); they are never logged.
    pub headers: Vec<(String, String)>,
    /// The whole call's limit: connect, send and answer.
    pub timeout: Duration,
}

impl Webhook {
    /// A webhook to `url` with no extra headers and the [`DEFAULT_NOTIFY_TIMEOUT`].
    pub fn new(url: impl Into<String>) -> Self {
        Webhook {
            url: url.into(),
            headers: Vec::new(),
            timeout: DEFAULT_NOTIFY_TIMEOUT,
        }
    }

    /// Adds a request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the limit of a whole call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What keeps this webhook from being sent, each a sentence: a URL that is not `http://`,
    /// an invalid header, a zero timeout. Empty when it can be sent.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let lower = self.url.trim().to_ascii_lowercase();
        if lower.starts_with("https://") {
            problems.push(format!(
                "webhook `{}`: https webhooks need TLS, which this build does not include; use an http:// URL (a relay on this machine) or a command notifier running curl",
                self.url
            ));
        } else if !lower.starts_with("http://") {
            problems.push(format!(
                "webhook `{}` must be an http:// URL, such as \"http://127.0.0.1:9000/hook\"",
                self.url
            ));
        } else {
            match self.url.trim().parse::<ureq::http::Uri>() {
                Ok(uri) if uri.host().is_some_and(|h| !h.is_empty()) => {}
                Ok(_) => problems.push(format!(
                    "webhook `{}` names no host; write it as \"http://HOST:PORT/PATH\"",
                    self.url
                )),
                Err(e) => problems.push(format!(
                    "webhook `{}` is not a valid URL ({e}); write it as \"http://HOST:PORT/PATH\"",
                    self.url
                )),
            }
        }
        for (name, value) in &self.headers {
            if ureq::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                problems.push(format!(
                    "webhook header `{name}` is not a valid HTTP header name; use letters, digits and dashes"
                ));
            } else if ureq::http::HeaderValue::from_str(value).is_err() {
                problems.push(format!(
                    "the value of webhook header `{name}` is not valid in HTTP; use printable ASCII without line breaks"
                ));
            }
        }
        if self.timeout.is_zero() {
            problems.push("a webhook's timeout must be more than zero".to_owned());
        }
        problems
    }
}

#[async_trait]
impl Notifier for Webhook {
    /// The scheme, host and port only: a webhook's path and headers often carry its secret.
    fn describe(&self) -> String {
        match self.url.trim().parse::<ureq::http::Uri>() {
            Ok(uri) => {
                let scheme = uri.scheme_str().unwrap_or("http");
                let host = uri.host().unwrap_or("?");
                match uri.port_u16() {
                    Some(port) => format!("webhook {scheme}://{host}:{port}"),
                    None => format!("webhook {scheme}://{host}"),
                }
            }
            Err(_) => "webhook (an invalid URL)".to_owned(),
        }
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn notify(&self, n: &Notification, _home: &Path) -> Result<(), String> {
        if let Some(problem) = self.problems().into_iter().next() {
            return Err(problem);
        }
        let body = n.to_json()?;
        let url = self.url.trim().to_owned();
        let headers = self.headers.clone();
        let timeout = self.timeout;
        // ureq blocks: the call runs on the blocking pool, bounded by its own global timeout.
        match tokio::task::spawn_blocking(move || post(&url, &headers, timeout, body)).await {
            Ok(result) => result,
            Err(e) => Err(format!("the webhook call stopped before it finished: {e}")),
        }
    }
}

/// One blocking POST of `body` as JSON.
fn post(
    url: &str,
    headers: &[(String, String)],
    timeout: Duration,
    body: String,
) -> Result<(), String> {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        // Statuses are judged here, so that the error names the status the receiver gave.
        .http_status_as_error(false)
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let mut request = agent.post(url).content_type("application/json");
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = request
        .send(body)
        .map_err(|e| format!("the POST did not get an answer: {e}"))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!(
            "the webhook answered {status}; check its URL and what its receiver expects"
        ))
    }
}

/// Runs a program per notification: the notification's JSON on its stdin, and in its
/// environment `WEIR_EVENT`, `WEIR_DAG_ID`, `WEIR_RUN_ID`, `WEIR_TASK_ID`, `WEIR_MAP_INDEX`,
/// `WEIR_TRY_NUMBER`, `WEIR_MAX_TRIES`, `WEIR_LOGICAL_DATE`, `WEIR_ERROR` and `WEIR_RETRY_AT`
/// (both empty when they do not apply) and `WEIR_HOME`. Exit 0 is delivered; any other exit is an
/// error quoting the end of its stderr. A program still running at its timeout is killed.
///
/// The timeout runs on tokio's timer: under a paused test clock it fires as soon as the runtime
/// idles while the program runs, so test command notifiers on the real clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandNotifier {
    /// A path, or a name looked up on `PATH`.
    pub program: String,
    pub args: Vec<String>,
    pub timeout: Duration,
}

impl CommandNotifier {
    /// Runs `program` without arguments, with the [`DEFAULT_NOTIFY_TIMEOUT`].
    pub fn new(program: impl Into<String>) -> Self {
        CommandNotifier {
            program: program.into(),
            args: Vec::new(),
            timeout: DEFAULT_NOTIFY_TIMEOUT,
        }
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets how long the program may run before it is killed.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// How many of the last stderr lines a failed command's error quotes.
const STDERR_TAIL_LINES: usize = 5;

/// The most of a failed command's stderr its error quotes, in bytes.
const STDERR_TAIL_BYTES: usize = 500;

#[async_trait]
impl Notifier for CommandNotifier {
    fn describe(&self) -> String {
        format!("command {}", self.program)
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn notify(&self, n: &Notification, home: &Path) -> Result<(), String> {
        if self.program.trim().is_empty() {
            return Err("the notify command names no program; give the program to run".to_owned());
        }
        let body = n.to_json()?;
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Stopped at its timeout by dropping this future: the program is killed with it.
            .kill_on_drop(true);
        for (name, value) in command_env(n, home) {
            cmd.env(name, value);
        }
        let mut child = cmd.spawn().map_err(|e| {
            format!(
                "cannot start `{}`: {e}; check the program name and that it is executable",
                self.program
            )
        })?;
        let stdin = child.stdin.take();
        let stderr = child.stderr.take();
        let write = async move {
            let Some(mut stdin) = stdin else {
                return Ok(());
            };
            let written = stdin.write_all(body.as_bytes()).await;
            // Closing stdin is the end of the notification for the program.
            drop(stdin);
            match written {
                // A program that does not read its stdin is free not to.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => other,
            }
        };
        let read = async move {
            let mut text = Vec::new();
            if let Some(mut stderr) = stderr {
                // What it printed before an error is all it gives; an unreadable rest is lost.
                let _ = stderr.read_to_end(&mut text).await;
            }
            text
        };
        let (written, stderr, status) = tokio::join!(write, read, child.wait());
        let status = status.map_err(|e| format!("waiting for `{}`: {e}", self.program))?;
        if !status.success() {
            return Err(format!(
                "`{}` {}{}",
                self.program,
                exit_text(status),
                stderr_tail(&stderr)
            ));
        }
        written.map_err(|e| {
            format!(
                "cannot write the notification to the stdin of `{}`: {e}",
                self.program
            )
        })
    }
}

/// The notification as the `WEIR_*` environment of a command.
fn command_env(n: &Notification, home: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("WEIR_EVENT", n.event.as_str().to_owned()),
        ("WEIR_DAG_ID", n.dag_id.to_string()),
        ("WEIR_RUN_ID", n.run_id.to_string()),
        ("WEIR_TASK_ID", n.task_id.to_string()),
        ("WEIR_MAP_INDEX", n.map_index.to_string()),
        ("WEIR_TRY_NUMBER", n.try_number.to_string()),
        ("WEIR_MAX_TRIES", n.max_tries.to_string()),
        ("WEIR_LOGICAL_DATE", n.logical_date.to_string()),
        ("WEIR_ERROR", n.error.clone().unwrap_or_default()),
        (
            "WEIR_RETRY_AT",
            n.retry_at.map(|t| t.to_string()).unwrap_or_default(),
        ),
        ("WEIR_HOME", home.display().to_string()),
    ]
}

fn exit_text(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exited with {code}"),
        None => format!("was killed by a signal ({status})"),
    }
}

/// The end of a failed command's stderr, as "; its stderr ended with: …", or nothing.
fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].join(" / ");
    let mut start = tail.len().saturating_sub(STDERR_TAIL_BYTES);
    while !tail.is_char_boundary(start) {
        start += 1;
    }
    format!("; its stderr ended with: {}", &tail[start..])
}

/// Appends each notification to a file as one line of JSON (JSON lines), creating the file and
/// its folders as needed. Each line is one append-mode write, so several processes can share a
/// file without interleaving their lines.
///
/// In the path, `{home}` is the weir home folder of the executor that sends the notification
/// and `{dag_id}` the notification's DAG; a relative path is relative to the process's working
/// folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFileNotifier {
    pub path: PathBuf,
}

impl LogFileNotifier {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LogFileNotifier { path: path.into() }
    }

    /// The file a notification of `dag_id` sent from an executor with this `home` goes to.
    pub fn path_for(&self, home: &Path, dag_id: &DagId) -> PathBuf {
        let text = self.path.to_string_lossy();
        if !text.contains('{') {
            return self.path.clone();
        }
        PathBuf::from(
            text.replace("{home}", &home.to_string_lossy())
                .replace("{dag_id}", dag_id.as_str()),
        )
    }
}

#[async_trait]
impl Notifier for LogFileNotifier {
    fn describe(&self) -> String {
        format!("log file {}", self.path.display())
    }

    async fn notify(&self, n: &Notification, home: &Path) -> Result<(), String> {
        let path = self.path_for(home, &n.dag_id);
        let mut line = n.to_json()?;
        line.push('\n');
        match tokio::task::spawn_blocking(move || append_line(&path, line.as_bytes())).await {
            Ok(result) => result,
            Err(e) => Err(format!(
                "writing the notification stopped before it finished: {e}"
            )),
        }
    }
}

/// Appends `line` to `path` in one write, creating the file and its folders.
fn append_line(path: &Path, line: &[u8]) -> Result<(), String> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            format!(
                "cannot create the folder {} for the notification log: {e}",
                parent.display()
            )
        })?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| {
            format!(
                "cannot open the notification log {}: {e}; check the path and its permissions",
                path.display()
            )
        })?;
    file.write_all(line).map_err(|e| {
        format!(
            "cannot append to the notification log {}: {e}",
            path.display()
        )
    })
}
