-- The dead-letter queue: the rejects table grows into it. One row per source position (a file
-- and line, or a batch's location), so reading the same source again updates the entry; an
-- integer id for people (`weir dlq show 17`); the payload as read and as corrected; how often
-- it was replayed, and where it landed.
CREATE TABLE dead_letters (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    source        TEXT    NOT NULL,
    line          INTEGER NOT NULL,
    raw           TEXT    NOT NULL,
    corrected     TEXT,
    reason        TEXT    NOT NULL,
    error_class   TEXT    NOT NULL,
    dag_id        TEXT    NOT NULL,
    run_id        TEXT    NOT NULL,
    task_id       TEXT    NOT NULL,
    map_index     INTEGER NOT NULL,
    try_number    INTEGER NOT NULL,
    first_seen    INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'replaying', 'replayed', 'quarantined')),
    replays       INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    replay_batch  TEXT,
    replayed_into TEXT,
    replayed_at   INTEGER,
    UNIQUE (source, line)
);
INSERT INTO dead_letters (source, line, raw, reason, error_class, dag_id, run_id, task_id,
                          map_index, try_number, first_seen, last_seen)
    SELECT source, line, raw, reason, 'parse', dag_id, run_id, task_id, map_index, try_number,
           rejected_at, rejected_at
    FROM rejects ORDER BY rejected_at, source, line;
DROP TABLE rejects;
CREATE INDEX dead_letters_by_run ON dead_letters (dag_id, run_id);
CREATE INDEX dead_letters_by_status ON dead_letters (status, dag_id);
