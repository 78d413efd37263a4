-- How many of the execution's signals are unconsumed, kept on its row:
-- add_signal adds one, commit_step subtracts those it consumed, and a step
-- that parks stays runnable while the count is above zero. Deciding from
-- the row it updates (not from a look at the signals table) keeps a park
-- from missing a signal committed while it waited for the row, on Postgres
-- too (see docs/engine.md, "Steps").
ALTER TABLE executions ADD COLUMN pending_signals INTEGER NOT NULL DEFAULT 0;
UPDATE executions SET pending_signals =
    (SELECT COUNT(*) FROM signals s WHERE s.run_id = executions.run_id AND s.consumed_at IS NULL);
