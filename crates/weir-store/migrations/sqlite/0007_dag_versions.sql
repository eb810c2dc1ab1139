-- The source of every version of a DAG file a run was created with, so a process that resumes
-- the run after the file changed (or was removed) runs the version the run started with.
CREATE TABLE dag_versions (
    dag_id TEXT NOT NULL,
    version TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (dag_id, version)
);
