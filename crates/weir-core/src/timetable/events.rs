//! A timetable of explicit instants, for irregular but known schedules (Airflow's
//! `EventsTimetable`, `airflow/timetables/events.py`). Each run is exact: its interval starts and
//! ends at the event.

use jiff::Timestamp;

use super::{DagRunInfo, DataInterval, TimeRestriction, Timetable};

/// Runs at listed instants (sorted and deduplicated on construction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsTimetable {
    events: Vec<Timestamp>,
    restrict_to_events: bool,
}

impl EventsTimetable {
    /// With `restrict_to_events`, a manual run covers the most recent event at or before it
    /// (or the first event); without, it covers its own instant.
    pub fn new(mut events: Vec<Timestamp>, restrict_to_events: bool) -> EventsTimetable {
        events.sort_unstable();
        events.dedup();
        EventsTimetable {
            events,
            restrict_to_events,
        }
    }

    pub fn events(&self) -> &[Timestamp] {
        &self.events
    }
}

impl Timetable for EventsTimetable {
    fn next_dagrun_info(
        &self,
        last_automated: Option<&DataInterval>,
        restriction: &TimeRestriction,
        now: Timestamp,
    ) -> Option<DagRunInfo> {
        let mut earliest = restriction.earliest;
        if !restriction.catchup && earliest.is_none_or(|e| now > e) {
            earliest = Some(now);
        }
        let next = self.events.iter().copied().find(|&event| {
            earliest.is_none_or(|e| event >= e) && last_automated.is_none_or(|l| event > l.end)
        })?;
        if restriction.latest.is_some_and(|latest| next > latest) {
            return None;
        }
        Some(DagRunInfo::exact(next))
    }

    fn infer_manual_data_interval(&self, run_after: Timestamp) -> DataInterval {
        let (Some(&first), true) = (self.events.first(), self.restrict_to_events) else {
            return DataInterval::exact(run_after);
        };
        if run_after < first {
            return DataInterval::exact(first);
        }
        let recent = self
            .events
            .iter()
            .rev()
            .copied()
            .find(|&e| e <= run_after)
            .unwrap_or(first);
        DataInterval::exact(recent)
    }

    fn summary(&self) -> String {
        format!("{} events", self.events.len())
    }
}
