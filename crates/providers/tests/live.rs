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

    /// The one request the fake saw.
    fn only_hit(&self) -> Hit {
        let hits = self.hits();
        assert_eq!(hits.len(), 1, "{hits:?}");
        hits[0].clone()
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

/// What `call` returns against a fake provider answering `answers` (the
/// last one repeats), once the fake saw exactly `requests` requests; an
/// error never shows the key.
async fn against<T: std::fmt::Debug>(
    answers: Vec<(u16, Value)>,
    call: impl AsyncFnOnce(&Fake) -> Result<T, ProviderError>,
    requests: usize,
) -> Result<T, ProviderError> {
    let fake = fake(answers).await;
    let result = call(&fake).await;
    assert_eq!(fake.count(), requests, "requests sent before {result:?}");
    if let Err(err) = &result {
        assert_secret_free(err);
    }
    result
}

/// Reads the answers of `cases` in turn with `status`, each from the same
/// fake: each must map to the value it is paired with. The first request,
/// as the fake saw it.
async fn statuses<T: PartialEq + std::fmt::Debug>(
    cases: Vec<((u16, Value), T)>,
    status: impl AsyncFn(&Fake) -> T,
) -> Hit {
    let (answers, expected): (Vec<_>, Vec<_>) = cases.into_iter().unzip();
    let fake = fake(answers).await;
    for (i, expected) in expected.iter().enumerate() {
        assert_eq!(&status(&fake).await, expected, "answer {i}");
    }
    let hits = fake.hits();
    assert_eq!(hits.len(), expected.len());
    hits[0].clone()
}

/// A refusal as the clients report it.
fn refused(provider: &'static str, code: i64, message: &str) -> ProviderError {
    ProviderError::Refused {
        provider,
        code,
        message: message.into(),
    }
}

/// The calls the tests make of each client.
async fn submit_clip(fake: &Fake) -> Result<String, ProviderError> {
    kie(fake).submit("k", &clip()).await
}

async fn render(fake: &Fake) -> Result<String, ProviderError> {
    shotstack(fake).render("k", &render_request()).await
}

async fn publish(fake: &Fake) -> Result<PublishState, ProviderError> {
    upload_post(fake)
        .publish("run-1:publish:1", &publish_request(Some("p")))
        .await
}

fn published(url: &str) -> PublishState {
    PublishState::Published { urls: vec![url.into()] }
}

// ------------------------------------------------------------------ kie.ai

#[tokio::test]
async fn kie_submit_sends_the_documented_request_and_returns_the_task_id() {
    let fake = fake(vec![kie_ok()]).await;
    let task = kie(&fake).submit("run-1:clip:0", &clip()).await.unwrap();
    assert_eq!(task, "task-42");
    let hit = fake.only_hit();
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
    let answer = json!({"code": 402, "msg": "Insufficient credits", "data": null});
    let err = against(vec![(200, answer)], submit_clip, 1).await.unwrap_err();
    assert_eq!(err, refused("kieai", 402, "Insufficient credits"));
}

#[tokio::test]
async fn kie_http_500_then_success_is_retried() {
    let answers = vec![(500, json!("internal error")), kie_ok()];
    assert_eq!(against(answers, submit_clip, 2).await.unwrap(), "task-42");
}

#[tokio::test]
async fn kie_code_429_or_5xx_in_the_body_is_retried() {
    let answers = vec![
        (200, json!({"code": 429, "msg": "rate limited"})),
        (200, json!({"code": 500, "msg": "server error"})),
        kie_ok(),
    ];
    assert_eq!(against(answers, submit_clip, 3).await.unwrap(), "task-42");
}

#[tokio::test]
async fn kie_http_429_is_retried() {
    let answers = vec![(429, json!({"msg": "slow down"})), kie_ok()];
    assert_eq!(against(answers, submit_clip, 2).await.unwrap(), "task-42");
}

#[tokio::test]
async fn kie_persistent_503_is_unavailable_after_max_attempts() {
    let err = against(vec![(503, json!("maintenance"))], submit_clip, 3)
        .await
        .unwrap_err();
    match &err {
        ProviderError::Unavailable { provider, message } => {
            assert_eq!(*provider, "kieai");
            assert!(message.contains("503"), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn kie_http_400_is_refused_without_retry() {
    let answer = json!({"code": 400, "msg": "prompt violates the content policy"});
    let err = against(vec![(400, answer)], submit_clip, 1).await.unwrap_err();
    assert_eq!(err, refused("kieai", 400, "prompt violates the content policy"));
}

#[tokio::test]
async fn kie_http_401_without_json_carries_status_and_body() {
    let err = against(vec![(401, json!("Unauthorized"))], submit_clip, 1)
        .await
        .unwrap_err();
    assert_eq!(err, refused("kieai", 401, "HTTP 401: Unauthorized"));
}

#[tokio::test]
async fn kie_recover_is_unknown_without_a_request() {
    let recover = async |fake: &Fake| kie(fake).recover("k").await;
    assert_eq!(against(vec![kie_ok()], recover, 0).await.unwrap(), Recovered::Unknown);
}

#[tokio::test]
async fn kie_record_info_maps_success_flags() {
    let answer = |data: Value| (200, json!({"code": 200, "msg": "success", "data": data}));
    let cases = vec![
        (answer(json!({"taskId": "t", "successFlag": 0})), ClipState::Generating),
        (
            answer(
                json!({"taskId": "t", "successFlag": 1, "response": {"resultUrls": ["https://cdn.example/clip.mp4"]}}),
            ),
            ClipState::Succeeded {
                url: "https://cdn.example/clip.mp4".into(),
            },
        ),
        (
            answer(json!({"taskId": "t", "successFlag": 2, "errorMessage": "policy"})),
            ClipState::Failed {
                code: 2,
                message: "policy".into(),
            },
        ),
        (
            (
                200,
                json!({"code": 200, "msg": "generation failed", "data": {"taskId": "t", "successFlag": 3}}),
            ),
            ClipState::Failed {
                code: 3,
                message: "generation failed".into(),
            },
        ),
        (
            answer(json!({"taskId": "t", "successFlag": 1, "response": {}})),
            ClipState::Failed {
                code: 1,
                message: "kie.ai reported success without a result URL".into(),
            },
        ),
    ];
    let sent = statuses(cases, async |fake: &Fake| kie(fake).status("task/42").await.unwrap()).await;
    assert_eq!(sent.method, Method::GET);
    assert_eq!(sent.path, "/api/v1/veo/record-info");
    assert_eq!(sent.query.as_deref(), Some("taskId=task%2F42"));
    assert_eq!(sent.header("authorization"), format!("Bearer {KEY}"));
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
    let hit = fake.only_hit();
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
    let answers = vec![
        (429, json!({"message": "Too Many Requests"})),
        (200, json!({"success": true, "response": {"id": "r1"}})),
    ];
    assert_eq!(against(answers, render, 2).await.unwrap(), "r1");
}

#[tokio::test]
async fn shotstack_400_is_refused_with_its_message_once() {
    let answer = json!({"success": false, "message": "Bad Request", "response": {}});
    let err = against(vec![(400, answer)], render, 1).await.unwrap_err();
    assert_eq!(err, refused("shotstack", 400, "Bad Request"));
}

#[tokio::test]
async fn shotstack_persistent_502_is_unavailable() {
    let err = against(vec![(502, json!("bad gateway"))], render, 3).await.unwrap_err();
    assert!(matches!(
        err,
        ProviderError::Unavailable {
            provider: "shotstack",
            ..
        }
    ));
}

#[tokio::test]
async fn shotstack_status_maps_render_states() {
    let answer = |response: Value| (200, json!({"success": true, "response": response}));
    let mut cases: Vec<_> = ["queued", "rendering", "saving"]
        .into_iter()
        .map(|status| (answer(json!({"id": "r1", "status": status})), RenderState::Rendering))
        .collect();
    cases.push((
        answer(json!({"id": "r1", "status": "done", "url": "https://cdn.shotstack.io/r1.mp4"})),
        RenderState::Done {
            url: "https://cdn.shotstack.io/r1.mp4".into(),
        },
    ));
    cases.push((
        answer(json!({"id": "r1", "status": "failed", "error": "asset not found"})),
        RenderState::Failed {
            message: "asset not found".into(),
        },
    ));
    let sent = statuses(cases, async |fake: &Fake| shotstack(fake).status("r1").await.unwrap()).await;
    assert_eq!(sent.method, Method::GET);
    assert_eq!(sent.path, "/edit/stage/render/r1");
    assert_eq!(sent.header("x-api-key"), KEY);
    let recover = async |fake: &Fake| shotstack(fake).recover("k").await;
    assert_eq!(against(vec![], recover, 0).await.unwrap(), Recovered::Unknown);
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
        .await;
    assert_eq!(state.unwrap(), published("https://tiktok.com/@me/video/1"));
    let hit = fake.only_hit();
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
    let answer = json!({"success": true, "request_id": "run-1:publish:1"});
    assert_eq!(
        against(vec![(200, answer)], publish, 1).await.unwrap(),
        PublishState::Pending
    );
}

#[tokio::test]
async fn upload_post_success_false_is_refused_once() {
    let answer = json!({"success": false, "message": "Profile not found"});
    let err = against(vec![(200, answer)], publish, 1).await.unwrap_err();
    assert_eq!(err, refused("upload-post", 200, "Profile not found"));
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
    assert_eq!(publish(&fake).await.unwrap(), published("https://tiktok.com/v/2"));
    let hits = fake.hits();
    assert_eq!(hits.len(), 2);
    for hit in &hits {
        assert_eq!(hit.header("x-request-id"), "run-1:publish:1");
        assert!(hit.form().contains(&("request_id".into(), "run-1:publish:1".into())));
    }
}

#[tokio::test]
async fn upload_post_without_profile_is_not_configured_and_sends_nothing() {
    let without_profile = async |fake: &Fake| upload_post(fake).publish("k", &publish_request(None)).await;
    let err = against(vec![(200, json!({"success": true}))], without_profile, 0)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProviderError::NotConfigured("no Upload-Post profile for this project; set publish.profile".into())
    );
}

#[tokio::test]
async fn upload_post_status_maps_answers() {
    let cases = vec![
        ((404, json!({"success": false, "message": "not found"})), Ok(None)),
        ((200, json!({"status": "pending"})), Ok(Some(PublishState::Pending))),
        (
            (
                200,
                json!({"status": "completed", "results": {"tiktok": {"success": true, "url": "https://tiktok.com/v/3"}}}),
            ),
            Ok(Some(published("https://tiktok.com/v/3"))),
        ),
        (
            (200, json!({"status": "failed", "message": "video too long"})),
            Ok(Some(PublishState::Failed {
                message: "video too long".into(),
            })),
        ),
        (
            (400, json!({"success": false, "message": "bad request id"})),
            Err(refused("upload-post", 400, "bad request id")),
        ),
    ];
    let sent = statuses(cases, async |fake: &Fake| {
        upload_post(fake).status("run-1:publish:1").await
    })
    .await;
    assert_eq!(sent.method, Method::GET);
    assert_eq!(sent.path, "/api/uploadposts/status");
    assert_eq!(sent.query.as_deref(), Some("request_id=run-1%3Apublish%3A1"));
    assert_eq!(sent.header("authorization"), format!("Apikey {KEY}"));
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
