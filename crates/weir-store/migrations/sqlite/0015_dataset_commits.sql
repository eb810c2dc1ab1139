-- Dataset commits whose commit point is a row here, so that writers on any host can commit to
-- one dataset in a shared folder or an object store (no folder rename involved).
-- A commit is `pending` while its writer puts part files (each path is recorded before its put,
-- so a rollback finds every file), `committed` once it is the partition's head, `superseded`
-- when a later commit replaced it, and `rolled_back` when its writer's lease ran out first
-- (`ended_at`: when it was superseded or rolled back).
CREATE TABLE dataset_commits (
    commit_id     TEXT    PRIMARY KEY,
    dataset       TEXT    NOT NULL,
    partition     TEXT    NOT NULL,
    owner         TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    files         TEXT    NOT NULL,
    rows          BIGINT  NOT NULL,
    bytes         BIGINT  NOT NULL,
    version       BIGINT,
    created_at    BIGINT  NOT NULL,
    lease_until   BIGINT  NOT NULL,
    committed_at  BIGINT,
    ended_at      BIGINT
);
CREATE INDEX dataset_commits_by_state ON dataset_commits (dataset, state);
-- The committed version of each partition; the compare-and-set of a commit is on `version`.
CREATE TABLE dataset_heads (
    dataset      TEXT    NOT NULL,
    partition    TEXT    NOT NULL,
    version      BIGINT  NOT NULL,
    commit_id    TEXT    NOT NULL,
    committed_at BIGINT  NOT NULL,
    PRIMARY KEY (dataset, partition)
);
