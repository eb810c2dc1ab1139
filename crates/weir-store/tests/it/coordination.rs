//! The coordination rules every backend must keep when several processes share one store: each
//! function opens the store at `url` as many times as it needs live owners (each open is its
//! own connection pool, as in another process).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use weir_core::ids::RunKind;
use weir_core::{DagId, MapIndex, RunId, RunState, TaskId, TaskState};
use weir_store::*;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_772_323_200 + secs).unwrap()
}

async fn open(url: &str) -> Arc<dyn Store> {
    weir_store::open(url).await.unwrap()
}

/// A running run of `dag` with `count` scheduled instances of task `task` (map indexes 0..).
async fn running_run(
    store: &dyn Store,
    dag: &str,
    task: &str,
    count: i64,
    pool: &str,
    slots: u32,
    queue: &str,
) -> RunRecord {
    let day = t(0);
    let new = NewRun {
        dag_id: DagId::new(dag).unwrap(),
        run_id: RunId::for_logical_date(RunKind::Scheduled, day),
        kind: RunKind::Scheduled,
        logical_date: day,
        interval_start: day,
        interval_end: t(86_400),
        run_after: t(86_400),
        conf: json!({}),
        created_at: t(0),
        dag_version: None,
    };
    let (run, _) = store.create_run(new).await.unwrap();
    if run.state == RunState::Queued {
        store
            .set_run_state(
                &run.dag_id,
                &run.run_id,
                RunState::Queued,
                RunState::Running,
                t(0),
            )
            .await
            .unwrap();
    }
    add_instances(store, &run, task, count, pool, slots, queue).await;
    store
        .get_run(&run.dag_id, &run.run_id)
        .await
        .unwrap()
        .unwrap()
}

async fn add_instances(
    store: &dyn Store,
    run: &RunRecord,
    task: &str,
    count: i64,
    pool: &str,
    slots: u32,
    queue: &str,
) {
    let tis: Vec<NewTaskInstance> = (0..count)
        .map(|i| NewTaskInstance {
            key: TiKey {
                dag_id: run.dag_id.clone(),
                run_id: run.run_id.clone(),
                task_id: TaskId::new(task).unwrap(),
                map_index: MapIndex::from_raw(i).unwrap(),
            },
            state: TaskState::Scheduled,
            max_tries: 2,
            pool: pool.into(),
            pool_slots: slots,
            queue: queue.into(),
        })
        .collect();
    store.insert_task_instances(&tis).await.unwrap();
}

fn claim(owner: &str, limit: u32, now: Timestamp, queues: &[&str]) -> ClaimTasks {
    ClaimTasks {
        owner: owner.into(),
        queues: queues.iter().map(|q| q.to_string()).collect(),
        limit,
        now,
        lease_until: now + SignedDuration::from_secs(10),
    }
}

fn success(at: Timestamp) -> TryEnd {
    TryEnd {
        state: TaskState::Success,
        at,
        error: None,
        retry_at: None,
        output: Some(json!({"ok": true})),
        log: None,
    }
}

async fn states(store: &dyn Store, run: &RunRecord) -> HashMap<TaskState, usize> {
    let mut by = HashMap::new();
    for ti in store
        .task_instances(&run.dag_id, &run.run_id)
        .await
        .unwrap()
    {
        *by.entry(ti.state).or_default() += 1;
    }
    by
}

pub async fn claims_count_pool_slots_and_dag_limits_across_owners(url: &str) {
    let (a, b) = (open(url).await, open(url).await);
    a.set_pool("p", 2, "two slots").await.unwrap();
    let run = running_run(a.as_ref(), "pooled", "t", 5, "p", 1, DEFAULT_QUEUE).await;

    let got_a = a.claim_tasks(&claim("a", 10, t(1), &[])).await.unwrap();
    assert_eq!(got_a.len(), 2, "a pool of 2 slots lets 2 of 5 start");
    for c in &got_a {
        assert_eq!(c.instance.state, TaskState::Running);
        assert_eq!(c.instance.owner.as_deref(), Some("a"));
        assert_eq!((c.fence.try_number, c.instance.try_number), (1, 1));
        assert!(c.fence.token >= 1);
    }
    assert!(
        b.claim_tasks(&claim("b", 10, t(1), &[]))
            .await
            .unwrap()
            .is_empty(),
        "another owner finds the pool full: the slots are counted in the store"
    );
    a.finish_task(&got_a[0].fence, &success(t(2)))
        .await
        .unwrap();
    let got_b = b.claim_tasks(&claim("b", 10, t(3), &[])).await.unwrap();
    assert_eq!(got_b.len(), 1, "one slot came free");
    assert_eq!(got_b[0].instance.owner.as_deref(), Some("b"));

    // `weir pools set` on a live system: the next claim sees the new size.
    b.set_pool("p", 4, "four slots").await.unwrap();
    let more = a.claim_tasks(&claim("a", 10, t(4), &[])).await.unwrap();
    assert_eq!(more.len(), 2, "two more fit once the pool has 4 slots");
    let s = states(a.as_ref(), &run).await;
    assert_eq!((s[&TaskState::Running], s[&TaskState::Success]), (4, 1));
    let claimed: std::collections::HashSet<_> = got_a
        .iter()
        .chain(&got_b)
        .chain(&more)
        .map(|c| c.fence.key.clone())
        .collect();
    assert_eq!(claimed.len(), 5, "no instance was claimed twice");

    // A DAG's max_active_tasks, counted in the store.
    a.set_dag_limit("limited", 1, t(0)).await.unwrap();
    let limited = running_run(a.as_ref(), "limited", "t", 3, "default_pool", 1, "default").await;
    assert_eq!(
        b.claim_tasks(&claim("b", 10, t(5), &[]))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        a.claim_tasks(&claim("a", 10, t(5), &[]))
            .await
            .unwrap()
            .is_empty()
    );
    let running = a
        .task_instances(&limited.dag_id, &limited.run_id)
        .await
        .unwrap()
        .into_iter()
        .find(|ti| ti.state == TaskState::Running)
        .unwrap();
    assert_eq!(running.owner.as_deref(), Some("b"));

    // Queues route work; an instance that needs more slots than are free does not block the
    // smaller ones behind it.
    a.set_pool("wide", 2, "").await.unwrap();
    let routed = running_run(a.as_ref(), "routed", "big", 1, "wide", 3, "gpu").await;
    add_instances(a.as_ref(), &routed, "small", 2, "wide", 1, "gpu").await;
    assert!(
        a.claim_tasks(&claim("a", 10, t(6), &["default"]))
            .await
            .unwrap()
            .iter()
            .all(|c| c.instance.queue == "default"),
        "a claimer of queue default takes nothing routed to gpu"
    );
    let gpu = b
        .claim_tasks(&claim("b", 10, t(6), &["gpu"]))
        .await
        .unwrap();
    let tasks: Vec<&str> = gpu.iter().map(|c| c.fence.key.task_id.as_str()).collect();
    assert_eq!(
        tasks,
        ["small", "small"],
        "the 3-slot instance cannot fit a 2-slot pool; the 1-slot ones start"
    );
}

pub async fn a_lost_lease_fences_the_late_owner_and_a_live_one_keeps_its_task(url: &str) {
    let (a, b) = (open(url).await, open(url).await);
    let run = running_run(a.as_ref(), "leases", "t", 1, "default_pool", 1, "default").await;
    let mine = a.claim_tasks(&claim("a", 1, t(0), &[])).await.unwrap();
    let fence = mine[0].fence.clone();

    // A live owner keeps its task: its lease has not ended.
    assert_eq!(a.requeue_expired(t(5)).await.unwrap(), Requeued::default());
    assert!(
        b.claim_tasks(&claim("b", 1, t(5), &[]))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        a.renew_tasks(std::slice::from_ref(&fence), t(20))
            .await
            .unwrap()
            .is_empty(),
        "the renewal holds"
    );
    assert!(
        b.requeue_expired(t(15)).await.unwrap().scheduled.is_empty(),
        "the renewed lease runs to t+20"
    );

    // The owner stops renewing: after its lease the instance goes back to scheduled.
    let requeued = b.requeue_expired(t(30)).await.unwrap();
    assert_eq!(requeued.scheduled, vec![fence.key.clone()]);
    let late = a.finish_task(&fence, &success(t(31))).await.unwrap_err();
    assert!(
        matches!(late, StoreError::FencedTask(_)),
        "the late owner is refused: {late}"
    );
    assert!(late.to_string().contains("handed to another worker"));
    assert_eq!(
        a.renew_tasks(std::slice::from_ref(&fence), t(40))
            .await
            .unwrap(),
        vec![fence.clone()],
        "the late owner learns its claim is gone"
    );
    let ti = &a.task_instances(&run.dag_id, &run.run_id).await.unwrap()[0];
    assert_eq!(
        (ti.state, ti.owner.as_deref()),
        (TaskState::Scheduled, None),
        "the refused finish changed nothing"
    );

    let theirs = b.claim_tasks(&claim("b", 1, t(32), &[])).await.unwrap();
    assert_eq!(theirs[0].fence.try_number, 2, "the lost try counted");
    assert!(theirs[0].fence.token > fence.token);
    b.finish_task(&theirs[0].fence, &success(t(33)))
        .await
        .unwrap();
    let tries = b.tries(&run.dag_id, &run.run_id).await.unwrap();
    let summary: Vec<(u32, TaskState)> = tries.iter().map(|t| (t.try_number, t.state)).collect();
    assert_eq!(summary, [(1, TaskState::Failed), (2, TaskState::Success)]);
    assert!(tries[0].error.as_deref().unwrap().contains("was lost"));
    assert_eq!(
        b.outputs(&run.dag_id, &run.run_id, "t").await.unwrap(),
        [(0, json!({"ok": true}))]
    );

    // The last try lost: the instance fails instead of running a third time.
    let last = running_run(a.as_ref(), "last_try", "t", 1, "default_pool", 1, "default").await;
    for (owner, now) in [("a", 100), ("b", 200)] {
        let got = a.claim_tasks(&claim(owner, 1, t(now), &[])).await.unwrap();
        assert_eq!(got.len(), 1);
        a.requeue_expired(t(now + 50)).await.unwrap();
    }
    let ti = &a.task_instances(&last.dag_id, &last.run_id).await.unwrap()[0];
    assert_eq!((ti.state, ti.try_number), (TaskState::Failed, 2));
}

pub async fn two_live_executors_race_for_one_run_and_one_wins(url: &str) {
    let (a, b) = (open(url).await, open(url).await);
    let run = running_run(a.as_ref(), "race", "t", 1, "default_pool", 1, "default").await;
    for round in 0..10 {
        let now = t(1000 * round);
        let until = now + SignedDuration::from_secs(100);
        let ask = |owner: &str| ClaimRun {
            dag_id: run.dag_id.clone(),
            run_id: run.run_id.clone(),
            owner: format!("{owner}{round}"),
            now,
            lease_until: until,
        };
        let (ra, rb) = tokio::join!(a.claim_run(ask("a")), b.claim_run(ask("b")));
        let (won, lost) = match (ra.unwrap(), rb.unwrap()) {
            (RunClaim::Claimed { fence, .. }, RunClaim::Held(owner)) => ((fence, &a), (owner, &b)),
            (RunClaim::Held(owner), RunClaim::Claimed { fence, .. }) => ((fence, &b), (owner, &a)),
            other => panic!("round {round}: exactly one claim must win: {other:?}"),
        };
        assert_eq!(lost.0.id, won.0.owner, "the loser sees who holds the run");
        // A fence one token behind the winner's — the winner's own from before this claim, as
        // a process that lost its lease holds it — changes nothing.
        let forged = RunFence {
            token: won.0.token - 1,
            ..won.0.clone()
        };
        assert!(matches!(
            lost.1.renew_run(&forged, until).await.unwrap_err(),
            StoreError::Fenced { .. }
        ));
        won.1.renew_run(&won.0, until).await.unwrap();
    }
}

pub async fn concurrent_claimers_never_double_claim_or_overfill_a_pool(url: &str) {
    const INSTANCES: i64 = 120;
    const SLOTS: usize = 3;
    let setup = open(url).await;
    setup.set_pool("narrow", SLOTS as u32, "").await.unwrap();
    let run = running_run(
        setup.as_ref(),
        "crowd",
        "t",
        INSTANCES,
        "narrow",
        1,
        "default",
    )
    .await;
    let ledger: Arc<Mutex<HashMap<i64, Vec<String>>>> = Arc::default();
    let peak = Arc::new(Mutex::new(0_usize));
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..4 {
        let (store, ledger, peak, run) =
            (open(url).await, ledger.clone(), peak.clone(), run.clone());
        workers.spawn(async move {
            let owner = format!("w{w}");
            let mut idle = 0;
            while idle < 50 {
                let got = store
                    .claim_tasks(&claim(&owner, 2, t(1), &[]))
                    .await
                    .unwrap();
                if got.is_empty() {
                    idle += 1;
                    tokio::task::yield_now().await;
                    continue;
                }
                idle = 0;
                // What any reader sees while these run: never more than the pool's slots.
                let running = store
                    .task_instances(&run.dag_id, &run.run_id)
                    .await
                    .unwrap()
                    .iter()
                    .filter(|ti| ti.state == TaskState::Running)
                    .count();
                {
                    let mut p = peak.lock().unwrap();
                    *p = (*p).max(running);
                }
                for c in got {
                    ledger
                        .lock()
                        .unwrap()
                        .entry(c.fence.key.map_index.raw())
                        .or_default()
                        .push(owner.clone());
                    store.finish_task(&c.fence, &success(t(2))).await.unwrap();
                }
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.unwrap();
    }
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    assert_eq!(ledger.len() as i64, INSTANCES, "every instance ran");
    let doubled: Vec<_> = ledger.iter().filter(|(_, o)| o.len() != 1).collect();
    assert!(doubled.is_empty(), "claimed more than once: {doubled:?}");
    let peak = *peak.lock().unwrap();
    assert!(
        (1..=SLOTS).contains(&peak),
        "{peak} instances of a {SLOTS}-slot pool ran at once"
    );
    let s = states(setup.as_ref(), &run).await;
    assert_eq!(s.get(&TaskState::Success), Some(&(INSTANCES as usize)));
}

pub async fn try_logs_are_kept_for_every_host(url: &str) {
    let (a, b) = (open(url).await, open(url).await);
    let run = running_run(a.as_ref(), "logged", "t", 1, "default_pool", 1, "default").await;
    let key = a.task_instances(&run.dag_id, &run.run_id).await.unwrap()[0]
        .key
        .clone();
    assert_eq!(a.try_log(&key, 0, 1).await.unwrap(), None);
    let mut log = TryLog {
        key: key.clone(),
        clear_number: 0,
        try_number: 1,
        host: "host-a:1".into(),
        text: "line 1\nline 2\n".into(),
        saved_at: t(5),
    };
    a.save_try_log(&log).await.unwrap();
    assert_eq!(
        b.try_log(&key, 0, 1).await.unwrap().as_ref(),
        Some(&log),
        "another process reads it whole"
    );
    assert_eq!(b.try_log(&key, 0, 2).await.unwrap(), None);
    assert_eq!(
        b.try_log(&key, 1, 1).await.unwrap(),
        None,
        "a clear's try 1 is another try"
    );
    log.text = "replaced\n".into();
    b.save_try_log(&log).await.unwrap();
    assert_eq!(
        a.try_log(&key, 0, 1).await.unwrap().unwrap().text,
        "replaced\n"
    );
}

pub async fn a_full_pool_backlog_does_not_hide_work_that_can_start(url: &str) {
    let a = open(url).await;
    a.set_pool("narrow", 1, "").await.unwrap();
    // An older run: 50 instances queued behind one slot.
    running_run(a.as_ref(), "backlog", "t", 50, "narrow", 1, "default").await;
    let first = a.claim_tasks(&claim("a", 1, t(1), &[])).await.unwrap();
    assert_eq!(first.len(), 1);
    // A newer run's instance in another pool starts at once.
    let day = t(86_400);
    let newer = NewRun {
        dag_id: DagId::new("other").unwrap(),
        run_id: RunId::for_logical_date(RunKind::Scheduled, day),
        kind: RunKind::Scheduled,
        logical_date: day,
        interval_start: day,
        interval_end: t(2 * 86_400),
        run_after: t(2 * 86_400),
        conf: json!({}),
        created_at: t(0),
        dag_version: None,
    };
    let (run, _) = a.create_run(newer).await.unwrap();
    a.set_run_state(
        &run.dag_id,
        &run.run_id,
        RunState::Queued,
        RunState::Running,
        t(0),
    )
    .await
    .unwrap();
    add_instances(a.as_ref(), &run, "free", 1, "default_pool", 1, "default").await;
    let got = a.claim_tasks(&claim("a", 2, t(2), &[])).await.unwrap();
    let tasks: Vec<&str> = got.iter().map(|c| c.fence.key.task_id.as_str()).collect();
    assert_eq!(
        tasks,
        ["free"],
        "the narrow backlog cannot start; the free instance can"
    );
}

/// Writers on several connections commit one new partition at once: every "last writer wins"
/// commit lands as its own version, exactly one is the head, and of the writers that demanded
/// an empty partition exactly one succeeds.
pub async fn concurrent_commits_of_one_partition_take_turns(url: &str) {
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(open(url).await);
    }
    let now = Timestamp::from_second(1_772_323_200).unwrap();
    for (demand, partition) in [
        (CommitBase::Any, "day=1"),
        (CommitBase::Version(0), "day=2"),
    ] {
        let mut tasks = Vec::new();
        for (i, store) in stores.iter().enumerate() {
            for j in 0..4 {
                let store = store.clone();
                let id = format!("{partition}-{i}-{j}");
                let partition = partition.to_string();
                tasks.push(tokio::spawn(async move {
                    store
                        .begin_commit(&BeginCommit {
                            dataset: "file:///shared".into(),
                            partition,
                            commit_id: id.clone(),
                            owner: id.clone(),
                            at: now,
                            lease_until: now + SignedDuration::from_hours(1),
                        })
                        .await
                        .unwrap();
                    let files = [CommitFile {
                        path: format!("{id}.parquet"),
                        rows: 1,
                        bytes: 1,
                    }];
                    store
                        .commit_partition(&id, &files, demand, CommitMode::Replace, now)
                        .await
                }));
            }
        }
        let mut versions = Vec::new();
        let mut conflicts = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(head) => versions.push(head.version),
                Err(StoreError::Conflict { .. }) => conflicts += 1,
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        versions.sort_unstable();
        let commits = stores[0].dataset_commits("file:///shared").await.unwrap();
        let of_partition: Vec<_> = commits
            .iter()
            .filter(|c| c.partition == partition)
            .collect();
        let committed = of_partition
            .iter()
            .filter(|c| c.state == CommitState::Committed)
            .count();
        assert_eq!(committed, 1, "{partition}: exactly one head");
        match demand {
            CommitBase::Any => {
                assert_eq!(versions, (1..=16).collect::<Vec<i64>>());
                assert_eq!(conflicts, 0);
            }
            _ => {
                assert_eq!(versions, [1]);
                assert_eq!(conflicts, 15);
            }
        }
    }
}
