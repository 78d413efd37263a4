-- An execution's row is written several times per step (the claim's lease,
-- the step's commit, a signal's wake). Keep it narrow: its large JSON
-- columns (the request, about 3 KB, and the state) go out of line (TOAST)
-- once a row passes 128 bytes, so those writes copy a few hundred bytes
-- instead of the whole row. Applies to rows as they are next written.
-- (A lower fillfactor was measured and left out: it did not raise the
-- share of HOT updates, docs/operations.md, "Production Postgres".)
ALTER TABLE executions SET (toast_tuple_target = 128);
