-- Sensors in reschedule mode give their slot back and wait in a state of their own. SQLite cannot
-- change a CHECK in place: the table is rebuilt with the new list and its rows copied.
CREATE TABLE task_instances_v2 (
    dag_id       TEXT    NOT NULL,
    run_id       TEXT    NOT NULL,
    task_id      TEXT    NOT NULL,
    map_index    INTEGER NOT NULL DEFAULT -1,
    state        TEXT    NOT NULL CHECK (state IN ('none', 'scheduled', 'queued', 'running', 'success',
                         'failed', 'up_for_retry', 'up_for_reschedule', 'upstream_failed', 'skipped',
                         'removed')),
    try_number   INTEGER NOT NULL DEFAULT 0,
    max_tries    INTEGER NOT NULL,
    pool         TEXT    NOT NULL,
    pool_slots   INTEGER NOT NULL DEFAULT 1,
    started_at   INTEGER,
    ended_at     INTEGER,
    retry_at     INTEGER,
    lease_until  INTEGER,
    error        TEXT,
    PRIMARY KEY (dag_id, run_id, task_id, map_index),
    FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
);
INSERT INTO task_instances_v2 SELECT dag_id, run_id, task_id, map_index, state, try_number, max_tries,
    pool, pool_slots, started_at, ended_at, retry_at, lease_until, error FROM task_instances;
DROP TABLE task_instances;
ALTER TABLE task_instances_v2 RENAME TO task_instances;
CREATE INDEX task_instances_running ON task_instances (state, lease_until);
