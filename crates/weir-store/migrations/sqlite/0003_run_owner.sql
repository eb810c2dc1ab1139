-- Who drives a run: the process holding its owner lease (renewed by its heartbeat) and a fencing
-- token that grows with every take-over, checked on every update the owner makes, so a process
-- that lost its run (its lease ran out and another took over) changes nothing.
ALTER TABLE dag_runs ADD COLUMN owner TEXT;
ALTER TABLE dag_runs ADD COLUMN owner_token INTEGER NOT NULL DEFAULT 0;
ALTER TABLE dag_runs ADD COLUMN owner_lease_until INTEGER;
