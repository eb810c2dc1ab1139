-- weir metadata store, SQLite flavour. Times are microseconds since the Unix epoch, UTC.
CREATE TABLE dag_runs (
    dag_id          TEXT    NOT NULL,
    run_id          TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('scheduled', 'manual', 'backfill')),
    state           TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'success', 'failed')),
    logical_date    INTEGER NOT NULL,
    interval_start  INTEGER NOT NULL,
    interval_end    INTEGER NOT NULL,
    run_after       INTEGER NOT NULL,
    conf            TEXT    NOT NULL DEFAULT '{}',
    created_at      INTEGER NOT NULL,
    started_at      INTEGER,
    ended_at        INTEGER,
    PRIMARY KEY (dag_id, run_id),
    UNIQUE (dag_id, logical_date)
);
CREATE INDEX dag_runs_state ON dag_runs (state, dag_id);

CREATE TABLE task_instances (
    dag_id       TEXT    NOT NULL,
    run_id       TEXT    NOT NULL,
    task_id      TEXT    NOT NULL,
    map_index    INTEGER NOT NULL DEFAULT -1,
    state        TEXT    NOT NULL CHECK (state IN ('none', 'scheduled', 'queued', 'running', 'success',
                         'failed', 'up_for_retry', 'upstream_failed', 'skipped', 'removed')),
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
CREATE INDEX task_instances_running ON task_instances (state, lease_until);

-- One row per finished try: the history behind a task instance's current state.
CREATE TABLE task_tries (
    dag_id      TEXT    NOT NULL,
    run_id      TEXT    NOT NULL,
    task_id     TEXT    NOT NULL,
    map_index   INTEGER NOT NULL,
    try_number  INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    started_at  INTEGER,
    ended_at    INTEGER NOT NULL,
    error       TEXT,
    PRIMARY KEY (dag_id, run_id, task_id, map_index, try_number),
    FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
);

-- Small JSON results of tasks (Airflow's XCom); large results are datasets passed by reference.
CREATE TABLE task_outputs (
    dag_id     TEXT    NOT NULL,
    run_id     TEXT    NOT NULL,
    task_id    TEXT    NOT NULL,
    map_index  INTEGER NOT NULL,
    value      TEXT    NOT NULL,
    PRIMARY KEY (dag_id, run_id, task_id, map_index),
    FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
);

CREATE TABLE pools (
    name         TEXT    PRIMARY KEY,
    slots        INTEGER NOT NULL CHECK (slots >= 0),
    description  TEXT    NOT NULL DEFAULT ''
);
INSERT INTO pools (name, slots, description) VALUES ('default_pool', 128, 'Default pool');

-- One row per committed partition write: what landed, where, and who wrote it.
CREATE TABLE partition_manifests (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset        TEXT    NOT NULL,
    partition      TEXT    NOT NULL,
    rows_in        INTEGER NOT NULL,
    rows_out       INTEGER NOT NULL,
    rows_rejected  INTEGER NOT NULL,
    bytes          INTEGER NOT NULL,
    files          INTEGER NOT NULL,
    checksum       TEXT    NOT NULL,
    schema         TEXT    NOT NULL,
    dag_id         TEXT    NOT NULL,
    run_id         TEXT    NOT NULL,
    task_id        TEXT    NOT NULL,
    map_index      INTEGER NOT NULL,
    try_number     INTEGER NOT NULL,
    committed_at   INTEGER NOT NULL
);
CREATE INDEX partition_manifests_lookup ON partition_manifests (dataset, partition, id);
