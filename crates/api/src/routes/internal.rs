//! `POST /v1/internal/events`: the orchestrator's outbox delivers here.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use myloware_core::ErrorBody;
use myloware_core::wire::{Event, EventBatch, EventOutcome, EventResult, EventResults};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ValidJson};
use crate::events;
use crate::state::ApiState;

/// The orchestrator's deliveries, with its internal credential.
pub fn router(state: &ApiState) -> OpenApiRouter<ApiState> {
    super::internal(state, OpenApiRouter::new().routes(routes!(receive_events)))
}

/// Applies a batch of events, each once and in order per run. The answer
/// says per event whether it was applied, a duplicate, out of order (send
/// it again later) or for an unknown run.
#[utoipa::path(post, path = "/v1/internal/events", tag = "internal", security(("internal" = [])),
    request_body = EventBatch,
    responses(
        (status = 200, body = EventResults),
        (status = 409, description = "No run of the delivery could be written: every one kept changing under other writers; send the events again", body = ErrorBody),
        (status = 413, description = "Body over MAX_BODY_BYTES (refused before the signature is checked)"),
    ))]
pub async fn receive_events(
    State(state): State<ApiState>,
    ValidJson(batch): ValidJson<EventBatch>,
) -> Result<Json<EventResults>, ApiError> {
    // Each run's events in their order; the runs together.
    let mut runs: HashMap<&str, Vec<usize>> = HashMap::new();
    for (at, event) in batch.events.iter().enumerate() {
        runs.entry(&event.run_id).or_default().push(at);
    }
    let runs: Vec<Vec<usize>> = runs.into_values().collect();
    let events: Vec<Vec<&Event>> = runs
        .iter()
        .map(|positions| positions.iter().map(|at| &batch.events[*at]).collect())
        .collect();
    let mut outcomes = vec![EventOutcome::OutOfOrder; batch.events.len()];
    for (positions, answers) in runs.iter().zip(events::apply_delivery(&state, &events).await?) {
        for (at, outcome) in positions.iter().zip(answers) {
            outcomes[*at] = outcome;
        }
    }
    let results = batch
        .events
        .iter()
        .zip(outcomes)
        .map(|(event, status)| EventResult {
            event_id: event.event_id.clone(),
            status,
        })
        .collect();
    Ok(Json(EventResults { results }))
}
