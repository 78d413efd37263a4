//! Fake providers on loopback that speak their HTTP and count exactly what
//! they are asked: kie.ai, Shotstack and Upload-Post (with scripted faults
//! per operation), an OpenAI-compatible chat completions server, and a
//! Telegram Bot API (or any incoming webhook).
//!
//! The provider operations are `kieai.submit`, `kieai.record_info`,
//! `shotstack.render`, `shotstack.status`, `shotstack.download` (the
//! rendered file, [`shotstack`]), `upload_post.publish` and
//! `upload_post.status`: [`Calls::attempts`] counts every request of one,
//! faulty ones included; [`Calls::done`] and [`Calls::count`] the requests
//! that did the work (a paid call), with their bodies.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub mod shotstack;

/// The kie.ai signing secret of the fakes' callbacks.
pub const SIGNING: &str = "live-test-kie-signing-secret";
/// The post the fake Upload-Post reports.
pub const TIKTOK_URL: &str = "https://www.tiktok.com/@myloware-aismr/video/1";
/// What [`Publish::Async`]'s status gives once done.
pub const ASYNC_PUBLISH_URL: &str = "https://www.tiktok.com/@myloware-test/video/from-status";

/// Serves `router` on a free loopback port until the runtime ends; its base URL.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

/// What a fake provider does with one request.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Answers this HTTP status (and the provider's error body) without
    /// doing anything.
    Status(u16),
    /// Does the work, then answers only after this long (past the client's
    /// timeout).
    Hang(Duration),
}

#[derive(Default)]
struct Inner {
    /// Requests that did the work, with their bodies.
    done: Mutex<Vec<(String, Value)>>,
    /// Every request, faulty ones included.
    attempts: Mutex<HashMap<String, usize>>,
    /// The next requests of an operation, in order (`None`: behave).
    script: Mutex<HashMap<String, VecDeque<Option<Fault>>>>,
    /// A fault for every request of an operation.
    always: Mutex<HashMap<String, Fault>>,
}

/// What the fake providers were asked, and the faults they are to show.
#[derive(Clone, Default)]
pub struct Calls(Arc<Inner>);

impl Calls {
    /// Records a request of `operation` that did the work; how many of
    /// that operation came before it.
    pub fn push(&self, operation: &str, body: Value) -> usize {
        let mut done = self.0.done.lock().unwrap();
        let before = done.iter().filter(|(op, _)| op == operation).count();
        done.push((operation.to_string(), body));
        before
    }

    /// Requests of `operation` that did the work.
    pub fn count(&self, operation: &str) -> usize {
        self.done(operation, |_| true)
    }

    /// Requests of `operation` that did the work and whose body `matches`.
    pub fn done(&self, operation: &str, matches: impl Fn(&Value) -> bool) -> usize {
        self.0
            .done
            .lock()
            .unwrap()
            .iter()
            .filter(|(op, body)| op == operation && matches(body))
            .count()
    }

    /// Every request that did the work, in order.
    pub fn all(&self) -> Vec<(String, Value)> {
        self.0.done.lock().unwrap().clone()
    }

    /// Every request of `operation`, faulty ones included.
    pub fn attempts(&self, operation: &str) -> usize {
        self.0.attempts.lock().unwrap().get(operation).copied().unwrap_or(0)
    }

    /// The faults of the next requests of `operation`, in order.
    pub fn script(&self, operation: &str, faults: &[Option<Fault>]) {
        self.0
            .script
            .lock()
            .unwrap()
            .insert(operation.into(), faults.iter().copied().collect());
    }

    /// A fault for every request of `operation`.
    pub fn always(&self, operation: &str, fault: Fault) {
        self.0.always.lock().unwrap().insert(operation.into(), fault);
    }

    /// Forgets every request and fault.
    pub fn reset(&self) {
        self.0.script.lock().unwrap().clear();
        self.0.always.lock().unwrap().clear();
        self.0.attempts.lock().unwrap().clear();
        self.0.done.lock().unwrap().clear();
    }

    /// Counts an attempt of `operation`; the fault it is to show.
    fn fault(&self, operation: &str) -> Option<Fault> {
        *self.0.attempts.lock().unwrap().entry(operation.into()).or_default() += 1;
        if let Some(fault) = self.0.always.lock().unwrap().get(operation) {
            return Some(*fault);
        }
        self.0
            .script
            .lock()
            .unwrap()
            .get_mut(operation)
            .and_then(VecDeque::pop_front)
            .flatten()
    }

    /// Submissions the fake kie.ai accepted for clip `index` of `run_id`.
    pub fn clip_submissions(&self, run_id: &str, index: usize) -> usize {
        let marker = format!("runId={run_id}&index={index}&");
        self.done("kieai.submit", |body| {
            body["callBackUrl"].as_str().unwrap_or_default().contains(&marker)
        })
    }

    /// Publishes of `run_id` (by our request id).
    pub fn publishes(&self, run_id: &str) -> usize {
        let key = format!("{run_id}:quinn:publish:1");
        self.done("upload_post.publish", |body| body["requestId"] == key.as_str())
    }
}

/// How the fake kie.ai behaves after accepting a clip.
#[derive(Clone, Copy, PartialEq, Debug)]
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
    /// Calls back: a failure for task `task-n` (the submission after n
    /// others), a success for every other.
    FailingTask(usize),
}

impl Kie {
    /// Whether `task`'s generation fails.
    fn fails(self, task: &str) -> bool {
        match self {
            Kie::FailureCallback | Kie::SilentFailure => true,
            Kie::FailingTask(n) => task == format!("task-{n}"),
            Kie::Callback | Kie::SilentSuccess | Kie::SilentGenerating => false,
        }
    }
}

/// How the fake Upload-Post publishes.
#[derive(Clone)]
pub enum Publish {
    /// At once: the upload's answer carries the post's URL; the status by
    /// our request id knows what was published under it (else 404).
    Sync,
    /// Asynchronously: the upload answers without results; the status says
    /// `pending` until the flag is set, then `completed` with
    /// [`ASYNC_PUBLISH_URL`].
    Async(Arc<AtomicBool>),
}

#[derive(Clone)]
struct Provider {
    calls: Calls,
    kie: Kie,
    publish: Publish,
}

/// The three providers on one loopback server.
pub struct Providers {
    pub url: String,
    pub calls: Calls,
}

impl Providers {
    /// kie.ai calling back, Upload-Post publishing at once.
    pub async fn start(calls: &Calls) -> Providers {
        Providers::start_with(calls, Kie::Callback, Publish::Sync).await
    }

    pub async fn start_with(calls: &Calls, kie: Kie, publish: Publish) -> Providers {
        let provider = Provider {
            calls: calls.clone(),
            kie,
            publish,
        };
        let url = serve(
            axum::Router::new()
                .route("/api/v1/veo/generate", post(kie_generate))
                .route("/api/v1/veo/record-info", get(kie_record_info))
                .route("/api/v1/chat/credit", get(kie_credit))
                .route("/edit/stage/render", post(shotstack::render))
                .route("/edit/stage/render/{id}", get(shotstack::status))
                .route("/renders/{file}", get(shotstack::file))
                .route("/api/upload", post(upload_post_publish))
                .route("/api/uploadposts/status", get(upload_post_status))
                .with_state(provider),
        )
        .await;
        Providers {
            url,
            calls: calls.clone(),
        }
    }

    /// The variables of a live-mode system whose providers are these fakes
    /// (kie.ai callbacks signed with [`SIGNING`]).
    pub fn vars(&self) -> Vec<(&'static str, &str)> {
        live_vars(&self.url, &self.url, &self.url)
    }

    /// [`Providers::vars`] as owned pairs (for processes).
    pub fn owned_vars(&self) -> Vec<(String, String)> {
        self.vars()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

/// The variables of a live-mode system whose providers are at these base
/// URLs; kie.ai callbacks signed with [`SIGNING`].
pub fn live_vars<'a>(kie: &'a str, shotstack: &'a str, upload: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("USE_MOCK_PROVIDERS", "false"),
        ("KIEAI_API_KEY", "kie-live-key"),
        ("KIEAI_SIGNING_SECRET", SIGNING),
        ("KIEAI_BASE_URL", kie),
        ("SHOTSTACK_API_KEY", "shotstack-live-key"),
        ("SHOTSTACK_BASE_URL", shotstack),
        ("UPLOAD_POST_API_KEY", "upload-live-key"),
        ("UPLOAD_POST_BASE_URL", upload),
    ]
}

/// The provider's error answer for `status`.
fn refusal(provider: &str, status: u16) -> Response {
    let body = match provider {
        "kieai" => json!({"code": status, "msg": format!("fake kie.ai failure {status}")}),
        "shotstack" => {
            json!({"success": false, "message": format!("fake Shotstack failure {status}: invalid timeline")})
        }
        _ => json!({"success": false, "message": format!("fake Upload-Post failure {status}: invalid API key")}),
    };
    (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
}

/// A status lookup's fault: a refusal to answer now, or a delay first.
async fn lookup_fault(calls: &Calls, operation: &str, provider: &str) -> Option<Response> {
    match calls.fault(operation) {
        Some(Fault::Status(status)) => Some(refusal(provider, status)),
        Some(Fault::Hang(delay)) => {
            tokio::time::sleep(delay).await;
            None
        }
        None => None,
    }
}

/// kie.ai: a task id, then (as `kie` says) a signed callback to the URL it
/// was given.
async fn kie_generate(State(fake): State<Provider>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    assert_eq!(headers["authorization"], "Bearer kie-live-key");
    let fault = fake.calls.fault("kieai.submit");
    if let Some(Fault::Status(status)) = fault {
        return refusal("kieai", status);
    }
    let task = format!("task-{}", fake.calls.push("kieai.submit", body.clone()));
    let callback = body["callBackUrl"].as_str().unwrap_or_default().to_string();
    if matches!(fake.kie, Kie::Callback | Kie::FailureCallback | Kie::FailingTask(_)) {
        let (signed, failure) = (task.clone(), fake.kie.fails(&task));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let timestamp = chrono::Utc::now().timestamp().to_string();
            let signature = myloware_core::signing::kieai_signature(SIGNING.as_bytes(), &signed, &timestamp);
            let body = if failure {
                json!({"code": 501, "msg": "content policy violation", "data": {"taskId": signed}})
            } else {
                json!({"code": 200, "msg": "success",
                    "data": {"taskId": signed, "info": {"resultUrls": [format!("https://cdn.fake-kie/{signed}.mp4")]}}})
            };
            let _ = reqwest::Client::new()
                .post(callback)
                .header("x-webhook-timestamp", timestamp)
                .header("x-webhook-signature", signature)
                .json(&body)
                .send()
                .await;
        });
    }
    if let Some(Fault::Hang(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    Json(json!({"code": 200, "msg": "success", "data": {"taskId": task}})).into_response()
}

/// `record-info`: the task's result (the one its callback reported, if any).
async fn kie_record_info(State(fake): State<Provider>, Query(query): Query<HashMap<String, String>>) -> Response {
    if let Some(refused) = lookup_fault(&fake.calls, "kieai.record_info", "kieai").await {
        return refused;
    }
    let task = query.get("taskId").cloned().unwrap_or_default();
    fake.calls.push("kieai.record_info", json!({"taskId": task}));
    let success = json!({"code": 200, "data": {"taskId": task, "successFlag": 1,
        "response": {"resultUrls": [format!("https://cdn.fake-kie/{task}.mp4")]}}});
    Json(match fake.kie {
        Kie::SilentFailure => json!({"code": 200, "data": {"taskId": task, "successFlag": 3,
            "errorMessage": "generation failed upstream"}}),
        Kie::SilentGenerating => json!({"code": 200, "data": {"taskId": task, "successFlag": 0}}),
        kie if kie.fails(&task) => json!({"code": 200, "data": {"taskId": task, "successFlag": 3,
            "errorMessage": "content policy violation"}}),
        _ => success,
    })
    .into_response()
}

async fn kie_credit(headers: HeaderMap) -> Json<Value> {
    if headers["authorization"] == "Bearer kie-live-key" {
        Json(json!({"code": 200, "msg": "success", "data": 100}))
    } else {
        Json(json!({"code": 401, "msg": "Unauthorized: invalid API key"}))
    }
}

async fn upload_post_publish(State(fake): State<Provider>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let fault = fake.calls.fault("upload_post.publish");
    if let Some(Fault::Status(status)) = fault {
        return refusal("upload_post", status);
    }
    let request_id = headers.get("x-request-id").and_then(|v| v.to_str().ok());
    fake.calls.push(
        "upload_post.publish",
        json!({"requestId": request_id, "body": String::from_utf8_lossy(&body)}),
    );
    if let Some(Fault::Hang(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    match fake.publish {
        Publish::Sync => {
            Json(json!({"success": true, "results": {"tiktok": {"success": true, "url": TIKTOK_URL}}})).into_response()
        }
        Publish::Async(_) => {
            Json(json!({"success": true, "request_id": request_id, "message": "upload started"})).into_response()
        }
    }
}

/// The status by our request id.
async fn upload_post_status(State(fake): State<Provider>, Query(query): Query<HashMap<String, String>>) -> Response {
    if let Some(refused) = lookup_fault(&fake.calls, "upload_post.status", "upload_post").await {
        return refused;
    }
    let id = query.get("request_id").cloned().unwrap_or_default();
    fake.calls.push("upload_post.status", json!({"requestId": id}));
    match &fake.publish {
        Publish::Async(done) => Json(if done.load(Ordering::SeqCst) {
            json!({"status": "completed", "results": {"tiktok": {"success": true, "url": ASYNC_PUBLISH_URL}}})
        } else {
            json!({"status": "pending"})
        })
        .into_response(),
        Publish::Sync
            if fake
                .calls
                .done("upload_post.publish", |body| body["requestId"] == id.as_str())
                > 0 =>
        {
            Json(json!({"status": "completed", "results": {"tiktok": {"success": true, "url": TIKTOK_URL}}}))
                .into_response()
        }
        Publish::Sync => (
            StatusCode::NOT_FOUND,
            Json(json!({"success": false, "message": "not found"})),
        )
            .into_response(),
    }
}

// ------------------------------------------------------------------ OpenAI

/// An OpenAI-compatible `/v1/chat/completions` on loopback: `answer` gives
/// the assistant message for each request body; every body is recorded.
#[derive(Clone)]
pub struct OpenAi {
    /// The base URL (`OPENAI_BASE_URL`, ending in `/v1`).
    pub base: String,
    requests: Arc<Mutex<Vec<Value>>>,
}

type Answer = Arc<dyn Fn(&Value) -> Value + Send + Sync>;

impl OpenAi {
    pub async fn start(answer: impl Fn(&Value) -> Value + Send + Sync + 'static) -> OpenAi {
        let requests: Arc<Mutex<Vec<Value>>> = Arc::default();
        let answer: Answer = Arc::new(answer);
        let completions = |State((requests, answer)): State<(Arc<Mutex<Vec<Value>>>, Answer)>,
                           Json(body): Json<Value>| async move {
            requests.lock().unwrap().push(body.clone());
            Json(completion(answer(&body)))
        };
        let router = axum::Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state((requests.clone(), answer));
        OpenAi {
            base: format!("{}/v1", serve(router).await),
            requests,
        }
    }

    /// The variables of a system whose LLM is this fake.
    pub fn vars(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("OPENAI_API_KEY", "sk-fake-test-key"),
            ("OPENAI_BASE_URL", &self.base),
            ("LLM_MODEL", "fake-model"),
        ]
    }

    /// Every request body so far.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

/// A chat completion answering `message`.
pub fn completion(message: Value) -> Value {
    json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": "fake-model",
        "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    })
}

/// An assistant message saying `content`.
pub fn say(content: &str) -> Value {
    json!({"role": "assistant", "content": content})
}

/// An assistant message calling `tools` (name, arguments) in order.
pub fn call(tools: &[(&str, Value)]) -> Value {
    let calls: Vec<Value> = tools
        .iter()
        .enumerate()
        .map(|(i, (name, args))| {
            json!({"id": format!("call_{i}"), "type": "function",
                   "function": {"name": name, "arguments": args.to_string()}})
        })
        .collect();
    json!({"role": "assistant", "content": null, "tool_calls": calls})
}

// ---------------------------------------------------------------- Telegram

/// A request a fake channel received, and what it answered.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub body: Value,
    pub status: u16,
    pub at: Instant,
}

#[derive(Clone, Default)]
struct Script {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Answers for the first requests, in order.
    first: Arc<Mutex<VecDeque<(u16, Value)>>>,
    /// The answer once `first` is used up (200 when `None`).
    then: Option<(u16, Value)>,
}

/// A fake Telegram Bot API (or incoming webhook) on loopback, recording
/// every request.
pub struct Channel {
    pub url: String,
    script: Script,
}

impl Channel {
    /// Answers 200 (a sent Telegram message) to everything.
    pub async fn healthy() -> Channel {
        Channel::start(Vec::new(), None).await
    }

    /// Answers the first requests with `first`, then 200.
    pub async fn failing_first(first: Vec<(u16, Value)>) -> Channel {
        Channel::start(first, None).await
    }

    /// Answers every request with `status` and `body`.
    pub async fn always(status: u16, body: Value) -> Channel {
        Channel::start(Vec::new(), Some((status, body))).await
    }

    async fn start(first: Vec<(u16, Value)>, then: Option<(u16, Value)>) -> Channel {
        let script = Script {
            seen: Arc::default(),
            first: Arc::new(Mutex::new(first.into())),
            then,
        };
        let answer = |State(script): State<Script>, uri: Uri, body: axum::body::Bytes| async move {
            let (status, answer) = script
                .first
                .lock()
                .unwrap()
                .pop_front()
                .or_else(|| script.then.clone())
                .unwrap_or_else(|| (200, json!({"ok": true, "result": {"message_id": 1}})));
            script.seen.lock().unwrap().push(Seen {
                path: uri.path().to_string(),
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                status,
                at: Instant::now(),
            });
            (StatusCode::from_u16(status).unwrap(), Json(answer))
        };
        let url = serve(axum::Router::new().fallback(answer).with_state(script.clone())).await;
        Channel { url, script }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.script.seen.lock().unwrap().clone()
    }

    /// Waits until `n` requests came in.
    pub async fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<Seen> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.requests();
            if seen.len() >= n {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} requests to {}; got {seen:#?}",
                self.url
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
