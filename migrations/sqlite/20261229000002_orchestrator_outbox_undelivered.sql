-- Orchestrator: the outbox dispatcher reads the oldest undelivered events
-- in seq order. Walking the primary key, it stepped over every delivered
-- event first, so each poll grew with the history: 286 ms per poll with
-- 270,000 delivered events before the first undelivered one (10,000 runs
-- approved at once, gate-park on Postgres), 0.29 ms with this index, which
-- holds only the undelivered ones (docs/benchmarks.md, "Issue 18").
CREATE INDEX outbox_undelivered ON outbox (seq) WHERE delivered_at IS NULL;
