//! Fake kie.ai, Shotstack and Upload-Post servers on loopback that speak
//! the providers' HTTP and count what they are asked.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::{Value, json};

pub const SIGNING: &str = "live-test-kie-signing-secret";

#[derive(Clone, Default)]
pub struct Calls(pub Arc<Mutex<Vec<(String, Value)>>>);

impl Calls {
    pub fn push(&self, what: &str, body: Value) {
        self.0.lock().unwrap().push((what.to_string(), body));
    }

    pub fn count(&self, what: &str) -> usize {
        self.0.lock().unwrap().iter().filter(|(w, _)| w == what).count()
    }
}

pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

/// How the fake kie.ai behaves after accepting a clip.
#[derive(Clone, Copy, PartialEq)]
pub enum Kie {
    /// Posts a signed success callback.
    Callback,
    /// Posts a signed failure callback (code 501).
    FailureCallback,
    /// Never calls back; `record-info` says success.
    SilentSuccess,
    /// Never calls back; `record-info` says generation failed (3).
    SilentFailure,
    /// Never calls back; `record-info` says still generating (0).
    SilentGenerating,
}

/// kie.ai: task ids, then (depending on `behaviour`) a signed callback to
/// the URL it was given, and `record-info` answers with the task's result
/// (the one its callback reported, if any): the result the run uses.
pub async fn fake_kie(calls: Calls) -> String {
    fake_kie_behaving(calls, Kie::Callback).await
}

pub async fn fake_kie_behaving(calls: Calls, behaviour: Kie) -> String {
    let generate = move |State(calls): State<Calls>, headers: HeaderMap, Json(body): Json<Value>| async move {
        assert_eq!(headers["authorization"], "Bearer kie-live-key");
        let task_id = format!("task-{}", calls.count("kieai.submit"));
        calls.push("kieai.submit", body.clone());
        let callback = body["callBackUrl"].as_str().unwrap().to_string();
        let task = task_id.clone();
        if matches!(
            behaviour,
            Kie::SilentSuccess | Kie::SilentFailure | Kie::SilentGenerating
        ) {
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
    let record_info =
        move |State(calls): State<Calls>,
              axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>| async move {
            let task = query.get("taskId").cloned().unwrap_or_default();
            calls.push("kieai.record_info", json!({"taskId": task}));
            Json(match behaviour {
                Kie::SilentSuccess => json!({"code": 200, "data": {"taskId": task, "successFlag": 1,
                "response": {"resultUrls": [format!("https://cdn.fake-kie/{task}.mp4")]}}}),
                Kie::SilentFailure => json!({"code": 200, "data": {"taskId": task, "successFlag": 3,
                "errorMessage": "generation failed upstream"}}),
                Kie::SilentGenerating => json!({"code": 200, "data": {"taskId": task, "successFlag": 0}}),
                // What the callback reported (kie.ai's record of the task).
                Kie::Callback => json!({"code": 200, "data": {"taskId": task, "successFlag": 1,
                "response": {"resultUrls": [format!("https://cdn.fake-kie/{task}.mp4")]}}}),
                Kie::FailureCallback => json!({"code": 200, "data": {"taskId": task, "successFlag": 3,
                "errorMessage": "content policy violation"}}),
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

pub async fn fake_shotstack(calls: Calls) -> String {
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

pub async fn fake_upload_post(calls: Calls) -> String {
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
    // Status by our request id: what was published under it, else 404.
    let status =
        |State(calls): State<Calls>,
         axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>| async move {
            let id = query.get("request_id").cloned().unwrap_or_default();
            let known = calls
                .0
                .lock()
                .unwrap()
                .iter()
                .any(|(what, body)| what == "upload_post.publish" && body["requestId"] == id.as_str());
            if known {
                (
                    axum::http::StatusCode::OK,
                    Json(json!({"status": "completed",
                "results": {"tiktok": {"success": true, "url": "https://www.tiktok.com/@myloware-aismr/video/1"}}})),
                )
            } else {
                (
                    axum::http::StatusCode::NOT_FOUND,
                    Json(json!({"success": false, "message": "not found"})),
                )
            }
        };
    serve(
        axum::Router::new()
            .route("/api/upload", post(upload))
            .route("/api/uploadposts/status", get(status))
            .with_state(calls),
    )
    .await
}

/// Upload-Post publishing asynchronously: the upload answers without
/// results; the status by our request id says `pending` until `done` is
/// set, then `completed` with [`ASYNC_PUBLISH_URL`]. Counts
/// `upload_post.status` lookups.
pub async fn fake_upload_post_async(calls: Calls, done: Arc<std::sync::atomic::AtomicBool>) -> String {
    let upload = |State((calls, _)): State<(Calls, Arc<std::sync::atomic::AtomicBool>)>, headers: HeaderMap| async move {
        let request_id = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        calls.push("upload_post.publish", json!({"requestId": request_id}));
        Json(json!({"success": true, "request_id": request_id, "message": "upload started"}))
    };
    let status =
        |State((calls, done)): State<(Calls, Arc<std::sync::atomic::AtomicBool>)>,
         axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>| async move {
            calls.push("upload_post.status", json!({"requestId": query.get("request_id")}));
            Json(if done.load(std::sync::atomic::Ordering::SeqCst) {
                json!({"status": "completed", "results": {"tiktok": {"success": true, "url": ASYNC_PUBLISH_URL}}})
            } else {
                json!({"status": "pending"})
            })
        };
    serve(
        axum::Router::new()
            .route("/api/upload", post(upload))
            .route("/api/uploadposts/status", get(status))
            .with_state((calls, done)),
    )
    .await
}

/// What [`fake_upload_post_async`]'s status gives once done.
pub const ASYNC_PUBLISH_URL: &str = "https://www.tiktok.com/@myloware-test/video/from-status";
