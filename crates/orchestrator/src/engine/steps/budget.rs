//! The budget hold: before a live run's paid provider calls, their price
//! is checked against every spending limit that applies
//! ([`myloware_core::costs::limits`]), counting what the orchestrator
//! recorded (`spend`, mode `live`). A call with no room waits, never made
//! in part: the run is held (`awaiting_budget`, a `budget.held` artifact)
//! and looks again every `BUDGET_RECHECK_SECS` and when the limit's period
//! ends; it goes on, with a `budget.released` artifact, once the limit
//! allows (raised and the orchestrator restarted, or a new day or month).
//! A project's own limits are read from the catalog the orchestrator
//! loaded, so a raised `[budget]` applies to runs already held.

use myloware_core::costs::limits::Exceeded;

use super::*;

/// `Some(park)` when `calls` calls of `provider`'s `operation` do not fit in
/// a limit; `None` to make them (a hold ends here).
pub(super) async fn hold(
    step: &mut Step<'_>,
    persona: Persona,
    provider: &str,
    operation: &str,
    calls: usize,
) -> Result<Option<Outcome>, StepError> {
    if step.request.providers_mode == ProviderMode::Mock || calls == 0 {
        return Ok(None);
    }
    let Some(charge) = spend::provider_charge(step, provider, operation) else {
        return Ok(None);
    };
    let needed = charge.usd_micros * calls as i64;
    let engine = step.engine;
    let project = &step.request.project;
    let budget = engine
        .project_budgets
        .get(project)
        .copied()
        .unwrap_or(step.request.project_spec.budget);
    let now = Utc::now();
    for limit in engine.config.budget.limits(project, budget, now.date_naive()) {
        let since = limit.since.and_time(chrono::NaiveTime::MIN).and_utc();
        let spent = engine
            .store
            .spent_since(limit.project.as_deref(), since, ProviderMode::Live)
            .await?;
        if let Some(exceeded) = limit.exceeded(spent, needed) {
            return Ok(Some(held(
                step,
                persona,
                &exceeded,
                &format!("{provider}.{operation}"),
                calls,
                now,
            )));
        }
    }
    if let Some(limit) = step.state.budget_hold.take() {
        tracing::info!(runId = %step.run_id, %persona, %limit, "budget hold released");
        step.emit(
            EventKind::ArtifactCreated,
            json!({"kind": "budget.released", "persona": persona, "data": {"limit": limit}}),
        );
        if let Some(status) = persona_status(persona) {
            step.emit(EventKind::StatusChanged, json!({"status": status}));
        }
    }
    Ok(None)
}

/// Parks the run until the next look; tells the API once per limit.
fn held(
    step: &mut Step<'_>,
    persona: Persona,
    exceeded: &Exceeded,
    call: &str,
    calls: usize,
    now: chrono::DateTime<Utc>,
) -> Outcome {
    let mut detail = exceeded.to_json();
    detail["persona"] = json!(persona);
    detail["calls"] = json!({"call": call, "count": calls});
    let name = &exceeded.limit.name;
    if step.state.budget_hold.as_ref() != Some(name) {
        let what = format!("{calls} × {call}");
        tracing::warn!(runId = %step.run_id, %persona, reason = %exceeded.describe(&what), "run held by a spending limit");
        // The artifact first: a run seen `awaiting_budget` shows why.
        step.emit(
            EventKind::ArtifactCreated,
            json!({"kind": "budget.held", "persona": persona, "data": detail}),
        );
        if step.state.budget_hold.is_none() {
            step.emit(EventKind::StatusChanged, json!({"status": RunStatus::AwaitingBudget}));
        }
        step.state.budget_hold = Some(name.clone());
    }
    let recheck = now + chrono::Duration::seconds(step.engine.config.engine.budget_recheck_secs as i64);
    let period_ends = exceeded.limit.until.and_time(chrono::NaiveTime::MIN).and_utc();
    Outcome::Park {
        wait: json!({"for": "budget", "hold": detail}),
        wake_at: Some(recheck.min(period_ends)),
    }
}
