//! `sql` and `verify`: queries over datasets with run values bound as parameters, results as
//! rows or committed partitions, and what was committed read back against its manifests.

use serde_json::json;
use weir_core::TaskState;
use weir_ops::{Sql, Verify, task};

use crate::{World, ts, write_orders};

const PER_REGION: &str = "SELECT region, count(*) AS orders, sum(amount) AS amount FROM orders \
     WHERE ts >= $data_interval_start AND ts < $data_interval_end GROUP BY region ORDER BY region";

#[tokio::test]
async fn rows_of_the_interval_come_back_as_a_list() {
    let dir = tempfile::tempdir().unwrap();
    write_orders(&dir.path().join("orders"));
    let orders = dir.path().join("orders");
    let w = World::new(vec![
        task("per_region", Sql::new(PER_REGION).table("orders", &orders)),
        task(
            "by_ds",
            Sql::new("SELECT count(*) AS n FROM orders WHERE dt = $ds").table("orders", &orders),
        ),
    ])
    .await;
    // 2026-03-01 (UTC): EU 10 + 20, US 30 (23:59:59 is still the 1st); the 2nd's rows are not.
    let ran = w
        .run(ts("2026-03-01T06:00:00Z"), json!({}), "per_region")
        .await;
    assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
    assert_eq!(
        ran.output.unwrap(),
        json!([{"region": "EU", "orders": 2, "amount": 30}, {"region": "US", "orders": 1, "amount": 30}])
    );
    let ran = w.run(ts("2026-03-02T06:00:00Z"), json!({}), "by_ds").await;
    assert_eq!(ran.output.unwrap(), json!([{"n": 2}]));
}

#[tokio::test]
async fn a_param_is_bound_never_pasted_into_the_query() {
    let dir = tempfile::tempdir().unwrap();
    write_orders(&dir.path().join("orders"));
    let sql = Sql::new("SELECT count(*) AS n FROM orders WHERE region = $region")
        .table("orders", dir.path().join("orders"));
    let w = World::new(vec![task("count", sql)]).await;
    let day = ts("2026-03-01T00:00:00Z");
    let ran = w.run(day, json!({"region": "EU"}), "count").await;
    assert_eq!(ran.output.unwrap(), json!([{"n": 2}]));
    // A value that would change the query's meaning if pasted in is only a value.
    let ran = w
        .run(day, json!({"region": "EU' OR '1'='1"}), "count")
        .await;
    assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
    assert_eq!(ran.output.unwrap(), json!([{"n": 0}]));
}

#[tokio::test]
async fn bad_queries_fail_on_the_first_try_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    write_orders(&dir.path().join("orders"));
    let orders = dir.path().join("orders");
    let w = World::new(vec![
        task(
            "unknown_param",
            Sql::new("SELECT * FROM orders WHERE region = $regoin").table("orders", &orders),
        )
        .retries(2),
        task(
            "no_column",
            Sql::new("SELECT no_such FROM orders").table("orders", &orders),
        )
        .retries(2),
        task(
            "no_table",
            Sql::new("SELECT 1").table("orders", dir.path().join("nowhere")),
        )
        .retries(2),
        task(
            "too_many",
            Sql {
                result: weir_ops::SqlResult::Rows { max_rows: 3 },
                ..Sql::new("SELECT * FROM orders").table("orders", &orders)
            },
        ),
    ])
    .await;
    let day = ts("2026-03-01T00:00:00Z");
    w.run(day, json!({}), "unknown_param")
        .await
        .assert_failed_on_try(1, "uses $regoin but the run has no such value");
    w.run(day, json!({}), "no_column")
        .await
        .assert_failed_on_try(1, "no_such");
    w.run(day, json!({}), "no_table")
        .await
        .assert_failed_on_try(1, "table `orders`");
    w.run(day, json!({}), "too_many")
        .await
        .assert_failed_on_try(1, "returned more than result.max_rows = 3 rows");
}

#[tokio::test]
async fn a_result_committed_as_partitions_replaces_on_rerun_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    write_orders(&dir.path().join("orders"));
    let out = dir.path().join("by_region");
    let sql = Sql::new("SELECT region, order_id, amount FROM orders")
        .table("orders", dir.path().join("orders"))
        .into_dataset(&out, &["region"]);
    let w = World::new(vec![
        task("split", sql),
        task("check", Verify::new(&out)).after(["split"]),
    ])
    .await;
    let day = ts("2026-03-01T00:00:00Z");
    for _ in 0..2 {
        let ran = w.run(day, json!({}), "check").await;
        assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
        let out = ran.output.unwrap();
        assert_eq!(out["rows"], 5);
        assert_eq!(out["unrecorded"], json!([]));
        let verified: Vec<(&str, u64)> = out["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["partition"].as_str().unwrap(),
                    p["rows"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            verified,
            vec![("region=APAC", 1), ("region=EU", 2), ("region=US", 2)]
        );
    }
    let parts: Vec<(String, u64)> = weir_data::Dataset::open(&out)
        .unwrap()
        .partitions()
        .unwrap()
        .into_iter()
        .map(|p| (p.partition, p.rows))
        .collect();
    assert_eq!(
        parts,
        vec![
            ("region=APAC".into(), 1),
            ("region=EU".into(), 2),
            ("region=US".into(), 2)
        ],
        "re-run replaced, nothing doubled"
    );
}

#[tokio::test]
async fn a_partition_changed_behind_weirs_back_fails_verification() {
    let dir = tempfile::tempdir().unwrap();
    write_orders(&dir.path().join("orders"));
    let out = dir.path().join("by_region");
    let sql = Sql::new("SELECT region, order_id, amount FROM orders")
        .table("orders", dir.path().join("orders"))
        .into_dataset(&out, &["region"]);
    let w = World::dags(vec![
        ("write", vec![task("split", sql)]),
        ("check", vec![task("verify", Verify::new(&out)).retries(2)]),
    ])
    .await;
    let day = ts("2026-03-01T00:00:00Z");
    assert_eq!(
        w.run_dag("write", day, json!({}), "split").await.ti.state,
        TaskState::Success
    );
    // Someone copies US's file over EU's: a valid file, other rows.
    let file = out.join("region=EU").join("part-00000.parquet");
    std::fs::copy(out.join("region=US").join("part-00000.parquet"), &file).unwrap();
    let ran = w.run_dag("check", day, json!({}), "verify").await;
    ran.assert_failed_on_try(1, "1 of 3 partitions");
    let error = ran.ti.error.unwrap();
    assert!(error.contains("region=EU: checksum"), "{error}");
    assert!(!error.contains("region=US"), "{error}");
    // A torn file fails too, naming it.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&file, bytes).unwrap();
    w.run_dag("check", day, json!({}), "verify")
        .await
        .assert_failed_on_try(1, "region=EU/part-00000.parquet");
}

/// A source file is a table: streamed with its time column parsed, `local_date(ts, $tz)` cutting
/// the run zone's days, values a Rust DAG computes bound with `bind`; the row it cannot read is
/// kept in the rejects table with its line.
#[tokio::test]
async fn a_source_file_is_a_table_and_its_unreadable_rows_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("orders.csv");
    std::fs::write(
        &src,
        "order_id,region,event_time\n\
         1,EU,2026-03-01T00:30:00Z\n\
         2,US,2026-03-01T16:00:00Z\n\
         3,EU,2026-03-02T01:00:00Z\n\
         4,EU,yesterday\n",
    )
    .unwrap();
    let query = "SELECT arrow_cast(local_date(event_time, $tz), 'Utf8') AS day, count(*) AS n \
                 FROM src WHERE order_id >= $min_id GROUP BY day ORDER BY day";
    let sql = Sql::new(query)
        .source("src", &src, Some("event_time"))
        .bind("min_id", weir_ops::QueryParam::Int(1));
    let w = World::declaring(
        vec![("ops", vec![task("days", sql)])],
        vec![weir_core::ParamSpec::zone("tz", "the run's zone")],
    )
    .await;
    // In Tokyo (UTC+9) 16:00Z on the 1st is already the 2nd.
    let ran = w
        .run(
            ts("2026-03-01T06:00:00Z"),
            json!({"tz": "Asia/Tokyo"}),
            "days",
        )
        .await;
    assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
    assert_eq!(
        ran.output.unwrap(),
        json!([{"day": "2026-03-01", "n": 1}, {"day": "2026-03-02", "n": 2}])
    );
    let rejects =
        w.ex.store()
            .dead_letters(&weir_store::RejectFilter::default())
            .await
            .unwrap();
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert_eq!((rejects[0].line, rejects[0].task_id.as_str()), (5, "days"));
    assert!(rejects[0].raw.contains("yesterday"), "{:?}", rejects[0]);
}

/// A result streams into its partitions and is committed only when the query has finished: a
/// query that fails while it runs (a division by zero in one row) commits nothing. A format
/// that does not exist is a config error before any run.
#[tokio::test]
async fn a_query_failing_while_it_streams_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let orders = dir.path().join("orders");
    write_orders(&orders);
    let out = dir.path().join("out");
    let sql = Sql::new("SELECT region, 10 / (order_id - 4) AS x FROM orders")
        .table("orders", &orders)
        .into_dataset(&out, &["region"]);
    let w = World::new(vec![task("divide", sql)]).await;
    let ran = w.run(ts("2026-03-01T00:00:00Z"), json!({}), "divide").await;
    ran.assert_failed_on_try(1, "Divide by zero");
    let committed = if out.exists() {
        weir_data::Dataset::open(&out)
            .unwrap()
            .partitions()
            .unwrap()
    } else {
        Vec::new()
    };
    assert!(committed.is_empty(), "{committed:?}");

    let mut bad = Sql::new("SELECT 1 AS x").into_dataset(&out, &[]);
    if let weir_ops::SqlResult::Dataset { format, .. } = &mut bad.result {
        *format = Some("xlsx".to_owned());
    }
    let problems = weir_ops::Operator::validate(&bad);
    assert!(
        problems.iter().any(|p| p.contains("result.format")),
        "{problems:?}"
    );
}
