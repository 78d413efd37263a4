//! Both services in-process on real HTTP, sharing a fresh database, and
//! checks that no work is left undone when a test ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use myloware_api::{ApiServer, ApiState};
use myloware_core::config::Config;
use myloware_core::project::Catalog;
use myloware_db::Db;
use myloware_orchestrator::{OrchestratorServer, OrchestratorState};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::fakes::{Calls, Kie, Providers, Publish};
use crate::proxy::Proxy;

pub const API_KEY: &str = "dev-api-key-not-for-production";

pub struct System {
    pub api: String,
    pub orchestrator: String,
    pub http: reqwest::Client,
    pub api_state: ApiState,
    pub orchestrator_state: OrchestratorState,
    /// The API reaches the orchestrator through it: `switch.block(true)`
    /// cuts it off, as if the orchestrator were down.
    pub switch: Proxy,
    /// `ASSET_DIR`: the rendered videos (unless the test set a bucket).
    pub assets: crate::process::Scratch,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub fn catalog() -> Catalog {
    Catalog::load(&crate::projects_dir()).expect("the real catalog loads")
}

async fn listener() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// Starts the API and the orchestrator on `db` with `vars` over test defaults.
pub async fn start(db: &Db, vars: &[(&str, &str)]) -> System {
    // Logs of a failing test are printed with it (the harness captures them).
    myloware_telemetry::logging::init_for_tests();
    let (api_listener, orchestrator_listener) = (listener().await, listener().await);
    let api = format!("http://{}", api_listener.local_addr().unwrap());
    let orchestrator = format!("http://{}", orchestrator_listener.local_addr().unwrap());
    // The API reaches the orchestrator through a switchable proxy.
    let switch = Proxy::start(orchestrator_listener.local_addr().unwrap().port()).await;
    let orchestrator_via_proxy = switch.url();
    let assets = crate::process::Scratch::new("assets");
    let asset_dir = assets.path().display().to_string();
    let mut env: HashMap<String, String> = [
        ("ASSET_DIR", asset_dir.as_str()),
        ("API_URL", api.as_str()),
        ("PUBLIC_BASE_URL", api.as_str()),
        ("ORCHESTRATOR_URL", orchestrator_via_proxy.as_str()),
        ("MOCK_PROVIDER_DELAY_MS", "20"),
        ("ENGINE_POLL_MS", "50"),
        ("RATE_LIMIT_PER_MINUTE", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = Arc::new(Config::from_lookup(|var| env.get(var).cloned()).expect("valid test configuration"));
    // The catalog the configuration names (`PROJECTS_DIR`, else the shipped one).
    let projects = Catalog::load_from(&config.projects).expect("the test catalog loads");
    let api_state = ApiState::new(config.clone(), myloware_api::store::open(db), Arc::new(projects));
    let orchestrator_state = OrchestratorState::new(config, myloware_orchestrator::store::open(db));
    let (stop, stopped) = watch::channel(false);
    let until = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let tasks = vec![
        tokio::spawn(ApiServer::with_listener(api_listener, api_state.clone()).run(until(stopped.clone()))),
        tokio::spawn(
            OrchestratorServer::with_listener(orchestrator_listener, orchestrator_state.clone()).run(until(stopped)),
        ),
    ];
    System {
        api,
        orchestrator,
        http: reqwest::Client::new(),
        api_state,
        orchestrator_state,
        switch,
        assets,
        stop,
        tasks,
    }
}

impl System {
    pub async fn start_run(&self, body: Value) -> String {
        let response = self
            .with_key(self.http.post(format!("{}/v1/runs/start", self.api)).json(&body))
            .await;
        assert!(response.status().is_success(), "start refused: {}", response.status());
        let body: Value = response.json().await.unwrap();
        body["runId"].as_str().unwrap().to_string()
    }

    pub async fn run(&self, run_id: &str) -> Value {
        self.get(&format!("{}/v1/runs/{run_id}", self.api)).await
    }

    /// Sends `request` as the right caller: the orchestrator's routes and
    /// the API's `/v1/internal/*` take the internal credential (signed as
    /// the services sign), everything else the operator key.
    async fn send(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let mut request = request.build().unwrap();
        let url = request.url().as_str();
        if url.starts_with(&self.orchestrator) || url.contains("/v1/internal/") {
            myloware_http::internal::sign(&self.api_state.config.internal_keys(), &mut request);
        } else {
            request.headers_mut().insert("x-api-key", API_KEY.parse().unwrap());
        }
        self.http.execute(request).await.unwrap()
    }

    /// Sends `request` with the operator key, whatever the route.
    pub async fn with_key(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        request.header("x-api-key", API_KEY).send().await.unwrap()
    }

    pub async fn get(&self, url: &str) -> Value {
        self.send(self.http.get(url)).await.json().await.unwrap()
    }

    pub async fn post(&self, url: &str, body: Value) -> (u16, Value) {
        let response = self.send(self.http.post(url).json(&body)).await;
        crate::status_and_json(response).await
    }

    /// A fresh link of `gate` of `run_id` (`GET /v1/hitl/link`, operator key).
    pub async fn link(&self, run_id: &str, gate: &str) -> Value {
        self.get(&format!("{}/v1/hitl/link/{run_id}/{gate}", self.api)).await
    }

    /// Opens `url` as a browser does (no key, `Accept: text/html`): the
    /// status and the page.
    pub async fn page(&self, url: &str) -> (u16, String) {
        let response = self.http.get(url).header("accept", "text/html").send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Approves `gate` of `run_id` with the operator key; it must be 200.
    pub async fn approve(&self, run_id: &str, gate: &str) {
        let (status, body) = self
            .post(&format!("{}/v1/hitl/approve/{run_id}/{gate}", self.api), json!({}))
            .await;
        assert_eq!(status, 200, "approving {gate} of {run_id}: {body}");
    }

    /// Rejects `gate` of `run_id` for `reason` with the operator key; it
    /// must be 200.
    pub async fn reject(&self, run_id: &str, gate: &str, reason: &str) {
        let (status, body) = self
            .post(
                &format!("{}/v1/hitl/reject/{run_id}/{gate}", self.api),
                json!({ "reason": reason }),
            )
            .await;
        assert_eq!(status, 200, "rejecting {gate} of {run_id}: {body}");
    }

    /// Cancels `run_id` with the operator key (`body` the request's); it
    /// must be 200.
    pub async fn cancel(&self, run_id: &str, body: Value) {
        let (status, answer) = self.post(&format!("{}/v1/runs/{run_id}/cancel", self.api), body).await;
        assert_eq!(status, 200, "cancelling {run_id}: {answer}");
    }

    /// A mock aismr run of `user` about candles, once it waits at its
    /// ideate gate (30 s).
    pub async fn aismr_at_ideate(&self, user: &str) -> String {
        let mut body = aismr("candles");
        body["options"] = json!({ "user_id": user });
        let run_id = self.start_run(body).await;
        self.wait_status(&run_id, "awaiting_ideate", Duration::from_secs(30))
            .await;
        run_id
    }

    /// A mock aismr run of `user` approved at both gates by the operator
    /// key, published (30 s for each step).
    pub async fn publish_aismr(&self, user: &str) -> String {
        let quick = Duration::from_secs(30);
        let run_id = self.aismr_at_ideate(user).await;
        self.approve(&run_id, "ideate").await;
        self.wait_status(&run_id, "awaiting_prepublish", quick).await;
        self.approve(&run_id, "prepublish").await;
        self.wait_status(&run_id, "published", quick).await;
        run_id
    }

    /// One chat turn of `user` with the operator key: status and answer.
    pub async fn chat(&self, user: &str, message: &str) -> (u16, Value) {
        self.post(
            &format!("{}/v1/chat/brendan", self.api),
            json!({"user_id": user, "message": message}),
        )
        .await
    }

    /// One chat turn that must be answered 200: the answer.
    pub async fn chat_ok(&self, user: &str, message: &str) -> Value {
        let (status, body) = self.chat(user, message).await;
        assert_eq!(status, 200, "chat turn refused: {body}");
        body
    }

    /// Polls the run until `done` holds, failing after `timeout`.
    pub async fn wait_for(&self, run_id: &str, timeout: Duration, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let done = &done;
        crate::wait_until(timeout, Duration::from_millis(25), what, move || async move {
            let run = self.run(run_id).await;
            if done(&run) {
                Ok(run)
            } else {
                Err(format!("run is {}", run["status"]))
            }
        })
        .await
    }

    /// Polls the run's execution on the orchestrator until it is `status`,
    /// failing after `timeout`.
    pub async fn wait_execution(&self, run_id: &str, status: &str, timeout: Duration) -> Value {
        let url = &format!("{}/v1/executions/{run_id}", self.orchestrator);
        let what = format!("the execution of {run_id} to be {status}");
        crate::wait_until(timeout, Duration::from_millis(25), &what, move || async move {
            let execution = self.get(url).await;
            if execution["status"] == status {
                Ok(execution)
            } else {
                Err(execution.to_string())
            }
        })
        .await
    }

    pub async fn wait_status(&self, run_id: &str, status: &str, timeout: Duration) -> Value {
        self.wait_for(run_id, timeout, status, |run| run["status"] == status)
            .await
    }

    /// `(provider, operation)` counts of the mock calls of a run.
    pub async fn mock_calls(&self, run_id: &str) -> HashMap<(String, String), Vec<String>> {
        let mut calls: HashMap<(String, String), Vec<String>> = HashMap::new();
        for call in self.orchestrator_state.store.mock_calls(run_id).await.unwrap() {
            calls.entry((call.provider, call.operation)).or_default().push(call.key);
        }
        calls
    }

    /// Waits until the outbox, the execution queue and the API's command
    /// queue are empty (fails after 10 s).
    pub async fn wait_idle(&self) {
        let (api, orchestrator) = (&self.api_state.store, &self.orchestrator_state.store);
        crate::wait_no_work(api.as_ref(), orchestrator.as_ref(), Duration::from_secs(10), "").await;
    }

    /// Teardown: fails if the outbox, the execution queue or the API's
    /// command queue still hold work that should have finished.
    pub async fn stop_idle(self) {
        self.wait_idle().await;
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.await.unwrap().unwrap();
        }
    }
}

pub fn artifact_kinds(run: &Value) -> Vec<String> {
    run["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap().to_string())
        .collect()
}

/// The run's artifacts of `kind`.
pub fn artifacts_of<'a>(run: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> {
    let artifacts = run["artifacts"].as_array().expect("a run has artifacts");
    artifacts.iter().filter(move |a| a["kind"] == kind)
}

/// The run's gate `name` (`null` when it has none).
pub fn gate(run: &Value, name: &str) -> Value {
    run["gates"]
        .as_array()
        .and_then(|gates| gates.iter().find(|g| g["gate"] == name))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Whether every video of the run is completed.
pub fn videos_completed(run: &Value) -> bool {
    run["result"]["videos"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["status"] == "completed")
}

pub fn smoke() -> Value {
    json!({"project": "test_video_gen", "input": {"prompt": "smoke"}})
}

/// The start of a mock aismr run about `object`.
pub fn aismr(object: &str) -> Value {
    json!({"project": "aismr", "input": {"object": object}})
}

/// Both services in live mode against fake providers that count into
/// `calls` (kie.ai as `kie` says, Upload-Post publishing at once; clips
/// polled `poll_after_secs` after their submission), and a smoke run started
/// on them.
pub async fn live_run(db: &Db, calls: &Calls, kie: Kie, poll_after_secs: &str) -> (System, String) {
    let providers = Providers::start_with(calls, kie, Publish::Sync).await;
    let mut vars = providers.vars();
    vars.push(("CLIP_POLL_AFTER_SECS", poll_after_secs));
    let system = start(db, &vars).await;
    let run_id = system.start_run(smoke()).await;
    (system, run_id)
}

/// A run waiting at `gate` whose preview is `preview`, written through the
/// API's store as a `gate.reached` would open it (the orchestrator never
/// hears of it: decide nothing on it), and a fresh signed approval link.
pub async fn awaiting_gate(api: &ApiState, gate: myloware_core::Gate, preview: Value) -> (String, String) {
    let run_id = myloware_core::ids::new_run_id();
    let run = myloware_api::store::NewRun {
        gate: Some(myloware_api::store::NewGate {
            run_id: run_id.clone(),
            gate,
            preview,
        }),
        id: run_id.clone(),
        project: "aismr".into(),
        status: gate.awaiting_status(),
        user_id: None,
        payload: json!({"graph_spec": {"hitl_gates": [gate.as_str()]}, "metadata": {"workflow_proposal": {}}}),
        result: json!({}),
        created_at: myloware_api::store::now(),
        estimated_usd_micros: None,
        max_active: None,
        notice: None,
    };
    api.store.insert_run(&run).await.unwrap();
    let link = myloware_api::hitl::mint(api, &run_id, gate);
    (run_id, link.approval_url)
}

/// The API alone (no orchestrator: decide nothing on it) on `db`, its test
/// configuration changed by `adjust` after validation, for what the
/// environment cannot set up in a test (production without its secrets).
/// Serves until the test's runtime ends.
pub async fn start_api_with(db: &Db, adjust: impl FnOnce(&mut Config)) -> (String, ApiState) {
    myloware_telemetry::logging::init_for_tests();
    let listener = listener().await;
    let api = format!("http://{}", listener.local_addr().unwrap());
    let env: HashMap<&str, &str> = [("API_URL", api.as_str()), ("PUBLIC_BASE_URL", api.as_str())].into();
    let mut config = Config::from_lookup(|var| env.get(var).map(|v| v.to_string())).expect("valid test configuration");
    adjust(&mut config);
    let state = ApiState::new(Arc::new(config), myloware_api::store::open(db), Arc::new(catalog()));
    tokio::spawn(ApiServer::with_listener(listener, state.clone()).run(std::future::pending()));
    (api, state)
}
