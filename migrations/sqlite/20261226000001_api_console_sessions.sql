-- API: console sign-ins (crates/api/src/console). The session id is kept
-- only as its SHA-256 (a copy of this table signs no one in); the key's
-- name and the key's SHA-256 say which key it is (its role is read from the
-- keys configured now: a removed or replaced key ends its sessions).
CREATE TABLE console_sessions (
    id_hash      TEXT PRIMARY KEY,
    key_name     TEXT NOT NULL,
    key_digest   TEXT NOT NULL,
    csrf         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL
);
CREATE INDEX console_sessions_seen ON console_sessions (last_seen_at);
