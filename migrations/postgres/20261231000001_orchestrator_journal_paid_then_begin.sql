-- A paid call's answer written with the next call's begin, in one round
-- trip (Postgres): Riley submits a run's clips one after another, and each
-- answer went in a transaction of its own, right before the next clip's
-- begin went in another. The order of the writes is unchanged (the answer
-- is durable before the next call is made, as before), so a crash leaves
-- nothing more unknown than it did (docs/engine.md, "Paying once: the
-- journal"). The answer is written whatever the begin finds.
CREATE FUNCTION mw_journal_paid_then_begin(
    p_run_id    TEXT,
    p_key       TEXT,
    p_response  JSONB,
    p_spend     JSONB,
    p_events    JSONB,
    p_worker    TEXT,
    p_next_key  TEXT,
    p_provider  TEXT,
    p_operation TEXT,
    p_request   JSONB,
    p_now       TIMESTAMPTZ,
    OUT recorded BOOLEAN,
    OUT outcome  TEXT
)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- The execution's row first, as mw_journal_begin alone takes it: an
    -- answer recorded before updates only its journal row, which would
    -- otherwise come before the execution's.
    PERFORM 1 FROM executions WHERE run_id = p_run_id FOR UPDATE;
    recorded := mw_journal_paid(p_run_id, p_key, p_response, p_spend, p_events, p_now);
    outcome := mw_journal_begin(p_run_id, p_worker, p_next_key, p_provider, p_operation, p_request, p_now);
END
$$;
