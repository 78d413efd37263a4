-- Postgres only (mw_journal_begin answers 'cancelled'); SQLite's journal
-- transaction reads the flag in the store. Kept so both backends share
-- their migrations' names.
SELECT 1;
