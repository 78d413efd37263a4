//! `/v1/dlq`: the dead-letter queue, for operators (`mw dlq list|replay`).

use axum::Json;
use axum::extract::{Path, Query, State};
use myloware_core::auth::Permission;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::Caller;
use crate::dlq::{self, Replayed};
use crate::error::ApiError;
use crate::state::ApiState;

/// Listing dead letters for any key; replaying them with Operate.
pub fn router(state: &ApiState) -> OpenApiRouter<ApiState> {
    super::with_key(state, Permission::Read, OpenApiRouter::new().routes(routes!(list))).merge(super::with_key(
        state,
        Permission::Operate,
        OpenApiRouter::new().routes(routes!(replay)),
    ))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Include entries already replayed successfully.
    #[serde(default)]
    all: bool,
}

/// Dead letters, oldest first.
#[utoipa::path(get, path = "/v1/dlq", tag = "dlq", security(("api_key" = [])), params(ListParams),
    responses((status = 200, description = "`{\"deadLetters\":[{seq, kind, runId, error, attempts, createdAt, lastAttemptAt, resolvedAt, payload}]}`"), (status = 400, description = "Malformed query (`all` not true or false)")))]
pub async fn list(State(state): State<ApiState>, Query(params): Query<ListParams>) -> Result<Json<Value>, ApiError> {
    let letters = state.store.dead_letters(params.all, 500).await?;
    let letters: Vec<Value> = letters
        .into_iter()
        .map(|l| {
            json!({"seq": l.seq, "kind": l.kind, "runId": l.run_id, "error": l.error, "attempts": l.attempts,
                   "createdAt": l.created_at, "lastAttemptAt": l.last_attempt_at, "resolvedAt": l.resolved_at,
                   "payload": l.payload})
        })
        .collect();
    Ok(Json(json!({"deadLetters": letters})))
}

/// Processes a dead letter again.
#[utoipa::path(post, path = "/v1/dlq/{seq}/replay", tag = "dlq", security(("api_key" = [])),
    params(("seq" = i64, Path)),
    responses((status = 200, body = Replayed), (status = 400, description = "`seq` is not a whole number"), (status = 404), (status = 409, description = "Already resolved")))]
pub async fn replay(
    State(state): State<ApiState>,
    Path(seq): Path<i64>,
    caller: Caller,
) -> Result<Json<Replayed>, ApiError> {
    tracing::info!(seq, by = %caller.actor, "dead letter replay");
    dlq::replay_for(&state, seq, &caller).await.map(Json)
}

/// The list's answer; `seq`'s range.
pub(crate) fn refine_schema(doc: &mut Value) {
    let list = &mut super::schema::operation(doc, "get", "/v1/dlq")["responses"]["200"];
    list["content"] = json!({"application/json": {"schema": {
        "type": "object",
        "required": ["deadLetters"],
        "properties": {"deadLetters": {"type": "array", "items": {
            "type": "object",
            "required": ["seq", "kind", "runId", "error", "attempts", "createdAt", "lastAttemptAt", "resolvedAt", "payload"],
            "properties": {
                "seq": {"type": "integer"},
                "kind": {"type": "string"},
                "runId": {"type": ["string", "null"]},
                "error": {"type": "string"},
                "attempts": {"type": "integer"},
                "createdAt": {"type": "string", "format": "date-time"},
                "lastAttemptAt": {"type": ["string", "null"], "format": "date-time"},
                "resolvedAt": {"type": ["string", "null"], "format": "date-time"},
                "payload": {},
            },
        }}},
    }}});
}
