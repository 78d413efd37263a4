-- Chat messages pushed to a channel (Telegram, an incoming webhook): an
-- outbox, written with the message, delivered and retried by the API.
CREATE TABLE chat_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    message_seq     INTEGER NOT NULL REFERENCES chat_messages (seq),
    channel         TEXT NOT NULL,
    target          TEXT NOT NULL,
    text            TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    delivered_at    TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX chat_deliveries_due ON chat_deliveries (status, next_attempt_at);

-- Chat asks for a user's recent runs.
CREATE INDEX runs_user ON runs (user_id, seq);
