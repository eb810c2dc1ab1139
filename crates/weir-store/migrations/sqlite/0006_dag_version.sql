-- Which version of its DAG a run was created with (a DAG file's content hash), so a run keeps
-- the definition it started with while the file changes under a running scheduler.
ALTER TABLE dag_runs ADD COLUMN dag_version TEXT;
