-- The logs of tries that ran on workers, kept in the store so that any host can read them.
CREATE TABLE try_logs (
    dag_id        TEXT    NOT NULL,
    run_id        TEXT    NOT NULL,
    clear_number  BIGINT  NOT NULL,
    task_id       TEXT    NOT NULL,
    map_index     BIGINT  NOT NULL,
    try_number    BIGINT  NOT NULL,
    host          TEXT    NOT NULL,
    text          TEXT    NOT NULL,
    saved_at      BIGINT  NOT NULL,
    PRIMARY KEY (dag_id, run_id, clear_number, task_id, map_index, try_number)
);
