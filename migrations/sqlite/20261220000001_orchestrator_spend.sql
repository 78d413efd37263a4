-- Orchestrator: what every paid call cost, recorded as it is made. A
-- provider call's row is written with its journal entry's success (one
-- per journal key: NULL keys, the LLM requests', never conflict); an LLM
-- request's with the step that used it. Budgets sum it per day, project
-- and mode (`at`).
CREATE TABLE spend (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      TEXT NOT NULL,
    project     TEXT NOT NULL,
    provider    TEXT NOT NULL,
    operation   TEXT NOT NULL,
    model       TEXT,
    -- clips, rendered minutes, publishes, or an LLM request's tokens
    units       REAL NOT NULL,
    usd_micros  INTEGER NOT NULL,
    -- live | mock (what a mock run would have cost)
    mode        TEXT NOT NULL,
    journal_key TEXT,
    at          TEXT NOT NULL,
    UNIQUE (run_id, journal_key)
);
CREATE INDEX spend_at ON spend (at);
