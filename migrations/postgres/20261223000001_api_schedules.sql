-- API: schedules (a cron pattern in a time zone that starts runs) and their
-- firings. A firing is claimed by moving `next_fire_at` on from the value
-- read (one conditional update: of several API replicas one wins) and
-- recorded with the run it started, in the same transaction as the run;
-- (schedule_id, fire_at) is unique, so a firing never starts two runs.
-- `next_fire_at` is NULL while the schedule is paused.
CREATE TABLE schedules (
    seq          BIGSERIAL PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    project      TEXT NOT NULL,
    cron         TEXT NOT NULL,
    timezone     TEXT NOT NULL,
    -- The inputs taken in turn, one per run started (a list of one for `input`).
    inputs       JSONB NOT NULL,
    options      JSONB NOT NULL,
    status       TEXT NOT NULL,
    next_fire_at TIMESTAMPTZ,
    -- Index in `inputs` of the next run's input.
    next_input   BIGINT NOT NULL DEFAULT 0,
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_fire_at);

CREATE TABLE schedule_firings (
    seq         BIGSERIAL PRIMARY KEY,
    schedule_id TEXT NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    -- The firing time (the schedule's `next_fire_at` when it was claimed).
    fire_at     TIMESTAMPTZ NOT NULL,
    -- When it was handled (later than fire_at after a restart).
    fired_at    TIMESTAMPTZ NOT NULL,
    -- `started` (run_id set) or `refused` (reason set).
    outcome     TEXT NOT NULL,
    run_id      TEXT,
    reason      TEXT,
    -- Later firing times missed while no API ran, started with this one.
    skipped     BIGINT NOT NULL DEFAULT 0,
    UNIQUE (schedule_id, fire_at)
);
CREATE INDEX schedule_firings_fire_at ON schedule_firings (fire_at);
