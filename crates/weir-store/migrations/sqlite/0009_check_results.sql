-- Quality-gate results: one row per check a gate ran, passed or failed, stamped with the try
-- that ran it. A re-run adds rows (the earlier tries' results stay, like their tries). `rule`
-- is the rule as configured (JSON), `sample` a JSON array of up to N failing rows, `observed`
-- what the rule measured (a row count, the newest time), if anything.
CREATE TABLE check_results (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    dag_id      TEXT    NOT NULL,
    run_id      TEXT    NOT NULL,
    task_id     TEXT    NOT NULL,
    map_index   INTEGER NOT NULL,
    try_number  INTEGER NOT NULL,
    gate        TEXT    NOT NULL CHECK (gate IN ('input', 'output')),
    name        TEXT    NOT NULL,
    rule        TEXT    NOT NULL,
    severity    TEXT    NOT NULL CHECK (severity IN ('error', 'warn')),
    passed      INTEGER NOT NULL CHECK (passed IN (0, 1)),
    failing     INTEGER NOT NULL,
    observed    TEXT,
    sample      TEXT    NOT NULL DEFAULT '[]',
    checked_at  INTEGER NOT NULL
);
CREATE INDEX check_results_by_run ON check_results (dag_id, run_id);
