//! DAG validation through `DagDef::builder(..).build()`: one error that lists every problem.

use std::collections::BTreeSet;

use serde_json::json;
use weir_core::{CoreError, DagProblem};
use weir_runtime::{DagDef, Task};

#[test]
fn one_error_lists_every_problem_naming_each_place() {
    let err = DagDef::builder("messy")
        .task(Task::new("extract"))
        .task(Task::new("extract"))
        .task(Task::new("load").after(["extract", "ghost"]))
        .task(Task::new("ping").after(["pong"]))
        .task(Task::new("pong").after(["ping"]))
        .task(Task::new("a").after(["c"]))
        .task(Task::new("b").after(["a"]))
        .task(Task::new("c").after(["b"]))
        .task(Task::new("fan").after(["nowhere"]).pool("p", 0))
        .task(
            Task::new("both")
                .expand("extract")
                .expand_over(vec![json!(1)]),
        )
        .build()
        .unwrap_err();

    let CoreError::InvalidDag { dag, problems } = &err else {
        panic!("not an InvalidDag error: {err}");
    };
    assert_eq!(dag, "messy");
    let has = |p: &DagProblem| problems.contains(p);
    assert!(has(&DagProblem::DuplicateTask {
        task: "extract".into()
    }));
    assert!(has(&DagProblem::UnknownUpstream {
        task: "load".into(),
        upstream: "ghost".into()
    }));
    assert!(has(&DagProblem::UnknownUpstream {
        task: "fan".into(),
        upstream: "nowhere".into()
    }));
    assert!(problems.iter().any(|p| matches!(
        p,
        DagProblem::InvalidSetting { task: Some(t), reason } if t == "fan" && reason.contains("pool_slots")
    )));
    assert!(problems.iter().any(|p| matches!(
        p,
        DagProblem::InvalidMapping { task, .. } if task == "both"
    )));
    // Both cycles, each by its tasks and only its tasks.
    let cycles: BTreeSet<BTreeSet<String>> = problems
        .iter()
        .filter_map(|p| match p {
            DagProblem::Cycle { tasks } => Some(tasks.iter().cloned().collect()),
            _ => None,
        })
        .collect();
    let set = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        cycles,
        BTreeSet::from([set(&["ping", "pong"]), set(&["a", "b", "c"])])
    );
    assert_eq!(problems.len(), 7, "{problems:#?}");

    // The message a user reads names every problem.
    let message = err.to_string();
    for needle in [
        "DAG `messy` is invalid (7 problems)",
        "task id `extract` is used more than once",
        "task `load` depends on `ghost`, which is not a task of this DAG",
        "task `fan` depends on `nowhere`",
        "tasks form a cycle",
        "pool_slots must be at least 1",
        "task `both` has an invalid expand",
    ] {
        assert!(message.contains(needle), "missing {needle:?} in: {message}");
    }
}

#[test]
fn a_cycle_is_reported_in_dependency_order() {
    let err = DagDef::builder("loop")
        .task(Task::new("start"))
        .task(Task::new("x").after(["start", "z"]))
        .task(Task::new("y").after(["x"]))
        .task(Task::new("z").after(["y"]))
        .build()
        .unwrap_err();
    let CoreError::InvalidDag { problems, .. } = &err else {
        panic!("{err}");
    };
    let [DagProblem::Cycle { tasks }] = problems.as_slice() else {
        panic!("one cycle expected: {problems:?}");
    };
    // Each task depends on the one before it, the first on the last.
    let n = tasks.len();
    assert_eq!(n, 3, "{tasks:?}");
    let upstream_of = |t: &str| match t {
        "x" => "z",
        "y" => "x",
        "z" => "y",
        other => panic!("{other} is not in the cycle"),
    };
    for i in 0..n {
        assert_eq!(upstream_of(&tasks[(i + 1) % n]), tasks[i], "{tasks:?}");
    }
    assert!(err.to_string().contains(&format!(
        "tasks form a cycle: {} -> {} -> {} -> {}",
        tasks[0], tasks[1], tasks[2], tasks[0]
    )));
}

#[test]
fn a_valid_dag_builds_in_dependency_order() {
    let def = DagDef::builder("ok")
        .task(Task::new("report").after(["transform"]))
        .task(Task::new("transform").after(["extract"]))
        .task(Task::new("extract"))
        .build()
        .unwrap();
    let order: Vec<_> = def.dag.tasks().iter().map(|t| t.id.to_string()).collect();
    assert_eq!(order, ["extract", "transform", "report"]);
}
