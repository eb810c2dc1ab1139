//! Checkpoints: a task saves its progress as it goes (`ctx.checkpoint`), and a retry or a
//! restarted process resumes from the last good one (`ctx.resume`).
//!
//! They live in the metadata store, not in files beside the dataset: the store already commits
//! durably and in order, is where the task instance's own state is, and lets `weir checkpoints`
//! list them from any host; a checkpoint is small (a position and a few counters), so the store
//! is not burdened. Each is keyed by the task instance and the run's clear number — a cleared
//! re-run never resumes an earlier attempt — and records the identity of the source its
//! position is in (path, size, modification time), a format version and a checksum, so a
//! changed source, a damaged or an old checkpoint is named and never resumed silently.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use weir_store::{CheckpointFilter, CheckpointKey, CheckpointRecord};

use crate::context::TaskContext;
use crate::definition::TaskError;

/// The format version of checkpoints this weir writes and reads.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Which version of a source a position is in: a file with another size or modification time
/// is another source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceIdentity {
    pub path: String,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub modified_ns: i128,
}

impl SourceIdentity {
    /// The identity of the file at `path` now.
    pub fn of(path: &Path) -> Result<SourceIdentity, TaskError> {
        let meta = std::fs::metadata(path).map_err(|e| {
            TaskError::fatal(format!("cannot read the source {}: {e}", path.display()))
        })?;
        let modified_ns = meta
            .modified()
            .ok()
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        Ok(SourceIdentity {
            path: std::fs::canonicalize(path)
                .unwrap_or_else(|_| path.to_owned())
                .display()
                .to_string(),
            size: meta.len(),
            modified_ns,
        })
    }
}

/// What a task does when its latest checkpoint is damaged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDamage {
    /// Resume from the newest earlier checkpoint that is good; start over if none is.
    #[default]
    Previous,
    /// Start over.
    StartOver,
}

/// What [`TaskContext::resume`] found.
#[derive(Debug, Clone)]
pub struct Resume<T> {
    /// The state to resume from, `None` to start over.
    pub state: Option<T>,
    /// The sequence number of that checkpoint (0 when starting over): the next save is `seq + 1`.
    pub seq: u64,
    /// Every checkpoint passed over and why, one sentence each.
    pub problems: Vec<String>,
}

/// The checksum a checkpoint carries: SHA-1 over its version, source, seq and state.
pub fn checkpoint_checksum(version: u32, source: &str, seq: u64, state: &str) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(format!("{version}\n{source}\n{seq}\n").as_bytes());
    sha.update(state.as_bytes());
    sha.digest().to_string()
}

/// Checks one stored checkpoint against the source as it is now: its state, or why it cannot
/// be resumed. `Err((sentence, stale))`: `stale` when the source changed (no earlier
/// checkpoint of it can help either).
pub fn verify_checkpoint<T: DeserializeOwned>(
    c: &CheckpointRecord,
    source: &SourceIdentity,
    valid: &dyn Fn(&T) -> Result<(), String>,
) -> Result<T, (String, bool)> {
    let name = format!(
        "checkpoint {} of task `{}` (run `{}`, map index {})",
        c.seq, c.key.task_id, c.key.run_id, c.key.map_index
    );
    let parsed = serde_json::from_str::<T>(&c.state);
    if checkpoint_checksum(c.version, &c.source, c.seq, &c.state) != c.checksum {
        return Err((
            match parsed {
                Err(e) => format!(
                    "{name} is damaged: it is truncated or garbled ({e}) and its checksum does not match"
                ),
                Ok(_) => format!(
                    "{name} is damaged: its checksum does not match its contents (it was changed after it was saved)"
                ),
            },
            false,
        ));
    }
    if c.version != CHECKPOINT_VERSION {
        return Err((
            format!(
                "{name} was written in checkpoint format {}, and this weir reads format {CHECKPOINT_VERSION}",
                c.version
            ),
            false,
        ));
    }
    let state = parsed.map_err(|e| {
        (
            format!("{name} does not hold the state this task saves: {e}"),
            false,
        )
    })?;
    let saved: SourceIdentity = serde_json::from_str(&c.source)
        .map_err(|e| (format!("{name} names its source unreadably: {e}"), false))?;
    if &saved != source {
        return Err((
            format!(
                "{name} is a position in {} as it was ({} bytes); the source is now {} bytes or was modified since, so the task starts over",
                saved.path, saved.size, source.size
            ),
            true,
        ));
    }
    valid(&state).map_err(|why| (format!("{name} {why}"), false))?;
    Ok(state)
}

impl TaskContext {
    /// The key this try's checkpoints are kept under.
    pub fn checkpoint_key(&self) -> CheckpointKey {
        CheckpointKey {
            dag_id: self.dag_id.to_string(),
            run_id: self.run_id.to_string(),
            task_id: self.task_id.to_string(),
            map_index: self.map_index.raw(),
            clear_number: self.clear_number,
        }
    }

    /// Saves checkpoint `seq` (1 for the first of an attempt): `state`, a position in `source`.
    /// Committed to the store when this returns.
    pub async fn checkpoint<T: Serialize>(
        &self,
        seq: u64,
        source: &SourceIdentity,
        state: &T,
    ) -> Result<(), TaskError> {
        let state = serde_json::to_string(state).map_err(|e| {
            TaskError::fatal(format!("the checkpoint state does not serialize: {e}"))
        })?;
        let source = serde_json::to_string(source).map_err(|e| {
            TaskError::fatal(format!("the source identity does not serialize: {e}"))
        })?;
        let record = CheckpointRecord {
            key: self.checkpoint_key(),
            seq,
            checksum: checkpoint_checksum(CHECKPOINT_VERSION, &source, seq, &state),
            state,
            source,
            version: CHECKPOINT_VERSION,
            created_at: self.now(),
        };
        self.store
            .save_checkpoint(&record)
            .await
            .map_err(|e| TaskError::from(e).context(format!("saving checkpoint {seq}")))
    }

    /// The state to resume from: the newest checkpoint of this attempt that is good — its
    /// checksum and format hold, its source is the same file as now, and `valid` accepts it
    /// (say, its position is inside the source). A damaged one is named (in the try's log and
    /// in `problems`) and passed over for the previous one, or for a start over (`on_damage`);
    /// a changed source always starts over.
    pub async fn resume<T: DeserializeOwned>(
        &self,
        source: &SourceIdentity,
        on_damage: OnDamage,
        valid: impl Fn(&T) -> Result<(), String>,
    ) -> Result<Resume<T>, TaskError> {
        let key = self.checkpoint_key();
        let saved = self
            .store
            .checkpoints(&CheckpointFilter::from(&key))
            .await
            .map_err(|e| TaskError::from(e).context("reading the checkpoints"))?;
        let mut problems = Vec::new();
        for c in &saved {
            match verify_checkpoint::<T>(c, source, &valid) {
                Ok(state) => {
                    tracing::info!(seq = c.seq, "resuming from checkpoint {}", c.seq);
                    return Ok(Resume {
                        state: Some(state),
                        seq: c.seq,
                        problems,
                    });
                }
                Err((why, stale)) => {
                    tracing::warn!("{why}");
                    problems.push(why);
                    if stale || on_damage == OnDamage::StartOver {
                        break;
                    }
                }
            }
        }
        if !saved.is_empty() {
            // Starting over: what the passed-over checkpoints say no longer matches what this
            // attempt will write, so none of them may be resumed later.
            tracing::warn!("no good checkpoint to resume from: starting over");
            self.clear_checkpoints(0).await?;
        }
        Ok(Resume {
            state: None,
            seq: 0,
            problems,
        })
    }

    /// Deletes this attempt's checkpoints but the `keep_last` newest.
    pub async fn clear_checkpoints(&self, keep_last: u32) -> Result<u64, TaskError> {
        self.store
            .delete_checkpoints(&CheckpointFilter::from(&self.checkpoint_key()), keep_last)
            .await
            .map_err(|e| TaskError::from(e).context("deleting the checkpoints"))
    }
}
