-- A provider call's journal in one round trip each (Postgres), as
-- mw_commit_step does for a step: the statements the orchestrator sent one
-- by one inside a transaction run here, in the same order and with the
-- same meaning (docs/engine.md, "Paying once: the journal").

-- Before the call: holding the execution's row, and only while
-- `p_worker` holds the lease, the journal entry is begun once. Returns
-- 'begun' (this caller makes the call), 'exists' (an earlier attempt
-- began it: the caller reads it) or 'lease_lost' (nothing written).
CREATE FUNCTION mw_journal_begin(
    p_run_id    TEXT,
    p_worker    TEXT,
    p_key       TEXT,
    p_provider  TEXT,
    p_operation TEXT,
    p_request   JSONB,
    p_now       TIMESTAMPTZ
) RETURNS TEXT
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM 1 FROM executions WHERE run_id = p_run_id AND lease_owner = p_worker FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'lease_lost';
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

-- After a paid call: its cost (once per journal key) with its
-- `cost.recorded` event at the execution's next seq, then the journal's
-- answer. Whether the cost was recorded now. `p_spend` and `p_events` as
-- mw_commit_step takes them (one row, one event).
CREATE FUNCTION mw_journal_paid(
    p_run_id   TEXT,
    p_key      TEXT,
    p_response JSONB,
    p_spend    JSONB,
    p_events   JSONB,
    p_now      TIMESTAMPTZ
) RETURNS BOOLEAN
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n        BIGINT := jsonb_array_length(p_events);
    recorded BOOLEAN;
    last_seq BIGINT;
BEGIN
    INSERT INTO spend (run_id, project, provider, operation, model, units, usd_micros, mode, journal_key, at)
    SELECT run_id, project, provider, operation, model, units, usd_micros, mode, journal_key, at
    FROM jsonb_to_recordset(p_spend) AS x (run_id TEXT, project TEXT, provider TEXT, operation TEXT,
        model TEXT, units DOUBLE PRECISION, usd_micros BIGINT, mode TEXT, journal_key TEXT, at TIMESTAMPTZ)
    ON CONFLICT (run_id, journal_key) DO NOTHING;
    recorded := FOUND;
    IF recorded AND n > 0 THEN
        UPDATE executions SET event_seq = event_seq + n WHERE run_id = p_run_id
        RETURNING event_seq INTO last_seq;
        IF FOUND THEN
            INSERT INTO outbox (event_id, run_id, run_seq, kind, data, created_at, next_attempt_at)
            SELECT e ->> 'id', p_run_id, last_seq - n + o, e ->> 'kind', e -> 'data', p_now, p_now
            FROM jsonb_array_elements(p_events) WITH ORDINALITY AS t (e, o);
        END IF;
    END IF;
    UPDATE journal SET status = 'succeeded', response = p_response, updated_at = p_now
    WHERE run_id = p_run_id AND key = p_key;
    RETURN recorded;
END
$$;
