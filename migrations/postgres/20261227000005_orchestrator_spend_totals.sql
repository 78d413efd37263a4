-- Orchestrator: the spend of a period (a spend limit, checked before every
-- paid call) read from the index alone, never the table; it replaces
-- spend_at, which only that query used.
CREATE INDEX IF NOT EXISTS spend_totals ON spend (mode, at, project, usd_micros);
DROP INDEX IF EXISTS spend_at;
