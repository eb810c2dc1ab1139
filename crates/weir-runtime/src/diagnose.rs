//! Debugging failed runs: errors grouped by class across runs, and a run's root cause — the
//! first task that failed on its own (not because an upstream did), with what its upstreams
//! handed it and how to recover.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use weir_core::{DagId, RunId, TaskState};
use weir_store::{RejectFilter, RunFilter, Store};

use crate::definition::DagDef;
use crate::{Result, RuntimeError};

/// An error message with what varies between occurrences taken out: numbers become `#`, quoted
/// or back-quoted values `…`, paths `<path>` — so the same failure on different days, files and
/// rows is one class.
pub fn error_class(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '`' | '\'' => {
                let close = c;
                let mut quoted = String::new();
                let mut closed = false;
                for d in chars.by_ref() {
                    if d == close {
                        closed = true;
                        break;
                    }
                    quoted.push(d);
                }
                out.push(close);
                out.push('…');
                if closed {
                    out.push(close);
                }
            }
            '/' if out.is_empty() || out.ends_with(' ') => {
                while chars
                    .peek()
                    .is_some_and(|d| !d.is_whitespace() && *d != ',' && *d != ';')
                {
                    chars.next();
                }
                out.push_str("<path>");
            }
            d if d.is_ascii_digit() => {
                while chars
                    .peek()
                    .is_some_and(|d| d.is_ascii_digit() || *d == '.' || *d == ':' || *d == '-')
                {
                    chars.next();
                }
                out.push('#');
            }
            other => out.push(other),
        }
    }
    out
}

/// One class of error, across runs.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorClass {
    pub class: String,
    /// The newest message of the class, whole.
    pub example: String,
    /// Failed tries of the class.
    pub tries: u64,
    pub tasks: BTreeSet<String>,
    /// The runs it happened in, newest first.
    pub runs: Vec<String>,
}

/// The errors of the failed tries of DAG `dag_id`'s last `runs` runs, grouped by
/// [`error_class`], the most frequent first.
pub async fn error_classes(
    store: &dyn Store,
    dag_id: &DagId,
    runs: u32,
) -> Result<Vec<ErrorClass>> {
    let list = store
        .list_runs(&RunFilter {
            dag_id: Some(dag_id.clone()),
            limit: Some(runs),
            ..Default::default()
        })
        .await?;
    let mut classes: BTreeMap<String, ErrorClass> = BTreeMap::new();
    for run in &list {
        for t in store.tries(dag_id, &run.run_id).await? {
            let Some(error) = t
                .error
                .filter(|_| matches!(t.state, TaskState::Failed | TaskState::UpForRetry))
            else {
                continue;
            };
            let class = error_class(&error);
            let entry = classes.entry(class.clone()).or_insert_with(|| ErrorClass {
                class,
                example: error.clone(),
                tries: 0,
                tasks: BTreeSet::new(),
                runs: Vec::new(),
            });
            entry.tries += 1;
            entry.tasks.insert(t.task_id.to_string());
            if !entry.runs.contains(&run.run_id.to_string()) {
                entry.runs.push(run.run_id.to_string());
            }
        }
    }
    let mut out: Vec<ErrorClass> = classes.into_values().collect();
    out.sort_by(|a, b| b.tries.cmp(&a.tries).then(a.class.cmp(&b.class)));
    Ok(out)
}

/// Why a run failed.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    pub dag_id: String,
    pub run_id: String,
    pub state: String,
    /// The first instance that failed on its own; `None` when nothing failed.
    pub root: Option<RootCause>,
    /// Every failed instance, and those that did not run because of them.
    pub failed: Vec<String>,
    pub upstream_failed: Vec<String>,
    /// Records and batches of the run in the dead-letter queue.
    pub dead_letters: u64,
    /// What to run to recover, in order.
    pub recovery: Vec<String>,
}

/// The root cause of a failed run.
#[derive(Debug, Clone, Serialize)]
pub struct RootCause {
    pub task_id: String,
    pub map_index: i64,
    pub try_number: u32,
    pub error: String,
    pub class: String,
    /// Its upstreams' outputs, as it read them.
    pub inputs: BTreeMap<String, serde_json::Value>,
    /// The log of its last try.
    pub log: PathBuf,
}

/// Diagnoses run `run_id` of `def`: its root cause (among the failed instances whose upstreams
/// did not fail, the one that ended first), its upstreams' outputs, the run's dead letters and
/// the recovery commands.
pub async fn diagnose(
    store: &dyn Store,
    def: &DagDef,
    run_id: &RunId,
    home: &Path,
) -> Result<Diagnosis> {
    let dag_id = def.id();
    let run = store
        .get_run(dag_id, run_id)
        .await?
        .ok_or_else(|| RuntimeError::UnknownRun {
            dag: dag_id.to_string(),
            run: run_id.to_string(),
        })?;
    let tis = store.task_instances(dag_id, run_id).await?;
    let label = |t: &str, i: i64| {
        if i >= 0 {
            format!("{t}[{i}]")
        } else {
            t.to_owned()
        }
    };
    let failed: Vec<_> = tis
        .iter()
        .filter(|t| t.state == TaskState::Failed)
        .collect();
    let upstream_failed: Vec<String> = tis
        .iter()
        .filter(|t| t.state == TaskState::UpstreamFailed)
        .map(|t| label(t.key.task_id.as_str(), t.key.map_index.raw()))
        .collect();
    let failed_tasks: BTreeSet<&str> = failed.iter().map(|t| t.key.task_id.as_str()).collect();
    let on_its_own = |t: &&weir_store::TaskInstanceRecord| {
        def.dag
            .position(t.key.task_id.as_str())
            .map(|p| {
                def.dag.tasks()[p]
                    .upstream
                    .iter()
                    .all(|u| !failed_tasks.contains(u.as_str()))
            })
            .unwrap_or(true)
    };
    let root = failed
        .iter()
        .filter(|t| on_its_own(t))
        .min_by_key(|t| t.ended_at)
        .copied();
    let root = match root {
        None => None,
        Some(t) => {
            let mut inputs = BTreeMap::new();
            if let Some(p) = def.dag.position(t.key.task_id.as_str()) {
                for u in &def.dag.tasks()[p].upstream {
                    let outputs = store.outputs(dag_id, run_id, u.as_str()).await?;
                    let value = match outputs.len() {
                        0 => serde_json::Value::Null,
                        1 if outputs[0].0 < 0 => outputs[0].1.clone(),
                        _ => {
                            serde_json::Value::Array(outputs.into_iter().map(|(_, v)| v).collect())
                        }
                    };
                    inputs.insert(u.to_string(), value);
                }
            }
            let error = t.error.clone().unwrap_or_default();
            Some(RootCause {
                task_id: t.key.task_id.to_string(),
                map_index: t.key.map_index.raw(),
                try_number: t.try_number,
                class: error_class(&error),
                error,
                inputs,
                log: crate::logs::try_log_path(
                    &home.join("logs"),
                    dag_id.as_str(),
                    run_id.as_str(),
                    t.key.task_id.as_str(),
                    t.key.map_index.raw(),
                    run.clear_number,
                    t.try_number,
                ),
            })
        }
    };
    let dead_letters = store
        .dead_letters(&RejectFilter {
            dag_id: Some(dag_id.to_string()),
            run_id: Some(run_id.to_string()),
            ..Default::default()
        })
        .await?
        .len() as u64;
    let mut recovery = Vec::new();
    if let Some(r) = &root {
        recovery.push(format!(
            "weir tasks logs {run_id} {} --try {}",
            r.task_id, r.try_number
        ));
    }
    if dead_letters > 0 {
        recovery.push(format!("weir dlq list --dag {dag_id} --run {run_id}"));
    }
    if !failed.is_empty() {
        recovery.push(format!(
            "weir tasks clear {run_id} --failed-only --downstream"
        ));
    }
    if dead_letters > 0 {
        recovery.push(format!("weir dlq replay --dag {dag_id} --run {run_id}"));
    }
    Ok(Diagnosis {
        dag_id: dag_id.to_string(),
        run_id: run_id.to_string(),
        state: run.state.to_string(),
        root,
        failed: failed
            .iter()
            .map(|t| label(t.key.task_id.as_str(), t.key.map_index.raw()))
            .collect(),
        upstream_failed,
        dead_letters,
        recovery,
    })
}
