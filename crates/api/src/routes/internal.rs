//! `POST /v1/internal/events`: the orchestrator's outbox delivers here.

use axum::Json;
use axum::extract::State;
use myloware_core::wire::{EventBatch, EventOutcome, EventResult, EventResults};
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
        (status = 413, description = "Body over MAX_BODY_BYTES (refused before the signature is checked)"),
    ))]
pub async fn receive_events(
    State(state): State<ApiState>,
    ValidJson(batch): ValidJson<EventBatch>,
) -> Result<Json<EventResults>, ApiError> {
    let mut results = Vec::with_capacity(batch.events.len());
    let mut blocked_runs: Vec<&str> = Vec::new();
    for event in &batch.events {
        // After an out-of-order event, later events of that run wait too.
        let status = if blocked_runs.contains(&event.run_id.as_str()) {
            EventOutcome::OutOfOrder
        } else {
            events::apply(&state, event).await?
        };
        if status == EventOutcome::OutOfOrder {
            blocked_runs.push(&event.run_id);
        }
        results.push(EventResult {
            event_id: event.event_id.clone(),
            status,
        });
    }
    Ok(Json(EventResults { results }))
}
