-- Postgres only (mw_journal_paid_then_begin); SQLite keeps the transaction
-- (in process, a round trip costs nothing). Kept so both backends share
-- their migrations' names.
SELECT 1;
