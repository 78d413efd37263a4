-- API: sums of run_costs (a spend limit checked on every start, the
-- per-day totals of GET /v1/costs) read from the index alone, never the
-- table. Its first columns are run_costs_day's, which it replaces.
CREATE INDEX IF NOT EXISTS run_costs_totals ON run_costs (day, project, mode, provider, usd_micros);
DROP INDEX IF EXISTS run_costs_day;
