-- An execution's row is written several times per step (the claim's lease,
-- the step's commit, a signal's wake). Keep it narrow and leave room on
-- each page, so those writes copy a few hundred bytes instead of the ~3 KB
-- request and state, and most of them stay HOT (no new index entries):
-- the large JSON columns go out of line (TOAST) once a row passes 128
-- bytes, and pages are filled to 70 %. Applies to rows as they are next
-- written. See docs/benchmarks.md, "Issue 18".
ALTER TABLE executions SET (fillfactor = 70, toast_tuple_target = 128);
