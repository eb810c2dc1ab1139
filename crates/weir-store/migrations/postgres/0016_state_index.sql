-- Claims count `running` instances per pool across every DAG, and on PostgreSQL take each
-- running run's `scheduled` instances in creation order: without these each claim read, and
-- sorted, every scheduled instance.
CREATE INDEX task_instances_by_state_pool ON task_instances (state, pool);
CREATE INDEX task_instances_run_state ON task_instances (dag_id, run_id, state, rowid);
