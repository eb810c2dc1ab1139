//! `wait_for`: a sensor over another DAG's committed partitions.
//!
//! It succeeds once every wanted partition of `dataset` is committed: a manifest in the store
//! (it went through an atomic weir commit) and its folder on disk. Until then it pokes every
//! `poke_interval`, and fails once `timeout` has passed since the run started. In `reschedule`
//! mode (the default) it gives its pool slot back between pokes: the instance waits in
//! `up_for_reschedule`, in the same try, and `weir scheduler --once` returns while it waits
//! instead of blocking for the whole timeout. In `poke` mode it holds its slot and sleeps.

use std::path::PathBuf;

use async_trait::async_trait;
use jiff::SignedDuration;
use serde::{Deserialize, Serialize};
use weir_core::timetable::parse_duration;
use weir_data::PartitionKey;
use weir_runtime::{TaskContext, TaskError, TaskResult};

use crate::load::dataset_name;
use crate::{Operator, expand_path, to_output};

/// How a sensor waits between pokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorMode {
    /// Give the slot back and come back at the next poke.
    #[default]
    Reschedule,
    /// Keep the slot and sleep.
    Poke,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitFor {
    /// The dataset folder to watch (`{param:NAME}`, `{home}`, `{dag_id}` expanded).
    pub dataset: PathBuf,
    /// The partitions that must be committed (`{ds}` stands for the run's logical date in its
    /// zone); empty: `dt=` of every local day of the run's data interval.
    #[serde(default)]
    pub partitions: Vec<String>,
    #[serde(default = "default_poke")]
    pub poke_interval: String,
    #[serde(default = "default_timeout")]
    pub timeout: String,
    #[serde(default)]
    pub mode: SensorMode,
}

fn default_poke() -> String {
    "5m".to_owned()
}

fn default_timeout() -> String {
    "1h".to_owned()
}

impl WaitFor {
    pub fn new(dataset: impl Into<PathBuf>) -> Self {
        WaitFor {
            dataset: dataset.into(),
            partitions: Vec::new(),
            poke_interval: default_poke(),
            timeout: default_timeout(),
            mode: SensorMode::default(),
        }
    }

    fn durations(&self) -> Result<(SignedDuration, SignedDuration), String> {
        let poke =
            parse_duration(&self.poke_interval).map_err(|e| format!("poke_interval: {e}"))?;
        let timeout = parse_duration(&self.timeout).map_err(|e| format!("timeout: {e}"))?;
        if poke <= SignedDuration::ZERO || timeout <= SignedDuration::ZERO {
            return Err("poke_interval and timeout must be positive".to_owned());
        }
        Ok((poke, timeout))
    }

    /// The partitions this run waits for.
    fn wanted(&self, ctx: &TaskContext) -> Vec<String> {
        if !self.partitions.is_empty() {
            let ds = ctx
                .logical_date
                .to_zoned(ctx.zone.clone())
                .date()
                .to_string();
            return self
                .partitions
                .iter()
                .map(|p| p.replace("{ds}", &ds))
                .collect();
        }
        let mut days = Vec::new();
        let last = ctx
            .data_interval
            .end
            .checked_sub(SignedDuration::from_nanos(1))
            .unwrap_or(ctx.data_interval.end)
            .max(ctx.data_interval.start);
        let mut day = ctx.data_interval.start.to_zoned(ctx.zone.clone()).date();
        let end = last.to_zoned(ctx.zone.clone()).date();
        while day <= end {
            days.push(PartitionKey::date(day).to_path_string());
            match day.tomorrow() {
                Ok(next) => day = next,
                Err(_) => break,
            }
        }
        days
    }
}

#[async_trait]
impl Operator for WaitFor {
    fn name(&self) -> &'static str {
        "wait_for"
    }

    fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.dataset.as_os_str().is_empty() {
            problems.push("`dataset` is empty; name the dataset folder to watch".to_owned());
        }
        if let Err(e) = self.durations() {
            problems.push(e);
        }
        problems
    }

    async fn execute(&self, ctx: TaskContext) -> TaskResult {
        let (poke, timeout) = self.durations().map_err(TaskError::fatal)?;
        let dir = expand_path(&ctx, &self.dataset);
        let wanted = self.wanted(&ctx);
        let deadline = ctx
            .run_started_at
            .checked_add(timeout)
            .unwrap_or(ctx.run_started_at);
        loop {
            let committed: std::collections::HashSet<String> = ctx
                .store()
                .manifests(&dataset_name(&dir))
                .await?
                .into_iter()
                .map(|m| m.partition)
                .collect();
            let missing: Vec<&String> = wanted
                .iter()
                .filter(|p| !committed.contains(*p) || !dir.join(p).is_dir())
                .collect();
            if missing.is_empty() {
                tracing::info!(partitions = wanted.len(), "all partitions committed");
                return to_output(&serde_json::json!({ "dataset": dir, "partitions": wanted }));
            }
            let reason = format!(
                "waiting for {} of {} partitions of {}: {}",
                missing.len(),
                wanted.len(),
                dir.display(),
                missing
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let now = ctx.now();
            if now >= deadline {
                return Err(TaskError::fatal(format!(
                    "timed out after {timeout:#} {reason}; load them (the DAG that writes {}) and run this interval again",
                    dir.display()
                )));
            }
            let next = now.checked_add(poke).unwrap_or(deadline).min(deadline);
            match self.mode {
                SensorMode::Reschedule => return Err(TaskError::reschedule(next, reason)),
                SensorMode::Poke => {
                    tracing::info!("{reason}; poking again at {next}");
                    tokio::time::sleep(next.duration_since(now).unsigned_abs()).await;
                }
            }
        }
    }
}
