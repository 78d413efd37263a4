-- The claim walks runnable executions oldest first and stops at the first
-- free one, instead of sorting every runnable row on each claim.
CREATE INDEX executions_ready ON executions (status, updated_at);
