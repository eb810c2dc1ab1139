-- Checkpoints: a task's progress through a source, saved as it goes so a retry or a restarted
-- process resumes instead of starting over. Keyed by the task instance and its clear number (a
-- cleared re-run never resumes an earlier attempt's position) and a sequence number; each
-- holds the identity of the source its position is in, a format version and a checksum.
CREATE TABLE checkpoints (
    dag_id       TEXT    NOT NULL,
    run_id       TEXT    NOT NULL,
    task_id      TEXT    NOT NULL,
    map_index    INTEGER NOT NULL,
    clear_number INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    state        TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    checksum     TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (dag_id, run_id, task_id, map_index, clear_number, seq)
);
