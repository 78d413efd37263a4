-- API: the commands not yet acknowledged, in order (the reconciler's
-- commands_due, every second) and per run (pending_commands on every
-- callback, and commands_due's "no earlier pending command of the run").
-- Both indexes hold only unacknowledged commands, so they stay small while
-- commands grows by about 15 rows per run (docs/operations.md, "Production
-- Postgres").
CREATE INDEX IF NOT EXISTS commands_unacked ON commands (seq) WHERE acked_at IS NULL;
CREATE INDEX IF NOT EXISTS commands_pending ON commands (run_id, seq) WHERE acked_at IS NULL;

-- The planner sees how many commands wait from the table's statistics. With
-- the default (analyze after 10 % of the rows changed: 300,000 changes on a
-- table of 3 million) a backlog of thousands can form and drain unseen, and
-- plans chosen for a few pending rows walk thousands. Analyze after 5,000
-- changes instead, whatever the table's size.
ALTER TABLE commands SET (autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 5000);
