-- API: one audit of operator actions (gate decisions and page views,
-- cancels, retries, dead-letter replays), in place of gate_audit, whose
-- rows it takes over (same seq, so their order stays).
CREATE TABLE audit (
    seq        BIGSERIAL PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL,
    -- the credential: key:<name>, token:<fingerprint>, telegram:<chat id>, none
    actor      TEXT NOT NULL,
    -- approve | reject | view | cancel | retry | replay (api::store::audit::AuditAction)
    action     TEXT NOT NULL,
    -- NULL: a replay of a dead letter that names no run
    run_id     TEXT,
    gate       TEXT,
    -- whether the action was done (or found done); else outcome is why not
    accepted   BOOLEAN NOT NULL,
    outcome    TEXT NOT NULL,
    ip         TEXT,
    user_agent TEXT,
    -- what the action carried: a reason, a note, a dead letter's seq
    detail     JSONB
);
CREATE INDEX audit_run ON audit (run_id, seq);
CREATE INDEX audit_actor ON audit (actor, seq);
CREATE INDEX audit_at ON audit (at);

INSERT INTO audit (seq, at, actor, action, run_id, gate, accepted, outcome, ip, user_agent)
SELECT seq, at, credential, action, run_id, gate,
       outcome IN ('approved', 'rejected', 'already_approved', 'already_rejected',
                   'approved; resume pending', 'rejected; resume pending', 'shown'),
       outcome, ip, user_agent
  FROM gate_audit ORDER BY seq;
SELECT setval(pg_get_serial_sequence('audit', 'seq'), COALESCE((SELECT MAX(seq) FROM audit), 0) + 1, false);
DROP TABLE gate_audit;

-- The previous release, still running during a rolling deploy, writes and
-- prunes gate_audit: it does so through this view, into the one audit
-- (deletes pass through a simple view by themselves; inserts need the
-- trigger, which fills in `accepted`). A later migration drops it once no
-- release older than this one runs.
CREATE VIEW gate_audit AS
SELECT seq, run_id, gate, at, action, outcome, actor AS credential, ip, user_agent
  FROM audit WHERE gate IS NOT NULL;

CREATE FUNCTION gate_audit_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit (at, actor, action, run_id, gate, accepted, outcome, ip, user_agent)
    VALUES (NEW.at, NEW.credential, NEW.action, NEW.run_id, NEW.gate,
            NEW.outcome IN ('approved', 'rejected', 'already_approved', 'already_rejected',
                            'approved; resume pending', 'rejected; resume pending', 'shown'),
            NEW.outcome, NEW.ip, NEW.user_agent);
    RETURN NEW;
END
$$;

CREATE TRIGGER gate_audit_insert INSTEAD OF INSERT ON gate_audit
    FOR EACH ROW EXECUTE FUNCTION gate_audit_insert();
