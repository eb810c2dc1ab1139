-- The store as coordinator: a claimed task instance has an owner and a fencing token that every
-- later change names; instances are routed to worker queues; each DAG's max_active_tasks is
-- kept here, so claims from every process count against it.
ALTER TABLE task_instances ADD COLUMN owner TEXT;
ALTER TABLE task_instances ADD COLUMN owner_token INTEGER NOT NULL DEFAULT 0;
ALTER TABLE task_instances ADD COLUMN queue TEXT NOT NULL DEFAULT 'default';
CREATE INDEX task_instances_ready ON task_instances (state, queue);
CREATE INDEX task_instances_by_pool ON task_instances (pool, state);

CREATE TABLE dag_limits (
    dag_id            TEXT    PRIMARY KEY,
    max_active_tasks  INTEGER NOT NULL CHECK (max_active_tasks >= 0),
    updated_at        INTEGER NOT NULL
);
