//! Errors of the model: a user's invalid DAG (every problem at once) and invalid ids.

use std::fmt;

/// One thing wrong with a DAG definition, naming the place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DagProblem {
    /// Two tasks share an id.
    DuplicateTask { task: String },
    /// A task names an upstream that the DAG does not have.
    UnknownUpstream { task: String, upstream: String },
    /// Tasks that depend on each other in a loop, in dependency order.
    Cycle { tasks: Vec<String> },
    /// A task's `expand` reads a task that is not one of its upstreams' outputs.
    InvalidMapping { task: String, reason: String },
    /// Any other invalid setting, e.g. zero pool slots.
    InvalidSetting {
        task: Option<String>,
        reason: String,
    },
}

impl fmt::Display for DagProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DagProblem::DuplicateTask { task } => {
                write!(f, "task id `{task}` is used more than once")
            }
            DagProblem::UnknownUpstream { task, upstream } => {
                write!(
                    f,
                    "task `{task}` depends on `{upstream}`, which is not a task of this DAG"
                )
            }
            DagProblem::Cycle { tasks } => {
                write!(
                    f,
                    "tasks form a cycle: {} -> {}",
                    tasks.join(" -> "),
                    tasks[0]
                )
            }
            DagProblem::InvalidMapping { task, reason } => {
                write!(f, "task `{task}` has an invalid expand: {reason}")
            }
            DagProblem::InvalidSetting {
                task: Some(task),
                reason,
            } => {
                write!(f, "task `{task}`: {reason}")
            }
            DagProblem::InvalidSetting { task: None, reason } => f.write_str(reason),
        }
    }
}

/// The error type of weir-core.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// An id (DAG, task, run) that does not follow the naming rules.
    #[error("invalid {kind} `{value}`: {reason}")]
    InvalidId {
        kind: &'static str,
        value: String,
        reason: &'static str,
    },
    /// A DAG definition with one or more problems; all of them are listed.
    #[error("DAG `{dag}` is invalid ({} problem{}): {}", .problems.len(), if .problems.len() == 1 { "" } else { "s" }, .problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    InvalidDag {
        dag: String,
        problems: Vec<DagProblem>,
    },
    /// A state transition that the state machine forbids; this is a bug in the caller.
    #[error("internal error (a bug in weir): illegal transition of {what} from {from} to {to}")]
    IllegalTransition {
        what: &'static str,
        from: String,
        to: String,
    },
    /// A value read from the store that is not a known state or rule.
    #[error("unknown {kind} `{value}` (the store may have been written by a newer weir)")]
    UnknownName { kind: &'static str, value: String },
    /// A schedule that cannot be parsed or evaluated.
    #[error(transparent)]
    Schedule(#[from] crate::timetable::ScheduleError),
}

/// Whether trying again can fix a failure. Errors of the other crates say so of themselves, so a
/// task's `?` turns a store hiccup or an interrupted read into a retry, and a missing column or a
/// bad param into an immediate failure: a data or user mistake does not get better on retry.
pub trait Transient: std::fmt::Display {
    /// `true` for failures of the environment (I/O interrupted, a busy database, a timeout);
    /// `false` for mistakes in the input, the config or the code.
    fn is_transient(&self) -> bool;
}

impl Transient for std::io::Error {
    fn is_transient(&self) -> bool {
        use std::io::ErrorKind::*;
        !matches!(
            self.kind(),
            NotFound
                | PermissionDenied
                | AlreadyExists
                | InvalidInput
                | InvalidData
                | IsADirectory
                | NotADirectory
                | Unsupported
                | DirectoryNotEmpty
                | ReadOnlyFilesystem
        )
    }
}
