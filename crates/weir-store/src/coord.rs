//! The store as the coordinator of many processes: task instances are claimed, leased and
//! finished through it, and the limits that must hold across processes and hosts — pool slots
//! and each DAG's `max_active_tasks` — are counted in it, in the same transaction as the claim.
//!
//! A claim gives its owner a fencing token. Every later change of the instance names the token;
//! once the lease has run out and the instance was handed to someone else, the token no longer
//! matches and the late owner changes nothing ([`StoreError::Fenced`](crate::StoreError)).

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;

use crate::{Result, TaskInstanceRecord, TiKey};

/// A claim of ready (`scheduled`) task instances by one owner (a worker, or an executor).
#[derive(Debug, Clone)]
pub struct ClaimTasks {
    /// Who claims: unique per process (host and process id, say).
    pub owner: String,
    /// Only instances routed to one of these queues; empty takes every queue.
    pub queues: Vec<String>,
    /// At most this many instances.
    pub limit: u32,
    pub now: Timestamp,
    /// Until when the claimed instances are the owner's without a renewal.
    pub lease_until: Timestamp,
}

/// The right to change one claimed task instance: its key, the try it runs and the token its
/// claim got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TiFence {
    pub key: TiKey,
    pub owner: String,
    pub token: u64,
    pub try_number: u32,
}

/// One instance a claim took: it is `running` at `fence.try_number`, leased to the owner.
#[derive(Debug, Clone)]
pub struct ClaimedTask {
    pub instance: TaskInstanceRecord,
    pub fence: TiFence,
}

/// How a claimed try ended.
#[derive(Debug, Clone)]
pub struct TryEnd {
    /// `success`, `failed`, `up_for_retry` or `skipped`.
    pub state: weir_core::TaskState,
    pub at: Timestamp,
    pub error: Option<String>,
    /// When a failed try with tries left may start again.
    pub retry_at: Option<Timestamp>,
    /// The try's result, kept when not null.
    pub output: Option<serde_json::Value>,
    /// The try's log, kept in the same commit (see [`CoordinationStore::save_try_log`]).
    pub log: Option<TryLog>,
}

/// What a [`CoordinationStore::requeue_expired`] did with instances whose owner stopped
/// renewing their lease.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Requeued {
    /// Back to `scheduled`, for any worker to claim (their try counted).
    pub scheduled: Vec<TiKey>,
    /// Failed: the lost try was their last.
    pub failed: Vec<TiKey>,
}

/// Task instances claimed, leased and finished through the store.
#[async_trait]
pub trait CoordinationStore: Send + Sync {
    /// Records a DAG's `max_active_tasks`, which every claim of its instances counts against.
    /// A DAG without a record is limited by its pools alone.
    async fn set_dag_limit(&self, dag_id: &str, max_active_tasks: u32, at: Timestamp)
    -> Result<()>;
    /// Takes up to `limit` `scheduled` instances of running runs, oldest logical date first, in
    /// one transaction that counts every pool's and DAG's running instances, so no pool holds
    /// more slots and no DAG more running instances than allowed, whichever process or host
    /// claims. Instances that do not fit stay `scheduled`. Two claimers never take one
    /// instance. Each claimed instance starts its next try (its try number goes up by one).
    async fn claim_tasks(&self, claim: &ClaimTasks) -> Result<Vec<ClaimedTask>>;
    /// Extends the leases of instances still held under these fences; returns the fences that
    /// no longer hold (taken over after their lease ran out, or finished by someone else).
    async fn renew_tasks(&self, fences: &[TiFence], lease_until: Timestamp)
    -> Result<Vec<TiFence>>;
    /// Ends a claimed try, if the fence still holds; [`StoreError::FencedTask`] otherwise, and
    /// nothing changes. The try is recorded in the run's history, the output and log kept, and
    /// the listeners of [`channel::DONE`] told — all in one commit.
    ///
    /// [`StoreError::FencedTask`]: crate::StoreError::FencedTask
    async fn finish_task(&self, fence: &TiFence, end: &TryEnd) -> Result<()>;
    /// Ends several claimed tries in one commit (a worker reports the tries that finished
    /// together at once): each as [`CoordinationStore::finish_task`] would, with its own
    /// result — a try whose fence no longer holds is refused alone. `Err` when the commit
    /// itself failed: nothing changed. (This default ends them one commit each, and stops at
    /// the first failure of the store, after committing the ones before it.)
    async fn finish_tasks(&self, done: &[(TiFence, TryEnd)]) -> Result<Vec<Result<()>>> {
        let mut results = Vec::with_capacity(done.len());
        for (fence, end) in done {
            match self.finish_task(fence, end).await {
                Err(e) if weir_core::Transient::is_transient(&e) => return Err(e),
                other => results.push(other),
            }
        }
        Ok(results)
    }
    /// Instances `running` under a lease that ended before `now` — claimed by a worker or
    /// started by an in-process executor: their owner is gone. Each
    /// goes back to `scheduled` if it has tries left (the lost try counts as one) or to
    /// `failed`; either way its token moves on, so the lost owner's late changes are refused.
    async fn requeue_expired(&self, now: Timestamp) -> Result<Requeued>;
    /// Keeps the log of a try (the worker's file, read when the try ended), so that any host
    /// can show it; a second save of the same try replaces the first.
    async fn save_try_log(&self, log: &TryLog) -> Result<()>;
    /// The kept log of try `try_number` of an instance in the run's attempt `clear_number`.
    async fn try_log(
        &self,
        key: &TiKey,
        clear_number: u32,
        try_number: u32,
    ) -> Result<Option<TryLog>>;
    /// Tells the processes listening on `channel` that there is news (work scheduled, a try
    /// finished). PostgreSQL delivers it with `NOTIFY` on commit; on SQLite, a single host, the
    /// listeners poll instead and this does nothing.
    async fn notify(&self, channel: &str) -> Result<()>;
    /// Starts listening on `channels`: [`Wakeup::wait`] returns at the next notification, or
    /// after its timeout (the fallback poll, and SQLite's only way).
    async fn listen(&self, channels: &[&str]) -> Result<Box<dyn Wakeup>>;
}

/// The log of one try, as the host that ran it wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TryLog {
    pub key: TiKey,
    pub clear_number: u32,
    pub try_number: u32,
    /// Where the try ran (the worker's owner id: host and process).
    pub host: String,
    pub text: String,
    pub saved_at: Timestamp,
}

/// Channels of [`CoordinationStore::notify`].
pub mod channel {
    /// Instances were scheduled: idle workers claim.
    pub const WORK: &str = "weir_work";
    /// A try ended: the dispatcher plans the run again.
    pub const DONE: &str = "weir_done";
}

/// A listener of [`CoordinationStore::listen`].
#[async_trait]
pub trait Wakeup: Send {
    /// Waits for a notification on one of the channels, at most `timeout`; returns whether one
    /// came (several that came meanwhile count as one).
    async fn wait(&mut self, timeout: std::time::Duration) -> Result<bool>;
}
