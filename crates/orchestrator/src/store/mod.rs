//! What the orchestrator keeps: (for now) the knowledge base the personas
//! search; executions, the step journal, waits and the outbox join it with
//! the engine. One trait, a SQLite and a Postgres implementation, one
//! conformance suite (`tests/store.rs`).

use std::sync::Arc;

use async_trait::async_trait;
use myloware_core::project::KnowledgeDoc;
use myloware_db::Db;

mod sql;

pub use sql::{PgOrchestratorStore, SqliteOrchestratorStore};

pub type StoreResult<T> = Result<T, sqlx::Error>;

/// A knowledge document found by a search, best match first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnowledgeHit {
    pub id: String,
    pub project: Option<String>,
    pub persona: Option<String>,
    pub kind: String,
    pub title: String,
    pub body: String,
}

#[async_trait]
pub trait OrchestratorStore: Send + Sync + 'static {
    /// Replaces the whole knowledge base with `docs`, atomically.
    async fn replace_knowledge(&self, docs: &[KnowledgeDoc]) -> StoreResult<()>;

    async fn knowledge_count(&self) -> StoreResult<i64>;

    /// Full-text search; documents of another project or persona are left
    /// out, shared ones (no project / no persona) are kept.
    async fn search_knowledge(
        &self,
        query: &str,
        project: Option<&str>,
        persona: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<KnowledgeHit>>;

    async fn ping(&self) -> StoreResult<()>;
}

pub fn open(db: &Db) -> Arc<dyn OrchestratorStore> {
    match db {
        Db::Sqlite(pool) => Arc::new(SqliteOrchestratorStore::new(pool.clone())),
        Db::Postgres(pool) => Arc::new(PgOrchestratorStore::new(pool.clone())),
    }
}

/// The words of a free-text query, lowercased, without any character a
/// full-text query language could read as an operator.
pub(crate) fn query_terms(query: &str) -> Vec<String> {
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(32)
        .map(str::to_lowercase)
        .collect()
}
