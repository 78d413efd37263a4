-- API: HITL gate instances, the audit of every decision attempt, and the
-- chat transcript (gate notifications land here first).
CREATE TABLE gates (
    run_id       TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    gate         TEXT NOT NULL,
    -- awaiting | approved | rejected | expired
    status       TEXT NOT NULL,
    preview      JSONB NOT NULL,
    requested_at TIMESTAMPTZ NOT NULL,
    resolved_at  TIMESTAMPTZ,
    decision     TEXT,
    approver     TEXT,
    reason       TEXT,
    -- the command that tells the orchestrator (acknowledged when its acked_at is set)
    command_seq  BIGINT,
    PRIMARY KEY (run_id, gate)
);
CREATE INDEX gates_awaiting ON gates (status, requested_at);

CREATE TABLE gate_audit (
    seq        BIGSERIAL PRIMARY KEY,
    run_id     TEXT NOT NULL,
    gate       TEXT NOT NULL,
    at         TIMESTAMPTZ NOT NULL,
    action     TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    credential TEXT NOT NULL,
    ip         TEXT,
    user_agent TEXT
);
CREATE INDEX gate_audit_run ON gate_audit (run_id, seq);

CREATE TABLE chat_messages (
    seq        BIGSERIAL PRIMARY KEY,
    user_id    TEXT NOT NULL,
    role       TEXT NOT NULL,
    text       TEXT NOT NULL,
    run_id     TEXT,
    gate       TEXT,
    link       TEXT,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX chat_messages_user ON chat_messages (user_id, seq);
