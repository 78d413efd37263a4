//! The orchestrator's skeleton over real HTTP.

use myloware_testkit::JsonAnswer;
use std::collections::HashMap;
use std::sync::Arc;

use std::time::Duration;

use myloware_core::ProviderMode;
use myloware_core::config::Config;
use myloware_core::project::{Catalog, ProjectSpec};
use myloware_db::Db;
use myloware_orchestrator::store::ExecStatus;
use myloware_orchestrator::{OrchestratorServer, OrchestratorState};
use myloware_testkit::{conformance_tests, start_execution, wait_until};
use serde_json::{Value, json};

const KEY: &str = "orchestrator-test-key";
const INTERNAL: &str = "orchestrator-test-internal-secret";

/// Sends `request` as the API does: signed with the internal credential.
async fn internal(request: reqwest::RequestBuilder) -> reqwest::Response {
    let client = reqwest::Client::new();
    let mut request = request.build().unwrap();
    let keys = myloware_core::internal::InternalKeys::new(INTERNAL.into(), None);
    myloware_http::internal::sign(&keys, &mut request);
    client.execute(request).await.unwrap()
}

async fn spawn(db: &Db) -> String {
    spawn_with(db, &[]).await
}

async fn spawn_with(db: &Db, vars: &[(&'static str, &'static str)]) -> String {
    let mut env: HashMap<&str, &str> = [
        ("API_KEY", KEY),
        ("INTERNAL_SECRET", INTERNAL),
        ("ORCHESTRATOR_PORT", "0"),
        ("BIND_HOST", "127.0.0.1"),
        ("API_URL", "http://127.0.0.1:9"),
    ]
    .into();
    env.extend(vars.iter().copied());
    let config = Config::from_lookup(|var| env.get(var).map(|v| v.to_string())).unwrap();
    let state = OrchestratorState::new(Arc::new(config), myloware_orchestrator::store::open(db));
    let server = OrchestratorServer::bind(state).await.unwrap();
    let base = format!("http://{}", server.local_addr());
    tokio::spawn(server.run(std::future::pending()));
    base
}

async fn health_and_metrics_are_open_everything_else_needs_the_internal_credential(db: &Db) {
    let base = spawn(db).await;
    let http = reqwest::Client::new();

    let health: Value = http.get(format!("{base}/health")).json_answer().await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["service"], "orchestrator");

    let response = http.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"detail": "this route takes the internal credential only"})
    );
    // An operator key is no credential here.
    let response = http.get(format!("{base}/ready")).header("x-api-key", KEY).sent().await;
    assert_eq!(response.status(), 401);

    let response = internal(http.get(format!("{base}/ready"))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap()["checks"],
        json!({"database": "ok"})
    );

    let response = internal(http.get(format!("{base}/v1/nothing"))).await;
    assert_eq!(response.status(), 404);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"detail": "not found"}));

    let metrics = http.get(format!("{base}/metrics")).text_answer().await;
    assert!(
        metrics.lines().any(|l| l.starts_with("http_requests_total{")
            && l.contains("service=\"orchestrator\"")
            && l.contains("route=\"/ready\"")
            && l.contains("status=\"401\"")),
        "{metrics}"
    );
}

/// The test_video_gen project, as the API would send it.
fn smoke_spec() -> ProjectSpec {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../projects");
    Catalog::load(&dir).unwrap().get("test_video_gen").unwrap().clone()
}

/// Starts an execution of `spec` in `mode`, waits until it has failed: the
/// error of its `execution.failed` event.
async fn run_until_failed(db: &Db, base: &str, run_id: &str, spec: ProjectSpec, mode: ProviderMode) -> Value {
    let start = start_execution(run_id, spec, mode, json!({"prompt": "test"}));
    let response = internal(
        reqwest::Client::new()
            .post(format!("{base}/v1/executions"))
            .json(&start),
    )
    .await;
    assert_eq!(response.status(), 202);
    let store = &myloware_orchestrator::store::open(db);
    let what = format!("{run_id} to fail");
    wait_until(
        Duration::from_secs(30),
        Duration::from_millis(25),
        &what,
        move || async move {
            let status = store.get_execution(run_id).await.unwrap().unwrap().status;
            (status == ExecStatus::Failed)
                .then_some(())
                .ok_or(format!("still {status:?}"))
        },
    )
    .await;
    let events = store.outbox(run_id).await.unwrap();
    let failed = events.iter().find(|e| e.kind == "execution.failed");
    failed.expect("a failure event").data["error"].clone()
}

/// A live-mode run on an orchestrator without the providers' secrets fails
/// its first provider step with a message naming the missing variable.
async fn live_mode_without_keys_fails_the_step_naming_the_variable(db: &Db) {
    let base = spawn(db).await;
    let error = run_until_failed(db, &base, "run_livenokeys1", smoke_spec(), ProviderMode::Live).await;
    assert_eq!(error["code"], "providers.not_configured");
    assert!(
        error["message"].as_str().unwrap().contains("KIEAI_API_KEY is not set"),
        "{error}"
    );
    assert_eq!(error["persona"], "riley");
    let store = myloware_orchestrator::store::open(db);
    assert!(
        store.mock_calls("run_livenokeys1").await.unwrap().is_empty(),
        "never falls back to the mocks"
    );
}

/// With `specs.clipRetries = 1` a failed clip is submitted once more (a new,
/// journaled, paid call); when that fails too the run fails, saying so.
async fn a_project_may_retry_a_failed_clip_once(db: &Db) {
    let base = spawn_with(
        db,
        &[("MOCK_KIEAI_FAILURE_RATE", "1"), ("MOCK_PROVIDER_DELAY_MS", "10")],
    )
    .await;
    let mut spec = smoke_spec();
    spec.specs.as_mut().unwrap().clip_retries = 1;
    let error = run_until_failed(db, &base, "run_retryclip001", spec, ProviderMode::Mock).await;
    let store = myloware_orchestrator::store::open(db);
    let calls = store.mock_calls("run_retryclip001").await.unwrap();
    let keys: Vec<&str> = calls
        .iter()
        .filter(|c| c.operation == "submit")
        .map(|c| c.key.as_str())
        .collect();
    assert_eq!(
        keys.iter().filter(|k| **k == "run_retryclip001:riley:clip:0").count(),
        1,
        "{keys:?}"
    );
    assert!(keys.len() <= 4, "at most two tries per clip: {keys:?}");
    assert!(
        keys.iter().any(|k| k.ends_with(":attempt:1")),
        "a retry was submitted: {keys:?}"
    );
    assert!(
        error["message"].as_str().unwrap().contains("after 2 attempts"),
        "{error}"
    );
}

/// The contract's requests and answers over HTTP: a start is idempotent
/// on `runId`, a gate decided before answers by the one rule (the same
/// decision is a duplicate, the opposite a conflict), and refusals are
/// `{"detail": ...}` with the status that says why.
async fn executions_answer_the_typed_contract(db: &Db) {
    let base = spawn_with(db, &[("MOCK_PROVIDER_DELAY_MS", "10")]).await;
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| internal(http.post(format!("{base}{path}")).json(&body));
    let answer = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };

    let spec = smoke_spec();
    let start = start_execution("run_contract0001", spec, ProviderMode::Mock, json!({"prompt": "test"}));
    let start = serde_json::to_value(&start).unwrap();
    assert_eq!(
        answer(post("/v1/executions", start.clone()).await).await,
        (202, json!({"runId": "run_contract0001", "status": "queued"}))
    );
    assert_eq!(
        answer(post("/v1/executions", start.clone()).await).await,
        (200, json!({"runId": "run_contract0001", "status": "exists"}))
    );
    let mut other = start.clone();
    other["input"] = json!({"prompt": "another"});
    assert_eq!(
        answer(post("/v1/executions", other).await).await,
        (
            409,
            json!({"detail": "an execution with this runId exists with a different request"})
        )
    );
    let mut bad_id = start;
    bad_id["runId"] = json!("not-a-run");
    assert_eq!(
        answer(post("/v1/executions", bad_id).await).await,
        (422, json!({"detail": "runId is not a run id"}))
    );

    let resume = "/v1/executions/run_contract0001/resume";
    let (status, body) = answer(post(resume, json!({"gate": "ideate", "decision": "maybe"})).await).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "decision"]), "{body}");
    assert!(
        body["detail"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("decision must be approve, reject or revise"),
        "{body}"
    );
    assert_eq!(
        answer(
            post(
                "/v1/executions/run_unknown00001/resume",
                json!({"gate": "ideate", "decision": "approve"})
            )
            .await
        )
        .await,
        (404, json!({"detail": "execution not found"}))
    );
    // A decision recorded for the gate (as a resume records it): the same
    // one again is a duplicate, the opposite one a conflict.
    let decided =
        json!({"signalId": "gate:ideate", "signal": {"type": "gate.decision", "gate": "ideate", "approve": true}});
    assert_eq!(
        answer(post("/v1/executions/run_contract0001/signals", decided.clone()).await).await,
        (202, json!({"status": "accepted"}))
    );
    assert_eq!(
        answer(post("/v1/executions/run_contract0001/signals", decided).await).await,
        (200, json!({"status": "duplicate"}))
    );
    let decided_again =
        || json!({"signalId": "gate:ideate", "signal": {"type": "gate.decision", "gate": "ideate", "approve": true}});
    assert_eq!(
        answer(post(resume, json!({"gate": "ideate", "decision": "approve"})).await).await,
        (200, json!({"status": "duplicate"}))
    );
    assert_eq!(
        answer(
            post(
                resume,
                json!({"gate": "ideate", "decision": "reject", "approver": "key:ops"})
            )
            .await
        )
        .await,
        (409, json!({"detail": "the ideate gate was already decided otherwise"}))
    );
    assert_eq!(
        answer(post(resume, json!({"gate": "prepublish", "decision": "approve"})).await).await,
        (
            409,
            json!({"detail": "the execution is not waiting at the prepublish gate"})
        )
    );

    // A run's signals together: each once per id, in order, the repeated
    // one (before, and within the batch) a duplicate.
    let batch = "/v1/executions/run_contract0001/signals/batch";
    let clip = |id: &str, index: u32| json!({"signalId": id, "signal": {"type": "clip.reported", "taskId": id, "index": index}});
    assert_eq!(
        answer(
            post(
                batch,
                json!({"signals": [clip("kieai:a", 0), decided_again(), clip("kieai:b", 1), clip("kieai:a", 0)]})
            )
            .await
        )
        .await,
        (
            200,
            json!({"results": [
                {"signalId": "kieai:a", "status": "accepted"},
                {"signalId": "gate:ideate", "status": "duplicate"},
                {"signalId": "kieai:b", "status": "accepted"},
                {"signalId": "kieai:a", "status": "duplicate"},
            ]})
        )
    );
    let (status, body) = answer(post(batch, json!({"signals": []})).await).await;
    assert_eq!(
        (status, &body["detail"]),
        (422, &json!("signals must hold 1 to 100 signals"))
    );
    let too_many: Vec<Value> = (0..101).map(|i| clip(&format!("kieai:n{i}"), 0)).collect();
    assert_eq!(answer(post(batch, json!({"signals": too_many})).await).await.0, 422);
    assert_eq!(
        answer(
            post(
                "/v1/executions/run_unknown00001/signals/batch",
                json!({"signals": [clip("kieai:c", 0)]})
            )
            .await
        )
        .await,
        (404, json!({"detail": "execution not found"}))
    );
    let executions = myloware_orchestrator::store::open(db);
    for id in ["kieai:a", "kieai:b"] {
        assert!(
            executions.find_signal("run_contract0001", id).await.unwrap().is_some(),
            "{id} stored"
        );
    }

    let (status, body) = answer(post("/v1/executions/run_contract0001/cancel", json!({})).await).await;
    assert_eq!(
        (status, &body["runId"], &body["cancelRequested"]),
        (202, &json!("run_contract0001"), &json!(true))
    );
    assert_eq!(
        answer(post("/v1/executions/run_unknown00001/cancel", json!({})).await).await,
        (404, json!({"detail": "execution not found"}))
    );
}

conformance_tests!(
    executions_answer_the_typed_contract,
    a_project_may_retry_a_failed_clip_once,
    health_and_metrics_are_open_everything_else_needs_the_internal_credential,
    live_mode_without_keys_fails_the_step_naming_the_variable,
);
