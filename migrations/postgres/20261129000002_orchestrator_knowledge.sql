-- Orchestrator: the knowledge base the personas search (tsvector).
CREATE TABLE knowledge_documents (
    id         TEXT PRIMARY KEY,
    project    TEXT,
    persona    TEXT,
    kind       TEXT NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    search     TSVECTOR GENERATED ALWAYS AS (
        setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', body), 'B')
    ) STORED
);
CREATE INDEX knowledge_search ON knowledge_documents USING GIN (search);
