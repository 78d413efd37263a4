-- API: gates_waiting_since (20261224000001) is gates_awaiting again, the
-- same columns in the same order: one of them is enough.
DROP INDEX IF EXISTS gates_waiting_since;
