-- Re-running a run (clear) keeps the history of earlier tries: each clear gets a number, and a
-- try is keyed by it too, as Airflow's DagRun.clear_number.
ALTER TABLE dag_runs ADD COLUMN clear_number INTEGER NOT NULL DEFAULT 0;

CREATE TABLE task_tries_v2 (
    dag_id        TEXT    NOT NULL,
    run_id        TEXT    NOT NULL,
    clear_number  INTEGER NOT NULL DEFAULT 0,
    task_id       TEXT    NOT NULL,
    map_index     INTEGER NOT NULL,
    try_number    INTEGER NOT NULL,
    state         TEXT    NOT NULL,
    started_at    INTEGER,
    ended_at      INTEGER NOT NULL,
    error         TEXT,
    PRIMARY KEY (dag_id, run_id, clear_number, task_id, map_index, try_number),
    FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
);
INSERT INTO task_tries_v2 (dag_id, run_id, clear_number, task_id, map_index, try_number, state, started_at, ended_at, error)
    SELECT dag_id, run_id, 0, task_id, map_index, try_number, state, started_at, ended_at, error FROM task_tries;
DROP TABLE task_tries;
ALTER TABLE task_tries_v2 RENAME TO task_tries;
