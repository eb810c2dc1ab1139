//! `weir dlq`: list, show, correct, replay and purge the dead-letter queue.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;
use weir_runtime::{Registry, TokioClock};
use weir_store::{DeadLetter, DeadLetterStatus, RejectFilter, Store};

use crate::args::DlqCmd;

macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, $($arg)*).map_err(crate::pipe_error)?;
    }};
}

pub async fn dlq(
    cmd: DlqCmd,
    store: Arc<dyn Store>,
    registry: &Registry,
    home: &Path,
) -> Result<ExitCode> {
    match cmd {
        DlqCmd::List {
            dag,
            run,
            task,
            status,
            limit,
            json,
        } => {
            let filter = RejectFilter {
                dag_id: dag,
                run_id: run,
                task_id: task,
                status: status.as_deref().map(parse_status).transpose()?,
                limit,
                ..Default::default()
            };
            let letters = store.dead_letters(&filter).await?;
            if json {
                for d in &letters {
                    out!("{}", serde_json::to_string(d)?);
                }
                return Ok(ExitCode::SUCCESS);
            }
            out!(
                "{:>6}  {:<11}  {:<7}  {:<26}  {:<24}  {}",
                "ID",
                "STATUS",
                "REPLAYS",
                "RUN",
                "TASK",
                "SOURCE:LINE  REASON"
            );
            for d in &letters {
                out!(
                    "{:>6}  {:<11}  {:<7}  {:<26}  {:<24}  {}:{}  {}",
                    d.id,
                    d.status.as_str(),
                    d.replays,
                    d.run_id,
                    task_label(d),
                    d.source,
                    d.line,
                    d.last_error.as_deref().unwrap_or(&d.reason)
                );
            }
            out!("{} dead letters", letters.len());
            Ok(ExitCode::SUCCESS)
        }
        DlqCmd::Show { id, json } => {
            let d = find(&*store, id).await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&d)?);
                return Ok(ExitCode::SUCCESS);
            }
            out!("dead letter {} ({})", d.id, d.status);
            out!("  from:        {} line {}", d.source, d.line);
            out!("  error:       {} — {}", d.error_class, d.reason);
            out!(
                "  set aside:   DAG {} run {} task {} try {}",
                d.dag_id,
                d.run_id,
                task_label(&d),
                d.try_number
            );
            out!("  first seen:  {}", d.first_seen);
            out!("  last seen:   {}", d.last_seen);
            out!("  replays:     {}", d.replays);
            if let Some(e) = &d.last_error {
                out!("  last replay: failed: {e}");
            }
            if let Some(into) = &d.replayed_into {
                out!(
                    "  replayed:    into {into} at {}",
                    d.replayed_at.map(|t| t.to_string()).unwrap_or_default()
                );
            }
            out!("  payload:     {}", d.raw);
            if let Some(c) = &d.corrected {
                out!("  corrected:   {c}");
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCmd::Edit {
            id,
            payload,
            file,
            clear,
        } => {
            if let Some(file) = file {
                let corrections = read_corrections(&file)?;
                for (id, payload) in &corrections {
                    find(&*store, *id).await?;
                    store
                        .correct_dead_letter(*id, Some(payload))
                        .await
                        .with_context(|| format!("{}: dead letter {id}", file.display()))?;
                }
                out!("corrected {} dead letters", corrections.len());
                return Ok(ExitCode::SUCCESS);
            }
            let id =
                id.ok_or_else(|| anyhow!("name the dead letter to correct, or pass --file"))?;
            let d = find(&*store, id).await?;
            if clear {
                store.correct_dead_letter(id, None).await?;
                out!("dead letter {id}: correction removed");
                return Ok(ExitCode::SUCCESS);
            }
            let payload = match payload {
                Some(p) => p,
                None => edit_in_editor(d.payload())?,
            };
            store.correct_dead_letter(id, Some(&payload)).await?;
            out!(
                "dead letter {id} corrected; `weir dlq replay --dag {}` sends it through again",
                d.dag_id
            );
            Ok(ExitCode::SUCCESS)
        }
        DlqCmd::Replay {
            dag,
            run,
            task,
            dry_run,
            limit,
            max_replays,
            json,
        } => {
            if registry.get(&dag).is_none() {
                bail!("no DAG named `{dag}`; `weir dags list` shows the DAGs this binary knows");
            }
            if max_replays == 0 {
                bail!("--max-replays 0 would quarantine every dead letter; give at least 1");
            }
            let opts = weir_ops::dlq::ReplayOptions {
                dag: Some(dag),
                run,
                task,
                limit,
                dry_run,
                max_replays,
            };
            let report = weir_ops::dlq::replay(
                store,
                &Arc::new(registry.clone()),
                home.to_path_buf(),
                Arc::new(TokioClock::system()),
                &opts,
            )
            .await
            .map_err(|e| anyhow!("{e}"))?;
            if json {
                out!("{}", serde_json::to_string(&report)?);
            } else {
                let verb = if dry_run { "would replay" } else { "replayed" };
                for (id, into) in &report.replayed {
                    out!("{id:>6}  {verb} into {into}");
                }
                for (id, why, quarantined) in &report.failed {
                    let state = if *quarantined {
                        "quarantined"
                    } else {
                        "failed"
                    };
                    out!("{id:>6}  {state}: {why}");
                }
                for (id, why) in &report.skipped {
                    out!("{id:>6}  not replayed: {why}");
                }
                out!(
                    "{} {verb}, {} failed, {} not replayed{}",
                    report.replayed.len(),
                    report.failed.len(),
                    report.skipped.len(),
                    if dry_run {
                        " (dry run: nothing changed)"
                    } else {
                        ""
                    }
                );
            }
            Ok(if report.failed.is_empty() && report.skipped.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        DlqCmd::Purge {
            older_than,
            status,
            json,
        } => {
            let age = weir_core::timetable::parse_duration(&older_than)
                .map_err(|e| anyhow!("--older-than: {e}"))?;
            let statuses = if status.is_empty() {
                vec![DeadLetterStatus::Replayed, DeadLetterStatus::Quarantined]
            } else {
                status
                    .iter()
                    .map(|s| parse_status(s))
                    .collect::<Result<Vec<_>>>()?
            };
            let before = jiff::Timestamp::now()
                .checked_sub(age)
                .map_err(|e| anyhow!("--older-than {older_than}: {e}"))?;
            let purged = store.purge_dead_letters(before, &statuses).await?;
            if json {
                out!(
                    "{}",
                    json!({"purged": purged, "before": before.to_string()})
                );
            } else {
                out!("purged {purged} dead letters last seen before {before}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn task_label(d: &DeadLetter) -> String {
    if d.map_index >= 0 {
        format!("{}[{}]", d.task_id, d.map_index)
    } else {
        d.task_id.clone()
    }
}

fn parse_status(s: &str) -> Result<DeadLetterStatus> {
    DeadLetterStatus::parse(s).ok_or_else(|| {
        anyhow!("status `{s}` is not one of pending, replaying, replayed, quarantined")
    })
}

async fn find(store: &dyn Store, id: i64) -> Result<DeadLetter> {
    store
        .dead_letter(id)
        .await?
        .ok_or_else(|| anyhow!("no dead letter {id}; `weir dlq list` shows them"))
}

/// `{"id": N, "payload": "..."}` per line; every bad line is named before anything changes.
fn read_corrections(path: &Path) -> Result<Vec<(i64, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the corrections file {}", path.display()))?;
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Result<serde_json::Value, _> = serde_json::from_str(line);
        let parsed = value.ok().and_then(|v| {
            let object = v.as_object()?;
            let id = object.get("id")?.as_i64()?;
            let payload = object.get("payload")?.as_str()?.to_owned();
            (object.len() == 2).then_some((id, payload))
        });
        match parsed {
            Some(c) => out.push(c),
            None => problems.push(format!(
                "line {} is not {{\"id\": N, \"payload\": \"...\"}}",
                n + 1
            )),
        }
    }
    if !problems.is_empty() {
        bail!(
            "{}: {}; nothing was corrected",
            path.display(),
            problems.join("; ")
        );
    }
    Ok(out)
}

/// Opens the payload in $VISUAL or $EDITOR and returns what was saved (one record).
fn edit_in_editor(payload: &str) -> Result<String> {
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .map_err(|_| {
            anyhow!("set $EDITOR (or $VISUAL), or pass the correction with --payload TEXT")
        })?;
    let path = std::env::temp_dir().join(format!("weir-dlq-{}.txt", std::process::id()));
    std::fs::write(&path, format!("{payload}\n"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("weir-dlq-edit")
        .arg(&path)
        .status()
        .with_context(|| format!("cannot start the editor `{editor}`"))?;
    let text = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    if !status.success() {
        bail!("the editor `{editor}` exited with {status}; nothing was corrected");
    }
    let text = text.context("cannot read the edited payload back")?;
    let text = text.trim_end_matches(['\r', '\n']).to_owned();
    if text == payload {
        bail!("the payload was not changed; nothing was corrected");
    }
    Ok(text)
}
