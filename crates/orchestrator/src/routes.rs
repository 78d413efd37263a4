//! `/v1/executions`: start, read, signal, cancel, resume, retry; `/v1/chat/brendan`
//! and `/v1/retention/prune`. Each handler parses the body (a type of
//! `myloware_core::wire`), calls the engine and maps its answer; the rules
//! live in the engine (`crate::engine::intake`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use myloware_core::wire::{
    CancelAccepted, ChatReply, ChatTurn, ExecutionAccepted, PruneCounts, PruneRequest, ResumeExecution, RetryAccepted,
    RetryExecution, RetryStatus, SignalAccepted, SignalBatch, SignalBatchAccepted, SignalDelivery, SignalStatus,
    StartExecution, StartStatus,
};
use myloware_http::ValidJson;
use serde_json::{Value, json};

use crate::OrchestratorState;
use crate::error::{OrchestratorError, RouteResult};

/// `POST /v1/executions`: idempotent on `runId` (202 queued, 200 exists).
pub async fn start(
    State(state): State<OrchestratorState>,
    ValidJson(request): ValidJson<StartExecution>,
) -> RouteResult<(StatusCode, Json<ExecutionAccepted>)> {
    let accepted = state.engine.start(&request).await?;
    let status = match accepted.status {
        StartStatus::Queued => StatusCode::ACCEPTED,
        StartStatus::Exists => StatusCode::OK,
    };
    Ok((status, Json(accepted)))
}

/// `GET /v1/executions/{runId}`: state and journal, for debugging.
pub async fn show(State(state): State<OrchestratorState>, Path(run_id): Path<String>) -> RouteResult<Json<Value>> {
    let store = &state.engine.store;
    let execution = store
        .get_execution(&run_id)
        .await?
        .ok_or_else(|| OrchestratorError::not_found("execution"))?;
    let journal = store.journal(&run_id).await.unwrap_or_default();
    let outbox = store.outbox(&run_id).await.unwrap_or_default();
    Ok(Json(json!({
        "runId": execution.run_id,
        "project": execution.project,
        "status": execution.status.as_str(),
        "node": execution.node,
        "state": execution.state,
        "wait": execution.wait,
        "wakeAt": execution.wake_at,
        "cancelRequested": execution.cancel_requested,
        "leaseOwner": execution.lease_owner,
        "leaseUntil": execution.lease_until,
        "steps": execution.steps,
        "journal": journal.iter().map(|j| json!({"key": j.key, "provider": j.provider, "operation": j.operation, "status": j.status, "response": j.response})).collect::<Vec<Value>>(),
        "events": outbox.iter().map(|e| json!({"seq": e.run_seq, "type": e.kind, "delivered": e.delivered_at.is_some(), "attempts": e.attempts})).collect::<Vec<Value>>(),
    })))
}

/// 202 for a signal taken now, 200 for one taken before.
fn signal_answer(accepted: SignalAccepted) -> (StatusCode, Json<SignalAccepted>) {
    let status = match accepted.status {
        SignalStatus::Accepted => StatusCode::ACCEPTED,
        SignalStatus::Duplicate => StatusCode::OK,
    };
    (status, Json(accepted))
}

/// `POST /v1/executions/{runId}/signals`: relayed webhooks; idempotent on `signalId`.
pub async fn signals(
    State(state): State<OrchestratorState>,
    Path(run_id): Path<String>,
    ValidJson(delivery): ValidJson<SignalDelivery>,
) -> RouteResult<(StatusCode, Json<SignalAccepted>)> {
    let accepted = state
        .engine
        .signal(&run_id, &delivery.signal_id, &delivery.signal)
        .await?;
    Ok(signal_answer(accepted))
}

/// `POST /v1/executions/{runId}/signals/batch`: a run's relayed webhooks
/// together (1 to 100, in order, one transaction); each idempotent on its
/// `signalId`. 200 with each one's status.
pub async fn signal_batch(
    State(state): State<OrchestratorState>,
    Path(run_id): Path<String>,
    ValidJson(batch): ValidJson<SignalBatch>,
) -> RouteResult<Json<SignalBatchAccepted>> {
    Ok(Json(state.engine.signals(&run_id, &batch).await?))
}

/// `POST /v1/executions/{runId}/resume`: a gate decision.
pub async fn resume(
    State(state): State<OrchestratorState>,
    Path(run_id): Path<String>,
    ValidJson(resume): ValidJson<ResumeExecution>,
) -> RouteResult<(StatusCode, Json<SignalAccepted>)> {
    Ok(signal_answer(state.engine.resume(&run_id, &resume).await?))
}

/// `POST /v1/executions/{runId}/cancel`: stops before the next side effect.
pub async fn cancel(
    State(state): State<OrchestratorState>,
    Path(run_id): Path<String>,
) -> RouteResult<(StatusCode, Json<CancelAccepted>)> {
    Ok((StatusCode::ACCEPTED, Json(state.engine.cancel(&run_id).await?)))
}

/// `POST /v1/executions/{runId}/retry`: continue a failed execution from
/// the step that failed; 202 when queued, 200 for an attempt taken before.
pub async fn retry(
    State(state): State<OrchestratorState>,
    Path(run_id): Path<String>,
    ValidJson(retry): ValidJson<RetryExecution>,
) -> RouteResult<(StatusCode, Json<RetryAccepted>)> {
    let accepted = state.engine.retry(&run_id, &retry).await?;
    let status = match accepted.status {
        RetryStatus::Queued => StatusCode::ACCEPTED,
        RetryStatus::Duplicate => StatusCode::OK,
    };
    Ok((status, Json(accepted)))
}

/// `POST /v1/retention/prune`: the journal, delivered events, signals and
/// mock calls of executions finished more than `olderThanDays` ago, per
/// table (the API's prune calls it); counted only with `dryRun`.
pub async fn prune(
    State(state): State<OrchestratorState>,
    ValidJson(request): ValidJson<PruneRequest>,
) -> RouteResult<Json<PruneCounts>> {
    request
        .check()
        .map_err(|message| OrchestratorError::Unprocessable(format!("olderThanDays {message}")))?;
    let cutoff = chrono::Utc::now() - chrono::Duration::days(request.older_than_days);
    let tables = state.engine.store.prune(cutoff, request.dry_run).await?;
    tracing::info!(dry_run = request.dry_run, %cutoff, ?tables, "retention prune");
    Ok(Json(PruneCounts {
        dry_run: request.dry_run,
        cutoff,
        tables,
    }))
}

/// Limits of a chat turn (the API enforces its own before calling).
const MAX_MESSAGE_CHARS: usize = 4000;
const MAX_HISTORY: usize = 100;

/// `POST /v1/chat/brendan`: one turn of Brendan's. Stateless: the API sends
/// the transcript and the runs, and applies the actions he answers.
pub async fn chat(
    State(state): State<OrchestratorState>,
    headers: axum::http::HeaderMap,
    ValidJson(turn): ValidJson<ChatTurn>,
) -> RouteResult<Json<ChatReply>> {
    let chars = turn.message.trim().chars().count();
    if chars == 0 || chars > MAX_MESSAGE_CHARS {
        return Err(OrchestratorError::Unprocessable(format!(
            "message must be 1 to {MAX_MESSAGE_CHARS} characters"
        )));
    }
    if turn.history.len() > MAX_HISTORY {
        return Err(OrchestratorError::Unprocessable(format!(
            "at most {MAX_HISTORY} history lines"
        )));
    }
    // A child of the API's `brendan-chat` span.
    let span = tracing::info_span!("brendan.turn", user_id = %turn.user_id, langsmith.span.kind = "chain");
    let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok());
    myloware_telemetry::trace::set_parent(&span, traceparent);
    let answer = tracing::Instrument::instrument(crate::brendan::turn(&state.engine, &turn), span).await;
    answer.map(Json).map_err(|err| {
        tracing::warn!(user = %turn.user_id, error = %err, "brendan failed");
        OrchestratorError::BadGateway(format!("Brendan could not answer: {err}"))
    })
}
