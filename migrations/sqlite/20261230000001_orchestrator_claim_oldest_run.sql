-- The claim takes the oldest run first (by its execution's creation), not
-- the one that became runnable first: a run woken by a callback goes ahead
-- of younger runs, so runs finish roughly in the order they started,
-- instead of every run advancing a step before any finishes
-- (docs/engine.md, "Leases and workers"). The walk stops at the first
-- free row of this index, as it did on (status, updated_at).
-- On a large Postgres database, build it first without blocking writes
-- (`CREATE INDEX CONCURRENTLY executions_oldest ON executions (status,
-- created_at)`): this migration then finds it (docs/operations.md).
CREATE INDEX IF NOT EXISTS executions_oldest ON executions (status, created_at);
DROP INDEX IF EXISTS executions_ready;
