-- API: what it sends the orchestrator (start, signal, cancel, resume),
-- delivered in order per run and retried until acknowledged.
CREATE TABLE commands (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    acked_at        TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT
);
CREATE INDEX commands_due ON commands (next_attempt_at) WHERE acked_at IS NULL;
CREATE INDEX commands_run ON commands (run_id, seq);

-- API: events applied from the orchestrator, once each.
CREATE TABLE run_events (
    event_id   TEXT PRIMARY KEY,
    run_id     TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    data       TEXT NOT NULL,
    at         TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    UNIQUE (run_id, seq)
);

-- API: every provider webhook delivery, verified first, deduplicated second.
CREATE TABLE webhook_deliveries (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    provider         TEXT NOT NULL,
    idempotency_key  TEXT,
    run_id           TEXT,
    headers          TEXT NOT NULL,
    body             TEXT NOT NULL,
    signature_status TEXT NOT NULL,
    outcome          TEXT NOT NULL,
    received_at      TEXT NOT NULL
);
CREATE UNIQUE INDEX webhook_deliveries_key ON webhook_deliveries (provider, idempotency_key);
