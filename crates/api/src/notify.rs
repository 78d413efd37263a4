//! What people hear about a run besides its status: its owner in their
//! chat transcript and on their channel, and, for every run, owned or not,
//! the operators' channels (`CHAT_WEBHOOK_URL`; Telegram's
//! `TELEGRAM_CHAT_ID` for owners who are not approvers there). A run
//! without an owner keeps its notices in the transcript of [`OPERATORS`].
//! Each notice is written in the transaction of the change it tells of
//! (a gate reached, a budget hold, published, failed, cancelled), and
//! pushed from the chat outbox (`chat::push_loop`), retried until sent.

use myloware_core::Gate;
use myloware_core::config::Config;

use crate::store::{Channel, ChatMessage, Push, Run, now};

/// The transcript of notices about runs that have no owner
/// (`GET /v1/chat/brendan/mw:operators/messages`).
pub const OPERATORS: &str = "mw:operators";

/// A notice about `run`, to its owner (or [`OPERATORS`]), with the gate and
/// link it is about, if any.
pub fn notice(config: &Config, run: &Run, text: String, gate: Option<(Gate, String)>) -> ChatMessage {
    notice_about(config, &run.id, run.user_id.as_deref(), text, gate)
}

/// [`notice`] about run `run_id` of `owner`, before the run is stored.
pub fn notice_about(
    config: &Config,
    run_id: &str,
    owner: Option<&str>,
    text: String,
    gate: Option<(Gate, String)>,
) -> ChatMessage {
    let user_id = owner.unwrap_or(OPERATORS);
    let (gate, link) = gate.map_or((None, None), |(gate, link)| {
        (Some(gate.as_str().to_string()), Some(link))
    });
    ChatMessage {
        user_id: user_id.to_string(),
        role: "assistant".into(),
        text,
        run_id: Some(run_id.to_string()),
        gate,
        link,
        created_at: now(),
        pushes: pushes(config, user_id),
    }
}

/// A notice for the operators' webhook only (`None` without one), kept in
/// the [`OPERATORS`] transcript: for what the owner heard otherwise.
pub fn webhook_notice(
    config: &Config,
    run_id: &str,
    text: String,
    gate: Option<(Gate, String)>,
) -> Option<ChatMessage> {
    let url = config.chat.webhook_url.as_ref()?;
    let mut notice = notice_about(config, run_id, None, text, gate);
    notice.pushes = vec![Push {
        channel: Channel::Webhook,
        target: url.to_string(),
    }];
    Some(notice)
}

/// A failed run's notice: the reason and how to go on.
pub fn failed(run: &Run, reason: &str) -> String {
    format!(
        "Run {} ({}) failed: {reason}. Continue it from the failed step: mw runs retry {} (or POST /v1/runs/{}/retry)",
        run.id, run.project, run.id, run.id
    )
}

/// A cancelled run's notice.
pub fn cancelled(run: &Run, by: &str, reason: Option<&str>) -> String {
    let reason = reason.map(|r| format!(": {r}")).unwrap_or_default();
    format!("Run {} ({}) was cancelled by {by}{reason}.", run.id, run.project)
}

/// The channels a gate notification for `user_id` goes to.
pub fn pushes(config: &Config, user_id: &str) -> Vec<Push> {
    let chat = &config.chat;
    let mut pushes = Vec::new();
    if chat.telegram_bot_token.is_some() {
        // The notification carries an approval link: a Telegram owner gets
        // it only from an approver chat; otherwise it goes to the operators'
        // chat (`TELEGRAM_CHAT_ID`), as for owners not from Telegram.
        let chat_id = user_id
            .strip_prefix("telegram:")
            .filter(|id| chat.telegram_approver_chat_ids.iter().any(|a| a == id))
            .map(str::to_owned)
            .or_else(|| chat.telegram_chat_id.clone());
        if let Some(chat_id) = chat_id {
            pushes.push(Push {
                channel: Channel::Telegram,
                target: chat_id,
            });
        }
    }
    if let Some(url) = &chat.webhook_url {
        pushes.push(Push {
            channel: Channel::Webhook,
            target: url.to_string(),
        });
    }
    pushes
}

/// The user id of a Telegram chat (its transcript, a run's owner).
pub fn telegram_user(chat_id: &str) -> String {
    format!("telegram:{chat_id}")
}
