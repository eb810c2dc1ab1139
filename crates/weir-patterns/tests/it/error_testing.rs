//! 110.7.4 Testing batch error handling (`110_07_04_testing_batch_error_handling`): the
//! reference suite for partial failures, retries on virtual time, checkpoint recovery and DLQ
//! routing, written with `weir_ops::testing`. Sources are literal rows written in the test
//! home; expected values are computed here from those rows and from Airflow's backoff bounds.

use std::collections::BTreeMap;

use jiff::civil::date;
use serde_json::{Value, json};
use weir_core::{RunState, TaskState};
use weir_ops::testing::{TestHome, assert_partition_rows, read_notifications, read_partition};
use weir_patterns::p110::testing_batch_error_handling::{self as errs, Posted};
use weir_runtime::{NotifyEvent, OnDamage, SourceIdentity, checkpoint_checksum, verify_checkpoint};
use weir_store::CheckpointFilter;

use crate::support::{NEW_YORK, conf, i64_column, midnight, s, utc};

const HEADER: &str = "order_id,region,event_time,amount";
const SCHEMA: &str = "order_id: int not null\n\
                      region: string not null\n\
                      event_time: timestamp not null\n\
                      amount: decimal(12,2) not null\n";
const DAY: &str = "dt=2026-03-05";

/// (order_id, region, event_time, amount) of New York's 2026-03-05 (05:00Z to 05:00Z).
const ROWS: [(i64, &str, &str, &str); 6] = [
    (1, "NAM", "2026-03-05T06:00:00Z", "10.00"),
    (2, "EU", "2026-03-05T07:00:00Z", "20.00"),
    (3, "EU", "2026-03-05T08:00:00Z", "-5.00"), // the ledger refuses it
    (4, "APAC", "2026-03-05T09:00:00Z", "30.00"),
    (5, "LATAM", "2026-03-05T10:00:00Z", "40.00"),
    (6, "NAM", "2026-03-05T11:00:00Z", "50.00"),
];

fn line((id, region, time, amount): &(i64, &str, &str, &str)) -> String {
    format!("{id},{region},{time},{amount}")
}

fn refs(lines: &[String]) -> Vec<&str> {
    lines.iter().map(String::as_str).collect()
}

/// `"12.50"` / `"-5.00"` → exact cents.
fn cents(text: &str) -> i64 {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let frac = format!("{frac:0<2}");
    sign * (whole.parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap())
}

/// A home with the DAG, a source of `rows` (and its schema), and the run's day.
async fn home_with(rows: &[String]) -> (TestHome, std::path::PathBuf, jiff::Timestamp) {
    let home = TestHome::new([errs::dag()]).await;
    let source = home.source_csv("orders.csv", HEADER, &refs(rows));
    home.source_schema("orders.csv", SCHEMA);
    (home, source, midnight(date(2026, 3, 5), NEW_YORK))
}

/// Partial failure: the region whose day holds a negative amount fails its mapped instance
/// alone (fatal: no retry can fix data); the other regions post, with totals equal to the
/// rows'; the run fails; clearing only what failed runs only that instance again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_region_with_bad_data_fails_alone_and_only_it_runs_again() {
    let rows: Vec<String> = ROWS.iter().map(line).collect();
    let (home, source, day) = home_with(&rows).await;
    let out = home.path("out/errors");
    // Per region, from the literal rows: (orders, cents, negative amounts).
    let mut expected: BTreeMap<String, (u64, i64, u64)> = BTreeMap::new();
    for (_, region, _, amount) in ROWS {
        let e = expected.entry(region.to_owned()).or_default();
        e.0 += 1;
        e.1 += cents(amount);
        e.2 += u64::from(cents(amount) < 0);
    }
    assert_eq!(expected["EU"], (2, 1500, 1));

    let outcome = home
        .run(
            errs::DAG_ID,
            day,
            conf([("source", s(&source)), ("output", s(&out))]),
        )
        .await;
    let run = &outcome.run;
    home.assert_run_state(run, RunState::Failed).await;
    home.assert_task_state(run, "load", None, TaskState::Success)
        .await;
    home.assert_task_state(run, "publish", None, TaskState::Success)
        .await;
    assert_partition_rows(&out, DAY, ROWS.len() as u64);
    // Regions are mapped in order: one instance each.
    let posted = home.output(run, "post_region").await;
    let posted = posted.as_array().expect("one output slot per instance");
    assert_eq!(posted.len(), expected.len());
    for (i, (region, (orders, revenue_cents, negative))) in expected.iter().enumerate() {
        if *negative > 0 {
            home.assert_task_state(run, "post_region", Some(i), TaskState::Failed)
                .await;
            let ti = home.instance(run, "post_region", Some(i)).await;
            assert!(
                ti.error
                    .as_deref()
                    .unwrap_or("")
                    .contains("negative amount"),
                "{region}: {:?}",
                ti.error
            );
            assert_eq!(posted[i], Value::Null, "{region} posted nothing");
        } else {
            home.assert_task_state(run, "post_region", Some(i), TaskState::Success)
                .await;
            let got: Posted = serde_json::from_value(posted[i].clone()).unwrap();
            assert_eq!(
                got,
                Posted {
                    region: region.clone(),
                    orders: *orders,
                    revenue_cents: *revenue_cents,
                }
            );
        }
    }
    home.assert_tries(run, "post_region", expected.len()).await;

    // Selective retry: only the failed instance runs again (and fails again: the data is
    // unchanged); the posted regions keep their one try.
    let again = home.rerun(run, "post_region", true).await;
    home.assert_run_state(&again.run, RunState::Failed).await;
    let eu = expected.keys().position(|r| r.as_str() == "EU").unwrap() as i64;
    let mut per_instance: BTreeMap<i64, usize> = BTreeMap::new();
    for t in home.tries(run, "post_region").await {
        *per_instance.entry(t.map_index.raw()).or_default() += 1;
    }
    for (index, n) in per_instance {
        assert_eq!(n, if index == eu { 2 } else { 1 }, "instance {index}");
    }
}

/// Retry behaviour on virtual time: while the ready flag is absent, `publish` fails each of its
/// four tries; each retry's delay is inside Airflow's bounds (try n waits at least
/// base·2^(n−1) and less than twice that, capped), the next try starts no earlier, and the
/// exhausted batch is a dead letter of class `batch` while the task succeeds incomplete. Once
/// the flag exists, clearing the task publishes the day in one try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_backs_off_exponentially_then_goes_to_the_dlq_as_a_batch() {
    let rows: Vec<String> = ROWS.iter().filter(|r| r.0 != 3).map(line).collect();
    let (home, source, day) = home_with(&rows).await;
    let flag = home.path("flags/ready");
    let c = conf([
        ("source", s(&source)),
        ("output", s(&home.path("out/errors"))),
        ("ready_marker", s(&flag)),
    ]);
    let outcome = home.run(errs::DAG_ID, day, c).await;
    let run = &outcome.run;
    home.assert_run_state(run, RunState::Success).await;
    home.assert_task_state(run, "publish", None, TaskState::Success)
        .await;
    let tries = errs::RETRIES as usize + 1;
    home.assert_tries(run, "publish", tries).await;
    let publish = home.output(run, "publish").await;
    assert_eq!(publish["dead_lettered"], true, "{publish}");
    assert_eq!(publish["tries"], json!(tries));

    let log = home.path(&format!("notifications/{}.jsonl", errs::DAG_ID));
    let mut events: Vec<_> = read_notifications(&log)
        .into_iter()
        .filter(|n| n.task_id.as_str() == "publish")
        .collect();
    // Deliveries of different commits may interleave in the file: order by try.
    events.sort_by_key(|n| n.try_number);
    let kinds: Vec<NotifyEvent> = events.iter().map(|n| n.event).collect();
    assert_eq!(
        kinds,
        [
            NotifyEvent::Retry,
            NotifyEvent::Retry,
            NotifyEvent::Retry,
            NotifyEvent::RetryExhausted
        ],
        "{events:#?}"
    );
    let mut finished = home.tries(run, "publish").await;
    finished.sort_by_key(|t| t.try_number);
    let (base, cap) = (errs::RETRY_DELAY.as_secs(), errs::MAX_RETRY_DELAY.as_secs());
    for (n, e) in events[..errs::RETRIES as usize].iter().enumerate() {
        assert_eq!(e.try_number, n as u32 + 1);
        assert!(
            e.error.as_deref().unwrap_or("").contains("not ready"),
            "{e:?}"
        );
        let retry_at = e.retry_at.expect("a retry says when");
        let delay = retry_at.duration_since(e.at).as_secs();
        let min = (base << n).min(cap);
        let max = ((base << n) * 2 - 1).min(cap);
        assert!(
            (min..=max).contains(&delay),
            "retry {}: waited {delay}s, expected {min}..={max}s",
            n + 1
        );
        let next = finished[n + 1].started_at.expect("a started try");
        assert!(
            next >= retry_at,
            "try {} started at {next}, before its retry_at {retry_at}",
            n + 2
        );
    }

    // The exhausted batch in the DLQ, with its context.
    let batches: Vec<_> = home
        .dead_letters(errs::DAG_ID)
        .await
        .into_iter()
        .filter(|d| d.error_class == "batch")
        .collect();
    assert_eq!(batches.len(), 1, "{batches:#?}");
    assert_eq!(batches[0].task_id, "publish");
    assert!(
        batches[0].reason.contains("not ready"),
        "{}",
        batches[0].reason
    );
    let context: Value = serde_json::from_str(&batches[0].raw).unwrap();
    assert_eq!(context["run_id"], run.run_id.as_str());
    assert_eq!(context["try_number"], json!(tries));

    // The downstream is ready: one try publishes the day.
    std::fs::create_dir_all(flag.parent().unwrap()).unwrap();
    std::fs::write(&flag, "").unwrap();
    let again = home.rerun(run, "publish", false).await;
    home.assert_run_state(&again.run, RunState::Success).await;
    home.assert_tries(run, "publish", 1).await;
    let publish = home.output(run, "publish").await;
    assert_eq!(publish["published"], json!([DAY]), "{publish}");
    assert_eq!(publish["rows"], json!(rows.len()));
}

/// Checkpoint recovery through a real retry: 1,250 rows in chunks of 100 (13 chunks, the last
/// one partial), a fault injected in chunk 5 of the first try. The retry resumes after
/// checkpoint 4 and reads only chunks 5 to 13; the day's partition holds each of its rows
/// exactly once, and the checkpoints are deleted once the load has succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_resumes_from_the_checkpoint_before_the_failed_chunk() {
    const N: i64 = 1250;
    const EVERY: i64 = 100;
    const FAIL_AT: i64 = 5;
    let regions = ["APAC", "EU", "LATAM", "NAM"];
    let first = utc(2026, 3, 5);
    let rows: Vec<(i64, jiff::Timestamp)> = (0..N)
        .map(|i| {
            let t = first
                .checked_add(jiff::SignedDuration::from_secs(90 * i))
                .unwrap();
            (i + 1, t)
        })
        .collect();
    let text: Vec<String> = rows
        .iter()
        .map(|(id, t)| {
            format!(
                "{id},{},{t},{}.{:02}",
                regions[(*id as usize) % 4],
                id % 50 + 1,
                id % 100
            )
        })
        .collect();
    let (home, source, day) = home_with(&text).await;
    let out = home.path("out/checkpointed");
    // The day's rows, with jiff: New York's 2026-03-05 is 05:00Z to 05:00Z.
    let to = midnight(date(2026, 3, 6), NEW_YORK);
    let mut in_day: Vec<i64> = rows
        .iter()
        .filter(|(_, t)| (day..to).contains(t))
        .map(|(id, _)| *id)
        .collect();
    in_day.sort_unstable();
    assert_eq!(in_day.len(), 960);

    let c = conf([
        ("source", s(&source)),
        ("output", s(&out)),
        ("checkpoint_every", EVERY.to_string()),
        ("fail_at_chunk", FAIL_AT.to_string()),
    ]);
    let outcome = home.run(errs::DAG_ID, day, c).await;
    let run = &outcome.run;
    home.assert_run_state(run, RunState::Success).await;
    home.assert_tries(run, "load", 2).await;
    let tries = home.tries(run, "load").await;
    assert!(
        tries[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("injected fault in chunk 5"),
        "{tries:#?}"
    );
    let load = home.output(run, "load").await;
    let chunks = N / EVERY + 1;
    assert_eq!(
        load["checkpoints"]["resumed_from"],
        json!(FAIL_AT - 1),
        "{load}"
    );
    assert_eq!(
        load["checkpoints"]["chunks"],
        json!(chunks - (FAIL_AT - 1)),
        "{load}"
    );
    assert_eq!(load["checkpoints"]["passed_over"], json!([]), "{load}");
    assert_eq!(load["rows"], json!(in_day.len()), "{load}");

    assert_partition_rows(&out, DAY, in_day.len() as u64);
    let mut ids = i64_column(&read_partition(&out, DAY), "order_id");
    ids.sort_unstable();
    assert_eq!(ids, in_day, "every row of the day exactly once");

    let left = home
        .store()
        .checkpoints(&CheckpointFilter {
            dag_id: Some(errs::DAG_ID.to_owned()),
            run_id: Some(run.run_id.to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(left.is_empty(), "checkpoints left after success: {left:#?}");
}

/// Checkpoint verification through the store: checkpoints saved with the task's context are
/// checked before a resume — a good one resumes, a changed byte (checksum), an older format, a
/// changed source and a position past the end are each refused with a sentence — and a resume
/// passes over a damaged newest one for the previous good one, or starts over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_old_and_stale_checkpoints_are_never_resumed() {
    let rows: Vec<String> = ROWS.iter().map(line).collect();
    let (home, source, day) = home_with(&rows).await;
    let run = home
        .trigger(errs::DAG_ID, day, conf([("source", s(&source))]))
        .await;
    let ctx = home.task_context(&run, "load", None).await;
    let identity = SourceIdentity::of(&source).unwrap();
    for seq in 1..=3u64 {
        ctx.checkpoint(seq, &identity, &json!({ "record": seq * 100 }))
            .await
            .unwrap();
    }
    let key = ctx.checkpoint_key();
    let saved = home
        .store()
        .checkpoints(&CheckpointFilter::from(&key))
        .await
        .unwrap();
    let seqs: Vec<u64> = saved.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [3, 2, 1], "newest first");

    let any = |_: &Value| -> Result<(), String> { Ok(()) };
    assert_eq!(
        verify_checkpoint::<Value>(&saved[0], &identity, &any).unwrap(),
        json!({ "record": 300 })
    );
    // A byte changed after the save.
    let mut damaged = saved[0].clone();
    damaged.state = damaged.state.replace("300", "301");
    let (why, stale) = verify_checkpoint::<Value>(&damaged, &identity, &any).unwrap_err();
    assert!(why.contains("damaged") && !stale, "{why}");
    // An older format, its checksum intact.
    let mut old = saved[1].clone();
    old.version = 0;
    old.checksum = checkpoint_checksum(0, &old.source, old.seq, &old.state);
    let (why, stale) = verify_checkpoint::<Value>(&old, &identity, &any).unwrap_err();
    assert!(why.contains("format 0") && !stale, "{why}");
    // The source changed since: stale, so no earlier checkpoint of it helps either.
    let grown = SourceIdentity {
        size: identity.size + 1,
        ..identity.clone()
    };
    let (why, stale) = verify_checkpoint::<Value>(&saved[1], &grown, &any).unwrap_err();
    assert!(stale, "{why}");
    // A position the task's own check refuses.
    let within = |state: &Value| -> Result<(), String> {
        match state["record"].as_u64() {
            Some(r) if r <= 250 => Ok(()),
            _ => Err("points past the end of the source".to_owned()),
        }
    };
    let (why, _) = verify_checkpoint::<Value>(&saved[0], &identity, &within).unwrap_err();
    assert!(why.contains("past the end"), "{why}");

    // The damaged one stored as the newest: a resume passes over it to checkpoint 2.
    home.store().save_checkpoint(&damaged).await.unwrap();
    let resume = ctx
        .resume::<Value>(&identity, OnDamage::Previous, |_| Ok(()))
        .await
        .unwrap();
    assert_eq!(resume.seq, 2);
    assert_eq!(resume.state, Some(json!({ "record": 200 })));
    assert_eq!(resume.problems.len(), 1, "{:?}", resume.problems);
    assert!(
        resume.problems[0].contains("damaged"),
        "{:?}",
        resume.problems
    );
    // Told to start over instead: nothing is resumed and the attempt's checkpoints are gone.
    let resume = ctx
        .resume::<Value>(&identity, OnDamage::StartOver, |_| Ok(()))
        .await
        .unwrap();
    assert_eq!((resume.seq, resume.state), (0, None));
    let left = home
        .store()
        .checkpoints(&CheckpointFilter::from(&key))
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:#?}");
}

/// DLQ routing of records: each malformed row is one dead letter of class `parse` with its
/// source line (the header is line 1) and its text as read; the good rows of the day land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_rows_are_dead_letters_with_their_source_lines() {
    let rows = [
        "1,NAM,2026-03-05T06:00:00Z,10.00",
        "2,EU,2026-03-05T07:00:00Z,abc",
        "3,APAC,2026-03-05T09:00:00Z,30.00",
        "4,LATAM,not-a-time,40.00",
        "5,NAM,2026-03-05T11:00:00Z,50.00",
    ];
    // Line numbers: the header is line 1, so rows[i] is line i + 2.
    let bad: BTreeMap<u64, &str> = BTreeMap::from([(3, rows[1]), (5, rows[3])]);
    let rows: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
    let (home, source, day) = home_with(&rows).await;
    let out = home.path("out/errors");
    let outcome = home
        .run(
            errs::DAG_ID,
            day,
            conf([("source", s(&source)), ("output", s(&out))]),
        )
        .await;
    home.assert_run_state(&outcome.run, RunState::Success).await;
    assert_partition_rows(&out, DAY, (rows.len() - bad.len()) as u64);

    let letters = home.dead_letters(errs::DAG_ID).await;
    let got: BTreeMap<u64, &str> = letters
        .iter()
        .filter(|d| d.error_class == "parse")
        .map(|d| (d.line, d.raw.as_str()))
        .collect();
    assert_eq!(got, bad, "{letters:#?}");
    for d in &letters {
        assert_eq!(d.error_class, "parse", "only records, no batch: {d:?}");
        assert_eq!(d.task_id, "load");
        assert_eq!(d.run_id, outcome.run.run_id.as_str());
    }
}
