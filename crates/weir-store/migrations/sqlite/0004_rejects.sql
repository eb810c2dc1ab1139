-- Source rows a task could not read, kept whole: one row per source position, so reading the
-- same source again updates the entry instead of adding a second. The dead-letter work extends
-- this table (replay state, error classes).
CREATE TABLE rejects (
    source       TEXT    NOT NULL,
    line         INTEGER NOT NULL,
    raw          TEXT    NOT NULL,
    reason       TEXT    NOT NULL,
    dag_id       TEXT    NOT NULL,
    run_id       TEXT    NOT NULL,
    task_id      TEXT    NOT NULL,
    map_index    INTEGER NOT NULL,
    try_number   INTEGER NOT NULL,
    rejected_at  INTEGER NOT NULL,
    PRIMARY KEY (source, line)
);
CREATE INDEX rejects_by_run ON rejects (dag_id, run_id);
