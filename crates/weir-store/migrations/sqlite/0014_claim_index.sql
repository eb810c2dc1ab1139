-- The claim counts running instances per DAG for each candidate: an index keeps that cheap.
CREATE INDEX task_instances_by_dag_state ON task_instances (dag_id, state);
