//! The runtime's clock: wall time as a value, advanced by tokio's timer so tests can pause it.

use std::fmt::Debug;

use jiff::{SignedDuration, Timestamp};

/// Where the runtime gets "now". Waiting is always done with tokio's timer, so a clock that
/// follows tokio's `Instant` makes paused-time tests (`start_paused = true`) exact.
pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> Timestamp;
}

/// Wall time at creation, advanced by tokio's monotonic clock: real time in production, virtual
/// time under `tokio::time::pause`.
#[derive(Debug, Clone)]
pub struct TokioClock {
    base: Timestamp,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock that reads the system time once, now.
    pub fn system() -> Self {
        Self::starting_at(Timestamp::now())
    }

    /// A clock that reads `base` now and advances with tokio's timer.
    pub fn starting_at(base: Timestamp) -> Self {
        TokioClock {
            base,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        let elapsed = SignedDuration::try_from(self.start.elapsed()).unwrap_or(SignedDuration::MAX);
        self.base.saturating_add(elapsed).unwrap_or(self.base)
    }
}

/// How long to wait until `at`, never negative.
pub(crate) fn until(clock: &dyn Clock, at: Timestamp) -> std::time::Duration {
    let d = at.duration_since(clock.now());
    if d <= SignedDuration::ZERO {
        std::time::Duration::ZERO
    } else {
        d.unsigned_abs()
    }
}
