//! What the orchestrator keeps: executions (one per run: its graph position,
//! state, wait and lease), the signals they wait for, the journal of their
//! side effects, what the paid ones cost (`spend`), the outbox of events for the API, the mock providers'
//! ledger, and the knowledge base the personas search. One trait, a SQLite
//! and a Postgres implementation, one conformance suite (`tests/store.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use myloware_core::project::KnowledgeDoc;
use myloware_core::wire::EventKind;
use myloware_db::{Db, text_enum};
use myloware_providers::mock::MockCall;
use serde_json::Value;

mod spend;
mod sql;

pub use spend::{NextCall, PaidAnswer, Spend, SpendStore};
pub use sql::{PgOrchestratorStore, SqliteOrchestratorStore};

pub type StoreResult<T> = Result<T, sqlx::Error>;

/// A knowledge document found by a search, best match first.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KnowledgeHit {
    pub id: String,
    pub project: Option<String>,
    pub persona: Option<String>,
    pub kind: String,
    pub title: String,
    pub body: String,
}

text_enum! {
    /// Where an execution stands.
    pub enum ExecStatus {
        /// Ready for a worker (or being worked on, under a lease).
        Runnable = "runnable",
        /// Parked until a signal arrives or `wake_at` passes.
        Waiting = "waiting",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
        Rejected = "rejected",
    }
}

impl ExecStatus {
    pub fn is_finished(self) -> bool {
        !matches!(self, Self::Runnable | Self::Waiting)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    pub run_id: String,
    pub project: String,
    /// The `StartExecution` body it was created from.
    pub request: Value,
    pub status: ExecStatus,
    /// Index of the next node to run.
    pub node: i64,
    pub state: Value,
    pub wait: Option<Value>,
    pub wake_at: Option<DateTime<Utc>>,
    pub cancel_requested: bool,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub event_seq: i64,
    pub steps: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The unconsumed signals, in seq order, read by the statement that
    /// claimed the execution (a step's inputs without a round trip of their
    /// own); `None` when it was read otherwise.
    pub pending_signals: Option<Vec<StoredSignal>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewExecution {
    pub run_id: String,
    pub project: String,
    pub request: Value,
    pub state: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Created,
    /// Already there; `same` when it was created from an identical request.
    Exists {
        same: bool,
    },
}

/// An event to append to the outbox (its seq is assigned on commit).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: EventKind,
    pub data: Value,
}

/// What one step leaves behind, committed in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct StepCommit {
    pub run_id: String,
    pub worker: String,
    pub node: i64,
    /// `Waiting` becomes `Runnable` if a signal or a cancel arrived meanwhile.
    pub status: ExecStatus,
    pub state: Value,
    pub wait: Option<Value>,
    pub wake_at: Option<DateTime<Utc>>,
    pub events: Vec<NewEvent>,
    /// Signals up to this seq were read by the step.
    pub consumed_through: Option<i64>,
    /// Keep the lease until then (the worker goes on with the next node);
    /// `None` releases it.
    pub keep_lease_until: Option<DateTime<Utc>>,
    /// The costs of the LLM requests the step made (their `cost.recorded`
    /// events are among `events`).
    pub spend: Vec<Spend>,
    /// Provider jobs the step learned ended: their slots are freed.
    pub jobs_ended: Vec<String>,
    /// Free every slot of the run (it ended, or it may hold one).
    pub release_jobs: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct StoredSignal {
    pub seq: i64,
    pub signal_id: String,
    pub body: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalOutcome {
    Accepted,
    Duplicate,
    UnknownExecution,
}

text_enum! {
    /// Where a journaled provider call stands.
    pub enum JournalStatus {
        /// Begun: the call may or may not have reached the provider.
        Started = "started",
        Succeeded = "succeeded",
        Failed = "failed",
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    pub key: String,
    pub provider: String,
    pub operation: String,
    pub status: JournalStatus,
    pub request: Value,
    pub response: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum JournalBegin {
    /// This worker owns the call: make it.
    Begun,
    /// The call was begun before (maybe answered, maybe not).
    Existing(JournalEntry),
    /// Another worker holds the execution now.
    LeaseLost,
    /// A cancel of the run was requested: nothing written, no call to make.
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OutboxEvent {
    pub event_id: String,
    pub run_id: String,
    pub run_seq: i64,
    pub kind: String,
    #[sqlx(json)]
    pub data: Value,
    pub created_at: DateTime<Utc>,
    pub attempts: i64,
    /// When the API acknowledged it.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Work the engine still holds, for gauges and test teardown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineCounts {
    pub runnable: i64,
    pub waiting: i64,
    pub outbox_pending: i64,
}

/// Executions: one per run, claimed under a lease, committed step by step.
#[async_trait]
pub trait ExecutionStore: Send + Sync {
    /// Creates the execution with its first event, or reports that it exists.
    async fn create_execution(&self, new: &NewExecution, first_event: &NewEvent) -> StoreResult<Created>;

    async fn get_execution(&self, run_id: &str) -> StoreResult<Option<Execution>>;

    /// Leases one runnable execution (or a waiting one whose `wake_at` has
    /// passed) whose lease is free or expired.
    async fn claim(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Option<Execution>>;

    /// Leases up to `limit` such executions in one statement, oldest
    /// first; each gets its own lease owner, `owner` followed by its run id.
    async fn claim_many(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Execution>>;

    /// Gives the lease back early (after a failed step), so another worker
    /// retries without waiting for it to expire.
    async fn release_lease(&self, run_id: &str, worker: &str) -> StoreResult<()>;

    /// `false` when the lease is no longer this worker's.
    async fn extend_lease(&self, run_id: &str, worker: &str, until: DateTime<Utc>) -> StoreResult<bool>;

    /// Commits a step if `commit.worker` still holds the lease.
    async fn commit_step(&self, commit: &StepCommit) -> StoreResult<bool>;

    /// Takes the slot of provider job `key` (a journal key) when `provider`
    /// has fewer than `cap` jobs in flight, or it holds the slot already;
    /// `false`: none free.
    async fn take_job_slot(&self, run_id: &str, key: &str, provider: &str, cap: u32) -> StoreResult<bool>;

    /// The jobs in flight at `provider`, by key.
    async fn provider_jobs(&self, provider: &str) -> StoreResult<Vec<String>>;

    /// Marks the execution for cancellation and wakes it; `None` if unknown.
    async fn request_cancel(&self, run_id: &str) -> StoreResult<Option<ExecStatus>>;

    /// Makes a failed execution runnable again at the node that failed,
    /// with `state` (prepared for the retry), and sets the journal's failed
    /// calls aside (their keys get `:failed:{attempt}`) so the step makes
    /// them afresh. `false` when the execution is not failed (anymore).
    async fn retry_execution(&self, run_id: &str, attempt: u32, state: &Value) -> StoreResult<bool>;
}

/// The signals executions wait for.
#[async_trait]
pub trait SignalStore: Send + Sync {
    async fn add_signal(&self, run_id: &str, signal_id: &str, body: &Value) -> StoreResult<SignalOutcome> {
        let signal = [(signal_id.to_string(), body.clone())];
        Ok(match self.add_signals(run_id, &signal).await?.as_deref() {
            None => SignalOutcome::UnknownExecution,
            Some([true]) => SignalOutcome::Accepted,
            Some(_) => SignalOutcome::Duplicate,
        })
    }

    /// Stores `(signal id, body)` pairs for one execution, in order, in one
    /// transaction, and wakes it if it waits: whether each was new (a
    /// signal id seen before, or earlier in the same list, is a
    /// duplicate); `None` for an unknown execution.
    async fn add_signals(&self, run_id: &str, signals: &[(String, Value)]) -> StoreResult<Option<Vec<bool>>>;

    async fn pending_signals(&self, run_id: &str) -> StoreResult<Vec<StoredSignal>>;

    /// What a step reads before it runs, in one round trip: whether a
    /// cancel was requested, and the unconsumed signals.
    async fn step_inputs(&self, run_id: &str) -> StoreResult<(bool, Vec<StoredSignal>)>;

    /// A signal received before (consumed or not).
    async fn find_signal(&self, run_id: &str, signal_id: &str) -> StoreResult<Option<Value>>;
}

/// The journal of provider calls (idempotency keys and answers).
#[async_trait]
pub trait JournalStore: Send + Sync {
    /// Begins the journal entry of a provider call, once per key, while
    /// `worker` holds the run's lease and no cancel was requested (the
    /// last look at a cancel before a paid call, in the same round trip).
    async fn journal_begin(
        &self,
        run_id: &str,
        worker: &str,
        key: &str,
        provider: &str,
        operation: &str,
        request: &Value,
    ) -> StoreResult<JournalBegin>;

    async fn journal_finish(&self, run_id: &str, key: &str, succeeded: bool, response: &Value) -> StoreResult<()>;

    async fn journal(&self, run_id: &str) -> StoreResult<Vec<JournalEntry>>;
}

/// The outbox of events for the API.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Undelivered events that are due, oldest first, never one that waits
    /// behind an earlier undelivered event of its run.
    async fn outbox_due(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<OutboxEvent>>;

    async fn outbox_delivered(&self, event_ids: &[String]) -> StoreResult<()>;

    /// Postpones every undelivered event of the run.
    async fn outbox_retry(&self, run_id: &str, error: &str, retry_at: DateTime<Utc>) -> StoreResult<()>;

    async fn outbox(&self, run_id: &str) -> StoreResult<Vec<OutboxEvent>>;
}

/// The mock providers' ledger.
#[async_trait]
pub trait LedgerStore: Send + Sync {
    async fn record_mock_call(&self, call: &MockCall) -> StoreResult<()>;

    async fn find_mock_call(&self, provider: &str, operation: &str, key: &str) -> StoreResult<Option<MockCall>>;

    /// Every mock call of a run, in order.
    async fn mock_calls(&self, run_id: &str) -> StoreResult<Vec<MockCall>>;
}

/// The knowledge base the personas search.
#[async_trait]
pub trait KnowledgeStore: Send + Sync {
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
}

/// Everything the orchestrator keeps, one aggregate per trait, and what
/// spans them (counts, retention, a liveness check).
#[async_trait]
pub trait OrchestratorStore:
    ExecutionStore
    + SignalStore
    + JournalStore
    + SpendStore
    + OutboxStore
    + LedgerStore
    + KnowledgeStore
    + Send
    + Sync
    + 'static
{
    async fn counts(&self) -> StoreResult<EngineCounts>;

    /// Retention: the journal, delivered outbox events, signals and mock
    /// provider calls of executions that finished (completed, failed,
    /// cancelled, rejected) before `cutoff`; never a row of a runnable or
    /// waiting one, whose exactly-once rests on them. The executions stay.
    /// Counted when `dry_run`, else deleted in one transaction; rows by
    /// table name.
    async fn prune(&self, cutoff: DateTime<Utc>, dry_run: bool) -> StoreResult<BTreeMap<String, u64>>;

    async fn ping(&self) -> StoreResult<()>;
}

/// The mock providers' ledger, kept in this store.
pub struct StoreLedger(pub Arc<dyn OrchestratorStore>);

#[async_trait]
impl myloware_providers::mock::MockLedger for StoreLedger {
    async fn record(&self, call: &MockCall) -> Result<(), String> {
        self.0.record_mock_call(call).await.map_err(|e| e.to_string())
    }

    async fn find(&self, provider: &str, operation: &str, key: &str) -> Result<Option<MockCall>, String> {
        self.0
            .find_mock_call(provider, operation, key)
            .await
            .map_err(|e| e.to_string())
    }
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
