//! The weir model: DAGs, ids, states, trigger rules, retry policy and timetables.
//!
//! Everything here is pure: no IO, no async, and no clock. Time is always an argument, so the
//! scheduling logic can be tested against any instant, including both DST transitions of a zone.

pub mod dag;
pub mod error;
pub mod ids;
pub mod params;
pub mod retry;
pub mod state;
pub mod timetable;
pub mod trigger;

pub use dag::{Dag, DagBuilder, MapSource, TaskSpec};
pub use error::Transient;
pub use error::{CoreError, DagProblem};
pub use ids::{DagId, MapIndex, RunId, TaskId};
pub use params::{ParamError, ParamKind, ParamSpec, ParamSpecs};
pub use retry::RetryPolicy;
pub use state::{RunState, TaskState};
pub use timetable::{DagRunInfo, DataInterval, TimeRestriction, Timetable};
pub use trigger::{TriggerRule, UpstreamCounts};
