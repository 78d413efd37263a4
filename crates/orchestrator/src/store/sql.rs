//! The SQL behind [`OrchestratorStore`], written once for both backends;
//! only the full-text search differs (FTS5 on SQLite, tsvector on Postgres).

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use myloware_core::project::KnowledgeDoc;
use myloware_providers::mock::MockCall;
use serde_json::Value;
use sqlx::types::Json;

use super::{
    Created, EngineCounts, ExecStatus, Execution, JournalBegin, JournalEntry, KnowledgeHit, NewEvent, NewExecution,
    OrchestratorStore, OutboxEvent, SignalOutcome, StepCommit, StoreResult, StoredSignal, query_terms,
};

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

const EXECUTION_COLUMNS: &str = "run_id, project, request, status, node, state, wait, wake_at, cancel_requested, \
     lease_owner, lease_until, event_seq, steps, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct ExecutionRow {
    run_id: String,
    project: String,
    request: Json<Value>,
    status: String,
    node: i64,
    state: Json<Value>,
    wait: Option<Json<Value>>,
    wake_at: Option<DateTime<Utc>>,
    cancel_requested: bool,
    lease_owner: Option<String>,
    lease_until: Option<DateTime<Utc>>,
    event_seq: i64,
    steps: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<ExecutionRow> for Execution {
    type Error = sqlx::Error;
    fn try_from(row: ExecutionRow) -> Result<Execution, sqlx::Error> {
        Ok(Execution {
            status: row.status.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))?,
            run_id: row.run_id,
            project: row.project,
            request: row.request.0,
            node: row.node,
            state: row.state.0,
            wait: row.wait.map(|w| w.0),
            wake_at: row.wake_at,
            cancel_requested: row.cancel_requested,
            lease_owner: row.lease_owner,
            lease_until: row.lease_until,
            event_seq: row.event_seq,
            steps: row.steps,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct JournalRow {
    key: String,
    provider: String,
    operation: String,
    status: String,
    request: Json<Value>,
    response: Option<Json<Value>>,
}

impl From<JournalRow> for JournalEntry {
    fn from(r: JournalRow) -> JournalEntry {
        JournalEntry {
            key: r.key,
            provider: r.provider,
            operation: r.operation,
            status: r.status,
            request: r.request.0,
            response: r.response.map(|j| j.0),
        }
    }
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    event_id: String,
    run_id: String,
    run_seq: i64,
    kind: String,
    data: Json<Value>,
    created_at: DateTime<Utc>,
    attempts: i64,
    delivered_at: Option<DateTime<Utc>>,
}

impl From<OutboxRow> for OutboxEvent {
    fn from(r: OutboxRow) -> OutboxEvent {
        OutboxEvent {
            event_id: r.event_id,
            run_id: r.run_id,
            run_seq: r.run_seq,
            kind: r.kind,
            data: r.data.0,
            created_at: r.created_at,
            attempts: r.attempts,
            delivered_at: r.delivered_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct MockCallRow {
    provider: String,
    operation: String,
    key: String,
    run_id: String,
    request: Json<Value>,
    response: Json<Value>,
}

impl From<MockCallRow> for MockCall {
    fn from(r: MockCallRow) -> MockCall {
        MockCall {
            provider: r.provider,
            operation: r.operation,
            key: r.key,
            run_id: r.run_id,
            request: r.request.0,
            response: r.response.0,
        }
    }
}

/// The oldest runnable execution and the earliest due waiting one whose
/// lease is free, each found by an index walk that stops at the first hit.
const READY: &str = "SELECT run_id, updated_at FROM executions WHERE status = 'runnable' \
     AND (lease_until IS NULL OR lease_until < $3) ORDER BY updated_at LIMIT 1";
const DUE: &str = "SELECT run_id, updated_at FROM executions WHERE status = 'waiting' AND wake_at <= $3 \
     AND (lease_until IS NULL OR lease_until < $3) ORDER BY wake_at LIMIT 1";

/// SQLite serializes writers, so the sub-select and the update are atomic.
const SQLITE_CLAIM: &str = "UPDATE executions SET lease_owner = $1, lease_until = $2 WHERE run_id = \
     (SELECT run_id FROM (SELECT * FROM ({READY}) UNION ALL SELECT * FROM ({DUE})) ORDER BY updated_at LIMIT 1) \
     RETURNING {EXECUTION_COLUMNS}";

/// Postgres: workers skip rows another worker is claiming.
const POSTGRES_CLAIM: &str = "WITH ready AS ({READY} FOR UPDATE SKIP LOCKED), due AS ({DUE} FOR UPDATE SKIP LOCKED) \
     UPDATE executions SET lease_owner = $1, lease_until = $2 WHERE run_id = \
     (SELECT run_id FROM (SELECT * FROM ready UNION ALL SELECT * FROM due) c ORDER BY updated_at LIMIT 1) \
     RETURNING {EXECUTION_COLUMNS}";

/// How `commit_step` takes the execution's row before anything else, on
/// Postgres. Read committed gives each statement the snapshot of its start,
/// and a statement that waited for a row lock still reads other tables as
/// of then: a park that waited for `add_signal`'s transaction in the UPDATE
/// that decides "runnable if a signal is pending" did not see the signal
/// that transaction committed, and the run slept for good (caught in CI: a
/// live run stuck at `generating` with all twelve callbacks accepted).
/// Holding the row first, the statements after it see every signal. It
/// also puts the row before the signal rows, the order `add_signal` takes
/// them in. Answers a row only while `$2` holds the lease.
const POSTGRES_LOCK_EXECUTION: &str = "SELECT 1 FROM executions WHERE run_id = $1 AND lease_owner = $2 FOR UPDATE";

fn claim_sql(template: &str) -> String {
    template
        .replace("{READY}", READY)
        .replace("{DUE}", DUE)
        .replace("{EXECUTION_COLUMNS}", EXECUTION_COLUMNS)
}

macro_rules! insert_events {
    ($tx:expr, $run_id:expr, $first_seq:expr, $events:expr) => {{
        let at = Utc::now();
        let events = $events;
        if !events.is_empty() {
            // One multi-row INSERT: one round trip however many events.
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO outbox (event_id, run_id, run_seq, kind, data, created_at, next_attempt_at) ",
            );
            insert.push_values(events.iter().enumerate(), |mut row, (i, event)| {
                row.push_bind(uuid::Uuid::now_v7().to_string())
                    .push_bind($run_id)
                    .push_bind($first_seq + i as i64)
                    .push_bind(event.kind.as_str())
                    .push_bind(Json(&event.data))
                    .push_bind(at)
                    .push_bind(at);
            });
            insert.build().execute(&mut *$tx).await?;
        }
    }};
}

#[derive(sqlx::FromRow)]
struct HitRow {
    id: String,
    project: Option<String>,
    persona: Option<String>,
    kind: String,
    title: String,
    body: String,
}

/// FTS5: any of the terms, each quoted so it is read as a word; ranked by bm25.
const SQLITE_SEARCH: &str = "SELECT d.id, d.project, d.persona, d.kind, d.title, d.body \
     FROM knowledge_fts JOIN knowledge_documents d ON d.rowid = knowledge_fts.rowid \
     WHERE knowledge_fts MATCH $1 \
       AND ($2 IS NULL OR d.project IS NULL OR d.project = $2) \
       AND ($3 IS NULL OR d.persona IS NULL OR d.persona = $3) \
     ORDER BY bm25(knowledge_fts) LIMIT $4";

fn sqlite_match(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// tsvector: any of the terms (stemmed), ranked by ts_rank.
const POSTGRES_SEARCH: &str = "SELECT id, project, persona, kind, title, body \
     FROM knowledge_documents, to_tsquery('english', $1) q \
     WHERE search @@ q \
       AND ($2::text IS NULL OR project IS NULL OR project = $2) \
       AND ($3::text IS NULL OR persona IS NULL OR persona = $3) \
     ORDER BY ts_rank(search, q) DESC, id LIMIT $4";

fn postgres_match(terms: &[String]) -> String {
    terms.join(" | ")
}

macro_rules! sql_orchestrator_store {
    ($store:ident, $db:ty, $begin:expr, $search:expr, $match:expr, $claim:expr, $lock_execution:expr) => {
        #[derive(Clone)]
        pub struct $store {
            pool: sqlx::Pool<$db>,
        }

        impl $store {
            pub fn new(pool: sqlx::Pool<$db>) -> Self {
                Self { pool }
            }
        }

        #[async_trait]
        impl OrchestratorStore for $store {
            async fn replace_knowledge(&self, docs: &[KnowledgeDoc]) -> StoreResult<()> {
                let mut tx = self.pool.begin_with(sqlx::AssertSqlSafe($begin)).await?;
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
                let rows: Vec<HitRow> = sqlx::query_as($search)
                    .bind($match(&terms))
                    .bind(project)
                    .bind(persona)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(|r| KnowledgeHit {
                        id: r.id,
                        project: r.project,
                        persona: r.persona,
                        kind: r.kind,
                        title: r.title,
                        body: r.body,
                    })
                    .collect())
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
            }

            async fn create_execution(&self, new: &NewExecution, first_event: &NewEvent) -> StoreResult<Created> {
                let mut tx = self.pool.begin_with(sqlx::AssertSqlSafe($begin)).await?;
                let now = Utc::now();
                let inserted = sqlx::query(
                    "INSERT INTO executions (run_id, project, request, status, state, event_seq, created_at, updated_at) \
                     VALUES ($1, $2, $3, 'runnable', $4, 1, $5, $5) ON CONFLICT (run_id) DO NOTHING",
                )
                .bind(&new.run_id)
                .bind(&new.project)
                .bind(Json(&new.request))
                .bind(Json(&new.state))
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !inserted {
                    let (existing,): (Json<Value>,) =
                        sqlx::query_as("SELECT request FROM executions WHERE run_id = $1")
                            .bind(&new.run_id)
                            .fetch_one(&mut *tx)
                            .await?;
                    tx.rollback().await?;
                    return Ok(Created::Exists { same: existing.0 == new.request });
                }
                insert_events!(tx, &new.run_id, 1i64, std::slice::from_ref(first_event));
                tx.commit().await?;
                Ok(Created::Created)
            }

            async fn get_execution(&self, run_id: &str) -> StoreResult<Option<Execution>> {
                let row: Option<ExecutionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {EXECUTION_COLUMNS} FROM executions WHERE run_id = $1"
                )))
                .bind(run_id)
                .fetch_optional(&self.pool)
                .await?;
                row.map(Execution::try_from).transpose()
            }

            async fn claim(
                &self,
                worker: &str,
                now: DateTime<Utc>,
                lease_until: DateTime<Utc>,
            ) -> StoreResult<Option<Execution>> {
                let row: Option<ExecutionRow> = sqlx::query_as(sqlx::AssertSqlSafe(claim_sql($claim)))
                    .bind(worker)
                    .bind(lease_until)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(Execution::try_from).transpose()
            }

            async fn release_lease(&self, run_id: &str, worker: &str) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE executions SET lease_owner = NULL, lease_until = NULL WHERE run_id = $1 AND lease_owner = $2",
                )
                .bind(run_id)
                .bind(worker)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn extend_lease(&self, run_id: &str, worker: &str, until: DateTime<Utc>) -> StoreResult<bool> {
                let done = sqlx::query("UPDATE executions SET lease_until = $3 WHERE run_id = $1 AND lease_owner = $2")
                    .bind(run_id)
                    .bind(worker)
                    .bind(until)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn commit_step(&self, commit: &StepCommit) -> StoreResult<bool> {
                let mut tx = self.pool.begin_with(sqlx::AssertSqlSafe($begin)).await?;
                let now = Utc::now();
                // The execution's row first (Postgres; SQLite's write
                // transactions already take turns): see POSTGRES_LOCK_EXECUTION.
                let lock: Option<&str> = $lock_execution;
                if let Some(lock) = lock {
                    let held: Option<i32> = sqlx::query_scalar(lock)
                        .bind(&commit.run_id)
                        .bind(&commit.worker)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if held.is_none() {
                        // Lease lost: nothing to do (the signals stay unread).
                        tx.rollback().await?;
                        return Ok(false);
                    }
                }
                if let Some(through) = commit.consumed_through {
                    sqlx::query(
                        "UPDATE signals SET consumed_at = $3 WHERE run_id = $1 AND seq <= $2 AND consumed_at IS NULL",
                    )
                    .bind(&commit.run_id)
                    .bind(through)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                let keep = commit.keep_lease_until.is_some();
                let row: Option<(i64,)> = sqlx::query_as(
                    "UPDATE executions SET node = $3, \
                       status = CASE WHEN $4 = 'waiting' AND (cancel_requested OR EXISTS \
                         (SELECT 1 FROM signals s WHERE s.run_id = executions.run_id AND s.consumed_at IS NULL)) \
                         THEN 'runnable' ELSE $4 END, \
                       state = $5, wait = $6, wake_at = $7, \
                       lease_owner = CASE WHEN $8 THEN lease_owner ELSE NULL END, \
                       lease_until = CASE WHEN $8 THEN $9 ELSE NULL END, \
                       event_seq = event_seq + $10, steps = steps + 1, updated_at = $11 \
                     WHERE run_id = $1 AND lease_owner = $2 RETURNING event_seq",
                )
                .bind(&commit.run_id)
                .bind(&commit.worker)
                .bind(commit.node)
                .bind(commit.status.as_str())
                .bind(Json(&commit.state))
                .bind(commit.wait.as_ref().map(Json))
                .bind(commit.wake_at)
                .bind(keep)
                .bind(commit.keep_lease_until)
                .bind(commit.events.len() as i64)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((last_seq,)) = row else {
                    // Lease lost: roll back everything (the signals stay unread).
                    tx.rollback().await?;
                    return Ok(false);
                };
                let first_seq = last_seq - commit.events.len() as i64 + 1;
                insert_events!(tx, &commit.run_id, first_seq, &commit.events);
                tx.commit().await?;
                Ok(true)
            }

            async fn add_signal(&self, run_id: &str, signal_id: &str, body: &Value) -> StoreResult<SignalOutcome> {
                let mut tx = self.pool.begin_with(sqlx::AssertSqlSafe($begin)).await?;
                let now = Utc::now();
                // The execution's row before the signal: holding it orders a
                // run's signals (seq order is commit order, which
                // `consumed_through` relies on), and commit_step takes the
                // row first too (one lock order: no deadlock).
                let woke = sqlx::query(
                    "UPDATE executions SET status = CASE WHEN status = 'waiting' THEN 'runnable' ELSE status END, \
                     updated_at = $2 WHERE run_id = $1",
                )
                .bind(run_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if woke.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(SignalOutcome::UnknownExecution);
                }
                let inserted = sqlx::query(
                    "INSERT INTO signals (run_id, signal_id, body, received_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (run_id, signal_id) DO NOTHING",
                )
                .bind(run_id)
                .bind(signal_id)
                .bind(Json(body))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(SignalOutcome::Duplicate);
                }
                tx.commit().await?;
                Ok(SignalOutcome::Accepted)
            }

            async fn pending_signals(&self, run_id: &str) -> StoreResult<Vec<StoredSignal>> {
                let rows: Vec<(i64, String, Json<Value>)> = sqlx::query_as(
                    "SELECT seq, signal_id, body FROM signals WHERE run_id = $1 AND consumed_at IS NULL ORDER BY seq",
                )
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(seq, signal_id, body)| StoredSignal { seq, signal_id, body: body.0 })
                    .collect())
            }

            async fn step_inputs(&self, run_id: &str) -> StoreResult<(bool, Vec<StoredSignal>)> {
                let rows: Vec<(bool, Option<i64>, Option<String>, Option<Json<Value>>)> = sqlx::query_as(
                    "SELECT e.cancel_requested, s.seq, s.signal_id, s.body FROM executions e \
                     LEFT JOIN signals s ON s.run_id = e.run_id AND s.consumed_at IS NULL \
                     WHERE e.run_id = $1 ORDER BY s.seq",
                )
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
                let cancel = rows.first().is_some_and(|row| row.0);
                let signals = rows
                    .into_iter()
                    .filter_map(|(_, seq, signal_id, body)| {
                        Some(StoredSignal { seq: seq?, signal_id: signal_id?, body: body?.0 })
                    })
                    .collect();
                Ok((cancel, signals))
            }

            async fn find_signal(&self, run_id: &str, signal_id: &str) -> StoreResult<Option<Value>> {
                let row: Option<(Json<Value>,)> =
                    sqlx::query_as("SELECT body FROM signals WHERE run_id = $1 AND signal_id = $2")
                        .bind(run_id)
                        .bind(signal_id)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.map(|(body,)| body.0))
            }

            async fn request_cancel(&self, run_id: &str) -> StoreResult<Option<ExecStatus>> {
                let row: Option<(String,)> = sqlx::query_as(
                    "UPDATE executions SET cancel_requested = TRUE, \
                     status = CASE WHEN status = 'waiting' THEN 'runnable' ELSE status END, updated_at = $2 \
                     WHERE run_id = $1 RETURNING status",
                )
                .bind(run_id)
                .bind(Utc::now())
                .fetch_optional(&self.pool)
                .await?;
                row.map(|(s,)| s.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))).transpose()
            }

            async fn cancel_requested(&self, run_id: &str) -> StoreResult<bool> {
                let row: Option<(bool,)> = sqlx::query_as("SELECT cancel_requested FROM executions WHERE run_id = $1")
                    .bind(run_id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.is_some_and(|(c,)| c))
            }

            async fn journal_begin(
                &self,
                run_id: &str,
                worker: &str,
                key: &str,
                provider: &str,
                operation: &str,
                request: &Value,
            ) -> StoreResult<JournalBegin> {
                let mut tx = self.pool.begin_with(sqlx::AssertSqlSafe($begin)).await?;
                let now = Utc::now();
                let held = sqlx::query("UPDATE executions SET updated_at = $3 WHERE run_id = $1 AND lease_owner = $2")
                    .bind(run_id)
                    .bind(worker)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                if held.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(JournalBegin::LeaseLost);
                }
                let inserted = sqlx::query(
                    "INSERT INTO journal (run_id, key, provider, operation, status, request, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, 'started', $5, $6, $6) ON CONFLICT (run_id, key) DO NOTHING",
                )
                .bind(run_id)
                .bind(key)
                .bind(provider)
                .bind(operation)
                .bind(Json(request))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() == 1 {
                    tx.commit().await?;
                    return Ok(JournalBegin::Begun);
                }
                let row: JournalRow = sqlx::query_as(
                    "SELECT key, provider, operation, status, request, response FROM journal WHERE run_id = $1 AND key = $2",
                )
                .bind(run_id)
                .bind(key)
                .fetch_one(&mut *tx)
                .await?;
                tx.rollback().await?;
                Ok(JournalBegin::Existing(row.into()))
            }

            async fn journal_finish(&self, run_id: &str, key: &str, succeeded: bool, response: &Value) -> StoreResult<()> {
                sqlx::query("UPDATE journal SET status = $3, response = $4, updated_at = $5 WHERE run_id = $1 AND key = $2")
                    .bind(run_id)
                    .bind(key)
                    .bind(if succeeded { "succeeded" } else { "failed" })
                    .bind(Json(response))
                    .bind(Utc::now())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn journal(&self, run_id: &str) -> StoreResult<Vec<JournalEntry>> {
                let rows: Vec<JournalRow> = sqlx::query_as(
                    "SELECT key, provider, operation, status, request, response FROM journal \
                     WHERE run_id = $1 ORDER BY created_at, key",
                )
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(JournalEntry::from).collect())
            }

            async fn outbox_due(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<OutboxEvent>> {
                let rows: Vec<OutboxRow> = sqlx::query_as(
                    "SELECT event_id, run_id, run_seq, kind, data, created_at, attempts, delivered_at FROM outbox o \
                     WHERE o.delivered_at IS NULL AND o.next_attempt_at <= $1 \
                       AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.run_id = o.run_id AND p.delivered_at IS NULL \
                                       AND p.run_seq < o.run_seq AND p.next_attempt_at > $1) \
                     ORDER BY o.seq LIMIT $2",
                )
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(OutboxEvent::from).collect())
            }

            async fn outbox_delivered(&self, event_ids: &[String]) -> StoreResult<()> {
                let mut tx = self.pool.begin_with(sqlx::AssertSqlSafe($begin)).await?;
                let now = Utc::now();
                for id in event_ids {
                    sqlx::query("UPDATE outbox SET delivered_at = $2, attempts = attempts + 1 WHERE event_id = $1 AND delivered_at IS NULL")
                        .bind(id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await
            }

            async fn outbox_retry(&self, run_id: &str, error: &str, retry_at: DateTime<Utc>) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3 \
                     WHERE run_id = $1 AND delivered_at IS NULL",
                )
                .bind(run_id)
                .bind(error)
                .bind(retry_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn outbox(&self, run_id: &str) -> StoreResult<Vec<OutboxEvent>> {
                let rows: Vec<OutboxRow> = sqlx::query_as(
                    "SELECT event_id, run_id, run_seq, kind, data, created_at, attempts, delivered_at FROM outbox \
                     WHERE run_id = $1 ORDER BY run_seq",
                )
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(OutboxEvent::from).collect())
            }

            async fn counts(&self) -> StoreResult<EngineCounts> {
                let (runnable, waiting): (i64, i64) = sqlx::query_as(
                    "SELECT COALESCE(SUM(CASE WHEN status = 'runnable' THEN 1 ELSE 0 END), 0), \
                            COALESCE(SUM(CASE WHEN status = 'waiting' THEN 1 ELSE 0 END), 0) FROM executions",
                )
                .fetch_one(&self.pool)
                .await?;
                let (outbox_pending,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(EngineCounts { runnable, waiting, outbox_pending })
            }

            async fn prune(&self, cutoff: DateTime<Utc>, dry_run: bool) -> StoreResult<BTreeMap<String, u64>> {
                let mut tx = self.pool.begin_with(sqlx::AssertSqlSafe($begin)).await?;
                let pruned = myloware_db::prune_tables!(tx, PRUNABLE, cutoff, dry_run);
                tx.commit().await?;
                Ok(pruned)
            }

            async fn record_mock_call(&self, call: &MockCall) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO mock_provider_calls (provider, operation, key, run_id, request, response, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&call.provider)
                .bind(&call.operation)
                .bind(&call.key)
                .bind(&call.run_id)
                .bind(Json(&call.request))
                .bind(Json(&call.response))
                .bind(Utc::now())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn find_mock_call(&self, provider: &str, operation: &str, key: &str) -> StoreResult<Option<MockCall>> {
                let row: Option<MockCallRow> = sqlx::query_as(
                    "SELECT provider, operation, key, run_id, request, response FROM mock_provider_calls \
                     WHERE provider = $1 AND key = $2 AND operation = $3 ORDER BY seq LIMIT 1",
                )
                .bind(provider)
                .bind(key)
                .bind(operation)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(MockCall::from))
            }

            async fn mock_calls(&self, run_id: &str) -> StoreResult<Vec<MockCall>> {
                let rows: Vec<MockCallRow> = sqlx::query_as(
                    "SELECT provider, operation, key, run_id, request, response FROM mock_provider_calls \
                     WHERE run_id = $1 ORDER BY seq",
                )
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(MockCall::from).collect())
            }
        }
    };
}

sql_orchestrator_store!(
    SqliteOrchestratorStore,
    sqlx::Sqlite,
    myloware_db::SQLITE_BEGIN,
    SQLITE_SEARCH,
    sqlite_match,
    SQLITE_CLAIM,
    None
);
sql_orchestrator_store!(
    PgOrchestratorStore,
    sqlx::Postgres,
    myloware_db::POSTGRES_BEGIN,
    POSTGRES_SEARCH,
    postgres_match,
    POSTGRES_CLAIM,
    Some(POSTGRES_LOCK_EXECUTION)
);
