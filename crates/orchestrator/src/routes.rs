//! `/v1/executions`: start, read, signal, cancel, resume; and
//! `/v1/retention/prune`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use myloware_core::Gate;
use myloware_core::wire::{ChatTurn, EventKind, PruneCounts, PruneRequest, Signal, SignalDelivery, StartExecution};
use myloware_http::ValidJson;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::OrchestratorState;
use crate::store::{Created, NewEvent, NewExecution, SignalOutcome};

fn error(status: StatusCode, detail: impl Into<String>) -> Response {
    (status, Json(json!({"detail": detail.into()}))).into_response()
}

fn internal(err: sqlx::Error) -> Response {
    tracing::error!(error = %err, "store failed");
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
}

/// `POST /v1/executions`: idempotent on `runId`.
pub async fn start(State(state): State<OrchestratorState>, ValidJson(request): ValidJson<StartExecution>) -> Response {
    if !myloware_core::ids::is_run_id(&request.run_id) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "runId is not a run id");
    }
    if let Err(err) = myloware_core::graph::nodes(&request.graph_spec) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, err.to_string());
    }
    let new = NewExecution {
        run_id: request.run_id.clone(),
        project: request.project.clone(),
        request: serde_json::to_value(&request).expect("serializes"),
        state: json!({}),
    };
    let first = NewEvent {
        kind: EventKind::ExecutionStarted,
        data: json!({"providersMode": request.providers_mode}),
    };
    match state.engine.store.create_execution(&new, &first).await {
        Ok(Created::Created) => {
            tracing::info!(runId = %request.run_id, project = %request.project, "execution queued");
            state.engine.work.notify_one();
            state.engine.events.notify_one();
            (
                StatusCode::ACCEPTED,
                Json(json!({"runId": request.run_id, "status": "queued"})),
            )
                .into_response()
        }
        Ok(Created::Exists { same: true }) => (
            StatusCode::OK,
            Json(json!({"runId": request.run_id, "status": "exists"})),
        )
            .into_response(),
        Ok(Created::Exists { same: false }) => error(
            StatusCode::CONFLICT,
            "an execution with this runId exists with a different request",
        ),
        Err(err) => internal(err),
    }
}

/// `GET /v1/executions/{runId}`: state and journal, for debugging.
pub async fn show(State(state): State<OrchestratorState>, Path(run_id): Path<String>) -> Response {
    let store = &state.engine.store;
    let execution = match store.get_execution(&run_id).await {
        Ok(Some(execution)) => execution,
        Ok(None) => return error(StatusCode::NOT_FOUND, "execution not found"),
        Err(err) => return internal(err),
    };
    let journal = store.journal(&run_id).await.unwrap_or_default();
    let outbox = store.outbox(&run_id).await.unwrap_or_default();
    Json(json!({
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
    }))
    .into_response()
}

async fn signal(state: &OrchestratorState, run_id: &str, signal_id: &str, signal: &Signal) -> Response {
    let body = serde_json::to_value(signal).expect("serializes");
    match state.engine.store.add_signal(run_id, signal_id, &body).await {
        Ok(SignalOutcome::Accepted) => {
            state.engine.work.notify_one();
            (StatusCode::ACCEPTED, Json(json!({"status": "accepted"}))).into_response()
        }
        Ok(SignalOutcome::Duplicate) => (StatusCode::OK, Json(json!({"status": "duplicate"}))).into_response(),
        Ok(SignalOutcome::UnknownExecution) => error(StatusCode::NOT_FOUND, "execution not found"),
        Err(err) => internal(err),
    }
}

/// `POST /v1/executions/{runId}/signals`: relayed webhooks; idempotent on `signalId`.
pub async fn signals(
    State(state): State<OrchestratorState>,
    Path(run_id): Path<String>,
    ValidJson(delivery): ValidJson<SignalDelivery>,
) -> Response {
    signal(&state, &run_id, &delivery.signal_id, &delivery.signal).await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resume {
    gate: Gate,
    decision: String,
    #[serde(default)]
    approver: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /v1/executions/{runId}/resume`: a gate decision.
pub async fn resume(
    State(state): State<OrchestratorState>,
    Path(run_id): Path<String>,
    ValidJson(resume): ValidJson<Resume>,
) -> Response {
    let approve = match resume.decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return error(StatusCode::UNPROCESSABLE_ENTITY, "decision must be approve or reject"),
    };
    let execution = match state.engine.store.get_execution(&run_id).await {
        Ok(Some(execution)) => execution,
        Ok(None) => return error(StatusCode::NOT_FOUND, "execution not found"),
        Err(err) => return internal(err),
    };
    let signal_id = format!("gate:{}", resume.gate);
    // The same decision again is a no-op; the opposite one is a conflict.
    match state.engine.store.find_signal(&run_id, &signal_id).await {
        Ok(Some(earlier)) => {
            return if earlier["approve"] == json!(approve) {
                (StatusCode::OK, Json(json!({"status": "duplicate"}))).into_response()
            } else {
                error(
                    StatusCode::CONFLICT,
                    format!("the {} gate was already decided otherwise", resume.gate),
                )
            };
        }
        Ok(None) => {}
        Err(err) => return internal(err),
    }
    let waiting_here = execution.wait.as_ref().is_some_and(|w| w["gate"] == json!(resume.gate));
    if execution.status.is_finished() || !waiting_here {
        return error(
            StatusCode::CONFLICT,
            format!("the execution is not waiting at the {} gate", resume.gate),
        );
    }
    let decision = Signal::GateDecision {
        gate: resume.gate,
        approve,
        approver: resume.approver,
        reason: resume.reason,
    };
    signal(&state, &run_id, &signal_id, &decision).await
}

/// `POST /v1/executions/{runId}/cancel`: stops before the next side effect.
pub async fn cancel(State(state): State<OrchestratorState>, Path(run_id): Path<String>) -> Response {
    match state.engine.store.request_cancel(&run_id).await {
        Ok(Some(status)) => {
            state.engine.work.notify_one();
            tracing::info!(runId = %run_id, "cancel requested");
            (
                StatusCode::ACCEPTED,
                Json(json!({"runId": run_id, "status": status.as_str(), "cancelRequested": true})),
            )
                .into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "execution not found"),
        Err(err) => internal(err),
    }
}

/// `POST /v1/retention/prune`: the journal, delivered events, signals and
/// mock calls of executions finished more than `olderThanDays` ago, per
/// table (the API's prune calls it); counted only with `dryRun`.
pub async fn prune(State(state): State<OrchestratorState>, ValidJson(request): ValidJson<PruneRequest>) -> Response {
    if let Err(message) = request.check() {
        return error(StatusCode::UNPROCESSABLE_ENTITY, format!("olderThanDays {message}"));
    }
    let cutoff = chrono::Utc::now() - chrono::Duration::days(request.older_than_days);
    match state.engine.store.prune(cutoff, request.dry_run).await {
        Ok(tables) => {
            tracing::info!(dry_run = request.dry_run, %cutoff, ?tables, "retention prune");
            Json(PruneCounts {
                dry_run: request.dry_run,
                cutoff,
                tables,
            })
            .into_response()
        }
        Err(err) => internal(err),
    }
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
) -> Response {
    let chars = turn.message.trim().chars().count();
    if chars == 0 || chars > MAX_MESSAGE_CHARS {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("message must be 1 to {MAX_MESSAGE_CHARS} characters"),
        );
    }
    if turn.history.len() > MAX_HISTORY {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("at most {MAX_HISTORY} history lines"),
        );
    }
    // A child of the API's `brendan-chat` span.
    let span = tracing::info_span!("brendan.turn", user_id = %turn.user_id, langsmith.span.kind = "chain");
    let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok());
    myloware_telemetry::trace::set_parent(&span, traceparent);
    let answer = tracing::Instrument::instrument(crate::brendan::turn(&state.engine, &turn), span).await;
    match answer {
        Ok(reply) => Json(reply).into_response(),
        Err(err) => {
            tracing::warn!(user = %turn.user_id, error = %err, "brendan failed");
            error(StatusCode::BAD_GATEWAY, format!("Brendan could not answer: {err}"))
        }
    }
}
