//! Loads that checkpoint: a long load commits its output in chunks of `every` source records
//! and saves a checkpoint after each, so a retry or a restarted process resumes where the last
//! chunk ended instead of starting over — and the output holds every source row exactly once,
//! wherever the process was killed.
//!
//! How the output and the checkpoint agree: each chunk's partition commits carry a marker
//! naming the chunk (`_mark-ckpt-CHAIN-SEQ.json`), and the checkpoint after them records the
//! position, the counts and the partitions written so far. A process killed after some of a
//! chunk's commits but before its checkpoint resumes from the previous checkpoint and reads the
//! chunk again (chunks are cut at the same records every time); a partition that already holds
//! the chunk's marker is left as it is, the others get the chunk's rows. A partition is replaced
//! the first time an attempt writes it, and added to after that. A checkpoint that is damaged,
//! of another version, of a changed source or pointing past its end is named and passed over
//! (`on_damage`); starting over starts a new chain, so markers of the old one mean nothing.

use std::collections::{BTreeMap, BTreeSet};

use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weir_data::{
    CommitReport, DataError, Dataset, PartitionKey, PartitionWriter, ReadOptions, SourcePosition,
    open_source,
};
use weir_runtime::{OnDamage, SourceIdentity, TaskContext, TaskError};
use weir_store::RejectRecord;

use crate::load::{Loaded, WindowParams, dataset_name, retire_others};

/// How a load checkpoints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckpointPolicy {
    /// Source records (good and rejected) per chunk.
    pub every: u64,
    pub on_damage: OnDamage,
    /// Checkpoints kept after the load succeeds (0: all are deleted once its partitions are
    /// committed).
    pub keep: u32,
}

/// What a checkpoint of a load holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LoadState {
    /// This attempt's chain of chunks: a start over begins a new one.
    chain: String,
    /// Where the next chunk starts.
    position: SourcePosition,
    /// Rows routed into partitions so far.
    rows: u64,
    /// Rows the source rejected so far.
    rejects: u64,
    /// Good rows read so far (routed or outside the load's window).
    #[serde(default)]
    read: u64,
    /// Partitions this chain has written (replaced first, then added to).
    written: BTreeSet<String>,
    /// The latest commit of each partition written.
    commits: BTreeMap<String, CommitReport>,
}

/// Where a test kills the process (`WEIR_FAILPOINT=NAME:CHUNK`, 1-based chunk): `before_output`
/// (the chunk is read, nothing committed), `mid_output` (its first partition committed),
/// `after_output` (all committed, no checkpoint yet), `after_checkpoint`.
fn failpoint(name: &str, chunk: u64) {
    static SET: std::sync::OnceLock<Option<(String, u64)>> = std::sync::OnceLock::new();
    let set = SET.get_or_init(|| {
        let v = std::env::var("WEIR_FAILPOINT").ok()?;
        let (n, c) = v.split_once(':')?;
        Some((n.to_owned(), c.parse().ok()?))
    });
    if let Some((n, c)) = set
        && n == name
        && *c == chunk
    {
        eprintln!("failpoint {name}:{chunk}: aborting");
        std::process::abort();
    }
}

/// A partition router, as the loads build them.
pub type Route =
    Box<dyn FnMut(&RecordBatch) -> Result<Vec<(PartitionKey, RecordBatch)>, DataError> + Send>;

/// Streams the source of `p` through `route` in checkpointed chunks (see the module docs).
/// `expected` partitions are committed even when empty; with `retire`, partitions of the
/// dataset this load did not write are retired at the end (a whole-source layout). Records
/// manifests and rejects as it goes; returns the load's output.
pub async fn load_checkpointed(
    ctx: &TaskContext,
    p: &WindowParams,
    opts: ReadOptions,
    policy: CheckpointPolicy,
    route: Route,
    expected: Vec<PartitionKey>,
    retire: bool,
) -> Result<Value, TaskError> {
    if policy.every == 0 {
        return Err(TaskError::fatal(
            "checkpoint_every = 0: give the number of source records per checkpoint",
        ));
    }
    let identity = SourceIdentity::of(&p.source)?;
    let size = identity.size;
    let resume = ctx
        .resume::<LoadState>(&identity, policy.on_damage, |s| {
            if s.position.byte > size {
                Err(format!(
                    "points past the end of the source (byte {} of {size})",
                    s.position.byte
                ))
            } else {
                Ok(())
            }
        })
        .await?;
    let resumed_from = resume.state.as_ref().map(|_| resume.seq);
    let problems = resume.problems.clone();
    let state = resume.state.unwrap_or_else(|| LoadState {
        chain: format!("{}{}", ctx.now().as_microsecond(), std::process::id()),
        position: SourcePosition::default(),
        rows: 0,
        rejects: 0,
        read: 0,
        written: BTreeSet::new(),
        commits: BTreeMap::new(),
    });
    let (ctx2, p2) = (ctx.clone(), p.clone());
    let handle = tokio::runtime::Handle::current();
    let (state, chunks) = tokio::task::spawn_blocking(move || {
        run_chunks(
            &ctx2, &handle, &p2, &opts, policy, route, state, resume.seq, identity, &expected,
            retire,
        )
    })
    .await
    .map_err(|e| TaskError::fatal(format!("the checkpointed load stopped: {e}")))??;
    ctx.clear_checkpoints(policy.keep).await?;
    let commits: Vec<CommitReport> = state.commits.values().cloned().collect();
    let mut loaded = Loaded::new(commits, state.rows, state.rejects);
    loaded.dataset = Some(p.output.clone());
    let mut out = loaded.to_json();
    out["checkpoints"] = json!({
        "every": policy.every,
        "chunks": chunks,
        "resumed_from": resumed_from,
        "passed_over": problems,
    });
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn run_chunks(
    ctx: &TaskContext,
    handle: &tokio::runtime::Handle,
    p: &WindowParams,
    opts: &ReadOptions,
    policy: CheckpointPolicy,
    mut route: Route,
    mut state: LoadState,
    mut seq: u64,
    identity: SourceIdentity,
    expected: &[PartitionKey],
    retire: bool,
) -> Result<(LoadState, u64), TaskError> {
    // Batches no bigger than a chunk, so a chunk is about `every` records, not a whole batch.
    let opts = ReadOptions {
        batch_size: opts.batch_size.min(policy.every as usize).max(1),
        ..opts.clone()
    };
    let mut reader = open_source(&p.source, &opts)?;
    if reader.position().is_none() {
        return Err(TaskError::fatal(format!(
            "{} is Parquet; checkpointed loads read CSV or JSON lines (drop checkpoint_every, or convert the source)",
            p.source.display()
        )));
    }
    if state.position != SourcePosition::default() {
        reader.seek(state.position)?;
    }
    let dataset = Dataset::open(&p.output)?;
    let mut chunks = 0u64;
    loop {
        let next = seq + 1;
        let marker = format!(
            "{}ckpt-{}-{next}.json",
            weir_data::MARKER_PREFIX,
            state.chain
        );
        let start = reader.position().unwrap_or_default().record;
        let read_before = reader.rows_emitted();
        let mut writers: BTreeMap<PartitionKey, Option<PartitionWriter>> = BTreeMap::new();
        let mut rows = 0u64;
        let mut done = false;
        while reader.position().unwrap_or_default().record - start < policy.every {
            let Some(batch) = reader.next() else {
                done = true;
                break;
            };
            let batch = batch?;
            // A line a replay committed is read from its payload, not a reject.
            if p.reject_policy.fail_fast
                && let Some(first) = reader
                    .rejects()
                    .iter()
                    .find(|r| !p.replayed.contains_key(&r.line))
            {
                return Err(TaskError::fatal(format!(
                    "source {} has a row it cannot read (line {}: {}) and on_reject is fail_fast; the chunks before it stay committed",
                    p.source.display(),
                    first.line,
                    first.reason
                )));
            }
            write_parts(
                &dataset,
                p,
                &state,
                &marker,
                &mut writers,
                &mut rows,
                route(&batch)?,
            )?;
        }
        let substituted = match crate::load::replayed_rows(p, &reader)? {
            Some((batch, lines)) => {
                write_parts(
                    &dataset,
                    p,
                    &state,
                    &marker,
                    &mut writers,
                    &mut rows,
                    route(&batch)?,
                )?;
                lines
            }
            None => Vec::new(),
        };
        let mut rejects = reader.take_rejects();
        // A replayed line whose payload no longer reads stays a reject.
        rejects.retain(|r| !substituted.contains(&r.line));
        let read = reader.rows_emitted() - read_before + substituted.len() as u64;
        failpoint("before_output", next);
        let mut first = true;
        for (key, writer) in writers {
            let path = key.to_path_string();
            let Some(mut writer) = writer else {
                // Committed with this chunk's marker before a crash: record what it holds (the
                // manifest may be what the crash cut off).
                let commit = dataset.commit_report(&key)?;
                handle.block_on(record_manifest(ctx, &p.output, &commit))?;
                state.commits.insert(path.clone(), commit);
                state.written.insert(path);
                continue;
            };
            {
                let body = serde_json::to_vec(&json!({"chain": state.chain, "seq": next}))
                    .map_err(|e| TaskError::fatal(e.to_string()))?;
                writer.add_marker(&marker, &body)?;
                let commit = writer.commit()?;
                tracing::info!(partition = %path, chunk = next, rows = commit.rows, "chunk partition committed");
                handle.block_on(record_manifest(ctx, &p.output, &commit))?;
                state.commits.insert(path.clone(), commit);
                if first {
                    failpoint("mid_output", next);
                    first = false;
                }
            }
            state.written.insert(path);
        }
        if !rejects.is_empty() {
            handle.block_on(
                ctx.record_rejects(
                    rejects
                        .iter()
                        .map(|r| RejectRecord {
                            source: dataset_name(&r.file),
                            line: r.line,
                            raw: r.raw.clone(),
                            reason: r.reason.clone(),
                            error_class: "parse".to_owned(),
                            dag_id: String::new(),
                            run_id: String::new(),
                            task_id: String::new(),
                            map_index: -1,
                            try_number: 0,
                            rejected_at: jiff::Timestamp::UNIX_EPOCH,
                        })
                        .collect(),
                ),
            )?;
        }
        let reopened: Vec<u64> = rejects
            .iter()
            .filter(|r| p.replayed.contains_key(&r.line))
            .map(|r| r.line)
            .collect();
        if !reopened.is_empty() {
            handle
                .block_on(
                    ctx.store()
                        .reopen_dead_letters(&dataset_name(&p.source), &reopened),
                )
                .map_err(|e| TaskError::from(e).context("reopening dead letters"))?;
        }
        failpoint("after_output", next);
        state.rows += rows;
        state.read += read;
        state.rejects += rejects.len() as u64;
        state.position = reader.position().unwrap_or_default();
        seq = next;
        chunks += 1;
        handle.block_on(ctx.checkpoint(seq, &identity, &state))?;
        tracing::info!(
            seq,
            rows = state.rows,
            byte = state.position.byte,
            "checkpoint saved"
        );
        failpoint("after_checkpoint", next);
        // Keep the last two: one to fall back to if the newest is damaged.
        handle.block_on(ctx.clear_checkpoints(2))?;
        if done {
            break;
        }
    }
    if let Some(max) = p.reject_policy.max_ratio {
        let ratio = state.rejects as f64 / (state.read + state.rejects).max(1) as f64;
        if ratio > max {
            return Err(TaskError::fatal(format!(
                "source {}: {} of {} rows ({:.2}%) were rejected, above max_reject_ratio {max}; a checkpointed load commits as it goes, so its {chunks} chunks stay committed: fix the source and clear the task",
                p.source.display(),
                state.rejects,
                state.read + state.rejects,
                ratio * 100.0
            )));
        }
    }
    for key in expected {
        let path = key.to_path_string();
        if !state.written.contains(&path) {
            let commit = dataset
                .writer(key, reader.schema(), p.write.clone())?
                .commit()?;
            handle.block_on(record_manifest(ctx, &p.output, &commit))?;
            state.commits.insert(path.clone(), commit);
            state.written.insert(path);
        }
    }
    if retire {
        let keep: Vec<String> = state.written.iter().cloned().collect();
        retire_others(&p.output, &keep)?;
    }
    Ok((state, chunks))
}

/// Writes a chunk's routed parts: a partition already holding this chunk's marker (committed
/// before a crash) is skipped; one this chain has not written yet is replaced, else added to.
#[allow(clippy::too_many_arguments)]
fn write_parts(
    dataset: &Dataset,
    p: &WindowParams,
    state: &LoadState,
    marker: &str,
    writers: &mut BTreeMap<PartitionKey, Option<PartitionWriter>>,
    rows: &mut u64,
    parts: Vec<(PartitionKey, RecordBatch)>,
) -> Result<(), DataError> {
    for (key, part) in parts {
        if part.num_rows() == 0 {
            continue;
        }
        *rows += part.num_rows() as u64;
        let writer = match writers.entry(key) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let landed = dataset.partition_path(e.key()).join(marker).is_file();
                let w = if landed {
                    None
                } else if state.written.contains(&e.key().to_path_string()) {
                    Some(dataset.appender(e.key(), part.schema(), p.write.clone())?)
                } else {
                    Some(dataset.writer(e.key(), part.schema(), p.write.clone())?)
                };
                e.insert(w)
            }
        };
        if let Some(w) = writer {
            w.write(&part)?;
        }
    }
    Ok(())
}

async fn record_manifest(
    ctx: &TaskContext,
    dataset: &std::path::Path,
    c: &CommitReport,
) -> Result<(), TaskError> {
    ctx.record_manifest(crate::load::manifest_of(dataset, c))
        .await
}
