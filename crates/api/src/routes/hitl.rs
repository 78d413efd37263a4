//! `/v1/hitl`: signed links, the confirmation page, approve, reject and
//! revise (request changes).
//!
//! A link opened by a browser, an unfurler or a bot never changes anything:
//! `GET` shows the page (or, for `Accept: application/json`, a description).
//! Only a `POST` with the link's token, or any request with a valid API key
//! (the runbook's manual curl), decides.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::map_response_with_state;
use axum::response::{Html, IntoResponse, Response};
use bytes::Bytes;
use chrono::Utc;
use myloware_core::auth::Permission;
use myloware_core::config::Environment;
use myloware_core::wire::Decision as Verdict;
use myloware_core::{Gate, RunStatus};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit;
use crate::error::ApiError;
use crate::hitl::{self, Attempt, Credential, Link, Outcome};
use crate::middleware::{ClientId, ClientIp, LimitedRoute, principal};
use crate::page;
use crate::state::ApiState;
use crate::store::{AuditAction, GateStatus, RunQuery};

/// The routes a link opens (no API key needed; refusals limited per
/// address), each response with the pages' security headers
/// ([`page::headers`]); fresh links and the pending list with Decide.
pub fn router(state: &ApiState) -> OpenApiRouter<ApiState> {
    let links = OpenApiRouter::new()
        .routes(routes!(open_link, approve))
        .routes(routes!(reject))
        .routes(routes!(revise));
    let links = super::open(state, links).route_layer(map_response_with_state(state.config.environment, page::headers));
    let decide = OpenApiRouter::new().routes(routes!(link)).routes(routes!(pending));
    links.merge(super::with_key(state, Permission::Decide, decide))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// The link's token.
    token: Option<String>,
}

/// A decision's body: form fields (from the page) or JSON, all optional
/// (an empty body is one too).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct DecisionBody {
    /// The link's token (or in the query).
    token: Option<String>,
    /// Who decided, for the audit (cut to 200 characters).
    approver: Option<String>,
    /// Why, for the audit and a rejected run (cut to 2000 characters).
    reason: Option<String>,
    /// The changes asked for (revise only; required there; at most 2000
    /// characters).
    feedback: Option<String>,
    /// The gate's `revisions` when its preview was shown (the page sends
    /// it): a decision about an earlier preview is refused (409).
    #[schema(nullable = false, minimum = 0, maximum = 4294967295_u64)]
    #[serde(default, deserialize_with = "whole_u32")]
    round: Option<u32>,
}

/// A whole number 0 to 2^32-1, as JSON writes it (`3` or `3.0`) or a form
/// does (`"3"`).
fn whole_u32<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Number(serde_json::Number),
        Text(String),
    }
    let number = match Option::<Written>::deserialize(deserializer)? {
        None => return Ok(None),
        Some(Written::Number(number)) => super::whole_number(&number),
        Some(Written::Text(text)) => text.trim().parse::<i64>().ok(),
    };
    number
        .and_then(|n| u32::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom("round must be a whole number from 0 to 4294967295"))
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// Refuses a token-authenticated POST that a browser says comes from
/// another site (the form's token already binds it to the link).
fn cross_site(headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("sec-fetch-site") == Some("cross-site") {
        return true;
    }
    match (header("origin"), header("host")) {
        // The page sends no referrer, so a browser's own form POST carries
        // `Origin: null`; only its fetch metadata says it is same-origin.
        (Some("null"), _) => header("sec-fetch-site") != Some("same-origin"),
        (Some(origin), Some(host)) => {
            let origin_host = origin.split("://").nth(1).unwrap_or(origin);
            origin_host != host
        }
        _ => false,
    }
}

/// The credential of a request: a valid API key whose role may decide, or
/// a valid token for this gate, else 403 (`invalid or expired token`).
fn credential(
    state: &ApiState,
    headers: &HeaderMap,
    run_id: &str,
    gate: &str,
    token: Option<&str>,
) -> Result<Credential, ApiError> {
    let forbidden = || ApiError::Forbidden("invalid or expired token".into());
    let token_ok = token.map(|t| hitl::token_is_valid(state, run_id, gate, t));
    if let Some(principal) = principal(&state.api_keys, headers) {
        if !principal.allows(Permission::Decide) {
            return Err(ApiError::Forbidden(format!(
                "the key {:?} ({}) may not decide gates",
                principal.name, principal.role
            )));
        }
        // A token given with an API key must still be right.
        if token_ok == Some(false) {
            return Err(forbidden());
        }
        return Ok(Credential::ApiKey(principal.clone()));
    }
    match (token, token_ok) {
        (Some(token), Some(true)) => Ok(Credential::token(token)),
        _ => Err(forbidden()),
    }
}

fn answer(html: bool, status: StatusCode, title: &str, body: Value) -> Response {
    if html {
        let message = body["detail"]
            .as_str()
            .or(body["message"].as_str())
            .unwrap_or(title)
            .to_string();
        (status, Html(page::result(title, &message))).into_response()
    } else {
        (status, Json(body)).into_response()
    }
}

fn error_answer(html: bool, err: ApiError) -> Response {
    if html {
        let status = err.status();
        answer(html, status, "Not decided", json!({"detail": err.to_string()}))
    } else {
        err.into_response()
    }
}

fn outcome_answer(html: bool, outcome: Outcome, run_id: &str, gate: &str) -> Response {
    let title = match outcome {
        Outcome::Decided(Verdict::Approve) => "Approved",
        Outcome::Decided(Verdict::Reject) => "Rejected",
        Outcome::Decided(Verdict::Revise) => "Changes requested",
        Outcome::Already(_) => "Already decided",
        Outcome::Counted(_) | Outcome::AlreadyCounted(_) => "Approval counted",
    };
    let mut body = json!({"status": outcome.as_str(), "runId": run_id, "gate": gate, "message": outcome.message()});
    if let Some(progress) = outcome.progress() {
        body["approvals"] = json!(progress.approvals);
        body["approvalsRequired"] = json!(progress.required);
    }
    answer(html, StatusCode::OK, title, body)
}

async fn decide(state: &ApiState, request: DecisionRequest, verdict: Verdict) -> Response {
    let DecisionRequest {
        run_id,
        gate,
        client: client_id,
        ip,
        headers,
        body,
    } = request;
    let (run_id, gate, headers) = (run_id.as_str(), gate.as_str(), &headers);
    let html = wants_html(headers);
    let token = body.token;
    let (ip, user_agent) = audit::client(headers, &ip);
    let mut attempt = Attempt {
        run_id: run_id.to_string(),
        gate: gate.to_string(),
        verdict,
        note: body.approver.map(|a| a.chars().take(200).collect()),
        reason: match verdict {
            Verdict::Revise => body.feedback.map(|f| f.trim().to_string()),
            _ => body.reason.map(|r| r.chars().take(2000).collect()),
        },
        // A valid key names who tried, even when its role may not decide.
        credential: principal(&state.api_keys, headers).map_or(Credential::None, |key| Credential::ApiKey(key.clone())),
        chat_user: None,
        round: body.round,
        ip,
        user_agent,
    };
    let action = attempt.action();
    if let Err(err) = state.limiter.check(LimitedRoute::HitlDecision, &client_id.0) {
        hitl::audit(state, &attempt, action, Err("rate_limited".into())).await;
        return err.into_response();
    }
    attempt.credential = match credential(state, headers, run_id, gate, token.as_deref()) {
        Ok(credential) => credential,
        Err(err) => {
            hitl::audit(state, &attempt, action, Err(audit::refusal(&err))).await;
            return error_answer(html, err);
        }
    };
    if matches!(attempt.credential, Credential::Token(_)) && cross_site(headers) {
        hitl::audit(state, &attempt, action, Err("cross_site_refused".into())).await;
        return error_answer(html, ApiError::Forbidden("cross-site request refused".into()));
    }
    match hitl::decide(state, &attempt).await {
        Ok(outcome) => outcome_answer(html, outcome, run_id, gate),
        Err(err) => error_answer(html, err),
    }
}

/// Everything a decision route reads: the path, the token (query or body),
/// the client, the headers, and the optional form or JSON body.
pub struct DecisionRequest {
    run_id: String,
    gate: String,
    client: ClientId,
    ip: ClientIp,
    headers: HeaderMap,
    body: DecisionBody,
}

impl FromRequest<ApiState> for DecisionRequest {
    type Rejection = Response;

    async fn from_request(request: Request, state: &ApiState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let Path((run_id, gate)) = Path::<(String, String)>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Query(query) = Query::<TokenQuery>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Ok(client) = ClientId::from_request_parts(&mut parts, state).await;
        let Ok(ip) = ClientIp::from_request_parts(&mut parts, state).await;
        let headers = parts.headers.clone();
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let body = parse_body(&headers, &bytes).map_err(IntoResponse::into_response)?;
        let body = DecisionBody {
            token: query.token.or(body.token),
            ..body
        };
        Ok(DecisionRequest {
            run_id,
            gate,
            client,
            ip,
            headers,
            body,
        })
    }
}

fn parse_body(headers: &HeaderMap, bytes: &Bytes) -> Result<DecisionBody, ApiError> {
    if bytes.is_empty() {
        return Ok(DecisionBody::default());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let form = content_type.starts_with("application/x-www-form-urlencoded");
    // A NUL raw or JSON-escaped, or in a form percent-encoded.
    if myloware_http::body::has_nul(bytes) || (form && bytes.windows(3).any(|w| w == b"%00")) {
        return Err(ApiError::invalid(
            &["body"],
            "text must not contain NUL characters (U+0000)",
        ));
    }
    if form {
        serde_urlencoded::from_bytes(bytes).map_err(|e| ApiError::invalid(&["body"], e.to_string()))
    } else if content_type.starts_with("application/json") {
        serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(&["body"], e.to_string()))
    } else {
        Err(ApiError::BadRequest("send the decision as a form or as JSON".into()))
    }
}

/// Opens the link: the confirmation page (browsers), a JSON description
/// (`Accept: application/json`), or, with a valid API key, the approval.
#[utoipa::path(get, path = "/v1/hitl/approve/{runId}/{gate}", tag = "hitl", params(("runId" = String, Path), ("gate" = Gate, Path), TokenQuery),
    responses((status = 200, description = "Page, description, or (with an API key) the decision"), (status = 400, description = "Malformed path or query"), (status = 403, description = "Invalid or expired token"), (status = 404), (status = 409), (status = 429, description = "Too many refused requests from this address, or (with an API key) too many decisions; see `Retry-After`"), (status = 500), (status = 502, description = "Decision kept; the orchestrator could not be told yet")))]
pub async fn open_link(
    State(state): State<ApiState>,
    Path((run_id, gate)): Path<(String, String)>,
    Query(query): Query<TokenQuery>,
    client_id: ClientId,
    ip: ClientIp,
    headers: HeaderMap,
) -> Response {
    if principal(&state.api_keys, &headers).is_some() {
        let body = DecisionBody {
            token: query.token,
            ..DecisionBody::default()
        };
        let request = DecisionRequest {
            run_id,
            gate,
            client: client_id,
            ip,
            headers,
            body,
        };
        return decide(&state, request, Verdict::Approve).await;
    }
    let html = wants_html(&headers)
        || !headers
            .get(header::ACCEPT)
            .is_some_and(|a| a.to_str().is_ok_and(|a| a.contains("json")));
    let token = query.token.unwrap_or_default();
    let (ip, user_agent) = audit::client(&headers, &ip);
    let attempt = Attempt {
        run_id: run_id.clone(),
        gate: gate.clone(),
        verdict: Verdict::Approve,
        note: None,
        reason: None,
        credential: Credential::token(&token),
        chat_user: None,
        round: None,
        ip,
        user_agent,
    };
    if !hitl::token_is_valid(&state, &run_id, &gate, &token) {
        // A link that outlived its gate says so rather than "invalid".
        if hitl::token_is_genuine(&state, &run_id, &gate, &token)
            && let Ok((run, gate)) = hitl::run_and_gate(&state, &run_id, &gate).await
            && let Ok(Some(record)) = state.store.get_gate(&run.id, gate).await
            && record.status == GateStatus::Expired
        {
            hitl::audit(&state, &attempt, AuditAction::View, Err("gate expired".into())).await;
            return expired_answer(html, gate);
        }
        hitl::audit(
            &state,
            &attempt,
            AuditAction::View,
            Err("invalid or expired token".into()),
        )
        .await;
        return error_answer(html, ApiError::Forbidden("invalid or expired token".into()));
    }
    let (run, gate) = match hitl::run_and_gate(&state, &run_id, &gate).await {
        Ok(found) => found,
        Err(err) => return error_answer(html, err),
    };
    let record = match state.store.get_gate(&run.id, gate).await {
        Ok(record) => record,
        Err(err) => return error_answer(html, err.into()),
    };
    // Each view is audited: views are limited per address like decisions.
    if let Err(err) = state.limiter.check(LimitedRoute::HitlView, &client_id.0) {
        return error_answer(html, err);
    }
    hitl::audit(&state, &attempt, AuditAction::View, Ok("shown".into())).await;
    let status = record.as_ref().map_or("not_reached", |r| r.status.as_str());
    let preview = record.as_ref().map(|r| r.preview.clone()).unwrap_or(Value::Null);
    if !html {
        return Json(
            json!({"runId": run.id, "gate": gate, "status": status, "runStatus": run.status, "preview": preview}),
        )
        .into_response();
    }
    match record {
        Some(record) if record.status == GateStatus::Awaiting => {
            let expires = token.split('.').next().and_then(|e| e.parse::<i64>().ok());
            let expires = expires
                .and_then(|e| chrono::DateTime::<Utc>::from_timestamp(e, 0))
                .map_or("soon".to_string(), |e| e.format("%Y-%m-%d %H:%M UTC").to_string());
            let allow_http = state.config.environment == Environment::Development;
            let preview = super::assets::with_fresh_render_url(&state, preview).await;
            let policy = hitl::policy(&state, &run.project, gate);
            let standing = page::Standing {
                approvals: hitl::waiting_for(&record, &policy, false),
                revisions_left: policy.max_revisions.saturating_sub(record.revisions),
                round: record.revisions,
            };
            Html(page::confirmation(
                &run.id,
                &run.project,
                gate,
                &preview,
                &token,
                &expires,
                allow_http,
                &standing,
            ))
            .into_response()
        }
        Some(record) => match record.status {
            GateStatus::Approved => answer(
                true,
                StatusCode::OK,
                "Already approved",
                json!({"message": "This gate was already approved."}),
            ),
            GateStatus::Rejected => answer(
                true,
                StatusCode::OK,
                "Already rejected",
                json!({"message": "This gate was already rejected."}),
            ),
            GateStatus::Revised => answer(
                true,
                StatusCode::OK,
                "Changes requested",
                json!({"message": "Changes were requested at this gate; a new link comes once the changes are made."}),
            ),
            GateStatus::Expired => expired_answer(true, gate),
            GateStatus::Awaiting => unreachable!("matched above"),
        },
        None => answer(
            true,
            StatusCode::CONFLICT,
            "Not waiting",
            json!({"detail": format!("the {gate} gate is not awaiting a decision; the run is {}", run.status)}),
        ),
    }
}

/// The page (or JSON) of a gate that expired without a decision (409).
fn expired_answer(html: bool, gate: Gate) -> Response {
    answer(
        html,
        StatusCode::CONFLICT,
        "Expired",
        json!({"detail": format!(
            "This approval expired: nobody decided the {gate} gate within GATE_TIMEOUT_HOURS, and the run ended. \
             Start it again to go on."
        )}),
    )
}

/// A decision route: the link's token (query or form) or an API key
/// decides; the refusals are listed once ([`DECISION_ANSWERS`]).
macro_rules! decision_route {
    ($(#[doc = $doc:tt])* $name:ident, $path:tt, $verdict:expr, $body:tt, $answers:tt) => {
        $(#[doc = $doc])*
        #[utoipa::path(post, path = $path, tag = "hitl", params(("runId" = String, Path), ("gate" = Gate, Path), TokenQuery),
            request_body(description = $body, content((DecisionBody = "application/x-www-form-urlencoded"), (DecisionBody = "application/json"))),
            responses((status = 200, description = $answers)))]
        pub async fn $name(State(state): State<ApiState>, request: DecisionRequest) -> Response {
            decide(&state, request, $verdict).await
        }
    };
}

decision_route!(
    /// Approves; the execution resumes (or, at the workflow gate, starts).
    /// A gate whose project asks for several approvals counts this one and
    /// waits for the rest.
    approve,
    "/v1/hitl/approve/{runId}/{gate}",
    Verdict::Approve,
    "Optional: `token`, `approver` as a form or as JSON",
    "`{\"status\":\"approved\"|\"already_approved\"|\"approval_counted\"|\"already_counted\",\"runId\",\"gate\"}`"
);

decision_route!(
    /// Rejects (with an optional `reason`); the run ends `rejected`.
    reject,
    "/v1/hitl/reject/{runId}/{gate}",
    Verdict::Reject,
    "Optional: `token`, `approver`, `reason` as a form or as JSON",
    "`{\"status\":\"rejected\"|\"already_rejected\",\"runId\",\"gate\"}`"
);

decision_route!(
    /// Requests changes (`feedback`, required): the persona before the gate
    /// works again with it, then the gate waits again with a new preview
    /// (Iggy proposes new ideas; at prepublish Riley makes again the clips
    /// the feedback names and Alex edits again). At most the project's
    /// `maxRevisions` per gate (default 3); not at the workflow gate.
    revise,
    "/v1/hitl/revise/{runId}/{gate}",
    Verdict::Revise,
    "`feedback` (required), optional `token`, `approver`, as a form or as JSON",
    "`{\"status\":\"revised\"|\"already_revised\",\"runId\",\"gate\"}`"
);

/// A fresh link for an awaiting gate.
#[utoipa::path(get, path = "/v1/hitl/link/{runId}/{gate}", tag = "hitl", security(("api_key" = [])), params(("runId" = String, Path), ("gate" = Gate, Path)),
    responses((status = 200, body = Link), (status = 400, description = "Malformed path"), (status = 404), (status = 409)))]
pub async fn link(
    State(state): State<ApiState>,
    Path((run_id, gate)): Path<(String, String)>,
) -> Result<Json<Link>, ApiError> {
    let (run, gate) = hitl::run_and_gate(&state, &run_id, &gate).await?;
    match state.store.get_gate(&run.id, gate).await? {
        Some(record) if record.status == GateStatus::Awaiting => Ok(Json(hitl::mint(&state, &run.id, gate))),
        Some(record) => Err(ApiError::Conflict(format!(
            "the {gate} gate was already {}",
            record.status.as_str()
        ))),
        None => Err(ApiError::Conflict(format!(
            "the {gate} gate has not been reached; the run is {}",
            run.status
        ))),
    }
}

/// Gates awaiting a decision, with fresh links; and runs held by a spending
/// limit, which go on by themselves once the limit allows.
#[utoipa::path(get, path = "/v1/hitl/pending", tag = "hitl", security(("api_key" = [])),
    responses((status = 200, description = "`{\"pending\":[{runId, gate, requestedAt, preview, approvalUrl, rejectUrl, reviseUrl, expiresAt, approvals, revisions}], \"held\":[{runId, project, heldAt, hold: {limit, limitUsd, spentUsd, leftUsd, neededUsd, until, persona, calls}}]}` (at most 200 of each)")))]
pub async fn pending(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let gates = state.store.awaiting_gates(200).await?;
    let pending: Vec<Value> = gates
        .iter()
        .map(|g| {
            let link = hitl::mint(&state, &g.run_id, g.gate);
            json!({"runId": g.run_id, "gate": g.gate, "requestedAt": g.requested_at, "preview": g.preview,
                   "approvalUrl": link.approval_url, "rejectUrl": link.reject_url, "reviseUrl": link.revise_url,
                   "expiresAt": link.expires_at, "approvals": g.approvals, "revisions": g.revisions})
        })
        .collect();
    let query = RunQuery {
        status: Some(RunStatus::AwaitingBudget),
        limit: 200,
        ..RunQuery::default()
    };
    let mut held = Vec::new();
    for run in state.store.list_runs(&query).await? {
        let artifacts = state.store.list_artifacts(&run.id).await?;
        let hold = artifacts.iter().rev().find(|a| a.kind == "budget.held");
        held.push(json!({"runId": run.id, "project": run.project,
                         "heldAt": hold.map(|a| a.created_at), "hold": hold.map(|a| &a.data)}));
    }
    Ok(Json(json!({"pending": pending, "held": held})))
}

/// What a decision (approve or reject) may answer besides 200.
const DECISION_ANSWERS: [(&str, &str); 8] = [
    (
        "400",
        "Malformed path or query, or a body that is neither a form nor JSON",
    ),
    (
        "403",
        "Invalid or expired token, a key that may not decide, a decider the gate's policy does not allow \
         (`approvers`, `selfApproval`), or a cross-site request",
    ),
    ("404", "Unknown run or gate"),
    (
        "409",
        "The gate is not awaiting a decision; its preview changed since the `round` given; a revision past \
         the gate's `maxRevisions` or at the workflow gate",
    ),
    ("413", "Body over MAX_BODY_BYTES"),
    (
        "422",
        "A body with a NUL character, a form or JSON that does not parse, or a revision without `feedback` \
         (or with more than 2000 characters)",
    ),
    (
        "429",
        "Too many decisions from this client, or too many refused requests from this address; see `Retry-After`",
    ),
    ("502", "Decision kept; the orchestrator could not be told yet"),
];

/// The link routes answer a page (`text/html`) or JSON, by `Accept`, for
/// every status; their bodies are optional; the JSON answers' shapes.
pub(crate) fn refine_schema(doc: &mut Value) {
    let schemas = &mut doc["components"]["schemas"];
    // Other fields are ignored (a form may carry more).
    schemas["DecisionBody"]["additionalProperties"] = json!(false);
    // A revision's body: the same fields, with the feedback required (some
    // text, at most 2000 characters).
    let mut revise = schemas["DecisionBody"].clone();
    revise["required"] = json!(["feedback"]);
    revise["properties"]["feedback"] = json!({
        "type": "string", "minLength": 1, "maxLength": 2000, "pattern": "\\S",
        "description": "What should change (some text besides spaces; at most 2000 characters)",
    });
    schemas["ReviseBody"] = revise;
    schemas["Decision"] = json!({
        "type": "object",
        "required": ["status", "runId", "gate", "message"],
        "properties": {
            "status": {"type": "string", "enum": ["approved", "rejected", "revised", "already_approved",
                "already_rejected", "already_revised", "approval_counted", "already_counted"]},
            "runId": {"type": "string"},
            "gate": {"$ref": "#/components/schemas/Gate"},
            "message": {"type": "string"},
            "approvals": {"type": "integer", "description": "Approvals so far (`approval_counted`, `already_counted`)"},
            "approvalsRequired": {"type": "integer"},
        },
    });
    schemas["GateView"] = json!({
        "type": "object",
        "description": "The link's gate, for `Accept: application/json` without an API key",
        "required": ["runId", "gate", "status", "runStatus", "preview"],
        "properties": {
            "runId": {"type": "string"},
            "gate": {"$ref": "#/components/schemas/Gate"},
            "status": {"type": "string", "enum": ["awaiting", "approved", "rejected", "expired", "revised", "not_reached"]},
            "runStatus": {"$ref": "#/components/schemas/RunStatus"},
            "preview": {},
        },
    });
    schemas["PendingGates"] = json!({
        "type": "object",
        "required": ["pending"],
        "properties": {"pending": {"type": "array", "items": {
            "type": "object",
            "required": ["runId", "gate", "requestedAt", "preview", "approvalUrl", "rejectUrl", "reviseUrl", "expiresAt",
                "approvals", "revisions"],
            "properties": {
                "runId": {"type": "string"},
                "gate": {"$ref": "#/components/schemas/Gate"},
                "requestedAt": {"type": "string", "format": "date-time"},
                "preview": {},
                "approvalUrl": {"type": "string"},
                "rejectUrl": {"type": "string"},
                "reviseUrl": {"type": "string"},
                "approvals": {"type": "array", "description": "Approvals so far of a gate needing several",
                    "items": {"type": "object", "required": ["by", "at"],
                        "properties": {"by": {"type": "string"}, "at": {"type": "string", "format": "date-time"}}}},
                "revisions": {"type": "integer", "description": "Times the gate was sent back for changes"},
                "expiresAt": {"type": "string", "format": "date-time"},
            },
        }}},
    });
    for path in [
        "/v1/hitl/approve/{runId}/{gate}",
        "/v1/hitl/reject/{runId}/{gate}",
        "/v1/hitl/revise/{runId}/{gate}",
    ] {
        let responses = &mut super::schema::operation(doc, "post", path)["responses"];
        for (status, description) in DECISION_ANSWERS {
            responses[status] = json!({
                "description": description,
                "content": {"application/json": {"schema": {"$ref": super::schema::error_body(status)}}},
            });
        }
    }
    let html = json!({"schema": {"type": "string", "description": "The page"}});
    for (method, path, ok) in [
        (
            "get",
            "/v1/hitl/approve/{runId}/{gate}",
            json!({"oneOf": [
            {"$ref": "#/components/schemas/GateView"}, {"$ref": "#/components/schemas/Decision"}]}),
        ),
        (
            "post",
            "/v1/hitl/approve/{runId}/{gate}",
            json!({"$ref": "#/components/schemas/Decision"}),
        ),
        (
            "post",
            "/v1/hitl/reject/{runId}/{gate}",
            json!({"$ref": "#/components/schemas/Decision"}),
        ),
        (
            "post",
            "/v1/hitl/revise/{runId}/{gate}",
            json!({"$ref": "#/components/schemas/Decision"}),
        ),
    ] {
        let operation = super::schema::operation(doc, method, path);
        if operation.get("requestBody").is_some() {
            // Only a revision must say something: its feedback.
            let revision = path.contains("/revise/");
            operation["requestBody"]["required"] = json!(revision);
            if revision && let Some(content) = operation["requestBody"]["content"].as_object_mut() {
                for media in content.values_mut() {
                    media["schema"] = json!({"$ref": "#/components/schemas/ReviseBody"});
                }
            }
        }
        let Some(responses) = operation["responses"].as_object_mut() else {
            continue;
        };
        for (status, response) in responses.iter_mut() {
            if status == "200" {
                response["content"] = json!({"application/json": {"schema": ok}});
            }
            response["content"]["text/html"] = html.clone();
        }
    }
    super::schema::operation(doc, "get", "/v1/hitl/pending")["responses"]["200"]["content"] =
        json!({"application/json": {"schema": {"$ref": "#/components/schemas/PendingGates"}}});
}
