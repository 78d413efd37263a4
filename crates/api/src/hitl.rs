//! Human approval at gates: signed links, decisions (each gate decided once,
//! by one conditional update), the audit of every attempt ([`crate::audit`]),
//! and delivery of the decision to the orchestrator (kept and retried if it
//! is down).

use chrono::Utc;
use myloware_core::auth::ApiKeys;
use myloware_core::graph;
use myloware_core::signing;
use myloware_core::wire::{
    Decision as GateDecision, ExecutionCommand, GraphSpec, Repeated, ResumeExecution, StartExecution,
};
use myloware_core::{Gate, ProviderMode, RunStatus};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::ApiState;
use crate::store::{Artifact, AuditAction, AuditEntry, Decision, GateRecord, GateStatus, NewCommand, Run, now};
use crate::{audit, commands};

/// Log target of gate decisions (the runbook greps for it).
pub use crate::commands::HITL_LOG_TARGET as LOG_TARGET;

/// A signed approval link.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    pub run_id: String,
    pub gate: Gate,
    pub token: String,
    pub approval_url: String,
    pub reject_url: String,
    pub expires_at: chrono::DateTime<Utc>,
    /// Seconds until expiry.
    pub expires_in: i64,
}

/// Mints a fresh link for `gate` of `run_id`.
pub fn mint(state: &ApiState, run_id: &str, gate: Gate) -> Link {
    let config = &state.config;
    let expires_at = Utc::now() + config.hitl_token_lifetime();
    let token = signing::hitl_token(
        config.hitl_secret_bytes(),
        run_id,
        gate.as_str(),
        expires_at.timestamp(),
    );
    let url = |action: &str| {
        let mut url = config
            .public_base_url
            .join(&format!("/v1/hitl/{action}/{run_id}/{gate}"))
            .expect("valid path");
        url.query_pairs_mut().append_pair("token", &token);
        url.to_string()
    };
    Link {
        run_id: run_id.to_string(),
        gate,
        approval_url: url("approve"),
        reject_url: url("reject"),
        token,
        expires_at,
        expires_in: (expires_at - Utc::now()).num_seconds(),
    }
}

/// Whether `token` is a valid, unexpired link token for the gate, under the
/// current `HITL_SECRET` or, during rotation, `HITL_SECRET_PREVIOUS`.
pub fn token_is_valid(state: &ApiState, run_id: &str, gate: &str, token: &str) -> bool {
    signing::verify_hitl_token(
        &state.config.hitl_secrets(),
        run_id,
        gate,
        token,
        Utc::now().timestamp(),
    )
}

/// Whether `token` was minted for the gate, expired or not: a link that
/// outlived its gate may still be told that the gate expired.
pub fn token_is_genuine(state: &ApiState, run_id: &str, gate: &str, token: &str) -> bool {
    signing::verify_hitl_token(&state.config.hitl_secrets(), run_id, gate, token, i64::MIN)
}

/// Who is deciding: the credential, which is what the gate records as its
/// approver and the audit as the attempt's credential (never a secret).
#[derive(Debug, Clone)]
pub enum Credential {
    /// A valid API key (with a role that may decide), by its name.
    ApiKey(String),
    /// A valid link token, by its fingerprint.
    Token(String),
    /// "approve" in chat through `POST /v1/chat/brendan`, by the key's name.
    ChatKey(String),
    /// "approve" in a Telegram chat listed in `TELEGRAM_APPROVER_CHAT_IDS`.
    Telegram(String),
    /// The project's `gateTimeoutDecision`, taken when a gate waited past
    /// `GATE_TIMEOUT_HOURS` (`crate::expiry`).
    Timeout,
    None,
}

impl Credential {
    pub fn token(token: &str) -> Credential {
        Credential::Token(ApiKeys::fingerprint(token))
    }

    /// `key:<name>`, `token:<fingerprint>`, `telegram:<chat id>` or `none`.
    pub fn describe(&self) -> String {
        match self {
            Credential::ApiKey(name) | Credential::ChatKey(name) => format!("key:{name}"),
            Credential::Token(fp) => format!("token:{fp}"),
            Credential::Telegram(chat_id) => format!("telegram:{chat_id}"),
            Credential::Timeout => "system:gate-timeout".into(),
            Credential::None => "none".into(),
        }
    }

    pub fn via(&self) -> &'static str {
        match self {
            Credential::ApiKey(_) => "api_key",
            Credential::ChatKey(_) | Credential::Telegram(_) => "chat",
            Credential::Timeout => "timeout",
            _ => "token",
        }
    }
}

/// One decision attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub run_id: String,
    pub gate: String,
    pub approve: bool,
    /// What the decider says about themselves (the free-text `approver`
    /// field): kept as a note, never as the approver.
    pub note: Option<String>,
    pub reason: Option<String>,
    pub credential: Credential,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Attempt {
    /// `approve` or `reject`, as the audit names it.
    pub fn action(&self) -> AuditAction {
        if self.approve {
            AuditAction::Approve
        } else {
            AuditAction::Reject
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Approved,
    Rejected,
    AlreadyApproved,
    AlreadyRejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::AlreadyApproved => "already_approved",
            Self::AlreadyRejected => "already_rejected",
        }
    }
}

/// Records the attempt in the audit, whatever happened: `Ok(how it
/// went)` or `Err(why it was refused)`. The reason and note are kept only
/// from a caller that proved a credential (a stranger's text stays out).
pub async fn audit(state: &ApiState, attempt: &Attempt, action: AuditAction, verdict: Result<String, String>) {
    let detail = match attempt.credential {
        Credential::None => None,
        _ => audit::reason_and_note(attempt.reason.as_deref(), attempt.note.as_deref()),
    };
    let entry = AuditEntry {
        at: now(),
        actor: attempt.credential.describe(),
        action,
        run_id: Some(audit::run_of(&attempt.run_id)),
        gate: Some(audit::gate_of(&attempt.gate)),
        accepted: verdict.is_ok(),
        outcome: verdict.unwrap_or_else(|refusal| refusal),
        ip: attempt.ip.clone(),
        user_agent: attempt.user_agent.clone(),
        detail,
    };
    audit::record(state, &entry).await;
}

/// The run and the gate, if the gate belongs to the run's graph.
pub async fn run_and_gate(state: &ApiState, run_id: &str, gate: &str) -> Result<(Run, Gate), ApiError> {
    let gate: Gate = gate.parse().map_err(|_| ApiError::not_found("gate"))?;
    if !myloware_core::ids::is_run_id(run_id) {
        return Err(ApiError::not_found("run"));
    }
    let run = state
        .store
        .get_run(run_id)
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    let in_graph = match gate {
        Gate::Workflow => !run.payload["metadata"]["workflow_proposal"].is_null(),
        other => run.payload["graph_spec"]["hitl_gates"]
            .as_array()
            .is_some_and(|gates| gates.iter().any(|g| g == other.as_str())),
    };
    if !in_graph {
        return Err(ApiError::NotFound(format!("the {gate} gate is not part of this run")));
    }
    Ok((run, gate))
}

/// Decides, audits, and tells the orchestrator. A decision kept while the
/// orchestrator is down answers 502 and is delivered later (by the command
/// reconciler, or by a retry of the link).
pub async fn decide(state: &ApiState, attempt: &Attempt) -> Result<Outcome, ApiError> {
    let result = decide_unaudited(state, attempt).await;
    let verdict = match &result {
        Ok(outcome) => Ok(outcome.as_str().to_string()),
        // The decision is kept; only telling the orchestrator failed.
        Err(ApiError::BadGateway(_)) if attempt.approve => Ok("approved; resume pending".to_string()),
        Err(ApiError::BadGateway(_)) => Ok("rejected; resume pending".to_string()),
        Err(err) => Err(audit::refusal(err)),
    };
    audit(state, attempt, attempt.action(), verdict).await;
    result
}

async fn decide_unaudited(state: &ApiState, attempt: &Attempt) -> Result<Outcome, ApiError> {
    let (run, gate) = run_and_gate(state, &attempt.run_id, &attempt.gate).await?;
    for _ in 0..5 {
        let record = state.store.get_gate(&run.id, gate).await?;
        let run = state
            .store
            .get_run(&run.id)
            .await?
            .ok_or_else(|| ApiError::not_found("run"))?;
        match record {
            Some(GateRecord {
                status: GateStatus::Awaiting,
                requested_at,
                ..
            }) if run.status == gate.awaiting_status() => {
                if gate == Gate::Workflow && attempt.approve {
                    crate::budget::check_proposal(state, &proposed_start(&run)?).await?;
                }
                let decision = decision(&run, gate, attempt)?;
                if state.store.decide(&decision).await? {
                    state.metrics.gate_decided(
                        &run.project,
                        gate,
                        attempt.approve,
                        attempt.credential.via(),
                        requested_at,
                    );
                    if let Some((_, to)) = decision.run_move {
                        state.metrics.run_ended(&run.id, &run.project, to);
                    }
                    tracing::info!(target: LOG_TARGET, runId = %run.id, %gate, decision = if attempt.approve { "approve" } else { "reject" }, approver = %attempt.credential.describe(), note = ?attempt.note, via = attempt.credential.via(), "gate decided");
                    if decision.command.is_some() {
                        deliver(state, &run.id, gate).await?;
                    }
                    return Ok(if attempt.approve {
                        Outcome::Approved
                    } else {
                        Outcome::Rejected
                    });
                }
            }
            Some(
                record @ GateRecord {
                    status: GateStatus::Approved | GateStatus::Rejected,
                    ..
                },
            ) => {
                let approved = record.status == GateStatus::Approved;
                let earlier = GateDecision::of(approved);
                if GateDecision::of(attempt.approve).again(earlier) == Repeated::Conflict {
                    return Err(ApiError::Conflict(format!(
                        "the {gate} gate was already {}",
                        record.status.as_str()
                    )));
                }
                // The same decision again: no second decision, but a
                // decision the orchestrator has not acknowledged is sent again.
                if record.delivered == Some(false) {
                    deliver(state, &run.id, gate).await?;
                }
                return Ok(if approved {
                    Outcome::AlreadyApproved
                } else {
                    Outcome::AlreadyRejected
                });
            }
            _ => {
                return Err(ApiError::Conflict(format!(
                    "the {gate} gate is not awaiting a decision; the run is {}",
                    run.status
                )));
            }
        }
    }
    Err(ApiError::Conflict("the gate is changing; try again".into()))
}

/// Sends the run's pending commands now; 502 (decision kept) if the
/// orchestrator cannot be reached.
async fn deliver(state: &ApiState, run_id: &str, gate: Gate) -> Result<(), ApiError> {
    commands::deliver_pending(state, run_id).await.map_err(|error| {
        tracing::error!(target: LOG_TARGET, runId = %run_id, %gate, %error, "failed to resume run; the decision is kept and will be delivered");
        ApiError::BadGateway("failed to resume run".into())
    })
}

/// What deciding `gate` of `run` changes.
fn decision(run: &Run, gate: Gate, attempt: &Attempt) -> Result<Decision, ApiError> {
    let rejected_artifact = || {
        Artifact::new(
            &run.id,
            "run.rejected",
            None,
            json!({"gate": gate, "reason": attempt.reason, "approver": attempt.credential.describe(), "note": attempt.note}),
        )
    };
    let base = Decision {
        run_id: run.id.clone(),
        gate,
        approve: attempt.approve,
        approver: Some(attempt.credential.describe()),
        note: attempt.note.clone(),
        reason: attempt.reason.clone(),
        run_move: None,
        artifact: None,
        command: None,
    };
    Ok(match (gate, attempt.approve) {
        (Gate::Workflow, true) => Decision {
            run_move: Some((RunStatus::PendingWorkflow, RunStatus::Pending)),
            command: Some(NewCommand::new(
                &run.id,
                ExecutionCommand::Start(Box::new(proposed_start(run)?)),
            )),
            ..base
        },
        (Gate::Workflow, false) => Decision {
            run_move: Some((RunStatus::PendingWorkflow, RunStatus::Rejected)),
            artifact: Some(rejected_artifact()),
            ..base
        },
        (_, approve) => Decision {
            run_move: (!approve).then(|| (gate.awaiting_status(), RunStatus::Rejected)),
            artifact: (!approve).then(rejected_artifact),
            command: Some(NewCommand::new(
                &run.id,
                ExecutionCommand::Resume(ResumeExecution {
                    gate,
                    decision: GateDecision::of(approve),
                    approver: Some(attempt.credential.describe()),
                    reason: attempt.reason.clone(),
                }),
            )),
            ..base
        },
    })
}

/// The start of a proposed run: exactly the approved graph. A proposal
/// without a usable graph is refused (409), never approved into a stuck run.
fn proposed_start(run: &Run) -> Result<StartExecution, ApiError> {
    let proposal = &run.payload["metadata"]["workflow_proposal"];
    let refuse = |why: String| ApiError::Conflict(format!("the workflow proposal cannot start: {why}"));
    let graph = GraphSpec {
        pipeline: serde_json::from_value(proposal["pipeline"].clone())
            .map_err(|e| refuse(format!("no pipeline ({e})")))?,
        hitl_gates: serde_json::from_value(proposal["gates"].clone()).map_err(|e| refuse(format!("no gates ({e})")))?,
    };
    graph::nodes(&graph).map_err(|e| refuse(e.to_string()))?;
    let metadata = &run.payload["metadata"];
    Ok(StartExecution {
        run_id: run.id.clone(),
        project: run.project.clone(),
        graph_spec: graph,
        project_spec: serde_json::from_value(metadata["project_spec"].clone())
            .map_err(|e| refuse(format!("no project spec ({e})")))?,
        providers_mode: serde_json::from_value::<ProviderMode>(metadata["providers"]["mode"].clone())
            .map_err(|e| refuse(format!("no provider mode ({e})")))?,
        input: proposal.get("input").cloned().unwrap_or(Value::Null),
        videos: run.result["videos"].as_array().cloned().unwrap_or_default(),
        traceparent: metadata["traceparent"].as_str().map(str::to_owned),
    })
}

/// The gate as `GET /v1/runs/{runId}` shows it.
pub fn gate_view(record: &GateRecord) -> Value {
    json!({
        "gate": record.gate,
        "status": record.status.as_str(),
        "requestedAt": record.requested_at,
        "resolvedAt": record.resolved_at,
        "decision": record.decision,
        "approver": record.approver,
        "note": record.note,
        "reason": record.reason,
        "delivered": record.delivered,
    })
}
