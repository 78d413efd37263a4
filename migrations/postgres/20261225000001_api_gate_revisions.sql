-- API: "request changes" at a gate (how many times the gate was sent back
-- to its persona, bounded by the project's maxRevisions) and the approvals
-- a gate needing several (approvalsRequired) has gathered so far.
ALTER TABLE gates ADD COLUMN revisions INTEGER NOT NULL DEFAULT 0;
ALTER TABLE gates ADD COLUMN approvals JSONB NOT NULL DEFAULT '[]';
