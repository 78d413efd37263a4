//! The one layer stack around both services' routes. The order and the
//! kinds of layers are measured (docs/benchmarks.md), keep them:
//!
//! - route layers, innermost first: [`Deadlines`] (a plain tower layer on
//!   purpose: `from_fn` cost `GET /health` 13 %; it runs each handler in a
//!   task of its own, to its end), then the HTTP metrics
//!   ([`myloware_telemetry::track_http`]), so a 408/503 is counted;
//! - JSON answers for an unknown path (404) and method (405);
//! - around everything, innermost first: the body limit and its value (for
//!   the 413's message), a panic turned into a JSON 500, and outermost the
//!   request id ([`crate::request_id`]), so every answer carries one.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::Response;
use myloware_core::config::HttpLimits;
use myloware_telemetry::HttpMetrics;
use tower_http::catch_panic::CatchPanicLayer;

use crate::body::BodyLimit;
use crate::deadlines::Deadlines;
use crate::error::error;

/// `routes` with the shared layers, its state given.
pub fn layered<S: Clone + Send + Sync + 'static>(
    routes: Router<S>,
    state: S,
    metrics: Arc<HttpMetrics>,
    limits: HttpLimits,
    max_body_bytes: usize,
) -> Router {
    routes
        .route_layer(Deadlines(limits))
        .route_layer(from_fn_with_state(metrics, myloware_telemetry::track_http))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not found") })
        .method_not_allowed_fallback(|| async { error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed") })
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::Extension(BodyLimit(max_body_bytes)))
        .layer(CatchPanicLayer::custom(|_panic| -> Response {
            tracing::error!("handler panicked");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
        }))
        .layer(from_fn(crate::request_id::request_id))
}
