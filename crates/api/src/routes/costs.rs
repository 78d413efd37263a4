//! `/v1/costs`: what was spent per day, project and mode (`mw costs`).

use axum::Json;
use axum::extract::{Query, State};
use myloware_core::ErrorBody;
use myloware_core::auth::Permission;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::costs::{self, CostReport};
use crate::error::ApiError;
use crate::state::ApiState;

/// Reading costs, for any key.
pub fn router(state: &ApiState) -> OpenApiRouter<ApiState> {
    super::with_key(state, Permission::Read, OpenApiRouter::new().routes(routes!(costs)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CostParams {
    /// The first day, `YYYY-MM-DD` (UTC); default: 29 days before `to`.
    from: Option<String>,
    /// The last day, included; default: today (UTC).
    to: Option<String>,
    /// Only this project's costs.
    project: Option<String>,
}

/// What paid calls cost per day, project and mode (`mock`: what they would
/// have cost), with each provider's share. At most 366 days: a longer
/// range keeps its last 366, and dates given in reverse are read in order;
/// `from` and `to` in the answer are the days answered.
#[utoipa::path(get, path = "/v1/costs", tag = "costs", security(("api_key" = [])), params(CostParams),
    responses(
        (status = 200, body = CostReport),
        (status = 400, description = "Malformed query (e.g. a parameter given twice)", body = ErrorBody),
        (status = 422, description = "`from` or `to` is not a day (`YYYY-MM-DD`)"),
    ))]
pub async fn costs(
    State(state): State<ApiState>,
    Query(params): Query<CostParams>,
) -> Result<Json<CostReport>, ApiError> {
    let today = chrono::Utc::now().date_naive();
    let (from, to) = costs::range(params.from.as_deref(), params.to.as_deref(), today)?;
    let spent = state
        .store
        .spend_by_day(&from.to_string(), &to.to_string(), params.project.as_deref())
        .await?;
    Ok(Json(costs::report(from, to, &spent)))
}

/// The days' format.
pub(crate) fn refine_schema(doc: &mut Value) {
    let operation = super::schema::operation(doc, "get", "/v1/costs");
    for parameter in operation["parameters"].as_array_mut().into_iter().flatten() {
        if matches!(parameter["name"].as_str(), Some("from" | "to")) {
            parameter["schema"] =
                json!({"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"});
        }
    }
}
