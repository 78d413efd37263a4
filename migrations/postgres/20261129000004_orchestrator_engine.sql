-- Orchestrator: one execution per run, its journal of side effects, the
-- signals it waits for, and the outbox of events for the API.
CREATE TABLE executions (
    run_id           TEXT PRIMARY KEY,
    project          TEXT NOT NULL,
    request          JSONB NOT NULL,
    -- runnable | waiting | completed | failed | cancelled | rejected
    status           TEXT NOT NULL,
    node             BIGINT NOT NULL DEFAULT 0,
    state            JSONB NOT NULL,
    wait             JSONB,
    wake_at          TIMESTAMPTZ,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    lease_owner      TEXT,
    lease_until      TIMESTAMPTZ,
    event_seq        BIGINT NOT NULL DEFAULT 0,
    steps            BIGINT NOT NULL DEFAULT 0,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX executions_claim ON executions (status, wake_at);

CREATE TABLE signals (
    seq         BIGSERIAL PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES executions (run_id) ON DELETE CASCADE,
    signal_id   TEXT NOT NULL,
    body        JSONB NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    consumed_at TIMESTAMPTZ,
    UNIQUE (run_id, signal_id)
);
CREATE INDEX signals_pending ON signals (run_id) WHERE consumed_at IS NULL;

CREATE TABLE journal (
    run_id     TEXT NOT NULL REFERENCES executions (run_id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    provider   TEXT NOT NULL,
    operation  TEXT NOT NULL,
    -- started | succeeded | failed
    status     TEXT NOT NULL,
    request    JSONB NOT NULL,
    response   JSONB,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, key)
);

CREATE TABLE outbox (
    seq             BIGSERIAL PRIMARY KEY,
    event_id        TEXT NOT NULL UNIQUE,
    run_id          TEXT NOT NULL,
    run_seq         BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    data            JSONB NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    delivered_at    TIMESTAMPTZ,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error      TEXT,
    UNIQUE (run_id, run_seq)
);
CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE delivered_at IS NULL;

-- Mock providers record every call (never deduplicated), so tests can
-- prove that a clip, a render or a publish was requested exactly once.
CREATE TABLE mock_provider_calls (
    seq        BIGSERIAL PRIMARY KEY,
    provider   TEXT NOT NULL,
    operation  TEXT NOT NULL,
    key        TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    request    JSONB NOT NULL,
    response   JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX mock_provider_calls_key ON mock_provider_calls (provider, key);
