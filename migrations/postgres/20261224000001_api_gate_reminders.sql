-- API: when a gate's reminder was written (GATE_REMIND_AFTER_HOURS), so
-- each gate gets one, whichever API replica sweeps it.
ALTER TABLE gates ADD COLUMN reminded_at TIMESTAMPTZ;
CREATE INDEX gates_waiting_since ON gates (status, requested_at);
