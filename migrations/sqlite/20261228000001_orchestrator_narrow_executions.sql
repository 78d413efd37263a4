-- Postgres only (TOAST and fillfactor for the executions table); SQLite
-- has no equivalent. Kept so both backends have the same migrations.
SELECT 1;
