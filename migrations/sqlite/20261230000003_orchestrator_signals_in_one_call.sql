-- Postgres only (mw_add_signals); SQLite keeps the transaction (in
-- process, a round trip costs nothing). Kept so both backends share their
-- migrations' names.
SELECT 1;
