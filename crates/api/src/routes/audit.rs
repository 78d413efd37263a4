//! `/v1/audit` and `/v1/runs/{runId}/audit`: the audit of operator actions
//! (`mw audit`), newest first, filtered and paged. Read with the Audit
//! permission (every role but viewer): the entries name people's
//! addresses and user agents.

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use myloware_core::ErrorBody;
use myloware_core::auth::Permission;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paging;
use crate::error::ApiError;
use crate::state::ApiState;
use crate::store::{AuditQuery, AuditRecord};

/// Most entries in one page.
const MAX_PAGE: u32 = 200;
/// Entries in a page unless `limit` says otherwise.
const DEFAULT_PAGE: u32 = 50;
/// Longest `actor` filter (a key name is at most 64 characters, a chat id
/// or a fingerprint less).
const MAX_ACTOR_CHARS: usize = 100;

/// Reading the audit, with a key whose role grants Audit.
pub fn router(state: &ApiState) -> OpenApiRouter<ApiState> {
    let read = OpenApiRouter::new().routes(routes!(audit)).routes(routes!(run_audit));
    super::with_key(state, Permission::Audit, read)
}

/// One audited action.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditView {
    /// Insertion order.
    seq: i64,
    at: DateTime<Utc>,
    /// The credential: `key:<name>`, `token:<fingerprint>`, `telegram:<chat id>`,
    /// `system:gate-timeout` (a project's `gateTimeoutDecision`), or `none`.
    actor: String,
    /// `approve`, `reject`, `revise`, `view` (an approval page opened), `cancel`, `retry`,
    /// `replay`, `edit_proposal`, `sign_in` (the console).
    action: String,
    /// Null for a replay of a dead letter that names no run; `invalid:<fingerprint>`
    /// for a refused attempt on a path that is not a run id.
    run_id: Option<String>,
    gate: Option<String>,
    /// Whether it was done (or had already been: a repeated decision).
    accepted: bool,
    /// How it went (`approved`, `already_approved`, `approved; resume pending`,
    /// `shown`, `cancelled`, `retried (attempt 2)`, `resolved`, `still failing: …`)
    /// or, when refused, why.
    outcome: String,
    /// The client's address (behind a proxy: see TRUST_PROXY_HEADERS).
    ip: Option<String>,
    user_agent: Option<String>,
    /// What the action carried: `reason` and `note` (a decision, a cancel),
    /// `deadLetter` (a replay), `changed` (a proposal edit).
    #[schema(value_type = Option<Object>)]
    detail: Option<Value>,
}

impl From<AuditRecord> for AuditView {
    fn from(record: AuditRecord) -> Self {
        AuditView {
            seq: record.seq,
            at: record.at,
            actor: record.actor,
            action: record.action,
            run_id: record.run_id,
            gate: record.gate,
            accepted: record.accepted,
            outcome: record.outcome,
            ip: record.ip,
            user_agent: record.user_agent,
            detail: record.detail,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    /// Newest first.
    entries: Vec<AuditView>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only entries at or after this time (RFC 3339, e.g. `2026-12-22T09:00:00Z`).
    since: Option<String>,
    /// Only entries about this run.
    #[serde(rename = "runId")]
    run_id: Option<String>,
    /// Only entries by this credential (`key:ops`, `telegram:123`, `token:<fingerprint>`).
    actor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    limit: Option<String>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunAuditParams {
    /// Only entries at or after this time (RFC 3339).
    since: Option<String>,
    /// Only entries by this credential.
    actor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    limit: Option<String>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// The audit of operator actions, newest first: gate decisions (refused
/// attempts included) and approval-page views, cancels, retries,
/// dead-letter replays, proposal edits.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", security(("api_key" = [])), params(AuditParams),
    responses(
        (status = 200, body = AuditPage),
        (status = 400, description = "Malformed query (e.g. a parameter given twice)", body = ErrorBody),
        (status = 422, description = "A bad filter (`since`, `runId`, `actor`, `limit`, `cursor`), named in `loc`"),
    ))]
pub async fn audit(
    State(state): State<ApiState>,
    Query(params): Query<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let run_id = params
        .run_id
        .map(|run_id| {
            myloware_core::ids::is_run_id(&run_id)
                .then_some(run_id)
                .ok_or_else(|| ApiError::invalid(&["query", "runId"], "not a run id (run_…)"))
        })
        .transpose()?;
    let page = Page::parse(params.since, params.actor, params.limit, params.cursor)?;
    page.read(&state, run_id).await.map(Json)
}

/// One run's audit, newest first; 404 for an unknown run.
#[utoipa::path(get, path = "/v1/runs/{runId}/audit", tag = "audit", security(("api_key" = [])),
    params(("runId" = String, Path), RunAuditParams),
    responses(
        (status = 200, body = AuditPage),
        (status = 400, description = "Malformed path or query", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "A bad filter (`since`, `actor`, `limit`, `cursor`), named in `loc`"),
    ))]
pub async fn run_audit(
    State(state): State<ApiState>,
    Path(run_id): Path<String>,
    Query(params): Query<RunAuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let page = Page::parse(params.since, params.actor, params.limit, params.cursor)?;
    super::runs::require_run(&state, &run_id).await?;
    page.read(&state, Some(run_id)).await.map(Json)
}

/// The filters both routes share, checked.
struct Page {
    since: Option<DateTime<Utc>>,
    actor: Option<String>,
    limit: u32,
    before: Option<i64>,
}

impl Page {
    fn parse(
        since: Option<String>,
        actor: Option<String>,
        limit: Option<String>,
        cursor: Option<String>,
    ) -> Result<Page, ApiError> {
        let since = since
            .map(|since| {
                DateTime::parse_from_rfc3339(&since)
                    .map(|at| at.with_timezone(&Utc))
                    .map_err(|_| {
                        ApiError::invalid(
                            &["query", "since"],
                            "must be an RFC 3339 time, e.g. 2026-12-22T09:00:00Z",
                        )
                    })
            })
            .transpose()?;
        if let Some(actor) = &actor
            && !(1..=MAX_ACTOR_CHARS).contains(&actor.chars().count())
        {
            return Err(ApiError::invalid(
                &["query", "actor"],
                format!("must be 1 to {MAX_ACTOR_CHARS} characters"),
            ));
        }
        Ok(Page {
            since,
            actor,
            limit: paging::limit(limit.as_deref(), DEFAULT_PAGE, MAX_PAGE)?,
            before: paging::cursor(cursor.as_deref())?,
        })
    }

    async fn read(self, state: &ApiState, run_id: Option<String>) -> Result<AuditPage, ApiError> {
        let records = state
            .store
            .audit(&AuditQuery {
                run_id,
                actor: self.actor,
                since: self.since,
                before: self.before,
                limit: self.limit + 1,
            })
            .await?;
        let (records, next_cursor) = paging::page(records, self.limit, |record| record.seq);
        Ok(AuditPage {
            entries: records.into_iter().map(AuditView::from).collect(),
            next_cursor,
        })
    }
}

/// The filters' formats and bounds.
pub(crate) fn refine_schema(doc: &mut Value) {
    for path in ["/v1/audit", "/v1/runs/{runId}/audit"] {
        let operation = super::schema::operation(doc, "get", path);
        for parameter in operation["parameters"].as_array_mut().into_iter().flatten() {
            let name = parameter["name"].as_str().unwrap_or_default();
            let schema = match name {
                "since" => json!({"type": "string", "format": "date-time", "pattern": super::schema::NUL_FREE}),
                "runId" if parameter["in"] == "query" => {
                    json!({"type": "string", "pattern": "^run_[a-z0-9_]{1,64}$"})
                }
                "actor" => {
                    json!({"type": "string", "minLength": 1, "maxLength": MAX_ACTOR_CHARS, "pattern": super::schema::NUL_FREE})
                }
                _ => match paging::schema(name, MAX_PAGE) {
                    Some(schema) => schema,
                    None => continue,
                },
            };
            parameter["schema"] = schema;
        }
    }
}
