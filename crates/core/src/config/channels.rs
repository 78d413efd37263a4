//! The LLM (OpenAI-compatible) and the chat channels (Telegram, a
//! Slack-compatible webhook).

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::Environment;
use super::reader::Reader;
use crate::providers::is_loopback_host;

#[derive(Debug, Clone)]
pub struct LlmConfig {
    pub api_key: Option<SecretString>,
    pub base_url: Url,
    pub model: String,
}

/// Where chat messages go besides the transcript: Telegram and a
/// Slack-compatible incoming webhook. Both optional.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// `TELEGRAM_BOT_TOKEN`: send messages as this bot.
    pub telegram_bot_token: Option<SecretString>,
    /// `TELEGRAM_WEBHOOK_SECRET`: the secret token Telegram sends with each
    /// update (`setWebhook ... secret_token`); without it the Telegram front
    /// door refuses every update.
    pub telegram_webhook_secret: Option<SecretString>,
    /// `TELEGRAM_ALLOWED_CHAT_IDS`: the only chats whose updates are
    /// handled; every other chat is answered `ignored` (nothing run, stored
    /// or replied). Empty: every chat is refused.
    pub telegram_allowed_chat_ids: Vec<String>,
    /// `TELEGRAM_APPROVER_CHAT_IDS` (default: the allowed list): the chats
    /// whose "approve"/"reject" decide gates.
    pub telegram_approver_chat_ids: Vec<String>,
    /// `TELEGRAM_CHAT_ID`: where gate links of users who did not come from
    /// Telegram go (users from Telegram get them in their own chat).
    pub telegram_chat_id: Option<String>,
    /// `TELEGRAM_API_BASE_URL` (`https://api.telegram.org`).
    pub telegram_base_url: Url,
    /// `CHAT_WEBHOOK_URL`: every gate notification is posted here as
    /// `{"text": ...}` (Slack, Mattermost, Discord's `/slack` endpoint).
    pub webhook_url: Option<Url>,
}

pub(super) fn chat_config<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>, environment: Environment) -> ChatConfig {
    let telegram_base_url = r.url("TELEGRAM_API_BASE_URL", "https://api.telegram.org");
    let host = telegram_base_url.host_str().unwrap_or_default().to_string();
    let loopback = is_loopback_host(&host);
    if host != "api.telegram.org" && !(loopback && environment != Environment::Production) {
        r.problem(
            "TELEGRAM_API_BASE_URL",
            format!(
                "host {host:?} is not allowed; use api.telegram.org (loopback hosts are allowed outside production)"
            ),
        );
    }
    let webhook_url = r
        .get("CHAT_WEBHOOK_URL")
        .map(|_| r.url("CHAT_WEBHOOK_URL", "https://invalid.example"));
    if let Some(url) = &webhook_url {
        let loopback = is_loopback_host(url.host_str().unwrap_or_default());
        if url.scheme() != "https" && !(loopback && environment != Environment::Production) {
            r.problem(
                "CHAT_WEBHOOK_URL",
                "must use https (plain http to loopback hosts is allowed outside production)",
            );
        }
    }
    let telegram_webhook_secret = r.secret("TELEGRAM_WEBHOOK_SECRET");
    if let Some(secret) = &telegram_webhook_secret {
        let secret = secret.expose_secret();
        if secret.len() > 256
            || !secret
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            r.problem(
                "TELEGRAM_WEBHOOK_SECRET",
                "Telegram accepts 1 to 256 characters of A-Z, a-z, 0-9, _ and -",
            );
        }
    }
    let telegram_allowed_chat_ids = chat_ids(r, "TELEGRAM_ALLOWED_CHAT_IDS").unwrap_or_default();
    let telegram_approver_chat_ids =
        chat_ids(r, "TELEGRAM_APPROVER_CHAT_IDS").unwrap_or_else(|| telegram_allowed_chat_ids.clone());
    if let Some(stray) = telegram_approver_chat_ids
        .iter()
        .find(|id| !telegram_allowed_chat_ids.contains(id))
    {
        r.problem(
            "TELEGRAM_APPROVER_CHAT_IDS",
            format!("chat {stray} is not in TELEGRAM_ALLOWED_CHAT_IDS; an approver chat must be allowed to chat"),
        );
    }
    ChatConfig {
        telegram_bot_token: r.secret("TELEGRAM_BOT_TOKEN"),
        telegram_webhook_secret,
        telegram_allowed_chat_ids,
        telegram_approver_chat_ids,
        telegram_chat_id: r.get("TELEGRAM_CHAT_ID"),
        telegram_base_url,
        webhook_url,
    }
}

/// A comma-separated list of Telegram chat ids (integers; groups are
/// negative), `None` when unset.
fn chat_ids<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>, var: &'static str) -> Option<Vec<String>> {
    let raw = r.get(var)?;
    let mut ids = Vec::new();
    for id in raw.split(',').map(str::trim).filter(|id| !id.is_empty()) {
        match id.parse::<i64>() {
            Ok(id) => ids.push(id.to_string()),
            Err(_) => r.problem(var, format!("{id:?} is not a Telegram chat id (an integer)")),
        }
    }
    Some(ids)
}
