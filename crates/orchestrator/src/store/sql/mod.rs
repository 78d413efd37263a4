//! The SQL behind [`OrchestratorStore`], written once for both backends;
//! only the full-text search differs (FTS5 on SQLite, tsvector on Postgres).
//! One module per aggregate, each a macro implementing its trait for a
//! backend; `sql_orchestrator_store!` puts them together.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use myloware_core::ProviderMode;
use myloware_core::project::KnowledgeDoc;
use myloware_db::{guarded, rows_for};
use myloware_providers::mock::MockCall;
use serde_json::Value;
use sqlx::types::Json;

use super::{
    Created, EngineCounts, ExecStatus, Execution, ExecutionStore, JournalBegin, JournalEntry, JournalStatus,
    JournalStore, KnowledgeHit, KnowledgeStore, LedgerStore, NewEvent, NewExecution, NextCall, OrchestratorStore,
    OutboxEvent, OutboxStore, PaidAnswer, SignalStore, Spend, SpendStore, StepCommit, StoreResult, StoredSignal,
    query_terms,
};

#[macro_use]
mod executions;
#[macro_use]
mod journal;
#[macro_use]
mod knowledge;
#[macro_use]
mod ledger;
#[macro_use]
mod outbox;
#[macro_use]
mod signals;
#[macro_use]
mod spend;

use executions::*;
use journal::*;
use knowledge::*;
use ledger::*;
use signals::*;
use spend::*;

/// The rows retention removes, per table, as `WHERE` clauses (`$1` is the
/// cutoff), so a dry run counts exactly what a real prune deletes: rows of
/// executions that finished (`ExecStatus::is_finished`) before the cutoff.
const PRUNABLE: [(&str, &str); 4] = [
    (
        "journal",
        "run_id IN (SELECT run_id FROM executions WHERE status NOT IN ('runnable', 'waiting') AND updated_at < $1)",
    ),
    (
        "outbox",
        "delivered_at IS NOT NULL AND run_id IN \
           (SELECT run_id FROM executions WHERE status NOT IN ('runnable', 'waiting') AND updated_at < $1)",
    ),
    (
        "signals",
        "run_id IN (SELECT run_id FROM executions WHERE status NOT IN ('runnable', 'waiting') AND updated_at < $1)",
    ),
    (
        "mock_provider_calls",
        "run_id IN (SELECT run_id FROM executions WHERE status NOT IN ('runnable', 'waiting') AND updated_at < $1)",
    ),
];

macro_rules! sql_orchestrator_store {
    (
        $store:ident,
        $db:ty,
        $begin:expr,
        $search:expr,
        $match:expr,
        $claim:expr,
        $lock_execution:expr,
        $lock_jobs:expr
    ) => {
        #[derive(Clone)]
        pub struct $store {
            pool: sqlx::Pool<$db>,
        }

        impl $store {
            pub fn new(pool: sqlx::Pool<$db>) -> Self {
                Self { pool }
            }

            async fn begin(&self) -> sqlx::Result<sqlx::Transaction<'static, $db>> {
                self.pool.begin_with(sqlx::AssertSqlSafe($begin)).await
            }
        }

        #[async_trait]
        impl OrchestratorStore for $store {
            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
            }

            async fn counts(&self) -> StoreResult<EngineCounts> {
                // Only the two statuses (an index walk each), not every
                // execution ever run: 131–194 ms per scrape at a million
                // runs before (docs/operations.md, "Production Postgres").
                let by_status: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT status, COUNT(*) FROM executions WHERE status IN ('runnable', 'waiting') GROUP BY status",
                )
                .fetch_all(&self.pool)
                .await?;
                let count = |wanted: ExecStatus| {
                    by_status
                        .iter()
                        .find(|(s, _)| s == wanted.as_str())
                        .map_or(0, |(_, n)| *n)
                };
                let (runnable, waiting) = (count(ExecStatus::Runnable), count(ExecStatus::Waiting));
                let (outbox_pending,): (i64,) =
                    sqlx::query_as("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL")
                        .fetch_one(&self.pool)
                        .await?;
                Ok(EngineCounts {
                    runnable,
                    waiting,
                    outbox_pending,
                })
            }

            async fn prune(&self, cutoff: DateTime<Utc>, dry_run: bool) -> StoreResult<BTreeMap<String, u64>> {
                let mut tx = self.begin().await?;
                let pruned = myloware_db::prune_tables!(tx, PRUNABLE, cutoff, dry_run);
                tx.commit().await?;
                Ok(pruned)
            }
        }

        executions_store!($store, $db, $begin, $claim, $lock_execution, $lock_jobs);
        signals_store!($store, $db, $begin, $search, $match, $claim, $lock_execution);
        journal_store!($store, $db, $begin, $search, $match, $claim, $lock_execution);
        spend_store!($store, $db, $begin, $search, $match, $claim, $lock_execution);
        outbox_store!($store, $db, $begin, $search, $match, $claim, $lock_execution);
        ledger_store!($store, $db, $begin, $search, $match, $claim, $lock_execution);
        knowledge_store!($store, $db, $begin, $search, $match, $claim, $lock_execution);
    };
}

sql_orchestrator_store!(
    SqliteOrchestratorStore,
    sqlx::Sqlite,
    myloware_db::SQLITE_BEGIN,
    SQLITE_SEARCH,
    sqlite_match,
    (SQLITE_CLAIM, SQLITE_CLAIM_MANY),
    None,
    None
);
sql_orchestrator_store!(
    PgOrchestratorStore,
    sqlx::Postgres,
    myloware_db::POSTGRES_BEGIN,
    POSTGRES_SEARCH,
    postgres_match,
    (POSTGRES_CLAIM, POSTGRES_CLAIM_MANY),
    Some(POSTGRES_LOCK_EXECUTION),
    Some(POSTGRES_LOCK_JOBS)
);
