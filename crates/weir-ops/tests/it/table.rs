//! `write_table`: datasets into SQLite tables — append, upsert by key, replace — in batched
//! transactions, with index rebuilds; checked by reading the table back with SQLite itself.

use serde_json::json;
use sqlx::{Connection, SqliteConnection};
use weir_core::TaskState;
use weir_ops::{TableMode, WriteTable, task};

use crate::{World, ts, write_orders};

async fn query_i64(db: &std::path::Path, sql: &str) -> i64 {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
}

#[tokio::test]
async fn append_batches_transactions_and_upsert_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let orders = dir.path().join("orders");
    write_orders(&orders);
    let db = dir.path().join("warehouse.db");
    let append = WriteTable {
        batch_rows: 2,
        ..WriteTable::from_dataset(&db, "orders_append", &orders, TableMode::Append)
    };
    let upsert = WriteTable::from_dataset(
        &db,
        "orders",
        &orders,
        TableMode::Upsert {
            key: vec!["order_id".into()],
        },
    );
    // One DAG per load: a run runs every task of its DAG.
    let w = World::dags(vec![
        ("append", vec![task("append", append)]),
        ("upsert", vec![task("upsert", upsert)]),
    ])
    .await;
    let day = ts("2026-03-01T00:00:00Z");
    let ran = w.run_dag("append", day, json!({}), "append").await;
    assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
    let out = ran.output.unwrap();
    assert_eq!(out["rows"], 5);
    assert_eq!(
        out["transactions"], 3,
        "5 rows in transactions of 2: 2 + 2 + 1"
    );
    assert_eq!(
        query_i64(&db, "SELECT count(*) FROM orders_append").await,
        5
    );
    assert_eq!(
        query_i64(
            &db,
            "SELECT sum(amount) FROM orders_append WHERE dt = '2026-03-01'"
        )
        .await,
        60
    );

    for _ in 0..2 {
        let ran = w.run_dag("upsert", day, json!({}), "upsert").await;
        assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
        assert_eq!(
            ran.output.unwrap()["table_rows"],
            5,
            "loaded twice, no row doubled"
        );
    }
    // An upsert updates what is there.
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE orders SET amount = 0")
        .execute(&mut conn)
        .await
        .unwrap();
    w.run_dag("upsert", day, json!({}), "upsert").await;
    assert_eq!(query_i64(&db, "SELECT sum(amount) FROM orders").await, 150);
}

#[tokio::test]
async fn replace_swaps_the_table_whole_and_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let orders = dir.path().join("orders");
    write_orders(&orders);
    let db = dir.path().join("warehouse.db");
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", db.display()))
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE orders (order_id INTEGER, ts TEXT, region TEXT, amount INTEGER, dt TEXT)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query("INSERT INTO orders VALUES (99, 'x', 'OLD', 1, 'old')")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("CREATE INDEX orders_by_region ON orders (region)")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let replace = WriteTable::from_dataset(&db, "orders", &orders, TableMode::Replace);
    let rebuild = WriteTable {
        rebuild_indexes: true,
        ..WriteTable::from_dataset(&db, "orders", &orders, TableMode::Append)
    };
    let w = World::dags(vec![
        ("replace", vec![task("replace", replace)]),
        ("append", vec![task("append", rebuild)]),
    ])
    .await;
    let day = ts("2026-03-01T00:00:00Z");
    let ran = w.run_dag("replace", day, json!({}), "replace").await;
    assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
    assert_eq!(query_i64(&db, "SELECT count(*) FROM orders").await, 5);
    assert_eq!(
        query_i64(&db, "SELECT count(*) FROM orders WHERE region = 'OLD'").await,
        0
    );
    let index =
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'orders_by_region'";
    assert_eq!(
        query_i64(&db, index).await,
        1,
        "the old table's index is on the new one"
    );
    let ran = w.run_dag("append", day, json!({}), "append").await;
    assert_eq!(
        ran.output.unwrap()["indexes_rebuilt"],
        json!(["orders_by_region"])
    );
    assert_eq!(query_i64(&db, index).await, 1);
    assert_eq!(query_i64(&db, "SELECT count(*) FROM orders").await, 10);
}

#[tokio::test]
async fn bad_table_configs_fail_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("warehouse.db");
    let both = WriteTable {
        query: Some("SELECT 1".into()),
        ..WriteTable::from_dataset(&db, "t", dir.path(), TableMode::Append)
    };
    let no_key = WriteTable::from_dataset(&db, "t", dir.path(), TableMode::Upsert { key: vec![] });
    let bad_name = WriteTable::from_dataset(&db, "t; DROP", dir.path(), TableMode::Append);
    let w = World::new(vec![
        task("both", both).retries(2),
        task("no_key", no_key).retries(2),
        task("bad_name", bad_name).retries(2),
    ])
    .await;
    let day = ts("2026-03-01T00:00:00Z");
    w.run(day, json!({}), "both")
        .await
        .assert_failed_on_try(1, "give `dataset` or `query`, not both");
    w.run(day, json!({}), "no_key")
        .await
        .assert_failed_on_try(1, "upsert needs `key`");
    w.run(day, json!({}), "bad_name")
        .await
        .assert_failed_on_try(1, "must be letters, digits and _ only");
}
