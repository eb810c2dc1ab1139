//! The DAG model: tasks, their dependencies and settings, validated all at once.
//!
//! This is the pure description. What a task *does* is attached by weir-runtime; the model here is
//! what the scheduler reasons about and what the store records.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use crate::error::{CoreError, DagProblem};
use crate::ids::{DagId, TaskId};
use crate::params::ParamSpecs;
use crate::retry::RetryPolicy;
use crate::timetable::Timetable;
use crate::trigger::TriggerRule;

/// The pool every task uses unless it names another.
pub const DEFAULT_POOL: &str = "default_pool";

/// Where a mapped task's list of inputs comes from (Airflow's `expand`).
#[derive(Debug, Clone, PartialEq)]
pub enum MapSource {
    /// The JSON-array output of an upstream task: one instance per element.
    Upstream(TaskId),
    /// A literal list fixed in the DAG.
    Literal(Vec<serde_json::Value>),
}

/// One task of a DAG.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    pub id: TaskId,
    pub upstream: Vec<TaskId>,
    pub trigger_rule: TriggerRule,
    pub retry: RetryPolicy,
    pub pool: String,
    pub pool_slots: u32,
    pub execution_timeout: Option<SignedDuration>,
    /// `Some` for a mapped task: one instance per input element.
    pub expand: Option<MapSource>,
    /// Fixed arguments given to every instance (Airflow's `partial`), a JSON object.
    pub partial: serde_json::Value,
    /// A setup task (for `all_done_setup_success`).
    pub is_setup: bool,
    pub doc: String,
}

impl TaskSpec {
    pub fn new(id: TaskId) -> Self {
        TaskSpec {
            id,
            upstream: Vec::new(),
            trigger_rule: TriggerRule::AllSuccess,
            retry: RetryPolicy::default(),
            pool: DEFAULT_POOL.to_owned(),
            pool_slots: 1,
            execution_timeout: None,
            expand: None,
            partial: serde_json::Value::Object(Default::default()),
            is_setup: false,
            doc: String::new(),
        }
    }

    pub fn is_mapped(&self) -> bool {
        self.expand.is_some()
    }
}

/// A validated DAG: tasks in a topological order, plus its schedule and run limits.
#[derive(Debug, Clone)]
pub struct Dag {
    pub id: DagId,
    pub description: String,
    pub tags: Vec<String>,
    /// `None`: runs only when triggered.
    pub schedule: Option<Arc<dyn Timetable>>,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    pub catchup: bool,
    pub max_active_runs: u32,
    pub max_active_tasks: u32,
    /// Upper bound on the instances of one mapped task (Airflow's fixed 1,024, configurable here).
    pub max_map_length: usize,
    /// Extra time after an interval's end before its run is due, for late data.
    pub grace: SignedDuration,
    /// The params a run's conf may set, with their types, defaults and docs.
    pub params: ParamSpecs,
    tasks: Vec<TaskSpec>,
    index: HashMap<TaskId, usize>,
    downstream: Vec<Vec<usize>>,
}

impl Dag {
    pub fn builder(id: DagId) -> DagBuilder {
        DagBuilder {
            id,
            description: String::new(),
            tags: Vec::new(),
            schedule: None,
            start_date: None,
            end_date: None,
            catchup: false,
            max_active_runs: 16,
            max_active_tasks: 16,
            max_map_length: 1_000_000,
            grace: SignedDuration::ZERO,
            params: ParamSpecs::new(),
            tasks: Vec::new(),
        }
    }

    /// Tasks in a topological order: every task comes after all its upstreams.
    pub fn tasks(&self) -> &[TaskSpec] {
        &self.tasks
    }

    pub fn task(&self, id: &str) -> Option<&TaskSpec> {
        self.index.get(id).map(|&i| &self.tasks[i])
    }

    /// Position of a task in [`Dag::tasks`].
    pub fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// Positions of the direct downstreams of the task at `position`.
    pub fn downstream_of(&self, position: usize) -> &[usize] {
        &self.downstream[position]
    }
}

/// Collects a DAG's settings and tasks; [`DagBuilder::build`] validates everything at once.
#[derive(Debug)]
pub struct DagBuilder {
    pub id: DagId,
    pub description: String,
    pub tags: Vec<String>,
    pub schedule: Option<Arc<dyn Timetable>>,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    pub catchup: bool,
    pub max_active_runs: u32,
    pub max_active_tasks: u32,
    pub max_map_length: usize,
    pub grace: SignedDuration,
    pub params: ParamSpecs,
    pub tasks: Vec<TaskSpec>,
}

impl DagBuilder {
    pub fn task(mut self, task: TaskSpec) -> Self {
        self.tasks.push(task);
        self
    }

    /// Validates the DAG, reporting every duplicate id, unknown upstream, invalid mapping,
    /// invalid setting and cycle in one error.
    pub fn build(self) -> Result<Dag, CoreError> {
        let mut problems = Vec::new();
        let mut index = HashMap::new();
        for (i, task) in self.tasks.iter().enumerate() {
            if index.insert(task.id.clone(), i).is_some() {
                problems.push(DagProblem::DuplicateTask {
                    task: task.id.to_string(),
                });
            }
        }
        let mut edges: Vec<Vec<usize>> = vec![Vec::new(); self.tasks.len()];
        for (i, task) in self.tasks.iter().enumerate() {
            let mut seen = HashSet::new();
            for up in &task.upstream {
                match index.get(up) {
                    Some(&u) if seen.insert(u) => edges[u].push(i),
                    Some(_) => {}
                    None => problems.push(DagProblem::UnknownUpstream {
                        task: task.id.to_string(),
                        upstream: up.to_string(),
                    }),
                }
            }
            if let Some(MapSource::Upstream(src)) = &task.expand
                && !task.upstream.contains(src)
            {
                problems.push(DagProblem::InvalidMapping {
                    task: task.id.to_string(),
                    reason: format!(
                        "it expands over `{src}`, which must also be one of its upstreams"
                    ),
                });
            }
            if !task.partial.is_object() {
                problems.push(DagProblem::InvalidMapping {
                    task: task.id.to_string(),
                    reason: "its partial arguments must be a JSON object".to_owned(),
                });
            }
            if task.pool_slots == 0 {
                problems.push(DagProblem::InvalidSetting {
                    task: Some(task.id.to_string()),
                    reason: "pool_slots must be at least 1".to_owned(),
                });
            }
            if task
                .execution_timeout
                .is_some_and(|t| t <= SignedDuration::ZERO)
            {
                problems.push(DagProblem::InvalidSetting {
                    task: Some(task.id.to_string()),
                    reason: "execution_timeout must be positive".to_owned(),
                });
            }
        }
        if self.max_active_runs == 0 || self.max_active_tasks == 0 {
            problems.push(DagProblem::InvalidSetting {
                task: None,
                reason: "max_active_runs and max_active_tasks must be at least 1".to_owned(),
            });
        }
        if let (Some(start), Some(end)) = (self.start_date, self.end_date)
            && end < start
        {
            problems.push(DagProblem::InvalidSetting {
                task: None,
                reason: format!("end_date {end} is before start_date {start}"),
            });
        }
        let order = match topological_order(&edges) {
            Ok(order) => order,
            Err(cycles) => {
                for cycle in cycles {
                    problems.push(DagProblem::Cycle {
                        tasks: cycle
                            .iter()
                            .map(|&i| self.tasks[i].id.to_string())
                            .collect(),
                    });
                }
                Vec::new()
            }
        };
        if !problems.is_empty() {
            return Err(CoreError::InvalidDag {
                dag: self.id.to_string(),
                problems,
            });
        }
        let mut slots: Vec<Option<TaskSpec>> = self.tasks.into_iter().map(Some).collect();
        let tasks: Vec<TaskSpec> = order
            .iter()
            .map(|&i| slots[i].take().expect("each task once"))
            .collect();
        let index: HashMap<TaskId, usize> = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.clone(), i))
            .collect();
        let mut downstream = vec![Vec::new(); tasks.len()];
        for (i, task) in tasks.iter().enumerate() {
            for up in &task.upstream {
                let u = index[up];
                if !downstream[u].contains(&i) {
                    downstream[u].push(i);
                }
            }
        }
        Ok(Dag {
            id: self.id,
            description: self.description,
            tags: self.tags,
            schedule: self.schedule,
            start_date: self.start_date,
            end_date: self.end_date,
            catchup: self.catchup,
            max_active_runs: self.max_active_runs,
            max_active_tasks: self.max_active_tasks,
            max_map_length: self.max_map_length,
            grace: self.grace,
            params: self.params,
            tasks,
            index,
            downstream,
        })
    }
}

/// Kahn's algorithm, stable in definition order. On failure returns every cycle found among the
/// tasks left over, each in dependency order.
fn topological_order(edges: &[Vec<usize>]) -> Result<Vec<usize>, Vec<Vec<usize>>> {
    let n = edges.len();
    let mut indegree = vec![0usize; n];
    for outs in edges {
        for &v in outs {
            indegree[v] += 1;
        }
    }
    let mut ready: std::collections::VecDeque<usize> =
        (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(u) = ready.pop_front() {
        order.push(u);
        for &v in &edges[u] {
            indegree[v] -= 1;
            if indegree[v] == 0 {
                ready.push_back(v);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Every task left has an unfinished upstream that is also left, so walking upstream from any
    // of them must revisit a task: that closes a cycle. Each cycle is reported once.
    let remaining: Vec<bool> = (0..n).map(|i| indegree[i] > 0).collect();
    let mut preds = vec![Vec::new(); n];
    for (u, outs) in edges.iter().enumerate() {
        for &v in outs {
            if remaining[u] && remaining[v] {
                preds[v].push(u);
            }
        }
    }
    let mut cycles = Vec::new();
    let mut visited = vec![false; n];
    for start in 0..n {
        if !remaining[start] || visited[start] {
            continue;
        }
        let mut path: Vec<usize> = Vec::new();
        let mut on_path = HashMap::new();
        let mut u = start;
        loop {
            if let Some(&pos) = on_path.get(&u) {
                let mut cycle: Vec<usize> = path[pos..].to_vec();
                cycle.reverse();
                cycles.push(cycle);
                break;
            }
            if visited[u] {
                break;
            }
            on_path.insert(u, path.len());
            path.push(u);
            u = preds[u][0];
        }
        for &p in &path {
            visited[p] = true;
        }
    }
    Err(cycles)
}
