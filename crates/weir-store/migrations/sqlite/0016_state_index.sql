-- Claims count `running` instances per pool across every DAG, and take each running run's
-- `scheduled` instances in creation order: without these each claim read, and sorted, every
-- scheduled instance. (SQLite's indexes end in the rowid, so the second one is in creation
-- order within a run's state; PostgreSQL's names its `rowid` column.)
CREATE INDEX task_instances_by_state_pool ON task_instances (state, pool);
CREATE INDEX task_instances_run_state ON task_instances (dag_id, run_id, state);
