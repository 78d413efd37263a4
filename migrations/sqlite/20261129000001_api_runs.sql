-- API: runs and their artifacts.
CREATE TABLE runs (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    project         TEXT NOT NULL,
    status          TEXT NOT NULL,
    current_persona TEXT,
    user_id         TEXT,
    payload         TEXT NOT NULL,
    result          TEXT NOT NULL,
    -- seq of the last orchestrator event applied (events apply in order).
    last_event_seq  INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX runs_status_seq ON runs (status, seq);
CREATE INDEX runs_project_seq ON runs (project, seq);

CREATE TABLE artifacts (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    persona    TEXT,
    data       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX artifacts_run ON artifacts (run_id, seq);
