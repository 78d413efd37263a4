-- Postgres only (a server-side function for a step's commit in one round
-- trip); SQLite runs in process, where round trips cost nothing. Kept so
-- both backends have the same migrations.
SELECT 1;
