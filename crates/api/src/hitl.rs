//! Human approval at gates: signed links, decisions (each wait at a gate
//! decided once, on the gate's locked row), the gate's policy (how many
//! approvers, who, whether the owner may approve, how many revisions), the
//! audit of every attempt ([`crate::audit`]), and delivery of the decision
//! to the orchestrator (kept and retried if it is down).

use chrono::Utc;
use myloware_core::auth::{ApiKeys, Principal};
use myloware_core::graph;
use myloware_core::project::GatePolicy;
use myloware_core::signing;
use myloware_core::wire::{
    Decision as Verdict, ExecutionCommand, GraphSpec, Repeated, ResumeExecution, StartExecution,
};
use myloware_core::{Gate, ProviderMode, RunStatus};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::ApiState;
use crate::store::{
    Artifact, AuditAction, AuditEntry, Decided, Decision, GateRecord, GateStatus, NewCommand, RawArtifact, Run, now,
};
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
    /// `POST` with `{"feedback": "…"}` to request changes.
    pub revise_url: String,
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
        revise_url: url("revise"),
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
    /// A valid API key (with a role that may decide).
    ApiKey(Principal),
    /// A valid link token, by its fingerprint.
    Token(String),
    /// "approve" in chat through `POST /v1/chat/brendan`, by the key.
    ChatKey(Principal),
    /// "approve" in a Telegram chat listed in `TELEGRAM_APPROVER_CHAT_IDS`.
    Telegram(String),
    /// The project's `gateTimeoutDecision`, taken when a gate waited past
    /// `GATE_TIMEOUT_HOURS` (`crate::expiry`).
    Timeout,
    None,
}

impl Credential {
    /// A link token, by the fingerprint of its normal form (the token's
    /// hex is read without regard to case or surrounding space, so each
    /// spelling is the same credential).
    pub fn token(token: &str) -> Credential {
        Credential::Token(ApiKeys::fingerprint(&token.trim().to_ascii_lowercase()))
    }

    /// Who an approval counts as, for a gate needing several: the
    /// credential, except that every link token together is one approver
    /// (`link`): a link names no one, and anyone holding one can mint more.
    pub fn counted_as(&self) -> String {
        match self {
            Credential::Token(_) => "link".into(),
            other => other.describe(),
        }
    }

    /// `key:<name>`, `token:<fingerprint>`, `telegram:<chat id>` or `none`.
    pub fn describe(&self) -> String {
        match self {
            Credential::ApiKey(key) | Credential::ChatKey(key) => format!("key:{}", key.name),
            Credential::Token(fp) => format!("token:{fp}"),
            Credential::Telegram(chat_id) => format!("telegram:{chat_id}"),
            Credential::Timeout => "system:gate-timeout".into(),
            Credential::None => "none".into(),
        }
    }

    /// Whether a gate's `approvers` entry names this credential: a key by
    /// name (`alice`, `key:alice`) or role (`role:approver`), a Telegram
    /// chat (`telegram:<id>`). A link's token names no one.
    fn is_named_by(&self, entry: &str) -> bool {
        match self {
            Credential::ApiKey(key) | Credential::ChatKey(key) => match entry.split_once(':') {
                Some(("role", role)) => role == key.role.as_str(),
                Some(("key", name)) => name == key.name,
                Some(_) => false,
                None => entry == key.name,
            },
            Credential::Telegram(chat_id) => entry.strip_prefix("telegram:") == Some(chat_id.as_str()),
            _ => false,
        }
    }

    /// Whether this credential is the run's owner: the key that started it
    /// (`metadata.startedBy`), or its `userId` (the chat user, the Telegram
    /// chat, or a key by name).
    fn owns(&self, run: &Run, chat_user: Option<&str>) -> bool {
        if run.payload["metadata"]["startedBy"].as_str() == Some(self.describe().as_str()) {
            return true;
        }
        let Some(owner) = run.user_id.as_deref() else {
            return false;
        };
        chat_user == Some(owner)
            || match self {
                Credential::ApiKey(key) | Credential::ChatKey(key) => {
                    owner == key.name || owner.strip_prefix("key:") == Some(key.name.as_str())
                }
                Credential::Telegram(chat_id) => owner == crate::notify::telegram_user(chat_id),
                _ => false,
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
    pub verdict: Verdict,
    /// What the decider says about themselves (the free-text `approver`
    /// field): kept as a note, never as the approver.
    pub note: Option<String>,
    /// Why (a rejection), or the changes asked for (a revision).
    pub reason: Option<String>,
    pub credential: Credential,
    /// The chat user deciding in chat (for the gate's `selfApproval`).
    pub chat_user: Option<String>,
    /// The gate's revisions when the decider saw its preview, if known.
    pub round: Option<u32>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Attempt {
    /// `approve`, `reject` or `revise`, as the audit names it.
    pub fn action(&self) -> AuditAction {
        match self.verdict {
            Verdict::Approve => AuditAction::Approve,
            Verdict::Reject => AuditAction::Reject,
            Verdict::Revise => AuditAction::Revise,
        }
    }
}

/// What a decision came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Decided (approved, rejected, or sent back for changes).
    Decided(Verdict),
    /// Decided before, the same way: nothing changed.
    Already(Verdict),
    /// An approval of a gate that needs several, counted.
    Counted(Progress),
    /// This approver's approval was counted before.
    AlreadyCounted(Progress),
}

/// Approvals so far of a gate needing `required`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub approvals: u32,
    pub required: u32,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Decided(Verdict::Approve) => "approved",
            Self::Decided(Verdict::Reject) => "rejected",
            Self::Decided(Verdict::Revise) => "revised",
            Self::Already(Verdict::Approve) => "already_approved",
            Self::Already(Verdict::Reject) => "already_rejected",
            Self::Already(Verdict::Revise) => "already_revised",
            Self::Counted(_) => "approval_counted",
            Self::AlreadyCounted(_) => "already_counted",
        }
    }

    /// The approvals so far, for a gate that needs several.
    pub fn progress(self) -> Option<Progress> {
        match self {
            Self::Counted(progress) | Self::AlreadyCounted(progress) => Some(progress),
            _ => None,
        }
    }

    /// What the decider is told.
    pub fn message(self) -> String {
        match self {
            Self::Decided(Verdict::Approve) => "Thank you: the run continues.".into(),
            Self::Decided(Verdict::Reject) => "The run was stopped.".into(),
            Self::Decided(Verdict::Revise) => {
                "Changes requested: the run goes back to work and waits here again with a new preview.".into()
            }
            Self::Already(verdict) => format!("This gate was already {}; nothing changed.", past(verdict)),
            Self::Counted(p) => format!(
                "Approval {} of {} counted; the run continues once {} more approve.",
                p.approvals,
                p.required,
                p.required - p.approvals
            ),
            Self::AlreadyCounted(p) => format!(
                "Your approval was already counted ({} of {}); nothing changed.",
                p.approvals, p.required
            ),
        }
    }
}

/// `approved`, `rejected`, `revised`.
pub fn past(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Approve => "approved",
        Verdict::Reject => "rejected",
        Verdict::Revise => "revised",
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
        Ok(outcome @ (Outcome::Counted(p) | Outcome::AlreadyCounted(p))) => Ok(format!(
            "{}: {} of {} approvals",
            outcome.as_str(),
            p.approvals,
            p.required
        )),
        Ok(outcome) => Ok(outcome.as_str().to_string()),
        // The decision is kept; only telling the orchestrator failed.
        Err(ApiError::BadGateway(_)) => Ok(format!("{}; resume pending", past(attempt.verdict))),
        Err(err) => Err(audit::refusal(err)),
    };
    audit(state, attempt, attempt.action(), verdict).await;
    result
}

/// The longest feedback a revision takes, in characters.
pub const MAX_FEEDBACK_CHARS: usize = 2000;

/// A revision says what to change, in at most [`MAX_FEEDBACK_CHARS`].
fn check_feedback(feedback: Option<&str>) -> Result<(), ApiError> {
    match feedback {
        None | Some("") => Err(ApiError::invalid(&["body", "feedback"], "say what to change")),
        Some(text) if text.chars().count() > MAX_FEEDBACK_CHARS => Err(ApiError::invalid(
            &["body", "feedback"],
            format!("at most {MAX_FEEDBACK_CHARS} characters"),
        )),
        Some(_) => Ok(()),
    }
}

/// The policy of `gate` in the run's project, as the catalog says now (a
/// policy changed while a gate waits applies to its next decision).
pub fn policy(state: &ApiState, project: &str, gate: Gate) -> GatePolicy {
    state
        .catalog
        .get(project)
        .map(|spec| spec.gate_policy(gate))
        .unwrap_or_default()
}

/// Refuses (403) a decider the gate's policy does not allow, and (409) a
/// revision the gate has no room for. The project's timeout decision is
/// the system's, not a person's: always allowed.
fn check_policy(
    policy: &GatePolicy,
    run: &Run,
    gate: Gate,
    record: &GateRecord,
    attempt: &Attempt,
) -> Result<(), ApiError> {
    if matches!(attempt.credential, Credential::Timeout) {
        return Ok(());
    }
    if !policy.approvers.is_empty() && !policy.approvers.iter().any(|a| attempt.credential.is_named_by(a)) {
        let how = if matches!(attempt.credential, Credential::Token(_)) {
            "; a link names no one: decide with your API key or in chat"
        } else {
            ""
        };
        return Err(ApiError::Forbidden(format!(
            "the {gate} gate takes decisions only from {}{how}",
            policy.approvers.join(", ")
        )));
    }
    if attempt.verdict == Verdict::Approve && !policy.self_approval {
        if matches!(attempt.credential, Credential::Token(_)) {
            return Err(ApiError::Forbidden(format!(
                "the {gate} gate may not be approved by its run's owner (selfApproval = false), and a link names \
                 no one: approve with your API key or in chat"
            )));
        }
        if attempt.credential.owns(run, attempt.chat_user.as_deref()) {
            return Err(ApiError::Forbidden(format!(
                "the run's owner may not approve its {gate} gate (selfApproval = false); ask another approver"
            )));
        }
    }
    if attempt.verdict == Verdict::Revise {
        if gate == Gate::Workflow {
            return Err(ApiError::Conflict(format!(
                "a proposal is changed with PATCH /v1/runs/{}/proposal, then approved",
                run.id
            )));
        }
        if record.revisions >= policy.max_revisions {
            return Err(ApiError::Conflict(format!(
                "the {gate} gate was sent back for changes {} times, the most its project allows (maxRevisions); \
                 approve or reject it",
                record.revisions
            )));
        }
    }
    Ok(())
}

async fn decide_unaudited(state: &ApiState, attempt: &Attempt) -> Result<Outcome, ApiError> {
    if attempt.verdict == Verdict::Revise {
        check_feedback(attempt.reason.as_deref().map(str::trim))?;
    }
    let (run, gate) = run_and_gate(state, &attempt.run_id, &attempt.gate).await?;
    for _ in 0..5 {
        let record = state.store.get_gate(&run.id, gate).await?;
        let run = state
            .store
            .get_run(&run.id)
            .await?
            .ok_or_else(|| ApiError::not_found("run"))?;
        match record {
            Some(record) if record.status == GateStatus::Awaiting && run.status == gate.awaiting_status() => {
                if let Some(round) = attempt.round.filter(|r| *r != record.revisions) {
                    return Err(ApiError::Conflict(format!(
                        "the {gate} gate's preview changed since it was shown (revision {round}, now {}); \
                         open the link again",
                        record.revisions
                    )));
                }
                let policy = policy(state, &run.project, gate);
                check_policy(&policy, &run, gate, &record, attempt)?;
                // The project's timeout decision decides alone.
                let required = match attempt.credential {
                    Credential::Timeout => 1,
                    _ => policy.approvals_required,
                };
                if gate == Gate::Workflow && attempt.verdict == Verdict::Approve {
                    crate::budget::check_proposal(state, &proposed_start(&run)?).await?;
                }
                let decision = decision(&run, gate, &record, required, attempt)?;
                let progress = |approvals| Progress { approvals, required };
                match state.store.decide(&decision).await? {
                    Decided::Decided => {}
                    Decided::NotAwaiting => continue,
                    Decided::Counted(approvals) => {
                        tracing::info!(target: LOG_TARGET, runId = %run.id, %gate, approvals, required, approver = %attempt.credential.describe(), via = attempt.credential.via(), "gate approval counted");
                        return Ok(Outcome::Counted(progress(approvals)));
                    }
                    Decided::AlreadyCounted(approvals) => return Ok(Outcome::AlreadyCounted(progress(approvals))),
                }
                let verdict = attempt.verdict;
                state.metrics.gate_decided(
                    &run.project,
                    gate,
                    verdict.as_str(),
                    attempt.credential.via(),
                    record.requested_at,
                );
                if let Some((_, to)) = decision.run_move {
                    state.metrics.run_ended(&run.id, &run.project, to);
                }
                tracing::info!(target: LOG_TARGET, runId = %run.id, %gate, decision = verdict.as_str(), approver = %attempt.credential.describe(), note = ?attempt.note, via = attempt.credential.via(), "gate decided");
                if decision.command.is_some() {
                    deliver(state, &run.id, gate).await?;
                }
                return Ok(Outcome::Decided(verdict));
            }
            Some(record) if record.status.decided().is_some() => {
                let earlier = record.status.decided().expect("matched");
                if attempt.verdict.again(earlier) == Repeated::Conflict {
                    let then = match earlier {
                        Verdict::Revise => "; it waits again once the changes are made",
                        _ => "",
                    };
                    return Err(ApiError::Conflict(format!(
                        "the {gate} gate was already {}{then}",
                        past(earlier)
                    )));
                }
                // The same decision again: no second decision, but a
                // decision the orchestrator has not acknowledged is sent again.
                if record.delivered == Some(false) {
                    deliver(state, &run.id, gate).await?;
                }
                return Ok(Outcome::Already(earlier));
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
fn decision(
    run: &Run,
    gate: Gate,
    record: &GateRecord,
    required: u32,
    attempt: &Attempt,
) -> Result<Decision, ApiError> {
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
        verdict: attempt.verdict,
        required,
        round: record.revisions,
        counted_as: attempt.credential.counted_as(),
        approver: Some(attempt.credential.describe()),
        note: attempt.note.clone(),
        reason: attempt.reason.clone(),
        run_move: None,
        artifact: None,
        command: None,
    };
    let resume = |verdict| {
        Some(NewCommand::new(
            &run.id,
            ExecutionCommand::Resume(ResumeExecution {
                gate,
                decision: verdict,
                approver: Some(attempt.credential.describe()),
                reason: attempt.reason.clone(),
                round: record.revisions,
            }),
        ))
    };
    Ok(match (gate, attempt.verdict) {
        (Gate::Workflow, Verdict::Approve) => Decision {
            run_move: Some((RunStatus::PendingWorkflow, RunStatus::Pending)),
            command: Some(NewCommand::new(
                &run.id,
                ExecutionCommand::Start(Box::new(proposed_start(run)?)),
            )),
            ..base
        },
        (Gate::Workflow, _) => Decision {
            run_move: Some((RunStatus::PendingWorkflow, RunStatus::Rejected)),
            artifact: Some(rejected_artifact()),
            ..base
        },
        (_, Verdict::Approve) => Decision {
            command: resume(Verdict::Approve),
            ..base
        },
        (_, Verdict::Reject) => Decision {
            run_move: Some((gate.awaiting_status(), RunStatus::Rejected)),
            artifact: Some(rejected_artifact()),
            command: resume(Verdict::Reject),
            ..base
        },
        // Back to work: the persona's status follows from the orchestrator.
        (_, Verdict::Revise) => Decision {
            run_move: Some((gate.awaiting_status(), RunStatus::Running)),
            artifact: Some(Artifact::new(
                &run.id,
                "gate.revised",
                None,
                json!({"gate": gate, "round": record.revisions + 1, "feedback": attempt.reason,
                       "by": attempt.credential.describe(), "note": attempt.note}),
            )),
            command: resume(Verdict::Revise),
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

/// The gate as `GET /v1/runs/{runId}` shows it, with its policy's
/// approvals so far ("1 of 2") and who may still decide.
pub fn gate_view(record: &GateRecord, policy: &GatePolicy) -> Value {
    json!({
        "revisions": record.revisions,
        "maxRevisions": policy.max_revisions,
        "approvals": record.approvals,
        "approvalsRequired": policy.approvals_required,
        "waitingFor": waiting_for(record, policy, true),
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

/// A request for changes, as the run shows it: what was asked, by whom,
/// and what the work it caused cost (until the gate was reached again).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionView {
    pub gate: Gate,
    pub round: u32,
    pub feedback: Option<String>,
    pub by: Option<String>,
    pub at: chrono::DateTime<Utc>,
    /// Spent from the request to the gate's next wait (or until now).
    pub cost_usd: f64,
}

/// The run's revisions, oldest first (read from its `gate.revised` and
/// `gate.reached` artifacts, and its costs only when it has any).
pub async fn revisions(
    state: &ApiState,
    run_id: &str,
    artifacts: &[RawArtifact],
) -> Result<Vec<RevisionView>, ApiError> {
    let read = |a: &RawArtifact| serde_json::from_str::<Value>(a.data.get()).unwrap_or_default();
    let asked: Vec<(&RawArtifact, Value)> = artifacts
        .iter()
        .filter(|a| a.kind == "gate.revised")
        .map(|a| (a, read(a)))
        .collect();
    if asked.is_empty() {
        return Ok(Vec::new());
    }
    let spent = state.store.run_costs(run_id).await?;
    Ok(asked
        .into_iter()
        .map(|(artifact, data)| {
            let gate: Option<Gate> = data["gate"].as_str().and_then(|g| g.parse().ok());
            let until = artifacts
                .iter()
                .filter(|a| a.kind == "gate.reached" && a.created_at >= artifact.created_at)
                .find(|a| read(a)["gate"].as_str() == gate.map(Gate::as_str))
                .map_or_else(Utc::now, |a| a.created_at);
            let micros: i64 = spent
                .iter()
                .filter(|cost| cost.at >= artifact.created_at && cost.at <= until)
                .map(|cost| cost.usd_micros)
                .sum();
            RevisionView {
                gate: gate.unwrap_or(Gate::Prepublish),
                round: data["round"].as_u64().unwrap_or_default() as u32,
                feedback: data["feedback"].as_str().map(str::to_owned),
                by: data["by"].as_str().map(str::to_owned),
                at: artifact.created_at,
                cost_usd: myloware_core::costs::usd(micros),
            }
        })
        .collect())
}

/// Who is still expected at an awaiting gate whose policy asks for more
/// than anyone's one approval: "1 of 2 approvals; 1 more approval from
/// role:approver". `None` once decided, or when one approval by anyone
/// who may decide does.
/// `names`: whether to say who may approve (not to a link's holder: key
/// names and chat ids are not theirs to know).
pub fn waiting_for(record: &GateRecord, policy: &GatePolicy, names: bool) -> Option<String> {
    let plain = policy.approvals_required <= 1 && policy.approvers.is_empty();
    if record.status != GateStatus::Awaiting || plain {
        return None;
    }
    let missing = policy
        .approvals_required
        .saturating_sub(record.approvals.len() as u32)
        .max(1);
    let plural = if missing == 1 { "approval" } else { "approvals" };
    let from = if policy.approvers.is_empty() || !names {
        String::new()
    } else {
        format!(" from {}", policy.approvers.join(", "))
    };
    Some(format!(
        "{} of {} approvals; {missing} more {plural}{from}",
        record.approvals.len(),
        policy.approvals_required
    ))
}
