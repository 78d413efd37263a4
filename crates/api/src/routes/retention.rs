//! `/v1/retention`: removing old rows that no unfinished run needs, in both
//! services, for operators (`mw retention prune`).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Duration, Utc};
use myloware_core::ErrorBody;
use myloware_core::auth::{Permission, Principal};
use myloware_core::wire::PruneRequest;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ValidJson};
use crate::state::ApiState;

/// Pruning, with Administer.
pub fn router(state: &ApiState) -> OpenApiRouter<ApiState> {
    super::with_key(
        state,
        Permission::Administer,
        OpenApiRouter::new().routes(routes!(prune)),
    )
}

/// `POST /v1/retention/prune`'s body: the [`PruneRequest`] sent on to the
/// orchestrator, read the way its schema says (`olderThanDays` is a JSON
/// Schema integer, which `30.0` is too).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = PruneRequest)]
pub struct PruneBody {
    /// Rows older than this many days (1 to 3650) are pruned.
    #[serde(deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 3650)]
    older_than_days: i64,
    /// Count what would be deleted without deleting it.
    #[serde(default)]
    dry_run: bool,
}

impl From<PruneBody> for PruneRequest {
    fn from(body: PruneBody) -> PruneRequest {
        PruneRequest {
            older_than_days: body.older_than_days,
            dry_run: body.dry_run,
        }
    }
}

/// A whole number, written `30` or `30.0` (both are JSON Schema integers).
fn whole_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    use serde::de::Error;
    let number = serde_json::Number::deserialize(deserializer)?;
    super::whole_number(&number).ok_or_else(|| D::Error::custom(format!("expected a whole number, got {number}")))
}

/// What was deleted (or, for a dry run, would be), per table of each service.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PruneReport {
    dry_run: bool,
    /// Now minus `olderThanDays`.
    cutoff: DateTime<Utc>,
    /// The API's tables: `gate_audit`, `run_events`, `commands`,
    /// `webhook_deliveries`, `artifacts`, `dead_letters`, `chat_deliveries`,
    /// `chat_messages`, `schedule_firings`.
    api: BTreeMap<String, u64>,
    /// The orchestrator's tables: `journal`, `outbox`, `signals`,
    /// `mock_provider_calls`.
    orchestrator: BTreeMap<String, u64>,
}

/// Deletes (or counts, with `dryRun`) the rows of both services older than
/// the cutoff that no unfinished run needs. The orchestrator prunes first:
/// when it cannot, the answer is 502 and the API's rows are untouched.
#[utoipa::path(post, path = "/v1/retention/prune", tag = "retention", security(("api_key" = [])),
    request_body = PruneBody,
    responses(
        (status = 200, body = PruneReport),
        (status = 401, body = ErrorBody),
        (status = 422, description = "`olderThanDays` missing or outside 1..=3650, or a malformed body"),
        (status = 502, body = ErrorBody, description = "The orchestrator could not prune; the API pruned nothing"),
    ))]
pub async fn prune(
    State(state): State<ApiState>,
    Extension(key): Extension<Principal>,
    ValidJson(request): ValidJson<PruneBody>,
) -> Result<Json<PruneReport>, ApiError> {
    let request = PruneRequest::from(request);
    if let Err(message) = request.check() {
        return Err(ApiError::invalid(&["body", "olderThanDays"], message));
    }
    let orchestrator = state
        .orchestrator
        .prune(&request)
        .await
        .map_err(|err| ApiError::BadGateway(format!("the orchestrator could not prune: {err}")))?;
    let cutoff = crate::store::now() - Duration::days(request.older_than_days);
    let api = state.store.prune(cutoff, request.dry_run).await?;
    tracing::info!(by = %format!("key:{}", key.name), dry_run = request.dry_run, %cutoff, ?api, orchestrator = ?orchestrator.tables, "retention prune");
    Ok(Json(PruneReport {
        dry_run: request.dry_run,
        cutoff,
        api,
        orchestrator: orchestrator.tables,
    }))
}

#[cfg(test)]
mod tests {
    use super::PruneBody;

    fn days(body: &str) -> Result<i64, String> {
        serde_json::from_str::<PruneBody>(body)
            .map(|b| b.older_than_days)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn whole_numbers_are_read_however_they_are_written() {
        assert_eq!(days(r#"{"olderThanDays": 30}"#), Ok(30));
        assert_eq!(days(r#"{"olderThanDays": 30.0}"#), Ok(30));
        assert_eq!(days(r#"{"olderThanDays": 1e2}"#), Ok(100));
        // Past i64 it is no whole number the handler could check (422).
        assert!(
            days(r#"{"olderThanDays": 1e300}"#)
                .unwrap_err()
                .contains("whole number")
        );
        assert!(days(r#"{"olderThanDays": 30.5}"#).unwrap_err().contains("whole number"));
        assert!(days(r#"{"olderThanDays": "30"}"#).is_err());
    }
}
