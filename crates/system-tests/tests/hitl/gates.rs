//! Gates end to end: signed links, the confirmation page, decisions, the
//! audit, and the orchestrator being down during an approval.

use myloware_testkit::JsonAnswer;
use std::time::Duration;

use myloware_db::Db;

use myloware_testkit::conformance_tests;
use myloware_testkit::system::{System, aismr, artifacts_of, gate, start};
use serde_json::{Value, json};

const QUICK: Duration = Duration::from_secs(30);

async fn link(system: &System, run_id: &str, gate: &str) -> Value {
    system
        .get(&format!("{}/v1/hitl/link/{run_id}/{gate}", system.api))
        .await
}

/// POSTs the page's form with the token, like a browser.
async fn form(system: &System, action: &str, run_id: &str, gate: &str, token: &str, reason: &str) -> (u16, Value) {
    let response = system
        .http
        .post(format!("{}/v1/hitl/{action}/{run_id}/{gate}", system.api))
        .form(&[("token", token), ("reason", reason)])
        .sent()
        .await;
    myloware_testkit::status_and_json(response).await
}

async fn aismr_passes_both_gates_by_their_links(db: &Db) {
    let system = start(db, &[]).await;
    let run_id = system.aismr_at_ideate("u-1").await;
    let run = system.run(&run_id).await;
    assert_eq!(run["gates"][0]["gate"], "ideate");
    assert_eq!(run["gates"][0]["status"], "awaiting");

    // The chat transcript has the link.
    let chat = system
        .get(&format!("{}/v1/chat/brendan/u-1/messages", system.api))
        .await;
    let message = &chat["messages"][0];
    assert_eq!(
        (message["runId"].as_str(), message["gate"].as_str()),
        (Some(run_id.as_str()), Some("ideate"))
    );
    let chat_link = message["link"].as_str().unwrap().to_string();
    assert!(chat_link.contains(&format!("/v1/hitl/approve/{run_id}/ideate?token=")));

    // Opening the link (as a browser or a bot) shows the page and changes nothing.
    let page = system.http.get(&chat_link).header("accept", "text/html").sent().await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<form method=\"post\"") && html.contains("Approve") && html.contains("Reject"));
    let description: Value = system
        .http
        .get(&chat_link)
        .header("accept", "application/json")
        .json_answer()
        .await;
    assert_eq!(
        description["preview"]["ideas"].as_array().unwrap().len(),
        12,
        "12 ideas in the preview"
    );
    assert_eq!(system.run(&run_id).await["status"], "awaiting_ideate");

    let token = chat_link.split("token=").nth(1).unwrap();
    assert_eq!(
        form(&system, "approve", &run_id, "ideate", token, "").await,
        (
            200,
            json!({"status": "approved", "runId": run_id, "gate": "ideate", "message": "Thank you: the run continues."})
        )
    );
    let run = system.wait_status(&run_id, "awaiting_prepublish", QUICK).await;
    assert_eq!(gate(&run, "prepublish")["status"], "awaiting");
    let link = link(&system, &run_id, "prepublish").await;
    let description: Value = system
        .http
        .get(link["approvalUrl"].as_str().unwrap())
        .header("accept", "application/json")
        .json_answer()
        .await;
    let render = url::Url::parse(description["preview"]["renderUrl"].as_str().unwrap()).unwrap();
    assert_eq!(
        render.path(),
        format!("/v1/assets/aismr/{run_id}/render-0.mp4"),
        "the render's copy in the preview"
    );
    let (status, body) = form(
        &system,
        "approve",
        &run_id,
        "prepublish",
        link["token"].as_str().unwrap(),
        "",
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("approved")));
    let run = system.wait_status(&run_id, "published", QUICK).await;
    assert!(
        run["gates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["status"] == "approved" && g["delivered"] == true)
    );
    let audit = system.api_state.store.list_audit(&run_id).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "view" && a.outcome == "shown"));
    assert_eq!(audit.iter().filter(|a| a.outcome == "approved").count(), 2);
    assert!(
        audit.iter().all(|a| !a.actor.contains(token)),
        "the audit never holds a token"
    );
    system.stop_idle().await;
}

async fn the_workflow_gate_starts_or_ends_a_proposed_run(db: &Db) {
    let system = start(db, &[]).await;
    let proposed =
        json!({"project": "test_video_gen", "input": {"prompt": "p"}, "options": {"requireWorkflowApproval": true}});
    let approved = system.start_run(proposed.clone()).await;
    let rejected = system.start_run(proposed).await;
    for run_id in [&approved, &rejected] {
        assert_eq!(system.run(run_id).await["status"], "pending_workflow");
    }
    // The runbook's manual approval: GET with the API key.
    let link = link(&system, &approved, "workflow").await;
    let response = system
        .with_key(system.http.get(link["approvalUrl"].as_str().unwrap()))
        .await;
    assert_eq!(response.status(), 200);
    system.wait_status(&approved, "published", QUICK).await;

    let link = support_link(&system, &rejected, "workflow").await;
    let (status, body) = form(&system, "reject", &rejected, "workflow", &link, "not this week").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("rejected")));
    let run = system.run(&rejected).await;
    assert_eq!(run["status"], "rejected");
    assert_eq!(run["gates"][0]["reason"], "not this week");
    assert!(artifacts_of(&run, "run.rejected").any(|a| a["data"]["reason"] == "not this week"));
    assert!(
        system.mock_calls(&rejected).await.is_empty(),
        "a rejected proposal never runs"
    );
    system.stop_idle().await;
}

/// An aismr run about `object` waiting at the ideate gate, and a fresh
/// link's token for it.
async fn at_ideate(system: &System, object: &str) -> (String, String) {
    let run_id = system.start_run(aismr(object)).await;
    system.wait_status(&run_id, "awaiting_ideate", QUICK).await;
    let token = support_link(system, &run_id, "ideate").await;
    (run_id, token)
}

/// The run's resume commands.
async fn resumes(system: &System, run_id: &str) -> usize {
    let commands = system.api_state.store.list_commands(run_id).await.unwrap();
    commands
        .iter()
        .filter(|c| c.kind() == myloware_api::store::CommandKind::Resume)
        .count()
}

/// Approves prepublish by a fresh link's token; waits for the publish.
async fn publish_via_link(system: &System, run_id: &str) {
    let token = support_link(system, run_id, "prepublish").await;
    assert_eq!(form(system, "approve", run_id, "prepublish", &token, "").await.0, 200);
    system.wait_status(run_id, "published", QUICK).await;
}

async fn support_link(system: &System, run_id: &str, gate: &str) -> String {
    link(system, run_id, gate).await["token"].as_str().unwrap().to_string()
}

async fn bad_tokens_are_refused_and_change_nothing(db: &Db) {
    let system = start(db, &[("HITL_SECRET_PREVIOUS", "the-old-secret")]).await;
    let proposed =
        json!({"project": "test_video_gen", "input": {"prompt": "p"}, "options": {"requireWorkflowApproval": true}});
    let run_id = system.start_run(proposed.clone()).await;
    let other = system.start_run(proposed).await;
    let secret = b"dev-hitl-secret-not-for-production";
    let now = chrono::Utc::now().timestamp();
    let sign =
        |secret: &[u8], run: &str, gate: &str, exp: i64| myloware_core::signing::hitl_token(secret, run, gate, exp);
    let forged = [
        sign(b"guessed", &run_id, "workflow", now + 3600),
        sign(secret, &run_id, "workflow", now - 1),
        sign(secret, &other, "workflow", now + 3600),
        sign(secret, &run_id, "ideate", now + 3600),
        "garbage".to_string(),
        String::new(),
    ];
    for token in &forged {
        assert_eq!(
            form(&system, "approve", &run_id, "workflow", token, "").await,
            (403, json!({"detail": "invalid or expired token"})),
            "{token}"
        );
        let page = system
            .http
            .get(format!(
                "{}/v1/hitl/approve/{run_id}/workflow?token={token}",
                system.api
            ))
            .sent()
            .await;
        assert_eq!(page.status(), 403);
    }
    assert_eq!(system.run(&run_id).await["status"], "pending_workflow");
    let refused = system.api_state.store.list_audit(&run_id).await.unwrap();
    assert!(
        refused
            .iter()
            .filter(|a| a.outcome == "invalid or expired token")
            .count()
            >= forged.len()
    );

    // Rotation: a link signed with the previous secret still works.
    let old = sign(b"the-old-secret", &run_id, "workflow", now + 3600);
    assert_eq!(
        form(&system, "approve", &run_id, "workflow", &old, "").await.1["status"],
        "approved"
    );
    // A token that is valid but for a resolved gate cannot re-resolve it.
    let fresh = sign(secret, &run_id, "workflow", now + 3600);
    assert_eq!(
        form(&system, "approve", &run_id, "workflow", &fresh, "").await.1["status"],
        "already_approved"
    );
    let (status, body) = form(&system, "reject", &run_id, "workflow", &fresh, "").await;
    assert_eq!(status, 409, "{body}");
    // No link for a resolved gate; unknown gates and runs.
    assert_eq!(form(&system, "approve", &run_id, "publish", &fresh, "").await.0, 403);
    for (path, status) in [
        (format!("/v1/hitl/link/{run_id}/workflow"), 409),
        (format!("/v1/hitl/approve/{run_id}/publish"), 404),
        ("/v1/hitl/approve/run_000000000000/workflow".to_string(), 404),
    ] {
        let response = system.with_key(system.http.get(format!("{}{path}", system.api))).await;
        assert_eq!(response.status(), status, "GET {path}");
    }
    system.wait_status(&run_id, "published", QUICK).await;
    system.stop_idle().await;
}

async fn fifty_concurrent_approvals_make_one_decision(db: &Db) {
    let system = start(db, &[]).await;
    let (run_id, token) = at_ideate(&system, "soap").await;
    let clicks = (0..50).map(|_| {
        let (http, url, token) = (
            system.http.clone(),
            format!("{}/v1/hitl/approve/{run_id}/ideate", system.api),
            token.clone(),
        );
        tokio::spawn(async move {
            let response = http.post(url).form(&[("token", token.as_str())]).send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (status, body["status"].as_str().unwrap_or_default().to_string())
        })
    });
    let mut outcomes = Vec::new();
    for click in clicks {
        outcomes.push(click.await.unwrap());
    }
    assert_eq!(
        outcomes.iter().filter(|o| *o == &(200, "approved".to_string())).count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| *o == &(200, "already_approved".to_string()))
            .count(),
        49,
        "{outcomes:?}"
    );
    let resumes = resumes(&system, &run_id).await;
    assert_eq!(resumes, 1);
    system.wait_status(&run_id, "awaiting_prepublish", QUICK).await;
    publish_via_link(&system, &run_id).await;
    system.stop_idle().await;
}

async fn an_approval_while_the_orchestrator_is_down_is_kept_and_delivered(db: &Db) {
    let system = start(db, &[]).await;
    let (run_id, token) = at_ideate(&system, "glass").await;
    system.switch.block(true);
    assert_eq!(
        form(&system, "approve", &run_id, "ideate", &token, "").await,
        (502, json!({"detail": "failed to resume run"}))
    );
    let run = system.run(&run_id).await;
    assert_eq!(run["gates"][0]["status"], "approved", "the decision is kept");
    assert_eq!(run["gates"][0]["delivered"], false);
    // Retried while still down: still 502, still one decision.
    assert_eq!(form(&system, "approve", &run_id, "ideate", &token, "").await.0, 502);

    system.switch.block(false);
    system.wait_status(&run_id, "awaiting_prepublish", QUICK).await;
    let (status, body) = form(&system, "approve", &run_id, "ideate", &token, "").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("already_approved")));
    let resumes = resumes(&system, &run_id).await;
    assert_eq!(resumes, 1, "one resume");
    publish_via_link(&system, &run_id).await;
    system.stop_idle().await;
}

async fn rejecting_ideas_ends_the_run_and_the_execution(db: &Db) {
    let system = start(db, &[]).await;
    let (run_id, token) = at_ideate(&system, "soap").await;
    let (status, body) = form(&system, "reject", &run_id, "ideate", &token, "too tame").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("rejected")));
    let run = system.run(&run_id).await;
    assert_eq!(run["status"], "rejected");
    assert_eq!(run["gates"][0]["reason"], "too tame");
    system.wait_execution(&run_id, "rejected", QUICK).await;
    assert!(
        system.mock_calls(&run_id).await.is_empty(),
        "no clip paid for rejected ideas"
    );
    assert_eq!(
        system.run(&run_id).await["status"],
        "rejected",
        "the late execution.rejected changes nothing"
    );
    system.stop_idle().await;
}

conformance_tests!(
    rejecting_ideas_ends_the_run_and_the_execution,
    aismr_passes_both_gates_by_their_links,
    the_workflow_gate_starts_or_ends_a_proposed_run,
    bad_tokens_are_refused_and_change_nothing,
    fifty_concurrent_approvals_make_one_decision,
    an_approval_while_the_orchestrator_is_down_is_kept_and_delivered,
);
