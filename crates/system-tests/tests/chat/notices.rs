//! What people hear about a run: its owner in their transcript, and the
//! operators' webhook (`CHAT_WEBHOOK_URL`) for every run, owned or not:
//! each gate with its link, and the run published (its URL), failed (the
//! reason and the retry command), cancelled.

use std::time::Duration;

use myloware_db::Db;
use myloware_testkit::conformance_tests;
use myloware_testkit::fakes::Channel;
use myloware_testkit::system::{System, start};
use serde_json::{Value, json};

const QUICK: Duration = Duration::from_secs(30);

/// The texts posted to the webhook about `run_id`, once `n` were.
async fn posted(webhook: &Channel, run_id: &str, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + QUICK;
    loop {
        let texts: Vec<String> = webhook
            .requests()
            .into_iter()
            .filter_map(|seen| seen.body["text"].as_str().map(str::to_owned))
            .filter(|text| text.contains(run_id))
            .collect();
        if texts.len() >= n {
            return texts;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{n} posts about {run_id}: {texts:#?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn transcript(system: &System, user: &str) -> Vec<Value> {
    let body = system
        .get(&format!("{}/v1/chat/brendan/{user}/messages", system.api))
        .await;
    body["messages"].as_array().unwrap().clone()
}

async fn start_with_webhook(db: &Db, extra: &[(&str, &str)]) -> (System, Channel) {
    let webhook = Channel::healthy().await;
    let url = format!("{}/hooks/mw", webhook.url);
    let mut vars = vec![("CHAT_WEBHOOK_URL", url.as_str())];
    vars.extend_from_slice(extra);
    (start(db, &vars).await, webhook)
}

async fn a_run_without_an_owner_is_told_to_the_operators_from_gate_to_publish(db: &Db) {
    let (system, webhook) = start_with_webhook(db, &[]).await;
    let run_id = system
        .start_run(json!({"project": "aismr", "input": {"object": "candles"}}))
        .await;
    system.wait_status(&run_id, "awaiting_ideate", QUICK).await;
    let ideate = &posted(&webhook, &run_id, 1).await[0];
    assert!(
        ideate.contains("ideate gate") && ideate.contains(&format!("/v1/hitl/approve/{run_id}/ideate?token=")),
        "{ideate}"
    );
    system.approve(&run_id, "ideate").await;
    system.wait_status(&run_id, "awaiting_prepublish", QUICK).await;
    assert!(posted(&webhook, &run_id, 2).await[1].contains("prepublish gate"));
    system.approve(&run_id, "prepublish").await;
    let run = system.wait_status(&run_id, "published", QUICK).await;
    let published = &posted(&webhook, &run_id, 3).await[2];
    let url = run["result"]["publishUrls"][0].as_str().unwrap();
    assert!(
        published.contains("is published") && published.contains(url),
        "{published}"
    );

    // Kept in the operators' transcript, one notice per step.
    let notices = transcript(&system, "mw:operators").await;
    let about: Vec<&Value> = notices.iter().filter(|m| m["runId"] == run_id.as_str()).collect();
    assert_eq!(about.len(), 3, "{notices:#?}");
    assert_eq!(about[0]["gate"], "ideate");
    system.stop_idle().await;
}

async fn an_owner_hears_of_a_failure_with_the_retry_command_and_of_a_cancel(db: &Db) {
    let (system, webhook) = start_with_webhook(db, &[("MOCK_KIEAI_FAILURE_RATE", "1")]).await;
    let failing = system
        .start_run(json!({"project": "test_video_gen", "input": {"prompt": "fails"}, "options": {"user_id": "u-7"}}))
        .await;
    system.wait_status(&failing, "failed", QUICK).await;
    let failed = &posted(&webhook, &failing, 1).await[0];
    assert!(
        failed.contains("failed:") && failed.contains(&format!("mw runs retry {failing}")),
        "{failed}"
    );

    let proposal = json!({"project": "test_video_gen", "input": {"prompt": "proposed"},
                          "options": {"user_id": "u-7", "requireWorkflowApproval": true}});
    let proposed = system.start_run(proposal).await;
    let workflow = &posted(&webhook, &proposed, 1).await[0];
    assert!(
        workflow.contains(&format!("/v1/hitl/approve/{proposed}/workflow?token=")),
        "{workflow}"
    );
    let (status, body) = system
        .post(
            &format!("{}/v1/runs/{proposed}/cancel", system.api),
            json!({"reason": "wrong prompt", "actor": "ops-anna"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let cancelled = &posted(&webhook, &proposed, 2).await[1];
    assert!(
        cancelled.contains("was cancelled by ops-anna: wrong prompt"),
        "{cancelled}"
    );

    let owner = transcript(&system, "u-7").await;
    let texts: Vec<&str> = owner.iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts.len(), 3, "failure, proposal, cancel: {texts:#?}");
    assert!(
        transcript(&system, "mw:operators").await.is_empty(),
        "owned runs are told to their owner"
    );
    system.stop_idle().await;
}

conformance_tests!(
    a_run_without_an_owner_is_told_to_the_operators_from_gate_to_publish,
    an_owner_hears_of_a_failure_with_the_retry_command_and_of_a_cancel,
);
