-- API: reads of runs that walked the whole table (docs/operations.md,
-- "Production Postgres"; measured on a million runs by scripts/pg-explain).

-- The runs not ended: MAX_ACTIVE_RUNS counts them on every start, /metrics
-- groups them by project and status, retention checks them. Small (only
-- unfinished runs are in it); the predicate is the queries' own.
CREATE INDEX IF NOT EXISTS runs_active ON runs (project, status)
    WHERE status NOT IN ('published', 'failed', 'cancelled', 'rejected', 'expired');

-- Postgres also gets runs_created (created_at) and runs_project_status
-- (project, status, seq) for the run lists' filters. SQLite's planner uses
-- no index for those filters as list_runs writes them ("$1 IS NULL OR
-- status = $1": EXPLAIN QUERY PLAN shows SCAN runs with or without them),
-- so here they would only cost writes.
