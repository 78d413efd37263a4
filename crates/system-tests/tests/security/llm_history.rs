//! Security: llm_history. Approval links and tokens never leave for the
//! LLM provider: the chat history, the runs and the user's message are
//! sent with every credential replaced.

use axum::extract::State;
use axum::routing::post;
use myloware_api::chat::without_credentials;
use myloware_db::{Db, conformance_tests};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

use crate::support::{self, System};

async fn the_llm_never_sees_an_approval_token(db: &Db) {
    let (system, seen) = start_with_fake_llm(db).await;
    let user = "llm-user";

    let first = system.chat_ok(user, "make an AISMR video about candles").await;
    let link = first["links"][0]["approvalUrl"]
        .as_str()
        .expect("a proposal link")
        .to_string();
    let token = link.split("token=").nth(1).unwrap().to_string();
    assert!(token.len() > 64, "{link}");
    let transcript = system.api_state.store.chat_messages(user, 100).await.unwrap();
    assert!(
        transcript.iter().any(|m| m.text.contains(&token)),
        "the transcript keeps the link for the user"
    );

    // The next turns carry that history; the user even pastes the link and
    // the bare token.
    system.chat_ok(user, "what is the status?").await;
    system
        .chat_ok(user, &format!("is {link} right? the token is {token}"))
        .await;
    let run_id = first["run_ids"][0].as_str().unwrap();
    assert_eq!(
        system.run(run_id).await["status"],
        "pending_workflow",
        "nothing decided"
    );

    let requests = seen.lock().unwrap().clone();
    assert!(requests.len() >= 3, "{} LLM requests", requests.len());
    let sent: Vec<String> = requests.iter().map(Value::to_string).collect();
    for body in &sent {
        assert!(!body.contains(&token), "a token went to the LLM: {body}");
        assert!(!body.contains("token="), "a link went to the LLM: {body}");
    }
    assert!(
        sent.last().unwrap().contains("[approval link]"),
        "the history and the message reached the LLM, links replaced: {}",
        sent.last().unwrap()
    );
    system.stop_idle().await;
}

conformance_tests!(the_llm_never_sees_an_approval_token);

#[test]
fn credentials_are_replaced_and_other_text_is_kept() {
    let token = format!("1796677328.{}", "ab12".repeat(16));
    let url = format!("https://api.example.com/v1/hitl/approve/run_abc/ideate?token={token}");
    let text = format!("Approve the plan: {url}\nor reject it.");
    let clean = without_credentials(&text);
    assert_eq!(clean, "Approve the plan: [approval link]\nor reject it.");
    let clean = without_credentials(&format!("the token is {token}, ok?"));
    assert!(!clean.contains(&token) && !clean.contains("ab12ab12"), "{clean}");
    assert!(clean.starts_with("the token is [approval link]"), "{clean}");
    let clean = without_credentials(&format!("see /v1/hitl/reject/run_abc/ideate?token={token} now"));
    assert!(!clean.contains(&token) && clean.ends_with(" now"), "{clean}");

    for ordinary in [
        "make an AISMR video about candles",
        "approve run_0c9v7p0wfs0s please",
        "https://www.tiktok.com/@myloware-aismr/video/1 is live",
        "12 surreal candles, 8.0 s each; deadbeef",
        "",
    ] {
        assert_eq!(without_credentials(ordinary), ordinary);
    }
}

// Helpers.

type Seen = Arc<Mutex<Vec<Value>>>;

/// A fake OpenAI-compatible server playing Brendan: a "make ..." message
/// proposes an AISMR run, anything else gets a short answer. Records every
/// request body.
async fn start_with_fake_llm(db: &Db) -> (System, Seen) {
    let seen: Seen = Arc::default();
    let completions = |State(seen): State<Seen>, axum::Json(body): axum::Json<Value>| async move {
        seen.lock().unwrap().push(body.clone());
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let called = messages.iter().any(|m| m["role"] == "tool");
        let last_user = messages
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_string();
        let message = if !called && last_user.contains("make an AISMR video") {
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_0", "type": "function",
                "function": {"name": "propose_run", "arguments": json!({"project": "aismr", "object": "candles",
                    "modifiers": [], "skipEditing": false}).to_string()}}]})
        } else {
            json!({"role": "assistant", "content": "Your candles run waits for your approval."})
        };
        axum::Json(json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": "fake-model",
            "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }))
    };
    let router = axum::Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(seen.clone());
    let base = format!("{}/v1", support::fakes::serve(router).await);
    let projects = concat!(env!("CARGO_MANIFEST_DIR"), "/../../projects");
    let system = support::start(
        db,
        &[
            ("PROJECTS_DIR", projects),
            ("OPENAI_API_KEY", "sk-fake-test-key"),
            ("OPENAI_BASE_URL", &base),
            ("LLM_MODEL", "fake-model"),
        ],
    )
    .await;
    (system, seen)
}
