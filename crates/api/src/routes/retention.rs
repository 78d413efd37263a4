//! `/v1/retention`: removing old rows that no unfinished run needs, for
//! operators (`mw retention prune`).

use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Duration, Utc};
use myloware_core::ErrorBody;
use myloware_core::auth::Principal;
use serde::{Deserialize, Serialize};

use crate::ApiState;
use crate::error::{ApiError, ValidJson};

/// The longest retention a prune accepts (about ten years).
const MAX_DAYS: i64 = 3650;

/// `POST /v1/retention/prune`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PruneRequest {
    /// Rows older than this many days (1 to 3650) are pruned.
    older_than_days: i64,
    /// Count what would be deleted without deleting it.
    #[serde(default)]
    dry_run: bool,
}

/// What was deleted (or, for a dry run, would be).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PruneReport {
    dry_run: bool,
    /// Now minus `olderThanDays`.
    cutoff: DateTime<Utc>,
    /// Received before the cutoff, for a run that has ended or is unknown.
    webhook_deliveries: u64,
    /// Of runs that ended before the cutoff.
    artifacts: u64,
    /// Chat pushes created before the cutoff and delivered or given up.
    chat_deliveries: u64,
}

/// Deletes (or counts, with `dryRun`) webhook deliveries, artifacts and
/// chat pushes older than the cutoff; never a row an unfinished run needs.
#[utoipa::path(post, path = "/v1/retention/prune", tag = "retention", security(("api_key" = [])),
    request_body = PruneRequest,
    responses(
        (status = 200, body = PruneReport),
        (status = 422, description = "`olderThanDays` missing or outside 1..=3650, or a malformed body"),
        (status = 401, body = ErrorBody),
    ))]
pub async fn prune(
    State(state): State<ApiState>,
    Extension(key): Extension<Principal>,
    ValidJson(request): ValidJson<PruneRequest>,
) -> Result<Json<PruneReport>, ApiError> {
    if !(1..=MAX_DAYS).contains(&request.older_than_days) {
        return Err(ApiError::invalid(
            &["body", "olderThanDays"],
            format!("must be between 1 and {MAX_DAYS} days"),
        ));
    }
    let cutoff = crate::store::now() - Duration::days(request.older_than_days);
    let pruned = state.store.prune(cutoff, request.dry_run).await?;
    tracing::info!(
        by = %format!("key:{}", key.name),
        dry_run = request.dry_run,
        %cutoff,
        webhook_deliveries = pruned.webhook_deliveries,
        artifacts = pruned.artifacts,
        chat_deliveries = pruned.chat_deliveries,
        "retention prune"
    );
    Ok(Json(PruneReport {
        dry_run: request.dry_run,
        cutoff,
        webhook_deliveries: pruned.webhook_deliveries,
        artifacts: pruned.artifacts,
        chat_deliveries: pruned.chat_deliveries,
    }))
}
