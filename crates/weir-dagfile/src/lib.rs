//! DAG files: pipelines written in TOML from the operator catalogue, which the stock `weir`
//! binary loads at start — no Rust, no compile.
//!
//! ```toml
//! [dag]
//! id = "orders_daily"
//! schedule = "@daily"             # a preset, a 5-field cron, "every 90m", or "none"
//! timezone = "America/New_York"
//! start_date = "2026-03-01"
//!
//! [params]
//! source = { default = "orders.csv", doc = "CSV of orders" }
//!
//! [[tasks]]
//! id = "load"
//! op = "load_window"
//! source = "{{ params.source }}"
//! partition_by = "dt"
//!
//! [[tasks]]
//! id = "per_region"
//! op = "sql"
//! inputs = { orders = "load" }
//! query = "SELECT region, count(*) AS orders FROM orders GROUP BY region"
//! notify = [{ log_file = "{home}/per_region.log", on = ["success"] }]
//!
//! [[notify]]                             # every task's events
//! webhook = "http://127.0.0.1:9000/hook"  # or command = ["notify-send", "weir"], or log_file
//! on = ["failure", "retry_exhausted"]     # the default; also "retry", "success"
//! headers = { Authorization = "Bearer …" } # webhooks only
//! timeout = "10s"                         # webhooks and commands
//! ```
//!
//! A task is `id`, `op` (an operator of [`weir_ops::OperatorConfig`]), the task settings
//! (`after`, `retries`, `retry_delay`, `retry_backoff`, `max_retry_delay`, `pool`,
//! `pool_slots`, `trigger_rule`, `execution_timeout`, `expand`, `doc`, `notify`) and the
//! operator's own keys. A notifier (a `[[notify]]` table for the whole DAG, or an entry of a
//! task's `notify` list) is exactly one of `webhook` (plain `http://`: this build has no TLS),
//! `command` (a program and its arguments) and `log_file` (`{home}` is the weir home, filled in
//! when a notification is written), with `on`, `headers` and `timeout`; see
//! [`weir_runtime::Notifier`]. [`parse`] reports every problem of a file at once, each with its
//! line.

mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::SignedDuration;
use serde_json::{Map, Value};
use toml::Spanned;
use weir_core::timetable::{parse_duration, parse_schedule, parse_start, parse_zone};
use weir_core::{CoreError, DagProblem, ParamSpec, TriggerRule};
use weir_runtime::{
    CommandNotifier, DagDef, LogFileNotifier, Notifier, NotifyEvent, NotifyRule, Task, TaskError,
    Webhook,
};

pub use template::VARIABLES;

/// One problem of a DAG file: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    /// 1-based; `None` for the file as a whole.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// A DAG loaded from a file.
#[derive(Debug)]
pub struct DagFile {
    pub path: PathBuf,
    /// The first 12 hex digits of the SHA-1 of the file's text: which version of it this is.
    pub version: String,
    pub def: DagDef,
}

/// What loading folders of DAG files gave: the DAGs, and the files that did not load.
#[derive(Debug, Default)]
pub struct Loaded {
    pub dags: Vec<DagFile>,
    /// Every problem of every file that did not load (Airflow's import errors).
    pub errors: Vec<Problem>,
}

/// The `*.toml` files of `dir`, sorted; a folder that does not exist has none.
pub fn dag_files(dir: &Path) -> Result<Vec<PathBuf>, Problem> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Problem {
                path: dir.to_path_buf(),
                line: None,
                message: format!("cannot list the DAG folder: {e}"),
            });
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Loads every DAG file of `dirs`. A broken file never stops the others: its problems are
/// listed in [`Loaded::errors`]. Two files declaring one DAG id: the second is an error.
pub fn load_dirs(dirs: &[PathBuf]) -> Loaded {
    let mut loaded = Loaded::default();
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in dirs {
        let files = match dag_files(dir) {
            Ok(files) => files,
            Err(problem) => {
                loaded.errors.push(problem);
                continue;
            }
        };
        for path in files {
            match load_file(&path) {
                Ok(dag) => {
                    let id = dag.def.dag.id.to_string();
                    if let Some(first) = seen.get(&id) {
                        loaded.errors.push(Problem {
                            path: path.clone(),
                            line: None,
                            message: format!(
                                "DAG id `{id}` is already declared by {}; give one of them another id",
                                first.display()
                            ),
                        });
                        continue;
                    }
                    seen.insert(id, path);
                    loaded.dags.push(dag);
                }
                Err(problems) => loaded.errors.extend(problems),
            }
        }
    }
    loaded
}

/// A [`weir_runtime::Loader`] that rebuilds a DAG from a stored DAG-file text (a run resumed
/// after its file changed runs the version it was created with).
pub fn loader() -> weir_runtime::Loader {
    weir_runtime::Loader(std::sync::Arc::new(|text: &str| {
        parse(Path::new("(stored version)"), text).map_err(|problems| {
            problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        })
    }))
}

/// Reads and parses one DAG file.
pub fn load_file(path: &Path) -> Result<DagFile, Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Problem {
            path: path.to_path_buf(),
            line: None,
            message: format!("cannot read the file: {e}"),
        }]
    })?;
    let def = parse(path, &text)?;
    Ok(DagFile {
        path: path.to_path_buf(),
        version: version_of(&text),
        def,
    })
}

/// The version of a DAG file's text: the first 12 hex digits of its SHA-1.
pub fn version_of(text: &str) -> String {
    sha1_smol::Sha1::from(text.as_bytes()).digest().to_string()[..12].to_owned()
}

type Table = BTreeMap<String, Spanned<toml::Value>>;

#[derive(serde::Deserialize)]
struct RawFile {
    #[serde(default)]
    dag: Option<Spanned<Table>>,
    #[serde(default)]
    params: Table,
    #[serde(default)]
    tasks: Vec<Spanned<Table>>,
    #[serde(default)]
    notify: Vec<Spanned<Table>>,
}

/// Collects problems with their lines.
struct Report<'a> {
    path: &'a Path,
    text: &'a str,
    problems: Vec<Problem>,
}

impl Report<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    fn at(&mut self, offset: Option<usize>, message: impl Into<String>) {
        let line = offset.map(|o| self.line_of(o));
        self.problems.push(Problem {
            path: self.path.to_path_buf(),
            line,
            message: message.into(),
        });
    }

    /// Where `key = ` is written in the table that starts at `span` (a `[table]` header's
    /// span covers the header only: the table's keys follow it up to the next header).
    fn key_offset(&self, span: &std::ops::Range<usize>, key: &str) -> Option<usize> {
        let mut offset = span.start;
        for (i, line) in self
            .text
            .get(span.start..)?
            .split_inclusive('\n')
            .enumerate()
        {
            let trimmed = line.trim_start();
            if i > 0 && trimmed.starts_with('[') {
                return None;
            }
            if let Some(rest) = trimmed.strip_prefix(key)
                && rest.trim_start().starts_with('=')
            {
                return Some(offset + (line.len() - trimmed.len()));
            }
            offset += line.len();
        }
        None
    }
}

/// The task settings a task table may hold besides its operator's keys.
const TASK_KEYS: &[&str] = &[
    "id",
    "op",
    "after",
    "retries",
    "retry_delay",
    "retry_backoff",
    "max_retry_delay",
    "pool",
    "pool_slots",
    "trigger_rule",
    "execution_timeout",
    "expand",
    "doc",
    "notify",
    "on_exhausted",
];

/// The operators a task's `op` may name.
pub const OPERATORS: &[&str] = &[
    "command",
    "load_window",
    "partition",
    "plan_ranges",
    "sql",
    "verify",
    "wait_for",
    "write_table",
    "replay_dead_letters",
];

/// Parses the DAG file `text` (read from `path`) into a DAG; every problem at once otherwise.
pub fn parse(path: &Path, text: &str) -> Result<DagDef, Vec<Problem>> {
    let mut r = Report {
        path,
        text,
        problems: Vec::new(),
    };
    // Syntax and shape.
    let top: Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            r.at(e.span().map(|s| s.start), format!("TOML: {}", e.message()));
            return Err(r.problems);
        }
    };
    for (key, value) in &top {
        if !["dag", "params", "tasks", "notify"].contains(&key.as_str()) {
            r.at(
                Some(value.span().start),
                format!(
                    "unknown table `{key}`; a DAG file has [dag], [params], [[tasks]] and [[notify]]"
                ),
            );
        }
    }
    let raw: RawFile = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            r.at(
                e.span().map(|s| s.start),
                format!(
                    "{}; [dag] and [params] are tables, [[tasks]] and [[notify]] arrays of tables",
                    e.message()
                ),
            );
            return Err(r.problems);
        }
    };
    let Some(dag) = raw.dag else {
        r.at(
            None,
            "no [dag] table; start the file with [dag] and its `id`",
        );
        return Err(r.problems);
    };

    // [dag]
    let dag_span = dag.span();
    let dag = dag.into_inner();
    let text_of = |r: &mut Report, key: &str, v: &Spanned<toml::Value>| -> Option<String> {
        match v.get_ref() {
            toml::Value::String(s) => Some(s.clone()),
            toml::Value::Datetime(d) => Some(d.to_string()),
            other => {
                r.at(
                    Some(v.span().start),
                    format!("`{key}` must be text, not {}", other.type_str()),
                );
                None
            }
        }
    };
    let id = match dag.get("id") {
        Some(v) => text_of(&mut r, "id", v),
        None => {
            r.at(Some(dag_span.start), "[dag] has no `id`");
            None
        }
    };
    let mut builder = DagDef::builder(id.clone().unwrap_or_else(|| "invalid".to_owned()))
        .version(version_of(text))
        .source_text(text);
    let zone = match dag.get("timezone") {
        Some(v) => match text_of(&mut r, "timezone", v).map(|z| parse_zone(&z)) {
            Some(Ok(tz)) => tz,
            Some(Err(e)) => {
                r.at(Some(v.span().start), e.to_string());
                jiff::tz::TimeZone::UTC
            }
            None => jiff::tz::TimeZone::UTC,
        },
        None => jiff::tz::TimeZone::UTC,
    };
    for (key, v) in &dag {
        let at = Some(v.span().start);
        match key.as_str() {
            "id" | "timezone" => {}
            "schedule" => {
                if let Some(s) = text_of(&mut r, key, v) {
                    match parse_schedule(&s, zone.clone()) {
                        Ok(Some(tt)) => builder = builder.schedule(tt),
                        Ok(None) => {}
                        Err(e) => r.at(at, format!("schedule {s:?}: {e}")),
                    }
                }
            }
            "start_date" | "end_date" => {
                if let Some(s) = text_of(&mut r, key, v) {
                    match parse_start(&s, &zone) {
                        Ok(t) if key == "start_date" => builder = builder.start_date(t),
                        Ok(t) => builder = builder.end_date(t),
                        Err(e) => r.at(at, format!("{key}: {e}")),
                    }
                }
            }
            "catchup" => match v.get_ref().as_bool() {
                Some(b) => builder = builder.catchup(b),
                None => r.at(at, "`catchup` must be true or false"),
            },
            "description" => {
                if let Some(s) = text_of(&mut r, key, v) {
                    builder = builder.description(s);
                }
            }
            "tags" => match v.get_ref().as_array() {
                Some(tags) => {
                    builder = builder.tags(
                        tags.iter()
                            .filter_map(|t| t.as_str().map(str::to_owned))
                            .collect::<Vec<_>>(),
                    )
                }
                None => r.at(at, "`tags` must be a list of texts"),
            },
            "max_active_runs" | "max_active_tasks" => match v.get_ref().as_integer() {
                Some(n) if (1..=i64::from(u32::MAX)).contains(&n) => {
                    builder = if key == "max_active_runs" {
                        builder.max_active_runs(n as u32)
                    } else {
                        builder.max_active_tasks(n as u32)
                    }
                }
                _ => r.at(at, format!("`{key}` must be a whole number from 1")),
            },
            other => r.at(
                r.key_offset(&dag_span, other).or(at),
                format!(
                    "unknown key `{other}` in [dag]; it takes id, schedule, timezone, start_date, end_date, catchup, description, tags, max_active_runs, max_active_tasks"
                ),
            ),
        }
    }

    // [[notify]]: rules for every task.
    for entry in &raw.notify {
        let span = entry.span();
        let keys: Vec<NotifyKey> = entry
            .get_ref()
            .iter()
            .map(|(key, v)| NotifyKey {
                name: key.clone(),
                value: v.get_ref().clone(),
                at: r.key_offset(&span, key).or(Some(v.span().start)),
            })
            .collect();
        if let Some(rule) = notify_rule(&mut r, "[[notify]]", Some(span.start), &keys) {
            builder = builder.notify(rule.notifier, &rule.on);
        }
    }

    // [params]
    let mut declared = Vec::new();
    let mut defaults = BTreeMap::new();
    for (name, v) in &raw.params {
        if let Some(spec) = param_spec(&mut r, name, v) {
            declared.push(name.clone());
            if let Some(default) = &spec.default {
                defaults.insert(name.clone(), default.clone());
            }
            builder = builder.param(spec);
        }
    }

    // [[tasks]]
    let env = template::environment();
    let task_ids: BTreeSet<String> = raw
        .tasks
        .iter()
        .filter_map(|t| t.get_ref().get("id")?.get_ref().as_str().map(str::to_owned))
        .collect();
    let mut task_lines: BTreeMap<String, usize> = BTreeMap::new();
    for task in &raw.tasks {
        let span = task.span();
        let names = Names {
            tasks: &task_ids,
            params: &declared,
            defaults: &defaults,
        };
        if let Some(t) = task_of(&mut r, &env, &span, task.get_ref(), &names) {
            task_lines.insert(t.0.clone(), span.start);
            builder = builder.task(t.1);
        }
    }
    if raw.tasks.is_empty() {
        r.at(None, "no [[tasks]]; a DAG needs at least one task");
    }

    let built = builder.build();
    match built {
        Ok(def) if r.problems.is_empty() => Ok(def),
        Ok(_) => Err(r.problems),
        Err(CoreError::InvalidDag { problems, .. }) => {
            for p in problems {
                let task = match &p {
                    DagProblem::DuplicateTask { task }
                    | DagProblem::UnknownUpstream { task, .. }
                    | DagProblem::InvalidMapping { task, .. } => Some(task.clone()),
                    DagProblem::Cycle { tasks } => tasks.first().cloned(),
                    DagProblem::InvalidSetting { task, .. } => task.clone(),
                };
                // Unknown upstreams are reported with their own line already.
                if matches!(p, DagProblem::UnknownUpstream { .. }) {
                    continue;
                }
                let at = task.and_then(|t| task_lines.get(&t).copied());
                r.at(at, p.to_string());
            }
            Err(r.problems)
        }
        Err(e) => {
            r.at(None, e.to_string());
            Err(r.problems)
        }
    }
}

/// A `[params]` entry: `name = { default = …, doc = "…", type = "…", min, max, choices }`,
/// or a bare default. The type is the default's unless given.
fn param_spec(r: &mut Report, name: &str, v: &Spanned<toml::Value>) -> Option<ParamSpec> {
    let at = Some(v.span().start);
    let (table, bare) = match v.get_ref() {
        toml::Value::Table(t) => (t.clone(), None),
        other => (toml::Table::new(), Some(other.clone())),
    };
    for key in table.keys() {
        if !["default", "doc", "type", "min", "max", "choices"].contains(&key.as_str()) {
            r.at(
                at,
                format!(
                    "param `{name}`: unknown key `{key}`; a param takes default, doc, type, min, max, choices"
                ),
            );
        }
    }
    let default = bare.or_else(|| table.get("default").cloned());
    let doc = table
        .get("doc")
        .and_then(|d| d.as_str())
        .unwrap_or("")
        .to_owned();
    let kind = match table.get("type").and_then(|t| t.as_str()) {
        Some(k) => k.to_owned(),
        None => match &default {
            Some(toml::Value::Integer(_)) => "integer".to_owned(),
            Some(toml::Value::Float(_)) => "number".to_owned(),
            Some(toml::Value::Boolean(_)) => "boolean".to_owned(),
            _ if table.contains_key("choices") => "choice".to_owned(),
            _ => "text".to_owned(),
        },
    };
    let int = |k: &str, d: i64| table.get(k).and_then(|v| v.as_integer()).unwrap_or(d);
    let num = |k: &str, d: f64| {
        table
            .get(k)
            .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
            .unwrap_or(d)
    };
    let spec = match kind.as_str() {
        "text" => ParamSpec::text(name, doc),
        "path" => ParamSpec::path(name, doc),
        "zone" => ParamSpec::zone(name, doc),
        "integer" => ParamSpec::integer(name, int("min", i64::MIN), int("max", i64::MAX), doc),
        "number" => ParamSpec::number(name, num("min", f64::MIN), num("max", f64::MAX), doc),
        "boolean" => ParamSpec::boolean(name, doc),
        "choice" => {
            let choices: Vec<String> = table
                .get("choices")
                .and_then(|c| c.as_array())
                .map(|c| {
                    c.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if choices.is_empty() {
                r.at(
                    at,
                    format!("param `{name}`: a choice needs `choices = [\"…\"]`"),
                );
                return None;
            }
            ParamSpec::choice(name, choices, doc)
        }
        other => {
            r.at(
                at,
                format!(
                    "param `{name}`: unknown type `{other}`; use text, path, zone, integer, number, boolean or choice"
                ),
            );
            return None;
        }
    };
    let Some(default) = default else {
        return Some(spec);
    };
    let value = toml_to_json(&default);
    match spec.check(&value) {
        Ok(_) => Some(spec.default(value)),
        Err(e) => {
            r.at(
                at,
                format!("param `{name}`: the default {value} is invalid: {e}"),
            );
            None
        }
    }
}

fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::from(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

/// DAG-file shorthands, made into the operator configs they stand for.
fn desugar(op: &str, config: &mut Map<String, Value>) -> Result<(), String> {
    if op == "load_window"
        && let Some(Value::String(by)) = config.get("partition_by").cloned()
    {
        let (granularity, whole_local) = match by.as_str() {
            "dt" | "day" => ("day", false),
            "hr" | "hour" | "dt/hr" => ("hour", true),
            "mo" | "month" => ("month", false),
            other => {
                return Err(format!(
                    "partition_by = {other:?}: use \"dt\", \"hour\" or \"month\", or a table such as {{ by = \"hash\", key = \"customer_id\", buckets = 8 }}"
                ));
            }
        };
        config.insert(
                "partition_by".to_owned(),
                serde_json::json!({"by": "date", "granularity": granularity, "whole_local": whole_local}),
            );
    }
    Ok(())
}

/// What the tasks of a file may name.
struct Names<'a> {
    tasks: &'a BTreeSet<String>,
    params: &'a [String],
    /// Declared params' defaults: what `{{ params.X }}` stands for when a file is checked.
    defaults: &'a BTreeMap<String, Value>,
}

/// One `[[tasks]]` table as a task, or its problems reported.
fn task_of(
    r: &mut Report,
    env: &minijinja::Environment<'static>,
    span: &std::ops::Range<usize>,
    table: &Table,
    names: &Names,
) -> Option<(String, Task)> {
    let (task_ids, declared) = (names.tasks, names.params);
    let start = Some(span.start);
    let Some(id) = table.get("id").and_then(|v| v.get_ref().as_str()) else {
        r.at(start, "a task has no `id`");
        return None;
    };
    let id = id.to_owned();
    let line_of_key = |r: &Report, key: &str| {
        r.key_offset(span, key)
            .or(table.get(key).map(|v| v.span().start))
    };
    let Some(op) = table.get("op").and_then(|v| v.get_ref().as_str()) else {
        r.at(
            start,
            format!(
                "task `{id}` has no `op`; name one of {}",
                OPERATORS.join(", ")
            ),
        );
        return None;
    };
    if !OPERATORS.contains(&op) {
        r.at(
            line_of_key(r, "op"),
            format!(
                "task `{id}`: unknown operator `{op}`; use one of {}",
                OPERATORS.join(", ")
            ),
        );
        return None;
    }
    let problems_before = r.problems.len();
    let mut config = Map::new();
    config.insert("operator".to_owned(), Value::String(op.to_owned()));
    for (key, v) in table {
        if !TASK_KEYS.contains(&key.as_str()) {
            config.insert(key.clone(), toml_to_json(v.get_ref()));
        }
    }
    if let Err(e) = desugar(op, &mut config) {
        r.at(line_of_key(r, "partition_by"), format!("task `{id}`: {e}"));
    }

    // Task settings.
    let text = |key: &str| {
        table
            .get(key)
            .and_then(|v| v.get_ref().as_str().map(str::to_owned))
    };
    let mut upstream: Vec<String> = match table.get("after").map(|v| v.get_ref()) {
        None => Vec::new(),
        Some(toml::Value::String(s)) => vec![s.clone()],
        Some(toml::Value::Array(a)) if a.iter().all(|x| x.is_str()) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        Some(_) => {
            r.at(
                line_of_key(r, "after"),
                format!("task `{id}`: `after` is a task id or a list of task ids"),
            );
            Vec::new()
        }
    };
    let expand = text("expand");
    // `expand = { items = [...] }` maps over a literal list (Airflow's `expand(x=[...])`).
    let expand_over: Option<Vec<Value>> = table
        .get("expand")
        .and_then(|v| v.get_ref().as_table())
        .filter(|t| t.len() == 1)
        .and_then(|t| t.get("items"))
        .and_then(|items| items.as_array())
        .map(|items| items.iter().map(toml_to_json).collect());
    if table.contains_key("expand") && expand.is_none() && expand_over.is_none() {
        r.at(
            line_of_key(r, "expand"),
            format!(
                "task `{id}`: `expand` is the id of the task whose list output it maps over, or `{{ items = [...] }}`"
            ),
        );
    }
    if let Some(e) = &expand {
        upstream.push(e.clone());
    }
    if let Some(Value::Object(inputs)) = config.get("inputs") {
        for task in inputs.values().filter_map(Value::as_str) {
            upstream.push(task.to_owned());
        }
    }
    if let Some(Value::String(u)) = config.get("upstream") {
        upstream.push(u.clone());
    }
    upstream.sort();
    upstream.dedup();
    for u in &upstream {
        if !task_ids.contains(u) {
            let key = ["after", "expand", "inputs", "upstream"]
                .into_iter()
                .find(|k| {
                    r.key_offset(span, k).is_some_and(|o| {
                        r.text[o..]
                            .lines()
                            .next()
                            .is_some_and(|l| l.contains(u.as_str()))
                    })
                })
                .unwrap_or("after");
            r.at(
                line_of_key(r, key),
                format!("task `{id}`: `{key}` names `{u}`, which is not a task of this file"),
            );
        }
    }

    // The operator's config: its keys and types now; templated values when they are rendered.
    let config = Value::Object(config);
    let mut texts = Vec::new();
    template::templated_texts(&config, "", &mut texts);
    for (key, t) in &texts {
        let top_key = key.split(['.', '[']).next().unwrap_or(key);
        for problem in template::check(env, t, declared, expand.is_some() || expand_over.is_some())
        {
            r.at(
                line_of_key(r, top_key),
                format!("task `{id}`: `{key}`: {problem}"),
            );
        }
    }
    // Checked as the defaults would render it: `{{ params.X }}` becomes X's default, so a
    // typed field and the operator's own checks are tried before any run; what only a run
    // knows (`item`, a param without a default) is checked when it is rendered.
    let probe = template::probe(&config, names.defaults);
    let mut unknown = Vec::new();
    template::templated_texts(&probe, "", &mut unknown);
    let parsed: Result<weir_ops::OperatorConfig, _> = serde_json::from_value(probe.clone());
    // A value only a run can render may want a number, a flag or a list: the config is fine
    // if it reads with such values in their place (then only a run can tell).
    let fits_when_rendered = || {
        [
            serde_json::json!(0),
            serde_json::json!(true),
            serde_json::json!([]),
            serde_json::json!({}),
        ]
        .iter()
        .any(|with| {
            serde_json::from_value::<weir_ops::OperatorConfig>(template::replace_templates(
                &probe, with, true,
            ))
            .is_ok()
        })
    };
    let operator = match parsed {
        Ok(op_config) => Some(op_config),
        Err(e) => {
            let message = e.to_string();
            // Point at the key serde names, else at the task.
            let at = message
                .split('`')
                .nth(1)
                .and_then(|k| r.key_offset(span, k))
                .or(start);
            // A value still templated may not have its final type yet.
            if unknown.is_empty() || !message.contains("invalid type") || !fits_when_rendered() {
                r.at(at, format!("task `{id}` ({op}): {message}"));
            }
            None
        }
    };
    if let Some(op_config) = &operator
        && unknown.is_empty()
    {
        for problem in op_config.clone().into_operator().validate() {
            r.at(start, format!("task `{id}` ({op}): {problem}"));
        }
    }

    let mut task = if texts.is_empty() {
        match operator {
            Some(op_config) => weir_ops::task_of(id.clone(), op_config.into_operator()),
            None => Task::new(id.clone()),
        }
    } else {
        let config = Arc::new(config);
        let task_id = id.clone();
        Task::new(id.clone()).run(move |ctx| {
            let config = config.clone();
            let task_id = task_id.clone();
            async move {
                let env = template::environment();
                let vars = template::context(&ctx);
                let rendered = template::render(&env, &config, &vars, true).map_err(|e| {
                    TaskError::fatal(format!("task `{task_id}`: a template fails: {e}"))
                })?;
                let op: weir_ops::OperatorConfig =
                    serde_json::from_value(rendered).map_err(|e| {
                        TaskError::fatal(format!(
                            "task `{task_id}`: its rendered config is invalid: {e}"
                        ))
                    })?;
                let op = op.into_operator();
                let problems = op.validate();
                if !problems.is_empty() {
                    return Err(TaskError::fatal(format!(
                        "task `{task_id}`: invalid {} config: {}",
                        op.name(),
                        problems.join("; ")
                    )));
                }
                op.execute(ctx).await
            }
        })
    };
    task = task.doc(text("doc").unwrap_or_else(|| format!("{op} operator")));
    if !upstream.is_empty() {
        task = task.after(upstream);
    }
    if let Some(e) = expand {
        task = task.expand(e);
    }
    if let Some(items) = expand_over {
        task = task.expand_over(items);
    }
    for (key, v) in table {
        let at = line_of_key(r, key);
        let value = v.get_ref();
        match key.as_str() {
            "retries" => match value.as_integer() {
                Some(n) if (0..=1000).contains(&n) => task = task.retries(n as u32),
                _ => r.at(at, format!("task `{id}`: `retries` must be a whole number from 0")),
            },
            "retry_delay" | "max_retry_delay" | "execution_timeout" => {
                match value.as_str().map(parse_duration) {
                    Some(Ok(d)) => {
                        task = match key.as_str() {
                            "retry_delay" => task.retry_delay(d),
                            "max_retry_delay" => task.max_retry_delay(d),
                            _ => task.execution_timeout(d),
                        }
                    }
                    Some(Err(e)) => r.at(at, format!("task `{id}`: `{key}`: {e}")),
                    None => r.at(at, format!("task `{id}`: `{key}` must be a duration such as \"5m\"")),
                }
            }
            "retry_backoff" => match value {
                toml::Value::Boolean(true) => task = task.backoff(2.0),
                toml::Value::Boolean(false) => {}
                toml::Value::Float(f) if *f >= 1.0 => task = task.backoff(*f),
                toml::Value::Integer(i) if *i >= 1 => task = task.backoff(*i as f64),
                _ => r.at(at, format!("task `{id}`: `retry_backoff` is true, false or a multiplier of at least 1")),
            },
            "pool" => {
                let slots = table
                    .get("pool_slots")
                    .and_then(|s| s.get_ref().as_integer())
                    .unwrap_or(1);
                match value.as_str() {
                    Some(name) if slots >= 1 => task = task.pool(name, slots as u32),
                    _ => r.at(at, format!("task `{id}`: `pool` is a pool's name and `pool_slots` at least 1")),
                }
            }
            "notify" => {
                let shape = || {
                    format!(
                        "task `{id}`: `notify` is a list of notifiers such as [{{ webhook = \"http://127.0.0.1:9000/hook\", on = [\"failure\"] }}]"
                    )
                };
                match value {
                    toml::Value::Array(entries) => {
                        for entry in entries {
                            let toml::Value::Table(entry) = entry else {
                                r.at(at, shape());
                                continue;
                            };
                            // Inline tables keep no lines of their own: problems point at `notify`.
                            let keys: Vec<NotifyKey> = entry
                                .iter()
                                .map(|(key, v)| NotifyKey {
                                    name: key.clone(),
                                    value: v.clone(),
                                    at,
                                })
                                .collect();
                            let whose = format!("task `{id}`: notify");
                            if let Some(rule) = notify_rule(r, &whose, at, &keys) {
                                task = task.notify(rule.notifier, &rule.on);
                            }
                        }
                    }
                    _ => r.at(at, shape()),
                }
            }
            "on_exhausted" => match value.as_str() {
                Some("fail") => {}
                Some("dead_letter") => task = task.dead_letter_on_exhaustion(),
                _ => r.at(
                    at,
                    format!(
                        "task `{id}`: `on_exhausted` is \"fail\" (the default) or \"dead_letter\" (send the batch to the dead-letter queue and succeed incomplete)"
                    ),
                ),
            },
            "trigger_rule" => match value
                .as_str()
                .and_then(|t| serde_json::from_value::<TriggerRule>(Value::String(t.to_owned())).ok())
            {
                Some(rule) => task = task.trigger_rule(rule),
                None => r.at(
                    at,
                    format!(
                        "task `{id}`: unknown trigger_rule {value}; use all_success, all_failed, all_done, one_success, one_failed, none_failed, none_skipped, …"
                    ),
                ),
            },
            _ => {}
        }
    }
    (r.problems.len() == problems_before).then_some((id, task))
}

/// One key of a notifier's table: its name, its value and where it is written.
struct NotifyKey {
    name: String,
    value: toml::Value,
    at: Option<usize>,
}

/// The keys a notifier's table may hold.
const NOTIFY_KEYS: &[&str] = &["webhook", "command", "log_file", "on", "headers", "timeout"];

/// The keys that say which sink a notifier is.
const NOTIFY_SINKS: &[&str] = &["webhook", "command", "log_file"];

/// One notifier (a `[[notify]]` table, or an entry of a task's `notify` list) as a rule, or its
/// problems reported. `whose` names it in messages; `start` is where it begins.
fn notify_rule(
    r: &mut Report,
    whose: &str,
    start: Option<usize>,
    keys: &[NotifyKey],
) -> Option<NotifyRule> {
    let before = r.problems.len();
    let get = |name: &str| keys.iter().find(|k| k.name == name);
    for k in keys {
        if !NOTIFY_KEYS.contains(&k.name.as_str()) {
            r.at(
                k.at,
                format!(
                    "{whose}: unknown key `{}`; a notifier takes one of webhook, command and log_file, and on, headers, timeout",
                    k.name
                ),
            );
        }
    }

    let on = match get("on") {
        None => NotifyEvent::DEFAULT.to_vec(),
        Some(k) => match &k.value {
            toml::Value::Array(items) => {
                let mut on = Vec::new();
                for item in items {
                    match item.as_str().and_then(NotifyEvent::parse) {
                        Some(event) => on.push(event),
                        None => r.at(
                            k.at,
                            format!(
                                "{whose}: unknown event {item} in `on`; use retry, failure, success or retry_exhausted"
                            ),
                        ),
                    }
                }
                if items.is_empty() {
                    r.at(
                        k.at,
                        format!(
                            "{whose}: `on` is empty; name the events to send, such as [\"failure\", \"retry_exhausted\"]"
                        ),
                    );
                }
                on
            }
            _ => {
                r.at(
                    k.at,
                    format!(
                        "{whose}: `on` is a list of events, such as [\"failure\", \"retry_exhausted\"]"
                    ),
                );
                Vec::new()
            }
        },
    };

    let timeout = match get("timeout") {
        None => None,
        Some(k) => match k.value.as_str().map(parse_duration) {
            Some(Ok(d)) if d > SignedDuration::ZERO => Some(d.unsigned_abs()),
            Some(Ok(_)) => {
                r.at(k.at, format!("{whose}: `timeout` must be more than zero"));
                None
            }
            Some(Err(e)) => {
                r.at(k.at, format!("{whose}: `timeout`: {e}"));
                None
            }
            None => {
                r.at(
                    k.at,
                    format!("{whose}: `timeout` must be a duration such as \"10s\""),
                );
                None
            }
        },
    };

    let mut headers = Vec::new();
    if let Some(k) = get("headers") {
        match &k.value {
            toml::Value::Table(table) => {
                for (name, value) in table {
                    match value.as_str() {
                        Some(text) => headers.push((name.clone(), text.to_owned())),
                        None => r.at(
                            k.at,
                            format!("{whose}: the value of header `{name}` must be text"),
                        ),
                    }
                }
            }
            _ => r.at(
                k.at,
                format!("{whose}: `headers` is a table such as {{ Authorization = \"Bearer …\" }}"),
            ),
        }
    }

    let sinks: Vec<&NotifyKey> = keys
        .iter()
        .filter(|k| NOTIFY_SINKS.contains(&k.name.as_str()))
        .collect();
    let Some(sink) = sinks.first().copied() else {
        r.at(
            start,
            format!(
                "{whose} names no notifier; give one of webhook = \"http://…\", command = [\"program\", \"argument\"] or log_file = \"{{home}}/notify.log\""
            ),
        );
        return None;
    };
    if let Some(second) = sinks.get(1) {
        r.at(
            second.at,
            format!(
                "{whose}: `{}` and `{}` are two notifiers; give one of webhook, command and log_file per entry",
                sink.name, second.name
            ),
        );
    }
    if sink.name != "webhook"
        && let Some(k) = get("headers")
    {
        r.at(k.at, format!("{whose}: `headers` are for webhooks only"));
    }
    if sink.name == "log_file"
        && let Some(k) = get("timeout")
    {
        r.at(
            k.at,
            format!("{whose}: `timeout` is for webhooks and commands; a log file has none"),
        );
    }

    let notifier: Option<Arc<dyn Notifier>> = match sink.name.as_str() {
        "webhook" => match sink.value.as_str() {
            Some(url) => {
                let mut hook = Webhook::new(url);
                hook.headers = headers;
                if let Some(t) = timeout {
                    hook.timeout = t;
                }
                for problem in hook.problems() {
                    r.at(sink.at, format!("{whose}: {problem}"));
                }
                let hook: Arc<dyn Notifier> = Arc::new(hook);
                Some(hook)
            }
            None => {
                r.at(
                    sink.at,
                    format!(
                        "{whose}: `webhook` is an http:// URL, such as \"http://127.0.0.1:9000/hook\""
                    ),
                );
                None
            }
        },
        "command" => {
            let parts: Option<Vec<String>> = match &sink.value {
                toml::Value::String(program) => Some(vec![program.clone()]),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|x| x.as_str().map(str::to_owned))
                    .collect(),
                _ => None,
            };
            match parts {
                Some(parts) if parts.first().is_some_and(|p| !p.trim().is_empty()) => {
                    let mut command =
                        CommandNotifier::new(parts[0].clone()).args(parts[1..].iter().cloned());
                    if let Some(t) = timeout {
                        command.timeout = t;
                    }
                    let command: Arc<dyn Notifier> = Arc::new(command);
                    Some(command)
                }
                _ => {
                    r.at(
                        sink.at,
                        format!(
                            "{whose}: `command` is the program and its arguments, such as [\"/usr/bin/notify-send\", \"weir\"]"
                        ),
                    );
                    None
                }
            }
        }
        _ => match sink.value.as_str() {
            Some(path) if !path.trim().is_empty() => {
                let log: Arc<dyn Notifier> = Arc::new(LogFileNotifier::new(path));
                Some(log)
            }
            _ => {
                r.at(
                    sink.at,
                    format!(
                        "{whose}: `log_file` is the path of a file, such as \"{{home}}/notify.log\""
                    ),
                );
                None
            }
        },
    };
    let notifier = notifier?;
    (r.problems.len() == before).then(|| NotifyRule::new(notifier, &on))
}
