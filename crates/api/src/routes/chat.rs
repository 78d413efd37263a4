//! Chat with Brendan: the HTTP front door, the transcript, and Telegram.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use myloware_core::auth::{Permission, Principal};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::chat::{self, ChatResponse, Origin};
use crate::error::{ApiError, JsonBytes, ValidJson};
use crate::middleware::{ClientId, LimitedRoute};
use crate::state::ApiState;
use crate::store::{SignatureStatus, WebhookDelivery, WebhookOutcome};

/// Chat turns with Operate, transcripts for any key, and Telegram's open
/// webhook (refusals limited per address).
pub fn router(state: &ApiState) -> OpenApiRouter<ApiState> {
    super::with_key(
        state,
        Permission::Operate,
        OpenApiRouter::new().routes(routes!(brendan)),
    )
    .merge(super::with_key(
        state,
        Permission::Read,
        OpenApiRouter::new().routes(routes!(messages)),
    ))
    .merge(super::open(state, OpenApiRouter::new().routes(routes!(telegram))))
}

/// `POST /v1/chat/brendan`. The wire keeps `user_id` (docs/api.md).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// 1 to 128 characters of letters, digits and `_-.:@`.
    #[schema(pattern = "^[A-Za-z0-9_.:@-]{1,128}$")]
    pub user_id: String,
    /// 1 to 4000 characters, not all white space.
    #[schema(min_length = 1, max_length = 4000, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub message: String,
}

/// One turn with Brendan. A proposed run is created held at the workflow
/// gate and its approval link is in `links`; "approve"/"reject" decide the
/// user's gate awaiting a decision.
#[utoipa::path(post, path = "/v1/chat/brendan", tag = "chat", security(("api_key" = [])),
    request_body = ChatRequest,
    responses(
        (status = 200, description = "Brendan's reply", body = ChatResponse),
        (status = 422, description = "Bad user id or message, or a malformed body"),
        (status = 429, description = "Too many turns from this client"),
        (status = 502, description = "The orchestrator did not answer (the message is kept in the transcript)"),
    ))]
pub async fn brendan(
    State(state): State<ApiState>,
    ClientId(client): ClientId,
    Extension(key): Extension<Principal>,
    ValidJson(request): ValidJson<ChatRequest>,
) -> Result<axum::response::Response, ApiError> {
    state.limiter.check(LimitedRoute::Chat, &client)?;
    chat::validate_user_id(&request.user_id).map_err(|msg| ApiError::invalid(&["body", "user_id"], msg))?;
    let message = request.message.trim();
    if message.is_empty() || message.chars().count() > chat::MAX_MESSAGE_CHARS {
        return Err(ApiError::invalid(
            &["body", "message"],
            format!("must be 1 to {} characters", chat::MAX_MESSAGE_CHARS),
        ));
    }
    let answer = chat::turn(&state, &request.user_id, message, &Origin::Api { key }).await;
    state.metrics.chat_turn(answer.is_ok());
    let answer = answer?;
    // The run a turn proposed or decided, for the request's metrics.
    let label = answer.run_ids.first().cloned().map(myloware_telemetry::RunLabel);
    let mut response = Json(answer).into_response();
    if let Some(label) = label {
        response.extensions_mut().insert(label);
    }
    Ok(response)
}

/// `GET /v1/chat/brendan/{user_id}/messages`: the user's transcript,
/// including gate notifications with their links (for keys that may
/// decide; other roles see `[approval link]` and no `link`).
#[utoipa::path(get, path = "/v1/chat/brendan/{user_id}/messages", tag = "chat", security(("api_key" = [])),
    params(("user_id" = String, Path)),
    responses((status = 200, description = "`{\"messages\":[{role, text, runId, gate, link, createdAt}]}`"), (status = 400, description = "Malformed path")))]
pub async fn messages(
    State(state): State<ApiState>,
    Path(user_id): Path<String>,
    Extension(key): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    let messages = state.store.chat_messages(&user_id, 200).await?;
    // Approval links are credentials: only a key that may decide sees them.
    let may_decide = key.allows(Permission::Decide);
    let messages: Vec<Value> = messages
        .into_iter()
        .map(|m| {
            let (text, link) = if may_decide {
                (m.text, m.link)
            } else {
                (chat::without_credentials(&m.text), None)
            };
            json!({"role": m.role, "text": text, "runId": m.run_id, "gate": m.gate, "link": link, "createdAt": m.created_at})
        })
        .collect();
    Ok(Json(json!({"userId": user_id, "messages": messages})))
}

/// Telegram's header carrying the webhook's secret token.
const TELEGRAM_SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// Telegram bot updates: the user chats with Brendan from Telegram. No API
/// key; Telegram's secret-token header must match `TELEGRAM_WEBHOOK_SECRET`,
/// and only chats in `TELEGRAM_ALLOWED_CHAT_IDS` are heard: an update from
/// any other chat is answered `ignored` with nothing run, stored or
/// replied. Turns are rate-limited per chat (`rate_limited`: nothing run).
/// Each update is handled once (by `update_id`); Brendan's reply goes back
/// to the chat through the push queue. Gate decisions typed in chat count
/// only from `TELEGRAM_APPROVER_CHAT_IDS`.
#[utoipa::path(post, path = "/v1/telegram/webhook", tag = "chat",
    responses(
        (status = 200, description = "`{\"status\":\"accepted\"|\"duplicate\"|\"ignored\"|\"rate_limited\"}`"),
        (status = 401, description = "Missing or wrong secret token"),
        (status = 404, description = "Telegram is not configured (no TELEGRAM_WEBHOOK_SECRET)"),
        (status = 422, description = "Not a Telegram update (no update_id)"),
    ))]
pub async fn telegram(
    State(state): State<ApiState>,
    headers: HeaderMap,
    JsonBytes(body): JsonBytes,
) -> Result<Json<Value>, ApiError> {
    let Some(secret) = &state.config.chat.telegram_webhook_secret else {
        return Err(ApiError::NotFound(
            "the Telegram front door is not configured (set TELEGRAM_WEBHOOK_SECRET and TELEGRAM_BOT_TOKEN)".into(),
        ));
    };
    let given = headers
        .get(TELEGRAM_SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let update: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let verified =
        !given.is_empty() && myloware_core::signing::secrets_equal(secret.expose_secret().as_bytes(), given.as_bytes());
    let mut delivery = WebhookDelivery {
        provider: "telegram".into(),
        headers: crate::routes::webhooks::redacted_headers(&headers),
        signature_status: if given.is_empty() {
            SignatureStatus::Missing
        } else {
            SignatureStatus::Rejected
        },
        ..WebhookDelivery::of_body(&body)
    };
    if !verified {
        crate::routes::webhooks::record(&state, &delivery, None).await?;
        tracing::warn!("telegram update refused: bad secret token");
        return Err(ApiError::Unauthorized);
    }
    delivery.signature_status = SignatureStatus::Verified;
    let Some(update_id) = update["update_id"].as_number().and_then(super::whole_number) else {
        return Err(ApiError::invalid(
            &["body", "update_id"],
            "a Telegram update has an update_id",
        ));
    };
    let message = &update["message"];
    let chat_id = message["chat"]["id"].as_i64().map(|id| id.to_string());
    let allowed = chat_id
        .as_ref()
        .is_some_and(|id| state.config.chat.telegram_allowed_chat_ids.contains(id));
    if !allowed {
        // A stranger (or an update without a chat): nothing is run, stored
        // or replied, and Telegram is told it arrived.
        tracing::info!(
            update_id,
            "telegram update from a chat not in TELEGRAM_ALLOWED_CHAT_IDS ignored"
        );
        return Ok(Json(json!({"status": "ignored"})));
    }
    let text = message["text"].as_str().map(str::trim).filter(|t| !t.is_empty());
    delivery.idempotency_key = Some(format!("update:{update_id}"));
    delivery.outcome = WebhookOutcome::Accepted;
    if !crate::routes::webhooks::record(&state, &delivery, None).await? {
        return Ok(Json(json!({"status": "duplicate"})));
    }
    let (Some(chat_id), Some(text)) = (chat_id, text) else {
        // Edits, joins, stickers: nothing for Brendan.
        return Ok(Json(json!({"status": "ignored"})));
    };
    if state
        .limiter
        .check(LimitedRoute::Chat, &crate::notify::telegram_user(&chat_id))
        .is_err()
    {
        tracing::warn!(%chat_id, "telegram turn rate-limited");
        return Ok(Json(json!({"status": "rate_limited"})));
    }
    let text: String = text.chars().take(chat::MAX_MESSAGE_CHARS).collect();
    let user_id = crate::notify::telegram_user(&chat_id);
    let origin = Origin::Telegram { chat_id };
    let answer = chat::turn(&state, &user_id, &text, &origin).await;
    state.metrics.chat_turn(answer.is_ok());
    if let Err(err) = answer {
        // Answer Telegram anyway (it would only resend the same update),
        // and tell the user in their chat.
        tracing::warn!(user = %user_id, error = %err, "telegram turn failed");
        chat::tell(
            &state,
            &user_id,
            &origin,
            format!("Sorry, I could not answer that: {err}"),
        )
        .await?;
    }
    Ok(Json(json!({"status": "accepted"})))
}

/// The transcript's and Telegram's answers, and Telegram's update.
pub(crate) fn refine_schema(doc: &mut Value) {
    super::schema::operation(doc, "get", "/v1/chat/brendan/{user_id}/messages")["responses"]["200"]["content"] = json!({"application/json": {"schema": {
        "type": "object",
        "required": ["userId", "messages"],
        "properties": {
            "userId": {"type": "string"},
            "messages": {"type": "array", "items": {
                "type": "object",
                "required": ["role", "text", "runId", "gate", "link", "createdAt"],
                "properties": {
                    "role": {"type": "string"},
                    "text": {"type": "string"},
                    "runId": {"type": ["string", "null"]},
                    "gate": {"type": ["string", "null"]},
                    "link": {"type": ["string", "null"], "description": "Only for keys that may decide"},
                    "createdAt": {"type": "string", "format": "date-time"},
                },
            }},
        },
    }}});
    let telegram = super::schema::operation(doc, "post", "/v1/telegram/webhook");
    telegram["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {
        "type": "object",
        "description": "A Telegram update; only `update_id` and `message.chat.id` / `message.text` are read",
        "required": ["update_id"],
        "properties": {
            "update_id": {"type": "integer", "minimum": -9223372036854775808i64, "maximum": 9223372036854775807i64},
            "message": {"$ref": "#/components/schemas/JsonValue"},
        },
        "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
    }}}});
    telegram["responses"]["200"]["content"] =
        super::webhooks::status_answer(&["accepted", "duplicate", "ignored", "rate_limited"]);
}
