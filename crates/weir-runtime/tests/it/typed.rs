//! Typed task I/O: inputs and params are read into types, and reading what is not there — an
//! unknown upstream, an output of another shape, an undeclared param — fails the task at once,
//! naming it, instead of handing it `null` or a default (regression: `ctx.input("typo")`
//! returned `Null` and a verify step passed on nothing).

use serde::Deserialize;
use serde_json::{Value, json};
use weir_core::{ParamSpec, RunState, TaskState};
use weir_runtime::{DagDef, Task, TaskError};

use crate::support::World;

#[derive(Debug, Deserialize)]
struct Counted {
    rows: u64,
}

#[derive(Debug, Deserialize)]
struct Other {
    #[allow(dead_code)]
    partition: String,
}

#[tokio::test(start_paused = true)]
async fn reading_what_is_not_there_fails_at_once_naming_it() {
    let dag = DagDef::builder("typed")
        .param(ParamSpec::integer("limit", 1, 10, "a bound").default(5))
        .task(Task::new("count").run(|_| async { Ok(json!({"rows": 42})) }))
        .task(
            Task::new("typed_read")
                .after(["count"])
                .run(|ctx| async move {
                    let c: Counted = ctx.input("count").await?;
                    let limit: i64 = ctx.param("limit")?;
                    Ok(json!({"rows": c.rows, "limit": limit}))
                }),
        )
        .task(
            Task::new("typo")
                .after(["count"])
                .retries(3)
                .run(|ctx| async move {
                    let v: Value = ctx.input("cuont").await?;
                    Ok(v)
                }),
        )
        .task(
            Task::new("wrong_shape")
                .after(["count"])
                .retries(3)
                .run(|ctx| async move {
                    let _: Other = ctx.input("count").await?;
                    Ok(Value::Null)
                }),
        )
        .task(
            Task::new("undeclared")
                .after(["count"])
                .retries(3)
                .run(|ctx| async move {
                    let _: String = ctx.param("sourec")?;
                    Err::<Value, _>(TaskError::fatal("unreachable"))
                }),
        )
        .build()
        .unwrap();
    let w = World::new([dag]).await;
    let run = w.trigger("typed", json!({"limit": "7"})).await;
    let outcome = w.ex.run(&run.dag_id, &run.run_id).await.unwrap();
    assert_eq!(outcome.state, RunState::Failed);
    let ok = w.ti(&run, "typed_read").await;
    assert_eq!(ok.state, TaskState::Success);
    let out = w
        .store
        .outputs(&run.dag_id, &run.run_id, "typed_read")
        .await
        .unwrap();
    assert_eq!(
        out[0].1,
        json!({"rows": 42, "limit": 7}),
        "the conf's \"7\" became 7"
    );
    for (task, needle) in [
        (
            "typo",
            "reads the output of `cuont`, which is not one of its upstreams (count)",
        ),
        (
            "wrong_shape",
            "the output of `count` is not what task `wrong_shape` reads: missing field `partition`",
        ),
        (
            "undeclared",
            "reads param `sourec`, which DAG `typed` does not declare",
        ),
    ] {
        let ti = w.ti(&run, task).await;
        assert_eq!(ti.state, TaskState::Failed, "{task}");
        assert_eq!(
            ti.try_number, 1,
            "{task} failed at once, its 3 retries unused"
        );
        let error = ti.error.unwrap();
        assert!(error.contains(needle), "{task}: {error}");
    }
}
