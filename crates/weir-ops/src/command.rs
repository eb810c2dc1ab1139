//! `command`: runs an external program with the run's context in its environment.
//!
//! The program gets `WEIR_DAG_ID`, `WEIR_RUN_ID`, `WEIR_TASK_ID`, `WEIR_MAP_INDEX`,
//! `WEIR_TRY_NUMBER`, `WEIR_LOGICAL_DATE`, `WEIR_DATA_INTERVAL_START`, `WEIR_DATA_INTERVAL_END`
//! (RFC 3339, UTC), `WEIR_TZ` (the run's zone), `WEIR_HOME` and one `WEIR_PARAM_<NAME>` per run
//! param. Its stdout and stderr go line by line into the try's log. Exit 0 succeeds;
//! `skip_exit_code` (default 99, as Airflow's `BashOperator`) skips; an exit code in
//! `fatal_exit_codes` fails at once; any other non-zero exit fails and is retried while the task
//! has tries left. A program that cannot be started (not found, not executable) fails at once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use weir_runtime::{TaskContext, TaskError, TaskResult};

use crate::{Operator, to_output};

/// How many of the last output lines the task's output keeps (all of them are in the log).
const TAIL_LINES: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    /// The program: a path, or a name looked up on `PATH`.
    pub program: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables (the `WEIR_*` ones are always set).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The working folder (default: the current one).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// The exit code that means "nothing to do": the task ends skipped.
    #[serde(default = "default_skip")]
    pub skip_exit_code: Option<i32>,
    /// Exit codes that mean a retry cannot help (bad input): the task fails at once.
    #[serde(default)]
    pub fatal_exit_codes: Vec<i32>,
}

fn default_skip() -> Option<i32> {
    Some(99)
}

impl Command {
    pub fn new(program: impl Into<String>) -> Self {
        Command {
            program: program.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
            skip_exit_code: default_skip(),
            fatal_exit_codes: Vec::new(),
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

    pub fn fatal_exit_codes(mut self, codes: impl IntoIterator<Item = i32>) -> Self {
        self.fatal_exit_codes.extend(codes);
        self
    }
}

/// What a finished command returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandOutput {
    pub exit_code: i32,
    /// The last lines it printed on stdout.
    pub stdout_tail: Vec<String>,
}

#[async_trait]
impl Operator for Command {
    fn name(&self) -> &'static str {
        "command"
    }

    fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.program.trim().is_empty() {
            problems.push("`program` is empty; name the program to run".to_owned());
        }
        if let Some(code) = self.skip_exit_code
            && (code == 0 || self.fatal_exit_codes.contains(&code))
        {
            problems.push(format!(
                "skip_exit_code {code} cannot also mean success or a fatal failure"
            ));
        }
        if self.fatal_exit_codes.contains(&0) {
            problems.push("fatal_exit_codes cannot contain 0 (success)".to_owned());
        }
        problems
    }

    async fn execute(&self, ctx: TaskContext) -> TaskResult {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(crate::expand_path(&ctx, cwd));
        }
        for (name, value) in context_env(&ctx) {
            cmd.env(name, value);
        }
        cmd.envs(&self.env);
        let mut child = cmd.spawn().map_err(|e| {
            TaskError::fatal(format!(
                "cannot start `{}`: {e}; check the program name and that it is executable",
                self.program
            ))
        })?;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let program = self.program.clone();
        let out_lines = async move {
            let mut tail = std::collections::VecDeque::new();
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!(stream = "stdout", "{line}");
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            tail
        };
        let err_lines = async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!(stream = "stderr", "{line}");
            }
        };
        let (tail, (), status) = tokio::join!(out_lines, err_lines, child.wait());
        let status =
            status.map_err(|e| TaskError::retryable(format!("waiting for `{program}`: {e}")))?;
        let Some(code) = status.code() else {
            return Err(TaskError::retryable(format!(
                "`{program}` was killed by a signal ({status})"
            )));
        };
        let output = CommandOutput {
            exit_code: code,
            stdout_tail: tail.into_iter().collect(),
        };
        match code {
            0 => to_output(&output),
            c if Some(c) == self.skip_exit_code => Err(TaskError::skip(format!(
                "`{program}` exited with {c}, the skip code"
            ))),
            c if self.fatal_exit_codes.contains(&c) => Err(TaskError::fatal(format!(
                "`{program}` exited with {c}, which fatal_exit_codes says a retry cannot fix"
            ))),
            c => Err(TaskError::retryable(format!(
                "`{program}` exited with {c}; its output is in the try's log"
            ))),
        }
    }
}

/// The run's context as `WEIR_*` environment variables.
pub(crate) fn context_env(ctx: &TaskContext) -> Vec<(String, String)> {
    let mut env = vec![
        ("WEIR_DAG_ID".to_owned(), ctx.dag_id.to_string()),
        ("WEIR_RUN_ID".to_owned(), ctx.run_id.to_string()),
        ("WEIR_TASK_ID".to_owned(), ctx.task_id.to_string()),
        ("WEIR_MAP_INDEX".to_owned(), ctx.map_index.raw().to_string()),
        ("WEIR_TRY_NUMBER".to_owned(), ctx.try_number.to_string()),
        ("WEIR_LOGICAL_DATE".to_owned(), ctx.logical_date.to_string()),
        (
            "WEIR_DATA_INTERVAL_START".to_owned(),
            ctx.data_interval.start.to_string(),
        ),
        (
            "WEIR_DATA_INTERVAL_END".to_owned(),
            ctx.data_interval.end.to_string(),
        ),
        (
            "WEIR_TZ".to_owned(),
            ctx.zone.iana_name().unwrap_or("UTC").to_owned(),
        ),
        ("WEIR_HOME".to_owned(), ctx.home().display().to_string()),
    ];
    for (name, value) in ctx.params.iter() {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        env.push((format!("WEIR_PARAM_{}", name.to_ascii_uppercase()), text));
    }
    env
}
