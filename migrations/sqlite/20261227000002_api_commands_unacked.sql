-- API: the commands not yet acknowledged, in order (the reconciler's
-- commands_due, every second) and per run (pending_commands on every
-- callback, and commands_due's "no earlier pending command of the run").
-- Both indexes hold only unacknowledged commands, so they stay small while
-- commands grows by about 15 rows per run (docs/operations.md, "Production
-- Postgres"). Postgres also analyzes the table more often; SQLite has no
-- automatic analyze to tune.
CREATE INDEX IF NOT EXISTS commands_unacked ON commands (seq) WHERE acked_at IS NULL;
CREATE INDEX IF NOT EXISTS commands_pending ON commands (run_id, seq) WHERE acked_at IS NULL;
