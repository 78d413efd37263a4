//! Security: roles. `API_KEYS` entries `name:role:key`: each route takes
//! the permission its role must grant (403 otherwise, 401 for an unknown
//! key), and a decision or a cancel records the key's name, never what the
//! caller claims to be.

use myloware_testkit::JsonAnswer;
use std::time::Duration;

use myloware_db::Db;

use myloware_testkit::conformance_tests;
use serde_json::{Value, json};

use myloware_testkit::system::{self, API_KEY, System, gate};

const QUICK: Duration = Duration::from_secs(30);
const OPS: &str = "roles-operator-key";
const ANN: &str = "roles-approver-key";
const VIC: &str = "roles-viewer-key";
const BOGUS: &str = "not-a-key-anyone-was-given";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Needs {
    Read,
    Operate,
    Decide,
    Audit,
    Administer,
}

async fn each_role_reaches_only_its_routes(db: &Db) {
    let (system, run_id) = at_ideate_with_roles(db).await;
    let routes: Vec<(&str, String, Value, Needs)> = vec![
        ("GET", "/v1/runs".into(), Value::Null, Needs::Read),
        ("GET", format!("/v1/runs/{run_id}"), Value::Null, Needs::Read),
        ("GET", "/v1/projects".into(), Value::Null, Needs::Read),
        ("GET", "/v1/dlq".into(), Value::Null, Needs::Read),
        ("GET", "/v1/costs".into(), Value::Null, Needs::Read),
        ("GET", "/v1/audit".into(), Value::Null, Needs::Audit),
        ("GET", format!("/v1/runs/{run_id}/audit"), Value::Null, Needs::Audit),
        ("GET", "/openapi.json".into(), Value::Null, Needs::Read),
        (
            "POST",
            "/v1/runs/start".into(),
            json!({"project": "no_such_project", "input": {"prompt": "x"}}),
            Needs::Operate,
        ),
        ("POST", "/v1/runs/run_unknown/cancel".into(), json!({}), Needs::Operate),
        (
            "PATCH",
            "/v1/runs/run_unknown/proposal".into(),
            json!({"input": {"prompt": "x"}}),
            Needs::Operate,
        ),
        (
            "POST",
            "/v1/chat/brendan".into(),
            json!({"user_id": "roles-chat", "message": "hello"}),
            Needs::Operate,
        ),
        ("POST", "/v1/dlq/999999/replay".into(), json!({}), Needs::Operate),
        ("GET", "/v1/hitl/pending".into(), Value::Null, Needs::Decide),
        (
            "GET",
            format!("/v1/hitl/link/{run_id}/ideate"),
            Value::Null,
            Needs::Decide,
        ),
        (
            "POST",
            "/v1/hitl/approve/run_unknown/ideate".into(),
            json!({}),
            Needs::Decide,
        ),
        (
            "POST",
            "/v1/retention/prune".into(),
            json!({"olderThanDays": 30, "dryRun": true}),
            Needs::Administer,
        ),
    ];
    let roles: [(&str, &str, &[Needs]); 4] = [
        (
            "admin",
            API_KEY,
            &[
                Needs::Read,
                Needs::Operate,
                Needs::Decide,
                Needs::Audit,
                Needs::Administer,
            ],
        ),
        ("operator", OPS, &[Needs::Read, Needs::Operate, Needs::Audit]),
        ("approver", ANN, &[Needs::Read, Needs::Decide, Needs::Audit]),
        ("viewer", VIC, &[Needs::Read]),
    ];
    for (role, key, grants) in roles {
        for (method, path, body, needs) in &routes {
            let status = call(&system, method, path, body, Some(key)).await;
            if grants.contains(needs) {
                assert!(
                    status != 401 && status != 403,
                    "{role} may {method} {path} ({needs:?}), got {status}"
                );
            } else {
                assert_eq!(status, 403, "{role} may not {method} {path} ({needs:?})");
            }
        }
    }
    for (method, path, body, needs) in &routes {
        let status = call(&system, method, path, body, Some(BOGUS)).await;
        // The approve route is open to link tokens: an unknown key (and no
        // token) is a refused decision there, a 401 everywhere else.
        let want = if *needs == Needs::Decide && path.starts_with("/v1/hitl/approve") {
            403
        } else {
            401
        };
        assert_eq!(status, want, "an unknown key on {method} {path}");
    }
    // None of it moved the run.
    assert_eq!(system.run(&run_id).await["status"], "awaiting_ideate");
    system.stop_idle().await;
}

async fn the_approver_is_the_credential_and_the_claim_a_note(db: &Db) {
    let (system, run_id) = at_ideate_with_roles(db).await;

    let claim = json!({"approver": "ceo@company.com"});
    post_ok(&system, ANN, &format!("/v1/hitl/approve/{run_id}/ideate"), &claim).await;
    let run = system.wait_status(&run_id, "awaiting_prepublish", QUICK).await;
    let ideate = gate(&run, "ideate");
    assert_eq!(ideate["approver"], "key:ann", "{ideate}");
    assert_eq!(ideate["note"], "ceo@company.com", "{ideate}");

    // Through a link token: the token's fingerprint.
    let link = system
        .get(&format!("{}/v1/hitl/link/{run_id}/prepublish", system.api))
        .await;
    let response = system
        .http
        .post(link["approvalUrl"].as_str().unwrap())
        .json(&json!({"approver": "ceo@company.com"}))
        .sent()
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let run = system
        .wait_for(&run_id, QUICK, "prepublish decided", |run| {
            gate(run, "prepublish")["decision"] == "approve"
        })
        .await;
    let approver = gate(&run, "prepublish")["approver"].as_str().unwrap().to_string();
    let fingerprint = approver.strip_prefix("token:").unwrap_or_else(|| panic!("{approver}"));
    assert!(
        fingerprint.len() == 16 && fingerprint.chars().all(|c| c.is_ascii_hexdigit()),
        "{approver}"
    );
    assert!(!link["token"].as_str().unwrap().contains(fingerprint));
    system.wait_status(&run_id, "published", QUICK).await;
    system.stop_idle().await;
}

async fn a_cancel_records_the_key_that_asked(db: &Db) {
    let (system, run_id) = at_ideate_with_roles(db).await;
    let cancel = json!({"reason": "wrong topic", "actor": "admin@company.com"});
    post_ok(&system, OPS, &format!("/v1/runs/{run_id}/cancel"), &cancel).await;
    let run = system.wait_status(&run_id, "cancelled", QUICK).await;
    let artifacts = system.api_state.store.list_artifacts(&run_id).await.unwrap();
    let cancelled = artifacts
        .iter()
        .find(|a| a.kind == "run.cancelled")
        .unwrap_or_else(|| panic!("no run.cancelled: {run:#}"));
    assert_eq!(cancelled.data["by"], "key:ops", "{}", cancelled.data);
    system.stop_idle().await;
}

async fn an_operator_may_chat_but_not_decide_in_chat(db: &Db) {
    let user = "ops-chat";
    let (system, run_id, _) = proposed_by_operator(db, user).await;

    let reply = chat(&system, OPS, user, "approve").await;
    assert!(
        reply["response"].as_str().unwrap().contains("may not decide gates"),
        "{reply}"
    );
    let run = system.run(&run_id).await;
    assert_eq!(run["status"], "pending_workflow", "nothing decided");
    assert!(gate(&run, "workflow")["decision"].is_null(), "{run:#}");

    // An admin's "approve" in the same chat decides, as the admin's key.
    chat(&system, API_KEY, user, "approve").await;
    let run = system
        .wait_for(&run_id, QUICK, "workflow decided", |run| {
            gate(run, "workflow")["decision"] == "approve"
        })
        .await;
    let approver = gate(&run, "workflow")["approver"].as_str().unwrap().to_string();
    assert!(approver.starts_with("key:") && approver != "key:ops", "{approver}");
    // The audit keeps the operator's refused attempt and the admin's decision.
    let audit = system.api_state.store.list_audit(&run_id).await.unwrap();
    let attempts: Vec<_> = audit
        .iter()
        .filter(|a| a.gate.as_deref() == Some("workflow"))
        .map(|a| (a.actor.as_str(), a.accepted, a.outcome.as_str()))
        .collect();
    assert_eq!(
        attempts,
        [
            (
                "key:ops",
                false,
                "the key \"ops\" (operator) may not decide gates; ask an approver"
            ),
            (approver.as_str(), true, "approved"),
        ]
    );
    system.wait_status(&run_id, "awaiting_ideate", QUICK).await;
    system.stop_idle().await;
}

/// An approval link is a credential: a key that may not decide never
/// receives one, neither in a chat reply nor in a transcript it reads.
async fn links_never_reach_a_key_that_may_not_decide(db: &Db) {
    let user = "ops-proposes";
    let (system, run_id, reply) = proposed_by_operator(db, user).await;
    assert_eq!(reply["links"], json!([]), "an operator got a link: {reply}");
    let text = reply["response"].as_str().unwrap();
    assert!(!text.contains("token=") && text.contains(&run_id), "{text}");

    // The run reaches its ideate gate: the owner's transcript holds a link.
    let approve = format!("/v1/hitl/approve/{run_id}/workflow");
    post_ok(&system, ANN, &approve, &Value::Null).await;
    system.wait_status(&run_id, "awaiting_ideate", QUICK).await;
    let transcript = |key: &'static str| {
        let system = &system;
        async move {
            let response = system
                .http
                .get(format!("{}/v1/chat/brendan/{user}/messages", system.api))
                .header("x-api-key", key)
                .sent()
                .await;
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let wait = std::time::Instant::now() + QUICK;
    let full = loop {
        let full = transcript(ANN).await;
        if full.to_string().contains("token=") {
            break full;
        }
        assert!(
            std::time::Instant::now() < wait,
            "no gate link in the transcript: {full:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(links(&full).any(Value::is_string), "{full:#}");
    for key in [VIC, OPS] {
        let shown = transcript(key).await;
        assert!(!shown.to_string().contains("token="), "{key} sees a link: {shown:#}");
        assert!(links(&shown).all(Value::is_null), "{key} sees a link: {shown:#}");
        assert!(shown.to_string().contains("[approval link]"), "{shown:#}");
    }
    system.stop_idle().await;
}

conformance_tests!(
    each_role_reaches_only_its_routes,
    links_never_reach_a_key_that_may_not_decide,
    the_approver_is_the_credential_and_the_claim_a_note,
    a_cancel_records_the_key_that_asked,
    an_operator_may_chat_but_not_decide_in_chat,
);

// Helpers.

async fn start_with_roles(db: &Db) -> System {
    let keys = format!("ops:operator:{OPS},ann:approver:{ANN},vic:viewer:{VIC}");
    system::start(db, &[("API_KEYS", &keys)]).await
}

/// The `link` of each message of a chat transcript.
fn links(transcript: &Value) -> impl Iterator<Item = &Value> {
    let messages = transcript["messages"].as_array().expect("a transcript's messages");
    messages.iter().map(|m| &m["link"])
}

/// A system with the roles' keys, and a run of `u-1` at its ideate gate.
async fn at_ideate_with_roles(db: &Db) -> (System, String) {
    let system = start_with_roles(db).await;
    let run_id = system.aismr_at_ideate("u-1").await;
    (system, run_id)
}

/// `method path` on the API with `key` (and `body` as JSON unless null): the status.
async fn call(system: &System, method: &str, path: &str, body: &Value, key: Option<&str>) -> u16 {
    let mut request = system
        .http
        .request(method.parse().unwrap(), format!("{}{path}", system.api));
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    if !body.is_null() {
        request = request.json(body);
    }
    request.send().await.unwrap().status().as_u16()
}

/// `POST path` on the API with `key` (and `body` as JSON unless null): it must be 200.
async fn post_ok(system: &System, key: &str, path: &str, body: &Value) {
    let status = call(system, "POST", path, body, Some(key)).await;
    assert_eq!(status, 200, "POST {path} as {key}");
}

/// One chat turn of `user` with `key`; it must be 200: the reply.
async fn chat(system: &System, key: &str, user: &str, message: &str) -> Value {
    let response = system
        .http
        .post(format!("{}/v1/chat/brendan", system.api))
        .header("x-api-key", key)
        .json(&json!({"user_id": user, "message": message}))
        .sent()
        .await;
    let (status, reply) = myloware_testkit::status_and_json(response).await;
    assert_eq!(status, 200, "{reply}");
    reply
}

/// A system with the roles' keys, and a run the operator's key proposed
/// in `user`'s chat: the system, the run and the chat's reply.
async fn proposed_by_operator(db: &Db, user: &str) -> (System, String, Value) {
    let system = start_with_roles(db).await;
    let reply = chat(&system, OPS, user, "make an AISMR video about candles").await;
    let run_id = reply["run_ids"][0].as_str().expect("a proposal").to_string();
    (system, run_id, reply)
}
