//! The public API service: runs, projects, HITL gates, provider webhooks
//! and chat. [`ApiServer`] binds the listener and serves until told to
//! stop, with the command reconciler, the chat pusher and the schedules'
//! firing loop beside it.
//!
//! Crate graph: `myloware-api` may import `myloware-core`, `myloware-db`,
//! `myloware-telemetry`, `myloware-http`, `myloware-providers` and
//! `myloware-assets`, never
//! `myloware-orchestrator` (it talks to it over HTTP); only `myloware-cli`
//! (and the benchmarks) import it.

use std::time::Duration;

use axum::Router;

pub mod audit;
pub mod budget;
pub mod chat;
pub mod commands;
pub mod console;
pub mod costs;
pub mod dlq;
pub mod error;
pub mod events;
pub mod expiry;
pub mod group_commit;
pub mod hitl;
pub mod limiter;
pub mod locks;
pub mod metrics;
pub mod middleware;
pub mod notify;
pub mod orchestrator;
pub mod page;
pub mod proposals;
pub mod reconciler;
pub mod routes;
pub mod runs;
pub mod schedules;
pub mod state;
pub mod store;

pub use state::ApiState;

/// The API's router with every layer.
pub fn router(state: ApiState) -> Router {
    let (routes, openapi) = routes::all(&state).split_for_parts();
    let openapi = routes::openapi::finish(openapi, &state);
    let limit = state.config.max_body_bytes;
    let routes = routes
        .route("/openapi.json", routes::openapi::route(&state, openapi))
        .merge(console::router(&state));
    let metrics = state.metrics.http.clone();
    let limits = state.config.http;
    myloware_http::stack::layered(routes, state, metrics, limits, limit)
}

/// A bound, not yet serving, API (`bind`, `with_listener`, `run`).
pub type ApiServer = myloware_http::Server<ApiState>;

impl myloware_http::Service for ApiState {
    const NAME: &'static str = "api";

    fn config(&self) -> &myloware_core::config::Config {
        &self.config
    }

    fn port(&self) -> u16 {
        self.config.api_port
    }

    fn router(&self) -> Router {
        router(self.clone())
    }

    /// The start reconciler, the chat pusher and the schedules' firings.
    fn background(&self, stop: tokio::sync::watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            tokio::spawn(reconciler::reconcile(
                self.clone(),
                Duration::from_secs(1),
                stop.clone(),
            )),
            tokio::spawn(chat::push_loop(self.clone(), Duration::from_secs(1), stop.clone())),
            tokio::spawn(schedules::fire_loop(self.clone(), self.config.schedule_tick, stop)),
        ]
    }
}
