-- The free-text name a decider gives (the 'approver' field of a decision):
-- a note only; gates.approver is the credential that decided (issue 13).
ALTER TABLE gates ADD COLUMN note TEXT;
