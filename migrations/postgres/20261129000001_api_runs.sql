-- API: runs and their artifacts.
CREATE TABLE runs (
    seq             BIGSERIAL PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    project         TEXT NOT NULL,
    status          TEXT NOT NULL,
    current_persona TEXT,
    user_id         TEXT,
    payload         JSONB NOT NULL,
    result          JSONB NOT NULL,
    -- Delivery of the start to the orchestrator (retried until acknowledged).
    start_acked_at  TIMESTAMPTZ,
    start_attempts  BIGINT NOT NULL DEFAULT 0,
    start_error     TEXT,
    next_start_at   TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX runs_status_seq ON runs (status, seq);
CREATE INDEX runs_project_seq ON runs (project, seq);
CREATE INDEX runs_start_due ON runs (next_start_at) WHERE start_acked_at IS NULL;

CREATE TABLE artifacts (
    seq        BIGSERIAL PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    persona    TEXT,
    data       JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX artifacts_run ON artifacts (run_id, seq);
