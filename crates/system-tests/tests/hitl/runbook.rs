//! The operators' runbook, section 2 ("HITL approvals & troubleshooting"),
//! as written, against real `mw` processes: the link anatomy, each common
//! issue with its mitigation, and the manual approval by curl with the
//! `myloware.api.hitl` log entries that confirm the resume.

use std::time::Duration;

use myloware_core::signing;
use myloware_testkit::cluster::Cluster;
use myloware_testkit::fakes::Channel;
use myloware_testkit::{API_KEY, JsonAnswer, TestDb, conformance_tests};
use serde_json::{Value, json};

const MW: &str = env!("CARGO_BIN_EXE_mw-system");
const QUICK: Duration = Duration::from_secs(30);

/// `curl -sS -H "x-api-key: $API_KEY" "…/v1/hitl/approve/{runId}/{gate}?token=$TOKEN"`.
async fn curl_approve(cluster: &Cluster, url: &str) -> (u16, Value) {
    let response = cluster.http.get(url).header("x-api-key", API_KEY).sent().await;
    myloware_testkit::status_and_json(response).await
}

/// The page's approve button: the token alone.
async fn approve_with(cluster: &Cluster, run_id: &str, gate: &str, token: &str) -> (u16, Value) {
    let url = format!("{}/v1/hitl/approve/{run_id}/{gate}", cluster.api_url());
    let response = cluster.http.post(url).form(&[("token", token)]).sent().await;
    myloware_testkit::status_and_json(response).await
}

async fn with_key(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.header("x-api-key", API_KEY).sent().await;
    myloware_testkit::status_and_json(response).await
}

/// The `myloware.api.hitl` log records of `run_id` with `message`.
fn hitl_log(cluster: &Cluster, run_id: &str, message: &str) -> Vec<Value> {
    cluster
        .log_records("api")
        .into_iter()
        .filter(|r| r["target"] == "myloware.api.hitl" && r["runId"] == run_id && r["message"] == message)
        .collect()
}

/// Messages the operators' webhook received about `run_id`.
fn posted(webhook: &Channel, run_id: &str) -> Vec<String> {
    webhook
        .requests()
        .iter()
        .filter_map(|seen| seen.body["text"].as_str().map(str::to_owned))
        .filter(|text| text.contains(run_id))
        .collect()
}

async fn runbook_section_2_works_as_written(db: &TestDb) {
    let webhook = Channel::healthy().await;
    let vars = vec![
        ("RUST_LOG".to_string(), "warn,myloware.api.hitl=info".to_string()),
        ("CHAT_WEBHOOK_URL".to_string(), format!("{}/hooks/ops", webhook.url)),
    ];
    let cluster = Cluster::start(MW, db.url(), vars).await;
    let api = cluster.api_url();

    // "Brendan posts the signed link in chat whenever a gate is reached":
    // the proposal (workflow gate) in the chat's answer and on the webhook.
    let (status, chat) = with_key(
        cluster
            .http
            .post(format!("{api}/v1/chat/brendan"))
            .json(&json!({"user_id": "u-runbook", "message": "make an AISMR video about candles"})),
    )
    .await;
    assert_eq!(status, 200, "{chat}");
    let run_id = chat["run_ids"][0].as_str().expect("a proposed run").to_string();
    let workflow_link = chat["links"][0]["approvalUrl"].as_str().unwrap().to_string();
    // "Workflow gate: GET /v1/hitl/approve/{runId}/workflow?token=<HMAC>"
    assert!(
        workflow_link.starts_with(&format!("{api}/v1/hitl/approve/{run_id}/workflow?token=")),
        "{workflow_link}"
    );

    // "Workflow approval returns 200 but run stays pending_workflow":
    // "Inspect runs.payload.metadata.workflow_proposal … re-trigger approval
    // after fixing the payload".
    let run = cluster.run(&run_id).await;
    let proposal = &run["payload"]["metadata"]["workflow_proposal"];
    assert_eq!(
        proposal["pipeline"],
        json!(["iggy", "riley", "alex", "quinn"]),
        "{proposal}"
    );
    let (status, fixed) = with_key(
        cluster
            .http
            .patch(format!("{api}/v1/runs/{run_id}/proposal"))
            .json(&json!({"input": {"object": "beeswax candles"}})),
    )
    .await;
    assert_eq!(status, 200, "{fixed}");
    let (status, approved) = curl_approve(&cluster, &workflow_link).await;
    assert_eq!(
        (status, approved["status"].as_str()),
        (200, Some("approved")),
        "{approved}"
    );
    cluster
        .wait_all(std::slice::from_ref(&run_id), "awaiting_ideate", QUICK)
        .await;
    let run = cluster.run(&run_id).await;
    assert_eq!(
        run["payload"]["metadata"]["workflow_proposal"]["input"]["object"],
        "beeswax candles"
    );

    // "Ideate & prepublish gates: same path with ideate or prepublish", and
    // the webhook heard of the gate with its link.
    let ideate_path = format!("/v1/hitl/approve/{run_id}/ideate?token=");
    myloware_testkit::wait_until(
        QUICK,
        Duration::from_millis(50),
        "the ideate link on the webhook",
        || async {
            let texts = posted(&webhook, &run_id);
            if texts.iter().any(|t| t.contains(&ideate_path)) {
                Ok(())
            } else {
                Err(format!("{texts:?}"))
            }
        },
    )
    .await;

    // "403 invalid or expired token — token expired or runId mismatch".
    let forbidden = json!({"detail": "invalid or expired token"});
    let secret = myloware_core::config::DEV_HITL_SECRET.as_bytes();
    let expired = signing::hitl_token(secret, &run_id, "ideate", chrono::Utc::now().timestamp() - 60);
    let other_run = signing::hitl_token(
        secret,
        "run_someoneelse1",
        "ideate",
        chrono::Utc::now().timestamp() + 3600,
    );
    for token in [&expired, &other_run] {
        assert_eq!(
            approve_with(&cluster, &run_id, "ideate", token).await,
            (403, forbidden.clone())
        );
    }
    assert_eq!(
        cluster.run(&run_id).await["status"],
        "awaiting_ideate",
        "nothing changed"
    );
    // Mitigation: "Regenerate the link via /v1/hitl/link/{runId}/{gate}"…
    let (status, link) = with_key(cluster.http.get(format!("{api}/v1/hitl/link/{run_id}/ideate"))).await;
    assert_eq!(status, 200, "{link}");
    // "…links expire after 24h (see HITL_TOKEN_EXPIRY_HOURS)".
    let lifetime = link["expiresIn"].as_i64().unwrap();
    assert!((86_300..=86_400).contains(&lifetime), "{lifetime}");
    // …"or ask Brendan in chat to resend".
    let (status, resent) = with_key(
        cluster
            .http
            .post(format!("{api}/v1/chat/brendan"))
            .json(&json!({"user_id": "u-runbook", "message": "please resend the link"})),
    )
    .await;
    assert_eq!(status, 200, "{resent}");
    let fresh = resent["links"][0]["approvalUrl"].as_str().unwrap();
    assert!(fresh.starts_with(&format!("{api}{ideate_path}")), "{resent}");

    // "502 failed to resume run — orchestrator unreachable during approval".
    cluster.to_orchestrator.block(true);
    let token = link["token"].as_str().unwrap();
    assert_eq!(
        approve_with(&cluster, &run_id, "ideate", token).await,
        (502, json!({"detail": "failed to resume run"}))
    );
    // "Check orchestrator /health and logs": it is up, only unreachable;
    // "the API now logs the error with runId/gate".
    let health = cluster
        .http
        .get(format!("{}/health", cluster.orchestrator_url()))
        .sent()
        .await;
    assert_eq!(health.status(), 200);
    let failed = hitl_log(
        &cluster,
        &run_id,
        "failed to resume run; the decision is kept and will be delivered",
    );
    assert!(
        !failed.is_empty() && failed.iter().all(|r| r["gate"] == "ideate"),
        "{failed:?}"
    );
    // "When it comes back, retry the approval".
    cluster.to_orchestrator.block(false);
    let (status, retried) = approve_with(&cluster, &run_id, "ideate", token).await;
    assert_eq!(
        (status, retried["status"].as_str()),
        (200, Some("already_approved")),
        "{retried}"
    );
    cluster
        .wait_all(std::slice::from_ref(&run_id), "awaiting_prepublish", QUICK)
        .await;

    // "Manual approval via curl", then "Check API logs for myloware.api.hitl
    // entries to confirm the orchestrator resumed successfully".
    let (status, link) = with_key(cluster.http.get(format!("{api}/v1/hitl/link/{run_id}/prepublish"))).await;
    assert_eq!(status, 200, "{link}");
    let url = format!(
        "{api}/v1/hitl/approve/{run_id}/prepublish?token={}",
        link["token"].as_str().unwrap()
    );
    let (status, approved) = curl_approve(&cluster, &url).await;
    assert_eq!(
        (status, approved["status"].as_str()),
        (200, Some("approved")),
        "{approved}"
    );
    cluster
        .wait_all(std::slice::from_ref(&run_id), "published", QUICK)
        .await;
    for gate in ["ideate", "prepublish"] {
        let resumed: Vec<Value> = hitl_log(&cluster, &run_id, "resumed")
            .into_iter()
            .filter(|r| r["gate"] == gate)
            .collect();
        assert_eq!(resumed.len(), 1, "{gate}: {resumed:?}");
        assert_eq!(resumed[0]["decision"], "approve", "{gate}");
        assert!(resumed[0]["latency_ms"].as_i64().is_some(), "{:?}", resumed[0]);
    }
    // The webhook heard the run's end too, with its URL.
    myloware_testkit::wait_until(QUICK, Duration::from_millis(50), "the publish notice", || async {
        let texts = posted(&webhook, &run_id);
        if texts.iter().any(|t| t.contains("published")) {
            Ok(())
        } else {
            Err(format!("{texts:?}"))
        }
    })
    .await;
    cluster.wait_idle(db).await;
}

conformance_tests!(runbook_section_2_works_as_written);
