//! `plan_ranges`: equal-count ranges of an integer key, planned from the source's real
//! distribution — the list a mapped task expands over, one instance per range.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use weir_data::partitioners::{
    DEFAULT_SAMPLE_CAPACITY, RangeCounter, RangePlan, RangePlanBuilder, range_key,
};
use weir_data::{DataError, ReadOptions, open_source};
use weir_runtime::{TaskContext, TaskResult};

use crate::load::{SourceOverrides, window_params_with};
use crate::{Operator, blocking, to_output};

/// The plan file written next to the partitions.
pub const PLAN_FILE: &str = "_range_plan.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRanges {
    /// The integer column the ranges are cut on.
    pub key: String,
    /// How many ranges.
    pub partitions: usize,
    /// Keys kept in the reservoir the boundaries come from (8 bytes each); a bigger source is
    /// planned from the sample and then recounted exactly.
    #[serde(default = "default_sample")]
    pub sample: usize,
    /// The source file; default `--conf source`, else the sample orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<PathBuf>,
    /// Where `_range_plan.json` goes (the dataset the ranges will be written to); default
    /// `--conf output`, else `HOME/data/DAG_ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<PathBuf>,
}

fn default_sample() -> usize {
    DEFAULT_SAMPLE_CAPACITY
}

/// One range of a plan, as a mapped instance receives it (`{{ item.lo }}` in a DAG file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeItem {
    pub index: usize,
    /// Ranges in the plan.
    pub count: usize,
    /// Inclusive bounds.
    pub lo: i64,
    pub hi: i64,
    /// Rows the plan counted in the range (exact).
    pub rows: u64,
    /// The boundaries came from a sample (the counts were then recounted exactly).
    pub sampled: bool,
    /// The `range=` value of its partition, zero-padded (`"03"`).
    pub range: String,
}

/// Plans `partitions` equal-count ranges of `key` over the source at `source`: one streaming
/// pass keeps the count, min, max and a reservoir of at most `sample` keys; when the keys did
/// not all fit, a second pass counts every range exactly. Returns the plan and whether it was
/// sampled.
pub fn plan_ranges(
    source: &Path,
    read: &ReadOptions,
    key: &str,
    partitions: usize,
    sample: usize,
) -> Result<(RangePlan, bool), DataError> {
    let mut builder = RangePlanBuilder::new(partitions, sample)?;
    for batch in open_source(source, read)? {
        builder.add_batch(&batch?, key)?;
    }
    let sampled = !builder.is_exact();
    let mut plan = builder.finish();
    if sampled {
        let mut counter = RangeCounter::new(&plan);
        for batch in open_source(source, read)? {
            counter.add_batch(&batch?, key)?;
        }
        plan = counter.finish();
    }
    Ok((plan, sampled))
}

/// Writes `plan` to `dir/_range_plan.json` (a temporary name, then renamed).
fn write_plan(dir: &Path, plan: &RangePlan) -> Result<(), DataError> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io("create", dir, e))?;
    let path = dir.join(PLAN_FILE);
    let tmp = dir.join(format!(".{PLAN_FILE}.tmp"));
    std::fs::write(&tmp, plan.to_json()).map_err(|e| DataError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| DataError::io("write", &path, e))
}

#[async_trait]
impl Operator for PlanRanges {
    fn name(&self) -> &'static str {
        "plan_ranges"
    }

    fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.key.is_empty() {
            problems.push("range planning needs an integer `key` column".to_owned());
        }
        if self.partitions == 0 || self.partitions > 4096 {
            problems.push(format!("partitions = {}: use 1 to 4096", self.partitions));
        }
        if self.sample == 0 {
            problems.push("sample must be at least 1".to_owned());
        }
        problems
    }

    async fn execute(&self, ctx: TaskContext) -> TaskResult {
        let with = SourceOverrides {
            source: self.source.clone(),
            output: self.output.clone(),
            ..SourceOverrides::default()
        };
        let p = window_params_with(&ctx, &with).await?;
        let (key, partitions, sample) = (self.key.clone(), self.partitions, self.sample);
        let (plan, sampled) = blocking(move || {
            let (plan, sampled) = plan_ranges(&p.source, &p.read, &key, partitions, sample)?;
            write_plan(&p.output, &plan)?;
            Ok((plan, sampled))
        })
        .await?;
        let count = plan.len();
        let items: Vec<RangeItem> = plan
            .ranges()
            .iter()
            .enumerate()
            .map(|(index, r)| RangeItem {
                index,
                count,
                lo: r.lo,
                hi: r.hi,
                rows: r.rows,
                sampled,
                range: range_key(index, count)
                    .get("range")
                    .unwrap_or_default()
                    .to_owned(),
            })
            .collect();
        to_output(&items)
    }
}
