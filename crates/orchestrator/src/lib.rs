//! The private orchestrator service: executes persona graphs durably (the
//! engine joins here), runs Brendan's chat turns, and makes every outbound
//! provider and LLM call. Its only caller is the API, which signs every
//! request with the internal credential (`INTERNAL_SECRET`); operator API
//! keys are refused here.
//!
//! Crate graph: `myloware-orchestrator` may import `myloware-core`,
//! `myloware-db`, `myloware-telemetry`, `myloware-http`,
//! `myloware-providers` and `myloware-assets`, never `myloware-api`; only
//! `myloware-cli` (and the benchmarks) import it.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::EngineMetrics;
use myloware_core::config::Config;
use myloware_core::internal::InternalKeys;
use myloware_core::wire::Health;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub mod brendan;
pub mod engine;
pub mod error;
pub mod faults;
pub mod llm;
pub mod metrics;
pub mod outbox;
pub mod personas;
mod routes;
pub mod run_state;
pub mod scripted;
pub mod store;
pub mod tools;

use engine::{Engine, Personas, ProviderSets};
use myloware_providers::Providers;
use myloware_providers::mock::{MockKie, MockKieSettings, MockShotstack, MockUploadPost};
use store::{OrchestratorStore, StoreLedger};

#[derive(Clone)]
pub struct OrchestratorState {
    pub config: Arc<Config>,
    pub store: Arc<dyn OrchestratorStore>,
    pub engine: Arc<Engine>,
    pub metrics: Arc<EngineMetrics>,
    pub internal: Arc<InternalKeys>,
}

/// The mock providers, recording their calls in `store`.
pub fn mock_providers(config: &Config, store: Arc<dyn OrchestratorStore>) -> Providers {
    let ledger = Arc::new(StoreLedger(store));
    Providers {
        video: Arc::new(MockKie::new(
            ledger.clone(),
            MockKieSettings {
                delay: std::time::Duration::from_millis(config.providers.mock_delay_ms),
                failure_rate: config.engine.mock_failure_rate,
                signing_key: config.providers.mock_kieai_signing_key(),
            },
        )),
        render: Arc::new(MockShotstack::new(ledger.clone())),
        publish: Arc::new(MockUploadPost::new(ledger)),
    }
}

impl OrchestratorState {
    /// State with the mock providers and, when their secrets are set, the
    /// live clients (each run uses the set of its own mode).
    pub fn new(config: Arc<Config>, store: Arc<dyn OrchestratorStore>) -> OrchestratorState {
        let providers = ProviderSets {
            mock: mock_providers(&config, store.clone()),
            live: myloware_providers::live::live_providers(&config),
        };
        let engine = Engine::new(config.clone(), store.clone(), providers, Personas::from_config(&config));
        OrchestratorState {
            metrics: engine.metrics.clone(),
            engine,
            internal: Arc::new(config.internal_keys()),
            config,
            store,
        }
    }
}

async fn health() -> Json<Health> {
    Json(Health::ok("orchestrator"))
}

async fn ready(State(state): State<OrchestratorState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(json!({"status": "ready", "checks": {"database": "ok"}})).into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness: database failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "not ready", "checks": {"database": "failed"}})),
            )
                .into_response()
        }
    }
}

async fn metrics(State(state): State<OrchestratorState>) -> Response {
    // Gauges come from the database; a failed read keeps the last values.
    match state.store.counts().await {
        Ok(counts) => state.metrics.set_gauges(&counts),
        Err(err) => tracing::warn!(error = %err, "metrics: cannot read the queue counts"),
    }
    state.metrics.http.exposition()
}

/// The orchestrator's router. Only `/health` and `/metrics` are open; every
/// other route takes the internal credential and nothing else.
pub fn router(state: OrchestratorState) -> Router {
    let protected = Router::new()
        .route("/ready", get(ready))
        .route("/v1/executions", axum::routing::post(routes::start))
        .route("/v1/executions/{runId}", get(routes::show))
        .route("/v1/executions/{runId}/signals", axum::routing::post(routes::signals))
        .route(
            "/v1/executions/{runId}/signals/batch",
            axum::routing::post(routes::signal_batch),
        )
        .route("/v1/executions/{runId}/resume", axum::routing::post(routes::resume))
        .route("/v1/executions/{runId}/cancel", axum::routing::post(routes::cancel))
        .route("/v1/executions/{runId}/retry", axum::routing::post(routes::retry))
        .route("/v1/chat/brendan", axum::routing::post(routes::chat))
        .route("/v1/retention/prune", axum::routing::post(routes::prune))
        .route_layer(from_fn_with_state(
            state.internal.clone(),
            myloware_http::internal::require_internal,
        ));
    let routes = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(protected);
    let (metrics, limits, max_body) = (
        state.metrics.http.clone(),
        state.config.http,
        state.config.max_body_bytes,
    );
    myloware_http::stack::layered(routes, state, metrics, limits, max_body)
}

/// A bound, not yet serving, orchestrator (`bind`, `with_listener`, `run`).
pub type OrchestratorServer = myloware_http::Server<OrchestratorState>;

impl myloware_http::Service for OrchestratorState {
    const NAME: &'static str = "orchestrator";

    fn config(&self) -> &Config {
        &self.config
    }

    fn port(&self) -> u16 {
        self.config.orchestrator_port
    }

    fn router(&self) -> Router {
        router(self.clone())
    }

    /// The engine's workers and the outbox dispatcher; the server drains
    /// in-flight steps by waiting for them.
    fn background(&self, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        let mut tasks = self.engine.spawn_workers(stop.clone());
        tasks.push(tokio::spawn(outbox::dispatch(self.engine.clone(), stop)));
        tasks
    }
}
