//! What the API keeps: runs, their artifacts, and (later) gates, webhook
//! deliveries and chat transcripts. [`ApiStore`] is the one interface; it
//! has a SQLite and a Postgres implementation (`sql.rs`), both checked by
//! the same conformance suite (`tests/store.rs`).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use myloware_core::RunStatus;
use myloware_db::Db;
use serde_json::Value;

mod sql;

pub use sql::{PgApiStore, SqliteApiStore};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a run with id {0} already exists")]
    DuplicateRun(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The current time at the precision both backends keep (microseconds), so a
/// value read back equals the value written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: String,
    pub project: String,
    pub status: RunStatus,
    pub current_persona: Option<String>,
    pub user_id: Option<String>,
    pub payload: Value,
    pub result: Value,
    pub start: StartDelivery,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Insertion order; the list cursor.
    pub seq: i64,
}

/// Delivery of a run's start to the orchestrator, retried until acknowledged.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StartDelivery {
    pub acked_at: Option<DateTime<Utc>>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// A run to insert.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub project: String,
    pub status: RunStatus,
    pub user_id: Option<String>,
    pub payload: Value,
    pub result: Value,
    pub created_at: DateTime<Utc>,
}

/// Filters of `GET /v1/runs`; newest first, `before` is an exclusive cursor.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    pub status: Option<RunStatus>,
    pub project: Option<String>,
    pub before: Option<i64>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub id: String,
    pub run_id: String,
    pub kind: String,
    pub persona: Option<String>,
    pub data: Value,
    pub created_at: DateTime<Utc>,
}

impl Artifact {
    pub fn new(run_id: &str, kind: &str, persona: Option<&str>, data: Value) -> Artifact {
        Artifact {
            id: uuid::Uuid::now_v7().to_string(),
            run_id: run_id.to_string(),
            kind: kind.to_string(),
            persona: persona.map(str::to_string),
            data,
            created_at: now(),
        }
    }
}

/// The outcome of one attempt to deliver a start.
#[derive(Debug, Clone)]
pub enum StartAttempt {
    Acked,
    Failed {
        error: String,
        retry_at: DateTime<Utc>,
    },
}

#[async_trait]
pub trait ApiStore: Send + Sync + 'static {
    async fn insert_run(&self, run: &NewRun) -> StoreResult<Run>;

    async fn get_run(&self, id: &str) -> StoreResult<Option<Run>>;

    /// At most `query.limit` runs, newest first.
    async fn list_runs(&self, query: &RunQuery) -> StoreResult<Vec<Run>>;

    /// Moves the run from `from` to `to` if it is still in `from` (so two
    /// concurrent writers cannot both move it), recording `artifact` in the
    /// same transaction. `false` when the run was not in `from`.
    async fn transition(
        &self,
        id: &str,
        from: RunStatus,
        to: RunStatus,
        artifact: Option<&Artifact>,
    ) -> StoreResult<bool>;

    async fn record_start_attempt(&self, id: &str, attempt: &StartAttempt) -> StoreResult<()>;

    /// Runs whose start was never acknowledged and whose next attempt is due.
    async fn starts_due(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Run>>;

    async fn insert_artifact(&self, artifact: &Artifact) -> StoreResult<()>;

    /// A run's artifacts in creation order.
    async fn list_artifacts(&self, run_id: &str) -> StoreResult<Vec<Artifact>>;

    async fn ping(&self) -> StoreResult<()>;
}

/// The store for `db`'s backend.
pub fn open(db: &Db) -> Arc<dyn ApiStore> {
    match db {
        Db::Sqlite(pool) => Arc::new(SqliteApiStore::new(pool.clone())),
        Db::Postgres(pool) => Arc::new(PgApiStore::new(pool.clone())),
    }
}
