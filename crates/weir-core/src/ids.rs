//! Validated id newtypes: a DAG, task or run id is checked once, at construction.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

fn check_name(kind: &'static str, value: &str) -> Result<(), CoreError> {
    let bad = |reason| {
        Err(CoreError::InvalidId {
            kind,
            value: value.to_owned(),
            reason,
        })
    };
    if value.is_empty() {
        return bad("it is empty");
    }
    if value.len() > 250 {
        return bad("it is longer than 250 characters");
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return bad("use only ASCII letters, digits, `_`, `-` and `.`");
    }
    Ok(())
}

macro_rules! name_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps an id.
            pub fn new(value: impl Into<String>) -> Result<Self, CoreError> {
                let value = value.into();
                check_name($kind, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = CoreError;
            fn try_from(value: String) -> Result<Self, CoreError> {
                Self::new(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = CoreError;
            fn try_from(value: &str) -> Result<Self, CoreError> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

name_id!(
    /// A DAG's id, e.g. `110_01_01_daily_batch_processing`.
    DagId,
    "DAG id"
);
name_id!(
    /// A task's id, unique within its DAG.
    TaskId,
    "task id"
);

/// A DAG run's id, unique within its DAG: `scheduled__2026-03-08T00:00:00+00:00` and the like.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

impl RunId {
    pub fn new(value: impl Into<String>) -> Result<Self, CoreError> {
        let value = value.into();
        let bad = |reason| CoreError::InvalidId {
            kind: "run id",
            value: value.clone(),
            reason,
        };
        if value.is_empty() {
            return Err(bad("it is empty"));
        }
        if value.len() > 250 {
            return Err(bad("it is longer than 250 characters"));
        }
        if value
            .chars()
            .any(|c| c.is_control() || c == '/' || c == ' ')
        {
            return Err(bad("it may not contain spaces, `/` or control characters"));
        }
        Ok(Self(value))
    }

    /// Airflow's run id for a run of the given kind at a logical date, e.g.
    /// `manual__2026-03-08T05:00:00+00:00`.
    pub fn for_logical_date(kind: RunKind, logical_date: jiff::Timestamp) -> Self {
        Self(format!(
            "{}__{}",
            kind.as_str(),
            // Fractional seconds only when there are any, as Airflow's isoformat: two manual runs of
            // an unscheduled DAG in one second are two runs.
            logical_date.strftime("%Y-%m-%dT%H:%M:%S%.f+00:00")
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for RunId {
    type Error = CoreError;
    fn try_from(value: String) -> Result<Self, CoreError> {
        Self::new(value)
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> String {
        id.0
    }
}

/// How a run came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    Scheduled,
    Manual,
    Backfill,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Scheduled => "scheduled",
            RunKind::Manual => "manual",
            RunKind::Backfill => "backfill",
        }
    }
}

impl TryFrom<&str> for RunKind {
    type Error = CoreError;
    fn try_from(value: &str) -> Result<Self, CoreError> {
        match value {
            "scheduled" => Ok(RunKind::Scheduled),
            "manual" => Ok(RunKind::Manual),
            "backfill" => Ok(RunKind::Backfill),
            other => Err(CoreError::UnknownName {
                kind: "run kind",
                value: other.to_owned(),
            }),
        }
    }
}

/// The position of a mapped task instance; `-1` (Airflow's convention) for an unmapped task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MapIndex(i64);

impl MapIndex {
    pub const UNMAPPED: MapIndex = MapIndex(-1);

    pub fn mapped(index: usize) -> Self {
        MapIndex(index as i64)
    }

    /// Reads a stored value; anything below -1 is rejected.
    pub fn from_raw(raw: i64) -> Result<Self, CoreError> {
        if raw < -1 {
            return Err(CoreError::InvalidId {
                kind: "map index",
                value: raw.to_string(),
                reason: "it must be -1 (unmapped) or a non-negative position",
            });
        }
        Ok(MapIndex(raw))
    }

    pub fn raw(self) -> i64 {
        self.0
    }

    /// The position in the mapped list, or `None` for an unmapped task.
    pub fn position(self) -> Option<usize> {
        (self.0 >= 0).then_some(self.0 as usize)
    }
}

impl fmt::Display for MapIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
