//! What a step's paid calls cost. A provider call's cost is recorded with
//! its journal entry's success (same transaction, once per journal key);
//! an LLM request's with the step that made it. Each cost is announced to
//! the API by a `cost.recorded` event written in its transaction. A mock
//! run records what its calls would have cost (mode `mock`).

use myloware_core::costs::{Charge, KIEAI_MODEL, render_seconds};
use myloware_core::wire::CostRecorded;

use super::*;
use crate::store::{NewEvent, PaidAnswer, Spend};

/// The price of a journaled provider call; `None` for one that is free.
pub(super) fn provider_charge(step: &Step<'_>, provider: &str, operation: &str) -> Option<Charge> {
    let prices = &step.engine.config.prices;
    match (provider, operation) {
        ("kieai", "submit") => Some(prices.clip(KIEAI_MODEL)),
        // Shotstack bills the rendered length: the project's clips end to end.
        ("shotstack", "render") => Some(prices.render(render_seconds(&step.request.project_spec))),
        ("upload_post", "publish") => Some(prices.publish()),
        _ => None,
    }
}

/// The row and its `cost.recorded` event.
fn cost(step: &Step<'_>, charge: &Charge, key: Option<&str>) -> (Spend, NewEvent) {
    let mode = step.request.providers_mode;
    let event = NewEvent {
        kind: EventKind::CostRecorded,
        data: serde_json::to_value(CostRecorded::new(charge, mode, key)).expect("a cost serializes"),
    };
    let spend = Spend {
        run_id: step.run_id.clone(),
        project: step.request.project.clone(),
        charge: charge.clone(),
        mode,
        journal_key: key.map(str::to_owned),
        at: Utc::now(),
    };
    (spend, event)
}

/// Records a paid call's success in the journal with its cost and event
/// (or holds it for the next call's begin: [`journal::hold_answers`]).
/// The outbox is not woken for it: the step's commit, which follows, does,
/// and the event goes out in the same batch as the step's.
pub(super) async fn journal_succeeded(
    step: &Step<'_>,
    key: &str,
    charge: &Charge,
    response: &Value,
) -> Result<(), StepError> {
    let (spend, event) = cost(step, charge, Some(key));
    if step.held.holding {
        // This call's begin took the answer held before it, so none is
        // held here; the next begin writes this one.
        journal::write_held_answer(step).await?;
        let answer = PaidAnswer {
            key: key.to_owned(),
            response: response.clone(),
            spend,
            event,
        };
        journal::hold(step, answer);
        return Ok(());
    }
    let store = &step.engine.store;
    store
        .journal_succeeded_paid(&step.run_id, key, response, &spend, &event)
        .await?;
    Ok(())
}

/// An LLM persona's requests, each priced by its tokens, to be committed
/// with the step.
pub(super) fn llm_requests(step: &mut Step<'_>, model: &str, requests: &[RequestTokens]) {
    for request in requests {
        let charge = step
            .engine
            .config
            .prices
            .llm_request(model, request.input, request.output);
        let (spend, event) = cost(step, &charge, None);
        step.spend.push(spend);
        step.events.push(event);
    }
}
