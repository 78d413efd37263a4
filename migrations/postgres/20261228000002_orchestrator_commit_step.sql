-- A step's commit in one round trip (Postgres): the statements the
-- orchestrator sent one by one inside a transaction (BEGIN, the row lock,
-- the signals consumed, the execution, the events, the costs, the job
-- slots, COMMIT) run here, in the same order and with the same meaning,
-- in one call. Each statement of a plpgsql function (VOLATILE) takes a
-- fresh snapshot, as each statement of the transaction did, so the
-- execution's row is still locked first and the "a signal is pending"
-- test after it sees every signal committed before it (docs/engine.md).
-- Returns the execution's last event seq, or NULL when `p_worker` does
-- not hold the lease (nothing is written then).
CREATE FUNCTION mw_commit_step(
    p_run_id           TEXT,
    p_worker           TEXT,
    p_consumed_through BIGINT,
    p_node             BIGINT,
    p_status           TEXT,
    p_state            JSONB,
    p_wait             JSONB,
    p_wake_at          TIMESTAMPTZ,
    p_keep_until       TIMESTAMPTZ,
    p_now              TIMESTAMPTZ,
    -- [{"id", "kind", "data"}], in order
    p_events           JSONB,
    -- rows of `spend`, as JSON objects named by column
    p_spend            JSONB,
    p_release_jobs     BOOLEAN,
    p_jobs_ended       TEXT[]
) RETURNS BIGINT
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n        BIGINT := jsonb_array_length(p_events);
    last_seq BIGINT;
BEGIN
    PERFORM 1 FROM executions WHERE run_id = p_run_id AND lease_owner = p_worker FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF p_consumed_through IS NOT NULL THEN
        UPDATE signals SET consumed_at = p_now
        WHERE run_id = p_run_id AND seq <= p_consumed_through AND consumed_at IS NULL;
    END IF;
    UPDATE executions SET node = p_node,
        status = CASE WHEN p_status = 'waiting' AND (cancel_requested OR EXISTS
            (SELECT 1 FROM signals s WHERE s.run_id = executions.run_id AND s.consumed_at IS NULL))
            THEN 'runnable' ELSE p_status END,
        state = p_state, wait = p_wait, wake_at = p_wake_at,
        lease_owner = CASE WHEN p_keep_until IS NOT NULL THEN lease_owner ELSE NULL END,
        lease_until = p_keep_until,
        event_seq = event_seq + n, steps = steps + 1, updated_at = p_now
    WHERE run_id = p_run_id AND lease_owner = p_worker
    RETURNING event_seq INTO last_seq;
    IF n > 0 THEN
        INSERT INTO outbox (event_id, run_id, run_seq, kind, data, created_at, next_attempt_at)
        SELECT e ->> 'id', p_run_id, last_seq - n + o, e ->> 'kind', e -> 'data', p_now, p_now
        FROM jsonb_array_elements(p_events) WITH ORDINALITY AS t (e, o);
    END IF;
    IF jsonb_array_length(p_spend) > 0 THEN
        INSERT INTO spend (run_id, project, provider, operation, model, units, usd_micros, mode, journal_key, at)
        SELECT run_id, project, provider, operation, model, units, usd_micros, mode, journal_key, at
        FROM jsonb_to_recordset(p_spend) AS x (run_id TEXT, project TEXT, provider TEXT, operation TEXT,
            model TEXT, units DOUBLE PRECISION, usd_micros BIGINT, mode TEXT, journal_key TEXT, at TIMESTAMPTZ)
        ON CONFLICT (run_id, journal_key) DO NOTHING;
    END IF;
    IF p_release_jobs THEN
        DELETE FROM provider_jobs WHERE run_id = p_run_id;
    END IF;
    IF cardinality(p_jobs_ended) > 0 THEN
        DELETE FROM provider_jobs WHERE key = ANY (p_jobs_ended);
    END IF;
    RETURN last_seq;
END
$$;
