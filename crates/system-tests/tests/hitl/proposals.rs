//! Editing a proposal before its workflow gate is decided
//! (`PATCH /v1/runs/{runId}/proposal`): the runbook's "re-trigger approval
//! after fixing the payload". The new proposal is checked as a start is,
//! the old one stays in the history, the link already handed out approves
//! the new one, and a decided proposal cannot change.

use std::time::Duration;

use myloware_core::costs::{PriceTable, usd};
use myloware_db::Db;
use myloware_testkit::conformance_tests;
use myloware_testkit::system::{self, System, artifacts_of, gate, start};
use serde_json::{Value, json};

const QUICK: Duration = Duration::from_secs(30);

async fn patch(system: &System, run_id: &str, body: Value) -> (u16, Value) {
    let response = system
        .http
        .patch(format!("{}/v1/runs/{run_id}/proposal", system.api))
        .header("x-api-key", system::API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    myloware_testkit::status_and_json(response).await
}

async fn a_proposal_is_edited_then_approved_by_its_first_link(db: &Db) {
    let system = start(db, &[]).await;
    let run_id = system
        .start_run(json!({"project": "aismr", "input": {"object": "candles"},
                          "options": {"requireWorkflowApproval": true, "user_id": "u-edit"}}))
        .await;
    let link = system
        .get(&format!("{}/v1/hitl/link/{run_id}/workflow", system.api))
        .await;

    // Refused edits change nothing.
    for (body, field) in [
        (json!({}), "body"),
        (json!({"project": "no_such_project"}), "project"),
        (json!({"input": {"prompt": "   "}}), "input"),
        (json!({"color": "red"}), "body"),
    ] {
        let (status, answer) = patch(&system, &run_id, body.clone()).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(answer.to_string().contains(field), "{body}: {answer}");
    }
    let before = system.run(&run_id).await;
    assert_eq!(before["payload"]["input"]["object"], "candles");
    assert!(artifacts_of(&before, "proposal.edited").next().is_none());

    let (status, answer) = patch(
        &system,
        &run_id,
        json!({"project": "test_video_gen", "input": {"prompt": "the fixed payload"}}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "pending_workflow");
    assert_eq!(answer["proposal"]["project"], "test_video_gen");
    assert_eq!(answer["proposal"]["input"], json!({"prompt": "the fixed payload"}));

    let run = system.run(&run_id).await;
    assert_eq!(run["project"], "test_video_gen");
    assert_eq!(run["payload"]["user_id"], "u-edit", "the owner stays");
    assert_eq!(gate(&run, "workflow")["status"], "awaiting");
    let spec = system::catalog().get("test_video_gen").unwrap().clone();
    let estimate = PriceTable::default().estimate(&spec, None).total();
    assert_eq!(run["cost"]["estimatedUsd"], usd(estimate), "{}", run["cost"]);
    let edited: Vec<&Value> = artifacts_of(&run, "proposal.edited").collect();
    assert_eq!(edited.len(), 1);
    assert_eq!(edited[0]["data"]["previous"]["input"]["object"], "candles");
    assert_eq!(edited[0]["data"]["previous"]["project"], "aismr");
    assert!(edited[0]["data"]["by"].as_str().unwrap().starts_with("key:"));

    // The link handed out before the edit approves the new proposal.
    let response = system
        .http
        .post(link["approvalUrl"].as_str().unwrap())
        .form(&[("token", link["token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let run = system.wait_status(&run_id, "published", QUICK).await;
    assert_eq!(
        run["result"]["videos"].as_array().unwrap().len(),
        2,
        "test_video_gen's two clips"
    );

    let (status, answer) = patch(&system, &run_id, json!({"input": {"prompt": "too late"}})).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("only a proposal"),
        "{answer}"
    );
    let (status, _) = patch(&system, "run_000000000000", json!({"input": {"prompt": "x"}})).await;
    assert_eq!(status, 404);

    // The audit has every edit the handler saw, with the fields it changed
    // (a body that does not parse never reaches it).
    let audit = system.api_state.store.list_audit(&run_id).await.unwrap();
    let edits: Vec<(bool, &str, &Value)> = audit
        .iter()
        .filter(|a| a.action == "edit_proposal")
        .map(|a| (a.accepted, a.outcome.as_str(), &a.detail.as_ref().unwrap()["changed"]))
        .collect();
    assert_eq!(edits.len(), 5, "{audit:#?}");
    assert_eq!(
        (edits[0].0, edits[0].1, edits[0].2),
        (
            false,
            "invalid request: body: name at least one of project, input, options",
            &json!([])
        )
    );
    assert_eq!((edits[1].0, edits[1].2), (false, &json!(["project"])));
    assert!(edits[1].1.starts_with("invalid request: body.project: "), "{edits:?}");
    assert_eq!((edits[2].0, edits[2].2), (false, &json!(["input"])));
    assert_eq!(
        (edits[3].0, edits[3].1, edits[3].2),
        (true, "edited", &json!(["project", "input"]))
    );
    assert!(!edits[4].0 && edits[4].1.contains("only a proposal"), "{edits:?}");
    assert!(
        audit
            .iter()
            .filter(|a| a.action == "edit_proposal")
            .all(|a| a.actor.starts_with("key:")),
        "{audit:#?}"
    );
    system.stop_idle().await;
}

/// Each edit keeps the one before: their number is bounded.
async fn a_proposal_takes_a_bounded_number_of_edits(db: &Db) {
    let system = start(db, &[]).await;
    let run_id = system
        .start_run(json!({"project": "test_video_gen", "input": {"prompt": "v0"},
                          "options": {"requireWorkflowApproval": true}}))
        .await;
    for i in 1..=20 {
        let (status, answer) = patch(&system, &run_id, json!({"input": {"prompt": format!("v{i}")}})).await;
        assert_eq!(status, 200, "edit {i}: {answer}");
    }
    let (status, answer) = patch(&system, &run_id, json!({"input": {"prompt": "v21"}})).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(system.run(&run_id).await["payload"]["input"]["prompt"], "v20");
    system.stop_idle().await;
}

conformance_tests!(
    a_proposal_is_edited_then_approved_by_its_first_link,
    a_proposal_takes_a_bounded_number_of_edits,
);
