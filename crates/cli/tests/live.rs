//! A whole aismr run in live mode, against fake kie.ai, Shotstack and
//! Upload-Post servers on loopback that speak the providers' HTTP: the
//! fake kie.ai answers with task ids and posts signed callbacks to the API.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use myloware_db::{Db, conformance_tests};
use serde_json::{Value, json};
use support::{API_KEY, start};

const SIGNING: &str = "live-test-kie-signing-secret";

#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<(String, Value)>>>);

impl Calls {
    fn push(&self, what: &str, body: Value) {
        self.0.lock().unwrap().push((what.to_string(), body));
    }

    fn count(&self, what: &str) -> usize {
        self.0.lock().unwrap().iter().filter(|(w, _)| w == what).count()
    }
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

/// How the fake kie.ai behaves after accepting a clip.
#[derive(Clone, Copy, PartialEq)]
enum Kie {
    /// Posts a signed success callback.
    Callback,
    /// Posts a signed failure callback (code 501).
    FailureCallback,
    /// Never calls back; `record-info` says success.
    SilentSuccess,
    /// Never calls back; `record-info` says generation failed (3).
    SilentFailure,
}

/// kie.ai: task ids, then (depending on `behaviour`) a signed callback to
/// the URL it was given, and `record-info` answers.
async fn fake_kie(calls: Calls) -> String {
    fake_kie_behaving(calls, Kie::Callback).await
}

async fn fake_kie_behaving(calls: Calls, behaviour: Kie) -> String {
    let generate = move |State(calls): State<Calls>, headers: HeaderMap, Json(body): Json<Value>| async move {
        assert_eq!(headers["authorization"], "Bearer kie-live-key");
        let task_id = format!("task-{}", calls.count("kieai.submit"));
        calls.push("kieai.submit", body.clone());
        let callback = body["callBackUrl"].as_str().unwrap().to_string();
        let task = task_id.clone();
        if matches!(behaviour, Kie::SilentSuccess | Kie::SilentFailure) {
            return Json(json!({"code": 200, "msg": "success", "data": {"taskId": task_id}}));
        }
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let timestamp = chrono::Utc::now().timestamp().to_string();
            let signature = myloware_core::signing::kieai_signature(SIGNING.as_bytes(), &task, &timestamp);
            let body = if behaviour == Kie::FailureCallback {
                json!({"code": 501, "msg": "content policy violation", "data": {"taskId": task}})
            } else {
                json!({"code": 200, "msg": "success",
                    "data": {"taskId": task, "info": {"resultUrls": [format!("https://cdn.fake-kie/{task}.mp4")]}}})
            };
            reqwest::Client::new()
                .post(callback)
                .header("x-webhook-timestamp", timestamp)
                .header("x-webhook-signature", signature)
                .json(&body)
                .send()
                .await
                .unwrap();
        });
        Json(json!({"code": 200, "msg": "success", "data": {"taskId": task_id}}))
    };
    let credit = |headers: HeaderMap| async move {
        if headers["authorization"] == "Bearer kie-live-key" {
            Json(json!({"code": 200, "msg": "success", "data": 100}))
        } else {
            Json(json!({"code": 401, "msg": "Unauthorized: invalid API key"}))
        }
    };
    let record_info = move |axum::extract::Query(query): axum::extract::Query<
        std::collections::HashMap<String, String>,
    >| async move {
        let task = query.get("taskId").cloned().unwrap_or_default();
        Json(match behaviour {
            Kie::SilentSuccess => json!({"code": 200, "data": {"taskId": task, "successFlag": 1,
                "response": {"resultUrls": [format!("https://cdn.fake-kie/{task}.mp4")]}}}),
            Kie::SilentFailure => json!({"code": 200, "data": {"taskId": task, "successFlag": 3,
                "errorMessage": "generation failed upstream"}}),
            _ => json!({"code": 200, "data": {"taskId": task, "successFlag": 0}}),
        })
    };
    serve(
        axum::Router::new()
            .route("/api/v1/veo/generate", post(generate))
            .route("/api/v1/veo/record-info", get(record_info))
            .route("/api/v1/chat/credit", get(credit))
            .with_state(calls),
    )
    .await
}

async fn fake_shotstack(calls: Calls) -> String {
    let render = |State(calls): State<Calls>, Json(body): Json<Value>| async move {
        calls.push("shotstack.render", body);
        Json(json!({"success": true, "message": "Created", "response": {"id": "render-1"}}))
    };
    let status = || async {
        Json(
            json!({"success": true, "response": {"id": "render-1", "status": "done", "url": "https://cdn.fake-shotstack/render-1.mp4"}}),
        )
    };
    serve(
        axum::Router::new()
            .route("/edit/stage/render", post(render))
            .route("/edit/stage/render/{id}", get(status))
            .with_state(calls),
    )
    .await
}

async fn fake_upload_post(calls: Calls) -> String {
    let upload = |State(calls): State<Calls>, headers: HeaderMap, body: axum::body::Bytes| async move {
        calls.push(
            "upload_post.publish",
            json!({
                "requestId": headers.get("x-request-id").and_then(|v| v.to_str().ok()),
                "body": String::from_utf8_lossy(&body),
            }),
        );
        Json(
            json!({"success": true, "results": {"tiktok": {"success": true, "url": "https://www.tiktok.com/@myloware-aismr/video/1"}}}),
        )
    };
    serve(axum::Router::new().route("/api/upload", post(upload)).with_state(calls)).await
}

async fn live_system(db: &Db, calls: &Calls, behaviour: Kie) -> support::System {
    let (kie, shotstack, upload) = (
        fake_kie_behaving(calls.clone(), behaviour).await,
        fake_shotstack(calls.clone()).await,
        fake_upload_post(calls.clone()).await,
    );
    start(
        db,
        &[
            ("USE_MOCK_PROVIDERS", "false"),
            ("KIEAI_API_KEY", "kie-live-key"),
            ("KIEAI_SIGNING_SECRET", SIGNING),
            ("KIEAI_BASE_URL", &kie),
            ("SHOTSTACK_API_KEY", "shotstack-live-key"),
            ("SHOTSTACK_BASE_URL", &shotstack),
            ("UPLOAD_POST_API_KEY", "upload-live-key"),
            ("UPLOAD_POST_SIGNING_SECRET", "upload-signing"),
            ("UPLOAD_POST_BASE_URL", &upload),
            ("CLIP_POLL_AFTER_SECS", "1"),
        ],
    )
    .await
}

async fn a_clip_whose_callback_never_came_is_recovered_through_record_info(db: &Db) {
    let calls = Calls::default();
    let system = live_system(db, &calls, Kie::SilentSuccess).await;
    let run_id = system
        .start_run(json!({"project": "test_video_gen", "input": {"prompt": "live"}}))
        .await;
    let run = system.wait_status(&run_id, "published", Duration::from_secs(30)).await;
    assert_eq!(calls.count("kieai.submit"), 2, "never resubmitted");
    assert!(
        run["result"]["videos"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["status"] == "completed")
    );
    system.stop_idle().await;
}

async fn provider_failures_fail_the_run_with_the_providers_message(db: &Db) {
    for (behaviour, message) in [
        (Kie::FailureCallback, "content policy violation"),
        (Kie::SilentFailure, "generation failed upstream"),
    ] {
        let calls = Calls::default();
        let system = live_system(db, &calls, behaviour).await;
        let run_id = system
            .start_run(json!({"project": "test_video_gen", "input": {"prompt": "live"}}))
            .await;
        let run = system.wait_status(&run_id, "failed", Duration::from_secs(30)).await;
        let error = &run["result"]["error"];
        assert_eq!(error["code"], "kieai.clip_failed");
        assert!(error["message"].as_str().unwrap().contains(message), "{error}");
        assert_eq!(calls.count("shotstack.render"), 0);
        assert_eq!(calls.count("upload_post.publish"), 0);
        system.stop_idle().await;
    }
}

async fn an_aismr_run_in_live_mode_is_published_against_fake_providers(db: &Db) {
    let calls = Calls::default();
    let (kie, shotstack, upload) = (
        fake_kie(calls.clone()).await,
        fake_shotstack(calls.clone()).await,
        fake_upload_post(calls.clone()).await,
    );
    let system = start(
        db,
        &[
            ("USE_MOCK_PROVIDERS", "false"),
            ("KIEAI_API_KEY", "kie-live-key"),
            ("KIEAI_SIGNING_SECRET", SIGNING),
            ("KIEAI_BASE_URL", &kie),
            ("SHOTSTACK_API_KEY", "shotstack-live-key"),
            ("SHOTSTACK_BASE_URL", &shotstack),
            ("UPLOAD_POST_API_KEY", "upload-live-key"),
            ("UPLOAD_POST_SIGNING_SECRET", "upload-signing"),
            ("UPLOAD_POST_BASE_URL", &upload),
        ],
    )
    .await;
    let run_id = system
        .start_run(json!({"project": "aismr", "input": {"object": "candles"}}))
        .await;
    assert_eq!(
        system.run(&run_id).await["payload"]["metadata"]["providers"]["mode"],
        "live"
    );
    for gate in ["ideate", "prepublish"] {
        system
            .wait_status(&run_id, &format!("awaiting_{gate}"), Duration::from_secs(30))
            .await;
        let link = system
            .get(&format!("{}/v1/hitl/link/{run_id}/{gate}", system.api))
            .await;
        let response = system
            .http
            .get(link["approvalUrl"].as_str().unwrap())
            .header("x-api-key", API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let run = system.wait_status(&run_id, "published", Duration::from_secs(30)).await;
    assert_eq!(calls.count("kieai.submit"), 12, "one submission per clip");
    assert_eq!(calls.count("shotstack.render"), 1);
    assert_eq!(calls.count("upload_post.publish"), 1);
    assert_eq!(run["result"]["renderUrl"], "https://cdn.fake-shotstack/render-1.mp4");
    assert_eq!(
        run["result"]["publishUrls"],
        json!(["https://www.tiktok.com/@myloware-aismr/video/1"])
    );
    assert!(
        run["result"]["videos"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["assetUrl"].as_str().unwrap().starts_with("https://cdn.fake-kie/"))
    );
    let submitted = calls.0.lock().unwrap().clone();
    let first = &submitted.iter().find(|(w, _)| w == "kieai.submit").unwrap().1;
    assert_eq!(first["model"], "veo3_fast");
    assert_eq!(first["aspectRatio"], "9:16");
    assert!(
        first["callBackUrl"]
            .as_str()
            .unwrap()
            .contains(&format!("runId={run_id}"))
    );
    let publish = &submitted.iter().find(|(w, _)| w == "upload_post.publish").unwrap().1;
    assert_eq!(publish["requestId"], format!("{run_id}:quinn:publish:1"));
    assert!(
        publish["body"].as_str().unwrap().contains("myloware-aismr"),
        "the project's own profile"
    );
    // The callbacks were verified with kie.ai's scheme.
    let deliveries = system.api_state.store.list_webhooks("kieai").await.unwrap();
    assert_eq!(deliveries.len(), 12);
    assert!(deliveries.iter().all(|d| d.signature_status == "verified"));
    assert!(system.mock_calls(&run_id).await.is_empty(), "no mock was used");
    system.stop_idle().await;
}

conformance_tests!(
    an_aismr_run_in_live_mode_is_published_against_fake_providers,
    a_clip_whose_callback_never_came_is_recovered_through_record_info,
    provider_failures_fail_the_run_with_the_providers_message,
);

/// `mw validate env --online` in live mode against the fakes.
fn validate_online(kie_key: &str, kie: &str, shotstack: &str, upload: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_mw"))
        .args(["validate", "env", "--online"])
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "PROJECTS_DIR",
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../projects"),
        )
        .env("USE_MOCK_PROVIDERS", "false")
        .env("KIEAI_API_KEY", kie_key)
        .env("KIEAI_SIGNING_SECRET", SIGNING)
        .env("KIEAI_BASE_URL", kie)
        .env("SHOTSTACK_API_KEY", "shotstack-live-key")
        .env("SHOTSTACK_BASE_URL", shotstack)
        .env("UPLOAD_POST_API_KEY", "upload-live-key")
        .env("UPLOAD_POST_SIGNING_SECRET", "upload-signing")
        .env("UPLOAD_POST_BASE_URL", upload)
        .output()
        .unwrap()
}

/// `mw validate env --online` asks each provider something harmless.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_env_online_checks_every_provider() {
    let calls = Calls::default();
    let (kie, shotstack, upload) = (
        fake_kie(calls.clone()).await,
        fake_shotstack(calls.clone()).await,
        fake_upload_post(calls.clone()).await,
    );
    let (k, s, u) = (kie.clone(), shotstack.clone(), upload.clone());
    let output = tokio::task::spawn_blocking(move || validate_online("kie-live-key", &k, &s, &u))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("100 credits left"), "{stdout}");
    assert_eq!(stdout.matches("ok: key accepted").count(), 3, "{stdout}");
    let paid = calls.count("kieai.submit") + calls.count("shotstack.render") + calls.count("upload_post.publish");
    assert_eq!(paid, 0, "nothing paid");

    let bad = tokio::task::spawn_blocking(move || validate_online("wrong-key", &kie, &shotstack, &upload))
        .await
        .unwrap();
    assert!(!bad.status.success());
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert!(
        stdout.contains("kieai") && stdout.contains("FAILED") && stdout.contains("invalid API key"),
        "{stdout}"
    );
    assert!(!stdout.contains("wrong-key"), "the key is never printed: {stdout}");
}
