-- API: the console's search (the words of a run's input, LIKE '%…%'),
-- which otherwise reads every run: a trigram index (pg_trgm) on the
-- expression the query uses. pg_trgm ships with Postgres (contrib) and is
-- a trusted extension: the database's owner may create it. Where it cannot
-- be created (a server without contrib, a role without the right), this
-- migration leaves the search as it was instead of failing the start.
-- The extension lives in `public` whatever schema the services use, so a
-- schema dropped with CASCADE (the tests' and benchmarks' own) never takes
-- it, and the indexes of other schemas, with it.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
    CREATE INDEX IF NOT EXISTS runs_input_search ON runs USING gin (LOWER((payload->>'input')) public.gin_trgm_ops);
EXCEPTION WHEN insufficient_privilege OR undefined_file OR undefined_object OR feature_not_supported
    OR invalid_schema_name OR object_not_in_prerequisite_state THEN
    RAISE NOTICE 'no pg_trgm (%): the console search reads every run', SQLERRM;
END
$$;
