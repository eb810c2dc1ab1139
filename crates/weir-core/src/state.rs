//! Task-instance and DAG-run states: closed enums with checked transitions.
//!
//! Strings appear only at the store boundary (`as_str` / `TryFrom<&str>`); everywhere else a state
//! is matched exhaustively, so adding a state is a compile error at every decision that must change.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// The state of one task instance `(dag, run, task, map_index)`, as in Airflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Created, dependencies not yet met (Airflow's "no status").
    None,
    /// Dependencies met, waiting for a pool slot.
    Scheduled,
    /// Handed to an executor, not started yet.
    Queued,
    Running,
    Success,
    Failed,
    /// Failed with tries left; runs again once its retry delay has passed.
    UpForRetry,
    /// A sensor in reschedule mode found its condition unmet: it gave its slot back and waits
    /// (`retry_at`) for its next poke, in the same try (Airflow's `up_for_reschedule`).
    UpForReschedule,
    /// Will not run because an upstream failed.
    UpstreamFailed,
    /// Will not run because its trigger rule says so, or its mapped input was empty.
    Skipped,
    /// No longer part of the DAG (a mapped index beyond a shorter input after a re-run).
    Removed,
}

impl TaskState {
    pub const ALL: [TaskState; 11] = [
        TaskState::None,
        TaskState::Scheduled,
        TaskState::Queued,
        TaskState::Running,
        TaskState::Success,
        TaskState::Failed,
        TaskState::UpForRetry,
        TaskState::UpForReschedule,
        TaskState::UpstreamFailed,
        TaskState::Skipped,
        TaskState::Removed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::None => "none",
            TaskState::Scheduled => "scheduled",
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Success => "success",
            TaskState::Failed => "failed",
            TaskState::UpForRetry => "up_for_retry",
            TaskState::UpForReschedule => "up_for_reschedule",
            TaskState::UpstreamFailed => "upstream_failed",
            TaskState::Skipped => "skipped",
            TaskState::Removed => "removed",
        }
    }

    /// A finished state: nothing more happens to the instance unless it is cleared.
    pub fn is_terminal(self) -> bool {
        match self {
            TaskState::Success
            | TaskState::Failed
            | TaskState::UpstreamFailed
            | TaskState::Skipped
            | TaskState::Removed => true,
            TaskState::None
            | TaskState::Scheduled
            | TaskState::Queued
            | TaskState::Running
            | TaskState::UpForRetry
            | TaskState::UpForReschedule => false,
        }
    }

    /// Whether the state machine allows moving from `self` to `to`.
    pub fn can_transition_to(self, to: TaskState) -> bool {
        use TaskState as S;
        match self {
            // `failed` straight from none: it could not even start (a missing pool, a bad mapped input).
            S::None => matches!(
                to,
                S::Scheduled | S::Queued | S::Skipped | S::UpstreamFailed | S::Removed | S::Failed
            ),
            S::Scheduled => matches!(
                to,
                S::Queued | S::None | S::Skipped | S::UpstreamFailed | S::Removed
            ),
            S::Queued => matches!(to, S::Running | S::Scheduled | S::None | S::Failed),
            // A running instance whose worker vanished is failed or retried by the recovery pass.
            S::Running => matches!(
                to,
                S::Success | S::Failed | S::UpForRetry | S::UpForReschedule | S::Skipped
            ),
            S::UpForRetry | S::UpForReschedule => {
                matches!(to, S::Scheduled | S::Queued | S::Failed | S::None)
            }
            // Clearing a finished instance makes it run again.
            S::Success | S::Failed | S::UpstreamFailed | S::Skipped | S::Removed => to == S::None,
        }
    }

    /// Whether an executor may claim the instance and start a try (through queued, in one step).
    pub fn is_claimable(self) -> bool {
        matches!(
            self,
            TaskState::None
                | TaskState::Scheduled
                | TaskState::Queued
                | TaskState::UpForRetry
                | TaskState::UpForReschedule
        )
    }

    /// Checks a transition, naming both ends when it is illegal.
    pub fn transition(self, to: TaskState) -> Result<TaskState, CoreError> {
        if self.can_transition_to(to) {
            Ok(to)
        } else {
            Err(CoreError::IllegalTransition {
                what: "a task instance",
                from: self.to_string(),
                to: to.to_string(),
            })
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<&str> for TaskState {
    type Error = CoreError;
    fn try_from(value: &str) -> Result<Self, CoreError> {
        TaskState::ALL
            .into_iter()
            .find(|s| s.as_str() == value)
            .ok_or_else(|| CoreError::UnknownName {
                kind: "task state",
                value: value.to_owned(),
            })
    }
}

/// The state of a DAG run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Queued,
    Running,
    Success,
    Failed,
}

impl RunState {
    pub const ALL: [RunState; 4] = [
        RunState::Queued,
        RunState::Running,
        RunState::Success,
        RunState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Success => "success",
            RunState::Failed => "failed",
        }
    }

    pub fn is_terminal(self) -> bool {
        match self {
            RunState::Success | RunState::Failed => true,
            RunState::Queued | RunState::Running => false,
        }
    }

    pub fn can_transition_to(self, to: RunState) -> bool {
        use RunState as R;
        match self {
            R::Queued => matches!(to, R::Running | R::Failed),
            R::Running => matches!(to, R::Success | R::Failed | R::Queued),
            // Re-running a finished run (backfill with reprocessing, or clear) queues it again.
            R::Success | R::Failed => to == R::Queued,
        }
    }

    pub fn transition(self, to: RunState) -> Result<RunState, CoreError> {
        if self.can_transition_to(to) {
            Ok(to)
        } else {
            Err(CoreError::IllegalTransition {
                what: "a DAG run",
                from: self.to_string(),
                to: to.to_string(),
            })
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<&str> for RunState {
    type Error = CoreError;
    fn try_from(value: &str) -> Result<Self, CoreError> {
        RunState::ALL
            .into_iter()
            .find(|s| s.as_str() == value)
            .ok_or_else(|| CoreError::UnknownName {
                kind: "run state",
                value: value.to_owned(),
            })
    }
}
