-- mw_journal_begin is the last look at a cancel before a paid call: it
-- answers 'cancelled' (nothing written) when a cancel of the run was
-- requested, reading the flag on the execution's row it already holds.
-- The steps asked in a statement of their own before each call
-- (docs/engine.md, "Paying once: the journal"). An orchestrator of the
-- version before still asks first; a cancel that lands between its look
-- and this call fails that step attempt with an unknown answer, and the
-- retry sees the cancel.
CREATE OR REPLACE FUNCTION mw_journal_begin(
    p_run_id    TEXT,
    p_worker    TEXT,
    p_key       TEXT,
    p_provider  TEXT,
    p_operation TEXT,
    p_request   JSONB,
    p_now       TIMESTAMPTZ
) RETURNS TEXT
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    cancel BOOLEAN;
BEGIN
    SELECT cancel_requested INTO cancel FROM executions
    WHERE run_id = p_run_id AND lease_owner = p_worker FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'lease_lost';
    END IF;
    IF cancel THEN
        RETURN 'cancelled';
    END IF;
    INSERT INTO journal (run_id, key, provider, operation, status, request, created_at, updated_at)
    VALUES (p_run_id, p_key, p_provider, p_operation, 'started', p_request, p_now, p_now)
    ON CONFLICT (run_id, key) DO NOTHING;
    IF FOUND THEN
        RETURN 'begun';
    END IF;
    RETURN 'exists';
END
$$;
