//! The audit of operator actions (table `audit`, [`crate::store::audit`]):
//! who did what to which run, when, from where, and what came of it. Gate
//! decisions and page views are recorded by [`crate::hitl`], cancels and
//! retries by [`crate::runs`], dead-letter replays by [`crate::dlq`],
//! proposal edits by [`crate::proposals`]; each request once, accepted or
//! refused. Recording never fails the action: a store error is logged.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use myloware_core::Gate;
use myloware_core::auth::{ApiKeys, Principal};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::middleware::ClientIp;
use crate::state::ApiState;
use crate::store::{AuditAction, AuditEntry, now};

/// Log target of audit entries that could not be written.
const LOG_TARGET: &str = "myloware.api.audit";

/// Longest user agent kept.
const MAX_USER_AGENT_CHARS: usize = 300;

/// Who made a request with an API key and from where, as the audit
/// records it. Taken from the key the auth layer accepted
/// ([`crate::middleware::require`]); `none` on a route without one.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `key:<name>`.
    pub actor: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Self::Rejection> {
        let actor = parts
            .extensions
            .get::<Principal>()
            .map_or_else(|| "none".to_string(), |key| format!("key:{}", key.name));
        let Ok(ip) = ClientIp::from_request_parts(parts, state).await;
        let (ip, user_agent) = client(&parts.headers, &ip);
        Ok(Caller { actor, ip, user_agent })
    }
}

impl Caller {
    /// Records `action` on `run_id` and what came of it: `Ok(how it went)`
    /// or `Err(why it was refused)` ([`verdict`]).
    pub async fn record(
        &self,
        state: &ApiState,
        action: AuditAction,
        run_id: Option<&str>,
        verdict: Result<String, String>,
        detail: Option<Value>,
    ) {
        let entry = AuditEntry {
            at: now(),
            actor: self.actor.clone(),
            action,
            run_id: run_id.map(run_of),
            gate: None,
            accepted: verdict.is_ok(),
            outcome: verdict.unwrap_or_else(|refusal| refusal),
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
            detail,
        };
        record(state, &entry).await;
    }
}

/// Writes `entry`; a failure is logged, never passed on.
pub async fn record(state: &ApiState, entry: &AuditEntry) {
    if let Err(err) = state.store.record_audit(entry).await {
        tracing::error!(target: LOG_TARGET, runId = ?entry.run_id, action = %entry.action, error = %err, "cannot record the audit entry");
    }
}

/// What came of a request for the audit: `done` of its answer, or the
/// refusal's message (an unexpected error as `internal error`: its cause
/// is in the logs, not in a row operators read).
pub fn verdict<T>(result: &Result<T, ApiError>, done: impl FnOnce(&T) -> String) -> Result<String, String> {
    result.as_ref().map(done).map_err(refusal)
}

/// An error as the audit's outcome: its message, a 422 with the fields it
/// names (`invalid request: body.project: …`).
pub fn refusal(err: &ApiError) -> String {
    match err {
        ApiError::Internal(_) => "internal error".into(),
        ApiError::Validation(errors) => {
            let fields: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {}", e.loc.join("."), e.msg))
                .collect();
            format!("invalid request: {}", fields.join("; "))
        }
        other => other.to_string(),
    }
}

/// Longest reason and note kept (a decision's are cut to the same upstream).
const MAX_REASON_CHARS: usize = 2000;
const MAX_NOTE_CHARS: usize = 200;

/// What a decision or a cancel carried, as its `detail`: the reason and
/// the note (the name the caller gave itself), cut to 2000 and 200
/// characters; `None` when it carried neither.
pub fn reason_and_note(reason: Option<&str>, note: Option<&str>) -> Option<Value> {
    if reason.is_none() && note.is_none() {
        return None;
    }
    let cut = |text: Option<&str>, max: usize| text.map(|text| text.chars().take(max).collect::<String>());
    Some(json!({"reason": cut(reason, MAX_REASON_CHARS), "note": cut(note, MAX_NOTE_CHARS)}))
}

/// The caller's address and user agent (cut to 300 characters), as the
/// audit records them.
pub fn client(headers: &HeaderMap, ip: &ClientIp) -> (Option<String>, Option<String>) {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(MAX_USER_AGENT_CHARS).collect());
    (ip.0.map(|ip| ip.to_string()), agent)
}

/// What the audit keeps of a run id a caller chose: itself when it has a
/// run id's shape, else a fingerprint (so a refused attempt writes a small
/// row whatever the URL held).
pub fn run_of(run_id: &str) -> String {
    shaped(run_id, myloware_core::ids::is_run_id(run_id))
}

/// [`run_of`] for a gate.
pub fn gate_of(gate: &str) -> String {
    shaped(gate, gate.parse::<Gate>().is_ok())
}

fn shaped(value: &str, expected: bool) -> String {
    if expected {
        value.to_string()
    } else {
        format!("invalid:{}", ApiKeys::fingerprint(value))
    }
}
