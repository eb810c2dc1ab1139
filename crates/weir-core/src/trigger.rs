//! Airflow's trigger rules, evaluated over counts of upstream task-instance states.
//!
//! Counts, not lists: a reducer downstream of 100,000 mapped instances is decided in O(1).

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::state::TaskState;

/// When a task may run, given its direct upstreams' states (Airflow's full list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerRule {
    /// Every upstream succeeded (the default).
    #[default]
    AllSuccess,
    /// Every upstream failed or is upstream_failed.
    AllFailed,
    /// Every upstream finished, whatever its state.
    AllDone,
    /// Every upstream finished and at least one succeeded.
    AllDoneMinOneSuccess,
    /// Every upstream finished and every upstream setup task succeeded.
    AllDoneSetupSuccess,
    /// Every upstream was skipped.
    AllSkipped,
    /// At least one upstream succeeded; does not wait for the others.
    OneSuccess,
    /// At least one upstream failed; does not wait for the others.
    OneFailed,
    /// At least one upstream succeeded or failed; does not wait for the others.
    OneDone,
    /// No upstream failed (success or skipped), all finished.
    NoneFailed,
    /// No upstream failed, all finished, and at least one succeeded.
    NoneFailedMinOneSuccess,
    /// No upstream was skipped, all finished.
    NoneSkipped,
    /// Run regardless of upstreams.
    Always,
}

impl TriggerRule {
    pub const ALL: [TriggerRule; 13] = [
        TriggerRule::AllSuccess,
        TriggerRule::AllFailed,
        TriggerRule::AllDone,
        TriggerRule::AllDoneMinOneSuccess,
        TriggerRule::AllDoneSetupSuccess,
        TriggerRule::AllSkipped,
        TriggerRule::OneSuccess,
        TriggerRule::OneFailed,
        TriggerRule::OneDone,
        TriggerRule::NoneFailed,
        TriggerRule::NoneFailedMinOneSuccess,
        TriggerRule::NoneSkipped,
        TriggerRule::Always,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TriggerRule::AllSuccess => "all_success",
            TriggerRule::AllFailed => "all_failed",
            TriggerRule::AllDone => "all_done",
            TriggerRule::AllDoneMinOneSuccess => "all_done_min_one_success",
            TriggerRule::AllDoneSetupSuccess => "all_done_setup_success",
            TriggerRule::AllSkipped => "all_skipped",
            TriggerRule::OneSuccess => "one_success",
            TriggerRule::OneFailed => "one_failed",
            TriggerRule::OneDone => "one_done",
            TriggerRule::NoneFailed => "none_failed",
            TriggerRule::NoneFailedMinOneSuccess => "none_failed_min_one_success",
            TriggerRule::NoneSkipped => "none_skipped",
            TriggerRule::Always => "always",
        }
    }

    /// Decides what happens to a waiting task instance given its upstreams' states.
    pub fn evaluate(self, up: &UpstreamCounts) -> TriggerDecision {
        use TriggerDecision::{Run, Skip, UpstreamFailed, Wait};
        let failed = up.failed + up.upstream_failed;
        let all_done = up.done() == up.total;
        if up.total == 0 {
            return Run;
        }
        match self {
            TriggerRule::AllSuccess => {
                if failed > 0 {
                    UpstreamFailed
                } else if up.skipped > 0 {
                    Skip
                } else if up.success == up.total {
                    Run
                } else {
                    Wait
                }
            }
            TriggerRule::AllFailed => {
                if up.success > 0 || up.skipped > 0 {
                    Skip
                } else if all_done {
                    Run
                } else {
                    Wait
                }
            }
            TriggerRule::AllDone => {
                if all_done {
                    Run
                } else {
                    Wait
                }
            }
            TriggerRule::AllDoneMinOneSuccess => match (all_done, up.success > 0) {
                (false, _) => Wait,
                (true, true) => Run,
                (true, false) => Skip,
            },
            TriggerRule::AllDoneSetupSuccess => {
                if up.setup_unsuccessful > 0 && all_done {
                    UpstreamFailed
                } else if all_done {
                    Run
                } else {
                    Wait
                }
            }
            TriggerRule::AllSkipped => {
                if up.success > 0 || failed > 0 {
                    Skip
                } else if all_done {
                    Run
                } else {
                    Wait
                }
            }
            TriggerRule::OneSuccess => {
                if up.success > 0 {
                    Run
                } else if !all_done {
                    Wait
                } else if up.skipped == up.total {
                    Skip
                } else {
                    UpstreamFailed
                }
            }
            TriggerRule::OneFailed => {
                if failed > 0 {
                    Run
                } else if all_done {
                    Skip
                } else {
                    Wait
                }
            }
            TriggerRule::OneDone => {
                if up.success + up.failed > 0 {
                    Run
                } else if all_done {
                    Skip
                } else {
                    Wait
                }
            }
            TriggerRule::NoneFailed => {
                if failed > 0 {
                    UpstreamFailed
                } else if all_done {
                    Run
                } else {
                    Wait
                }
            }
            TriggerRule::NoneFailedMinOneSuccess => {
                if failed > 0 {
                    UpstreamFailed
                } else if !all_done {
                    Wait
                } else if up.success > 0 {
                    Run
                } else {
                    Skip
                }
            }
            TriggerRule::NoneSkipped => {
                if up.skipped > 0 {
                    Skip
                } else if all_done {
                    Run
                } else {
                    Wait
                }
            }
            TriggerRule::Always => Run,
        }
    }
}

impl TryFrom<&str> for TriggerRule {
    type Error = CoreError;
    fn try_from(value: &str) -> Result<Self, CoreError> {
        TriggerRule::ALL
            .into_iter()
            .find(|r| r.as_str() == value)
            .ok_or_else(|| CoreError::UnknownName {
                kind: "trigger rule",
                value: value.to_owned(),
            })
    }
}

/// What the scheduler does with a task instance that is waiting on its upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerDecision {
    /// Not decidable yet: some upstream is still to finish.
    Wait,
    /// Dependencies are met: schedule it.
    Run,
    /// Mark it skipped.
    Skip,
    /// Mark it upstream_failed.
    UpstreamFailed,
}

/// Counts of the direct upstream task instances by state (every map index counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpstreamCounts {
    pub total: usize,
    pub success: usize,
    pub failed: usize,
    pub upstream_failed: usize,
    pub skipped: usize,
    /// Upstream setup tasks that finished in any state but success.
    pub setup_unsuccessful: usize,
}

impl UpstreamCounts {
    /// Upstreams in a finished state.
    pub fn done(&self) -> usize {
        self.success + self.failed + self.upstream_failed + self.skipped
    }

    /// Adds one upstream instance in `state`. Removed instances do not count at all.
    pub fn add(&mut self, state: TaskState, is_setup: bool) {
        match state {
            TaskState::Removed => return,
            TaskState::Success => self.success += 1,
            TaskState::Failed => self.failed += 1,
            TaskState::UpstreamFailed => self.upstream_failed += 1,
            TaskState::Skipped => self.skipped += 1,
            TaskState::None
            | TaskState::Scheduled
            | TaskState::Queued
            | TaskState::Running
            | TaskState::UpForRetry
            | TaskState::UpForReschedule => {}
        }
        self.total += 1;
        if is_setup && state.is_terminal() && state != TaskState::Success {
            self.setup_unsuccessful += 1;
        }
    }
}
