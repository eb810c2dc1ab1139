-- weir's schema on PostgreSQL: the SQLite schema as its migrations 1-11 left it, in PostgreSQL's
-- types. Times are microseconds since the Unix epoch (BIGINT), JSON values are text, as on
-- SQLite, so one set of statements serves both backends.
--
-- `rowid` columns stand in for SQLite's implicit rowid: insertion order, which the statements
-- that list task instances and prune checkpoints order by.

CREATE TABLE dag_runs (
    dag_id             TEXT    NOT NULL,
    run_id             TEXT    NOT NULL,
    kind               TEXT    NOT NULL CHECK (kind IN ('scheduled', 'manual', 'backfill')),
    state              TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'success', 'failed')),
    logical_date       BIGINT  NOT NULL,
    interval_start     BIGINT  NOT NULL,
    interval_end       BIGINT  NOT NULL,
    run_after          BIGINT  NOT NULL,
    conf               TEXT    NOT NULL DEFAULT '{}',
    created_at         BIGINT  NOT NULL,
    started_at         BIGINT,
    ended_at           BIGINT,
    clear_number       BIGINT  NOT NULL DEFAULT 0,
    owner              TEXT,
    owner_token        BIGINT  NOT NULL DEFAULT 0,
    owner_lease_until  BIGINT,
    dag_version        TEXT,
    PRIMARY KEY (dag_id, run_id),
    UNIQUE (dag_id, logical_date)
);
CREATE INDEX dag_runs_state ON dag_runs (state, dag_id);

CREATE TABLE task_instances (
    rowid        BIGINT  GENERATED ALWAYS AS IDENTITY,
    dag_id       TEXT    NOT NULL,
    run_id       TEXT    NOT NULL,
    task_id      TEXT    NOT NULL,
    map_index    BIGINT  NOT NULL DEFAULT -1,
    state        TEXT    NOT NULL CHECK (state IN ('none', 'scheduled', 'queued', 'running', 'success',
                         'failed', 'up_for_retry', 'up_for_reschedule', 'upstream_failed', 'skipped',
                         'removed')),
    try_number   BIGINT  NOT NULL DEFAULT 0,
    max_tries    BIGINT  NOT NULL,
    pool         TEXT    NOT NULL,
    pool_slots   BIGINT  NOT NULL DEFAULT 1,
    started_at   BIGINT,
    ended_at     BIGINT,
    retry_at     BIGINT,
    lease_until  BIGINT,
    error        TEXT,
    PRIMARY KEY (dag_id, run_id, task_id, map_index),
    FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
);
CREATE INDEX task_instances_running ON task_instances (state, lease_until);
CREATE INDEX task_instances_order ON task_instances (dag_id, run_id, rowid);

CREATE TABLE task_tries (
    dag_id        TEXT    NOT NULL,
    run_id        TEXT    NOT NULL,
    clear_number  BIGINT  NOT NULL DEFAULT 0,
    task_id       TEXT    NOT NULL,
    map_index     BIGINT  NOT NULL,
    try_number    BIGINT  NOT NULL,
    state         TEXT    NOT NULL,
    started_at    BIGINT,
    ended_at      BIGINT  NOT NULL,
    error         TEXT,
    PRIMARY KEY (dag_id, run_id, clear_number, task_id, map_index, try_number),
    FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
);

CREATE TABLE task_outputs (
    dag_id     TEXT    NOT NULL,
    run_id     TEXT    NOT NULL,
    task_id    TEXT    NOT NULL,
    map_index  BIGINT  NOT NULL,
    value      TEXT    NOT NULL,
    PRIMARY KEY (dag_id, run_id, task_id, map_index),
    FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
);

CREATE TABLE pools (
    name         TEXT    PRIMARY KEY,
    slots        BIGINT  NOT NULL CHECK (slots >= 0),
    description  TEXT    NOT NULL DEFAULT ''
);
INSERT INTO pools (name, slots, description) VALUES ('default_pool', 128, 'Default pool');

CREATE TABLE partition_manifests (
    id             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset        TEXT    NOT NULL,
    partition      TEXT    NOT NULL,
    rows_in        BIGINT  NOT NULL,
    rows_out       BIGINT  NOT NULL,
    rows_rejected  BIGINT  NOT NULL,
    bytes          BIGINT  NOT NULL,
    files          BIGINT  NOT NULL,
    checksum       TEXT    NOT NULL,
    schema         TEXT    NOT NULL,
    dag_id         TEXT    NOT NULL,
    run_id         TEXT    NOT NULL,
    task_id        TEXT    NOT NULL,
    map_index      BIGINT  NOT NULL,
    try_number     BIGINT  NOT NULL,
    committed_at   BIGINT  NOT NULL,
    incomplete     TEXT
);
CREATE INDEX partition_manifests_lookup ON partition_manifests (dataset, partition, id);

CREATE TABLE dag_versions (
    dag_id      TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (dag_id, version)
);

CREATE TABLE dead_letters (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source        TEXT    NOT NULL,
    line          BIGINT  NOT NULL,
    raw           TEXT    NOT NULL,
    corrected     TEXT,
    reason        TEXT    NOT NULL,
    error_class   TEXT    NOT NULL,
    dag_id        TEXT    NOT NULL,
    run_id        TEXT    NOT NULL,
    task_id       TEXT    NOT NULL,
    map_index     BIGINT  NOT NULL,
    try_number    BIGINT  NOT NULL,
    first_seen    BIGINT  NOT NULL,
    last_seen     BIGINT  NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'replaying', 'replayed', 'quarantined')),
    replays       BIGINT  NOT NULL DEFAULT 0,
    last_error    TEXT,
    replay_batch  TEXT,
    replayed_into TEXT,
    replayed_at   BIGINT,
    UNIQUE (source, line)
);
CREATE INDEX dead_letters_by_run ON dead_letters (dag_id, run_id);
CREATE INDEX dead_letters_by_status ON dead_letters (status, dag_id);

CREATE TABLE check_results (
    id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dag_id      TEXT    NOT NULL,
    run_id      TEXT    NOT NULL,
    task_id     TEXT    NOT NULL,
    map_index   BIGINT  NOT NULL,
    try_number  BIGINT  NOT NULL,
    gate        TEXT    NOT NULL CHECK (gate IN ('input', 'output')),
    name        TEXT    NOT NULL,
    rule        TEXT    NOT NULL,
    severity    TEXT    NOT NULL CHECK (severity IN ('error', 'warn')),
    passed      BOOLEAN NOT NULL,
    failing     BIGINT  NOT NULL,
    observed    TEXT,
    sample      TEXT    NOT NULL DEFAULT '[]',
    checked_at  BIGINT  NOT NULL
);
CREATE INDEX check_results_by_run ON check_results (dag_id, run_id);

CREATE TABLE checkpoints (
    rowid        BIGINT  GENERATED ALWAYS AS IDENTITY,
    dag_id       TEXT    NOT NULL,
    run_id       TEXT    NOT NULL,
    task_id      TEXT    NOT NULL,
    map_index    BIGINT  NOT NULL,
    clear_number BIGINT  NOT NULL,
    seq          BIGINT  NOT NULL,
    state        TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    version      BIGINT  NOT NULL,
    checksum     TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (dag_id, run_id, task_id, map_index, clear_number, seq)
);
