//! Gate lifetime: a reminder after `GATE_REMIND_AFTER_HOURS`, expiry after
//! `GATE_TIMEOUT_HOURS` (hours, fractions allowed: here seconds): the gate
//! and the run end `expired`, the execution stops, the link's page says
//! so; or, when the project names a `gateTimeoutDecision`, that decision
//! is taken and audited.

use std::time::Duration;

use myloware_db::Db;
use myloware_testkit::conformance_tests;
use myloware_testkit::fakes::Channel;
use myloware_testkit::system::{System, artifacts_of, gate, start};
use serde_json::{Value, json};

const QUICK: Duration = Duration::from_secs(30);

async fn transcript(system: &System, user: &str) -> Vec<Value> {
    let body = system
        .get(&format!("{}/v1/chat/brendan/{user}/messages", system.api))
        .await;
    body["messages"].as_array().unwrap().clone()
}

/// ~1 s to the reminder, ~3 s to the expiry.
const LIFETIME: [(&str, &str); 2] = [("GATE_REMIND_AFTER_HOURS", "0.0003"), ("GATE_TIMEOUT_HOURS", "0.0008")];

async fn a_gate_nobody_decides_is_reminded_then_expires_with_its_run(db: &Db) {
    let webhook = Channel::healthy().await;
    let url = format!("{}/hooks/mw", webhook.url);
    let mut vars = LIFETIME.to_vec();
    vars.push(("CHAT_WEBHOOK_URL", &url));
    let system = start(db, &vars).await;
    let run_id = system
        .start_run(json!({"project": "aismr", "input": {"object": "candles"}, "options": {"user_id": "u-late"}}))
        .await;
    system.wait_status(&run_id, "awaiting_ideate", QUICK).await;
    let link = system.link(&run_id, "ideate").await;

    let run = system.wait_status(&run_id, "expired", QUICK).await;
    assert_eq!(gate(&run, "ideate")["status"], "expired", "{}", run["gates"]);
    let expired: Vec<&Value> = artifacts_of(&run, "gate.expired").collect();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["data"]["gate"], "ideate");

    // Told: the link, one reminder, the expiry (owner and webhook alike).
    let texts: Vec<String> = transcript(&system, "u-late")
        .await
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(texts.len(), 3, "{texts:#?}");
    assert!(
        texts[1].starts_with("Reminder: run") && texts[1].contains("/v1/hitl/approve/"),
        "{texts:#?}"
    );
    assert!(texts[2].contains("expired"), "{texts:#?}");
    system
        .wait_for(&run_id, QUICK, "the webhook told", |_| {
            webhook
                .requests()
                .iter()
                .filter(|s| s.body["text"].as_str().unwrap_or("").contains(&run_id))
                .count()
                == 3
        })
        .await;

    // The execution stopped: it was cancelled, and nothing moves the run.
    let orchestrator = &system.orchestrator_state.store;
    myloware_testkit::wait_until(QUICK, Duration::from_millis(25), "the execution to end", || async {
        match orchestrator.get_execution(&run_id).await.unwrap() {
            Some(e) if e.status.as_str() == "cancelled" => Ok(()),
            other => Err(format!("{:?}", other.map(|e| e.status))),
        }
    })
    .await;
    assert_eq!(system.run(&run_id).await["status"], "expired");

    // The link's page says the gate expired; deciding is refused.
    let (status, page) = system.page(link["approvalUrl"].as_str().unwrap()).await;
    assert_eq!(status, 409);
    assert!(page.contains("This approval expired"));
    let (status, _) = system
        .post(&format!("{}/v1/hitl/approve/{run_id}/ideate", system.api), json!({}))
        .await;
    assert_eq!(status, 409);
    system.stop_idle().await;
}

async fn a_projects_timeout_decision_is_taken_and_audited(db: &Db) {
    // A copy of the shipped projects where aismr approves by default.
    let projects = myloware_testkit::projects_with("gateTimeoutDecision = \"approve\"", "");
    let dir = projects.path().display().to_string();
    let mut vars = LIFETIME.to_vec();
    vars.push(("PROJECTS_DIR", &dir));
    let system = start(db, &vars).await;
    let run_id = system
        .start_run(json!({"project": "aismr", "input": {"object": "candles"}}))
        .await;
    // Both gates pass by themselves after the timeout.
    let run = system.wait_status(&run_id, "published", Duration::from_secs(60)).await;
    for name in ["ideate", "prepublish"] {
        let decided = gate(&run, name);
        assert_eq!(decided["status"], "approved", "{decided}");
        assert_eq!(decided["approver"], "system:gate-timeout", "{decided}");
    }
    let audit = system.api_state.store.list_audit(&run_id).await.unwrap();
    let decisions: Vec<_> = audit
        .iter()
        .map(|a| {
            (
                a.actor.as_str(),
                a.action.as_str(),
                a.gate.as_deref(),
                a.outcome.as_str(),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [
            ("system:gate-timeout", "approve", Some("ideate"), "approved"),
            ("system:gate-timeout", "approve", Some("prepublish"), "approved"),
        ]
    );
    system.stop_idle().await;
}

conformance_tests!(
    a_gate_nobody_decides_is_reminded_then_expires_with_its_run,
    a_projects_timeout_decision_is_taken_and_audited,
);
