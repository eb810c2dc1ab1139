//! Dynamic task mapping: `expand` over an upstream list or a literal, `partial` arguments, the
//! reducer's view of the mapped outputs, and the failures a user can cause.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use weir_core::{RunState, TaskState, TriggerRule};
use weir_runtime::{DagDef, Task, TaskError};

use crate::support::World;

/// `src` returns `items`; `m` adds its item to the `partial` offset; `sum` reduces `m`'s outputs.
fn map_reduce(dag: &str, items: Value) -> DagDef {
    DagDef::builder(dag)
        .task(Task::new("src").run(move |_| {
            let items = items.clone();
            async move { Ok(items) }
        }))
        .task(
            Task::new("m")
                .expand("src")
                .partial(json!({"offset": 1000}))
                .run(|ctx| async move {
                    let item = ctx.item.as_ref().and_then(Value::as_i64).expect("an item");
                    let offset = ctx.partial["offset"].as_i64().expect("partial offset");
                    Ok(json!(item + offset))
                }),
        )
        .task(Task::new("sum").after(["m"]).run(|ctx| async move {
            let list: Vec<Value> = ctx.input("m").await?;
            let total: i64 = list.iter().map(|v| v.as_i64().unwrap_or(0)).sum();
            Ok(json!({"outputs": list, "total": total}))
        }))
        .build()
        .expect("valid DAG")
}

#[tokio::test(start_paused = true)]
async fn an_empty_list_skips_the_mapped_task_and_reducers_follow_their_trigger_rule() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let reducer = |id: &str, rule: TriggerRule| {
        let seen = seen.clone();
        Task::new(id)
            .after(["m"])
            .trigger_rule(rule)
            .run(move |ctx| {
                let seen = seen.clone();
                async move {
                    let input = ctx.input("m").await?;
                    seen.lock()
                        .expect("lock")
                        .push((ctx.task_id.to_string(), input));
                    Ok(Value::Null)
                }
            })
    };
    let dag = DagDef::builder("empty_map")
        .task(Task::new("src").run(|_| async { Ok(json!([])) }))
        .task(
            Task::new("m")
                .expand("src")
                .run(|_| async { panic!("an instance of an empty expansion ran") }),
        )
        .task(reducer("r_all_success", TriggerRule::AllSuccess))
        .task(reducer("r_none_failed", TriggerRule::NoneFailed))
        .task(reducer("r_all_done", TriggerRule::AllDone))
        .task(reducer(
            "r_none_failed_min_one_success",
            TriggerRule::NoneFailedMinOneSuccess,
        ))
        .task(reducer("r_one_success", TriggerRule::OneSuccess))
        .build()
        .unwrap();
    let w = World::new([dag]).await;
    let (run, outcome) = w.run("empty_map").await;

    assert_eq!(outcome.state, RunState::Success);
    let states = w.states(&run).await;
    let s = |task: &str| states[&(task.to_owned(), -1)];
    assert_eq!(s("src"), TaskState::Success);
    // No instances were created: the placeholder itself is skipped.
    assert_eq!(s("m"), TaskState::Skipped);
    assert_eq!(
        states.keys().filter(|(t, _)| t == "m").count(),
        1,
        "{states:?}"
    );
    assert_eq!(s("r_all_success"), TaskState::Skipped);
    assert_eq!(s("r_none_failed"), TaskState::Success);
    assert_eq!(s("r_all_done"), TaskState::Success);
    assert_eq!(s("r_none_failed_min_one_success"), TaskState::Skipped);
    assert_eq!(s("r_one_success"), TaskState::Skipped);
    // A reducer that runs sees the (empty) list of mapped outputs, not "no output".
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        vec![
            ("r_all_done".to_owned(), json!([])),
            ("r_none_failed".to_owned(), json!([])),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_one_item_list_makes_one_instance_at_map_index_zero() {
    let w = World::new([map_reduce("one", json!([7]))]).await;
    let (run, outcome) = w.run("one").await;

    assert_eq!(outcome.state, RunState::Success);
    let m: Vec<_> = w
        .tis(&run)
        .await
        .into_iter()
        .filter(|ti| ti.key.task_id.as_str() == "m")
        .collect();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].key.map_index.raw(), 0);
    assert_eq!(m[0].state, TaskState::Success);
    assert_eq!(m[0].try_number, 1);
    assert_eq!(w.outputs(&run, "m").await, vec![(0, json!(1007))]);
    assert_eq!(
        w.outputs(&run, "sum").await,
        vec![(-1, json!({"outputs": [1007], "total": 1007}))]
    );
}

#[tokio::test(start_paused = true)]
async fn fifty_items_make_fifty_instances_each_with_its_item_and_the_partial_args() {
    let items: Vec<i64> = (0..50).map(|i| i * i).collect();
    let w = World::new([map_reduce("fifty", json!(items))]).await;
    let (run, outcome) = w.run("fifty").await;

    assert_eq!(outcome.state, RunState::Success);
    let states = w.states(&run).await;
    for i in 0..50 {
        assert_eq!(states[&("m".to_owned(), i)], TaskState::Success, "m[{i}]");
    }
    assert!(
        !states.contains_key(&("m".to_owned(), -1)),
        "placeholder left: {states:?}"
    );
    assert!(!states.contains_key(&("m".to_owned(), 50)));
    let expected: Vec<(i64, Value)> = items
        .iter()
        .enumerate()
        .map(|(i, item)| (i as i64, json!(item + 1000)))
        .collect();
    assert_eq!(w.outputs(&run, "m").await, expected);
    let total: i64 = items.iter().map(|i| i + 1000).sum();
    let reduced = &w.outputs(&run, "sum").await[0].1;
    assert_eq!(reduced["total"], json!(total));
    assert_eq!(
        reduced["outputs"],
        json!(items.iter().map(|i| i + 1000).collect::<Vec<_>>())
    );
}

#[tokio::test(start_paused = true)]
async fn a_hundred_thousand_instances_reduce_in_map_index_order() {
    const N: usize = 100_000;
    // A permutation of 0..N, so that an order other than map-index order shows.
    let items: Vec<u64> = (0..N as u64).map(|i| (i * 7919) % N as u64).collect();
    let expected = items.clone();
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    let dag = DagDef::builder("wide")
        .pool("wide", 256)
        .max_active_tasks(256)
        .task(Task::new("src").run(move |_| {
            let items = items.clone();
            async move { Ok(json!(items)) }
        }))
        .task(
            Task::new("m")
                .expand("src")
                .pool("wide", 1)
                .run(move |ctx| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    async move { Ok(ctx.item.expect("an item")) }
                }),
        )
        .task(Task::new("reduce").after(["m"]).run(move |ctx| {
            let expected = expected.clone();
            async move {
                let outputs: Vec<Value> = ctx.input("m").await?;
                let in_order = outputs.len() == expected.len()
                    && outputs
                        .iter()
                        .zip(&expected)
                        .all(|(got, want)| got.as_u64() == Some(*want));
                let sum: u64 = outputs.iter().filter_map(Value::as_u64).sum();
                Ok(json!({"count": outputs.len(), "in_order": in_order, "sum": sum}))
            }
        }))
        .build()
        .unwrap();
    let w = World::with([dag], |o| o.parallelism = 256).await;
    let started = std::time::Instant::now();
    let (run, outcome) = w.run("wide").await;
    let took = started.elapsed();

    assert_eq!(outcome.state, RunState::Success);
    assert_eq!(ran.load(Ordering::Relaxed), N, "every instance ran once");
    let tis = w.tis(&run).await;
    let m: Vec<_> = tis
        .iter()
        .filter(|ti| ti.key.task_id.as_str() == "m")
        .collect();
    assert_eq!(m.len(), N);
    assert!(
        m.iter()
            .all(|ti| ti.state == TaskState::Success && ti.try_number == 1)
    );
    assert_eq!(
        w.outputs(&run, "reduce").await,
        vec![(
            -1,
            json!({"count": N, "in_order": true, "sum": (N as u64) * (N as u64 - 1) / 2})
        )]
    );
    // Generous, to stay green on a loaded 2-core machine; a per-instance cost in milliseconds
    // (a commit per instance, a scan per decision) would blow it.
    assert!(took < std::time::Duration::from_secs(120), "took {took:?}");
}

#[tokio::test(start_paused = true)]
async fn expand_over_a_literal_gives_each_instance_its_item_and_the_partial_args() {
    let dag = DagDef::builder("literal")
        .task(
            Task::new("greet")
                .expand_over(vec![json!("ada"), json!("grace"), json!("edsger")])
                .partial(json!({"greeting": "hello"}))
                .run(|ctx| async move {
                    Ok(json!(format!(
                        "{} {} #{}",
                        ctx.partial["greeting"].as_str().unwrap_or("?"),
                        ctx.item.as_ref().and_then(Value::as_str).unwrap_or("?"),
                        ctx.map_index.raw()
                    )))
                }),
        )
        .task(
            Task::new("all")
                .after(["greet"])
                .run(|ctx| async move { ctx.input("greet").await }),
        )
        .build()
        .unwrap();
    let w = World::new([dag]).await;
    let (run, outcome) = w.run("literal").await;

    assert_eq!(outcome.state, RunState::Success);
    assert_eq!(
        w.outputs(&run, "greet").await,
        vec![
            (0, json!("hello ada #0")),
            (1, json!("hello grace #1")),
            (2, json!("hello edsger #2")),
        ]
    );
    assert_eq!(
        w.outputs(&run, "all").await,
        vec![(
            -1,
            json!(["hello ada #0", "hello grace #1", "hello edsger #2"])
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn an_input_longer_than_max_map_length_fails_the_task_clearly() {
    let dag = DagDef::builder("too_long")
        .max_map_length(3)
        .task(Task::new("src").run(|_| async { Ok(json!([1, 2, 3, 4])) }))
        .task(
            Task::new("m")
                .expand("src")
                .run(|_| async { panic!("must not run") }),
        )
        .task(Task::new("after").after(["m"]))
        .build()
        .unwrap();
    let w = World::new([dag]).await;
    let (run, outcome) = w.run("too_long").await;

    assert_eq!(outcome.state, RunState::Failed);
    let m = w.ti(&run, "m").await;
    assert_eq!(m.state, TaskState::Failed);
    assert_eq!(
        m.error.as_deref(),
        Some(
            "cannot expand task `m`: its input has 4 elements, more than the DAG's max_map_length of 3"
        )
    );
    assert_eq!(w.ti(&run, "after").await.state, TaskState::UpstreamFailed);
    // Exactly at the limit is fine.
    let dag = DagDef::builder("at_limit")
        .max_map_length(4)
        .task(Task::new("src").run(|_| async { Ok(json!([1, 2, 3, 4])) }))
        .task(Task::new("m").expand("src"))
        .build()
        .unwrap();
    let w = World::new([dag]).await;
    let (_, outcome) = w.run("at_limit").await;
    assert_eq!(outcome.state, RunState::Success);
}

#[tokio::test(start_paused = true)]
async fn expanding_over_something_that_is_not_a_list_fails_clearly() {
    let cases = [
        (
            json!({"a": 1}),
            "cannot expand task `m`: it expands over the output of `src`, which is an object and not a JSON list",
        ),
        (
            json!("abc"),
            "cannot expand task `m`: it expands over the output of `src`, which is a string and not a JSON list",
        ),
        (
            Value::Null,
            "cannot expand task `m`: it expands over the output of `src`, which returned nothing; return a JSON list",
        ),
    ];
    for (output, message) in cases {
        let dag = DagDef::builder("not_a_list")
            .task(Task::new("src").run(move |_| {
                let output = output.clone();
                async move { Ok(output) }
            }))
            .task(
                Task::new("m")
                    .expand("src")
                    .run(|_| async { panic!("must not run") }),
            )
            .build()
            .unwrap();
        let w = World::new([dag]).await;
        let (run, outcome) = w.run("not_a_list").await;
        assert_eq!(outcome.state, RunState::Failed, "{message}");
        let m = w.ti(&run, "m").await;
        assert_eq!(m.state, TaskState::Failed);
        assert_eq!(m.error.as_deref(), Some(message));
    }
}

#[tokio::test(start_paused = true)]
async fn one_failed_instance_fails_the_reducer_upstream_but_not_its_siblings() {
    let dag = DagDef::builder("one_bad")
        .task(
            Task::new("m")
                .expand_over((0..5).map(|i| json!(i)).collect())
                .run(|ctx| async move {
                    match ctx.item.as_ref().and_then(Value::as_i64) {
                        Some(3) => Err(TaskError::fatal("item 3 is bad")),
                        Some(i) => Ok(json!(i)),
                        None => Err(TaskError::fatal("no item")),
                    }
                }),
        )
        .task(Task::new("reduce").after(["m"]))
        .task(
            Task::new("report")
                .after(["m"])
                .trigger_rule(TriggerRule::AllDone)
                .run(|ctx| async move { ctx.input("m").await }),
        )
        .build()
        .unwrap();
    let w = World::new([dag]).await;
    let (run, outcome) = w.run("one_bad").await;

    assert_eq!(outcome.state, RunState::Failed);
    let states = w.states(&run).await;
    for i in [0, 1, 2, 4] {
        assert_eq!(states[&("m".to_owned(), i)], TaskState::Success);
    }
    assert_eq!(states[&("m".to_owned(), 3)], TaskState::Failed);
    assert_eq!(
        states[&("reduce".to_owned(), -1)],
        TaskState::UpstreamFailed
    );
    assert_eq!(states[&("report".to_owned(), -1)], TaskState::Success);
    // The failed instance has no output: the reducer sees null in its slot.
    assert_eq!(
        w.outputs(&run, "report").await,
        vec![(-1, json!([0, 1, 2, null, 4]))]
    );
}
