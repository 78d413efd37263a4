//! The knowledge base: replaced whole, searched with the backend's
//! full-text search (FTS5 on SQLite, tsvector on Postgres).

/// FTS5: any of the terms, each quoted so it is read as a word; ranked by bm25.
pub(super) const SQLITE_SEARCH: &str = "SELECT d.id, d.project, d.persona, d.kind, d.title, d.body \
     FROM knowledge_fts JOIN knowledge_documents d ON d.rowid = knowledge_fts.rowid \
     WHERE knowledge_fts MATCH $1 \
       AND ($2 IS NULL OR d.project IS NULL OR d.project = $2) \
       AND ($3 IS NULL OR d.persona IS NULL OR d.persona = $3) \
     ORDER BY bm25(knowledge_fts) LIMIT $4";

pub(super) fn sqlite_match(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// tsvector: any of the terms (stemmed), ranked by ts_rank.
pub(super) const POSTGRES_SEARCH: &str = "SELECT id, project, persona, kind, title, body \
     FROM knowledge_documents, to_tsquery('english', $1) q \
     WHERE search @@ q \
       AND ($2::text IS NULL OR project IS NULL OR project = $2) \
       AND ($3::text IS NULL OR persona IS NULL OR persona = $3) \
     ORDER BY ts_rank(search, q) DESC, id LIMIT $4";

pub(super) fn postgres_match(terms: &[String]) -> String {
    terms.join(" | ")
}

/// `KnowledgeStore` for one backend (see `sql_orchestrator_store!`).
macro_rules! knowledge_store {
    ($store:ident, $db:ty, $begin:expr, $search:expr, $match:expr, $claim:expr, $lock_execution:expr) => {
        #[async_trait]
        impl KnowledgeStore for $store {
            async fn replace_knowledge(&self, docs: &[KnowledgeDoc]) -> StoreResult<()> {
                let mut tx = self.begin().await?;
                sqlx::query("DELETE FROM knowledge_documents")
                    .execute(&mut *tx)
                    .await?;
                let now = Utc::now();
                for doc in docs {
                    sqlx::query(
                        "INSERT INTO knowledge_documents (id, project, persona, kind, title, body, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&doc.id)
                    .bind(&doc.project)
                    .bind(doc.persona.map(|p| p.as_str()))
                    .bind(doc.kind)
                    .bind(&doc.title)
                    .bind(&doc.body)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await
            }

            async fn knowledge_count(&self) -> StoreResult<i64> {
                sqlx::query_scalar("SELECT COUNT(*) FROM knowledge_documents")
                    .fetch_one(&self.pool)
                    .await
            }

            async fn search_knowledge(
                &self,
                query: &str,
                project: Option<&str>,
                persona: Option<&str>,
                limit: u32,
            ) -> StoreResult<Vec<KnowledgeHit>> {
                let terms = query_terms(query);
                if terms.is_empty() {
                    return Ok(Vec::new());
                }
                sqlx::query_as($search)
                    .bind($match(&terms))
                    .bind(project)
                    .bind(persona)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
            }
        }
    };
}
