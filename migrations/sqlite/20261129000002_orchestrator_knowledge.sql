-- Orchestrator: the knowledge base the personas search (FTS5).
CREATE TABLE knowledge_documents (
    id         TEXT PRIMARY KEY,
    project    TEXT,
    persona    TEXT,
    kind       TEXT NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE VIRTUAL TABLE knowledge_fts USING fts5 (
    title, body,
    content = 'knowledge_documents',
    content_rowid = 'rowid',
    tokenize = 'porter unicode61'
);

CREATE TRIGGER knowledge_ai AFTER INSERT ON knowledge_documents BEGIN
    INSERT INTO knowledge_fts (rowid, title, body) VALUES (new.rowid, new.title, new.body);
END;
CREATE TRIGGER knowledge_ad AFTER DELETE ON knowledge_documents BEGIN
    INSERT INTO knowledge_fts (knowledge_fts, rowid, title, body) VALUES ('delete', old.rowid, old.title, old.body);
END;
CREATE TRIGGER knowledge_au AFTER UPDATE ON knowledge_documents BEGIN
    INSERT INTO knowledge_fts (knowledge_fts, rowid, title, body) VALUES ('delete', old.rowid, old.title, old.body);
    INSERT INTO knowledge_fts (rowid, title, body) VALUES (new.rowid, new.title, new.body);
END;
