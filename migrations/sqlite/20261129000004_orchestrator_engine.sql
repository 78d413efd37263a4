-- Orchestrator: one execution per run, its journal of side effects, the
-- signals it waits for, and the outbox of events for the API.
CREATE TABLE executions (
    run_id           TEXT PRIMARY KEY,
    project          TEXT NOT NULL,
    request          TEXT NOT NULL,
    -- runnable | waiting | completed | failed | cancelled | rejected
    status           TEXT NOT NULL,
    node             INTEGER NOT NULL DEFAULT 0,
    state            TEXT NOT NULL,
    wait             TEXT,
    wake_at          TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    lease_owner      TEXT,
    lease_until      TEXT,
    event_seq        INTEGER NOT NULL DEFAULT 0,
    steps            INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX executions_claim ON executions (status, wake_at);

CREATE TABLE signals (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      TEXT NOT NULL REFERENCES executions (run_id) ON DELETE CASCADE,
    signal_id   TEXT NOT NULL,
    body        TEXT NOT NULL,
    received_at TEXT NOT NULL,
    consumed_at TEXT,
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
    request    TEXT NOT NULL,
    response   TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);

CREATE TABLE outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT NOT NULL UNIQUE,
    run_id          TEXT NOT NULL,
    run_seq         INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    data            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    delivered_at    TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    UNIQUE (run_id, run_seq)
);
CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE delivered_at IS NULL;

-- Mock providers record every call (never deduplicated), so tests can
-- prove that a clip, a render or a publish was requested exactly once.
CREATE TABLE mock_provider_calls (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    provider   TEXT NOT NULL,
    operation  TEXT NOT NULL,
    key        TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    request    TEXT NOT NULL,
    response   TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX mock_provider_calls_key ON mock_provider_calls (provider, key);
