//! The harness: a system to aim at, requests, answers, and what a refusal
//! must leave alone.

use std::future::Future;
use std::time::Duration;

use myloware_db::Db;
use myloware_testkit::system;
use myloware_testkit::system::{API_KEY, System};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use reqwest::Method;
use serde_json::{Value, json};

#[allow(unused_imports)]
use crate::generators::*;

pub const TELEGRAM_SECRET: &str = "bad-input-telegram-secret";
pub const KIE_SECRET: &str = "bad-input-kie-signing-secret";
pub const HITL_SECRET: &[u8] = myloware_core::config::DEV_HITL_SECRET.as_bytes();
pub const PROJECTS: [&str; 3] = ["aismr", "test_video_gen", "general"];
pub const RUN_TEXTS: [&str; 5] = ["prompt", "title", "subject", "object", "topic"];

/// Cases per property; each is one request (a few SQL counts after it).
pub const CASES: u32 = 96;

// ------------------------------------------------------------------ harness

/// Runs a property whose cases are async, on the test's runtime.
pub fn property<S, F, Fut>(name: &str, cases: u32, strategy: S, test: F)
where
    S: Strategy,
    F: Fn(S::Value) -> Fut,
    Fut: Future<Output = Result<(), TestCaseError>>,
{
    // `PROPTEST_CASES` overrides the bounded CI count, for a longer hunt.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    });
    let result = tokio::task::block_in_place(|| runner.run(&strategy, |value| handle.block_on(test(value))));
    if let Err(err) = result {
        panic!("{name}: {err}");
    }
}

/// Bytes shown as text in failures.
#[derive(Clone, PartialEq)]
pub struct Body(pub Vec<u8>);

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = String::from_utf8_lossy(&self.0);
        let shown: String = text.chars().take(1500).collect();
        write!(f, "{shown:?}")?;
        if shown.len() < text.len() {
            write!(f, "… ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Body {
        Body(bytes)
    }
}

/// One request, as generated.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Body>,
}

impl Request {
    pub fn new(method: Method, url: String) -> Request {
        Request {
            method,
            url,
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Request {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn key(self) -> Request {
        self.header("x-api-key", API_KEY)
    }

    /// A body, with its content type (none when `None`).
    pub fn body(mut self, content_type: Option<&str>, body: impl Into<Body>) -> Request {
        if let Some(content_type) = content_type {
            self.headers.push(("content-type".into(), content_type.into()));
        }
        self.body = Some(body.into());
        self
    }

    pub fn json(self, body: &Value) -> Request {
        self.body(Some("application/json"), body.to_string().into_bytes())
    }
}

/// What came back.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub request_id: Option<String>,
    pub body: Value,
    /// The start of the body, for failure messages.
    #[allow(dead_code)]
    pub text: String,
}

/// Marks a request (not sent) whose `.key()` means the internal credential
/// where the path alone does not say so (the orchestrator's chat route).
pub const INTERNAL_MARK: &str = "x-test-internal";

pub async fn send(http: &reqwest::Client, request: &Request) -> Answer {
    // The right credential for `.key()`: the internal routes (the
    // orchestrator's executions, the API's /v1/internal) take the services'
    // signature, never an operator key.
    let internal = request.url.contains("/v1/executions")
        || request.url.contains("/v1/internal/")
        || request.headers.iter().any(|(name, _)| name == INTERNAL_MARK);
    let mut builder = http.request(request.method.clone(), &request.url);
    for (name, value) in &request.headers {
        if name == INTERNAL_MARK {
            continue;
        }
        if !(internal && name == "x-api-key" && value == API_KEY) {
            builder = builder.header(name.as_str(), value.as_str());
        }
    }
    if let Some(body) = &request.body {
        builder = builder.body(body.0.clone());
    }
    let mut built = builder.build().expect("a request");
    if internal && request.headers.iter().any(|(n, v)| n == "x-api-key" && v == API_KEY) {
        let keys = myloware_core::internal::InternalKeys::new(myloware_core::config::DEV_INTERNAL_SECRET.into(), None);
        myloware_http::internal::sign(&keys, &mut built);
    }
    let response = http.execute(built).await.expect("the server answers");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (content_type, request_id) = (header("content-type").unwrap_or_default(), header("x-request-id"));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    Answer {
        status,
        content_type,
        request_id,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text: text.chars().take(500).collect(),
    }
}

/// Never a 5xx, always a request id, and every error JSON `{"detail": ...}`:
/// a non-empty string, or the list form `[{loc, msg, type}]`.
pub fn well_formed(answer: &Answer) -> Result<(), TestCaseError> {
    prop_assert!(answer.status < 500, "server error: {answer:?}");
    prop_assert!(answer.request_id.is_some(), "no X-Request-ID: {answer:?}");
    if answer.status < 400 {
        return Ok(());
    }
    prop_assert!(
        answer.content_type.starts_with("application/json"),
        "error not JSON: {answer:?}"
    );
    match &answer.body["detail"] {
        Value::String(detail) => prop_assert!(!detail.is_empty(), "empty detail: {answer:?}"),
        Value::Array(errors) => {
            prop_assert!(!errors.is_empty(), "empty detail list: {answer:?}");
            for error in errors {
                prop_assert!(
                    error["loc"].as_array().is_some_and(|loc| !loc.is_empty())
                        && error["msg"].is_string()
                        && error["type"].is_string(),
                    "malformed 422 item {error}: {answer:?}"
                );
            }
        }
        _ => prop_assert!(false, "no detail: {answer:?}"),
    }
    Ok(())
}

/// Refused: a well-formed 4xx.
pub fn refused(answer: &Answer) -> Result<(), TestCaseError> {
    well_formed(answer)?;
    prop_assert!((400..500).contains(&answer.status), "accepted: {answer:?}");
    Ok(())
}

/// Whether the request carries a NUL character (raw, JSON-escaped or
/// percent-encoded).
pub fn has_nul(request: &Request) -> bool {
    let body = request.body.as_ref().map_or(&[][..], |b| &b.0[..]);
    let escaped = String::from_utf8_lossy(body).to_ascii_lowercase().contains("\\u0000");
    body.contains(&0) || escaped || request.url.contains('\0') || request.url.to_ascii_lowercase().contains("%00")
}

/// What refused requests must never add to. (Rejected webhook deliveries
/// without a key and the gate audit are recorded on purpose.)
pub const RECORDS: [(&str, &str); 21] = [
    ("runs", "SELECT COUNT(*) FROM runs"),
    (
        "runs at ideate",
        "SELECT COUNT(*) FROM runs WHERE status = 'awaiting_ideate'",
    ),
    (
        "runs at workflow",
        "SELECT COUNT(*) FROM runs WHERE status = 'pending_workflow'",
    ),
    ("artifacts", "SELECT COUNT(*) FROM artifacts"),
    ("commands", "SELECT COUNT(*) FROM commands"),
    ("run events", "SELECT COUNT(*) FROM run_events"),
    (
        "webhook keys",
        "SELECT COUNT(*) FROM webhook_deliveries WHERE idempotency_key IS NOT NULL",
    ),
    ("decided gates", "SELECT COUNT(*) FROM gates WHERE status <> 'awaiting'"),
    ("chat messages", "SELECT COUNT(*) FROM chat_messages"),
    ("chat pushes", "SELECT COUNT(*) FROM chat_deliveries"),
    ("dead letters", "SELECT COUNT(*) FROM dead_letters"),
    ("schedules", "SELECT COUNT(*) FROM schedules"),
    ("schedule firings", "SELECT COUNT(*) FROM schedule_firings"),
    ("executions", "SELECT COUNT(*) FROM executions"),
    ("signals", "SELECT COUNT(*) FROM signals"),
    ("journal", "SELECT COUNT(*) FROM journal"),
    ("outbox", "SELECT COUNT(*) FROM outbox"),
    ("mock calls", "SELECT COUNT(*) FROM mock_provider_calls"),
    ("run costs", "SELECT COUNT(*) FROM run_costs"),
    ("spend", "SELECT COUNT(*) FROM spend"),
    (
        "waiting executions",
        "SELECT COUNT(*) FROM executions WHERE status = 'waiting'",
    ),
];

pub async fn records(db: &Db) -> Vec<(&'static str, i64)> {
    let mut counts = Vec::with_capacity(RECORDS.len());
    for (name, sql) in RECORDS {
        let count: i64 = match db {
            Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
            Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        };
        counts.push((name, count));
    }
    counts
}

/// The last event of `run_id` the API applied.
pub async fn last_event_seq(system: &System, run_id: &str) -> i64 {
    let run = system.api_state.store.get_run(run_id).await.unwrap();
    run.expect("the run exists").last_event_seq
}

/// A system with two quiet runs to aim at: an aismr run parked at the
/// ideate gate and a proposal held at the workflow gate.
pub struct Target {
    pub system: System,
    pub awaiting: String,
    pub proposed: String,
    /// The awaiting run's last applied event.
    pub awaiting_seq: i64,
    /// The counts of `RECORDS` as they should stay (moved on after a
    /// failure, so that shrinking blames the request that recorded).
    pub baseline: std::sync::Mutex<Vec<(&'static str, i64)>>,
    pub recorded: std::sync::atomic::AtomicBool,
}

pub async fn target(db: &Db) -> Target {
    let system = system::start(
        db,
        &[
            ("TELEGRAM_WEBHOOK_SECRET", TELEGRAM_SECRET),
            ("TELEGRAM_API_BASE_URL", "http://127.0.0.1:9"),
            ("KIEAI_SIGNING_SECRET", KIE_SECRET),
        ],
    )
    .await;
    let awaiting = system
        .start_run(json!({"project": "aismr", "input": {"object": "candles"}, "options": {"user_id": "u-1"}}))
        .await;
    let proposed = system
        .start_run(json!({"project": "test_video_gen", "input": {"prompt": "p"},
            "options": {"requireWorkflowApproval": true, "user_id": "u-2"}}))
        .await;
    system
        .wait_status(&awaiting, "awaiting_ideate", Duration::from_secs(30))
        .await;
    // Quiet: nothing runnable, every event and command delivered.
    system.wait_idle().await;
    let awaiting_seq = last_event_seq(&system, &awaiting).await;
    let baseline = records(db).await;
    Target {
        system,
        awaiting,
        proposed,
        awaiting_seq,
        baseline: std::sync::Mutex::new(baseline),
        recorded: std::sync::atomic::AtomicBool::new(false),
    }
}

impl Target {
    /// Sends, checks the answer is well formed, and that nothing changed.
    pub async fn send(&self, db: &Db, request: &Request) -> Result<Answer, TestCaseError> {
        let answer = send(&self.system.http, request).await;
        well_formed(&answer)?;
        let now = records(db).await;
        let before = std::mem::replace(&mut *self.baseline.lock().unwrap(), now.clone());
        let changed: Vec<_> = before.iter().zip(&now).filter(|(a, b)| a != b).collect();
        if !changed.is_empty() && !self.recorded.swap(true, std::sync::atomic::Ordering::SeqCst) {
            // Shrinking may blame a later request (the first one's work goes
            // on in the background): this is the one that recorded first.
            eprintln!("FIRST REQUEST THAT RECORDED: {request:?} answered {answer:?} and recorded: {changed:?}");
        }
        prop_assert!(
            changed.is_empty(),
            "{request:?} answered {answer:?} and recorded: {changed:?}"
        );
        Ok(answer)
    }

    /// The property skeleton every route shares: `cases` requests that
    /// `request` builds from generated values, each refused and recording
    /// nothing.
    pub fn refuses<S: Strategy>(
        &self,
        db: &Db,
        route: &str,
        cases: u32,
        strategy: S,
        request: impl Fn(S::Value) -> Request,
    ) {
        property(route, cases, strategy, |value| {
            let request = request(value);
            async move { self.refuse(db, &request).await.map(drop) }
        });
    }

    /// [`refuses`](Target::refuses) for keyed `POST url` requests whose
    /// content types and bodies `bodies` generates.
    pub fn refuses_bodies<S>(&self, db: &Db, route: &str, url: &str, cases: u32, bodies: S)
    where
        S: Strategy<Value = (Option<String>, Body)>,
    {
        self.refuses(db, route, cases, bodies, |(content_type, body)| {
            Request::new(Method::POST, url.to_string())
                .key()
                .body(content_type.as_deref(), body)
        });
    }

    /// Sends a request that must be refused.
    pub async fn refuse(&self, db: &Db, request: &Request) -> Result<Answer, TestCaseError> {
        let answer = self.send(db, request).await?;
        refused(&answer)?;
        Ok(answer)
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}{path}", self.system.api)
    }

    pub fn orchestrator(&self, path: &str) -> String {
        format!("{}{path}", self.system.orchestrator)
    }
}
