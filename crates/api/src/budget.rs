//! Spending limits at a run's start: a live run whose estimate is more than
//! a limit has left is refused (409) before anything is stored or paid.
//! Which limits apply and what they count: [`myloware_core::costs::limits`];
//! spend is what the API applied from `cost.recorded` events (`run_costs`,
//! mode `live`). A running run is held by the orchestrator instead, at its
//! next paid call.

use chrono::Utc;
use myloware_core::ProviderMode;
use myloware_core::project::{Persona, ProjectSpec};
use myloware_core::wire::StartExecution;

use crate::error::ApiError;
use crate::state::ApiState;

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
    let today = Utc::now().date_naive();
    for limit in state.config.budget.limits(&spec.project, spec.budget, today) {
        let since = limit.since.to_string();
        let spent = state.store.live_spend_since(&since, limit.project.as_deref()).await?;
        if let Some(exceeded) = limit.exceeded(spent, estimate) {
            return Err(ApiError::Conflict(exceeded.describe("this run")));
        }
    }
    Ok(())
}

/// What a run of `spec` through `pipeline` is expected to cost, in
/// micro-dollars. Personas use the LLM only when one is configured.
pub fn estimate(state: &ApiState, spec: &ProjectSpec, pipeline: &[Persona]) -> i64 {
    let llm = &state.config.llm;
    let llm_model = llm.api_key.is_some().then_some(llm.model.as_str());
    state.config.prices.estimate_pipeline(spec, pipeline, llm_model).total()
}

/// A proposal is checked again when its workflow gate is approved: spend
/// may have grown since it was proposed.
pub async fn check_proposal(state: &ApiState, start: &StartExecution) -> Result<(), ApiError> {
    let estimate = estimate(state, &start.project_spec, &start.graph_spec.pipeline);
    check_start(state, &start.project_spec, start.providers_mode, estimate).await
}
