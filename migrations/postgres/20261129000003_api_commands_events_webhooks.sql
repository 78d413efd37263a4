-- API: what it sends the orchestrator (start, signal, cancel, resume),
-- delivered in order per run and retried until acknowledged.
CREATE TABLE commands (
    seq             BIGSERIAL PRIMARY KEY,
    run_id          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    body            JSONB NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    acked_at        TIMESTAMPTZ,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error      TEXT
);
CREATE INDEX commands_due ON commands (next_attempt_at) WHERE acked_at IS NULL;
CREATE INDEX commands_run ON commands (run_id, seq);

-- API: events applied from the orchestrator, once each.
CREATE TABLE run_events (
    event_id   TEXT PRIMARY KEY,
    run_id     TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    data       JSONB NOT NULL,
    at         TIMESTAMPTZ NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL,
    UNIQUE (run_id, seq)
);

-- API: every provider webhook delivery, verified first, deduplicated second.
CREATE TABLE webhook_deliveries (
    seq              BIGSERIAL PRIMARY KEY,
    provider         TEXT NOT NULL,
    idempotency_key  TEXT,
    run_id           TEXT,
    headers          JSONB NOT NULL,
    body             TEXT NOT NULL,
    signature_status TEXT NOT NULL,
    outcome          TEXT NOT NULL,
    received_at      TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX webhook_deliveries_key ON webhook_deliveries (provider, idempotency_key);
