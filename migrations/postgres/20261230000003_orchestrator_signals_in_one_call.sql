-- A run's signals added in one round trip (Postgres), as mw_commit_step
-- does for a step: the statements the orchestrator sent one by one inside
-- a transaction (BEGIN, the execution's row lock, the signals' INSERT, the
-- wake, COMMIT) run here, in the same order and with the same meaning.
-- The row lock orders a run's signals (seq order is commit order, which a
-- step's `consumed_through` relies on) and comes before the signal rows,
-- as in mw_commit_step (one lock order: no deadlock).
-- `p_signals`: [{"id", "body"}], in order; their seqs follow that order.
-- Returns the ids inserted now (a repeated id is not), or NULL when the
-- run has no execution (nothing written).
CREATE FUNCTION mw_add_signals(
    p_run_id  TEXT,
    p_signals JSONB,
    p_now     TIMESTAMPTZ
) RETURNS TEXT[]
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_status TEXT;
    inserted TEXT[];
BEGIN
    SELECT status INTO v_status FROM executions WHERE run_id = p_run_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    WITH added AS (
        INSERT INTO signals (run_id, signal_id, body, received_at)
        SELECT p_run_id, s ->> 'id', s -> 'body', p_now
        FROM jsonb_array_elements(p_signals) WITH ORDINALITY AS t (s, o)
        ORDER BY o
        ON CONFLICT (run_id, signal_id) DO NOTHING
        RETURNING signal_id
    )
    SELECT coalesce(array_agg(signal_id), '{}') INTO inserted FROM added;
    IF cardinality(inserted) > 0 AND v_status = 'waiting' THEN
        UPDATE executions SET status = 'runnable', updated_at = p_now WHERE run_id = p_run_id;
    END IF;
    RETURN inserted;
END
$$;
