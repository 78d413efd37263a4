//! The private orchestrator service: executes persona graphs durably (the
//! engine joins here), runs Brendan's chat turns, and makes every outbound
//! provider and LLM call. Its only caller is the API, which signs every
//! request with the internal credential (`INTERNAL_SECRET`); operator API
//! keys are refused here.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, extract::DefaultBodyLimit};
use metrics::EngineMetrics;
use myloware_core::config::Config;
use myloware_core::internal::InternalKeys;
use myloware_core::wire::Health;
use serde_json::json;
use tokio::net::TcpListener;

pub mod brendan;
pub mod engine;
pub mod error;
pub mod faults;
pub mod llm;
pub mod metrics;
pub mod outbox;
pub mod personas;
mod routes;
pub mod store;

use engine::{Engine, Personas, ProviderSets};
use error::OrchestratorError;
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
        .route("/v1/executions/{runId}/resume", axum::routing::post(routes::resume))
        .route("/v1/executions/{runId}/cancel", axum::routing::post(routes::cancel))
        .route("/v1/chat/brendan", axum::routing::post(routes::chat))
        .route("/v1/retention/prune", axum::routing::post(routes::prune))
        .route_layer(from_fn_with_state(
            state.internal.clone(),
            myloware_telemetry::internal::require_internal,
        ));
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(protected)
        .route_layer(myloware_telemetry::server::Deadlines(state.config.http))
        .route_layer(from_fn_with_state(
            state.metrics.http.clone(),
            myloware_telemetry::track_http,
        ))
        .fallback(|| async { OrchestratorError::NotFound("not found".into()) })
        .method_not_allowed_fallback(|| async { OrchestratorError::MethodNotAllowed })
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(axum::Extension(myloware_telemetry::http::BodyLimit(
            state.config.max_body_bytes,
        )))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_panic| {
            OrchestratorError::panicked()
        }))
        .layer(from_fn(myloware_telemetry::http::request_id))
}

/// A bound, not yet serving, orchestrator.
pub struct OrchestratorServer {
    listener: TcpListener,
    state: OrchestratorState,
}

impl OrchestratorServer {
    /// Binds `config.bind_host:config.orchestrator_port` (0 picks a free port).
    pub async fn bind(state: OrchestratorState) -> std::io::Result<OrchestratorServer> {
        let listener = TcpListener::bind((state.config.bind_host, state.config.orchestrator_port)).await?;
        Ok(OrchestratorServer { listener, state })
    }

    /// Serves on a listener bound elsewhere (tests).
    pub fn with_listener(listener: TcpListener, state: OrchestratorState) -> OrchestratorServer {
        OrchestratorServer { listener, state }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves, runs the workers and the outbox dispatcher until `shutdown`
    /// completes, then drains in-flight requests and steps.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        tracing::info!(addr = %self.local_addr(), workers = self.state.config.engine.workers, "orchestrator listening");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut tasks = self.state.engine.spawn_workers(stop_rx.clone());
        tasks.push(tokio::spawn(outbox::dispatch(self.state.engine.clone(), stop_rx)));
        let limits = self.state.config.http;
        let served = myloware_telemetry::server::serve(self.listener, router(self.state), &limits, shutdown).await;
        let _ = stop_tx.send(true);
        for task in tasks {
            let _ = task.await;
        }
        served
    }
}
