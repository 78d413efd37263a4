-- API: the console's search (the words of a run's input, LIKE '%…%'),
-- which otherwise reads every run: a trigram index (pg_trgm) on the
-- expression the query uses. pg_trgm ships with Postgres (contrib) and is
-- a trusted extension: the database's owner may create it. Where it cannot
-- be created (a server without contrib, a role without the right), this
-- migration leaves the search as it was instead of failing the start.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX IF NOT EXISTS runs_input_search ON runs USING gin (LOWER((payload->>'input')) gin_trgm_ops);
EXCEPTION WHEN insufficient_privilege OR undefined_file OR undefined_object OR feature_not_supported THEN
    RAISE NOTICE 'no pg_trgm (%): the console search reads every run', SQLERRM;
END
$$;
