//! Costs as the API keeps them: each `cost.recorded` event applied (table
//! `run_costs`, written once with its event, by event id) and a run's
//! estimate (`runs.estimated_usd_micros`, written with the run). A run's
//! costs are read with the run ([`super::RunDetails`]); per day, project,
//! mode and provider for `GET /v1/costs` ([`DaySpend`]).

use chrono::{DateTime, Utc};
use myloware_core::ProviderMode;
use myloware_core::costs::Charge;

/// A cost, applied with its `cost.recorded` event.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedCost {
    pub event_id: String,
    pub run_id: String,
    pub project: String,
    pub charge: Charge,
    pub mode: ProviderMode,
    pub journal_key: Option<String>,
    pub at: DateTime<Utc>,
}

impl AppliedCost {
    /// The UTC day it counts for (`YYYY-MM-DD`).
    pub fn day(&self) -> String {
        self.at.format("%Y-%m-%d").to_string()
    }
}

/// One of a run's paid calls (or LLM requests), as its cost was recorded.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RunCostRow {
    pub at: DateTime<Utc>,
    pub provider: String,
    pub operation: String,
    pub usd_micros: i64,
    /// The call's journal key (none for an LLM request).
    pub journal_key: Option<String>,
}

/// What one provider cost on one day, for one project, in one mode.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DaySpend {
    pub day: String,
    pub project: String,
    pub mode: String,
    pub provider: String,
    pub usd_micros: i64,
}

/// Inserts `$costs` (a non-empty list of `&AppliedCost`) in one statement.
macro_rules! insert_run_costs {
    ($costs:expr, $executor:expr) => {{
        let mut insert = sqlx::QueryBuilder::new(
            "INSERT INTO run_costs (event_id, run_id, project, provider, operation, model, units, usd_micros, mode, \
             journal_key, at, day) ",
        );
        insert.push_values($costs, |mut row, cost| {
            row.push_bind(&cost.event_id)
                .push_bind(&cost.run_id)
                .push_bind(&cost.project)
                .push_bind(&cost.charge.provider)
                .push_bind(&cost.charge.operation)
                .push_bind(&cost.charge.model)
                .push_bind(cost.charge.units)
                .push_bind(cost.charge.usd_micros)
                .push_bind(cost.mode.as_str())
                .push_bind(&cost.journal_key)
                .push_bind(cost.at)
                .push_bind(cost.day());
        });
        insert.build().execute($executor).await?
    }};
}
pub(super) use insert_run_costs;

/// The [`ApiStore`](super::ApiStore) methods of costs, handed on to `$next`
/// with the methods gathered so far (`sql.rs` chains every aggregate's).
macro_rules! cost_methods {
    ($next:ident ! ($($args:tt)*) $($methods:tt)*) => {
        $next! { $($args)* $($methods)*
            async fn spend_by_day(&self, from: &str, to: &str, project: Option<&str>) -> StoreResult<Vec<DaySpend>> {
                let days: Vec<DaySpend> = sqlx::query_as(
                    "SELECT day, project, mode, provider, CAST(SUM(usd_micros) AS BIGINT) AS usd_micros FROM run_costs \
                     WHERE day >= $1 AND day <= $2 AND ($3 IS NULL OR project = $3) \
                     GROUP BY day, project, mode, provider ORDER BY day, project, mode, provider",
                )
                .bind(from)
                .bind(to)
                .bind(project)
                .fetch_all(&self.pool)
                .await?;
                Ok(days)
            }

            async fn run_costs(&self, run_id: &str) -> StoreResult<Vec<RunCostRow>> {
                let spent: Vec<RunCostRow> = sqlx::query_as(
                    "SELECT at, provider, operation, usd_micros, journal_key FROM run_costs WHERE run_id = $1 \
                     ORDER BY at, event_id",
                )
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(spent)
            }

            async fn live_spend_since(&self, from: &str, project: Option<&str>) -> StoreResult<i64> {
                let spent: Option<i64> = sqlx::query_scalar(
                    "SELECT CAST(SUM(usd_micros) AS BIGINT) FROM run_costs \
                     WHERE mode = 'live' AND day >= $1 AND ($2 IS NULL OR project = $2)",
                )
                .bind(from)
                .bind(project)
                .fetch_one(&self.pool)
                .await?;
                Ok(spent.unwrap_or(0))
            }
        }
    };
}
pub(super) use cost_methods;
