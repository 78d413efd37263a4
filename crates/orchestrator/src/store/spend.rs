//! What every paid call cost (table `spend`): a provider call's cost is
//! written when its journal entry is recorded as succeeded, in the same
//! transaction and once per journal key; an LLM request's with the step
//! that used it ([`super::StepCommit::spend`]). Each row is announced to
//! the API by a `cost.recorded` event written in its transaction. Budgets
//! read the sums ([`SpendStore::spent_since`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use myloware_core::ProviderMode;
use myloware_core::costs::Charge;
use serde_json::Value;

use super::{JournalBegin, NewEvent, StoreResult};

/// A paid call's cost, as recorded and as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Spend {
    pub run_id: String,
    pub project: String,
    pub charge: Charge,
    pub mode: ProviderMode,
    /// The journal key of a provider call; `None` for an LLM request.
    pub journal_key: Option<String>,
    pub at: DateTime<Utc>,
}

/// A paid call's answer, as [`SpendStore::journal_succeeded_paid`] takes
/// it: held by a step until its next call's begin writes it.
#[derive(Debug, Clone)]
pub struct PaidAnswer {
    pub key: String,
    pub response: Value,
    pub spend: Spend,
    pub event: NewEvent,
}

/// The next provider call to begin, as
/// [`super::JournalStore::journal_begin`] takes it.
#[derive(Debug, Clone, Copy)]
pub struct NextCall<'a> {
    pub key: &'a str,
    pub provider: &'a str,
    pub operation: &'a str,
    pub request: &'a Value,
}

/// The costs of paid calls.
#[async_trait]
pub trait SpendStore: Send + Sync {
    /// Records a paid call's success in the journal (`response`), its cost
    /// and `event` (its `cost.recorded`, appended to the run's outbox) in
    /// one transaction. A journal key whose cost was recorded before keeps
    /// its one row and gets no second event: `false` then.
    async fn journal_succeeded_paid(
        &self,
        run_id: &str,
        key: &str,
        response: &Value,
        spend: &Spend,
        event: &NewEvent,
    ) -> StoreResult<bool>;

    /// `journal_succeeded_paid` of `paid`, then `journal_begin` of `next`
    /// while `worker` holds the lease, in one transaction (one round trip
    /// on Postgres): a step making paid calls one after another writes each
    /// answer with the next call's begin. The answer is written whatever
    /// the begin finds (a lost lease, a cancel, an existing entry).
    async fn journal_paid_then_begin(
        &self,
        run_id: &str,
        worker: &str,
        paid: &PaidAnswer,
        next: NextCall<'_>,
    ) -> StoreResult<(bool, JournalBegin)>;

    /// What was spent since `since` in `mode`, in micro-dollars: by
    /// `project`, or by every project.
    async fn spent_since(&self, project: Option<&str>, since: DateTime<Utc>, mode: ProviderMode) -> StoreResult<i64>;

    /// A run's costs, in the order they were recorded.
    async fn spend(&self, run_id: &str) -> StoreResult<Vec<Spend>>;
}
