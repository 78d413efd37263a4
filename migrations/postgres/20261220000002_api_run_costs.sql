-- API: a run's estimated cost (known when it is created), and every
-- cost.recorded event applied (once, with the event), for the run's cost
-- and the per-day totals of GET /v1/costs (`day`: the UTC date of `at`).
ALTER TABLE runs ADD COLUMN estimated_usd_micros BIGINT;

CREATE TABLE run_costs (
    event_id    TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    project     TEXT NOT NULL,
    provider    TEXT NOT NULL,
    operation   TEXT NOT NULL,
    model       TEXT,
    units       DOUBLE PRECISION NOT NULL,
    usd_micros  BIGINT NOT NULL,
    mode        TEXT NOT NULL,
    journal_key TEXT,
    at          TIMESTAMPTZ NOT NULL,
    day         TEXT NOT NULL
);
CREATE INDEX run_costs_run ON run_costs (run_id);
CREATE INDEX run_costs_day ON run_costs (day, project);
