//! The store conformance suite: behaviour every backend must show, written against the traits.

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use weir_core::ids::RunKind;
use weir_core::{DagId, MapIndex, RunId, RunState, TaskId, TaskState};
use weir_store::*;

fn at(hours: i64) -> Timestamp {
    Timestamp::from_second(1_772_323_200 + hours * 3600).unwrap()
}

pub fn new_run(dag: &str, day: i64) -> NewRun {
    let start = at(day * 24);
    NewRun {
        dag_id: DagId::new(dag).unwrap(),
        run_id: RunId::for_logical_date(RunKind::Scheduled, start),
        kind: RunKind::Scheduled,
        logical_date: start,
        interval_start: start,
        interval_end: at(day * 24 + 24),
        run_after: at(day * 24 + 24),
        conf: json!({"k": "v"}),
        created_at: at(1000),
        dag_version: None,
    }
}

fn key(run: &RunRecord, task: &str, index: i64) -> TiKey {
    TiKey {
        dag_id: run.dag_id.clone(),
        run_id: run.run_id.clone(),
        task_id: TaskId::new(task).unwrap(),
        map_index: MapIndex::from_raw(index).unwrap(),
    }
}

fn new_ti(run: &RunRecord, task: &str) -> NewTaskInstance {
    NewTaskInstance {
        key: key(run, task, -1),
        state: TaskState::None,
        max_tries: 3,
        pool: "default_pool".into(),
        pool_slots: 1,
        queue: weir_store::DEFAULT_QUEUE.into(),
    }
}

fn change(k: TiKey, from: (TaskState, u32), to: (TaskState, u32), when: Timestamp) -> TiChange {
    TiChange {
        key: k,
        expect_state: from.0,
        expect_try: from.1,
        state: to.0,
        try_number: to.1,
        at: when,
        lease_until: None,
        retry_at: None,
        error: None,
        output: None,
    }
}

pub async fn run_creation_is_idempotent_per_logical_date(store: &dyn Store) {
    let (first, created) = store.create_run(new_run("d", 0)).await.unwrap();
    assert!(created);
    assert_eq!(first.state, RunState::Queued);
    assert_eq!(first.conf, json!({"k": "v"}));
    let mut again = new_run("d", 0);
    again.run_id = RunId::new("manual__other").unwrap();
    let (second, created) = store.create_run(again).await.unwrap();
    assert!(
        !created,
        "a second run at the same logical date must not be created"
    );
    assert_eq!(second.run_id, first.run_id);
    let (_, created) = store.create_run(new_run("other_dag", 0)).await.unwrap();
    assert!(created, "another DAG may have a run at the same date");
    assert_eq!(first.dag_version, None);
    // A run keeps the version of its DAG it was created with.
    let mut versioned = new_run("file_dag", 0);
    versioned.dag_version = Some("0123456789ab".to_owned());
    let (run, _) = store.create_run(versioned).await.unwrap();
    assert_eq!(run.dag_version.as_deref(), Some("0123456789ab"));
    let read = store
        .get_run(&run.dag_id, &run.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.dag_version.as_deref(), Some("0123456789ab"));
    // The version's source is kept once; a second save does not change it.
    for text in ["[dag]\nid = \"file_dag\"\n", "something else"] {
        store
            .save_dag_version(&run.dag_id, "0123456789ab", text, at(1))
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .dag_version_source(&run.dag_id, "0123456789ab")
            .await
            .unwrap()
            .as_deref(),
        Some("[dag]\nid = \"file_dag\"\n")
    );
    assert_eq!(
        store.dag_version_source(&run.dag_id, "ffff").await.unwrap(),
        None
    );
}

pub async fn list_runs_filters_and_orders(store: &dyn Store) {
    for day in 0..5 {
        store.create_run(new_run("d", day)).await.unwrap();
    }
    store.create_run(new_run("e", 0)).await.unwrap();
    let d = DagId::new("d").unwrap();
    let all = store
        .list_runs(&RunFilter {
            dag_id: Some(d.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
    assert!(
        all.windows(2)
            .all(|w| w[0].logical_date > w[1].logical_date),
        "newest first"
    );
    let range = RunFilter {
        dag_id: Some(d.clone()),
        logical_date_from: Some(at(24)),
        logical_date_to: Some(at(72)),
        ..Default::default()
    };
    assert_eq!(store.list_runs(&range).await.unwrap().len(), 3);
    let last = store.last_scheduled_run(&d).await.unwrap().unwrap();
    assert_eq!(last.logical_date, at(96));
    let limited = RunFilter {
        limit: Some(2),
        ..Default::default()
    };
    assert_eq!(store.list_runs(&limited).await.unwrap().len(), 2);
}

pub async fn run_state_changes_are_compare_and_set(store: &dyn Store) {
    let (run, _) = store.create_run(new_run("d", 0)).await.unwrap();
    store
        .set_run_state(
            &run.dag_id,
            &run.run_id,
            RunState::Queued,
            RunState::Running,
            at(1),
        )
        .await
        .unwrap();
    let err = store
        .set_run_state(
            &run.dag_id,
            &run.run_id,
            RunState::Queued,
            RunState::Running,
            at(2),
        )
        .await;
    assert!(matches!(err, Err(StoreError::Conflict { .. })), "{err:?}");
    store
        .set_run_state(
            &run.dag_id,
            &run.run_id,
            RunState::Running,
            RunState::Success,
            at(3),
        )
        .await
        .unwrap();
    let run = store
        .get_run(&run.dag_id, &run.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (run.state, run.started_at, run.ended_at),
        (RunState::Success, Some(at(1)), Some(at(3)))
    );
    // An illegal transition is refused before touching the database.
    let err = store
        .set_run_state(
            &run.dag_id,
            &run.run_id,
            RunState::Success,
            RunState::Running,
            at(4),
        )
        .await;
    assert!(err.is_err());
}

pub async fn task_instance_changes_are_compare_and_set_and_record_tries(store: &dyn Store) {
    let (run, _) = store.create_run(new_run("d", 0)).await.unwrap();
    store
        .insert_task_instances(&[new_ti(&run, "a")])
        .await
        .unwrap();
    let k = key(&run, "a", -1);
    let mut claim = change(
        k.clone(),
        (TaskState::None, 0),
        (TaskState::Running, 1),
        at(1),
    );
    claim.lease_until = Some(at(2));
    store.apply(&[claim.clone()]).await.unwrap();
    // The same claim again is stale: the instance is no longer `none` at try 0.
    assert!(matches!(
        store.apply(&[claim]).await,
        Err(StoreError::Conflict { .. })
    ));
    let mut retry = change(
        k.clone(),
        (TaskState::Running, 1),
        (TaskState::UpForRetry, 1),
        at(3),
    );
    retry.error = Some("boom".into());
    retry.retry_at = Some(at(4));
    store.apply(&[retry]).await.unwrap();
    store
        .apply(&[change(
            k.clone(),
            (TaskState::UpForRetry, 1),
            (TaskState::Running, 2),
            at(4),
        )])
        .await
        .unwrap();
    let mut done = change(
        k.clone(),
        (TaskState::Running, 2),
        (TaskState::Success, 2),
        at(5),
    );
    done.output = Some(json!([1, 2]));
    store.apply(&[done]).await.unwrap();
    let ti = &store
        .task_instances(&run.dag_id, &run.run_id)
        .await
        .unwrap()[0];
    assert_eq!(
        (ti.state, ti.try_number, ti.started_at, ti.ended_at),
        (TaskState::Success, 2, Some(at(4)), Some(at(5)))
    );
    assert_eq!(ti.error, None, "a new try clears the previous error");
    let tries = store.tries(&run.dag_id, &run.run_id).await.unwrap();
    let summary: Vec<(u32, TaskState, Option<Timestamp>, Option<&str>)> = tries
        .iter()
        .map(|t| (t.try_number, t.state, t.started_at, t.error.as_deref()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, TaskState::UpForRetry, Some(at(1)), Some("boom")),
            (2, TaskState::Success, Some(at(4)), None)
        ]
    );
    // An illegal transition is refused.
    let bad = change(k, (TaskState::Success, 2), (TaskState::Running, 3), at(6));
    assert!(store.apply(&[bad]).await.is_err());
}

pub async fn expansion_replaces_the_placeholder_once(store: &dyn Store) {
    let (run, _) = store.create_run(new_run("d", 0)).await.unwrap();
    let placeholder = new_ti(&run, "m");
    store
        .insert_task_instances(std::slice::from_ref(&placeholder))
        .await
        .unwrap();
    store.expand_mapped(&placeholder, 1200).await.unwrap();
    store.expand_mapped(&placeholder, 5).await.unwrap();
    let tis = store
        .task_instances(&run.dag_id, &run.run_id)
        .await
        .unwrap();
    assert_eq!(tis.len(), 1200);
    assert!(
        tis.iter()
            .enumerate()
            .all(|(i, ti)| ti.key.map_index == MapIndex::mapped(i) && ti.max_tries == 3)
    );
}

pub async fn outputs_come_back_in_map_index_order(store: &dyn Store) {
    let (run, _) = store.create_run(new_run("d", 0)).await.unwrap();
    let placeholder = new_ti(&run, "m");
    store
        .insert_task_instances(std::slice::from_ref(&placeholder))
        .await
        .unwrap();
    store.expand_mapped(&placeholder, 12).await.unwrap();
    let mut changes = Vec::new();
    for i in (0..12).rev() {
        changes.push(change(
            key(&run, "m", i),
            (TaskState::None, 0),
            (TaskState::Running, 1),
            at(1),
        ));
    }
    store.apply(&changes).await.unwrap();
    let done: Vec<TiChange> = (0..12)
        .rev()
        .map(|i| {
            let mut c = change(
                key(&run, "m", i),
                (TaskState::Running, 1),
                (TaskState::Success, 1),
                at(2),
            );
            c.output = Some(json!(i * 10));
            c
        })
        .collect();
    store.apply(&done).await.unwrap();
    let outputs = store.outputs(&run.dag_id, &run.run_id, "m").await.unwrap();
    assert_eq!(
        outputs,
        (0..12).map(|i| (i, json!(i * 10))).collect::<Vec<_>>()
    );
}

pub async fn orphans_are_running_instances_with_expired_leases(store: &dyn Store) {
    let (run, _) = store.create_run(new_run("d", 0)).await.unwrap();
    store
        .insert_task_instances(&[new_ti(&run, "a"), new_ti(&run, "b")])
        .await
        .unwrap();
    let mut a = change(
        key(&run, "a", -1),
        (TaskState::None, 0),
        (TaskState::Running, 1),
        at(1),
    );
    a.lease_until = Some(at(2));
    let mut b = change(
        key(&run, "b", -1),
        (TaskState::None, 0),
        (TaskState::Running, 1),
        at(1),
    );
    b.lease_until = Some(at(10));
    store.apply(&[a, b]).await.unwrap();
    let orphans = store.orphaned(at(3)).await.unwrap();
    assert_eq!(
        orphans
            .iter()
            .map(|t| t.key.task_id.as_str())
            .collect::<Vec<_>>(),
        vec!["a"]
    );
    store
        .renew_leases(&[key(&run, "a", -1)], at(20))
        .await
        .unwrap();
    assert!(store.orphaned(at(3)).await.unwrap().is_empty());
    assert_eq!(
        store.orphaned(at(15)).await.unwrap().len(),
        1,
        "b's lease ended at 10"
    );
    let _ = SignedDuration::ZERO;
}

pub async fn reset_run_clears_instances_but_keeps_history(store: &dyn Store) {
    let (run, _) = store.create_run(new_run("d", 0)).await.unwrap();
    store
        .set_run_state(
            &run.dag_id,
            &run.run_id,
            RunState::Queued,
            RunState::Running,
            at(1),
        )
        .await
        .unwrap();
    store
        .insert_task_instances(&[new_ti(&run, "a")])
        .await
        .unwrap();
    store
        .apply(&[change(
            key(&run, "a", -1),
            (TaskState::None, 0),
            (TaskState::Running, 1),
            at(1),
        )])
        .await
        .unwrap();
    let mut fail = change(
        key(&run, "a", -1),
        (TaskState::Running, 1),
        (TaskState::Failed, 1),
        at(2),
    );
    fail.error = Some("bad".into());
    store.apply(&[fail]).await.unwrap();
    store
        .set_run_state(
            &run.dag_id,
            &run.run_id,
            RunState::Running,
            RunState::Failed,
            at(2),
        )
        .await
        .unwrap();
    store
        .reset_run(
            &run.dag_id,
            &run.run_id,
            Some(json!({"k": "new"})),
            Some("v2"),
        )
        .await
        .unwrap();
    let reset = store
        .get_run(&run.dag_id, &run.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (reset.state, reset.conf.clone(), reset.ended_at),
        (RunState::Queued, json!({"k": "new"}), None)
    );
    // A re-run runs the DAG's version of now.
    assert_eq!(reset.dag_version.as_deref(), Some("v2"));
    assert!(
        store
            .task_instances(&run.dag_id, &run.run_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.tries(&run.dag_id, &run.run_id).await.unwrap().len(),
        1,
        "the failed try stays in history"
    );
    // The re-run's try 1 is recorded beside the first run's try 1, not over it.
    store
        .insert_task_instances(&[new_ti(&run, "a")])
        .await
        .unwrap();
    store
        .apply(&[change(
            key(&run, "a", -1),
            (TaskState::None, 0),
            (TaskState::Running, 1),
            at(5),
        )])
        .await
        .unwrap();
    store
        .apply(&[change(
            key(&run, "a", -1),
            (TaskState::Running, 1),
            (TaskState::Success, 1),
            at(6),
        )])
        .await
        .unwrap();
    let tries = store.tries(&run.dag_id, &run.run_id).await.unwrap();
    let seen: Vec<(u32, u32, TaskState)> = tries
        .iter()
        .map(|t| (t.clear_number, t.try_number, t.state))
        .collect();
    assert_eq!(
        seen,
        vec![(0, 1, TaskState::Failed), (1, 1, TaskState::Success)]
    );
}

pub async fn pools_and_manifests(store: &dyn Store) {
    let pools = store.pools().await.unwrap();
    assert!(
        pools
            .iter()
            .any(|p| p.name == "default_pool" && p.slots == 128)
    );
    store.set_pool("io", 2, "disk").await.unwrap();
    store.set_pool("io", 3, "disk").await.unwrap();
    let io = store
        .pools()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.name == "io")
        .unwrap();
    assert_eq!(io.slots, 3);
    let manifest = |partition: &str, rows: u64| PartitionManifest {
        dataset: "/data/orders".into(),
        partition: partition.into(),
        rows_in: rows,
        rows_out: rows,
        rows_rejected: 0,
        bytes: rows * 10,
        files: 1,
        checksum: format!("sum{rows}"),
        schema: "[]".into(),
        dag_id: "d".into(),
        run_id: "r".into(),
        task_id: "t".into(),
        map_index: -1,
        try_number: 1,
        committed_at: at(1),
        incomplete: None,
    };
    store
        .record_manifest(&manifest("dt=2026-03-01", 5))
        .await
        .unwrap();
    store
        .record_manifest(&manifest("dt=2026-03-02", 7))
        .await
        .unwrap();
    store
        .record_manifest(&manifest("dt=2026-03-01", 9))
        .await
        .unwrap();
    let latest = store.manifests("/data/orders").await.unwrap();
    let rows: Vec<(&str, u64)> = latest
        .iter()
        .map(|m| (m.partition.as_str(), m.rows_out))
        .collect();
    assert_eq!(
        rows,
        vec![("dt=2026-03-01", 9), ("dt=2026-03-02", 7)],
        "the latest commit of each partition"
    );
}

fn claim(run: &RunRecord, owner: &str, now: Timestamp, lease_until: Timestamp) -> ClaimRun {
    ClaimRun {
        dag_id: run.dag_id.clone(),
        run_id: run.run_id.clone(),
        owner: owner.to_owned(),
        now,
        lease_until,
    }
}

/// A run has one owner at a time: a live lease keeps it, an expired one is taken over, and the
/// old owner's updates are refused by the fencing token.
pub async fn run_ownership_is_leased_and_fenced(store: &dyn Store) {
    let (run, _) = store.create_run(new_run("d", 0)).await.unwrap();
    store
        .insert_task_instances(&[new_ti(&run, "a")])
        .await
        .unwrap();
    let RunClaim::Claimed {
        fence: a,
        resumed: false,
    } = store
        .claim_run(claim(&run, "A", at(0), at(1)))
        .await
        .unwrap()
    else {
        panic!("a run without an owner is claimed");
    };
    store
        .set_run_state(
            &run.dag_id,
            &run.run_id,
            RunState::Queued,
            RunState::Running,
            at(0),
        )
        .await
        .unwrap();
    // B cannot take a run whose owner's lease is live.
    match store
        .claim_run(claim(&run, "B", at(0), at(2)))
        .await
        .unwrap()
    {
        RunClaim::Held(owner) => {
            assert_eq!(owner.id, "A");
            assert_eq!(owner.lease_until, at(1));
            assert_eq!(owner.token, a.token);
        }
        other => panic!("a live owner keeps its run, got {other:?}"),
    }
    // A renews; once A stops renewing and the lease ends, B takes over with a higher token.
    store.renew_run(&a, at(3)).await.unwrap();
    assert!(matches!(
        store
            .claim_run(claim(&run, "B", at(2), at(4)))
            .await
            .unwrap(),
        RunClaim::Held(_)
    ));
    let RunClaim::Claimed { fence: b, resumed } = store
        .claim_run(claim(&run, "B", at(4), at(6)))
        .await
        .unwrap()
    else {
        panic!("an expired lease is taken over");
    };
    assert!(resumed, "taking over from another owner is a resume");
    assert!(b.token > a.token);
    let stored = store
        .get_run(&run.dag_id, &run.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.owner.as_ref().map(|o| o.id.as_str()), Some("B"));
    // The old owner is fenced off: it can neither write task states, renew, nor finish the run.
    let claim_a = {
        let mut c = change(
            key(&run, "a", -1),
            (TaskState::None, 0),
            (TaskState::Running, 1),
            at(4),
        );
        c.lease_until = Some(at(5));
        c
    };
    assert!(matches!(
        store.apply_fenced(&a, std::slice::from_ref(&claim_a)).await,
        Err(StoreError::Fenced { .. })
    ));
    assert!(matches!(
        store.renew_run(&a, at(9)).await,
        Err(StoreError::Fenced { .. })
    ));
    assert!(matches!(
        store.finish_run(&a, RunState::Success, at(5)).await,
        Err(StoreError::Fenced { .. })
    ));
    let tis = store
        .task_instances(&run.dag_id, &run.run_id)
        .await
        .unwrap();
    assert_eq!(
        tis[0].state,
        TaskState::None,
        "a fenced write changed nothing"
    );
    // The new owner's writes go through, and finishing releases the run.
    store.apply_fenced(&b, &[claim_a]).await.unwrap();
    store
        .finish_run(&b, RunState::Success, at(5))
        .await
        .unwrap();
    let done = store
        .get_run(&run.dag_id, &run.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.state, RunState::Success);
    assert_eq!(done.owner, None);
    assert_eq!(
        store
            .claim_run(claim(&run, "C", at(6), at(7)))
            .await
            .unwrap(),
        RunClaim::Finished(RunState::Success)
    );
}

fn check_result(run: &str, task: &str, name: &str, passed: bool, at_hour: i64) -> CheckResult {
    CheckResult {
        dag_id: "d".into(),
        run_id: run.into(),
        task_id: task.into(),
        map_index: -1,
        try_number: 1,
        gate: CheckGate::Output,
        name: name.into(),
        rule: json!({"rule": "not_null", "column": "amount"}),
        severity: if passed {
            CheckSeverity::Error
        } else {
            CheckSeverity::Warn
        },
        passed,
        failing: if passed { 0 } else { 2 },
        observed: (!passed).then(|| "2 rows".to_owned()),
        sample: if passed {
            Vec::new()
        } else {
            vec![
                json!({"order_id": 1, "amount": null}),
                json!({"order_id": 2}),
            ]
        },
        checked_at: at(at_hour),
    }
}

pub async fn check_results_are_kept_whole_and_filtered(store: &dyn Store) {
    let results = vec![
        check_result("r1", "load", "a", true, 1),
        check_result("r1", "load", "b", false, 1),
        check_result("r2", "load", "a", true, 2),
        check_result("r2", "other", "b", false, 2),
    ];
    store.record_checks(&results).await.unwrap();
    store.record_checks(&[]).await.unwrap();
    let all = store.checks(&CheckFilter::default()).await.unwrap();
    assert_eq!(all, results, "kept whole, oldest first");
    let r1 = store
        .checks(&CheckFilter {
            run_id: Some("r1".into()),
            ..CheckFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(r1, results[..2].to_vec());
    let failed = store
        .checks(&CheckFilter {
            dag_id: Some("d".into()),
            failed_only: true,
            ..CheckFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(failed, vec![results[1].clone(), results[3].clone()]);
    let newest = store
        .checks(&CheckFilter {
            task_id: Some("load".into()),
            limit: Some(2),
            ..CheckFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        newest,
        vec![results[1].clone(), results[2].clone()],
        "the newest two, oldest first"
    );
}

/// The dead-letter lifecycle: kept once per source position, taken by one replay only,
/// replayed or failed (quarantined after the maximum), corrected, re-opened when a re-read
/// rejects a replayed line again, purged by age and status.
pub async fn dead_letters_live_through_replays(store: &dyn Store) {
    let reject = |line: u64, reason: &str| RejectRecord {
        source: "/data/orders.csv".into(),
        line,
        raw: format!("row {line}"),
        reason: reason.into(),
        error_class: "parse".into(),
        dag_id: "d".into(),
        run_id: "r".into(),
        task_id: "load".into(),
        map_index: -1,
        try_number: 1,
        rejected_at: at(1),
    };
    store
        .record_rejects(&[reject(2, "bad"), reject(3, "bad")])
        .await
        .unwrap();
    // Read again: the same positions, updated, not doubled.
    store
        .record_rejects(&[reject(2, "still bad"), reject(3, "still bad")])
        .await
        .unwrap();
    let all = store.dead_letters(&RejectFilter::default()).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].reason, "still bad");
    assert_eq!(all[0].status, DeadLetterStatus::Pending);
    let (a, b) = (all[0].id, all[1].id);

    // Two replays at once: the second takes nothing the first took.
    assert_eq!(store.begin_replay(&[a, b], "one").await.unwrap(), [a, b]);
    assert!(store.begin_replay(&[a, b], "two").await.unwrap().is_empty());
    store
        .finish_replay(
            &[
                ReplayOutcome::Replayed {
                    id: a,
                    into: "/data/out/dt=2026-03-01".into(),
                },
                ReplayOutcome::Failed {
                    id: b,
                    reason: "still bad".into(),
                },
            ],
            2,
            at(2),
        )
        .await
        .unwrap();
    let da = store.dead_letter(a).await.unwrap().unwrap();
    assert_eq!(da.status, DeadLetterStatus::Replayed);
    assert_eq!(da.replays, 1);
    let db = store.dead_letter(b).await.unwrap().unwrap();
    assert_eq!((db.status, db.replays), (DeadLetterStatus::Pending, 1));
    // A replayed letter cannot be corrected; a failed one can, and a second failure
    // quarantines it; a correction puts it back to pending.
    assert!(matches!(
        store.correct_dead_letter(a, Some("x")).await,
        Err(StoreError::Conflict { .. })
    ));
    store.begin_replay(&[b], "three").await.unwrap();
    store
        .finish_replay(
            &[ReplayOutcome::Failed {
                id: b,
                reason: "again".into(),
            }],
            2,
            at(3),
        )
        .await
        .unwrap();
    assert_eq!(
        store.dead_letter(b).await.unwrap().unwrap().status,
        DeadLetterStatus::Quarantined
    );
    store
        .correct_dead_letter(b, Some("row 3 fixed"))
        .await
        .unwrap();
    let db = store.dead_letter(b).await.unwrap().unwrap();
    assert_eq!(db.status, DeadLetterStatus::Pending);
    assert_eq!(db.payload(), "row 3 fixed");

    // A re-read that rejects the replayed line again without a payload that reads.
    store
        .reopen_dead_letters("/data/orders.csv", &[2, 3])
        .await
        .unwrap();
    let da = store.dead_letter(a).await.unwrap().unwrap();
    assert_eq!(da.status, DeadLetterStatus::Pending);
    assert_eq!(da.replayed_into, None);

    // Purge: by status and age only.
    assert_eq!(
        store
            .purge_dead_letters(at(100), &[DeadLetterStatus::Quarantined])
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .purge_dead_letters(at(100), &[DeadLetterStatus::Pending])
            .await
            .unwrap(),
        2
    );
    assert!(
        store
            .dead_letters(&RejectFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
}

fn begin(commit_id: &str, partition: &str, lease_until: Timestamp) -> BeginCommit {
    BeginCommit {
        dataset: "s3://bucket/sales".into(),
        partition: partition.into(),
        commit_id: commit_id.into(),
        owner: format!("test/{commit_id}"),
        at: at(0),
        lease_until,
    }
}

fn file(path: &str, rows: u64) -> CommitFile {
    CommitFile {
        path: path.into(),
        rows,
        bytes: rows * 10,
    }
}

fn paths(files: &[CommitFile]) -> Vec<&str> {
    files.iter().map(|f| f.path.as_str()).collect()
}

pub async fn dataset_commits_are_compare_and_set_on_the_head(store: &dyn Store) {
    let ds = "s3://bucket/sales";
    let p = "day=2026-03-02";
    // Nothing is visible while a commit is pending, even with its files recorded.
    store.begin_commit(&begin("c1", p, at(1))).await.unwrap();
    store.record_commit_file("c1", "p/a1", at(1)).await.unwrap();
    assert_eq!(store.partition_head(ds, p).await.unwrap(), None);
    let head = store
        .commit_partition(
            "c1",
            &[file("p/a1", 5)],
            CommitBase::Version(0),
            CommitMode::Replace,
            at(0),
        )
        .await
        .unwrap();
    assert_eq!((head.version, head.rows, head.bytes), (1, 5, 50));
    assert_eq!(
        store.partition_head(ds, p).await.unwrap(),
        Some(head.clone())
    );

    // A writer that started at version 0 loses to the one that committed: nothing changes.
    store.begin_commit(&begin("c2", p, at(1))).await.unwrap();
    let err = store
        .commit_partition(
            "c2",
            &[file("p/b1", 7)],
            CommitBase::Version(0),
            CommitMode::Replace,
            at(0),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("another writer committed version 1"),
        "{err}"
    );
    assert_eq!(store.partition_head(ds, p).await.unwrap(), Some(head));

    // An append at the right version carries the head's files; the old head is superseded.
    store.begin_commit(&begin("c3", p, at(1))).await.unwrap();
    let appended = store
        .commit_partition(
            "c3",
            &[file("p/c1", 3)],
            CommitBase::Version(1),
            CommitMode::Append,
            at(2),
        )
        .await
        .unwrap();
    assert_eq!(appended.version, 2);
    assert_eq!(paths(&appended.files), ["p/a1", "p/c1"]);
    assert_eq!(appended.rows, 8);
    // A replace (last writer wins) drops them.
    store.begin_commit(&begin("c4", p, at(1))).await.unwrap();
    let replaced = store
        .commit_partition(
            "c4",
            &[file("p/d1", 4)],
            CommitBase::Any,
            CommitMode::Replace,
            at(3),
        )
        .await
        .unwrap();
    assert_eq!(
        (replaced.version, paths(&replaced.files)),
        (3, vec!["p/d1"])
    );
    let states: Vec<(String, CommitState)> = store
        .dataset_commits(ds)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.commit_id, c.state))
        .collect();
    assert_eq!(
        states,
        [
            ("c1".to_string(), CommitState::Superseded),
            ("c2".to_string(), CommitState::Pending),
            ("c3".to_string(), CommitState::Superseded),
            ("c4".to_string(), CommitState::Committed),
        ]
    );

    // c2's lease ran out at at(1): rolled back from what the store holds; it can neither
    // record nor commit any more.
    assert!(
        store
            .roll_back_expired_commits(ds, at(0))
            .await
            .unwrap()
            .is_empty()
    );
    let rolled: Vec<String> = store
        .roll_back_expired_commits(ds, at(2))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.commit_id)
        .collect();
    assert_eq!(rolled, ["c2"]);
    assert!(matches!(
        store
            .record_commit_file("c2", "p/b2", at(9))
            .await
            .unwrap_err(),
        StoreError::Conflict { .. }
    ));
    let late = store
        .commit_partition(
            "c2",
            &[file("p/b1", 7)],
            CommitBase::Any,
            CommitMode::Replace,
            at(3),
        )
        .await
        .unwrap_err();
    assert!(late.to_string().contains("it was rolled back"), "{late}");
    assert_eq!(
        store
            .partition_head(ds, p)
            .await
            .unwrap()
            .unwrap()
            .commit_id,
        "c4"
    );

    // Collectable: rolled back at once, superseded only once the grace has passed; an
    // appended head's carried files are never listed.
    let ids = |cs: Vec<DatasetCommit>| -> Vec<(String, Vec<String>)> {
        cs.into_iter()
            .map(|c| (c.commit_id, c.files.into_iter().map(|f| f.path).collect()))
            .collect()
    };
    assert_eq!(
        ids(store.collectable_commits(ds, at(0)).await.unwrap()),
        [("c2".to_string(), vec![])]
    );
    // c1 was superseded at at(2) by c3, an append that carried p/a1 and was head until at(3):
    // with a cut-off between the two, p/a1 stays for c3's readers.
    assert_eq!(
        ids(store
            .collectable_commits(ds, at(2) + SignedDuration::from_mins(30))
            .await
            .unwrap()),
        [("c1".to_string(), vec![]), ("c2".to_string(), vec![])]
    );
    assert_eq!(
        ids(store.collectable_commits(ds, at(10)).await.unwrap()),
        [
            ("c1".to_string(), vec!["p/a1".to_string()]),
            ("c2".to_string(), vec![]),
            (
                "c3".to_string(),
                vec!["p/a1".to_string(), "p/c1".to_string()]
            ),
        ]
    );
    for id in ["c1", "c2", "c3", "c4"] {
        store.forget_commit(id).await.unwrap();
    }
    // The head is never forgotten.
    let left: Vec<String> = store
        .dataset_commits(ds)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.commit_id)
        .collect();
    assert_eq!(left, ["c4"]);
    assert_eq!(store.partition_heads(ds).await.unwrap().len(), 1);
    assert!(
        store
            .partition_heads("s3://bucket/other")
            .await
            .unwrap()
            .is_empty()
    );
}
