//! `/health`, `/ready`, `/metrics`, `/openapi.json`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use myloware_core::auth::Permission;
use myloware_core::wire::Health;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::ApiState;

/// Health and metrics for anyone; readiness for any key.
pub fn router(state: &ApiState) -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(metrics))
        .merge(super::with_key(
            state,
            Permission::Read,
            OpenApiRouter::new().routes(routes!(ready)),
        ))
}

/// Liveness: answers whenever the process serves HTTP.
#[utoipa::path(get, path = "/health", tag = "system",
    responses((status = 200, description = "The service is up", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health::ok("api"))
}

/// Readiness: the database and the orchestrator answer.
#[utoipa::path(get, path = "/ready", tag = "system", security(("api_key" = [])),
    responses((status = 200, description = "Ready"), (status = 503, description = "A dependency failed (or, as on every route, not answered in time)")))]
pub async fn ready(State(state): State<ApiState>) -> impl IntoResponse {
    let (db, orchestrator) = tokio::join!(state.store.ping(), state.orchestrator.health());
    let check = |ok: bool| if ok { "ok" } else { "failed" };
    let body = json!({
        "status": if db.is_ok() && orchestrator.is_ok() { "ready" } else { "not ready" },
        "checks": {"database": check(db.is_ok()), "orchestrator": check(orchestrator.is_ok())},
    });
    if let Err(err) = &db {
        tracing::warn!(error = %err, "readiness: database failed");
    }
    if let Err(err) = &orchestrator {
        tracing::warn!(error = %err, "readiness: orchestrator failed");
    }
    let status = if db.is_ok() && orchestrator.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Prometheus text exposition (no auth).
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<ApiState>) -> Response {
    // Gauges come from the database; a failed read leaves the last values
    // (the scrape itself must not fail with the database).
    match state.store.gauges().await {
        Ok(gauges) => state.metrics.set_gauges(&gauges),
        Err(err) => tracing::warn!(error = %err, "metrics: cannot read the gauges"),
    }
    state.metrics.http.exposition()
}

/// Readiness answers the same shape with 200 and 503 (a 503 may also be
/// the deadline's error body).
pub(crate) fn refine_schema(doc: &mut Value) {
    let check = json!({"type": "string", "enum": ["ok", "failed"]});
    doc["components"]["schemas"]["Readiness"] = json!({
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["ready", "not ready"]},
            "checks": {
                "type": "object",
                "required": ["database", "orchestrator"],
                "properties": {"database": check, "orchestrator": check},
            },
        },
    });
    let responses = &mut super::openapi::operation(doc, "get", "/ready")["responses"];
    responses["200"]["content"] = json!({"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}});
    responses["503"]["content"] = json!({"application/json": {"schema": {"anyOf": [
        {"$ref": "#/components/schemas/Readiness"},
        {"$ref": "#/components/schemas/ErrorBody"},
    ]}}});
}
