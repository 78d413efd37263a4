-- API: reads of runs that walked the whole table (docs/operations.md,
-- "Production Postgres"; measured on a million runs by scripts/pg-explain).
-- IF NOT EXISTS: an index built beforehand by hand (CREATE INDEX
-- CONCURRENTLY on Postgres, without blocking writes) is kept.

-- The runs not ended: MAX_ACTIVE_RUNS counts them on every start, /metrics
-- groups them by project and status, retention checks them. Small (only
-- unfinished runs are in it); the predicate is the queries' own.
CREATE INDEX IF NOT EXISTS runs_active ON runs (project, status)
    WHERE status NOT IN ('published', 'failed', 'cancelled', 'rejected', 'expired');

-- The console's from/to filter (created_at), alone or with a status.
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at);

-- GET /v1/runs and the console with both a project and a status.
CREATE INDEX IF NOT EXISTS runs_project_status ON runs (project, status, seq);
