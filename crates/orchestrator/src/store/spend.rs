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

use super::{NewEvent, StoreResult};

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

    /// What was spent since `since` in `mode`, in micro-dollars: by
    /// `project`, or by every project.
    async fn spent_since(&self, project: Option<&str>, since: DateTime<Utc>, mode: ProviderMode) -> StoreResult<i64>;

    /// A run's costs, in the order they were recorded.
    async fn spend(&self, run_id: &str) -> StoreResult<Vec<Spend>>;
}
