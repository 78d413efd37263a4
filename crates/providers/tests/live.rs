//! The live clients against fake servers on loopback that speak the
//! providers' HTTP (no request leaves 127.0.0.1).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use myloware_providers::live::{KieAi, LiveSettings, Shotstack, UploadPost, live_providers};
use myloware_providers::{
    ClipRequest, ClipState, ProviderError, PublishRequest, PublishState, Publisher, Recovered, RenderRequest,
    RenderState, Renderer, VideoGenerator,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;

const KEY: &str = "test-secret-key-123";

#[derive(Debug, Clone)]
struct Hit {
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

impl Hit {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    /// The multipart form's text fields, in order.
    fn form(&self) -> Vec<(String, String)> {
        let content_type = self.header("content-type");
        let boundary = content_type
            .split("boundary=")
            .nth(1)
            .expect("multipart boundary")
            .to_string();
        let body = String::from_utf8(self.body.to_vec()).expect("text form");
        let delimiter = format!("--{boundary}");
        assert!(body.trim_end().ends_with(&format!("{delimiter}--")), "{body}");
        body.split(&delimiter)
            .filter(|part| !part.is_empty() && !part.starts_with("--"))
            .map(|part| {
                let part = part.strip_prefix("\r\n").expect("CRLF after boundary");
                let (head, value) = part.split_once("\r\n\r\n").expect("part headers");
                let name = head
                    .split("name=\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .expect("name");
                (name.to_string(), value.strip_suffix("\r\n").expect("CRLF").to_string())
            })
            .collect()
    }
}

#[derive(Clone, Default)]
struct Shared {
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Answers in order; the last one repeats.
    answers: Arc<Mutex<VecDeque<(u16, String)>>>,
}

struct Fake {
    base: Url,
    shared: Shared,
}

impl Fake {
    fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.shared.hits.lock().unwrap().len()
    }
}

async fn handle(State(shared): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    shared.hits.lock().unwrap().push(Hit {
        method,
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers,
        body,
    });
    let (status, body) = {
        let mut answers = shared.answers.lock().unwrap();
        if answers.len() > 1 {
            answers.pop_front().unwrap()
        } else {
            answers.front().cloned().unwrap_or((500, "no answer scripted".into()))
        }
    };
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body,
    )
        .into_response()
}

/// A fake provider answering `answers` in order (the last one repeats).
async fn fake(answers: Vec<(u16, Value)>) -> Fake {
    let shared = Shared::default();
    shared
        .answers
        .lock()
        .unwrap()
        .extend(answers.into_iter().map(|(status, body)| {
            (
                status,
                if body.is_string() {
                    body.as_str().unwrap().to_string()
                } else {
                    body.to_string()
                },
            )
        }));
    let app = Router::new().fallback(handle).with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Fake {
        base: Url::parse(&format!("http://{addr}")).unwrap(),
        shared,
    }
}

fn settings() -> LiveSettings {
    LiveSettings {
        timeout: Duration::from_secs(5),
        max_attempts: 3,
        backoff: Duration::from_millis(10),
    }
}

fn key() -> SecretString {
    SecretString::from(KEY)
}

fn kie(fake: &Fake) -> KieAi {
    KieAi::new(fake.base.clone(), key(), settings()).unwrap()
}

fn shotstack(fake: &Fake) -> Shotstack {
    Shotstack::new(fake.base.clone(), "stage", key(), settings()).unwrap()
}

fn upload_post(fake: &Fake) -> UploadPost {
    UploadPost::new(fake.base.clone(), key(), settings()).unwrap()
}

fn clip() -> ClipRequest {
    ClipRequest {
        run_id: "run-1".into(),
        index: 0,
        prompt: "a cat surfing at dawn".into(),
        duration_seconds: 8.0,
        aspect_ratio: "9:16".into(),
        callback_url: "https://myloware.example/webhooks/kieai?run=run-1&token=t".into(),
    }
}

fn kie_ok() -> (u16, Value) {
    (
        200,
        json!({"code": 200, "msg": "success", "data": {"taskId": "task-42"}}),
    )
}

fn assert_secret_free(err: &ProviderError) {
    let text = format!("{err} {err:?}");
    assert!(!text.contains(KEY), "{text}");
}

// ------------------------------------------------------------------ kie.ai

#[tokio::test]
async fn kie_submit_sends_the_documented_request_and_returns_the_task_id() {
    let fake = fake(vec![kie_ok()]).await;
    let task = kie(&fake).submit("run-1:clip:0", &clip()).await.unwrap();
    assert_eq!(task, "task-42");
    let hits = fake.hits();
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_eq!(hit.method, Method::POST);
    assert_eq!(hit.path, "/api/v1/veo/generate");
    assert_eq!(hit.header("authorization"), format!("Bearer {KEY}"));
    assert!(hit.header("content-type").starts_with("application/json"));
    let body = hit.json();
    assert_eq!(body["prompt"], "a cat surfing at dawn");
    assert_eq!(body["model"], "veo3_fast");
    assert_eq!(body["aspectRatio"], "9:16");
    assert_eq!(body["callBackUrl"], clip().callback_url);
}

#[tokio::test]
async fn kie_code_other_than_200_in_a_200_answer_is_refused_once() {
    let fake = fake(vec![(
        200,
        json!({"code": 402, "msg": "Insufficient credits", "data": null}),
    )])
    .await;
    let err = kie(&fake).submit("k", &clip()).await.unwrap_err();
    assert_eq!(
        err,
        ProviderError::Refused {
            provider: "kieai",
            code: 402,
            message: "Insufficient credits".into()
        }
    );
    assert_eq!(fake.count(), 1);
    assert_secret_free(&err);
}

#[tokio::test]
async fn kie_http_500_then_success_is_retried() {
    let fake = fake(vec![(500, json!("internal error")), kie_ok()]).await;
    assert_eq!(kie(&fake).submit("k", &clip()).await.unwrap(), "task-42");
    assert_eq!(fake.count(), 2);
}

#[tokio::test]
async fn kie_code_429_or_5xx_in_the_body_is_retried() {
    let fake = fake(vec![
        (200, json!({"code": 429, "msg": "rate limited"})),
        (200, json!({"code": 500, "msg": "server error"})),
        kie_ok(),
    ])
    .await;
    assert_eq!(kie(&fake).submit("k", &clip()).await.unwrap(), "task-42");
    assert_eq!(fake.count(), 3);
}

#[tokio::test]
async fn kie_http_429_is_retried() {
    let fake = fake(vec![(429, json!({"msg": "slow down"})), kie_ok()]).await;
    assert_eq!(kie(&fake).submit("k", &clip()).await.unwrap(), "task-42");
    assert_eq!(fake.count(), 2);
}

#[tokio::test]
async fn kie_persistent_503_is_unavailable_after_max_attempts() {
    let fake = fake(vec![(503, json!("maintenance"))]).await;
    let err = kie(&fake).submit("k", &clip()).await.unwrap_err();
    match &err {
        ProviderError::Unavailable { provider, message } => {
            assert_eq!(*provider, "kieai");
            assert!(message.contains("503"), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(fake.count(), 3);
    assert_secret_free(&err);
}

#[tokio::test]
async fn kie_http_400_is_refused_without_retry() {
    let fake = fake(vec![(
        400,
        json!({"code": 400, "msg": "prompt violates the content policy"}),
    )])
    .await;
    let err = kie(&fake).submit("k", &clip()).await.unwrap_err();
    assert_eq!(
        err,
        ProviderError::Refused {
            provider: "kieai",
            code: 400,
            message: "prompt violates the content policy".into()
        }
    );
    assert_eq!(fake.count(), 1);
}

#[tokio::test]
async fn kie_http_401_without_json_carries_status_and_body() {
    let fake = fake(vec![(401, json!("Unauthorized"))]).await;
    let err = kie(&fake).submit("k", &clip()).await.unwrap_err();
    assert_eq!(
        err,
        ProviderError::Refused {
            provider: "kieai",
            code: 401,
            message: "HTTP 401: Unauthorized".into()
        }
    );
    assert_eq!(fake.count(), 1);
}

#[tokio::test]
async fn kie_recover_is_unknown_without_a_request() {
    let fake = fake(vec![kie_ok()]).await;
    assert_eq!(kie(&fake).recover("k").await.unwrap(), Recovered::Unknown);
    assert_eq!(fake.count(), 0);
}

#[tokio::test]
async fn kie_record_info_maps_success_flags() {
    let fake = fake(vec![
        (
            200,
            json!({"code": 200, "msg": "success", "data": {"taskId": "t", "successFlag": 0}}),
        ),
        (
            200,
            json!({"code": 200, "msg": "success", "data": {"taskId": "t", "successFlag": 1,
                "response": {"resultUrls": ["https://cdn.example/clip.mp4"]}}}),
        ),
        (
            200,
            json!({"code": 200, "msg": "success", "data": {"taskId": "t", "successFlag": 2, "errorMessage": "policy"}}),
        ),
        (
            200,
            json!({"code": 200, "msg": "generation failed", "data": {"taskId": "t", "successFlag": 3}}),
        ),
        (
            200,
            json!({"code": 200, "msg": "success", "data": {"taskId": "t", "successFlag": 1, "response": {}}}),
        ),
    ])
    .await;
    let client = kie(&fake);
    assert_eq!(client.status("task/42").await.unwrap(), ClipState::Generating);
    assert_eq!(
        client.status("t").await.unwrap(),
        ClipState::Succeeded {
            url: "https://cdn.example/clip.mp4".into()
        }
    );
    assert_eq!(
        client.status("t").await.unwrap(),
        ClipState::Failed {
            code: 2,
            message: "policy".into()
        }
    );
    assert_eq!(
        client.status("t").await.unwrap(),
        ClipState::Failed {
            code: 3,
            message: "generation failed".into()
        }
    );
    assert!(matches!(
        client.status("t").await.unwrap(),
        ClipState::Failed { code: 1, .. }
    ));
    let hits = fake.hits();
    assert_eq!(hits.len(), 5);
    assert_eq!(hits[0].method, Method::GET);
    assert_eq!(hits[0].path, "/api/v1/veo/record-info");
    assert_eq!(hits[0].query.as_deref(), Some("taskId=task%2F42"));
    assert_eq!(hits[0].header("authorization"), format!("Bearer {KEY}"));
}

#[tokio::test]
async fn connect_errors_are_retried_then_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = KieAi::new(Url::parse(&format!("http://{addr}")).unwrap(), key(), settings()).unwrap();
    let err = client.submit("k", &clip()).await.unwrap_err();
    match &err {
        ProviderError::Unavailable { message, .. } => assert!(message.contains("3 attempt"), "{message}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_secret_free(&err);
}

#[tokio::test]
async fn base_urls_with_a_path_are_refused() {
    let base = Url::parse("http://127.0.0.1:1/api/v1").unwrap();
    assert!(KieAi::new(base, key(), settings()).is_err());
}

// ------------------------------------------------------------------ Shotstack

fn edit() -> Value {
    json!({
        "timeline": {"tracks": [{"clips": [{"asset": {"type": "video", "src": "https://cdn.example/a.mp4"}, "start": 0, "length": 8}]}]},
        "output": {"format": "mp4", "resolution": "1080", "aspectRatio": "9:16", "fps": 30},
        "lengthSeconds": 8
    })
}

fn render_request() -> RenderRequest {
    RenderRequest {
        run_id: "run-1".into(),
        edit: edit(),
    }
}

#[tokio::test]
async fn shotstack_render_sends_timeline_and_output_only() {
    let fake = fake(vec![(
        201,
        json!({"success": true, "message": "Created", "response": {"message": "Render Successfully Queued", "id": "render-7"}}),
    )])
    .await;
    assert_eq!(
        shotstack(&fake).render("k", &render_request()).await.unwrap(),
        "render-7"
    );
    let hits = fake.hits();
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_eq!(hit.method, Method::POST);
    assert_eq!(hit.path, "/edit/stage/render");
    assert_eq!(hit.header("x-api-key"), KEY);
    assert!(hit.headers.get("authorization").is_none());
    let body = hit.json();
    let mut keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["output", "timeline"]);
    assert_eq!(body["timeline"], edit()["timeline"]);
    assert_eq!(body["output"], edit()["output"]);
}

#[tokio::test]
async fn shotstack_429_is_retried() {
    let fake = fake(vec![
        (429, json!({"message": "Too Many Requests"})),
        (200, json!({"success": true, "response": {"id": "r1"}})),
    ])
    .await;
    assert_eq!(shotstack(&fake).render("k", &render_request()).await.unwrap(), "r1");
    assert_eq!(fake.count(), 2);
}

#[tokio::test]
async fn shotstack_400_is_refused_with_its_message_once() {
    let fake = fake(vec![(
        400,
        json!({"success": false, "message": "Bad Request", "response": {}}),
    )])
    .await;
    let err = shotstack(&fake).render("k", &render_request()).await.unwrap_err();
    assert_eq!(
        err,
        ProviderError::Refused {
            provider: "shotstack",
            code: 400,
            message: "Bad Request".into()
        }
    );
    assert_eq!(fake.count(), 1);
}

#[tokio::test]
async fn shotstack_persistent_502_is_unavailable() {
    let fake = fake(vec![(502, json!("bad gateway"))]).await;
    let err = shotstack(&fake).render("k", &render_request()).await.unwrap_err();
    assert!(matches!(
        err,
        ProviderError::Unavailable {
            provider: "shotstack",
            ..
        }
    ));
    assert_eq!(fake.count(), 3);
}

#[tokio::test]
async fn shotstack_status_maps_render_states() {
    let fake = fake(vec![
        (200, json!({"success": true, "response": {"id": "r1", "status": "queued"}})),
        (200, json!({"success": true, "response": {"id": "r1", "status": "rendering"}})),
        (200, json!({"success": true, "response": {"id": "r1", "status": "saving"}})),
        (
            200,
            json!({"success": true, "response": {"id": "r1", "status": "done", "url": "https://cdn.shotstack.io/r1.mp4"}}),
        ),
        (
            200,
            json!({"success": true, "response": {"id": "r1", "status": "failed", "error": "asset not found"}}),
        ),
    ])
    .await;
    let client = shotstack(&fake);
    for _ in 0..3 {
        assert_eq!(client.status("r1").await.unwrap(), RenderState::Rendering);
    }
    assert_eq!(
        client.status("r1").await.unwrap(),
        RenderState::Done {
            url: "https://cdn.shotstack.io/r1.mp4".into()
        }
    );
    assert_eq!(
        client.status("r1").await.unwrap(),
        RenderState::Failed {
            message: "asset not found".into()
        }
    );
    let hits = fake.hits();
    assert_eq!(hits[0].method, Method::GET);
    assert_eq!(hits[0].path, "/edit/stage/render/r1");
    assert_eq!(hits[0].header("x-api-key"), KEY);
    assert_eq!(client.recover("k").await.unwrap(), Recovered::Unknown);
    assert_eq!(fake.count(), 5);
}

// ------------------------------------------------------------------ Upload-Post

fn publish_request(profile: Option<&str>) -> PublishRequest {
    PublishRequest {
        run_id: "run-1".into(),
        video_url: "https://cdn.shotstack.io/r1.mp4".into(),
        caption: "Cats surfing ✨ #cats".into(),
        platforms: vec!["tiktok".into(), "instagram".into()],
        profile: profile.map(str::to_string),
    }
}

#[tokio::test]
async fn upload_post_publish_sends_the_documented_form() {
    let fake = fake(vec![(
        200,
        json!({"success": true, "results": {"tiktok": {"success": true, "url": "https://tiktok.com/@me/video/1"}}}),
    )])
    .await;
    let state = upload_post(&fake)
        .publish("run-1:publish:1", &publish_request(Some("test-profile")))
        .await
        .unwrap();
    assert_eq!(
        state,
        PublishState::Published {
            urls: vec!["https://tiktok.com/@me/video/1".into()]
        }
    );
    let hits = fake.hits();
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_eq!(hit.method, Method::POST);
    assert_eq!(hit.path, "/api/upload");
    assert_eq!(hit.header("authorization"), format!("Apikey {KEY}"));
    assert_eq!(hit.header("x-request-id"), "run-1:publish:1");
    assert!(hit.header("content-type").starts_with("multipart/form-data; boundary="));
    let form = hit.form();
    let field = |name: &str| -> Vec<&str> {
        form.iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(field("video"), ["https://cdn.shotstack.io/r1.mp4"]);
    assert_eq!(field("title"), ["Cats surfing ✨ #cats"]);
    assert_eq!(field("user"), ["test-profile"]);
    assert_eq!(field("platform[]"), ["tiktok", "instagram"]);
    assert_eq!(field("async_upload"), ["true"]);
    assert_eq!(field("request_id"), ["run-1:publish:1"]);
}

#[tokio::test]
async fn upload_post_async_answer_is_pending() {
    let fake = fake(vec![(200, json!({"success": true, "request_id": "run-1:publish:1"}))]).await;
    let state = upload_post(&fake)
        .publish("run-1:publish:1", &publish_request(Some("p")))
        .await
        .unwrap();
    assert_eq!(state, PublishState::Pending);
}

#[tokio::test]
async fn upload_post_success_false_is_refused_once() {
    let fake = fake(vec![(200, json!({"success": false, "message": "Profile not found"}))]).await;
    let err = upload_post(&fake)
        .publish("k", &publish_request(Some("p")))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProviderError::Refused {
            provider: "upload-post",
            code: 200,
            message: "Profile not found".into()
        }
    );
    assert_eq!(fake.count(), 1);
    assert_secret_free(&err);
}

#[tokio::test]
async fn upload_post_5xx_is_retried_with_the_same_request_id() {
    let fake = fake(vec![
        (500, json!("oops")),
        (
            200,
            json!({"success": true, "results": {"tiktok": {"url": "https://tiktok.com/v/2"}}}),
        ),
    ])
    .await;
    let state = upload_post(&fake)
        .publish("run-1:publish:1", &publish_request(Some("p")))
        .await
        .unwrap();
    assert_eq!(
        state,
        PublishState::Published {
            urls: vec!["https://tiktok.com/v/2".into()]
        }
    );
    let hits = fake.hits();
    assert_eq!(hits.len(), 2);
    for hit in &hits {
        assert_eq!(hit.header("x-request-id"), "run-1:publish:1");
        assert!(hit.form().contains(&("request_id".into(), "run-1:publish:1".into())));
    }
}

#[tokio::test]
async fn upload_post_without_profile_is_not_configured_and_sends_nothing() {
    let fake = fake(vec![(200, json!({"success": true}))]).await;
    let err = upload_post(&fake)
        .publish("k", &publish_request(None))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProviderError::NotConfigured("no Upload-Post profile for this project; set publish.profile".into())
    );
    assert_eq!(fake.count(), 0);
}

#[tokio::test]
async fn upload_post_status_maps_answers() {
    let fake = fake(vec![
        (404, json!({"success": false, "message": "not found"})),
        (200, json!({"status": "pending"})),
        (
            200,
            json!({"status": "completed", "results": {"tiktok": {"success": true, "url": "https://tiktok.com/v/3"}}}),
        ),
        (200, json!({"status": "failed", "message": "video too long"})),
        (400, json!({"success": false, "message": "bad request id"})),
    ])
    .await;
    let client = upload_post(&fake);
    assert_eq!(client.status("run-1:publish:1").await.unwrap(), None);
    assert_eq!(client.status("k").await.unwrap(), Some(PublishState::Pending));
    assert_eq!(
        client.status("k").await.unwrap(),
        Some(PublishState::Published {
            urls: vec!["https://tiktok.com/v/3".into()]
        })
    );
    assert_eq!(
        client.status("k").await.unwrap(),
        Some(PublishState::Failed {
            message: "video too long".into()
        })
    );
    assert!(matches!(
        client.status("k").await.unwrap_err(),
        ProviderError::Refused { code: 400, .. }
    ));
    let hits = fake.hits();
    assert_eq!(hits.len(), 5);
    assert_eq!(hits[0].method, Method::GET);
    assert_eq!(hits[0].path, "/api/uploadposts/status");
    assert_eq!(hits[0].query.as_deref(), Some("request_id=run-1%3Apublish%3A1"));
    assert_eq!(hits[0].header("authorization"), format!("Apikey {KEY}"));
}

// ------------------------------------------------------------------ construction

#[test]
fn live_providers_names_the_missing_key() {
    let config = myloware_core::config::Config::from_lookup(|_| None).unwrap();
    let err = live_providers(&config).err().expect("missing keys");
    assert_eq!(err, "KIEAI_API_KEY is not set");

    let config = myloware_core::config::Config::from_lookup(|var| match var {
        "KIEAI_API_KEY" => Some("k".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(live_providers(&config).err().unwrap(), "SHOTSTACK_API_KEY is not set");
}

#[test]
fn live_providers_builds_all_three_clients() {
    let config = myloware_core::config::Config::from_lookup(|var| match var {
        "KIEAI_API_KEY" | "SHOTSTACK_API_KEY" | "UPLOAD_POST_API_KEY" => Some("k".into()),
        "KIEAI_BASE_URL" => Some("http://127.0.0.1:9".into()),
        _ => None,
    })
    .unwrap();
    assert!(live_providers(&config).is_ok());
}

#[tokio::test]
async fn clients_never_show_their_keys() {
    let fake = fake(vec![]).await;
    let shown = format!("{:?} {:?} {:?}", kie(&fake), shotstack(&fake), upload_post(&fake));
    assert!(shown.contains("127.0.0.1"), "{shown}");
    assert!(!shown.contains(secrecy::ExposeSecret::expose_secret(&key())), "{shown}");
}
