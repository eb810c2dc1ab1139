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

use crate::load::dataset_name;
use crate::{Operator, blocking, expand_path, to_output};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    /// The dataset folder (`{home}` and `{dag_id}` are expanded); default: the `dataset` the
    /// `upstream` task's output names (loading tasks name where they wrote).
    #[serde(default)]
    pub dataset: Option<PathBuf>,
    /// Verify only the partitions this upstream task's output lists (`{"partitions": [{"partition":
    /// "dt=…"}, …]}`, as loading tasks return); default: every partition with a manifest.
    #[serde(default)]
    pub upstream: Option<String>,
}

/// What was checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verified {
    pub partitions: Vec<VerifiedPartition>,
    pub rows: u64,
    /// Partitions on disk that no manifest of this home describes (written elsewhere).
    pub unrecorded: Vec<String>,
}

/// One partition that matched its manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifiedPartition {
    pub partition: String,
    pub rows: u64,
    pub bytes: u64,
}

#[derive(Deserialize)]
struct Listed {
    #[serde(default)]
    dataset: Option<PathBuf>,
    partitions: Vec<ListedPartition>,
}

#[derive(Deserialize)]
struct ListedPartition {
    partition: String,
}

impl Verify {
    /// Every partition of `dataset` with a manifest.
    pub fn new(dataset: impl Into<PathBuf>) -> Self {
        Verify {
            dataset: Some(dataset.into()),
            upstream: None,
        }
    }

    /// The partitions the loading task `task` reports, in the dataset it names.
    pub fn of_upstream(task: impl Into<String>) -> Self {
        Verify {
            dataset: None,
            upstream: Some(task.into()),
        }
    }
}

#[async_trait]
impl Operator for Verify {
    fn name(&self) -> &'static str {
        "verify"
    }

    fn validate(&self) -> Vec<String> {
        match (&self.dataset, &self.upstream) {
            (None, None) => vec![
                "name the `dataset` to verify, or the `upstream` task that loaded it".to_owned(),
            ],
            (Some(d), _) if d.as_os_str().is_empty() => {
                vec!["`dataset` is empty; name the dataset folder".to_owned()]
            }
            _ => Vec::new(),
        }
    }

    async fn execute(&self, ctx: TaskContext) -> TaskResult {
        let listed: Option<Listed> = match &self.upstream {
            Some(up) => Some(ctx.input(up).await?),
            None => None,
        };
        let dir = match (
            &self.dataset,
            listed.as_ref().and_then(|l| l.dataset.clone()),
        ) {
            (Some(d), _) => expand_path(&ctx, d),
            (None, Some(d)) => d,
            (None, None) => {
                return Err(TaskError::fatal(format!(
                    "`{}` does not say which dataset it wrote; give verify a `dataset`",
                    self.upstream.as_deref().unwrap_or_default()
                )));
            }
        };
        let mut manifests = ctx.store().manifests(&dataset_name(&dir)).await?;
        let recorded: std::collections::HashSet<String> =
            manifests.iter().map(|m| m.partition.clone()).collect();
        if let (Some(up), Some(listed)) = (&self.upstream, listed) {
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
            let mut verified = Vec::new();
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
                    verified.push(VerifiedPartition {
                        partition: m.partition.clone(),
                        rows: info.rows,
                        bytes: info.bytes,
                    });
                } else {
                    problems.push(format!("{}: {}", m.partition, differs.join(", ")));
                }
            }
            let unrecorded = on_disk
                .iter()
                .filter(|p| !recorded.contains(&p.partition))
                .map(|p| p.partition.clone())
                .collect();
            Ok::<_, weir_data::DataError>((
                problems,
                Verified {
                    rows: verified.iter().map(|p| p.rows).sum(),
                    partitions: verified,
                    unrecorded,
                },
            ))
        })
        .await?;
        if !problems.is_empty() {
            return Err(TaskError::fatal(format!(
                "{} of {} partitions of {} differ from their manifests: {}; re-run the intervals that wrote them",
                problems.len(),
                problems.len() + verified.partitions.len(),
                dir.display(),
                problems.join("; ")
            )));
        }
        tracing::info!(
            partitions = verified.partitions.len(),
            rows = verified.rows,
            "verified"
        );
        to_output(&verified)
    }
}
