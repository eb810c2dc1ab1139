//! Checkpoints: what a task saved of its progress, as the store keeps it. The runtime gives
//! them meaning (`TaskContext::checkpoint`, `TaskContext::resume`); the store keeps them
//! durably, in order, per task instance and clear number.

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;

use crate::Result;

/// The task instance (and attempt: its clear number) checkpoints belong to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct CheckpointKey {
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub map_index: i64,
    pub clear_number: u32,
}

/// One saved checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckpointRecord {
    #[serde(flatten)]
    pub key: CheckpointKey,
    /// 1 for the first; each save of an attempt is the next.
    pub seq: u64,
    /// The task's state, as JSON text.
    pub state: String,
    /// The identity of the source the state is a position in (path, size, modification time),
    /// as JSON text.
    pub source: String,
    /// The format version of `state`.
    pub version: u32,
    /// SHA-1 over version, source, seq and state: a changed byte is found.
    pub checksum: String,
    pub created_at: Timestamp,
}

/// Which checkpoints to list or delete; every set field must match.
#[derive(Debug, Clone, Default)]
pub struct CheckpointFilter {
    pub dag_id: Option<String>,
    pub run_id: Option<String>,
    pub task_id: Option<String>,
    pub map_index: Option<i64>,
    pub clear_number: Option<u32>,
}

impl From<&CheckpointKey> for CheckpointFilter {
    fn from(k: &CheckpointKey) -> Self {
        CheckpointFilter {
            dag_id: Some(k.dag_id.clone()),
            run_id: Some(k.run_id.clone()),
            task_id: Some(k.task_id.clone()),
            map_index: Some(k.map_index),
            clear_number: Some(k.clear_number),
        }
    }
}

/// Checkpoints of task instances.
#[async_trait]
pub trait CheckpointStore: Send + Sync {
    /// Saves a checkpoint (a save of the same key and seq replaces it); committed on return.
    async fn save_checkpoint(&self, checkpoint: &CheckpointRecord) -> Result<()>;
    /// Checkpoints matching the filter, newest (highest seq) first within each key.
    async fn checkpoints(&self, filter: &CheckpointFilter) -> Result<Vec<CheckpointRecord>>;
    /// Deletes the checkpoints matching the filter except the `keep_last` newest of each key;
    /// returns how many were deleted.
    async fn delete_checkpoints(&self, filter: &CheckpointFilter, keep_last: u32) -> Result<u64>;
}
