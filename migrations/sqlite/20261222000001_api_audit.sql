-- API: one audit of operator actions (gate decisions and page views,
-- cancels, retries, dead-letter replays), in place of gate_audit, whose
-- rows it takes over (same seq, so their order stays).
CREATE TABLE audit (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
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
    -- what the action carried: a reason, a note, a dead letter's seq (JSON)
    detail     TEXT
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
DROP TABLE gate_audit;

-- The previous release, still running during a rolling deploy, writes and
-- prunes gate_audit: it does so through this view, into the one audit.
-- A later migration drops it once no release older than this one runs.
CREATE VIEW gate_audit AS
SELECT seq, run_id, gate, at, action, outcome, actor AS credential, ip, user_agent
  FROM audit WHERE gate IS NOT NULL;

CREATE TRIGGER gate_audit_insert INSTEAD OF INSERT ON gate_audit
BEGIN
    INSERT INTO audit (at, actor, action, run_id, gate, accepted, outcome, ip, user_agent)
    VALUES (NEW.at, NEW.credential, NEW.action, NEW.run_id, NEW.gate,
            NEW.outcome IN ('approved', 'rejected', 'already_approved', 'already_rejected',
                            'approved; resume pending', 'rejected; resume pending', 'shown'),
            NEW.outcome, NEW.ip, NEW.user_agent);
END;

CREATE TRIGGER gate_audit_delete INSTEAD OF DELETE ON gate_audit
BEGIN
    DELETE FROM audit WHERE seq = OLD.seq;
END;
