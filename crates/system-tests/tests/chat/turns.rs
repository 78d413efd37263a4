//! Chat with Brendan end to end (scripted Brendan, mock providers): a
//! request becomes a proposed run with a working approval link, gate links
//! reach the transcript, and "approve" in chat decides the pending gate.

use myloware_testkit::JsonAnswer;
use std::time::Duration;

use myloware_db::Db;

use myloware_testkit::conformance_tests;
use myloware_testkit::system;
use myloware_testkit::system::{System, start};
use serde_json::{Value, json};

const QUICK: Duration = Duration::from_secs(30);

async fn transcript(system: &System, user: &str) -> Vec<Value> {
    system
        .get(&format!("{}/v1/chat/brendan/{user}/messages", system.api))
        .await["messages"]
        .as_array()
        .unwrap()
        .clone()
}

/// Waits for a transcript message carrying the link of `gate`.
async fn wait_for_link(system: &System, user: &str, run_id: &str, gate: &str) -> String {
    let deadline = std::time::Instant::now() + QUICK;
    loop {
        let found = transcript(system, user)
            .await
            .into_iter()
            .find(|m| m["runId"] == run_id && m["gate"] == gate && m["link"].is_string());
        if let Some(message) = found {
            return message["link"].as_str().unwrap().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no {gate} link in the transcript");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn a_chat_request_becomes_a_run_that_chat_approves_to_the_end(db: &Db) {
    let system = start(db, &[]).await;
    let user = "chat-user-1";
    let (status, reply) = system.chat(user, "make an AISMR video about candles").await;
    assert_eq!(status, 200, "{reply}");
    let run_id = reply["run_ids"][0].as_str().expect("a proposed run").to_string();
    let link = &reply["links"][0];
    assert_eq!(
        (link["runId"].as_str(), link["gate"].as_str()),
        (Some(run_id.as_str()), Some("workflow"))
    );
    let approval_url = link["approvalUrl"].as_str().unwrap().to_string();
    let response = reply["response"].as_str().unwrap();
    assert!(
        response.contains("candles") && response.contains(&approval_url),
        "{response}"
    );

    // The proposal is a run held at the workflow gate, naming candles.
    let run = system.run(&run_id).await;
    assert_eq!(
        (run["project"].as_str(), run["status"].as_str()),
        (Some("aismr"), Some("pending_workflow"))
    );
    let proposal = &run["payload"]["metadata"]["workflow_proposal"];
    assert_eq!(proposal["input"]["object"], "candles", "{proposal}");
    assert_eq!(run["payload"]["user_id"], user);

    // The link in the reply works as it is (a token link, no API key).
    let response = system.http.post(&approval_url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    system.wait_status(&run_id, "awaiting_ideate", QUICK).await;

    // The ideate link reaches the transcript; "approve" in chat decides it.
    let ideate_link = wait_for_link(&system, user, &run_id, "ideate").await;
    assert!(ideate_link.contains(&format!("/v1/hitl/approve/{run_id}/ideate?token=")));
    let (status, reply) = system.chat(user, "approve").await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply["response"].as_str().unwrap().contains("approved"), "{reply}");
    assert_eq!(reply["run_ids"], json!([run_id]));

    system.wait_status(&run_id, "awaiting_prepublish", QUICK).await;
    wait_for_link(&system, user, &run_id, "prepublish").await;
    let (status, _) = system.chat(user, "approve").await;
    assert_eq!(status, 200);
    let run = system.wait_status(&run_id, "published", QUICK).await;
    assert!(!run["result"]["publishUrls"].as_array().unwrap().is_empty());

    // The audit and the gates name the key that chatted (the credential),
    // the chat user only as a note; each gate was decided once.
    let key = format!("key:key-{}", myloware_core::auth::ApiKeys::fingerprint(system::API_KEY));
    let audit = system.api_state.store.list_audit(&run_id).await.unwrap();
    let by_chat: Vec<_> = audit.iter().filter(|a| a.actor == key).collect();
    assert_eq!(by_chat.len(), 2, "{audit:?}");
    let gates = run["gates"].as_array().unwrap();
    for gate in gates.iter().filter(|g| g["gate"] != "workflow") {
        assert_eq!(gate["approver"], json!(key), "{gate}");
        assert_eq!(gate["note"], json!(format!("chat user {user}")), "{gate}");
    }

    // And Brendan reports the status.
    let (_, reply) = system.chat(user, "what's the status?").await;
    let text = reply["response"].as_str().unwrap();
    assert!(text.contains(&run_id) && text.contains("published"), "{text}");
    system.stop_idle().await;
}

async fn chat_rejects_with_a_reason_and_answers_when_nothing_waits(db: &Db) {
    let system = start(db, &[]).await;
    let user = "chat-user-2";
    let (status, reply) = system.chat(user, "approve").await;
    assert_eq!(status, 200);
    assert!(
        reply["response"].as_str().unwrap().contains("Nothing is waiting"),
        "{reply}"
    );

    let (_, reply) = system.chat(user, "run the test video").await;
    let run_id = reply["run_ids"][0].as_str().unwrap().to_string();
    assert_eq!(system.run(&run_id).await["project"], "test_video_gen");
    let (status, reply) = system.chat(user, "reject: not today").await;
    assert_eq!(status, 200, "{reply}");
    let run = system.wait_status(&run_id, "rejected", QUICK).await;
    let gate = &run["gates"][0];
    assert_eq!(
        (gate["status"].as_str(), gate["reason"].as_str()),
        (Some("rejected"), Some("not today")),
        "{run}"
    );
    system.stop_idle().await;
}

async fn bad_chat_input_is_refused_and_records_nothing(db: &Db) {
    let system = start(db, &[]).await;
    let url = format!("{}/v1/chat/brendan", system.api);
    for body in [
        json!({"user_id": "u", "message": ""}),
        json!({"user_id": "u", "message": "   "}),
        json!({"user_id": "u", "message": "x".repeat(4001)}),
        json!({"user_id": "", "message": "hi"}),
        json!({"user_id": "u/../x", "message": "hi"}),
        json!({"user_id": "u", "message": "hi", "extra": 1}),
        json!({"user_id": "u"}),
        json!({"message": "hi"}),
    ] {
        let (status, reply) = system.post(&url, body.clone()).await;
        assert_eq!(status, 422, "{body} -> {reply}");
        assert!(reply["detail"].is_array(), "{reply}");
    }
    let response = system
        .http
        .post(&url)
        .json(&json!({"user_id": "u", "message": "hi"}))
        .sent()
        .await;
    assert_eq!(response.status().as_u16(), 401);
    assert!(transcript(&system, "u").await.is_empty());
    system.stop_idle().await;
}

async fn orchestrator_down_is_a_502_and_the_message_is_kept(db: &Db) {
    let system = start(db, &[]).await;
    system.switch.block(true);
    let (status, reply) = system.chat("u-down", "make an AISMR video about candles").await;
    assert_eq!(status, 502, "{reply}");
    assert!(
        reply["detail"].as_str().unwrap().contains("Brendan is unavailable"),
        "{reply}"
    );
    let messages = transcript(&system, "u-down").await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["role"], "user");
    system.switch.block(false);
    let (status, _) = system.chat("u-down", "make an AISMR video about candles").await;
    assert_eq!(status, 200);
    system.stop_idle().await;
}

async fn concurrent_turns_of_one_user_lose_no_message(db: &Db) {
    let system = start(db, &[]).await;
    let mut turns = tokio::task::JoinSet::new();
    for i in 0..12 {
        let (http, url) = (system.http.clone(), format!("{}/v1/chat/brendan", system.api));
        turns.spawn(async move {
            let response = http
                .post(url)
                .header("x-api-key", system::API_KEY)
                .json(&json!({"user_id": "u-busy", "message": format!("hello {i}")}))
                .sent()
                .await;
            response.status().as_u16()
        });
    }
    while let Some(status) = turns.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    let messages = transcript(&system, "u-busy").await;
    assert_eq!(messages.len(), 24);
    // Turns are serialised: each question is followed by its answer.
    for pair in messages.chunks(2) {
        assert_eq!(
            (pair[0]["role"].as_str(), pair[1]["role"].as_str()),
            (Some("user"), Some("assistant"))
        );
    }
    system.stop_idle().await;
}

/// The runbook's "ask Brendan in chat to resend": fresh links for the
/// user's waiting gates, in `links`, that decide the gate.
async fn brendan_resends_the_links_of_waiting_gates(db: &Db) {
    let system = start(db, &[]).await;
    let user = "chat-user-resend";
    let proposed = system.chat_ok(user, "make an AISMR video about candles").await;
    let run_id = proposed["run_ids"][0].as_str().unwrap().to_string();

    let answer = system.chat_ok(user, "my link expired, can you resend the link?").await;
    assert_eq!(answer["run_ids"], json!([run_id]), "{answer}");
    let link = &answer["links"][0];
    assert_eq!(
        (link["runId"].as_str(), link["gate"].as_str()),
        (Some(run_id.as_str()), Some("workflow"))
    );
    let url = link["approvalUrl"].as_str().unwrap();
    assert!(answer["response"].as_str().unwrap().contains(url), "{answer}");
    let token = url.split("token=").nth(1).unwrap();
    let response = system
        .http
        .post(format!("{}/v1/hitl/approve/{run_id}/workflow", system.api))
        .form(&[("token", token)])
        .json_answer()
        .await;
    assert_eq!(response["status"], "approved", "the fresh link decides: {response}");
    system.wait_status(&run_id, "awaiting_ideate", QUICK).await;
    let answer = system.chat_ok(user, "send me the link again").await;
    assert_eq!(answer["links"][0]["gate"], "ideate", "{answer}");

    let nobody = system.chat_ok("chat-user-idle", "resend the link").await;
    assert_eq!(nobody["links"], json!([]), "{nobody}");
    assert!(
        nobody["response"].as_str().unwrap().contains("None of your runs"),
        "{nobody}"
    );
    system.stop_idle().await;
}

conformance_tests!(
    brendan_resends_the_links_of_waiting_gates,
    a_chat_request_becomes_a_run_that_chat_approves_to_the_end,
    chat_rejects_with_a_reason_and_answers_when_nothing_waits,
    bad_chat_input_is_refused_and_records_nothing,
    orchestrator_down_is_a_502_and_the_message_is_kept,
    concurrent_turns_of_one_user_lose_no_message,
);
