//! `weir datasets`: shared datasets (a folder or an S3-compatible bucket) that workers on many
//! hosts commit to, with the commit point in the store (`weir_data::shared`).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use jiff::Timestamp;
use serde_json::json;
use weir_data::{PartitionKey, ReadOptions, SharedDataset, SharedWriteOptions, open_source};
use weir_store::{DatasetCommitStore, Store};

use crate::args::DatasetsCmd;

macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, $($arg)*).map_err(crate::pipe_error)?;
    }};
}

/// Who writes, as the store keeps it: the task instance and try when a task runs the command.
fn owner() -> String {
    let var = |name| std::env::var(name).ok();
    match (var("WEIR_DAG_ID"), var("WEIR_RUN_ID"), var("WEIR_TASK_ID")) {
        (Some(dag), Some(run), Some(task)) => {
            let index = var("WEIR_MAP_INDEX")
                .filter(|i| i != "-1")
                .map(|i| format!("[{i}]"))
                .unwrap_or_default();
            let try_number = var("WEIR_TRY_NUMBER").unwrap_or_default();
            format!("{dag}/{run}/{task}{index}#{try_number}")
        }
        _ => format!(
            "weir datasets put (pid {} on {})",
            std::process::id(),
            var("HOSTNAME").unwrap_or_else(|| "this host".into())
        ),
    }
}

pub async fn datasets(cmd: DatasetsCmd, store: Arc<dyn Store>) -> Result<ExitCode> {
    let commits: Arc<dyn DatasetCommitStore> = store;
    match cmd {
        DatasetsCmd::Put {
            location,
            partition,
            files,
            append,
            if_unchanged,
            part_bytes,
            commit_lease,
            json,
        } => {
            let lease = weir_core::timetable::parse_duration(&commit_lease)
                .map_err(|e| anyhow!("--commit-lease: {e}"))?
                .unsigned_abs();
            let key = PartitionKey::parse(&partition)
                .with_context(|| format!("--partition {partition:?}"))?;
            let ds = SharedDataset::open(&location, commits)?;
            let mut readers = Vec::new();
            for file in &files {
                readers.push(open_source(file, &ReadOptions::default())?);
            }
            let schema = readers[0].schema();
            for (reader, file) in readers.iter().zip(&files).skip(1) {
                if reader.schema().fields() != schema.fields() {
                    bail!(
                        "{} has other columns than {} ({} against {}); put files of one schema into a partition",
                        file.display(),
                        files[0].display(),
                        columns(&reader.schema()),
                        columns(&schema)
                    );
                }
            }
            let opts = SharedWriteOptions {
                part_bytes,
                lease,
                owner: owner(),
                ..Default::default()
            };
            let mut writer = ds.writer(&key, schema, opts, Timestamp::now()).await?;
            if let Err(e) = fill(&mut writer, readers, &files).await {
                // Best effort: a rollback that fails here is left to `weir datasets gc`.
                let _ = writer.abort(Timestamp::now()).await;
                return Err(e);
            }
            let now = Timestamp::now();
            let head = if append {
                writer.append(now).await?
            } else if if_unchanged {
                writer.commit_if_unchanged(now).await?
            } else {
                writer.commit(now).await?
            };
            if json {
                out!(
                    "{}",
                    json!({
                        "dataset": head.dataset, "partition": head.partition,
                        "version": head.version, "commit_id": head.commit_id,
                        "rows": head.rows, "bytes": head.bytes, "files": head.files.len(),
                    })
                );
            } else {
                out!(
                    "committed {} of {}: version {}, {} rows in {} file{}",
                    head.partition,
                    head.dataset,
                    head.version,
                    head.rows,
                    head.files.len(),
                    if head.files.len() == 1 { "" } else { "s" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DatasetsCmd::List { location, json } => {
            let ds = SharedDataset::open(&location, commits)?;
            for head in ds.partitions().await? {
                if json {
                    out!(
                        "{}",
                        json!({
                            "partition": head.partition, "version": head.version,
                            "rows": head.rows, "bytes": head.bytes, "files": head.files.len(),
                            "owner": head.owner, "committed_at": head.committed_at.to_string(),
                            "commit_id": head.commit_id,
                        })
                    );
                } else {
                    out!(
                        "{:<32} v{:<4} {:>10} rows {:>12} bytes {:>4} files  {}",
                        head.partition,
                        head.version,
                        head.rows,
                        head.bytes,
                        head.files.len(),
                        head.owner
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DatasetsCmd::Verify { location, json } => {
            let ds = SharedDataset::open(&location, commits)?;
            let mut problems = 0;
            let heads = ds.partitions().await?;
            for head in &heads {
                let key = PartitionKey::parse(&head.partition)?;
                let problem = match ds.count_rows(&key).await {
                    Ok(rows) if rows == head.rows => None,
                    Ok(rows) => Some(format!(
                        "its files hold {rows} rows, its commit says {}",
                        head.rows
                    )),
                    Err(e) => Some(e.to_string()),
                };
                if json {
                    out!(
                        "{}",
                        json!({
                            "partition": head.partition, "rows": head.rows,
                            "complete": problem.is_none(), "problem": problem,
                        })
                    );
                } else if let Some(p) = &problem {
                    out!("{}: {p}", head.partition);
                }
                problems += usize::from(problem.is_some());
            }
            if problems > 0 {
                bail!(
                    "{problems} of {} committed partitions of {} are not complete",
                    heads.len(),
                    ds.url()
                );
            }
            if !json {
                out!(
                    "{} committed partitions of {}, every file present and complete",
                    heads.len(),
                    ds.url()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DatasetsCmd::Gc {
            location,
            grace,
            json,
        } => {
            let grace = weir_core::timetable::parse_duration(&grace)
                .map_err(|e| anyhow!("--grace: {e}"))?
                .unsigned_abs();
            let ds = SharedDataset::open(&location, commits)?;
            let report = ds.collect_garbage(Timestamp::now(), grace).await?;
            if json {
                out!(
                    "{}",
                    json!({
                        "rolled_back": report.rolled_back, "deleted_files": report.deleted_files,
                        "forgotten": report.forgotten,
                    })
                );
            } else {
                out!(
                    "rolled back {} commit{} whose writer's lease ran out; deleted {} file{}",
                    report.rolled_back.len(),
                    if report.rolled_back.len() == 1 {
                        ""
                    } else {
                        "s"
                    },
                    report.deleted_files,
                    if report.deleted_files == 1 { "" } else { "s" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Streams every reader into the writer; a row that does not read stops it.
async fn fill(
    writer: &mut weir_data::SharedWriter,
    readers: Vec<weir_data::SourceReader>,
    files: &[std::path::PathBuf],
) -> Result<()> {
    for (mut reader, file) in readers.into_iter().zip(files) {
        while let Some(batch) = reader.next() {
            let batch = batch?;
            if let Some(bad) = reader.rejects().first() {
                return Err(not_read(file, reader.rejects().len(), bad));
            }
            writer.write(&batch, Timestamp::now()).await?;
        }
        if let Some(bad) = reader.rejects().first() {
            return Err(not_read(file, reader.rejects().len(), bad));
        }
    }
    Ok(())
}

fn columns(schema: &arrow::datatypes::SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn not_read(file: &Path, count: usize, first: &weir_data::Reject) -> anyhow::Error {
    anyhow!(
        "{count} row{} of {} do{} not read (first at line {}: {}); nothing was committed: fix the file and put it again",
        if count == 1 { "" } else { "s" },
        file.display(),
        if count == 1 { "es" } else { "" },
        first.line,
        first.reason
    )
}
