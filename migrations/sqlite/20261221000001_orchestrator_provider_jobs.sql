-- Orchestrator: provider jobs of live runs in flight (kie.ai clips,
-- Shotstack renders), kept only while MAX_PROVIDER_JOBS caps them. A row is
-- taken before the job's submission (one per journal key) and removed with
-- the step that learns the job ended, or with the run's end.
CREATE TABLE provider_jobs (
    key        TEXT PRIMARY KEY,
    run_id     TEXT NOT NULL,
    provider   TEXT NOT NULL,
    started_at TEXT NOT NULL
);
CREATE INDEX provider_jobs_provider ON provider_jobs (provider);
CREATE INDEX provider_jobs_run ON provider_jobs (run_id);
