//! Chat with Brendan: each turn is recorded in the user's transcript, sent
//! to the orchestrator with the user's recent messages and runs, and his
//! actions become runs (held at the workflow gate, with a signed link) or
//! gate decisions. Messages for a chat channel (Telegram, an incoming
//! webhook) are queued with the message and pushed by [`push_loop`], so a
//! slow or down channel never holds up a turn or a run.

use std::time::Duration;

use chrono::Utc;
use myloware_core::Gate;
use myloware_core::auth::{Permission, Principal};
use myloware_core::backoff::Backoff;
use myloware_core::config::Config;
use myloware_core::wire::{ChatAction, ChatLine, ChatProject, ChatRun, ChatTurn, Decision as Verdict};
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::error::ApiError;
use crate::hitl::{self, Attempt, Credential};
use crate::runs::{self, RunInput, RunOptions, StartRunRequest};
use crate::state::ApiState;
use crate::store::{Channel, ChatDelivery, ChatMessage, GateStatus, Push, PushOutcome, Run, RunQuery, now};

/// Limits of a turn.
pub const MAX_MESSAGE_CHARS: usize = 4000;
pub const MAX_USER_ID_CHARS: usize = 128;
/// Messages of the transcript Brendan sees.
const HISTORY: u32 = 20;
/// Runs of the user Brendan sees.
const RUNS: u32 = 10;

/// A link to a gate, as a chat reply carries it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatLink {
    pub run_id: String,
    pub gate: Gate,
    pub approval_url: String,
}

/// `POST /v1/chat/brendan`'s answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChatResponse {
    pub response: String,
    pub run_ids: Vec<String>,
    pub links: Vec<ChatLink>,
}

/// Checks a user id: 1 to 128 characters of letters, digits and `_-.:@`.
pub fn validate_user_id(user_id: &str) -> Result<(), String> {
    let n = user_id.chars().count();
    if n == 0 || n > MAX_USER_ID_CHARS {
        return Err(format!("must be 1 to {MAX_USER_ID_CHARS} characters"));
    }
    if !user_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '@'))
    {
        return Err("may contain only letters, digits and _ - . : @".into());
    }
    Ok(())
}

/// Where the chat turn came from: the HTTP API (with the caller's key)
/// answers in the response, Telegram in the user's Telegram chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Api { key: Principal },
    Telegram { chat_id: String },
}

impl Origin {
    /// Who is chatting, as the audit names a credential.
    fn credential(&self) -> Credential {
        match self {
            Origin::Api { key } => Credential::ChatKey(key.clone()),
            Origin::Telegram { chat_id } => Credential::Telegram(chat_id.clone()),
        }
    }

    /// The credential a gate decision typed in this chat is made with, or
    /// why this chat may not decide gates.
    fn decision_credential(&self, config: &Config) -> Result<Credential, ApiError> {
        match self {
            Origin::Api { key } if key.allows(Permission::Decide) => Ok(self.credential()),
            Origin::Api { key } => Err(ApiError::Forbidden(format!(
                "the key {:?} ({}) may not decide gates; ask an approver",
                key.name, key.role
            ))),
            Origin::Telegram { chat_id } if config.chat.telegram_approver_chat_ids.contains(chat_id) => {
                Ok(self.credential())
            }
            Origin::Telegram { .. } => Err(ApiError::Forbidden(
                "this chat may not decide gates (it is not in TELEGRAM_APPROVER_CHAT_IDS)".into(),
            )),
        }
    }
}

/// A message as the LLM may see it: approval links and tokens are
/// replaced, so no live credential ever leaves for the LLM provider (or
/// its logs, or LangSmith).
pub fn without_credentials(text: &str) -> String {
    text.split_inclusive(char::is_whitespace)
        .map(|word| {
            let bare = word.trim_end();
            let looks_like_link = bare.contains("token=") || (bare.contains("://") && bare.contains("/v1/hitl/"));
            if looks_like_link || is_token_like(bare) {
                format!("[approval link]{}", &word[bare.len()..])
            } else {
                word.to_string()
            }
        })
        .collect()
}

/// A HITL token (`{exp}.{64 hex}`) or a bare hex secret of that size.
fn is_token_like(word: &str) -> bool {
    let word = word.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let hex = word.rsplit('.').next().unwrap_or_default();
    hex.len() >= 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
}

fn message(user_id: &str, role: &str, text: String) -> ChatMessage {
    ChatMessage {
        user_id: user_id.to_string(),
        role: role.into(),
        text,
        run_id: None,
        gate: None,
        link: None,
        created_at: now(),
        pushes: Vec::new(),
    }
}

/// The user's newest runs.
async fn recent_runs(state: &ApiState, user_id: &str) -> Result<Vec<Run>, ApiError> {
    let query = RunQuery {
        user_id: Some(user_id.to_string()),
        limit: RUNS,
        ..RunQuery::default()
    };
    Ok(state.store.list_runs(&query).await?)
}

/// The user's recent runs awaiting a decision, with the gate each waits at.
async fn awaiting_gates(state: &ApiState, user_id: &str) -> Result<Vec<(Run, Gate)>, ApiError> {
    let mut waiting = Vec::new();
    for run in recent_runs(state, user_id).await? {
        if let Some(gate) = awaiting_gate(state, &run).await? {
            waiting.push((run, gate));
        }
    }
    Ok(waiting)
}

/// The gate `run` waits at for a decision, if any.
async fn awaiting_gate(state: &ApiState, run: &Run) -> Result<Option<Gate>, ApiError> {
    if !run.status.is_awaiting_gate() {
        return Ok(None);
    }
    let gates = state.store.list_gates(&run.id).await?;
    Ok(gates
        .into_iter()
        .find(|g| g.status == GateStatus::Awaiting)
        .map(|g| g.gate))
}

/// What Brendan sees of a run.
async fn chat_run(state: &ApiState, run: Run) -> Result<ChatRun, ApiError> {
    let awaiting_gate = awaiting_gate(state, &run).await?;
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(|u| u.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    Ok(ChatRun {
        publish_urls: strings(&run.result["publishUrls"]),
        error: run.result["error"]["message"].as_str().map(str::to_owned),
        input: run.payload["input"].clone(),
        run_id: run.id,
        project: run.project,
        status: run.status.to_string(),
        awaiting_gate,
        created_at: run.created_at.to_rfc3339(),
    })
}

/// One turn of `user_id` with Brendan: the root span of its trace (a run
/// it proposes is a child, so chat → approval → publish is one trace).
#[tracing::instrument(name = "brendan-chat", skip_all, fields(user_id = %user_id, langsmith.span.kind = "chain"))]
pub async fn turn(state: &ApiState, user_id: &str, text: &str, origin: &Origin) -> Result<ChatResponse, ApiError> {
    // A user's turns run one at a time (in this process), so each sees
    // the one before; messages are never lost either way (each is its own
    // insert).
    let _turn = state.chat_locks.lock(user_id).await;
    let history = state.store.chat_messages(user_id, HISTORY).await?;
    state
        .store
        .append_chat(&message(user_id, "user", text.to_string()))
        .await?;

    let recent = recent_runs(state, user_id).await?;
    let mut runs = Vec::with_capacity(recent.len());
    for run in recent {
        runs.push(chat_run(state, run).await?);
    }
    let request = ChatTurn {
        user_id: user_id.to_string(),
        message: without_credentials(text),
        history: history
            .into_iter()
            .map(|m| ChatLine {
                role: m.role,
                text: without_credentials(&m.text),
            })
            .collect(),
        runs,
        projects: state
            .catalog
            .projects
            .values()
            .map(|p| ChatProject {
                project: p.project.clone(),
                title: p.title.clone(),
                description: p.description.clone(),
                runnable: p.is_runnable(),
            })
            .collect(),
    };
    let reply = state.orchestrator.chat(&request).await.map_err(|err| {
        tracing::warn!(user = %user_id, error = %err, "chat turn failed");
        ApiError::BadGateway("Brendan is unavailable: the orchestrator did not answer; try again shortly".into())
    })?;

    let mut lines = vec![reply.reply.trim().to_string()];
    let mut run_ids = Vec::new();
    let mut links = Vec::new();
    for action in reply.actions {
        match action {
            ChatAction::ProposeRun { project, input, skip } => {
                match propose(state, user_id, &project, input, skip).await {
                    // A link is a credential: only a chat that may decide gets one.
                    Ok(run_id) if origin.decision_credential(&state.config).is_ok() => {
                        let link = hitl::mint(state, &run_id, Gate::Workflow);
                        lines.push(format!("Approve the plan: {}", link.approval_url));
                        run_ids.push(run_id);
                        links.push(ChatLink {
                            run_id: link.run_id,
                            gate: link.gate,
                            approval_url: link.approval_url,
                        });
                    }
                    Ok(run_id) => {
                        lines.push(format!(
                            "Run {run_id} waits for an approver at its workflow gate (`mw hitl pending`)."
                        ));
                        run_ids.push(run_id);
                    }
                    Err(err) => lines.push(format!("I could not set that run up: {}", describe(&err))),
                }
            }
            ChatAction::ResendLinks => {
                // Links are credentials: only a chat that may decide gets them.
                if let Err(err) = origin.decision_credential(&state.config) {
                    lines.push(describe(&err));
                    continue;
                }
                let waiting = awaiting_gates(state, user_id).await?;
                if waiting.is_empty() {
                    lines.push("None of your runs is waiting for a decision.".into());
                }
                for (run, gate) in waiting {
                    let link = hitl::mint(state, &run.id, gate);
                    lines.push(format!(
                        "Run {} ({}), {gate} gate: {}",
                        run.id, run.project, link.approval_url
                    ));
                    run_ids.push(run.id);
                    links.push(ChatLink {
                        run_id: link.run_id,
                        gate: link.gate,
                        approval_url: link.approval_url,
                    });
                }
            }
            ChatAction::DecideGate {
                approve,
                run_id,
                gate,
                reason,
            } => {
                let verdict = if approve { Verdict::Approve } else { Verdict::Reject };
                match decide(state, user_id, origin, verdict, run_id, gate, reason).await {
                    Ok(done) => {
                        run_ids.push(done.0.clone());
                        lines.push(done.1);
                    }
                    Err(err) => lines.push(format!("That did not go through: {}", describe(&err))),
                }
            }
            ChatAction::ReviseGate { run_id, gate, feedback } => {
                match decide(state, user_id, origin, Verdict::Revise, run_id, gate, Some(feedback)).await {
                    Ok(done) => {
                        run_ids.push(done.0.clone());
                        lines.push(done.1);
                    }
                    Err(err) => lines.push(format!("That did not go through: {}", describe(&err))),
                }
            }
        }
    }
    let response = lines
        .into_iter()
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    let mut answer = message(user_id, "assistant", response.clone());
    if let Some(link) = links.first() {
        answer.run_id = Some(link.run_id.clone());
        answer.gate = Some(link.gate.as_str().into());
        answer.link = Some(link.approval_url.clone());
    }
    answer_to(state, answer, origin).await?;
    Ok(ChatResponse {
        response,
        run_ids,
        links,
    })
}

/// Records Brendan's message and, for a Telegram user, queues it for
/// their chat.
async fn answer_to(state: &ApiState, mut answer: ChatMessage, origin: &Origin) -> Result<(), ApiError> {
    if let Origin::Telegram { chat_id } = origin {
        answer.pushes.push(Push {
            channel: Channel::Telegram,
            target: chat_id.clone(),
        });
    }
    state.store.append_chat(&answer).await?;
    if !answer.pushes.is_empty() {
        state.pushes.notify_one();
    }
    Ok(())
}

/// A message from Brendan outside a turn's answer (an apology when the
/// turn failed).
pub async fn tell(state: &ApiState, user_id: &str, origin: &Origin, text: String) -> Result<(), ApiError> {
    answer_to(state, message(user_id, "assistant", text), origin).await
}

/// An error as a sentence for the chat.
fn describe(err: &ApiError) -> String {
    match err {
        ApiError::Validation(errors) => errors.iter().map(|e| e.msg.clone()).collect::<Vec<_>>().join("; "),
        other => other.to_string(),
    }
}

/// A proposal becomes a run held at the workflow gate; its id.
async fn propose(
    state: &ApiState,
    user_id: &str,
    project: &str,
    input: serde_json::Value,
    skip: Vec<myloware_core::project::Persona>,
) -> Result<String, ApiError> {
    let input: RunInput = serde_json::from_value(input)
        .map_err(|err| ApiError::BadRequest(format!("the proposed input is not valid: {err}")))?;
    let started = runs::start_run(
        state,
        runs::Origin::Chat,
        StartRunRequest {
            project: project.to_string(),
            input,
            options: RunOptions {
                user_id: Some(user_id.to_string()),
                require_workflow_approval: true,
                skip,
                ..RunOptions::default()
            },
        },
        None,
    )
    .await?;
    Ok(started.run.id)
}

/// "approve"/"reject"/"change: …" in chat: decides the user's gate (the
/// named one, or the newest awaiting). The run id and a sentence.
async fn decide(
    state: &ApiState,
    user_id: &str,
    origin: &Origin,
    verdict: Verdict,
    run_id: Option<String>,
    gate: Option<Gate>,
    reason: Option<String>,
) -> Result<(String, String), ApiError> {
    let runs = recent_runs(state, user_id).await?;
    let mut target = None;
    for run in runs {
        if run_id.as_ref().is_some_and(|id| *id != run.id) || !run.status.is_awaiting_gate() {
            continue;
        }
        let awaiting = state
            .store
            .list_gates(&run.id)
            .await?
            .into_iter()
            .find(|g| g.status == GateStatus::Awaiting && gate.is_none_or(|wanted| wanted == g.gate));
        if let Some(record) = awaiting {
            target = Some((run.id, record.gate));
            break;
        }
    }
    let Some((run_id, gate)) = target else {
        return Err(ApiError::Conflict("none of your runs is waiting for a decision".into()));
    };
    let mut attempt = Attempt {
        run_id: run_id.clone(),
        gate: gate.as_str().into(),
        verdict,
        note: Some(format!("chat user {user_id}")),
        reason,
        credential: origin.credential(),
        chat_user: Some(user_id.to_string()),
        round: None,
        ip: None,
        user_agent: None,
    };
    // A chat that may not decide is refused, and the attempt audited.
    match origin.decision_credential(&state.config) {
        Ok(credential) => attempt.credential = credential,
        Err(err) => {
            hitl::audit(state, &attempt, attempt.action(), Err(crate::audit::refusal(&err))).await;
            return Err(err);
        }
    }
    let verb = match verdict {
        Verdict::Revise => "sent back for changes",
        verdict => hitl::past(verdict),
    };
    let sentence = match hitl::decide(state, &attempt).await {
        Ok(outcome) => match outcome.progress() {
            Some(p) => format!(
                "Your approval of the {gate} gate of run {run_id} is counted: {} of {} approvals.",
                p.approvals, p.required
            ),
            None => format!("The {gate} gate of run {run_id} is {verb}."),
        },
        // The decision is kept and delivered when the orchestrator is back.
        Err(ApiError::BadGateway(_)) => {
            format!("The {gate} gate of run {run_id} is {verb}; the run resumes as soon as the orchestrator is back.")
        }
        Err(err) => return Err(err),
    };
    Ok((run_id, sentence))
}

/// Pushes at most this often per delivery, then gives up.
const MAX_PUSH_ATTEMPTS: i64 = 8;
/// A claimed push is not taken by another instance for this long.
const PUSH_HOLD_SECS: i64 = 60;

/// Between failed pushes: 1 s doubling, capped at 5 min.
const PUSH_BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));

/// Background task: pushes queued chat messages until `shutdown` fires.
pub async fn push_loop(state: ApiState, every: Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        push_due(&state).await;
        tokio::select! {
            _ = state.pushes.notified() => {}
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Attempts every due push once, concurrently (a channel that hangs holds
/// up only its own messages).
pub async fn push_due(state: &ApiState) {
    let due = match state.store.chat_deliveries_due(Utc::now(), 50).await {
        Ok(due) => due,
        Err(err) => {
            tracing::error!(error = %err, "cannot read queued chat pushes");
            return;
        }
    };
    let mut attempts = tokio::task::JoinSet::new();
    for delivery in due {
        let state = state.clone();
        attempts.spawn(async move { push_one(&state, delivery).await });
    }
    while attempts.join_next().await.is_some() {}
}

/// One attempt of one push, claimed first so no other instance sends it too.
async fn push_one(state: &ApiState, delivery: ChatDelivery) {
    let hold = Utc::now() + chrono::Duration::seconds(PUSH_HOLD_SECS);
    match state
        .store
        .claim_chat_delivery(delivery.id, delivery.attempts, hold)
        .await
    {
        Ok(true) => {}
        Ok(false) => return,
        Err(err) => {
            tracing::error!(error = %err, "cannot claim a chat push");
            return;
        }
    }
    let attempts = delivery.attempts + 1;
    let outcome = match send(state, &delivery).await {
        Ok(()) => PushOutcome::Delivered,
        Err(Failure {
            error,
            retry_after,
            permanent: false,
        }) if attempts < MAX_PUSH_ATTEMPTS => PushOutcome::Retry {
            error,
            at: Utc::now() + retry_after.unwrap_or_else(|| PUSH_BACKOFF.after(attempts)),
        },
        Err(Failure { error, .. }) => PushOutcome::GaveUp { error },
    };
    match &outcome {
        PushOutcome::Delivered => {
            tracing::info!(channel = %delivery.channel, message = delivery.message_seq, "chat message pushed")
        }
        PushOutcome::Retry { error, at } => {
            tracing::warn!(channel = %delivery.channel, message = delivery.message_seq, attempts, %error, retry_at = %at, "chat push failed; will retry")
        }
        PushOutcome::GaveUp { error } => {
            tracing::error!(channel = %delivery.channel, message = delivery.message_seq, attempts, %error, "chat push failed; giving up")
        }
    }
    if let Err(err) = state.store.finish_chat_delivery(delivery.id, &outcome).await {
        tracing::error!(error = %err, "cannot record a chat push");
    }
}

struct Failure {
    error: String,
    retry_after: Option<chrono::Duration>,
    /// The channel refused the message itself (a 4xx other than 429):
    /// sending it again cannot help.
    permanent: bool,
}

impl Failure {
    fn new(error: impl Into<String>) -> Failure {
        Failure {
            error: error.into(),
            retry_after: None,
            permanent: false,
        }
    }
}

/// One attempt: Telegram's `sendMessage`, or `{"text"}` to the webhook.
async fn send(state: &ApiState, delivery: &ChatDelivery) -> Result<(), Failure> {
    let chat = &state.config.chat;
    let request = match delivery.channel {
        Channel::Telegram => {
            let Some(token) = &chat.telegram_bot_token else {
                return Err(Failure::new("TELEGRAM_BOT_TOKEN is not set"));
            };
            let base = chat.telegram_base_url.as_str().trim_end_matches('/');
            let url = format!("{base}/bot{}/sendMessage", token.expose_secret());
            state.http.post(url).json(&serde_json::json!({
                "chat_id": delivery.target,
                "text": delivery.text,
                "disable_web_page_preview": true,
            }))
        }
        Channel::Webhook => state
            .http
            .post(&delivery.target)
            .json(&serde_json::json!({"text": delivery.text})),
    };
    // Errors name the URL, which holds the bot token: keep only the kind.
    let response = request.send().await.map_err(|err| {
        Failure::new(if err.is_timeout() {
            "timed out"
        } else if err.is_connect() {
            "connection failed"
        } else {
            "request failed"
        })
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let retry_after = body["parameters"]["retry_after"]
        .as_i64()
        .map(chrono::Duration::seconds);
    let detail = body["description"].as_str().unwrap_or("");
    Err(Failure {
        error: format!("{} answered {status} {detail}", delivery.channel)
            .trim()
            .to_string(),
        retry_after,
        permanent: status.is_client_error() && status.as_u16() != 429,
    })
}
