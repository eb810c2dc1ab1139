//! Quality gates: rules a batch must pass, checked with DataFusion over a table named `batch`.
//!
//! An *input gate* (a load's `input_checks`) checks its whole source file before anything is
//! read into partitions; an *output gate* (`checks`) checks the staged part files of every
//! partition the load is about to publish, before any of them is swapped in. A failed check of
//! severity `error` blocks: the task fails, nothing downstream runs, and the batch publishes
//! nothing — the partitions an earlier run published stay byte for byte as they were. A failed
//! `warn` check is recorded and logged, and the task goes on. Every check's result (rule,
//! passed, failing count, what it observed, a sample of failing rows) is kept in the store
//! whether it passed or not (`weir checks list`); with `dead_letter = true` the sampled failing
//! rows go to the dead-letter queue, once each however often the check runs. Each gate logs
//! `checks_run` and `checks_failed` (target `weir::checks`) for metrics.
//!
//! | rule | fails on |
//! |---|---|
//! | `not_null { column }` | rows where the column is null |
//! | `unique { columns }` (or one `column`) | rows whose key another row has too |
//! | `range { column, min?, max? }` | rows outside `[min, max]` (a null passes: that is `not_null`'s) |
//! | `accepted_values { column, values }` | rows whose value, as text, is not one of `values` |
//! | `regex { column, pattern }` | rows whose value, as text, the pattern does not match (a search: anchor it with `^…$`) |
//! | `row_count { min?, max? }` | a batch with fewer or more rows |
//! | `row_count_change { max_change_pct, runs = 3 }` | a batch whose row count is more than `max_change_pct` % off the mean rows of the task's last `runs` successful runs (it passes while there are none) |
//! | `freshness { column, max_age }` | a batch whose newest value is older than `max_age` before the run's data interval end (never the wall clock) |
//! | `sql { query }` | the rows the query returns (it reads table `batch`; run values are `$params` as in `sql`) |
//!
//! Rules are SQL with bound parameters: values never enter the query text, and column names are
//! checked (letters, digits and `_`) and quoted. An output gate reads the staged files, which
//! leave the partition columns out (the folder names hold them): a rule naming one is refused
//! with a message saying to check it in `input_checks`.

use std::path::{Path, PathBuf};

use arrow::array::{Array, Int64Array};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weir_data::ReadOptions;
use weir_query::{QueryEngine, QueryError, QueryParam};
use weir_runtime::{TaskContext, TaskError};
use weir_store::{CheckResult, RejectRecord, RunFilter};

pub use weir_store::{CheckGate, CheckSeverity};

use crate::load::{Loaded, StagedPartition, WindowParams};

/// The table every rule reads.
pub const TABLE: &str = "batch";
/// Failing rows a check keeps as its sample unless it says otherwise.
pub const DEFAULT_SAMPLE: usize = 5;
/// Earlier runs `row_count_change` compares with unless it says otherwise.
pub const DEFAULT_RUNS: u32 = 3;
/// The most failing rows a check may keep.
pub const MAX_SAMPLE: usize = 1000;

/// Every rule's name, as configs write it.
pub const RULES: [&str; 9] = [
    "not_null",
    "unique",
    "range",
    "accepted_values",
    "regex",
    "row_count",
    "row_count_change",
    "freshness",
    "sql",
];

/// One quality check: a rule, what its failure does, and what is kept of the failing rows.
///
/// A config writes it flat, the rule's fields beside the common ones:
/// `{ rule = "range", column = "amount", min = 0, max = 10000, severity = "warn" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CheckSpec", into = "CheckSpec")]
pub struct Check {
    /// Names the check in results and messages; default: the rule and its columns
    /// (`not_null_amount`).
    pub name: Option<String>,
    pub rule: Rule,
    /// `error` (the default) blocks the batch; `warn` records and goes on.
    pub severity: CheckSeverity,
    /// Send the sampled failing rows (up to `sample`) to the dead-letter queue.
    pub dead_letter: bool,
    /// Failing rows kept with the result (default 5).
    pub sample: usize,
}

/// What a check requires of a batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Rule {
    /// No row has a null `column`.
    NotNull { column: String },
    /// No two rows share the values of `columns`.
    Unique { columns: Vec<String> },
    /// Every non-null `column` is within `[min, max]` (either bound may be left out).
    Range {
        column: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
    },
    /// Every non-null `column`, as text, is one of `values`.
    AcceptedValues { column: String, values: Vec<String> },
    /// Every non-null `column`, as text, matches `pattern` (a search; anchor it with `^…$`).
    Regex { column: String, pattern: String },
    /// The batch has between `min` and `max` rows.
    RowCount {
        #[serde(skip_serializing_if = "Option::is_none")]
        min: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max: Option<u64>,
    },
    /// The batch's rows are within `max_change_pct` percent of the mean rows of the task's
    /// last `runs` successful runs (by logical date, before this one). Passes while there are
    /// none.
    RowCountChange { max_change_pct: f64, runs: u32 },
    /// The newest `column` is no older than `max_age` (`2h`, `1d`) before the end of the run's
    /// data interval.
    Freshness { column: String, max_age: String },
    /// `query` over table `batch` returns the failing rows; none is a pass.
    Sql { query: String },
}

impl Rule {
    /// The rule's name, as configs write it.
    pub fn kind(&self) -> &'static str {
        match self {
            Rule::NotNull { .. } => "not_null",
            Rule::Unique { .. } => "unique",
            Rule::Range { .. } => "range",
            Rule::AcceptedValues { .. } => "accepted_values",
            Rule::Regex { .. } => "regex",
            Rule::RowCount { .. } => "row_count",
            Rule::RowCountChange { .. } => "row_count_change",
            Rule::Freshness { .. } => "freshness",
            Rule::Sql { .. } => "sql",
        }
    }

    /// The columns the rule names.
    pub fn columns(&self) -> Vec<&str> {
        match self {
            Rule::NotNull { column }
            | Rule::Range { column, .. }
            | Rule::AcceptedValues { column, .. }
            | Rule::Regex { column, .. }
            | Rule::Freshness { column, .. } => vec![column.as_str()],
            Rule::Unique { columns } => columns.iter().map(String::as_str).collect(),
            Rule::RowCount { .. } | Rule::RowCountChange { .. } | Rule::Sql { .. } => Vec::new(),
        }
    }

    /// Whether the rule judges the batch as a whole (it has no failing rows, only a verdict).
    pub fn is_batch_level(&self) -> bool {
        match self {
            Rule::RowCount { .. } | Rule::RowCountChange { .. } | Rule::Freshness { .. } => true,
            Rule::NotNull { .. }
            | Rule::Unique { .. }
            | Rule::Range { .. }
            | Rule::AcceptedValues { .. }
            | Rule::Regex { .. }
            | Rule::Sql { .. } => false,
        }
    }

    fn default_name(&self) -> String {
        let columns = self.columns();
        if columns.is_empty() {
            self.kind().to_owned()
        } else {
            format!("{}_{}", self.kind(), columns.join("_"))
        }
    }

    /// What a failing row breaks, for a dead letter's reason.
    fn condition(&self) -> String {
        match self {
            Rule::NotNull { column } => format!("{column} is null"),
            Rule::Unique { columns } => format!("another row has the same {}", columns.join(", ")),
            Rule::Range { column, min, max } => match (min, max) {
                (Some(a), Some(b)) => format!("{column} is outside [{a}, {b}]"),
                (Some(a), None) => format!("{column} is below {a}"),
                (None, Some(b)) => format!("{column} is above {b}"),
                (None, None) => format!("{column} is out of range"),
            },
            Rule::AcceptedValues { column, values } => {
                format!("{column} is not one of {}", values.join(", "))
            }
            Rule::Regex { column, pattern } => format!("{column} does not match {pattern:?}"),
            Rule::Sql { .. } => "the check's query returned the row".to_owned(),
            Rule::RowCount { .. } | Rule::RowCountChange { .. } | Rule::Freshness { .. } => {
                "the batch as a whole".to_owned()
            }
        }
    }
}

impl Check {
    /// A check of `rule` with the defaults: severity `error`, a sample of 5 failing rows, no
    /// dead letters.
    pub fn new(rule: Rule) -> Check {
        Check {
            name: None,
            rule,
            severity: CheckSeverity::Error,
            dead_letter: false,
            sample: DEFAULT_SAMPLE,
        }
    }

    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Severity `warn`: a failure is recorded and logged, and the batch goes on.
    pub fn warn(mut self) -> Self {
        self.severity = CheckSeverity::Warn;
        self
    }

    /// Sends the sampled failing rows to the dead-letter queue.
    pub fn to_dead_letters(mut self) -> Self {
        self.dead_letter = true;
        self
    }

    /// Keeps up to `rows` failing rows with the result.
    pub fn with_sample(mut self, rows: usize) -> Self {
        self.sample = rows;
        self
    }

    /// The check's name: its own, else the rule and its columns (`not_null_amount`).
    pub fn name(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => self.rule.default_name(),
        }
    }

    /// What is wrong with the check as a check of `gate`, one sentence each; empty when
    /// nothing is. Which columns exist is known only when it runs.
    pub fn problems(&self, gate: CheckGate) -> Vec<String> {
        let mut out = Vec::new();
        if self.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            out.push("`name` is empty; name the check or leave `name` out".to_owned());
        }
        for column in self.rule.columns() {
            if !is_identifier(column) {
                out.push(format!(
                    "column {column:?} is not a column name a check can use (letters, digits \
                     and _, not starting with a digit)"
                ));
            }
        }
        match &self.rule {
            Rule::Unique { columns } if columns.is_empty() => {
                out.push("unique needs at least one column".to_owned())
            }
            Rule::Range { min, max, .. } => {
                if min.is_none() && max.is_none() {
                    out.push("range needs `min`, `max` or both".to_owned());
                }
                for (field, v) in [("min", min), ("max", max)] {
                    if let Some(v) = v
                        && !v.is_finite()
                    {
                        out.push(format!("{field} = {v} is not a finite number"));
                    }
                }
                if let (Some(a), Some(b)) = (min, max)
                    && a > b
                {
                    out.push(format!("min = {a} is above max = {b}; no value could pass"));
                }
            }
            Rule::AcceptedValues { values, .. } if values.is_empty() => {
                out.push("accepted_values needs at least one value in `values`".to_owned())
            }
            Rule::Regex { pattern, .. } if pattern.is_empty() => {
                out.push("regex needs a `pattern`".to_owned())
            }
            Rule::RowCount { min, max } => {
                if min.is_none() && max.is_none() {
                    out.push("row_count needs `min`, `max` or both".to_owned());
                }
                if let (Some(a), Some(b)) = (min, max)
                    && a > b
                {
                    out.push(format!("min = {a} is above max = {b}; no batch could pass"));
                }
            }
            Rule::RowCountChange {
                max_change_pct,
                runs,
            } => {
                if !(max_change_pct.is_finite() && *max_change_pct >= 0.0) {
                    out.push(format!(
                        "max_change_pct = {max_change_pct}: use a percentage of 0 or more"
                    ));
                }
                if *runs == 0 {
                    out.push("runs = 0: compare with at least 1 earlier run".to_owned());
                }
                if gate == CheckGate::Input {
                    out.push(
                        "row_count_change compares with the rows earlier runs published, so it \
                         belongs in `checks` (the output gate), not in `input_checks`"
                            .to_owned(),
                    );
                }
            }
            Rule::Freshness { max_age, .. } => {
                match weir_core::timetable::parse_duration(max_age) {
                    Ok(age) if age.is_positive() => {}
                    Ok(_) => out.push(format!("max_age = {max_age:?} must be longer than zero")),
                    Err(e) => out.push(format!("max_age = {max_age:?}: {e}")),
                }
            }
            Rule::Sql { query } if query.trim().is_empty() => out.push(
                "sql needs a `query` that returns the failing rows of table `batch`".to_owned(),
            ),
            _ => {}
        }
        if self.sample > MAX_SAMPLE {
            out.push(format!(
                "sample = {}: keep at most {MAX_SAMPLE} failing rows",
                self.sample
            ));
        }
        if self.dead_letter {
            if self.rule.is_batch_level() {
                out.push(format!(
                    "dead_letter sends failing rows to the dead-letter queue, but {} judges the \
                     batch as a whole and has none; leave dead_letter out",
                    self.rule.kind()
                ));
            } else if self.sample == 0 {
                out.push(
                    "dead_letter sends up to `sample` failing rows to the dead-letter queue, and \
                     sample = 0 sends none; raise sample"
                        .to_owned(),
                );
            }
        }
        let key = gate_key(gate);
        let name = self.name();
        out.into_iter()
            .map(|p| format!("{key}: check `{name}`: {p}"))
            .collect()
    }
}

/// Every problem of a gate's checks: each check's, and names used twice.
pub fn gate_problems(checks: &[Check], gate: CheckGate) -> Vec<String> {
    let mut problems: Vec<String> = checks.iter().flat_map(|c| c.problems(gate)).collect();
    let mut seen = std::collections::BTreeSet::new();
    for check in checks {
        let name = check.name();
        if !seen.insert(name.clone()) {
            problems.push(format!(
                "{}: two checks are named `{name}`; give one of them a `name`",
                gate_key(gate)
            ));
        }
    }
    problems
}

/// The config key a gate's checks are under.
fn gate_key(gate: CheckGate) -> &'static str {
    match gate {
        CheckGate::Input => "input_checks",
        CheckGate::Output => "checks",
    }
}

fn is_identifier(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A check as a config writes it: the rule's name, the common fields, and the fields of every
/// rule, of which a check may set only its rule's ([`Check`] is read through it, so a field
/// that does not apply is refused by name).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    pub rule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<CheckSeverity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Texts, numbers or booleans (compared as text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_change_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// The value of a field the rule needs, or a problem saying it is missing.
fn need<T>(value: Option<T>, field: &str, rule: &str, problems: &mut Vec<String>) -> Option<T> {
    if value.is_none() {
        problems.push(format!("rule {rule} needs `{field}`"));
    }
    value
}

/// A bound of `row_count`: a whole number of rows.
fn whole(value: Option<f64>, field: &str, problems: &mut Vec<String>) -> Option<u64> {
    let v = value?;
    if v >= 0.0 && v.fract() == 0.0 && v <= u64::MAX as f64 {
        Some(v as u64)
    } else {
        problems.push(format!("{field} = {v} is not a whole number of rows"));
        None
    }
}

impl TryFrom<CheckSpec> for Check {
    type Error = String;

    fn try_from(s: CheckSpec) -> Result<Check, String> {
        let kind = s.rule.clone();
        let takes: &[&str] = match kind.as_str() {
            "not_null" => &["column"],
            "unique" => &["column", "columns"],
            "range" => &["column", "min", "max"],
            "accepted_values" => &["column", "values"],
            "regex" => &["column", "pattern"],
            "row_count" => &["min", "max"],
            "row_count_change" => &["max_change_pct", "runs"],
            "freshness" => &["column", "max_age"],
            "sql" => &["query"],
            other => {
                return Err(format!(
                    "rule {other:?} is not a check rule; use one of {}",
                    RULES.join(", ")
                ));
            }
        };
        let mut problems = Vec::new();
        let set = [
            ("column", s.column.is_some()),
            ("columns", s.columns.is_some()),
            ("min", s.min.is_some()),
            ("max", s.max.is_some()),
            ("values", s.values.is_some()),
            ("pattern", s.pattern.is_some()),
            ("max_change_pct", s.max_change_pct.is_some()),
            ("runs", s.runs.is_some()),
            ("max_age", s.max_age.is_some()),
            ("query", s.query.is_some()),
        ];
        for (field, present) in set {
            if present && !takes.contains(&field) {
                problems.push(format!(
                    "`{field}` does not apply to rule {kind}, which takes {}",
                    takes.join(", ")
                ));
            }
        }
        let p = &mut problems;
        let rule = match kind.as_str() {
            "not_null" => need(s.column, "column", &kind, p).map(|column| Rule::NotNull { column }),
            "unique" => match (s.column, s.columns) {
                (Some(column), None) => Some(Rule::Unique {
                    columns: vec![column],
                }),
                (None, Some(columns)) => Some(Rule::Unique { columns }),
                (Some(_), Some(_)) => {
                    p.push("rule unique takes `column` or `columns`, not both".to_owned());
                    None
                }
                (None, None) => {
                    p.push("rule unique needs `columns` (or one `column`)".to_owned());
                    None
                }
            },
            "range" => need(s.column, "column", &kind, p).map(|column| Rule::Range {
                column,
                min: s.min,
                max: s.max,
            }),
            "accepted_values" => {
                let column = need(s.column, "column", &kind, p);
                let values = need(s.values, "values", &kind, p).map(|values| {
                    values
                        .into_iter()
                        .filter_map(|v| match v {
                            Value::String(text) => Some(text),
                            Value::Number(n) => Some(n.to_string()),
                            Value::Bool(b) => Some(b.to_string()),
                            other => {
                                p.push(format!("values: {other} is not a text, number or boolean"));
                                None
                            }
                        })
                        .collect::<Vec<String>>()
                });
                match (column, values) {
                    (Some(column), Some(values)) => Some(Rule::AcceptedValues { column, values }),
                    _ => None,
                }
            }
            "regex" => {
                let column = need(s.column, "column", &kind, p);
                let pattern = need(s.pattern, "pattern", &kind, p);
                match (column, pattern) {
                    (Some(column), Some(pattern)) => Some(Rule::Regex { column, pattern }),
                    _ => None,
                }
            }
            "row_count" => {
                let min = whole(s.min, "min", p);
                let max = whole(s.max, "max", p);
                Some(Rule::RowCount { min, max })
            }
            "row_count_change" => {
                need(s.max_change_pct, "max_change_pct", &kind, p).map(|max_change_pct| {
                    Rule::RowCountChange {
                        max_change_pct,
                        runs: s.runs.unwrap_or(DEFAULT_RUNS),
                    }
                })
            }
            "freshness" => {
                let column = need(s.column, "column", &kind, p);
                let max_age = need(s.max_age, "max_age", &kind, p);
                match (column, max_age) {
                    (Some(column), Some(max_age)) => Some(Rule::Freshness { column, max_age }),
                    _ => None,
                }
            }
            _ => need(s.query, "query", &kind, p).map(|query| Rule::Sql { query }),
        };
        match rule {
            Some(rule) if problems.is_empty() => Ok(Check {
                name: s.name,
                rule,
                severity: s.severity.unwrap_or_default(),
                dead_letter: s.dead_letter.unwrap_or(false),
                sample: s.sample.unwrap_or(DEFAULT_SAMPLE),
            }),
            _ => {
                let name = s.name.map(|n| format!(" `{n}`")).unwrap_or_default();
                Err(format!(
                    "check{name} (rule {kind}): {}",
                    if problems.is_empty() {
                        "incomplete".to_owned()
                    } else {
                        problems.join("; ")
                    }
                ))
            }
        }
    }
}

impl From<Check> for CheckSpec {
    fn from(c: Check) -> CheckSpec {
        let mut s = CheckSpec {
            rule: c.rule.kind().to_owned(),
            name: c.name,
            severity: (c.severity != CheckSeverity::Error).then_some(c.severity),
            dead_letter: c.dead_letter.then_some(true),
            sample: (c.sample != DEFAULT_SAMPLE).then_some(c.sample),
            ..CheckSpec::default()
        };
        match c.rule {
            Rule::NotNull { column } => s.column = Some(column),
            Rule::Unique { columns } => s.columns = Some(columns),
            Rule::Range { column, min, max } => {
                s.column = Some(column);
                s.min = min;
                s.max = max;
            }
            Rule::AcceptedValues { column, values } => {
                s.column = Some(column);
                s.values = Some(values.into_iter().map(Value::String).collect());
            }
            Rule::Regex { column, pattern } => {
                s.column = Some(column);
                s.pattern = Some(pattern);
            }
            Rule::RowCount { min, max } => {
                s.min = min.map(|v| v as f64);
                s.max = max.map(|v| v as f64);
            }
            Rule::RowCountChange {
                max_change_pct,
                runs,
            } => {
                s.max_change_pct = Some(max_change_pct);
                s.runs = Some(runs);
            }
            Rule::Freshness { column, max_age } => {
                s.column = Some(column);
                s.max_age = Some(max_age);
            }
            Rule::Sql { query } => s.query = Some(query),
        }
        s
    }
}

/// What one check found.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOutcome {
    pub name: String,
    pub rule: Rule,
    pub severity: CheckSeverity,
    pub passed: bool,
    /// Failing rows; 1 for a failed rule over the whole batch.
    pub failing: u64,
    /// What the rule measured, if it measures something (a row count, the newest time).
    pub observed: Option<String>,
    /// Up to the check's `sample` failing rows, as JSON objects.
    pub sample: Vec<Value>,
}

impl CheckOutcome {
    /// `check `x` (not_null) failed on 3 rows`, for messages.
    pub fn describe(&self) -> String {
        let how = if self.rule.is_batch_level() {
            match &self.observed {
                Some(seen) => format!("failed ({seen})"),
                None => "failed".to_owned(),
            }
        } else {
            format!(
                "failed on {} row{}",
                self.failing,
                if self.failing == 1 { "" } else { "s" }
            )
        };
        format!("check `{}` ({}) {how}", self.name, self.rule.kind())
    }
}

/// What a gate found: every check's outcome, and why it blocks the batch, if it does.
#[derive(Debug, Clone)]
pub struct GateReport {
    pub outcomes: Vec<CheckOutcome>,
    /// Set when an `error` check failed: one sentence naming them.
    pub blocked: Option<String>,
}

/// The table a gate checks, registered as `batch` in its own query engine, with what a message
/// needs to say about it.
pub struct GateBatch {
    engine: QueryEngine,
    /// The table's columns.
    columns: Vec<(String, DataType)>,
    /// Partition columns the table does not hold (the staged files leave them out).
    partition_columns: Vec<String>,
    /// What the table is, for messages: `source PATH`, `the staged partitions of DIR`.
    what: String,
    /// The dataset or source, by its canonical path: dead letters are `check:DATASET:NAME`.
    dataset: String,
}

impl GateBatch {
    /// The source file at `path`, read with `opts` the way the load reads it. Does blocking IO.
    pub fn source(path: &Path, opts: ReadOptions) -> Result<GateBatch, QueryError> {
        let schema = weir_data::open_source(path, &opts)?.schema();
        let engine = QueryEngine::new();
        engine.register_source(TABLE, path, opts)?;
        Ok(GateBatch {
            engine,
            columns: columns_of(&schema),
            partition_columns: Vec::new(),
            what: format!("source {}", path.display()),
            dataset: crate::load::dataset_name(path),
        })
    }

    /// The staged part files of `parts`, the partitions a load of the dataset at `output` is
    /// about to publish; `schema` gives the columns when it staged none. Does blocking IO.
    pub fn staged(
        output: &Path,
        parts: &[StagedPartition],
        schema: SchemaRef,
    ) -> Result<GateBatch, QueryError> {
        let engine = QueryEngine::new();
        let file_schema = parts.first().map_or(schema, |p| p.file_schema.clone());
        // Partitions without rows have nothing to check (a text one's file is empty).
        let files: Vec<PathBuf> = parts
            .iter()
            .filter(|p| p.rows > 0)
            .flat_map(|p| p.files.iter().cloned())
            .collect();
        if files.is_empty() {
            engine.register_batches(TABLE, file_schema.clone(), Vec::new())?;
        } else {
            // Text files are read with the writer's schema and no null tokens besides the empty
            // field: a text `NA` the load wrote is a value, as it was.
            let opts = ReadOptions {
                schema: Some(file_schema.clone()),
                null_values: Vec::new(),
                ..ReadOptions::default()
            };
            engine.register_files(TABLE, &files, opts)?;
        }
        let columns = columns_of(&file_schema);
        let partition_columns: Vec<String> = parts
            .first()
            .map(|p| {
                p.key
                    .parts()
                    .iter()
                    .map(|(name, _)| name.clone())
                    .filter(|name| !columns.iter().any(|(c, _)| c == name))
                    .collect()
            })
            .unwrap_or_default();
        Ok(GateBatch {
            engine,
            columns,
            partition_columns,
            what: format!("the staged partitions of {}", output.display()),
            dataset: crate::load::dataset_name(output),
        })
    }

    /// Why check `check` cannot name `column` here, if it cannot.
    fn column_problem(&self, check: &str, column: &str) -> Option<String> {
        if self.columns.iter().any(|(c, _)| c == column) {
            return None;
        }
        if self.partition_columns.iter().any(|c| c == column) {
            return Some(format!(
                "check `{check}` names `{column}`, a partition column, which the staged files \
                 leave out (the folder names hold it); check it in input_checks, or name a data \
                 column"
            ));
        }
        let have: Vec<&str> = self.columns.iter().map(|(c, _)| c.as_str()).collect();
        Some(format!(
            "check `{check}` names column `{column}`, which {} does not have (it has {})",
            self.what,
            have.join(", ")
        ))
    }

    /// ` ORDER BY` every column that sorts, so that a sample is the same rows each time.
    fn order_by(&self, first: &[String]) -> String {
        let mut keys: Vec<String> = first.to_vec();
        for (name, data_type) in &self.columns {
            let quoted = format!("\"{name}\"");
            if is_identifier(name) && sorts(data_type) && !keys.contains(&quoted) {
                keys.push(quoted);
            }
        }
        if keys.is_empty() {
            String::new()
        } else {
            format!(" ORDER BY {}", keys.join(", "))
        }
    }

    /// The count a `SELECT COUNT(*) …` query returns.
    async fn count(&self, sql: &str, params: &[(String, QueryParam)]) -> Result<u64, TaskError> {
        let batches = self.engine.sql_with_params(sql, params).await?;
        for batch in &batches {
            if batch.num_rows() == 0 {
                continue;
            }
            let Some(counts) = batch.column(0).as_any().downcast_ref::<Int64Array>() else {
                return Err(TaskError::fatal(format!(
                    "internal error in weir-ops (this is a bug, please report it): a count \
                     returned {}",
                    batch.column(0).data_type()
                )));
            };
            if counts.is_null(0) {
                return Ok(0);
            }
            return Ok(counts.value(0).max(0) as u64);
        }
        Ok(0)
    }

    /// Every row a query returns, as JSON objects (for queries that return a few).
    async fn rows(
        &self,
        sql: &str,
        params: &[(String, QueryParam)],
    ) -> Result<Vec<Value>, TaskError> {
        let batches = self.engine.sql_with_params(sql, params).await?;
        rows_json(&batches)
    }

    /// The first `n` rows a query returns, read no further than them.
    async fn first_rows(
        &self,
        sql: &str,
        params: &[(String, QueryParam)],
        n: usize,
    ) -> Result<Vec<Value>, TaskError> {
        let mut stream = self.engine.sql_stream_with_params(sql, params).await?;
        let mut batches = Vec::new();
        let mut got = 0;
        while got < n {
            let Some(batch) = stream.next().await else {
                break;
            };
            let batch = batch.map_err(|e| TaskError::from(QueryError::from(e)))?;
            let take = (n - got).min(batch.num_rows());
            got += take;
            batches.push(batch.slice(0, take));
        }
        rows_json(&batches)
    }
}

fn columns_of(schema: &SchemaRef) -> Vec<(String, DataType)> {
    schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect()
}

/// Whether a column of this type can be in an `ORDER BY`.
fn sorts(t: &DataType) -> bool {
    use DataType as T;
    matches!(
        t,
        T::Boolean
            | T::Int8
            | T::Int16
            | T::Int32
            | T::Int64
            | T::UInt8
            | T::UInt16
            | T::UInt32
            | T::UInt64
            | T::Float32
            | T::Float64
            | T::Decimal128(..)
            | T::Decimal256(..)
            | T::Utf8
            | T::LargeUtf8
            | T::Utf8View
            | T::Date32
            | T::Date64
            | T::Timestamp(..)
    )
}

/// Rows as JSON objects, nulls included (a `not_null` sample shows the null it failed on).
fn rows_json(batches: &[RecordBatch]) -> Result<Vec<Value>, TaskError> {
    let fail = |e: String| TaskError::fatal(format!("failing rows do not convert to JSON: {e}"));
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::JsonArray>(Vec::new());
    for batch in batches {
        writer.write(batch).map_err(|e| fail(e.to_string()))?;
    }
    writer.finish().map_err(|e| fail(e.to_string()))?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&bytes).map_err(|e| fail(e.to_string()))
}

/// `"column"`, through [`crate::identifier`]'s check.
fn quote(check: &str, column: &str) -> Result<String, TaskError> {
    crate::identifier("column", column).map_err(|_| {
        TaskError::fatal(format!(
            "check `{check}`: column {column:?} is not a column name a check can use (letters, \
             digits and _ only)"
        ))
    })
}

/// A stable number for a failing row, from its JSON (FNV-1a, 63 bits): the same row failing
/// again is the same dead letter, not a second one.
fn row_line(raw: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in raw.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash & (u64::MAX >> 1)
}

/// Rows of the batch matching `predicate` (over `from`): how many, and the first `sample` of
/// them in a stable order.
async fn failing_rows(
    batch: &GateBatch,
    check: &Check,
    from: &str,
    predicate: &str,
    params: &[(String, QueryParam)],
    first: &[String],
) -> Result<(u64, Vec<Value>), TaskError> {
    let failing = batch
        .count(
            &format!("SELECT COUNT(*) AS failing FROM {from} WHERE {predicate}"),
            params,
        )
        .await?;
    let sample = if failing > 0 && check.sample > 0 {
        batch
            .rows(
                &format!(
                    "SELECT * FROM {from} WHERE {predicate}{} LIMIT {}",
                    batch.order_by(first),
                    check.sample
                ),
                params,
            )
            .await?
    } else {
        Vec::new()
    };
    Ok((failing, sample))
}

/// The mean rows of the task's last `runs` successful runs before this one (by logical date),
/// and how many there were; `None` when there is none.
async fn earlier_rows(ctx: &TaskContext, runs: u32) -> Result<Option<(f64, usize)>, TaskError> {
    #[derive(Deserialize)]
    struct RowsOf {
        rows: u64,
    }
    let store = ctx.store();
    let past = store
        .list_runs(&RunFilter {
            dag_id: Some(ctx.dag_id.clone()),
            states: vec![weir_core::RunState::Success],
            logical_date_to: Some(ctx.logical_date),
            limit: Some(runs.saturating_mul(4).saturating_add(4)),
            ..RunFilter::default()
        })
        .await
        .map_err(|e| TaskError::from(e).context("reading earlier runs"))?;
    let mut rows = Vec::new();
    for run in past {
        if run.run_id == ctx.run_id || run.logical_date >= ctx.logical_date {
            continue;
        }
        let outputs = store
            .outputs(&run.dag_id, &run.run_id, ctx.task_id.as_str())
            .await
            .map_err(|e| TaskError::from(e).context("reading earlier runs' outputs"))?;
        // Another task's output under this id (the DAG changed) is no history of this one.
        let Some(seen) = outputs
            .into_iter()
            .find(|(index, _)| *index == ctx.map_index.raw())
            .and_then(|(_, value)| serde_json::from_value::<RowsOf>(value).ok())
        else {
            continue;
        };
        rows.push(seen.rows);
        if rows.len() >= runs as usize {
            break;
        }
    }
    if rows.is_empty() {
        return Ok(None);
    }
    let mean = rows.iter().map(|&r| r as f64).sum::<f64>() / rows.len() as f64;
    Ok(Some((mean, rows.len())))
}

/// Runs one check over the batch.
async fn evaluate(
    ctx: &TaskContext,
    batch: &GateBatch,
    check: &Check,
) -> Result<CheckOutcome, TaskError> {
    let name = check.name();
    let mut outcome = CheckOutcome {
        name: name.clone(),
        rule: check.rule.clone(),
        severity: check.severity,
        passed: true,
        failing: 0,
        observed: None,
        sample: Vec::new(),
    };
    let rows_failing = match &check.rule {
        Rule::NotNull { column } => {
            let c = quote(&name, column)?;
            Some(failing_rows(batch, check, TABLE, &format!("{c} IS NULL"), &[], &[]).await)
        }
        Rule::Unique { columns } => {
            let keys = columns
                .iter()
                .map(|c| quote(&name, c))
                .collect::<Result<Vec<_>, _>>()?;
            let from = format!(
                "(SELECT *, COUNT(*) OVER (PARTITION BY {}) AS weir_key_rows FROM {TABLE}) AS keyed",
                keys.join(", ")
            );
            Some(failing_rows(batch, check, &from, "weir_key_rows > 1", &[], &keys).await)
        }
        Rule::Range { column, min, max } => {
            let c = quote(&name, column)?;
            let mut tests = Vec::new();
            let mut params = Vec::new();
            if let Some(min) = min {
                tests.push(format!("{c} < $weir_min"));
                params.push(("weir_min".to_owned(), QueryParam::Float(*min)));
            }
            if let Some(max) = max {
                tests.push(format!("{c} > $weir_max"));
                params.push(("weir_max".to_owned(), QueryParam::Float(*max)));
            }
            if tests.is_empty() {
                None
            } else {
                let predicate = format!("({})", tests.join(" OR "));
                Some(failing_rows(batch, check, TABLE, &predicate, &params, &[]).await)
            }
        }
        Rule::AcceptedValues { column, values } => {
            let c = quote(&name, column)?;
            let params: Vec<(String, QueryParam)> = values
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("weir_value_{i}"), QueryParam::Text(v.clone())))
                .collect();
            let marks: Vec<String> = params.iter().map(|(n, _)| format!("${n}")).collect();
            let predicate = format!(
                "{c} IS NOT NULL AND CAST({c} AS VARCHAR) NOT IN ({})",
                marks.join(", ")
            );
            Some(failing_rows(batch, check, TABLE, &predicate, &params, &[]).await)
        }
        Rule::Regex { column, pattern } => {
            let c = quote(&name, column)?;
            let predicate =
                format!("{c} IS NOT NULL AND NOT (CAST({c} AS VARCHAR) ~ $weir_pattern)");
            let params = [("weir_pattern".to_owned(), QueryParam::Text(pattern.clone()))];
            Some(failing_rows(batch, check, TABLE, &predicate, &params, &[]).await)
        }
        Rule::Sql { query } => {
            let query = query.trim().trim_end_matches(';').trim();
            let params = crate::sql::run_params(ctx);
            let failing = batch
                .count(
                    &format!("SELECT COUNT(*) AS failing FROM ({query}) AS failing_rows"),
                    &params,
                )
                .await;
            Some(match failing {
                Ok(0) => Ok((0, Vec::new())),
                Ok(n) if check.sample == 0 => Ok((n, Vec::new())),
                Ok(n) => batch
                    .first_rows(query, &params, check.sample)
                    .await
                    .map(|rows| (n, rows)),
                Err(e) => Err(e),
            })
        }
        Rule::RowCount { min, max } => {
            let n = batch
                .count(&format!("SELECT COUNT(*) AS n FROM {TABLE}"), &[])
                .await?;
            outcome.passed = min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m);
            outcome.observed = Some(format!("{n} rows"));
            None
        }
        Rule::RowCountChange {
            max_change_pct,
            runs,
        } => {
            let n = batch
                .count(&format!("SELECT COUNT(*) AS n FROM {TABLE}"), &[])
                .await?;
            match earlier_rows(ctx, *runs).await? {
                None => {
                    outcome.observed = Some(format!(
                        "{n} rows; no earlier successful run of this task to compare with"
                    ));
                }
                Some((mean, count)) => {
                    let change = if mean == 0.0 {
                        if n == 0 { 0.0 } else { f64::INFINITY }
                    } else {
                        (n as f64 - mean) / mean * 100.0
                    };
                    outcome.passed = change.abs() <= *max_change_pct;
                    outcome.observed = Some(format!(
                        "{n} rows against a mean of {mean:.1} over the last {count} successful \
                         run{}: {change:+.1}%, at most ±{max_change_pct}% allowed",
                        if count == 1 { "" } else { "s" }
                    ));
                }
            }
            None
        }
        Rule::Freshness { column, max_age } => {
            let c = quote(&name, column)?;
            let age = weir_core::timetable::parse_duration(max_age)
                .map_err(|e| TaskError::fatal(format!("check `{name}`: max_age: {e}")))?;
            let end = ctx.data_interval.end;
            let oldest: Timestamp = end.checked_sub(age).map_err(|e| {
                TaskError::fatal(format!(
                    "check `{name}`: max_age {max_age} before {end} is no instant: {e}"
                ))
            })?;
            let rows = batch
                .rows(
                    &format!(
                        "SELECT CAST(newest AS VARCHAR) AS newest_text, newest >= $weir_oldest AS fresh \
                         FROM (SELECT MAX({c}) AS newest FROM {TABLE}) AS latest"
                    ),
                    &[(
                        "weir_oldest".to_owned(),
                        QueryParam::TimestampMicros(oldest.as_microsecond()),
                    )],
                )
                .await?;
            let first = rows.first();
            let newest = first
                .and_then(|r| r.get("newest_text"))
                .and_then(Value::as_str);
            let fresh = first.and_then(|r| r.get("fresh")).and_then(Value::as_bool);
            outcome.passed = fresh == Some(true);
            outcome.observed = Some(match newest {
                Some(newest) => format!(
                    "newest {newest}; {max_age} before the interval's end {end} is {oldest}"
                ),
                None => "no values: the column is empty or all null".to_owned(),
            });
            None
        }
    };
    match rows_failing {
        Some(Ok((failing, sample))) => {
            outcome.passed = failing == 0;
            outcome.failing = failing;
            outcome.sample = sample;
        }
        Some(Err(e)) => {
            return Err(e.context(format!("check `{name}` ({})", check.rule.kind())));
        }
        None if !outcome.passed => outcome.failing = 1,
        None => {}
    }
    Ok(outcome)
}

/// Runs a gate's `checks` over `batch`: records every result in the store (passed or not),
/// sends the sampled failing rows of `dead_letter` checks to the dead-letter queue, logs
/// `warn` failures, and says why the batch is blocked when an `error` check failed. A check
/// naming a column the batch does not have fails the task before any check runs.
pub async fn run_gate(
    ctx: &TaskContext,
    gate: CheckGate,
    batch: &GateBatch,
    checks: &[Check],
) -> Result<GateReport, TaskError> {
    let nothing = match gate {
        CheckGate::Input => "nothing was read or published",
        CheckGate::Output => "nothing was published (the dataset keeps what it had)",
    };
    let problems: Vec<String> = checks
        .iter()
        .flat_map(|check| {
            let name = check.name();
            check
                .rule
                .columns()
                .into_iter()
                .filter_map(|c| batch.column_problem(&name, c))
                .collect::<Vec<_>>()
        })
        .collect();
    if !problems.is_empty() {
        return Err(TaskError::fatal(format!(
            "the {gate} gate of task `{}` cannot check {}: {}; {nothing}",
            ctx.task_id,
            batch.what,
            problems.join("; ")
        )));
    }
    let mut outcomes = Vec::with_capacity(checks.len());
    for check in checks {
        outcomes.push(evaluate(ctx, batch, check).await?);
    }
    let now = ctx.now();
    let mut results = Vec::with_capacity(outcomes.len());
    for o in &outcomes {
        results.push(CheckResult {
            dag_id: ctx.dag_id.to_string(),
            run_id: ctx.run_id.to_string(),
            task_id: ctx.task_id.to_string(),
            map_index: ctx.map_index.raw(),
            try_number: ctx.try_number,
            gate,
            name: o.name.clone(),
            rule: serde_json::to_value(&o.rule).map_err(|e| {
                TaskError::fatal(format!(
                    "internal error in weir-ops (this is a bug, please report it): a rule does \
                     not serialize: {e}"
                ))
            })?,
            severity: o.severity,
            passed: o.passed,
            failing: o.failing,
            observed: o.observed.clone(),
            sample: o.sample.clone(),
            checked_at: now,
        });
    }
    ctx.store()
        .record_checks(&results)
        .await
        .map_err(|e| TaskError::from(e).context("recording the check results"))?;
    let mut letters = Vec::new();
    for (check, o) in checks.iter().zip(&outcomes) {
        if !check.dead_letter || o.passed {
            continue;
        }
        for row in o.sample.iter().take(check.sample) {
            let raw = row.to_string();
            letters.push(RejectRecord {
                source: format!("check:{}:{}", batch.dataset, o.name),
                line: row_line(&raw),
                raw,
                reason: format!(
                    "check {} ({}) failed: {}",
                    o.name,
                    o.rule.kind(),
                    o.rule.condition()
                ),
                error_class: "check".to_owned(),
                dag_id: String::new(),
                run_id: String::new(),
                task_id: String::new(),
                map_index: -1,
                try_number: 0,
                rejected_at: Timestamp::UNIX_EPOCH,
            });
        }
    }
    if !letters.is_empty() {
        ctx.record_rejects(letters).await?;
    }
    let failed: Vec<&CheckOutcome> = outcomes.iter().filter(|o| !o.passed).collect();
    // The metric: checks run and failed per gate.
    tracing::info!(
        target: "weir::checks",
        gate = gate.as_str(),
        dataset = %batch.dataset,
        checks_run = outcomes.len(),
        checks_failed = failed.len(),
        "quality gate ran"
    );
    for o in failed.iter().filter(|o| o.severity == CheckSeverity::Warn) {
        tracing::warn!(
            gate = gate.as_str(),
            dataset = %batch.dataset,
            check = %o.name,
            failing = o.failing,
            "{} (severity warn: the task goes on)",
            o.describe()
        );
    }
    let errors: Vec<String> = failed
        .iter()
        .filter(|o| o.severity == CheckSeverity::Error)
        .map(|o| o.describe())
        .collect();
    let blocked = (!errors.is_empty()).then(|| {
        format!(
            "the {gate} gate of task `{}` failed on {}: {}; {nothing}: fix the data and re-run \
             the task, or give the check severity = \"warn\" to let such batches through \
             (`weir checks list --run {}` shows the failing rows)",
            ctx.task_id,
            batch.what,
            errors.join(", "),
            ctx.run_id
        )
    });
    Ok(GateReport { outcomes, blocked })
}

/// Builds a gate's table on a blocking thread (registering reads schemas and infers types).
async fn build(
    make: impl FnOnce() -> Result<GateBatch, QueryError> + Send + 'static,
) -> Result<GateBatch, TaskError> {
    match tokio::task::spawn_blocking(make).await {
        Ok(made) => Ok(made?),
        Err(e) => Err(TaskError::fatal(format!(
            "preparing the quality gate stopped: {e}"
        ))),
    }
}

/// The input gate of a load: `checks` over its source, read with `opts`, before anything is
/// read into partitions. Records every result; when an `error` check failed it keeps the
/// rows the checks could not read (the load will not read the source now) and fails the task.
pub async fn input_gate(
    ctx: &TaskContext,
    p: &WindowParams,
    opts: ReadOptions,
    checks: &[Check],
) -> Result<(), TaskError> {
    if checks.is_empty() {
        return Ok(());
    }
    let source = p.source.clone();
    let batch = build(move || GateBatch::source(&source, opts)).await?;
    let report = run_gate(ctx, CheckGate::Input, &batch, checks).await?;
    let Some(why) = report.blocked else {
        return Ok(());
    };
    let mut kept = Loaded::new(Vec::new(), 0, 0);
    // A line a replay committed is read from its payload by the load, not kept again.
    kept.rejects = batch
        .engine
        .take_rejects()
        .into_iter()
        .filter(|r| !p.replayed.contains_key(&r.line))
        .collect();
    crate::load::record_commits(ctx, &p.output, &kept).await?;
    Err(TaskError::fatal(why))
}

/// The output gate of a load: `checks` over the staged part files of `parts` (the source's
/// `schema` when it staged none), before any is published. Records every result and returns
/// why the batch is blocked, if an `error` check failed; the caller then discards what it
/// staged.
pub async fn output_gate(
    ctx: &TaskContext,
    p: &WindowParams,
    checks: &[Check],
    parts: Vec<StagedPartition>,
    schema: SchemaRef,
) -> Result<Option<String>, TaskError> {
    if checks.is_empty() {
        return Ok(None);
    }
    let output = p.output.clone();
    let batch = build(move || GateBatch::staged(&output, &parts, schema)).await?;
    let report = run_gate(ctx, CheckGate::Output, &batch, checks).await?;
    if let Some(r) = batch.engine.take_rejects().first() {
        return Err(TaskError::fatal(format!(
            "staged file {} line {} does not read back ({}); nothing was published: this is a \
             bug in weir, please report it",
            r.file.display(),
            r.line,
            r.reason
        )));
    }
    Ok(report.blocked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_config_reads_into_its_rule_and_refuses_fields_of_other_rules() {
        let check: Check = serde_json::from_value(serde_json::json!({
            "rule": "range", "column": "amount", "min": 0, "max": 10000, "severity": "warn"
        }))
        .unwrap();
        assert_eq!(
            check.rule,
            Rule::Range {
                column: "amount".into(),
                min: Some(0.0),
                max: Some(10000.0)
            }
        );
        assert_eq!(check.severity, CheckSeverity::Warn);
        assert_eq!(check.name(), "range_amount");
        let back: Check = serde_json::from_value(serde_json::to_value(&check).unwrap()).unwrap();
        assert_eq!(back, check);
        let odd = serde_json::from_value::<Check>(serde_json::json!({
            "rule": "not_null", "column": "a", "pattern": "x"
        }))
        .unwrap_err();
        assert!(
            odd.to_string().contains("`pattern` does not apply"),
            "{odd}"
        );
        let typo = serde_json::from_value::<Check>(serde_json::json!({
            "rule": "not_null", "colum": "a"
        }))
        .unwrap_err();
        assert!(typo.to_string().contains("colum"), "{typo}");
        let unknown =
            serde_json::from_value::<Check>(serde_json::json!({"rule": "nope"})).unwrap_err();
        assert!(
            unknown.to_string().contains("not a check rule"),
            "{unknown}"
        );
    }

    #[test]
    fn problems_name_the_check_and_the_gate() {
        let change = Check::new(Rule::RowCountChange {
            max_change_pct: 10.0,
            runs: 3,
        });
        assert!(change.problems(CheckGate::Output).is_empty());
        let problems = change.problems(CheckGate::Input);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("input_checks: check `row_count_change`"));
        let twice = [
            Check::new(Rule::NotNull { column: "a".into() }),
            Check::new(Rule::NotNull { column: "a".into() }),
        ];
        assert!(
            gate_problems(&twice, CheckGate::Output)
                .iter()
                .any(|p| p.contains("two checks are named `not_null_a`"))
        );
    }

    #[test]
    fn a_row_line_is_stable_and_fits_the_store() {
        assert_eq!(row_line("{\"a\":1}"), row_line("{\"a\":1}"));
        assert_ne!(row_line("{\"a\":1}"), row_line("{\"a\":2}"));
        assert!(row_line("x") <= i64::MAX as u64);
    }
}
