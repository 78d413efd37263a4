//! Provider webhooks (no API key; verified by signature). Every delivery is
//! recorded; verified first, deduplicated second, then turned into a signal
//! for the orchestrator in the same transaction as its record.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use chrono::Utc;
use myloware_core::signing::{self, SignatureError};
use myloware_core::wire::{Signal, SignalDelivery};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::ApiState;
use crate::commands;
use crate::error::{ApiError, JsonBytes};
use crate::store::{CommandKind, NewCommand, WebhookDelivery};

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
    let result = match (fresh, delivery.outcome.as_str()) {
        (false, _) => Some("duplicate"),
        (true, "accepted") => Some("processed"),
        (true, "dead_lettered") => Some("dlq"),
        (true, "rejected") => Some("rejected"),
        (true, _) => None,
    };
    if let Some(result) = result {
        let provider = delivery.provider.replace('-', "_");
        state.metrics.webhook(&provider, &delivery.signature_status, result);
    }
    Ok(fresh)
}

/// Headers kept with a delivery, secrets replaced.
pub(crate) fn redacted_headers(headers: &HeaderMap) -> Value {
    const SECRET: [&str; 6] = [
        "x-telegram-bot-api-secret-token",
        "authorization",
        "x-api-key",
        "cookie",
        "x-webhook-signature",
        "x-upload-post-signature",
    ];
    let mut map = Map::new();
    for (name, value) in headers {
        let shown = if SECRET.contains(&name.as_str()) {
            "[redacted]".to_string()
        } else {
            value.to_str().unwrap_or("[binary]").to_string()
        };
        map.insert(name.as_str().to_string(), Value::String(shown));
    }
    Value::Object(map)
}

/// kie.ai clip callback: `X-Webhook-Timestamp` + `X-Webhook-Signature`
/// (base64 HMAC-SHA256 of `{taskId}.{timestamp}`), and our own per-run token
/// in the URL binding the callback to its run and clip.
#[utoipa::path(post, path = "/v1/webhooks/kieai", tag = "webhooks", params(KieCallbackQuery),
    responses(
        (status = 200, description = "`{\"status\":\"accepted\"}` or `{\"status\":\"duplicate\"}`"),
        (status = 401, description = "Missing or bad signature"),
        (status = 413, description = "Body over the limit"),
        (status = 415, description = "Not JSON"),
    ))]
pub async fn kieai(
    State(state): State<ApiState>,
    Query(query): Query<KieCallbackQuery>,
    headers: HeaderMap,
    JsonBytes(body): JsonBytes,
) -> Result<Json<Value>, ApiError> {
    let text = String::from_utf8_lossy(&body).into_owned();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let task_id = parsed["data"]["taskId"].as_str().unwrap_or_default().to_string();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature = signing::verify_kieai(
        &state.config.providers.kieai_signing_key(),
        &task_id,
        header("x-webhook-timestamp"),
        header("x-webhook-signature"),
        Utc::now().timestamp(),
    );
    let bound_to_run = match (&query.run_id, query.index, &query.token) {
        (Some(run_id), Some(index), Some(token)) => signing::verify_callback_token(
            state.config.hitl_secret_bytes(),
            run_id,
            &format!("clip:{index}"),
            token,
        ),
        _ => false,
    };
    let signature_status = match (&signature, bound_to_run) {
        (Ok(()), true) => "verified",
        (Err(SignatureError::Missing), _) => "missing",
        _ => "rejected",
    };
    let mut delivery = WebhookDelivery {
        provider: "kieai".into(),
        idempotency_key: None,
        run_id: query.run_id.clone(),
        headers: redacted_headers(&headers),
        body: text,
        signature_status: signature_status.into(),
        outcome: "rejected".into(),
        received_at: crate::store::now(),
    };
    if signature_status != "verified" || task_id.is_empty() {
        crate::routes::webhooks::record(&state, &delivery, None).await?;
        tracing::warn!(runId = ?query.run_id, %signature_status, "kie.ai callback refused");
        return Err(ApiError::InvalidSignature);
    }
    let (Some(run_id), Some(index)) = (query.run_id.clone(), query.index) else {
        unreachable!("a verified callback is bound to a run and clip")
    };

    let code = parsed["code"].as_i64().unwrap_or(0);
    let message = parsed["msg"].as_str().unwrap_or("no message").to_string();
    let url = parsed["data"]["info"]["resultUrls"][0].as_str().map(str::to_owned);
    let signal = match (code, url) {
        (200, Some(url)) => Signal::ClipCompleted {
            task_id: task_id.clone(),
            index,
            url,
        },
        (200, None) => Signal::ClipFailed {
            task_id: task_id.clone(),
            index,
            code,
            message: "kie.ai reported success without a result URL".into(),
        },
        _ => Signal::ClipFailed {
            task_id: task_id.clone(),
            index,
            code,
            message,
        },
    };
    let key = format!("{task_id}:{code}");
    let command = NewCommand {
        run_id: run_id.clone(),
        kind: CommandKind::Signal,
        body: serde_json::to_value(SignalDelivery {
            signal_id: format!("kieai:{key}"),
            signal,
        })
        .expect("serializes"),
    };
    delivery.idempotency_key = Some(key);
    if !state.store.run_exists(&run_id).await? {
        // Verified, but for no run we know: keep it for replay, and tell
        // kie.ai it was received (retrying cannot help).
        delivery.outcome = "dead_lettered".into();
        if !crate::routes::webhooks::record(&state, &delivery, None).await? {
            return Ok(Json(json!({"status": "duplicate"})));
        }
        state
            .store
            .add_dead_letter(
                "webhook",
                Some(&run_id),
                &json!({"provider": "kieai", "signal": command.body}),
                "unknown run",
            )
            .await?;
        tracing::warn!(runId = %run_id, %task_id, "kie.ai callback for an unknown run dead-lettered");
        return Ok(Json(json!({"status": "dead_lettered"})));
    }
    delivery.outcome = "accepted".into();
    if !crate::routes::webhooks::record(&state, &delivery, Some(&command)).await? {
        delivery.idempotency_key = None;
        delivery.outcome = "duplicate".into();
        crate::routes::webhooks::record(&state, &delivery, None).await?;
        return Ok(Json(json!({"status": "duplicate"})));
    }
    tracing::info!(runId = %run_id, clip = index, %task_id, code, "kie.ai callback accepted");
    if let Err(error) = commands::deliver_pending(&state, &run_id).await {
        tracing::warn!(runId = %run_id, %error, "clip signal not relayed yet; will retry");
    }
    Ok(Json(json!({"status": "accepted"})))
}

/// Upload-Post publish status: hex HMAC-SHA256 of the raw body with
/// `UPLOAD_POST_SIGNING_SECRET`, in `X-Upload-Post-Signature` (or
/// `X-Signature`). Deduplicated by request id and status; the run is the
/// one our request id names (`{runId}:quinn:publish:{attempt}`).
#[utoipa::path(post, path = "/v1/webhooks/upload-post", tag = "webhooks",
    responses(
        (status = 200, description = "`{\"status\":\"accepted\"|\"duplicate\"|\"dead_lettered\"}`"),
        (status = 401, description = "Missing or bad signature"),
        (status = 413), (status = 415),
    ))]
pub async fn upload_post(
    State(state): State<ApiState>,
    headers: HeaderMap,
    JsonBytes(body): JsonBytes,
) -> Result<Json<Value>, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature = header("x-upload-post-signature").or_else(|| header("x-signature"));
    let verified = match &state.config.providers.upload_post.signing_secret {
        Some(secret) => {
            use secrecy::ExposeSecret;
            signing::verify_hex_body(secret.expose_secret().as_bytes(), &body, signature)
        }
        None => Err(SignatureError::Mismatch),
    };
    let signature_status = match verified {
        Ok(()) => "verified",
        Err(SignatureError::Missing) => "missing",
        Err(_) => "rejected",
    };
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let request_id = parsed["request_id"]
        .as_str()
        .or(parsed["requestId"].as_str())
        .unwrap_or_default()
        .to_string();
    let status = parsed["status"].as_str().unwrap_or("unknown").to_string();
    let run_id = request_id
        .split(':')
        .next()
        .filter(|id| myloware_core::ids::is_run_id(id))
        .map(str::to_owned);
    let mut delivery = WebhookDelivery {
        provider: "upload-post".into(),
        idempotency_key: None,
        run_id: run_id.clone(),
        headers: redacted_headers(&headers),
        body: String::from_utf8_lossy(&body).into_owned(),
        signature_status: signature_status.into(),
        outcome: "rejected".into(),
        received_at: crate::store::now(),
    };
    if signature_status != "verified" {
        crate::routes::webhooks::record(&state, &delivery, None).await?;
        tracing::warn!(%signature_status, "Upload-Post webhook refused");
        return Err(ApiError::InvalidSignature);
    }
    delivery.idempotency_key = Some(format!("{request_id}:{status}"));
    let known = match &run_id {
        Some(run_id) => state.store.run_exists(run_id).await?,
        None => false,
    };
    let signal = SignalDelivery {
        signal_id: format!("upload-post:{request_id}:{status}"),
        signal: Signal::PublishUpdated {
            request_id: request_id.clone(),
            status: status.clone(),
        },
    };
    let payload = serde_json::to_value(&signal).expect("serializes");
    if !known {
        delivery.outcome = "dead_lettered".into();
        if !crate::routes::webhooks::record(&state, &delivery, None).await? {
            return Ok(Json(json!({"status": "duplicate"})));
        }
        let payload = json!({"provider": "upload-post", "signal": payload});
        state
            .store
            .add_dead_letter("webhook", run_id.as_deref(), &payload, "unknown run")
            .await?;
        return Ok(Json(json!({"status": "dead_lettered"})));
    }
    let run_id = run_id.expect("known runs have an id");
    let command = NewCommand {
        run_id: run_id.clone(),
        kind: CommandKind::Signal,
        body: payload,
    };
    delivery.outcome = "accepted".into();
    if !crate::routes::webhooks::record(&state, &delivery, Some(&command)).await? {
        delivery.idempotency_key = None;
        delivery.outcome = "duplicate".into();
        crate::routes::webhooks::record(&state, &delivery, None).await?;
        return Ok(Json(json!({"status": "duplicate"})));
    }
    tracing::info!(runId = %run_id, %request_id, %status, "Upload-Post webhook accepted");
    if let Err(error) = commands::deliver_pending(&state, &run_id).await {
        tracing::warn!(runId = %run_id, %error, "publish signal not relayed yet; will retry");
    }
    Ok(Json(json!({"status": "accepted"})))
}
