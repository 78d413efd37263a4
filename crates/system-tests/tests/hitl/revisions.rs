//! "Request changes" at a gate: the persona before it works again with
//! the reviewer's feedback, only the paid calls the changes need are made
//! again, and the gate waits again with the new preview; bounded per gate.

use std::time::Duration;

use myloware_db::Db;
use myloware_testkit::conformance_tests;
use myloware_testkit::system::{System, artifacts_of, gate, start};
use serde_json::{Value, json};

const QUICK: Duration = Duration::from_secs(30);

/// POSTs the page's third form (the link's token and the feedback), like a browser.
async fn revise_by_link(system: &System, run_id: &str, gate: &str, feedback: &str) -> (u16, Value) {
    let link = system.link(run_id, gate).await;
    let response = system
        .http
        .post(link["reviseUrl"].as_str().unwrap())
        .form(&[("feedback", feedback)])
        .send()
        .await
        .unwrap();
    myloware_testkit::status_and_json(response).await
}

async fn revise(system: &System, run_id: &str, gate: &str, body: Value) -> (u16, Value) {
    system
        .post(&format!("{}/v1/hitl/revise/{run_id}/{gate}", system.api), body)
        .await
}

/// The preview `gate` shows now (its latest `gate.reached`).
fn preview(run: &Value, gate_name: &str) -> Value {
    artifacts_of(run, "gate.reached")
        .filter(|a| a["data"]["gate"] == gate_name)
        .last()
        .map(|a| a["data"]["preview"].clone())
        .expect("the gate was reached")
}

/// Waits until `gate` waits again after its `round`th revision.
async fn waiting_again(system: &System, run_id: &str, gate_name: &str, round: u64) -> Value {
    system
        .wait_for(run_id, QUICK, "the gate to wait again", |run| {
            let g = gate(run, gate_name);
            g["status"] == "awaiting" && g["revisions"] == round
        })
        .await
}

async fn changes_at_both_gates_redo_only_what_they_name(db: &Db) {
    let system = start(db, &[]).await;
    let run_id = system.aismr_at_ideate("u-rev").await;
    let first = system.run(&run_id).await;
    let first_ideas = preview(&first, "ideate")["ideas"].clone();

    // Ideate, with the operator key: Iggy proposes again.
    let (status, body) = revise(&system, &run_id, "ideate", json!({"feedback": "calmer, more pastel"})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("revised")), "{body}");
    let run = waiting_again(&system, &run_id, "ideate", 1).await;
    assert_eq!(run["status"], "awaiting_ideate");
    let ideas = preview(&run, "ideate");
    assert_eq!(ideas["revision"]["feedback"], "calmer, more pastel");
    assert_ne!(ideas["ideas"], first_ideas, "new ideas");
    let concept = ideas["ideas"][0]["concept"].as_str().unwrap();
    assert!(concept.contains("calmer, more pastel"), "{concept}");
    assert_eq!(system.mock_calls(&run_id).await.len(), 0, "nothing paid yet");
    system.approve(&run_id, "ideate").await;

    // Prepublish, through the page's form: clip 3 is made again, and the edit.
    system.wait_status(&run_id, "awaiting_prepublish", QUICK).await;
    let before = system.mock_calls(&run_id).await;
    assert_eq!(before[&("kieai".into(), "submit".into())].len(), 12);
    let (status, body) = revise_by_link(&system, &run_id, "prepublish", "redo clip 3, warmer light").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("revised")), "{body}");
    let run = waiting_again(&system, &run_id, "prepublish", 1).await;
    let cut = preview(&run, "prepublish");
    assert_eq!(cut["revision"]["clips"], json!([3]), "{cut}");
    let render = cut["renderAsset"].as_str().unwrap();
    assert!(render.ends_with("render-1.mp4"), "a new render: {render}");
    let calls = system.mock_calls(&run_id).await;
    let submits = &calls[&("kieai".into(), "submit".into())];
    assert_eq!(submits.len(), 13, "one clip more: {submits:?}");
    assert!(
        submits.iter().any(|k| k.ends_with(":riley:clip:2:revision:1")),
        "{submits:?}"
    );
    assert_eq!(calls[&("shotstack".into(), "render".into())].len(), 2);
    system.approve(&run_id, "prepublish").await;

    let run = system.wait_status(&run_id, "published", QUICK).await;
    let calls = system.mock_calls(&run_id).await;
    assert_eq!(calls[&("upload_post".into(), "publish".into())].len(), 1);
    // The history keeps every preview and every request, with its cost.
    assert_eq!(artifacts_of(&run, "gate.reached").count(), 4);
    let revisions = run["revisions"].as_array().unwrap();
    let asked: Vec<_> = revisions
        .iter()
        .map(|r| {
            (
                r["gate"].as_str().unwrap(),
                r["round"].as_u64().unwrap(),
                r["feedback"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        asked,
        [
            ("ideate", 1, "calmer, more pastel"),
            ("prepublish", 1, "redo clip 3, warmer light")
        ]
    );
    assert!(
        revisions[0]["by"].as_str().unwrap().starts_with("key:"),
        "the operator key"
    );
    assert!(revisions[1]["by"].as_str().unwrap().starts_with("token:"));
    let (ideate_cost, prepublish_cost) = (
        revisions[0]["costUsd"].as_f64().unwrap(),
        revisions[1]["costUsd"].as_f64().unwrap(),
    );
    assert_eq!(ideate_cost, 0.0, "scripted ideas cost nothing");
    let spent = run["cost"]["spentUsd"].as_f64().unwrap();
    assert!(
        prepublish_cost > 0.0 && prepublish_cost < spent,
        "{prepublish_cost} of {spent}"
    );
    let audit = system.api_state.store.list_audit(&run_id).await.unwrap();
    let revised: Vec<_> = audit
        .iter()
        .filter(|a| a.action == "revise")
        .map(|a| (a.gate.as_deref(), a.outcome.as_str()))
        .collect();
    assert_eq!(revised, [(Some("ideate"), "revised"), (Some("prepublish"), "revised")]);
    system.stop_idle().await;
}

async fn requests_for_changes_are_bounded_and_checked(db: &Db) {
    let projects = myloware_testkit::projects_with("", "[gates.ideate]\nmaxRevisions = 1\n");
    let dir = projects.path().display().to_string();
    let system = start(db, &[("PROJECTS_DIR", &dir)]).await;
    let run_id = system.aismr_at_ideate("u-bound").await;
    for (body, status) in [
        (json!({}), 422),
        (json!({"feedback": "   "}), 422),
        (json!({"feedback": "x".repeat(2001)}), 422),
    ] {
        let (got, answer) = revise(&system, &run_id, "ideate", body).await;
        assert_eq!(got, status, "{answer}");
    }
    let (status, answer) = revise(&system, &run_id, "prepublish", json!({"feedback": "later"})).await;
    assert_eq!(status, 409, "not reached yet: {answer}");
    assert_eq!(system.run(&run_id).await["gates"][0]["revisions"], 0, "nothing changed");

    let (status, _) = revise(&system, &run_id, "ideate", json!({"feedback": "other ideas"})).await;
    assert_eq!(status, 200);
    waiting_again(&system, &run_id, "ideate", 1).await;
    // A page opened before the revision does not approve the new ideas.
    let (status, answer) = system
        .post(
            &format!("{}/v1/hitl/approve/{run_id}/ideate", system.api),
            json!({"round": 0}),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("preview changed"),
        "{answer}"
    );
    assert_eq!(gate(&system.run(&run_id).await, "ideate")["status"], "awaiting");
    let (status, answer) = revise(&system, &run_id, "ideate", json!({"feedback": "again"})).await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer["detail"].as_str().unwrap().contains("maxRevisions"), "{answer}");
    // The page offers no third form once none is left.
    let link = system.link(&run_id, "ideate").await;
    let (_, html) = system.page(link["approvalUrl"].as_str().unwrap()).await;
    assert!(
        html.contains("Revision 1") && !html.contains("/v1/hitl/revise/"),
        "{html}"
    );

    system.reject(&run_id, "ideate", "no").await;
    let (status, _) = revise(&system, &run_id, "ideate", json!({"feedback": "too late"})).await;
    assert_eq!(status, 409, "a decided gate takes no revision");

    // A proposal is edited, not revised.
    let proposed = system
        .start_run(
            json!({"project": "aismr", "input": {"object": "moss"}, "options": {"requireWorkflowApproval": true}}),
        )
        .await;
    let (status, answer) = revise(&system, &proposed, "workflow", json!({"feedback": "other object"})).await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer["detail"].as_str().unwrap().contains("PATCH"), "{answer}");
    system.stop_idle().await;
}

conformance_tests!(
    changes_at_both_gates_redo_only_what_they_name,
    requests_for_changes_are_bounded_and_checked,
);
