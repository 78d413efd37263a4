-- Postgres only (server-side functions for a provider call's journal in
-- one round trip each); SQLite runs in process, where round trips cost
-- nothing. Kept so both backends have the same migrations.
SELECT 1;
