//! A gate's policy from the project's definition: several distinct
//! approvers (`approvalsRequired`), named approvers (`approvers`), the
//! owner kept from approving (`selfApproval = false`). The API, the page,
//! chat and the audit show "1 of 2 approvals"; a refused decider is 403 and
//! recorded.

use std::time::Duration;

use myloware_db::Db;
use myloware_testkit::conformance_tests;
use myloware_testkit::system::{System, gate, start};
use serde_json::{Value, json};

const QUICK: Duration = Duration::from_secs(30);

const KEYS: &str = "ann:approver:ann-key-0123456789abcdef,bob:approver:bob-key-0123456789abcdef,\
                    own:approver:own-key-0123456789abcdef,carl:admin:carl-key-0123456789abcdef,\
                    dana:admin:dana-key-0123456789abcdef";

const POLICY: &str = "[gates.ideate]\napprovalsRequired = 2\n\n\
                      [gates.prepublish]\napprovalsRequired = 2\napprovers = [\"role:approver\", \"key:dana\"]\n\
                      selfApproval = false\n";

async fn decide_as(system: &System, key: &str, action: &str, run_id: &str, gate: &str) -> (u16, Value) {
    let response = system
        .http
        .post(format!("{}/v1/hitl/{action}/{run_id}/{gate}", system.api))
        .header("x-api-key", key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    myloware_testkit::status_and_json(response).await
}

async fn gates_take_the_approvals_and_approvers_their_project_names(db: &Db) {
    let projects = myloware_testkit::projects_with("", POLICY);
    let dir = projects.path().display().to_string();
    let system = start(db, &[("PROJECTS_DIR", &dir), ("API_KEYS", KEYS)]).await;
    let run_id = system
        .start_run(json!({"project": "aismr", "input": {"object": "candles"}, "options": {"user_id": "own"}}))
        .await;
    system.wait_status(&run_id, "awaiting_ideate", QUICK).await;

    // Ideate needs two approvals: the owner's chat counts as one ("1 of 2").
    let reply = system.chat_ok("own", "approve").await;
    let text = reply["response"].as_str().unwrap();
    assert!(text.contains("1 of 2 approvals"), "{text}");
    let run = system.run(&run_id).await;
    let ideate = gate(&run, "ideate");
    assert_eq!(
        (ideate["status"].as_str(), ideate["approvals"].as_array().map(Vec::len)),
        (Some("awaiting"), Some(1))
    );
    assert_eq!(ideate["waitingFor"], "1 of 2 approvals; 1 more approval");
    // The same approver again is not a second approval.
    assert!(
        system.chat_ok("own", "approve").await["response"]
            .as_str()
            .unwrap()
            .contains("1 of 2")
    );
    let (status, answer) = decide_as(&system, "ann-key-0123456789abcdef", "approve", &run_id, "ideate").await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("approved")), "{answer}");
    system.wait_status(&run_id, "awaiting_prepublish", QUICK).await;

    // Prepublish: a link names no one; carl is not an approver; the owner
    // may not approve; each refusal is 403 and recorded.
    let link = system.link(&run_id, "prepublish").await;
    let (_, page) = system.page(link["approvalUrl"].as_str().unwrap()).await;
    assert!(page.contains("0 of 2 approvals; 2 more approvals<"), "{page}");
    assert!(
        !page.contains("key:dana"),
        "a link's holder is not told who approves: {page}"
    );
    let response = system
        .http
        .post(link["approvalUrl"].as_str().unwrap())
        .form(&[("round", "0")])
        .send()
        .await
        .unwrap();
    let (status, answer) = myloware_testkit::status_and_json(response).await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("a link names no one"),
        "{answer}"
    );
    let (status, answer) = decide_as(&system, "carl-key-0123456789abcdef", "approve", &run_id, "prepublish").await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("only from role:approver, key:dana"),
        "{answer}"
    );
    let (status, answer) = decide_as(&system, "own-key-0123456789abcdef", "approve", &run_id, "prepublish").await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer["detail"].as_str().unwrap().contains("selfApproval"), "{answer}");
    assert_eq!(
        gate(&system.run(&run_id).await, "prepublish")["approvals"],
        json!([]),
        "nothing counted"
    );

    let (status, answer) = decide_as(&system, "bob-key-0123456789abcdef", "approve", &run_id, "prepublish").await;
    assert_eq!(
        (
            status,
            answer["status"].as_str(),
            answer["approvals"].as_u64(),
            answer["approvalsRequired"].as_u64()
        ),
        (200, Some("approval_counted"), Some(1), Some(2)),
        "{answer}"
    );
    let (status, answer) = decide_as(&system, "bob-key-0123456789abcdef", "approve", &run_id, "prepublish").await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("already_counted")),
        "{answer}"
    );
    assert_eq!(system.run(&run_id).await["status"], "awaiting_prepublish");
    let (status, answer) = decide_as(&system, "dana-key-0123456789abcdef", "approve", &run_id, "prepublish").await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("approved")), "{answer}");
    let run = system.wait_status(&run_id, "published", QUICK).await;
    let prepublish = gate(&run, "prepublish");
    let approvers: Vec<&str> = prepublish["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["by"].as_str().unwrap())
        .collect();
    assert_eq!(approvers, ["key:bob", "key:dana"]);

    let audit = system.api_state.store.list_audit(&run_id).await.unwrap();
    let prepublish: Vec<(&str, bool, &str)> = audit
        .iter()
        .filter(|a| a.gate.as_deref() == Some("prepublish") && a.action == "approve")
        .map(|a| (a.actor.as_str(), a.accepted, a.outcome.as_str()))
        .collect();
    assert_eq!(prepublish.len(), 6, "{prepublish:?}");
    assert!(
        prepublish[0].0.starts_with("token:") && !prepublish[0].1,
        "{prepublish:?}"
    );
    assert_eq!((prepublish[1].0, prepublish[1].1), ("key:carl", false));
    assert!(prepublish[1].2.contains("only from"), "{prepublish:?}");
    assert_eq!((prepublish[2].0, prepublish[2].1), ("key:own", false));
    assert!(prepublish[2].2.contains("selfApproval"), "{prepublish:?}");
    assert_eq!(
        &prepublish[3..],
        [
            ("key:bob", true, "approval_counted: 1 of 2 approvals"),
            ("key:bob", true, "already_counted: 1 of 2 approvals"),
            ("key:dana", true, "approved"),
        ]
    );
    system.stop_idle().await;
}

/// POSTs the approve form of a link's token, as a browser does.
async fn approve_by_link(system: &System, run_id: &str, gate: &str, token: &str) -> (u16, Value) {
    let response = system
        .http
        .post(format!("{}/v1/hitl/approve/{run_id}/{gate}", system.api))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    myloware_testkit::status_and_json(response).await
}

/// Links name no one: however many a person holds (or however they spell
/// one), they are one approver, and never the owner's way around
/// `selfApproval = false`.
async fn links_count_as_one_approver_and_never_as_the_owner(db: &Db) {
    let projects = myloware_testkit::projects_with(
        "",
        "[gates.ideate]\napprovalsRequired = 2\n\n[gates.prepublish]\nselfApproval = false\n",
    );
    let dir = projects.path().display().to_string();
    let system = start(db, &[("PROJECTS_DIR", &dir), ("API_KEYS", KEYS)]).await;
    let run_id = system
        .start_run(json!({"project": "aismr", "input": {"object": "soap"}, "options": {"user_id": "own"}}))
        .await;
    system.wait_status(&run_id, "awaiting_ideate", QUICK).await;
    let first = system.link(&run_id, "ideate").await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, answer) = approve_by_link(&system, &run_id, "ideate", &first).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("approval_counted")),
        "{answer}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = system.link(&run_id, "ideate").await["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(first, second, "another link");
    for token in [second.clone(), first.to_uppercase(), format!(" {first} ")] {
        let (status, answer) = approve_by_link(&system, &run_id, "ideate", &token).await;
        assert_eq!(
            (status, answer["status"].as_str()),
            (200, Some("already_counted")),
            "{token}: {answer}"
        );
    }
    let (status, answer) = decide_as(&system, "ann-key-0123456789abcdef", "approve", &run_id, "ideate").await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("approved")), "{answer}");
    let run = system.wait_status(&run_id, "awaiting_prepublish", QUICK).await;
    let ideate = gate(&run, "ideate");
    let approvers: Vec<&str> = ideate["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["by"].as_str().unwrap())
        .collect();
    assert_eq!(approvers, ["link", "key:ann"]);

    // The owner got the link: with selfApproval = false it approves nothing.
    let token = system.link(&run_id, "prepublish").await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, answer) = approve_by_link(&system, &run_id, "prepublish", &token).await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer["detail"].as_str().unwrap().contains("a link"), "{answer}");
    let (status, answer) = decide_as(&system, "own-key-0123456789abcdef", "approve", &run_id, "prepublish").await;
    assert_eq!(status, 403, "{answer}");
    let (status, _) = decide_as(&system, "ann-key-0123456789abcdef", "approve", &run_id, "prepublish").await;
    assert_eq!(status, 200);
    system.wait_status(&run_id, "published", QUICK).await;

    // The key that started a run owns it, whatever userId it named (none here).
    let response = system
        .http
        .post(format!("{}/v1/runs/start", system.api))
        .header("x-api-key", "dana-key-0123456789abcdef")
        .json(&json!({"project": "aismr", "input": {"object": "wax"}}))
        .send()
        .await
        .unwrap();
    let (status, started) = myloware_testkit::status_and_json(response).await;
    assert_eq!(status, 201, "{started}");
    let theirs = started["runId"].as_str().unwrap().to_string();
    system.wait_status(&theirs, "awaiting_ideate", QUICK).await;
    for key in ["dana-key-0123456789abcdef", "ann-key-0123456789abcdef"] {
        let (status, answer) = decide_as(&system, key, "approve", &theirs, "ideate").await;
        assert_eq!(status, 200, "{answer}");
    }
    system.wait_status(&theirs, "awaiting_prepublish", QUICK).await;
    let (status, answer) = decide_as(&system, "dana-key-0123456789abcdef", "approve", &theirs, "prepublish").await;
    assert_eq!(status, 403, "dana started it: {answer}");
    system.cancel(&theirs, json!({})).await;
    system.stop_idle().await;
}

conformance_tests!(
    gates_take_the_approvals_and_approvers_their_project_names,
    links_count_as_one_approver_and_never_as_the_owner,
);
