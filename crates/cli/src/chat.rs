//! `mw chat <message>`: one turn with Brendan through a running API, for
//! operators at a terminal.

use serde_json::json;

use crate::client::ApiTarget;

/// The chat user of this terminal: `cli:$USER`, or `cli:operator`.
pub fn default_user() -> String {
    let user = std::env::var("USER").unwrap_or_default();
    let user = user.trim();
    if user.is_empty() {
        "cli:operator".into()
    } else {
        format!("cli:{user}")
    }
}

/// Sends `message` as `user` and prints Brendan's reply and his approval
/// links (or the raw answer with `json`).
pub async fn send(target: &ApiTarget, user: &str, message: &str, json: bool) -> anyhow::Result<()> {
    let request = reqwest::Client::new()
        .post(target.url("/v1/chat/brendan"))
        .json(&json!({"user_id": user, "message": message}));
    let body = target.send(request).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    println!("{}", body["response"].as_str().unwrap_or_default());
    for link in body["links"].as_array().into_iter().flatten() {
        println!(
            "approve {} {}: {}",
            link["runId"].as_str().unwrap_or("?"),
            link["gate"].as_str().unwrap_or("?"),
            link["approvalUrl"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}
