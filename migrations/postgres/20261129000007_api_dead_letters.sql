-- API: work that could not be processed (a relayed signal the orchestrator
-- refused, a verified webhook for an unknown run), kept for replay.
CREATE TABLE dead_letters (
    seq             BIGSERIAL PRIMARY KEY,
    kind            TEXT NOT NULL,
    run_id          TEXT,
    payload         JSONB NOT NULL,
    error           TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL,
    last_attempt_at TIMESTAMPTZ,
    resolved_at     TIMESTAMPTZ
);
CREATE INDEX dead_letters_open ON dead_letters (created_at) WHERE resolved_at IS NULL;
