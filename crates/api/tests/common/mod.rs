//! Test harness: the real API router on a random port, a fresh database,
//! and a fake orchestrator speaking HTTP that records what it is sent.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use myloware_api::{ApiServer, ApiState};
use myloware_core::config::Config;
use myloware_core::project::Catalog;
use myloware_db::Db;
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const API_KEY: &str = "test-api-key";

/// Live mode with every provider secret (the providers are never called
/// by the tests that use it).
pub const LIVE_SECRETS: [(&str, &str); 5] = [
    ("USE_MOCK_PROVIDERS", "false"),
    ("KIEAI_API_KEY", "kie-key"),
    ("KIEAI_SIGNING_SECRET", "kie-signing"),
    ("SHOTSTACK_API_KEY", "shotstack-key"),
    ("UPLOAD_POST_API_KEY", "upload-key"),
];

/// Answers `POST /v1/executions` with the configured status, recording bodies.
/// Without [`FakeOrchestrator::accept_batches`] it is an orchestrator of
/// before `/signals/batch` (that route answers axum's bare 404).
#[derive(Clone)]
pub struct FakeOrchestrator {
    pub url: String,
    status: Arc<AtomicU16>,
    signal_status: Arc<AtomicU16>,
    batches: Arc<AtomicBool>,
    starts: Arc<Mutex<Vec<Value>>>,
    others: Arc<Mutex<Vec<(String, String, Value)>>>,
}

impl FakeOrchestrator {
    pub async fn start() -> FakeOrchestrator {
        let fake = FakeOrchestrator {
            url: String::new(),
            status: Arc::new(AtomicU16::new(202)),
            signal_status: Arc::new(AtomicU16::new(202)),
            batches: Arc::default(),
            starts: Arc::default(),
            others: Arc::default(),
        };
        let app = axum::Router::new()
            .route(
                "/v1/executions",
                post(
                    |State(fake): State<FakeOrchestrator>, Json(body): Json<Value>| async move {
                        let status = StatusCode::from_u16(fake.status.load(Ordering::SeqCst)).unwrap();
                        if status.is_success() {
                            fake.starts.lock().unwrap().push(body.clone());
                        }
                        (status, Json(json!({"runId": body["runId"], "status": "queued"})))
                    },
                ),
            )
            .route(
                "/v1/executions/{run_id}/{action}",
                post(
                    |State(fake): State<FakeOrchestrator>,
                     axum::extract::Path((run_id, action)): axum::extract::Path<(String, String)>,
                     Json(body): Json<Value>| async move {
                        let code = if action == "signals" {
                            &fake.signal_status
                        } else {
                            &fake.status
                        };
                        let status = StatusCode::from_u16(code.load(Ordering::SeqCst)).unwrap();
                        if status.is_success() {
                            fake.others.lock().unwrap().push((run_id, action, body));
                        }
                        (status, Json(json!({"status": "accepted"})))
                    },
                ),
            )
            .route(
                "/v1/executions/{run_id}/signals/batch",
                post(
                    |State(fake): State<FakeOrchestrator>,
                     axum::extract::Path(run_id): axum::extract::Path<String>,
                     Json(body): Json<Value>| async move {
                        if !fake.batches.load(Ordering::SeqCst) {
                            return StatusCode::NOT_FOUND.into_response();
                        }
                        let status = StatusCode::from_u16(fake.signal_status.load(Ordering::SeqCst)).unwrap();
                        if status.is_success() {
                            fake.others.lock().unwrap().push((run_id, "signals/batch".into(), body));
                        }
                        (status, Json(json!({"status": "accepted"}))).into_response()
                    },
                ),
            )
            .route(
                "/health",
                get(|State(fake): State<FakeOrchestrator>| async move {
                    StatusCode::from_u16(fake.status.load(Ordering::SeqCst)).unwrap()
                }),
            )
            .with_state(fake.clone());
        let url = myloware_testkit::fakes::serve(app).await;
        FakeOrchestrator { url, ..fake }
    }

    /// The status every later call gets (e.g. 503 for "down").
    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// The status signals get (e.g. 404 for "no such execution").
    pub fn answer_signals(&self, status: u16) {
        self.signal_status.store(status, Ordering::SeqCst);
    }

    /// Accept `POST /v1/executions/{runId}/signals/batch` from now on.
    pub fn accept_batches(&self) {
        self.batches.store(true, Ordering::SeqCst);
    }

    /// `(runId, "signals" | "signals/batch" | "cancel", body)` accepted so far.
    pub fn commands(&self) -> Vec<(String, String, Value)> {
        self.others.lock().unwrap().clone()
    }

    /// The start bodies accepted so far.
    pub fn starts(&self) -> Vec<Value> {
        self.starts.lock().unwrap().clone()
    }
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub orchestrator: FakeOrchestrator,
    pub state: ApiState,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn catalog() -> Catalog {
    Catalog::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../projects")).expect("the real catalog loads")
}

/// Starts the API on `db` with test defaults overridden by `vars`.
pub async fn spawn_app(db: &Db, vars: &[(&str, &str)]) -> TestApp {
    let orchestrator = FakeOrchestrator::start().await;
    let mut env: HashMap<String, String> = [
        ("API_KEY", API_KEY),
        ("API_PORT", "0"),
        ("BIND_HOST", "127.0.0.1"),
        ("ORCHESTRATOR_URL", orchestrator.url.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = Config::from_lookup(|var| env.get(var).cloned()).expect("test configuration is valid");
    let state = ApiState::new(Arc::new(config), myloware_api::store::open(db), Arc::new(catalog()));
    let server = ApiServer::bind(state.clone()).await.unwrap();
    let base = format!("http://{}", server.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    TestApp {
        base,
        http: reqwest::Client::new(),
        orchestrator,
        state,
        stop: Some(stop),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).header("x-api-key", API_KEY)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).header("x-api-key", API_KEY)
    }

    /// POSTs `body` as the orchestrator does: signed with the internal
    /// credential, without an operator key.
    pub async fn internal_post(&self, path: &str, body: &Value) -> reqwest::Response {
        let mut request = self.http.post(self.url(path)).json(body).build().unwrap();
        myloware_http::internal::sign(&self.state.config.internal_keys(), &mut request);
        self.http.execute(request).await.unwrap()
    }

    /// `POST /v1/internal/events` with `events`, as the outbox sends them:
    /// the status and each event's answer (`applied`, `duplicate`, …; none
    /// when the delivery failed as a whole).
    pub async fn deliver_events(&self, events: &[Value]) -> (u16, Vec<String>) {
        let response = self
            .internal_post("/v1/internal/events", &serde_json::json!({"events": events}))
            .await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        let answers = body["results"]
            .as_array()
            .map(|results| {
                results
                    .iter()
                    .map(|r| r["status"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        (status, answers)
    }

    /// `POST /v1/runs/start`; returns the status and body.
    pub async fn start_run(&self, body: Value) -> (u16, Value) {
        let response = self.post("/v1/runs/start").json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self.get(path).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

/// Polls `check` until it returns `Some`, failing after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
