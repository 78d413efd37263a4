-- The claim takes the oldest run first (by its execution's creation), not
-- the one that became runnable first: a run woken by a callback goes ahead
-- of younger runs, so runs finish roughly in the order they started,
-- instead of every run advancing a step before any finishes
-- (docs/engine.md, "Leases and workers"). The walk stops at the first
-- free row of this index, as it did on (status, updated_at).
DROP INDEX executions_ready;
CREATE INDEX executions_ready ON executions (status, created_at);
