//! Provider webhooks (no API key). Every delivery is recorded, bounded:
//! its body's size, SHA-256 and first 1 KB, and at most
//! [`MAX_STORED_HEADERS`] headers cut to [`MAX_HEADER_CHARS`]. A webhook is
//! only ever a trigger: kie.ai's signed callback makes the execution ask
//! kie.ai's `record-info`; Upload-Post's unsigned one wakes publishing runs,
//! which ask Upload-Post by their own request id.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use chrono::Utc;
use myloware_core::signing::{self, SignatureError};
use myloware_core::wire::{ExecutionCommand, Signal, SignalDelivery};
use myloware_core::{ProviderMode, RunStatus};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::commands;
use crate::error::{ApiError, JsonBytes};
use crate::middleware::{ClientId, LimitedRoute};
use crate::state::ApiState;
use crate::store::{
    CallbackRecorded, DeadLetterKind, NewCommand, RunQuery, SignatureStatus, WebhookDelivery, WebhookOutcome,
};

/// The providers' callbacks: open, refusals limited per address.
pub fn router(state: &ApiState) -> OpenApiRouter<ApiState> {
    super::open(
        state,
        OpenApiRouter::new().routes(routes!(kieai)).routes(routes!(upload_post)),
    )
}

/// What kie.ai appends to the callback URL we give it.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct KieCallbackQuery {
    run_id: Option<String>,
    index: Option<u32>,
    token: Option<String>,
}

/// Records a delivery (see [`crate::store::ApiStore::record_webhook`]) and
/// counts it in `webhook_events_total`: `false` (its key was used) is a
/// duplicate; the extra "duplicate" record made after one is not counted
/// again.
pub(crate) async fn record(
    state: &ApiState,
    delivery: &WebhookDelivery,
    command: Option<&NewCommand>,
) -> Result<bool, ApiError> {
    let fresh = state.store.record_webhook(delivery, command).await?;
    let result = match (fresh, delivery.outcome) {
        (false, _) => Some("duplicate"),
        (true, WebhookOutcome::Accepted) => Some("processed"),
        (true, WebhookOutcome::DeadLettered) => Some("dlq"),
        (true, WebhookOutcome::Rejected) => Some("rejected"),
        (true, WebhookOutcome::Duplicate | WebhookOutcome::Ignored) => None,
    };
    if let Some(result) = result {
        let provider = delivery.provider.replace('-', "_");
        state
            .metrics
            .webhook(&provider, delivery.signature_status.as_str(), result);
    }
    Ok(fresh)
}

/// How many of a delivery's headers are stored.
pub const MAX_STORED_HEADERS: usize = 30;
/// How much of a header's value is stored, in characters.
pub const MAX_HEADER_CHARS: usize = 256;
/// How much of a header's name is stored, in characters.
const MAX_HEADER_NAME_CHARS: usize = 64;

/// Headers kept with a delivery: secrets replaced, at most
/// [`MAX_STORED_HEADERS`] of them (how many were left out is noted), each
/// cut to [`MAX_HEADER_CHARS`].
pub(crate) fn redacted_headers(headers: &HeaderMap) -> Value {
    const SECRET: [&str; 5] = [
        "x-telegram-bot-api-secret-token",
        "authorization",
        "x-api-key",
        "cookie",
        "x-webhook-signature",
    ];
    let cut = |text: &str, max: usize| text.chars().take(max).collect::<String>();
    let mut map = Map::new();
    for (name, value) in headers.iter().take(MAX_STORED_HEADERS) {
        let shown = if SECRET.contains(&name.as_str()) {
            "[redacted]".to_string()
        } else {
            cut(value.to_str().unwrap_or("[binary]"), MAX_HEADER_CHARS)
        };
        map.insert(cut(name.as_str(), MAX_HEADER_NAME_CHARS), Value::String(shown));
    }
    let left_out = headers.len().saturating_sub(MAX_STORED_HEADERS);
    if left_out > 0 {
        map.insert("[omitted]".into(), Value::from(left_out));
    }
    Value::Object(map)
}

/// The mode of the run whose clip callback `token` binds (its purpose is
/// `clip:{i}` for live runs, `mock-clip:{i}` for mock runs); `None` when
/// it binds neither. Both secrets of a rotation are accepted.
fn clip_callback_mode(state: &ApiState, run_id: &str, index: u32, token: &str) -> Option<ProviderMode> {
    let secrets = state.config.hitl_secrets();
    [ProviderMode::Live, ProviderMode::Mock].into_iter().find(|mode| {
        let purpose = signing::clip_purpose(*mode, index);
        signing::verify_callback_token(&secrets, run_id, &purpose, token)
    })
}

/// kie.ai clip callback: our own token in the URL binds it to its run and
/// clip (and says whether the run is live or mock); `X-Webhook-Timestamp` +
/// `X-Webhook-Signature` (base64 HMAC-SHA256 of `{taskId}.{timestamp}`,
/// kie.ai's scheme) with `KIEAI_SIGNING_SECRET` for a live run (unset: live
/// callbacks are refused), the mock key for a mock run. The signature
/// covers the task id only, so nothing else of the body is used: the
/// execution is told which task to ask `record-info` about.
#[utoipa::path(post, path = "/v1/webhooks/kieai", tag = "webhooks", params(KieCallbackQuery),
    responses(
        (status = 200, description = "`{\"status\":\"accepted\"|\"duplicate\"|\"dead_lettered\"}`"),
        (status = 400, description = "Unreadable body or query string"),
        (status = 401, description = "Missing or bad signature or token"),
    ))]
pub async fn kieai(
    State(state): State<ApiState>,
    Query(query): Query<KieCallbackQuery>,
    headers: HeaderMap,
    JsonBytes(body): JsonBytes,
) -> Result<Json<Value>, ApiError> {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let task_id = parsed["data"]["taskId"].as_str().unwrap_or_default().to_string();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let bound = match (&query.run_id, query.index, &query.token) {
        (Some(run_id), Some(index), Some(token)) => clip_callback_mode(&state, run_id, index, token),
        _ => None,
    };
    let key = match bound {
        Some(ProviderMode::Live) => state.config.providers.live_kieai_signing_key(),
        Some(ProviderMode::Mock) => Some(state.config.providers.mock_kieai_signing_key()),
        None => None,
    };
    let (timestamp, sent_signature) = (header("x-webhook-timestamp"), header("x-webhook-signature"));
    let signature = match &key {
        _ if timestamp.is_none() || sent_signature.is_none() => Err(SignatureError::Missing),
        Some(key) => signing::verify_kieai(key, &task_id, timestamp, sent_signature, Utc::now().timestamp()),
        None => Err(SignatureError::Mismatch),
    };
    let signature_status = match &signature {
        Ok(()) => SignatureStatus::Verified,
        Err(SignatureError::Missing) => SignatureStatus::Missing,
        Err(_) => SignatureStatus::Rejected,
    };
    let mut delivery = WebhookDelivery {
        provider: "kieai".into(),
        // Only a run id's shape is kept: the query is the sender's to fill.
        run_id: query.run_id.clone().filter(|id| myloware_core::ids::is_run_id(id)),
        headers: redacted_headers(&headers),
        signature_status,
        ..WebhookDelivery::of_body(&body)
    };
    let verified = (signature.is_ok() && !task_id.is_empty())
        .then(|| query.run_id.clone().zip(query.index))
        .flatten();
    let Some((run_id, index)) = verified else {
        crate::routes::webhooks::record(&state, &delivery, None).await?;
        let why = match (bound, &key) {
            (None, _) => "no valid token for this run and clip",
            (Some(ProviderMode::Live), None) => "KIEAI_SIGNING_SECRET is not set: live callbacks cannot be verified",
            _ => "bad or missing signature",
        };
        tracing::warn!(runId = ?query.run_id, %signature_status, why, "kie.ai callback refused");
        return Err(ApiError::InvalidSignature);
    };

    let signal = Signal::ClipReported {
        task_id: task_id.clone(),
        index,
    };
    // One trigger per task: kie.ai's retries of a callback are duplicates.
    let command = NewCommand::new(
        &run_id,
        ExecutionCommand::Signal(SignalDelivery {
            signal_id: format!("kieai:{task_id}"),
            signal,
            replay_of: None,
        }),
    );
    delivery.idempotency_key = Some(task_id.clone());
    delivery.outcome = WebhookOutcome::Accepted;
    // Committed with the callbacks arriving meanwhile (group commit); a
    // repeated task id is recorded as a duplicate delivery.
    let recorded = state.callbacks.record(delivery.clone(), command.clone()).await?;
    if recorded == CallbackRecorded::UnknownRun {
        // Verified, but for no run we know: keep it for replay, and tell
        // kie.ai it was received (retrying cannot help).
        delivery.outcome = WebhookOutcome::DeadLettered;
        if !crate::routes::webhooks::record(&state, &delivery, None).await? {
            return Ok(Json(json!({"status": "duplicate"})));
        }
        state
            .store
            .add_dead_letter(
                DeadLetterKind::Webhook,
                Some(&run_id),
                &json!({"provider": "kieai", "signal": command.body}),
                "unknown run",
            )
            .await?;
        tracing::warn!(runId = %run_id, %task_id, "kie.ai callback for an unknown run dead-lettered");
        return Ok(Json(json!({"status": "dead_lettered"})));
    }
    let fresh = recorded == CallbackRecorded::New;
    let result = if fresh { "processed" } else { "duplicate" };
    state
        .metrics
        .webhook("kieai", SignatureStatus::Verified.as_str(), result);
    if !fresh {
        return Ok(Json(json!({"status": "duplicate"})));
    }
    tracing::info!(runId = %run_id, clip = index, %task_id, "kie.ai callback accepted (record-info decides)");
    if let Err(error) = commands::deliver_pending(&state, &run_id).await {
        tracing::warn!(runId = %run_id, %error, "clip signal not relayed yet; will retry");
    }
    Ok(Json(json!({"status": "accepted"})))
}

/// How many publishing runs one Upload-Post webhook wakes (newest first).
pub const MAX_RUNS_WOKEN: u32 = 20;

/// Upload-Post's account webhook (configured in their dashboard; unsigned,
/// so anybody can send one): only a hint. An `upload_completed` event wakes
/// the runs that are publishing (at most [`MAX_RUNS_WOKEN`], newest first,
/// once per distinct delivery and while a run has no hint pending); each
/// then asks Upload-Post for its own request id. Nothing of the body is
/// used. Other events are answered `ignored` and not kept. Every delivery
/// spends the sender's rate budget (`RATE_LIMIT_*`, per address).
#[utoipa::path(post, path = "/v1/webhooks/upload-post", tag = "webhooks",
    responses(
        (status = 200, description = "`{\"status\":\"accepted\"|\"duplicate\"|\"ignored\"}`"),
        (status = 429, description = "Every delivery spends the sender's budget (`RATE_LIMIT_*`, per address); see `Retry-After`"),
    ))]
pub async fn upload_post(
    State(state): State<ApiState>,
    ClientId(client): ClientId,
    headers: HeaderMap,
    JsonBytes(body): JsonBytes,
) -> Result<Json<Value>, ApiError> {
    // Nothing proves a delivery, so every one spends the sender's budget
    // (Upload-Post sends one per upload we make).
    state.limiter.check(LimitedRoute::UploadPostHint, &client)?;
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut delivery = WebhookDelivery {
        provider: "upload-post".into(),
        headers: redacted_headers(&headers),
        signature_status: SignatureStatus::Unsigned,
        outcome: WebhookOutcome::Ignored,
        ..WebhookDelivery::of_body(&body)
    };
    if parsed["event"].as_str() != Some("upload_completed") {
        // Account events we do not act on: nothing to keep.
        tracing::debug!(event = ?parsed["event"].as_str(), "Upload-Post webhook ignored");
        return Ok(Json(json!({"status": "ignored"})));
    }
    // The same delivery (byte for byte) wakes the runs once.
    delivery.idempotency_key = Some(delivery.body_sha256.clone());
    delivery.outcome = WebhookOutcome::Accepted;
    if !crate::routes::webhooks::record(&state, &delivery, None).await? {
        delivery.idempotency_key = None;
        delivery.outcome = WebhookOutcome::Duplicate;
        crate::routes::webhooks::record(&state, &delivery, None).await?;
        return Ok(Json(json!({"status": "duplicate"})));
    }
    let publishing = state
        .store
        .list_runs(&RunQuery {
            status: Some(RunStatus::Publishing),
            limit: MAX_RUNS_WOKEN,
            ..RunQuery::default()
        })
        .await?;
    let mut woken = 0;
    for run in publishing {
        if hint_pending(&state, &run.id).await? {
            continue;
        }
        let signal = SignalDelivery {
            signal_id: format!("upload-post:{}", delivery.body_sha256),
            signal: Signal::PublishUpdated {
                // A hint: the orchestrator asks for the run's current
                // publish, whichever attempt it is.
                request_id: myloware_core::ids::publish_request_id(&run.id, 0),
                status: "hint".into(),
            },
            replay_of: None,
        };
        // Relayed by the command reconciler (within a second): the answer
        // does not wait for the orchestrator.
        state
            .store
            .enqueue_command(&NewCommand::new(&run.id, ExecutionCommand::Signal(signal)))
            .await?;
        woken += 1;
    }
    tracing::info!(
        woken,
        "Upload-Post webhook: publishing runs woken to ask for their status"
    );
    Ok(Json(json!({"status": "accepted"})))
}

/// Whether `run_id` already has an unrelayed publish hint (one is enough:
/// the step asks Upload-Post when it wakes).
async fn hint_pending(state: &ApiState, run_id: &str) -> Result<bool, ApiError> {
    let pending = state.store.pending_commands(run_id, 50).await?;
    Ok(pending.iter().any(|command| {
        matches!(
            &command.body,
            ExecutionCommand::Signal(SignalDelivery {
                signal: Signal::PublishUpdated { .. },
                ..
            })
        )
    }))
}

/// `{"status": ...}`, one of `statuses`.
pub(crate) fn status_answer(statuses: &[&str]) -> Value {
    json!({"application/json": {"schema": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": statuses}},
    }}})
}

/// The webhooks' bodies (any JSON; what is read) and answers.
pub(crate) fn refine_schema(doc: &mut Value) {
    let kieai = super::schema::operation(doc, "post", "/v1/webhooks/kieai");
    kieai["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {
        "type": "object",
        "description": "kie.ai's callback; only `data.taskId` is read (the signature covers it)",
        "properties": {"data": {
            "type": "object",
            "properties": {"taskId": {"type": "string"}},
            "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
        }},
        "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
    }}}});
    kieai["responses"]["200"]["content"] = status_answer(&["accepted", "duplicate", "dead_lettered"]);
    let upload_post = super::schema::operation(doc, "post", "/v1/webhooks/upload-post");
    upload_post["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {
        "type": "object",
        "description": "Upload-Post's account event; only `event` is read",
        "properties": {"event": {"type": "string"}},
        "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
    }}}});
    upload_post["responses"]["200"]["content"] = status_answer(&["accepted", "duplicate", "ignored"]);
}
