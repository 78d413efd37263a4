//! Spending limits at a run's start: a live run whose estimate is more than
//! a limit has left is refused (409) before anything is stored or paid.
//! Limits count live spend (`run_costs`, mode `live`) per UTC day and UTC
//! calendar month, for all projects (`SPEND_LIMIT_*_USD`) and for the
//! run's project (its `[budget]`).

use chrono::{Datelike, Utc};
use myloware_core::ProviderMode;
use myloware_core::costs::usd;
use myloware_core::project::ProjectSpec;

use crate::error::ApiError;
use crate::state::ApiState;

/// One limit: what it is called in a refusal, from which day it counts,
/// whose spend, and how much.
struct Limit<'a> {
    name: String,
    since: String,
    project: Option<&'a str>,
    micros: i64,
}

/// `Ok` when `estimate` (micro-dollars) fits in every limit that applies to
/// a run of `spec` in `mode`; mock runs spend nothing and always fit.
pub async fn check_start(
    state: &ApiState,
    spec: &ProjectSpec,
    mode: ProviderMode,
    estimate: i64,
) -> Result<(), ApiError> {
    if mode == ProviderMode::Mock {
        return Ok(());
    }
    for limit in limits(state, spec) {
        let spent = state.store.live_spend_since(&limit.since, limit.project).await?;
        let left = (limit.micros - spent).max(0);
        if estimate > left {
            return Err(ApiError::Conflict(format!(
                "the {} is {:.2} USD, {:.2} USD of it spent, {:.2} USD left; this run is estimated at {:.2} USD",
                limit.name,
                usd(limit.micros),
                usd(spent),
                usd(left),
                usd(estimate),
            )));
        }
    }
    Ok(())
}

fn limits<'a>(state: &ApiState, spec: &'a ProjectSpec) -> Vec<Limit<'a>> {
    let today = Utc::now().date_naive();
    let month = today.with_day(1).expect("every month has a first day");
    let (day, month) = (today.to_string(), month.to_string());
    let global = &state.config.budget;
    let project = spec.budget.unwrap_or_default();
    let micros = |usd: Option<f64>| usd.map(myloware_core::costs::micros);
    [
        (
            "daily spend limit (SPEND_LIMIT_DAILY_USD)".to_string(),
            &day,
            None,
            global.daily_micros,
        ),
        (
            "monthly spend limit (SPEND_LIMIT_MONTHLY_USD)".to_string(),
            &month,
            None,
            global.monthly_micros,
        ),
        (
            format!("daily spend limit of project {}", spec.project),
            &day,
            Some(spec.project.as_str()),
            micros(project.daily_usd),
        ),
        (
            format!("monthly spend limit of project {}", spec.project),
            &month,
            Some(spec.project.as_str()),
            micros(project.monthly_usd),
        ),
    ]
    .into_iter()
    .filter_map(|(name, since, project, micros)| {
        micros.map(|micros| Limit {
            name,
            since: since.clone(),
            project,
            micros,
        })
    })
    .collect()
}
