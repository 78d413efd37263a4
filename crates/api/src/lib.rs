//! The public API service: runs, projects, (later) HITL gates, provider
//! webhooks and chat. `build` binds the listener; `run` serves until told
//! to stop, with the start reconciler beside it.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

pub mod chat;
pub mod commands;
pub mod dlq;
pub mod error;
pub mod events;
pub mod hitl;
pub mod locks;
pub mod metrics;
pub mod middleware;
pub mod orchestrator;
pub mod page;
pub mod routes;
pub mod runs;
pub mod state;
pub mod store;

pub use state::ApiState;

use error::{ApiError, BodyLimit};

/// The API's router with every layer.
pub fn router(state: ApiState) -> Router {
    let (routes, openapi) = routes::all(&state).split_for_parts();
    let openapi = routes::openapi::finish(openapi, &state);
    let limit = state.config.max_body_bytes;
    routes
        .route("/openapi.json", routes::openapi::route(&state, openapi))
        .route_layer(myloware_telemetry::server::Deadlines(state.config.http))
        .route_layer(from_fn_with_state(
            state.metrics.http.clone(),
            myloware_telemetry::track_http,
        ))
        .fallback(|| async { ApiError::NotFound("not found".into()) })
        .method_not_allowed_fallback(|| async {
            (
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                axum::Json(myloware_core::ErrorBody::new("method not allowed")),
            )
        })
        .with_state(state)
        .layer(DefaultBodyLimit::max(limit))
        // The limit in force, for the 413's message.
        .layer(axum::Extension(BodyLimit(limit)))
        .layer(CatchPanicLayer::custom(|_panic| -> Response {
            tracing::error!("handler panicked");
            ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
        }))
        .layer(from_fn(myloware_telemetry::http::request_id))
}

/// A bound, not yet serving, API.
pub struct ApiServer {
    listener: TcpListener,
    state: ApiState,
}

impl ApiServer {
    /// Binds `config.bind_host:config.api_port` (port 0 picks a free one).
    pub async fn bind(state: ApiState) -> std::io::Result<ApiServer> {
        let listener = TcpListener::bind((state.config.bind_host, state.config.api_port)).await?;
        Ok(ApiServer { listener, state })
    }

    /// Serves on a listener bound elsewhere (tests, `mw dev`).
    pub fn with_listener(listener: TcpListener, state: ApiState) -> ApiServer {
        ApiServer { listener, state }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then drains in-flight requests.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let reconciler = tokio::spawn(commands::reconcile(
            self.state.clone(),
            Duration::from_secs(1),
            stop_rx.clone(),
        ));
        let pusher = tokio::spawn(chat::push_loop(self.state.clone(), Duration::from_secs(1), stop_rx));
        tracing::info!(addr = %self.local_addr(), "api listening");
        // Timeouts, connection cap and the peer address (`ConnectInfo`).
        let limits = self.state.config.http;
        let served = myloware_telemetry::server::serve(self.listener, router(self.state), &limits, shutdown).await;
        let _ = stop_tx.send(true);
        let _ = reconciler.await;
        let _ = pusher.await;
        served
    }
}
