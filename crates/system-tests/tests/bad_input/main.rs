//! Bad input against a running system (`system::start`, both services on
//! real HTTP): random, malformed, oversized and wrong-typed bodies, queries
//! and headers for every route that accepts a body, on both services. Never
//! a 5xx; every error is JSON `{"detail": ...}` (a string, or the 422 list
//! form); and a refused request records nothing: no run, no command, no
//! chat message, no decision, no event, no webhook delivery consuming an
//! idempotency key, no execution or signal on the orchestrator. (Refused
//! webhooks and gate attempts are still logged by design, in
//! `webhook_deliveries` without a key and in `gate_audit`.)

use std::future::Future;
use std::time::{Duration, Instant};

use myloware_core::signing;
use myloware_db::Db;
use myloware_testkit::TestDb;
use myloware_testkit::system;
use myloware_testkit::system::{API_KEY, System};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use reqwest::Method;
use serde_json::{Map, Value, json};

const TELEGRAM_SECRET: &str = "bad-input-telegram-secret";
const KIE_SECRET: &str = "bad-input-kie-signing-secret";
const HITL_SECRET: &[u8] = myloware_core::config::DEV_HITL_SECRET.as_bytes();
const PROJECTS: [&str; 3] = ["aismr", "test_video_gen", "general"];
const RUN_TEXTS: [&str; 5] = ["prompt", "title", "subject", "object", "topic"];

/// Cases per property; each is one request (a few SQL counts after it).
const CASES: u32 = 96;

// ------------------------------------------------------------------ harness

/// Runs a property whose cases are async, on the test's runtime.
fn property<S, F, Fut>(name: &str, cases: u32, strategy: S, test: F)
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
struct Body(Vec<u8>);

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
struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Body>,
}

impl Request {
    fn new(method: Method, url: String) -> Request {
        Request {
            method,
            url,
            headers: Vec::new(),
            body: None,
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Request {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    fn key(self) -> Request {
        self.header("x-api-key", API_KEY)
    }

    /// A body, with its content type (none when `None`).
    fn body(mut self, content_type: Option<&str>, body: impl Into<Body>) -> Request {
        if let Some(content_type) = content_type {
            self.headers.push(("content-type".into(), content_type.into()));
        }
        self.body = Some(body.into());
        self
    }

    fn json(self, body: &Value) -> Request {
        self.body(Some("application/json"), body.to_string().into_bytes())
    }
}

/// What came back.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    request_id: Option<String>,
    body: Value,
    /// The start of the body, for failure messages.
    #[allow(dead_code)]
    text: String,
}

/// Marks a request (not sent) whose `.key()` means the internal credential
/// where the path alone does not say so (the orchestrator's chat route).
const INTERNAL_MARK: &str = "x-test-internal";

async fn send(http: &reqwest::Client, request: &Request) -> Answer {
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
        myloware_telemetry::internal::sign(&keys, &mut built);
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
fn well_formed(answer: &Answer) -> Result<(), TestCaseError> {
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
fn refused(answer: &Answer) -> Result<(), TestCaseError> {
    well_formed(answer)?;
    prop_assert!((400..500).contains(&answer.status), "accepted: {answer:?}");
    Ok(())
}

/// Whether the request carries a NUL character (raw, JSON-escaped or
/// percent-encoded).
fn has_nul(request: &Request) -> bool {
    let body = request.body.as_ref().map_or(&[][..], |b| &b.0[..]);
    let escaped = String::from_utf8_lossy(body).to_ascii_lowercase().contains("\\u0000");
    body.contains(&0) || escaped || request.url.contains('\0') || request.url.to_ascii_lowercase().contains("%00")
}

/// What refused requests must never add to. (Rejected webhook deliveries
/// without a key and the gate audit are recorded on purpose.)
const RECORDS: [(&str, &str); 17] = [
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
    ("executions", "SELECT COUNT(*) FROM executions"),
    ("signals", "SELECT COUNT(*) FROM signals"),
    ("journal", "SELECT COUNT(*) FROM journal"),
    ("outbox", "SELECT COUNT(*) FROM outbox"),
    ("mock calls", "SELECT COUNT(*) FROM mock_provider_calls"),
    (
        "waiting executions",
        "SELECT COUNT(*) FROM executions WHERE status = 'waiting'",
    ),
];

async fn records(db: &Db) -> Vec<(&'static str, i64)> {
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

/// A system with two quiet runs to aim at: an aismr run parked at the
/// ideate gate and a proposal held at the workflow gate.
struct Target {
    system: System,
    awaiting: String,
    proposed: String,
    /// The awaiting run's last applied event.
    awaiting_seq: i64,
    /// The counts of `RECORDS` as they should stay (moved on after a
    /// failure, so that shrinking blames the request that recorded).
    baseline: std::sync::Mutex<Vec<(&'static str, i64)>>,
    recorded: std::sync::atomic::AtomicBool,
}

async fn target(db: &Db) -> Target {
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
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let counts = system.orchestrator_state.store.counts().await.unwrap();
        let commands = system
            .api_state
            .store
            .commands_due(chrono::Utc::now() + chrono::Duration::days(1), 10)
            .await
            .unwrap();
        if counts.runnable == 0 && counts.outbox_pending == 0 && commands.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the fixture runs never settled");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let awaiting_seq = system
        .api_state
        .store
        .get_run(&awaiting)
        .await
        .unwrap()
        .unwrap()
        .last_event_seq;
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
    async fn send(&self, db: &Db, request: &Request) -> Result<Answer, TestCaseError> {
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

    /// Sends a request that must be refused.
    async fn refuse(&self, db: &Db, request: &Request) -> Result<Answer, TestCaseError> {
        let answer = self.send(db, request).await?;
        refused(&answer)?;
        Ok(answer)
    }

    fn api(&self, path: &str) -> String {
        format!("{}{path}", self.system.api)
    }

    fn orchestrator(&self, path: &str) -> String {
        format!("{}{path}", self.system.orchestrator)
    }
}

// --------------------------------------------------------------- generators

/// Keys bodies have (and some they do not), so random objects hit fields.
const KEYS: [&str; 32] = [
    "project",
    "input",
    "options",
    "prompt",
    "topic",
    "object",
    "modifiers",
    "user_id",
    "userId",
    "message",
    "events",
    "eventId",
    "runId",
    "seq",
    "type",
    "at",
    "data",
    "signalId",
    "signal",
    "gate",
    "decision",
    "token",
    "reason",
    "approver",
    "update_id",
    "request_id",
    "status",
    "code",
    "msg",
    "taskId",
    "history",
    "graphSpec",
];

/// Strings worth trying anywhere.
const STRINGS: [&str; 22] = [
    "",
    " ",
    "\t\n",
    "aismr",
    "test_video_gen",
    "general",
    "ideate",
    "prepublish",
    "workflow",
    "approve",
    "reject",
    "run_abcdefabcdef",
    "run_",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "%FF%00",
    "\u{0}",
    "\u{feff}zero width\u{200b}",
    "💥🦀",
    "null",
    "9223372036854775808",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => ".{0,30}",
        2 => select(STRINGS.to_vec()).prop_map(str::to_owned),
        1 => "[a-z0-9_]{0,20}",
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(|f| json!(f)),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![select(KEYS.to_vec()).prop_map(str::to_owned), "[a-zA-Z_]{0,10}"];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key, inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

fn not_string() -> impl Strategy<Value = Value> {
    any_json().prop_filter("not a string", |v| !v.is_string())
}

fn not_object() -> impl Strategy<Value = Value> {
    any_json().prop_filter("not an object", |v| !v.is_object())
}

/// Sets `pointer` (creating objects on the way) in a copy of `base`.
fn set(base: &Value, pointer: &str, value: Value) -> Value {
    let mut out = base.clone();
    let mut at = &mut out;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for part in &parts[..parts.len() - 1] {
        at = at.as_object_mut().unwrap().entry(*part).or_insert_with(|| json!({}));
    }
    at.as_object_mut()
        .unwrap()
        .insert(parts[parts.len() - 1].to_string(), value);
    out
}

fn remove(base: &Value, pointer: &str) -> Value {
    let mut out = base.clone();
    let (parent, last) = pointer.rsplit_once('/').unwrap();
    if let Some(object) = out.pointer_mut(parent).and_then(Value::as_object_mut) {
        object.remove(last);
    }
    out
}

/// Bodies that are not JSON, or not quite: garbage, truncations, a byte
/// changed, deep nesting, numbers out of range, lone surrogates, duplicate
/// keys, trailing data.
fn broken_json(valid: Value) -> impl Strategy<Value = Vec<u8>> {
    let text = valid.to_string();
    let len = text.len();
    let (cut, flip) = (text.clone(), text.clone());
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        (0..len).prop_map(move |at| cut.as_bytes()[..at].to_vec()),
        (0..len, any::<u8>()).prop_map(move |(at, byte)| {
            let mut bytes = flip.clone().into_bytes();
            bytes[at] = byte;
            bytes
        }),
        (100usize..3000).prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()),
        (100usize..3000).prop_map(|depth| format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)).into_bytes()),
        Just(b"{\"seq\": 1e400}".to_vec()),
        Just(b"{\"message\": \"\\ud800\"}".to_vec()),
        Just(format!("{{\"project\":\"a\",\"project\":\"b\",{}", &text[1..]).into_bytes()),
        Just(format!("{text}{text}").into_bytes()),
        Just(format!("{text} trailing").into_bytes()),
        Just(Vec::new()),
    ]
    // Bytes that still parse belong to the JSON arms (a flipped byte inside
    // a string could make a valid request).
    .prop_filter("not JSON", |bytes| serde_json::from_slice::<Value>(bytes).is_err())
}

/// A JSON body that does not deserialize as `T`.
fn not_a<T: serde::de::DeserializeOwned>(value: &Value) -> bool {
    parse::<T>(value).is_err()
}

/// `value` read the way the services read a request body.
fn parse<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, myloware_telemetry::body::BodyError> {
    myloware_telemetry::body::parse_json(&serde_json::to_vec(value).unwrap())
}

/// Content types, mostly JSON.
fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        8 => Just(Some("application/json".to_string())),
        1 => Just(Some("application/json; charset=utf-8".to_string())),
        1 => Just(Some("application/problem+json".to_string())),
        1 => Just(Some("text/plain".to_string())),
        1 => Just(Some("application/x-www-form-urlencoded".to_string())),
        1 => Just(Some("multipart/form-data; boundary=x".to_string())),
        1 => "[ -~]{0,30}".prop_map(Some),
    ]
}

/// A body for a JSON route: a JSON value sent as such, or broken bytes.
fn body_of(values: impl Strategy<Value = Value>, valid: Value) -> impl Strategy<Value = (Option<String>, Body)> {
    prop_oneof![
        3 => (content_type(), values.prop_map(|v| Body(v.to_string().into_bytes()))),
        1 => (content_type(), broken_json(valid).prop_map(Body)),
    ]
}

/// Header values callers may send: printable, sometimes long.
fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}",
        select(STRINGS.to_vec())
            .prop_map(str::to_owned)
            .prop_filter("printable", |s| s.bytes().all(|b| (0x20..0x7f).contains(&b))),
        (200usize..9000).prop_map(|n| "k".repeat(n)),
    ]
}

// --------------------------------------------------------------- properties

fn start_base() -> Value {
    json!({"project": "test_video_gen", "input": {"prompt": "p"}, "options": {}})
}

/// Start bodies that are wrong in exactly one (or more) ways.
fn bad_start() -> impl Strategy<Value = Value> {
    let base = start_base();
    let (b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14) = (
        base.clone(),
        base.clone(),
        base.clone(),
        base.clone(),
        base.clone(),
        base.clone(),
        base.clone(),
        base.clone(),
        base.clone(),
        base.clone(),
        base.clone(),
        base.clone(),
        base.clone(),
        base.clone(),
    );
    let long = |n: usize| "é".repeat(n);
    prop_oneof![
        not_string().prop_map(move |p| set(&b1, "/project", p)),
        text()
            .prop_filter("unknown project", |p| !PROJECTS.contains(&p.as_str()))
            .prop_map(move |p| set(&b2, "/project", json!(p))),
        Just(set(&base, "/project", json!("general"))),
        Just(remove(&base, "/project")),
        Just(remove(&base, "/input")),
        not_object().prop_map(move |i| set(&b3, "/input", i)),
        // No usable text: none, blank ones, or too long ones.
        proptest::collection::vec((select(RUN_TEXTS.to_vec()), "[ \t\n]{0,5}"), 0..4).prop_map(move |blank| {
            let input: Map<String, Value> = blank.into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
            set(&b4, "/input", Value::Object(input))
        }),
        (select(RUN_TEXTS.to_vec()), 4001usize..4100).prop_map(move |(field, n)| set(
            &b5,
            "/input",
            json!({ field: long(n) })
        )),
        not_string().prop_map(move |t| set(&b6, "/input/prompt", t)),
        prop_oneof![
            Just(json!([""])),
            Just(json!(["   "])),
            (51usize..60).prop_map(|n| json!(vec!["m"; n])),
            (201usize..260).prop_map(|n| json!(["x".repeat(n)])),
            not_string().prop_map(|m| json!([m])),
            not_object().prop_filter("not a list", |v| !v.is_array() && !v.is_null()),
        ]
        .prop_map(move |m| set(&b7, "/input/modifiers", m)),
        ("[a-z]{1,10}", any_json())
            .prop_filter("unknown input field", |(k, _)| !RUN_TEXTS.contains(&k.as_str())
                && k != "modifiers")
            .prop_map(move |(k, v)| set(&b8, &format!("/input/{k}"), v)),
        ("[a-zA-Z]{1,10}", any_json())
            .prop_filter("unknown field", |(k, _)| !["project", "input", "options"]
                .contains(&k.as_str()))
            .prop_map(move |(k, v)| set(&b9, &format!("/{k}"), v)),
        not_object().prop_map(move |o| set(&b10, "/options", o)),
        any_json()
            .prop_filter("not a bool", |v| !v.is_boolean())
            .prop_map(move |v| set(&b11, "/options/requireWorkflowApproval", v)),
        prop_oneof![
            Just(json!(["riley"])),
            Just(json!(["nobody"])),
            Just(json!("alex")),
            not_string().prop_map(|s| json!([s])),
        ]
        .prop_map(move |s| set(&b12, "/options/skip", s)),
        not_string()
            .prop_filter("not null", |v| !v.is_null())
            .prop_map(move |u| set(&b13, "/options/user_id", u)),
        any_json().prop_filter("not a start", |v| {
            // Anything else: only if it cannot be a start at all.
            not_a::<myloware_api::runs::StartRunRequest>(v)
        }),
        Just(b14),
    ]
    // Only what the API must refuse.
    .prop_filter("may be a valid start", |v| !start_may_be_accepted(v))
}

/// Whether the API could accept this start (a superset of what it does).
fn start_may_be_accepted(value: &Value) -> bool {
    let Ok(start) = parse::<myloware_api::runs::StartRunRequest>(value) else {
        return false;
    };
    let input = &start.input;
    let texts = [&input.prompt, &input.title, &input.subject, &input.object, &input.topic];
    ["aismr", "test_video_gen"].contains(&start.project.as_str())
        && texts
            .iter()
            .all(|t| t.as_ref().is_none_or(|t| t.chars().count() <= 4000))
        && texts.iter().any(|t| t.as_ref().is_some_and(|t| !t.trim().is_empty()))
        && input.modifiers.len() <= 50
        && input
            .modifiers
            .iter()
            .all(|m| !m.trim().is_empty() && m.chars().count() <= 200)
        && !start.options.skip.contains(&myloware_core::project::Persona::Riley)
}

/// Whether the API could accept this chat turn.
fn chat_may_be_accepted(value: &Value) -> bool {
    let Ok(turn) = parse::<myloware_api::routes::chat::ChatRequest>(value) else {
        return false;
    };
    let message = turn.message.trim();
    myloware_api::chat::validate_user_id(&turn.user_id).is_ok()
        && !message.is_empty()
        && message.chars().count() <= myloware_api::chat::MAX_MESSAGE_CHARS
}

/// The orchestrator's resume body, to tell which bodies would decide.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Resume {
    gate: myloware_core::Gate,
    decision: String,
    #[serde(default)]
    approver: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// Whether this resume body decides the ideate gate.
fn decides_ideate(value: &Value) -> bool {
    parse::<Resume>(value)
        .is_ok_and(|r| r.gate == myloware_core::Gate::Ideate && ["approve", "reject"].contains(&r.decision.as_str()))
}

/// Whether the orchestrator would create an execution from this body.
fn execution_may_be_accepted(value: &Value) -> bool {
    parse::<myloware_core::wire::StartExecution>(value).is_ok_and(|start| {
        myloware_core::ids::is_run_id(&start.run_id) && myloware_core::graph::nodes(&start.graph_spec).is_ok()
    })
}

async fn run_start_refuses_bad_bodies(db: &Db) {
    let t = target(db).await;
    let bodies = body_of(bad_start(), start_base());
    property("POST /v1/runs/start", CASES * 2, bodies, |(content_type, body)| {
        let request = Request::new(Method::POST, t.api("/v1/runs/start"))
            .key()
            .body(content_type.as_deref(), body);
        let t = &t;
        async move {
            t.refuse(db, &request).await?;
            Ok(())
        }
    });
    t.system.stop_idle().await;
}

fn chat_base() -> Value {
    json!({"user_id": "u-1", "message": "hello"})
}

fn bad_chat() -> impl Strategy<Value = Value> {
    let base = chat_base();
    let (b1, b2, b3, b4, b5, b6, b7) = (
        base.clone(),
        base.clone(),
        base.clone(),
        base.clone(),
        base.clone(),
        base.clone(),
        base.clone(),
    );
    prop_oneof![
        not_string().prop_map(move |u| set(&b1, "/user_id", u)),
        prop_oneof![
            Just(String::new()),
            (129usize..300).prop_map(|n| "u".repeat(n)),
            "[a-z0-9]{0,8}[^A-Za-z0-9_.:@-][a-z0-9]{0,8}",
        ]
        .prop_map(move |u| set(&b2, "/user_id", json!(u))),
        not_string().prop_map(move |m| set(&b3, "/message", m)),
        prop_oneof!["[ \t\n\r]{0,8}", (4001usize..4100).prop_map(|n| "é".repeat(n))].prop_map(move |m| set(
            &b4,
            "/message",
            json!(m)
        )),
        Just(remove(&base, "/user_id")),
        Just(remove(&b5, "/message")),
        ("[a-zA-Z]{1,10}", any_json())
            .prop_filter("unknown field", |(k, _)| !["user_id", "message"].contains(&k.as_str()))
            .prop_map(move |(k, v)| set(&b6, &format!("/{k}"), v)),
        any_json().prop_filter("not a chat turn", |v| {
            not_a::<myloware_api::routes::chat::ChatRequest>(v)
        }),
        Just(set(&b7, "/userId", json!("u-1"))),
    ]
    .prop_filter("may be a valid turn", |v| !chat_may_be_accepted(v))
}

async fn chat_refuses_bad_bodies(db: &Db) {
    let t = target(db).await;
    property(
        "POST /v1/chat/brendan",
        CASES,
        body_of(bad_chat(), chat_base()),
        |(content_type, body)| {
            let request = Request::new(Method::POST, t.api("/v1/chat/brendan"))
                .key()
                .body(content_type.as_deref(), body);
            let t = &t;
            async move {
                t.refuse(db, &request).await?;
                Ok(())
            }
        },
    );
    t.system.stop_idle().await;
}

/// Cancel bodies that are not a cancel request (always sent with a body
/// and a content type: a bodiless cancel is a valid cancel).
async fn cancel_refuses_bad_bodies(db: &Db) {
    let t = target(db).await;
    let bodies = body_of(
        any_json().prop_filter("not a cancel request", not_a::<myloware_api::runs::CancelRequest>),
        json!({"reason": "r"}),
    )
    .prop_filter("not empty", |(_, body)| !body.0.is_empty());
    let runs = prop_oneof![
        Just(t.proposed.clone()),
        Just(t.awaiting.clone()),
        "run_[a-z0-9]{12}",
        "[a-zA-Z0-9_.-]{1,20}",
    ];
    property(
        "POST /v1/runs/{runId}/cancel",
        CASES,
        (runs, bodies),
        |(run_id, (content_type, body))| {
            let content_type = content_type.unwrap_or_else(|| "application/json".into());
            let request = Request::new(Method::POST, t.api(&format!("/v1/runs/{run_id}/cancel")))
                .key()
                .body(Some(&content_type), body);
            let t = &t;
            async move {
                t.refuse(db, &request).await?;
                Ok(())
            }
        },
    );
    t.system.stop_idle().await;
}

/// HITL tokens that must not decide `gate` of `run_id`: random text, or
/// real-looking ones signed with the wrong secret, expired, or for another
/// run or gate, or a real one mutated.
fn forged_token(run_id: String, gate: String) -> impl Strategy<Value = Option<String>> {
    let now = chrono::Utc::now().timestamp();
    let (r1, r2, r3, r4) = (run_id.clone(), run_id.clone(), run_id.clone(), run_id);
    let (g1, g2, g3, g4) = (gate.clone(), gate.clone(), gate.clone(), gate);
    prop_oneof![
        Just(None),
        text().prop_map(Some),
        "[0-9]{1,11}\\.[0-9a-f]{0,70}".prop_map(Some),
        proptest::collection::vec(any::<u8>(), 1..40).prop_map(move |secret| Some(signing::hitl_token(
            &secret,
            &r1,
            &g1,
            now + 3600
        ))),
        (1i64..10_000_000).prop_map(move |ago| Some(signing::hitl_token(HITL_SECRET, &r2, &g2, now - ago))),
        select(vec!["workflow", "ideate", "prepublish", "other"])
            .prop_filter("another gate", move |other| *other != g3)
            .prop_map(move |other| Some(signing::hitl_token(HITL_SECRET, &r3, other, now + 3600))),
        (any::<usize>(), "[0-9a-f]").prop_map(move |(at, with)| {
            let token = signing::hitl_token(HITL_SECRET, &r4, &g4, now + 3600);
            let digits = token.len() - token.find('.').unwrap() - 1;
            let at = token.len() - 1 - at % digits;
            let mutated = format!("{}{with}{}", &token[..at], &token[at + 1..]);
            (mutated != token).then_some(mutated)
        }),
    ]
}

async fn hitl_decisions_refuse_bad_input(db: &Db) {
    let t = target(db).await;
    let runs = prop_oneof![
        3 => Just(t.awaiting.clone()),
        3 => Just(t.proposed.clone()),
        1 => "run_[a-z0-9]{12}",
        1 => "[a-zA-Z0-9_.-]{1,20}",
    ];
    let gates = prop_oneof![
        3 => select(vec!["ideate", "workflow", "prepublish"]).prop_map(str::to_owned),
        1 => "[a-z]{1,12}",
    ];
    let cases = (runs, gates, any::<bool>()).prop_flat_map(|(run_id, gate, approve)| {
        let token = forged_token(run_id.clone(), gate.clone());
        let body = prop_oneof![
            Just(None),
            (proptest::option::of(text()), proptest::option::of(text())).prop_map(|(approver, reason)| Some((
                "application/x-www-form-urlencoded".to_string(),
                {
                    let mut form = Vec::new();
                    if let Some(a) = approver {
                        form.push(("approver", a));
                    }
                    if let Some(r) = reason {
                        form.push(("reason", r));
                    }
                    serde_urlencoded::to_string(form).unwrap().into_bytes()
                }
            ))),
            proptest::collection::vec(any::<u8>(), 1..100)
                .prop_map(|b| Some(("application/x-www-form-urlencoded".to_string(), b))),
            (content_type(), any_json()).prop_map(|(ct, v)| Some((
                ct.unwrap_or_else(|| "application/json".into()),
                v.to_string().into_bytes()
            ))),
        ];
        // Never the real key: a key decides.
        let key = proptest::option::of(header_value().prop_filter("not the key", |k| k != API_KEY));
        let origin = proptest::option::of(select(vec!["null", "https://evil.example", "http://127.0.0.1", ""]));
        let token_in_body = any::<bool>();
        (
            Just(run_id),
            Just(gate),
            Just(approve),
            token,
            body,
            key,
            origin,
            token_in_body,
        )
    });
    property(
        "POST /v1/hitl/{approve,reject}/{runId}/{gate}",
        CASES * 2,
        cases,
        |(run_id, gate, approve, token, body, key, origin, token_in_body)| {
            let action = if approve { "approve" } else { "reject" };
            let mut url = t.api(&format!("/v1/hitl/{action}/{run_id}/{gate}"));
            let mut body = body;
            if let Some(token) = &token {
                match (&mut body, token_in_body) {
                    (Some((ct, bytes)), true) if ct.starts_with("application/x-www-form-urlencoded") => {
                        let field = serde_urlencoded::to_string([("token", token)]).unwrap();
                        if !bytes.is_empty() {
                            bytes.push(b'&');
                        }
                        bytes.extend_from_slice(field.as_bytes());
                    }
                    _ => url.push_str(&format!(
                        "?{}",
                        serde_urlencoded::to_string([("token", token)]).unwrap()
                    )),
                }
            }
            let mut request = Request::new(Method::POST, url).header("accept", "application/json");
            if let Some(key) = key {
                request = request.header("x-api-key", key);
            }
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
            if let Some((content_type, bytes)) = body {
                request = request.body(Some(&content_type), bytes);
            }
            let t = &t;
            async move {
                t.refuse(db, &request).await?;
                // Opening the link never decides either.
                let view = Request::new(Method::GET, request.url.replace("/reject/", "/approve/"))
                    .header("accept", "application/json");
                let answer = t.send(db, &view).await?;
                refused(&answer)?;
                Ok(())
            }
        },
    );
    t.system.stop_idle().await;
}

/// kie.ai and Telegram webhooks that are not signed right, and Upload-Post's
/// (unsigned) that are not an upload it completed.
async fn webhooks_refuse_what_is_not_signed(db: &Db) {
    let t = target(db).await;
    let now = chrono::Utc::now().timestamp();

    // kie.ai: one of its signature, its timestamp or our token is wrong.
    let runs = prop_oneof![Just(t.awaiting.clone()), Just(t.proposed.clone()), "run_[a-z0-9]{12}"];
    let kie = (
        runs,
        0u32..14,
        "[a-z0-9-]{1,20}",
        prop_oneof![Just(200i64), any::<i64>()],
        0u8..6,
        text(),
        -1_000_000i64..1_000_000,
        any::<usize>(),
    )
        .prop_map(
            move |(run_id, index, task, code, wrong, junk, skew, at)| {
                let token = signing::callback_token(HITL_SECRET, &run_id, &format!("mock-clip:{index}"));
                let timestamp = now.to_string();
                let signature = signing::kieai_signature(KIE_SECRET.as_bytes(), &task, &timestamp);
                let body = json!({"code": code, "msg": "done", "data": {"taskId": task, "info": {"resultUrls": ["https://x/y.mp4"]}}});
                // Another character, also for case-insensitive hex.
                let mutate = |s: &str| {
                    let at = at % s.len();
                    let c = if s.as_bytes()[at].eq_ignore_ascii_case(&b'a') { 'b' } else { 'a' };
                    format!("{}{c}{}", &s[..at], &s[at + 1..])
                };
                let (token, timestamp, signature, body) = match wrong {
                    // Our token forged or missing.
                    0 => (mutate(&token), timestamp, signature, body),
                    // kie.ai's signature forged, or for another task.
                    1 => (token, timestamp, mutate(&signature), body),
                    2 => (token, timestamp, signature, set(&body, "/data/taskId", json!(format!("{task}x")))),
                    // Stale, or not a time.
                    3 => {
                        let skew = if skew.abs() <= signing::WEBHOOK_TOLERANCE_SECS { skew + 1000 } else { skew };
                        let stale = (now + skew).to_string();
                        let signature = signing::kieai_signature(KIE_SECRET.as_bytes(), &task, &stale);
                        (token, stale, signature, body)
                    }
                    // Absurd times (an i64 difference would overflow).
                    4 => {
                        let absurd = [i64::MIN, i64::MAX, now.wrapping_sub(i64::MIN)][at % 3].to_string();
                        let signature = signing::kieai_signature(KIE_SECRET.as_bytes(), &task, &absurd);
                        (token, absurd, signature, body)
                    }
                    _ => (token, junk.clone(), junk, body),
                };
                let url = format!(
                    "/v1/webhooks/kieai?{}",
                    serde_urlencoded::to_string([("runId", run_id.as_str()), ("index", &index.to_string()), ("token", &token)]).unwrap()
                );
                (url, timestamp, signature, body)
            },
        );
    property(
        "POST /v1/webhooks/kieai",
        CASES,
        (kie, content_type()),
        |((url, timestamp, signature, body), content_type)| {
            let mut request = Request::new(Method::POST, t.api(&url)).body(
                Some(content_type.as_deref().unwrap_or("application/json")),
                body.to_string().into_bytes(),
            );
            for (name, value) in [("x-webhook-timestamp", timestamp), ("x-webhook-signature", signature)] {
                if value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                    request = request.header(name, value);
                }
            }
            let t = &t;
            async move {
                let answer = t.refuse(db, &request).await?;
                prop_assert!([401, 415].contains(&answer.status), "{answer:?}");
                Ok(())
            }
        },
    );

    // kie.ai: anything at all in the query, headers and body.
    let query = proptest::collection::vec(
        (select(vec!["runId", "index", "token", "x"]), "[a-zA-Z0-9_]{0,16}"),
        0..4,
    );
    property(
        "POST /v1/webhooks/kieai (anything)",
        CASES,
        (
            query,
            proptest::option::of(header_value()),
            proptest::option::of(header_value()),
            body_of(any_json(), json!({"data": {"taskId": "t"}})),
        ),
        |(query, timestamp, signature, (content_type, body))| {
            let url = format!("/v1/webhooks/kieai?{}", serde_urlencoded::to_string(&query).unwrap());
            let mut request = Request::new(Method::POST, t.api(&url)).body(content_type.as_deref(), body);
            if let Some(timestamp) = timestamp {
                request = request.header("x-webhook-timestamp", timestamp);
            }
            if let Some(signature) = signature {
                request = request.header("x-webhook-signature", signature);
            }
            let t = &t;
            async move {
                t.refuse(db, &request).await?;
                Ok(())
            }
        },
    );

    // Upload-Post (unsigned, only a hint): anything but an `upload_completed`
    // event is ignored or refused, and changes nothing.
    let upload = body_of(
        any_json().prop_filter("not the event that wakes runs", |v| v["event"] != "upload_completed"),
        json!({"event": "upload_failed", "job_id": "j", "result": {"success": true, "url": "https://evil.example/x"}}),
    );
    property(
        "POST /v1/webhooks/upload-post",
        CASES,
        upload,
        |(content_type, body)| {
            let request =
                Request::new(Method::POST, t.api("/v1/webhooks/upload-post")).body(content_type.as_deref(), body);
            let t = &t;
            async move {
                let answer = t.send(db, &request).await?;
                prop_assert!(
                    (answer.status == 200 && answer.body == json!({"status": "ignored"}))
                        || (400..500).contains(&answer.status),
                    "{answer:?}"
                );
                Ok(())
            }
        },
    );

    // Telegram: a wrong secret token, or the right one with an update
    // that has no usable update_id.
    let telegram = (
        prop_oneof![
            Just(None),
            header_value()
                .prop_filter("not the secret", |s| s != TELEGRAM_SECRET)
                .prop_map(Some),
            Just(Some(TELEGRAM_SECRET.to_string())),
        ],
        body_of(
            any_json().prop_filter("no integer update_id", |v| !v["update_id"].is_i64()),
            json!({"message": {"chat": {"id": 5}, "text": "hi"}}),
        ),
    );
    property(
        "POST /v1/telegram/webhook",
        CASES,
        telegram,
        |(secret, (content_type, body))| {
            let mut request =
                Request::new(Method::POST, t.api("/v1/telegram/webhook")).body(content_type.as_deref(), body);
            if let Some(secret) = secret {
                request = request.header("x-telegram-bot-api-secret-token", secret);
            }
            let t = &t;
            async move {
                t.refuse(db, &request).await?;
                Ok(())
            }
        },
    );
    t.system.stop_idle().await;
}

fn event_base(run_id: &str, seq: i64) -> Value {
    json!({"events": [{"eventId": format!("e-{seq}"), "runId": run_id, "seq": seq, "type": "persona.started",
        "at": "2026-01-01T00:00:00Z", "data": {"persona": "riley"}}]})
}

const EVENT_KINDS: [&str; 10] = [
    "execution.started",
    "persona.started",
    "persona.completed",
    "artifact.created",
    "status.changed",
    "gate.reached",
    "execution.completed",
    "execution.failed",
    "execution.cancelled",
    "execution.rejected",
];

/// Event batches that are malformed, or well-formed but for unknown runs,
/// already applied seqs, or seqs after a gap: nothing is applied.
async fn internal_events_apply_nothing_out_of_place(db: &Db) {
    let t = target(db).await;
    let (awaiting, proposed, last) = (t.awaiting.clone(), t.proposed.clone(), t.awaiting_seq);
    let runs = prop_oneof![
        Just((awaiting, last)),
        Just((proposed, 0)),
        "run_[a-z0-9]{12}".prop_map(|r| (r, -1))
    ];
    let event = (
        runs,
        any::<i64>(),
        select(EVENT_KINDS.to_vec()),
        any_json(),
        "[a-z0-9-]{1,20}",
    )
        .prop_filter_map("not the next seq", |((run_id, last), seq, kind, data, id)| {
            // Unknown runs (`last` -1) take any seq.
            (last < 0 || seq != last + 1).then(|| {
                json!({"eventId": id, "runId": run_id, "seq": seq, "type": kind, "at": "2026-01-01T00:00:00Z", "data": data})
            })
        });
    let batches = prop_oneof![
        proptest::collection::vec(event, 1..5).prop_map(|events| json!({ "events": events })),
        any_json().prop_filter("not a batch", not_a::<myloware_core::wire::EventBatch>),
        any_json().prop_map(|e| json!({"events": [e]})),
    ];
    property(
        "POST /v1/internal/events",
        CASES * 2,
        body_of(batches, event_base("run_abcdefabcdef", 1)),
        |(content_type, body)| {
            let request = Request::new(Method::POST, t.api("/v1/internal/events"))
                .key()
                .body(content_type.as_deref(), body);
            let t = &t;
            async move {
                let answer = t.send(db, &request).await?;
                if answer.status == 200 {
                    for result in answer.body["results"].as_array().unwrap() {
                        prop_assert!(
                            ["duplicate", "out_of_order", "unknown_run"].contains(&result["status"].as_str().unwrap()),
                            "{answer:?}"
                        );
                    }
                } else {
                    refused(&answer)?;
                }
                Ok(())
            }
        },
    );
    t.system.stop_idle().await;
}

/// Events the API applies (the next seq of a run) with any data at all:
/// applied without a 5xx, and the run, its gates and the lists still read.
async fn internal_events_with_any_data_are_applied_without_failing(db: &Db) {
    let system = system::start(db, &[]).await;
    let run_id = system
        .start_run(json!({"project": "test_video_gen", "input": {"prompt": "p"},
            "options": {"requireWorkflowApproval": true, "user_id": "u-3"}}))
        .await;
    let seq = std::sync::atomic::AtomicI64::new(0);
    let data = prop_oneof![
        any_json(),
        (select(vec!["persona", "gate", "status", "kind"]), text()).prop_map(|(k, v)| json!({ k: v })),
        (
            select(vec!["kieai.clip", "render.url", "publish.url", "other"]),
            any_json()
        )
            .prop_map(|(kind, data)| json!({"kind": kind, "persona": "riley", "data": data})),
        any_json().prop_map(|v| json!({"videos": v, "renderUrl": v, "publishUrls": v, "error": v})),
        (any::<i64>(), text(), any_json())
            .prop_map(|(i, s, u)| json!({"kind": "kieai.clip", "data": {"index": i, "status": s, "url": u}})),
    ];
    property(
        "POST /v1/internal/events (applied)",
        CASES * 2,
        (select(EVENT_KINDS.to_vec()), data),
        |(kind, data)| {
            let (system, run_id, seq) = (&system, &run_id, &seq);
            async move {
                let last = system
                    .api_state
                    .store
                    .get_run(run_id)
                    .await
                    .unwrap()
                    .unwrap()
                    .last_event_seq;
                let next = last + 1;
                let id = seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = json!({"events": [{"eventId": format!("fuzz-{id}"), "runId": run_id, "seq": next,
                    "type": kind, "at": "2026-01-01T00:00:00Z", "data": data}]});
                let request = Request::new(Method::POST, format!("{}/v1/internal/events", system.api))
                    .key()
                    .json(&body);
                let answer = send(&system.http, &request).await;
                well_formed(&answer)?;
                if has_nul(&request) {
                    // Refused at the door on both backends (Postgres cannot store it).
                    refused(&answer)?;
                    let now = system
                        .api_state
                        .store
                        .get_run(run_id)
                        .await
                        .unwrap()
                        .unwrap()
                        .last_event_seq;
                    prop_assert_eq!(now, last, "applied anyway");
                    return Ok(());
                }
                prop_assert_eq!(answer.status, 200, "{:?}", answer);
                prop_assert_eq!(&answer.body["results"][0]["status"], "applied", "{:?}", answer);
                for path in [
                    format!("/v1/runs/{run_id}"),
                    format!("/v1/runs/{run_id}/artifacts"),
                    "/v1/runs".to_string(),
                    "/v1/hitl/pending".to_string(),
                    "/v1/chat/brendan/u-3/messages".to_string(),
                ] {
                    let read = send(
                        &system.http,
                        &Request::new(Method::GET, format!("{}{path}", system.api)).key(),
                    )
                    .await;
                    prop_assert_eq!(read.status, 200, "GET {} after {}: {:?}", path, body, read);
                }
                Ok(())
            }
        },
    );
}

/// Queries and paths of the read routes, parsable or not.
async fn reads_answer_json(db: &Db) {
    let t = target(db).await;
    let list = (
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(prop_oneof![any::<u32>().prop_map(|n| n.to_string()), text()]),
        proptest::option::of(text()),
    );
    property(
        "GET /v1/runs?…",
        CASES,
        list,
        |(status, project, user_id, limit, cursor)| {
            let mut query: Vec<(&str, String)> = Vec::new();
            query.extend(status.map(|v| ("status", v)));
            query.extend(project.map(|v| ("project", v)));
            query.extend(user_id.map(|v| ("user_id", v)));
            query.extend(limit.map(|v| ("limit", v)));
            query.extend(cursor.map(|v| ("cursor", v)));
            let url = t.api(&format!("/v1/runs?{}", serde_urlencoded::to_string(&query).unwrap()));
            let t = &t;
            async move {
                let answer = t.send(db, &Request::new(Method::GET, url).key()).await?;
                prop_assert!([200, 400, 422].contains(&answer.status), "{answer:?}");
                Ok(())
            }
        },
    );
    let segment = prop_oneof![
        "run_[a-z0-9]{12}",
        "[a-zA-Z0-9_.~-]{1,30}",
        select(vec!["run_", "..", "%2F", "%00", "%FF", "%E2%82", "run_abc%20def"]).prop_map(str::to_owned),
    ];
    let gate = prop_oneof![
        select(vec!["ideate", "workflow", "prepublish"]).prop_map(str::to_owned),
        "[a-zA-Z0-9_-]{1,12}",
    ];
    property(
        "GET /v1/runs/{runId}, /v1/hitl/link/{runId}/{gate}, POST /v1/dlq/{seq}/replay",
        CASES,
        (
            segment.clone(),
            gate,
            prop_oneof![any::<i64>().prop_map(|n| n.to_string()), segment],
        ),
        |(run_id, gate, seq)| {
            let requests = [
                Request::new(Method::GET, t.api(&format!("/v1/runs/{run_id}"))).key(),
                Request::new(Method::GET, t.api(&format!("/v1/runs/{run_id}/artifacts"))).key(),
                Request::new(Method::GET, t.api(&format!("/v1/hitl/link/{run_id}/{gate}"))).key(),
                Request::new(Method::GET, t.api(&format!("/v1/chat/brendan/{run_id}/messages"))).key(),
                Request::new(Method::POST, t.api(&format!("/v1/dlq/{seq}/replay"))).key(),
                Request::new(Method::GET, t.orchestrator(&format!("/v1/executions/{run_id}"))).key(),
            ];
            let t = &t;
            async move {
                for request in &requests {
                    t.send(db, request).await?;
                }
                Ok(())
            }
        },
    );
    t.system.stop_idle().await;
}

fn execution_base(run_id: &str) -> Value {
    let spec = system::catalog().get("test_video_gen").unwrap().clone();
    json!({"runId": run_id, "project": "test_video_gen",
        "graphSpec": {"pipeline": ["iggy", "riley", "alex", "quinn"], "hitl_gates": []},
        "projectSpec": spec, "providersMode": "mock", "input": {"prompt": "p"}, "videos": []})
}

/// The orchestrator's routes with bodies that must be refused (or that
/// name executions that do not exist).
async fn orchestrator_refuses_bad_bodies(db: &Db) {
    let t = target(db).await;
    let base = execution_base("run_fuzzfuzzfuzz");
    let (b1, b2, b3, b4, b5) = (base.clone(), base.clone(), base.clone(), base.clone(), base.clone());
    let starts =
        prop_oneof![
            prop_oneof![Just(String::new()), "[A-Z]{1,10}", "run_[A-Z ./]{1,10}", "[a-z]{1,12}"]
                .prop_map(move |id| set(&b1, "/runId", json!(id))),
            prop_oneof![
                Just(json!({"pipeline": [], "hitl_gates": []})),
                Just(json!({"pipeline": ["alex", "quinn"], "hitl_gates": []})),
                Just(json!({"pipeline": ["quinn", "iggy"], "hitl_gates": []})),
                Just(json!({"pipeline": ["brendan"], "hitl_gates": []})),
                Just(json!({"pipeline": ["riley"], "hitl_gates": ["prepublish"]})),
                Just(json!({"pipeline": ["iggy", "riley"], "hitl_gates": ["workflow"]})),
                not_object(),
            ]
            .prop_map(move |g| set(&b2, "/graphSpec", g)),
            (select(vec![
                "runId",
                "project",
                "graphSpec",
                "projectSpec",
                "providersMode",
                "input"
            ]))
            .prop_map(move |field| remove(&b3, &format!("/{field}"))),
            (
                select(vec!["project", "projectSpec", "providersMode", "videos"]),
                any_json()
            )
                .prop_filter_map("wrong type", move |(field, value)| {
                    let body = set(&b4, &format!("/{field}"), value);
                    not_a::<myloware_core::wire::StartExecution>(&body).then_some(body)
                }),
            any_json().prop_filter("not a start", not_a::<myloware_core::wire::StartExecution>),
            Just(b5),
        ]
        .prop_filter("may be a valid start", |v| !execution_may_be_accepted(v));
    property(
        "orchestrator POST /v1/executions",
        CASES,
        body_of(starts, base.clone()),
        |(content_type, body)| {
            let request = Request::new(Method::POST, t.orchestrator("/v1/executions"))
                .key()
                .body(content_type.as_deref(), body);
            let t = &t;
            async move {
                t.refuse(db, &request).await?;
                Ok(())
            }
        },
    );

    // Signals, resumes, cancels: bad bodies for the real executions; any
    // well-formed one only for executions that do not exist.
    let real = prop_oneof![Just(t.awaiting.clone()), Just(t.proposed.clone())];
    let unknown = "run_[a-z0-9]{12}";
    let signal =
        json!({"signalId": "s-1", "signal": {"type": "clip.completed", "taskId": "t", "index": 0, "url": "u"}});
    let resume = json!({"gate": "ideate", "decision": "approve"});
    let cases = prop_oneof![
        (
            real.clone(),
            body_of(
                any_json().prop_filter("not a signal", not_a::<myloware_core::wire::SignalDelivery>),
                signal.clone()
            )
        )
            .prop_map(|(run, body)| ("signals", run, body)),
        (unknown, body_of(any_json(), signal.clone())).prop_map(|(run, body)| ("signals", run, body)),
        (
            real.clone(),
            body_of(
                prop_oneof![
                    any_json(),
                    text().prop_map(|d| json!({"gate": "ideate", "decision": d})),
                    select(vec!["approve", "reject"]).prop_map(|d| json!({"gate": "prepublish", "decision": d})),
                    text().prop_map(|g| json!({"gate": g, "decision": "approve"})),
                ]
                .prop_filter("not a decision of the ideate gate", |v| !decides_ideate(v)),
                resume.clone()
            )
        )
            .prop_map(|(run, body)| ("resume", run, body)),
        (unknown, body_of(any_json(), resume)).prop_map(|(run, body)| ("resume", run, body)),
        (unknown, body_of(any_json(), json!({}))).prop_map(|(run, body)| ("cancel", run, body)),
    ];
    property(
        "orchestrator POST /v1/executions/{runId}/{signals,resume,cancel}",
        CASES * 2,
        cases,
        |(action, run_id, (content_type, body))| {
            let request = Request::new(
                Method::POST,
                t.orchestrator(&format!("/v1/executions/{run_id}/{action}")),
            )
            .key()
            .body(content_type.as_deref(), body);
            let t = &t;
            async move {
                t.refuse(db, &request).await?;
                Ok(())
            }
        },
    );

    // Brendan's turn: malformed turns, empty or oversized messages, too much history.
    let turn = json!({"userId": "u-1", "message": "hi", "history": [], "runs": [], "projects": []});
    let (t1, t2) = (turn.clone(), turn.clone());
    let turns = prop_oneof![
        any_json().prop_filter("not a turn", not_a::<myloware_core::wire::ChatTurn>),
        prop_oneof!["[ \t\n]{0,6}", (4001usize..4050).prop_map(|n| "é".repeat(n))].prop_map(move |m| set(
            &t1,
            "/message",
            json!(m)
        )),
        (101usize..130).prop_map(move |n| set(&t2, "/history", json!(vec![json!({"role": "user", "text": "x"}); n]))),
    ];
    property(
        "orchestrator POST /v1/chat/brendan",
        CASES,
        body_of(turns, turn),
        |(content_type, body)| {
            let request = Request::new(Method::POST, t.orchestrator("/v1/chat/brendan"))
                .key()
                .body(content_type.as_deref(), body);
            let t = &t;
            async move {
                t.refuse(db, &request).await?;
                Ok(())
            }
        },
    );
    t.system.stop_idle().await;
}

/// Every route of both services without the API key (or with a wrong
/// one): 401 JSON and nothing recorded; unknown routes and methods: 404
/// and 405 JSON.
async fn keys_routes_and_methods(db: &Db) {
    let t = target(db).await;
    let protected = vec![
        ("api", Method::POST, "/v1/runs/start".to_string()),
        ("api", Method::GET, "/v1/runs".to_string()),
        ("api", Method::GET, format!("/v1/runs/{}", t.awaiting)),
        ("api", Method::POST, format!("/v1/runs/{}/cancel", t.proposed)),
        ("api", Method::POST, "/v1/internal/events".to_string()),
        ("api", Method::GET, format!("/v1/hitl/link/{}/ideate", t.awaiting)),
        ("api", Method::GET, "/v1/hitl/pending".to_string()),
        ("api", Method::POST, "/v1/chat/brendan".to_string()),
        ("api", Method::GET, "/v1/chat/brendan/u-1/messages".to_string()),
        ("api", Method::GET, "/v1/dlq".to_string()),
        ("api", Method::POST, "/v1/dlq/1/replay".to_string()),
        ("api", Method::GET, "/openapi.json".to_string()),
        ("api", Method::GET, "/ready".to_string()),
        ("orchestrator", Method::POST, "/v1/executions".to_string()),
        ("orchestrator", Method::GET, format!("/v1/executions/{}", t.awaiting)),
        (
            "orchestrator",
            Method::POST,
            format!("/v1/executions/{}/signals", t.awaiting),
        ),
        (
            "orchestrator",
            Method::POST,
            format!("/v1/executions/{}/resume", t.awaiting),
        ),
        (
            "orchestrator",
            Method::POST,
            format!("/v1/executions/{}/cancel", t.awaiting),
        ),
        ("orchestrator", Method::POST, "/v1/chat/brendan".to_string()),
        ("orchestrator", Method::GET, "/ready".to_string()),
    ];
    let valid_bodies = [
        start_base(),
        json!({"gate": "ideate", "decision": "approve"}),
        json!({"user_id": "u-1", "message": "start a run"}),
        event_base(&t.awaiting, t.awaiting_seq + 1),
    ];
    property(
        "no key, no entry",
        CASES,
        (
            select(protected),
            proptest::option::of(header_value().prop_filter("not the key", |k| k != API_KEY)),
            select(valid_bodies.to_vec()),
            proptest::option::of("[ -~]{0,40}"),
        ),
        |((service, method, path), key, body, request_id)| {
            let internal = service == "orchestrator" || path.starts_with("/v1/internal/");
            let base = if service == "api" {
                t.api(&path)
            } else {
                t.orchestrator(&path)
            };
            let mut request = Request::new(method, base).json(&body);
            if let Some(key) = key {
                request = request.header("x-api-key", key);
            }
            if let Some(id) = &request_id {
                request = request.header("x-request-id", id.clone());
            }
            let t = &t;
            async move {
                let answer = t.refuse(db, &request).await?;
                prop_assert_eq!(answer.status, 401, "{:?}", answer);
                // Internal routes take the services' signature, nothing else.
                let detail = if internal {
                    "this route takes the internal credential only"
                } else {
                    "invalid API key"
                };
                prop_assert_eq!(&answer.body, &json!({ "detail": detail }));
                // A sane caller request id is echoed; any other is replaced.
                if let (Some(sent), Some(got)) = (&request_id, &answer.request_id) {
                    let sane = (1..=128).contains(&sent.len())
                        && sent.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
                    prop_assert_eq!(sane, sent == got, "sent {:?}, got {:?}", sent, got);
                }
                Ok(())
            }
        },
    );
    let methods = select(vec![
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
    ]);
    property(
        "unknown routes and methods",
        CASES,
        (any::<bool>(), methods, "(/[a-zA-Z0-9_.-]{0,12}){1,4}"),
        |(api, method, path)| {
            let url = if api { t.api(&path) } else { t.orchestrator(&path) };
            let request = Request::new(method, url).key().json(&json!({}));
            let t = &t;
            async move {
                t.send(db, &request).await?;
                Ok(())
            }
        },
    );
    t.system.stop_idle().await;
}

/// Deterministic edges of every JSON route: a body over the limit is a
/// JSON 413, a body that is not JSON a JSON 415, and neither records.
async fn oversized_and_non_json_bodies(db: &Db) {
    let t = target(db).await;
    let routes = [
        t.api("/v1/runs/start"),
        t.api(&format!("/v1/runs/{}/cancel", t.proposed)),
        t.api("/v1/chat/brendan"),
        t.api("/v1/internal/events"),
        t.api("/v1/telegram/webhook"),
        t.api("/v1/webhooks/upload-post"),
        t.api(&format!(
            "/v1/webhooks/kieai?runId={}&index=0&token={}",
            t.awaiting,
            signing::callback_token(HITL_SECRET, &t.awaiting, "mock-clip:0")
        )),
        t.orchestrator("/v1/executions"),
        t.orchestrator(&format!("/v1/executions/{}/signals", t.awaiting)),
        t.orchestrator(&format!("/v1/executions/{}/resume", t.awaiting)),
        t.orchestrator("/v1/chat/brendan"),
    ];
    let huge = format!("{{\"message\": \"{}\"}}", "x".repeat(1024 * 1024 + 10)).into_bytes();
    for url in &routes {
        for (content_type, body, status) in [
            ("application/json", huge.clone(), 413),
            ("text/plain", b"{\"a\": 1}".to_vec(), 415),
        ] {
            let mut request = Request::new(Method::POST, url.clone())
                .key()
                .header("x-telegram-bot-api-secret-token", TELEGRAM_SECRET)
                .body(Some(content_type), body);
            if url.starts_with(&t.orchestrator("")) {
                request = request.header(INTERNAL_MARK, "1");
            }
            let answer = t.refuse(db, &request).await.unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(answer.status, status, "{url}: {answer:?}");
        }
    }
    t.system.stop_idle().await;
}

/// Generates `sqlite_<name>` and `postgres_<name>` tests on a multi-thread
/// runtime (the properties block a worker while the servers run on the other).
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let test_db = super::TestDb::sqlite().await;
                    super::$name(&test_db.db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(test_db) = super::TestDb::postgres().await else { return };
                    super::$name(&test_db.db).await;
                }
            )*
        }
    };
}

on_both_backends!(
    run_start_refuses_bad_bodies,
    chat_refuses_bad_bodies,
    cancel_refuses_bad_bodies,
    hitl_decisions_refuse_bad_input,
    webhooks_refuse_what_is_not_signed,
    internal_events_apply_nothing_out_of_place,
    internal_events_with_any_data_are_applied_without_failing,
    reads_answer_json,
    orchestrator_refuses_bad_bodies,
    keys_routes_and_methods,
    oversized_and_non_json_bodies,
);

// ------------------------------------------------------------- known bugs

/// Sends each request and collects every answer that is a 5xx or an error
/// that is not JSON `{"detail"}`, or not one of `statuses`.
async fn misanswered(t: &Target, requests: Vec<(Request, &[u16])>) -> Vec<String> {
    let mut wrong = Vec::new();
    for (request, statuses) in requests {
        let answer = send(&t.system.http, &request).await;
        if well_formed(&answer).is_err() || !statuses.contains(&answer.status) {
            wrong.push(format!(
                "{} {} -> {} {} {:?}",
                request.method, request.url, answer.status, answer.content_type, answer.text
            ));
        }
    }
    wrong
}

/// `ValidJson` reads the first JSON value and ignores what follows it:
/// `{valid}{anything}` is accepted (and recorded) instead of a 422.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailing_data_after_a_json_body_is_refused() {
    let test_db = TestDb::sqlite().await;
    let t = target(&test_db.db).await;
    let start = start_base().to_string();
    let execution = execution_base("run_trailingdata").to_string();
    let requests = vec![
        (
            Request::new(Method::POST, t.api("/v1/runs/start"))
                .key()
                .body(Some("application/json"), format!("{start}{start}").into_bytes()),
            &[422][..],
        ),
        (
            Request::new(Method::POST, t.api("/v1/runs/start")).key().body(
                Some("application/json"),
                format!("{start} trailing garbage").into_bytes(),
            ),
            &[422][..],
        ),
        (
            Request::new(Method::POST, t.orchestrator("/v1/executions"))
                .key()
                .body(Some("application/json"), format!("{execution}]").into_bytes()),
            &[422][..],
        ),
    ];
    let wrong = misanswered(&t, requests).await;
    let query = myloware_api::store::RunQuery {
        limit: 100,
        ..Default::default()
    };
    let runs = t.system.api_state.store.list_runs(&query).await.unwrap().len();
    let execution = t
        .system
        .orchestrator_state
        .store
        .get_execution("run_trailingdata")
        .await
        .unwrap();
    assert!(
        wrong.is_empty() && runs == 2 && execution.is_none(),
        "{wrong:#?}; {runs} runs (2 before); execution created: {}",
        execution.is_some()
    );
}

/// docs/api.md: `GET /openapi.json` needs the API key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_needs_the_api_key() {
    let test_db = TestDb::sqlite().await;
    let t = target(&test_db.db).await;
    for key in [None, Some("wrong-key")] {
        let mut request = Request::new(Method::GET, t.api("/openapi.json"));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        let answer = send(&t.system.http, &request).await;
        assert_eq!(
            (answer.status, &answer.body),
            (401, &json!({"detail": "invalid API key"})),
            "key {key:?}"
        );
    }
}

/// Query strings and path parameters that do not parse into their types
/// are answered by axum's own rejections: plain-text 400s, not JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparsable_query_and_path_parameters_are_json_errors() {
    let test_db = TestDb::sqlite().await;
    let t = target(&test_db.db).await;
    let get = |url: String| Request::new(Method::GET, url).key();
    let post = |url: String| Request::new(Method::POST, url).key().json(&json!({}));
    let requests = vec![
        (get(t.api("/v1/runs?limit=abc")), &[400, 422][..]),
        (get(t.api("/v1/runs?limit=-1")), &[400, 422][..]),
        (get(t.api("/v1/dlq?all=maybe")), &[400, 422][..]),
        (post(t.api("/v1/dlq/abc/replay")), &[400, 404, 422][..]),
        (post(t.api("/v1/dlq/99999999999999999999/replay")), &[400, 404, 422][..]),
        (get(t.api("/v1/runs/%FF")), &[400, 404][..]),
        (get(t.api("/v1/hitl/link/%FF/ideate")), &[400, 404][..]),
        (
            post(t.api("/v1/webhooks/kieai?runId=run_abc&index=abc&token=00")),
            &[400, 401, 422][..],
        ),
        (
            post(t.api("/v1/webhooks/kieai?runId=run_a&runId=run_b")),
            &[400, 401, 422][..],
        ),
        (get(t.orchestrator("/v1/executions/%FF")), &[400, 404][..]),
        (post(t.orchestrator("/v1/executions/%FF/signals")), &[400, 404, 422][..]),
        (post(t.orchestrator("/v1/executions/%FF/cancel")), &[400, 404][..]),
    ];
    let wrong = misanswered(&t, requests).await;
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// docs/api.md: "A bad `status`, `limit` or `cursor` is a 422 naming the
/// query parameter" — a `limit` that is not a number is a 400 instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_that_is_not_a_number_is_a_422_naming_it() {
    let test_db = TestDb::sqlite().await;
    let t = target(&test_db.db).await;
    for limit in ["abc", "-1", "1.5", "99999999999"] {
        let answer = send(
            &t.system.http,
            &Request::new(Method::GET, t.api(&format!("/v1/runs?limit={limit}"))).key(),
        )
        .await;
        assert_eq!(answer.status, 422, "limit={limit}: {answer:?}");
        assert_eq!(
            answer.body["detail"][0]["loc"],
            json!(["query", "limit"]),
            "limit={limit}: {answer:?}"
        );
    }
}

/// A decision form over the body limit: a JSON 413 like every other route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_hitl_decision_is_a_json_413() {
    let test_db = TestDb::sqlite().await;
    let t = target(&test_db.db).await;
    let form = format!("reason={}", "x".repeat(1024 * 1024 + 10)).into_bytes();
    let requests = vec![
        (
            Request::new(Method::POST, t.api(&format!("/v1/hitl/approve/{}/ideate", t.awaiting)))
                .header("accept", "application/json")
                .body(Some("application/x-www-form-urlencoded"), form.clone()),
            &[413][..],
        ),
        (
            Request::new(Method::POST, t.api(&format!("/v1/hitl/reject/{}/workflow", t.proposed)))
                .header("accept", "application/json")
                .body(Some("application/json"), form),
            &[413][..],
        ),
    ];
    let wrong = misanswered(&t, requests).await;
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// An unsigned kie.ai callback whose timestamp is i64::MIN: refused (401),
/// not a panic in `verify_kieai`'s `(now - sent).abs()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kieai_callback_with_an_extreme_timestamp_is_refused() {
    let test_db = TestDb::sqlite().await;
    let t = target(&test_db.db).await;
    let requests = vec![(
        Request::new(
            Method::POST,
            t.api(&format!("/v1/webhooks/kieai?runId={}&index=0&token=00", t.awaiting)),
        )
        .header("x-webhook-timestamp", i64::MIN.to_string())
        .header("x-webhook-signature", "AAAA")
        .json(&json!({"code": 200, "data": {"taskId": "task-1"}})),
        &[401][..],
    )];
    let wrong = misanswered(&t, requests).await;
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Postgres refuses U+0000 in text and JSONB: a route that stores or
/// queries caller text holding one must refuse it (4xx) or store it, never
/// answer 500. The HITL decision bodies (form or JSON) of decisions that
/// are taken carry `reason` and `approver` into the gates table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_are_not_a_500_on_postgres() {
    let Some(test_db) = TestDb::postgres().await else {
        return;
    };
    let t = target(&test_db.db).await;
    let nul = "a\u{0}b";
    let any: &[u16] = &[200, 201, 400, 401, 404, 415, 422];
    let now = chrono::Utc::now().timestamp();
    let ideate = signing::hitl_token(HITL_SECRET, &t.awaiting, "ideate", now + 3600);
    let workflow = signing::hitl_token(HITL_SECRET, &t.proposed, "workflow", now + 3600);
    let requests = vec![
        (
            Request::new(Method::POST, t.api("/v1/runs/start"))
                .key()
                .json(&json!({"project": "test_video_gen", "input": {"prompt": nul}})),
            any,
        ),
        (
            Request::new(Method::POST, t.api("/v1/chat/brendan"))
                .key()
                .json(&json!({"user_id": "u-9", "message": nul})),
            any,
        ),
        (Request::new(Method::GET, t.api("/v1/runs?project=%00")).key(), any),
        (
            Request::new(Method::GET, t.api("/v1/chat/brendan/%00/messages")).key(),
            any,
        ),
        // A raw NUL byte in a webhook body, recorded as text even when refused.
        (
            Request::new(Method::POST, t.api("/v1/webhooks/kieai?runId=run_abc&index=0&token=00"))
                .body(Some("application/json"), b"{\"code\": 200, \"msg\": \"a\0b\"}".to_vec()),
            any,
        ),
        (
            Request::new(Method::POST, t.api("/v1/webhooks/upload-post"))
                .body(Some("application/json"), b"{\"request_id\": \"a\0b\"}".to_vec()),
            any,
        ),
        (
            Request::new(Method::POST, t.api("/v1/telegram/webhook")).body(
                Some("application/json"),
                b"{\"update_id\": 1, \"text\": \"a\0b\"}".to_vec(),
            ),
            any,
        ),
        (
            Request::new(Method::POST, t.api("/v1/internal/events"))
                .key()
                .json(&json!({"events": [{
                "eventId": "nul-1", "runId": t.proposed, "seq": 1, "type": "persona.started",
                "at": "2026-01-01T00:00:00Z", "data": {"persona": nul}}]})),
            any,
        ),
        // Decisions that are taken (valid tokens), with a NUL in the body.
        (
            Request::new(Method::POST, t.api(&format!("/v1/hitl/approve/{}/ideate", t.awaiting)))
                .header("accept", "application/json")
                .body(
                    Some("application/x-www-form-urlencoded"),
                    format!("token={ideate}&reason=a%00b&approver=x%00y").into_bytes(),
                ),
            any,
        ),
        (
            Request::new(Method::POST, t.api(&format!("/v1/hitl/reject/{}/workflow", t.proposed)))
                .header("accept", "application/json")
                .json(&json!({"token": workflow, "reason": nul, "approver": nul})),
            any,
        ),
    ];
    let wrong = misanswered(&t, requests).await;
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// A body's objects given as JSON arrays (serde's sequence form of a
/// struct, which serde_json would take field by field: `input:
/// ["candles"]` as `{"prompt": "candles"}`) are refused: the documented
/// (and OpenAPI) shape is an object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_given_as_arrays_are_refused() {
    let test_db = TestDb::sqlite().await;
    let t = target(&test_db.db).await;
    let requests = vec![
        (
            Request::new(Method::POST, t.api("/v1/runs/start"))
                .key()
                .json(&json!({"project": "test_video_gen", "input": ["an array, not an object"]})),
            &[422][..],
        ),
        (
            Request::new(Method::POST, t.api("/v1/runs/start"))
                .key()
                .json(&json!(["test_video_gen", {"prompt": "p"}])),
            &[422][..],
        ),
        (
            Request::new(Method::POST, t.api("/v1/chat/brendan"))
                .key()
                .json(&json!(["u-1", "hello"])),
            &[422][..],
        ),
        (
            Request::new(Method::POST, t.api(&format!("/v1/runs/{}/cancel", t.proposed)))
                .key()
                .json(&json!([])),
            &[422][..],
        ),
    ];
    let wrong = misanswered(&t, requests).await;
    assert!(wrong.is_empty(), "{wrong:#?}");
}
