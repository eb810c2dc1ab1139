//! `weir checkpoints`: what long tasks saved of their progress; list, show (each checked), clear.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Result, bail};
use weir_runtime::{CHECKPOINT_VERSION, checkpoint_checksum};
use weir_store::{CheckpointFilter, CheckpointRecord, Store};

use crate::args::CheckpointsCmd;

macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, $($arg)*).map_err(crate::pipe_error)?;
    }};
}

/// Whether a checkpoint reads back as it was saved: its checksum and format.
fn health(c: &CheckpointRecord) -> &'static str {
    if checkpoint_checksum(c.version, &c.source, c.seq, &c.state) != c.checksum {
        "damaged (checksum)"
    } else if c.version != CHECKPOINT_VERSION {
        "old format"
    } else if serde_json::from_str::<serde_json::Value>(&c.state).is_err() {
        "damaged (not JSON)"
    } else {
        "ok"
    }
}

pub async fn checkpoints(cmd: CheckpointsCmd, store: Arc<dyn Store>) -> Result<ExitCode> {
    match cmd {
        CheckpointsCmd::List { dag, run, json } => {
            let list = store
                .checkpoints(&CheckpointFilter {
                    dag_id: dag,
                    run_id: run,
                    ..Default::default()
                })
                .await?;
            if json {
                for c in &list {
                    let mut v = serde_json::to_value(c)?;
                    v["health"] = health(c).into();
                    out!("{v}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            out!(
                "{:<34}  {:<34}  {:<20}  {:>5}  {:>4}  {:<20}  CREATED",
                "DAG",
                "RUN",
                "TASK",
                "CLEAR",
                "SEQ",
                "HEALTH"
            );
            for c in &list {
                let task = if c.key.map_index >= 0 {
                    format!("{}[{}]", c.key.task_id, c.key.map_index)
                } else {
                    c.key.task_id.clone()
                };
                out!(
                    "{:<34}  {:<34}  {:<20}  {:>5}  {:>4}  {:<20}  {}",
                    c.key.dag_id,
                    c.key.run_id,
                    task,
                    c.key.clear_number,
                    c.seq,
                    health(c),
                    c.created_at
                );
            }
            out!("{} checkpoints", list.len());
            Ok(ExitCode::SUCCESS)
        }
        CheckpointsCmd::Show {
            run,
            task,
            dag,
            map_index,
        } => {
            let list = store
                .checkpoints(&CheckpointFilter {
                    dag_id: dag,
                    run_id: Some(run.clone()),
                    task_id: Some(task.clone()),
                    map_index,
                    ..Default::default()
                })
                .await?;
            if list.is_empty() {
                bail!(
                    "task `{task}` of run `{run}` has no checkpoints (a finished load deletes its own); `weir checkpoints list` shows what there is"
                );
            }
            for c in &list {
                out!(
                    "{} {} {} map index {} clear {} seq {} ({}), saved {}",
                    c.key.dag_id,
                    c.key.run_id,
                    c.key.task_id,
                    c.key.map_index,
                    c.key.clear_number,
                    c.seq,
                    health(c),
                    c.created_at
                );
                out!("  source: {}", c.source);
                out!("  state:  {}", c.state);
            }
            Ok(ExitCode::SUCCESS)
        }
        CheckpointsCmd::Clear { dag, run, task } => {
            let n = store
                .delete_checkpoints(
                    &CheckpointFilter {
                        dag_id: Some(dag),
                        run_id: run,
                        task_id: task,
                        ..Default::default()
                    },
                    0,
                )
                .await?;
            out!("deleted {n} checkpoints; the next try of those tasks starts over");
            Ok(ExitCode::SUCCESS)
        }
    }
}
