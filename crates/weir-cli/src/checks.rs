//! `weir checks list`: what the quality gates found, per run — every check, passed or failed,
//! with its failing count, what it observed, and the sampled failing rows of a failed one.

use std::process::ExitCode;

use anyhow::Result;
use weir_store::{CheckFilter, CheckResult, Store};

use crate::args::ChecksCmd;

macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, $($arg)*).map_err(crate::pipe_error)?;
    }};
}

pub async fn checks(cmd: ChecksCmd, store: &dyn Store) -> Result<ExitCode> {
    match cmd {
        ChecksCmd::List {
            dag,
            run,
            task,
            failed,
            limit,
            json,
        } => {
            let filter = CheckFilter {
                dag_id: dag,
                run_id: run,
                task_id: task,
                failed_only: failed,
                limit,
            };
            let results = store.checks(&filter).await?;
            if json {
                for r in &results {
                    out!("{}", serde_json::to_string(r)?);
                }
                return Ok(ExitCode::SUCCESS);
            }
            out!(
                "{:<26}  {:<24}  {:<6}  {:<28}  {:<8}  {:<6}  {:>7}  {}",
                "RUN",
                "TASK",
                "GATE",
                "NAME",
                "SEVERITY",
                "PASSED",
                "FAILING",
                "OBSERVED"
            );
            for r in &results {
                out!(
                    "{:<26}  {:<24}  {:<6}  {:<28}  {:<8}  {:<6}  {:>7}  {}",
                    r.run_id,
                    task_label(r),
                    r.gate.as_str(),
                    r.name,
                    r.severity.as_str(),
                    if r.passed { "yes" } else { "no" },
                    r.failing,
                    r.observed.as_deref().unwrap_or("")
                );
                if !r.passed {
                    for row in &r.sample {
                        out!("    {row}");
                    }
                }
            }
            let failed = results.iter().filter(|r| !r.passed).count();
            out!("{} checks, {failed} failed", results.len());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn task_label(r: &CheckResult) -> String {
    if r.map_index >= 0 {
        format!("{}[{}]", r.task_id, r.map_index)
    } else {
        r.task_id.clone()
    }
}
