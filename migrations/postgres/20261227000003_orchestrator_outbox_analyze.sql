-- Orchestrator: the outbox's plans depend on how many events wait
-- undelivered, which the planner reads from the table's statistics. With
-- the default (analyze after 10 % of the rows changed: 500,000 changes on
-- the 5 million rows a month of runs leaves) a backlog of thousands (the
-- API down for a while) is unseen, and outbox_due compares every waiting
-- event with every other: 1.6 s per poll with 10,000 waiting, 11 ms once
-- analyzed (docs/operations.md, "Production Postgres"). Analyze after
-- 5,000 changes instead, whatever the table's size.
ALTER TABLE outbox SET (autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 5000);
