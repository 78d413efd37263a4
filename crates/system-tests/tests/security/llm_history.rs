//! Security: llm_history. Approval links and tokens never leave for the
//! LLM provider: the chat history, the runs and the user's message are
//! sent with every credential replaced.

use myloware_api::chat::without_credentials;
use myloware_db::Db;
use myloware_testkit::conformance_tests;
use myloware_testkit::fakes::{OpenAi, call, say};
use serde_json::{Value, json};

use myloware_testkit::system::{self, System};

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

    let requests = seen.requests();
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

/// A fake OpenAI-compatible server playing Brendan: a "make ..." message
/// proposes an AISMR run, anything else gets a short answer. Records every
/// request body.
async fn start_with_fake_llm(db: &Db) -> (System, OpenAi) {
    let llm = OpenAi::start(|body| {
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let called = messages.iter().any(|m| m["role"] == "tool");
        let last_user = messages
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_string();
        if !called && last_user.contains("make an AISMR video") {
            call(&[(
                "propose_run",
                json!({"project": "aismr", "object": "candles", "modifiers": [], "skipEditing": false}),
            )])
        } else {
            say("Your candles run waits for your approval.")
        }
    })
    .await;
    let projects = myloware_testkit::projects_dir().display().to_string();
    let mut vars = llm.vars();
    vars.push(("PROJECTS_DIR", &projects));
    let system = system::start(db, &vars).await;
    (system, llm)
}
