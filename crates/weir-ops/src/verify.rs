//! `verify`: reads committed partitions back and compares them with their manifests.
//!
//! For every partition the store has a manifest of (or only those an upstream loading task
//! reports, with `upstream`), the rows, bytes, file count and SHA-1 on disk must equal what the
//! commit recorded. Any difference fails the task at once, listing every mismatch: a partition
//! that changed behind weir's back does not heal on retry.

use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use weir_data::{Dataset, PartitionKey};
use weir_runtime::{TaskContext, TaskError, TaskResult};

use crate::sql::dataset_name;
use crate::{Operator, blocking, expand_path, to_output};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    /// The dataset folder (`{home}` and `{dag_id}` are expanded).
    pub dataset: PathBuf,
    /// Verify only the partitions this upstream task's output lists (`{"partitions": [{"partition":
    /// "dt=…"}, …]}`, as loading tasks return); default: every partition with a manifest.
    #[serde(default)]
    pub upstream: Option<String>,
}

/// What was checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verified {
    pub partitions: usize,
    pub rows: u64,
    /// Partitions on disk that no manifest of this home describes (written elsewhere).
    pub unrecorded: Vec<String>,
}

#[derive(Deserialize)]
struct Listed {
    partitions: Vec<ListedPartition>,
}

#[derive(Deserialize)]
struct ListedPartition {
    partition: String,
}

impl Verify {
    pub fn new(dataset: impl Into<PathBuf>) -> Self {
        Verify {
            dataset: dataset.into(),
            upstream: None,
        }
    }

    pub fn of_upstream(mut self, task: impl Into<String>) -> Self {
        self.upstream = Some(task.into());
        self
    }
}

#[async_trait]
impl Operator for Verify {
    fn name(&self) -> &'static str {
        "verify"
    }

    fn validate(&self) -> Vec<String> {
        if self.dataset.as_os_str().is_empty() {
            vec!["`dataset` is empty; name the dataset folder".to_owned()]
        } else {
            Vec::new()
        }
    }

    async fn execute(&self, ctx: TaskContext) -> TaskResult {
        let dir = expand_path(&ctx, &self.dataset);
        let mut manifests = ctx.store().manifests(&dataset_name(&dir)).await?;
        if let Some(up) = &self.upstream {
            let listed: Listed = ctx.input(up).await?;
            let wanted: Vec<String> = listed.partitions.into_iter().map(|p| p.partition).collect();
            if let Some(missing) = wanted
                .iter()
                .find(|w| !manifests.iter().any(|m| &m.partition == *w))
            {
                return Err(TaskError::fatal(format!(
                    "`{up}` reports partition {missing} of {} but no manifest records it; it was not committed through weir",
                    dir.display()
                )));
            }
            manifests.retain(|m| wanted.contains(&m.partition));
        }
        let root = dir.clone();
        let (problems, verified) = blocking(move || {
            let dataset = Dataset::open(&root)?;
            let on_disk = dataset.partitions()?;
            let mut problems = Vec::new();
            let mut rows = 0;
            for m in &manifests {
                let Some(info) = on_disk.iter().find(|p| p.partition == m.partition) else {
                    problems.push(format!("{} is missing", m.partition));
                    continue;
                };
                let mut differs = Vec::new();
                if info.rows != m.rows_out {
                    differs.push(format!("{} rows, manifest {}", info.rows, m.rows_out));
                }
                if info.bytes != m.bytes {
                    differs.push(format!("{} bytes, manifest {}", info.bytes, m.bytes));
                }
                if info.files != m.files {
                    differs.push(format!("{} files, manifest {}", info.files, m.files));
                }
                let sha = dataset.checksum(&PartitionKey::parse(&m.partition)?)?;
                if sha != m.checksum {
                    differs.push(format!("checksum {sha}, manifest {}", m.checksum));
                }
                if differs.is_empty() {
                    rows += info.rows;
                } else {
                    problems.push(format!("{}: {}", m.partition, differs.join(", ")));
                }
            }
            let unrecorded = on_disk
                .iter()
                .filter(|p| !manifests.iter().any(|m| m.partition == p.partition))
                .map(|p| p.partition.clone())
                .collect();
            Ok::<_, weir_data::DataError>((
                problems,
                Verified {
                    partitions: manifests.len(),
                    rows,
                    unrecorded,
                },
            ))
        })
        .await?;
        if !problems.is_empty() {
            return Err(TaskError::fatal(format!(
                "{} of {} partitions of {} differ from their manifests: {}; re-run the intervals that wrote them",
                problems.len(),
                verified.partitions,
                dir.display(),
                problems.join("; ")
            )));
        }
        tracing::info!(
            partitions = verified.partitions,
            rows = verified.rows,
            "verified"
        );
        to_output(&verified)
    }
}
