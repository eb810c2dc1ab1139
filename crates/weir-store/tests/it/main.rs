//! Integration tests of weir-store: the conformance suite every backend must pass, run here
//! against SQLite (a PostgreSQL backend runs the same functions).

mod conformance;

use std::sync::Arc;

use weir_store::{SqliteStore, Store};

async fn sqlite() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("weir.db"))
        .await
        .unwrap();
    (dir, Arc::new(store))
}

macro_rules! conformance_on_sqlite {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (_dir, store) = sqlite().await;
                conformance::$name(store.as_ref()).await;
            }
        )*
    };
}

conformance_on_sqlite!(
    run_creation_is_idempotent_per_logical_date,
    list_runs_filters_and_orders,
    run_state_changes_are_compare_and_set,
    task_instance_changes_are_compare_and_set_and_record_tries,
    expansion_replaces_the_placeholder_once,
    outputs_come_back_in_map_index_order,
    orphans_are_running_instances_with_expired_leases,
    reset_run_clears_instances_but_keeps_history,
    pools_and_manifests,
    run_ownership_is_leased_and_fenced,
    check_results_are_kept_whole_and_filtered,
    dead_letters_live_through_replays,
);

#[tokio::test]
async fn data_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weir.db");
    {
        let store = SqliteStore::open(&path).await.unwrap();
        weir_store::RunStore::create_run(&store, conformance::new_run("d", 0))
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    let runs = weir_store::RunStore::list_runs(&store, &Default::default())
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
}
