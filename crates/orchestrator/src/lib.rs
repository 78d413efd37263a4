//! The private orchestrator service: executes persona graphs durably (the
//! engine joins here), runs Brendan's chat turns, and makes every outbound
//! provider and LLM call. Callers authenticate with `x-api-key`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, extract::DefaultBodyLimit};
use myloware_core::ErrorBody;
use myloware_core::auth::ApiKeys;
use myloware_core::config::Config;
use myloware_core::wire::Health;
use myloware_telemetry::HttpMetrics;
use serde_json::json;
use tokio::net::TcpListener;

pub mod store;

use store::OrchestratorStore;

#[derive(Clone)]
pub struct OrchestratorState {
    pub config: Arc<Config>,
    pub store: Arc<dyn OrchestratorStore>,
    pub metrics: Arc<HttpMetrics>,
    pub api_keys: Arc<ApiKeys>,
}

impl OrchestratorState {
    pub fn new(config: Arc<Config>, store: Arc<dyn OrchestratorStore>) -> OrchestratorState {
        OrchestratorState {
            api_keys: Arc::new(ApiKeys::new(&config.api_keys)),
            metrics: HttpMetrics::new("orchestrator"),
            config,
            store,
        }
    }
}

fn error(status: StatusCode, detail: &str) -> Response {
    (status, Json(ErrorBody::new(detail))).into_response()
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
    state.metrics.exposition()
}

async fn require_api_key(
    State(state): State<OrchestratorState>,
    request: Request,
    next: Next,
) -> Response {
    let authorized = request
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|key| state.api_keys.is_valid(key));
    if authorized {
        next.run(request).await
    } else {
        error(StatusCode::UNAUTHORIZED, "invalid API key")
    }
}

/// The orchestrator's router. Only `/health` and `/metrics` are open.
pub fn router(state: OrchestratorState) -> Router {
    let protected = Router::new()
        .route("/ready", get(ready))
        .route_layer(from_fn_with_state(state.clone(), require_api_key));
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(protected)
        .route_layer(from_fn_with_state(
            state.metrics.clone(),
            myloware_telemetry::track_http,
        ))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not found") })
        .method_not_allowed_fallback(|| async {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        })
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
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
        let listener =
            TcpListener::bind((state.config.bind_host, state.config.orchestrator_port)).await?;
        Ok(OrchestratorServer { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then drains in-flight requests.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = %self.local_addr(), "orchestrator listening");
        axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(shutdown)
            .await
    }
}
