//! Integration tests of weir-store: the conformance suite every backend must pass, run against
//! SQLite and a real PostgreSQL (`WEIR_TEST_POSTGRES_URL`, started by `.ci/postgres`).

mod conformance;
mod coordination;

use std::sync::Arc;

use weir_store::{SqlStore, Store};

async fn sqlite() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::open(&dir.path().join("weir.db")).await.unwrap();
    (dir, Arc::new(store))
}

async fn postgres() -> Arc<dyn Store> {
    let url = weir_store::testing::postgres_schema_url().await;
    weir_store::open(&url).await.unwrap()
}

/// Each conformance function becomes two tests, `sqlite::NAME` and `postgres::NAME`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let (_dir, store) = super::sqlite().await;
                    super::conformance::$name(store.as_ref()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let store = super::postgres().await;
                    super::conformance::$name(store.as_ref()).await;
                }
            )*
        }
    };
}

conformance!(
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
    dataset_commits_are_compare_and_set_on_the_head,
);

/// Each coordination function becomes `sqlite::NAME` and `postgres::NAME`, given the URL of a
/// fresh store to open as many times as it has owners.
macro_rules! coordination {
    ($($name:ident),* $(,)?) => {
        mod coordination_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let url = format!("sqlite://{}", dir.path().join("weir.db").display());
                    super::coordination::$name(&url).await;
                }
            )*
        }
        mod coordination_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let url = weir_store::testing::postgres_schema_url().await;
                    super::coordination::$name(&url).await;
                }
            )*
        }
    };
}

coordination!(
    claims_count_pool_slots_and_dag_limits_across_owners,
    a_lost_lease_fences_the_late_owner_and_a_live_one_keeps_its_task,
    two_live_executors_race_for_one_run_and_one_wins,
    concurrent_claimers_never_double_claim_or_overfill_a_pool,
    try_logs_are_kept_for_every_host,
    a_full_pool_backlog_does_not_hide_work_that_can_start,
    concurrent_commits_of_one_partition_take_turns,
);

#[tokio::test]
async fn data_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weir.db");
    {
        let store = SqlStore::open(&path).await.unwrap();
        weir_store::RunStore::create_run(&store, conformance::new_run("d", 0))
            .await
            .unwrap();
    }
    let store = SqlStore::open(&path).await.unwrap();
    let runs = weir_store::RunStore::list_runs(&store, &Default::default())
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
}
