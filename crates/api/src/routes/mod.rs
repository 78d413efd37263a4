//! HTTP handlers, one module per resource. A handler parses, calls the
//! domain (`crate::runs`) or the store, and maps the result. Each module's
//! `router()` declares its routes and their OpenAPI operations together,
//! each group behind the access it needs ([`open`], [`internal`],
//! [`with_key`]); [`crate::router`] merges them.

use axum::middleware::from_fn_with_state;
use myloware_core::auth::Permission;
use utoipa_axum::router::OpenApiRouter;

use crate::middleware;
use crate::state::ApiState;

pub mod chat;
pub mod dlq;
pub mod hitl;
pub mod internal;
pub mod openapi;
pub mod projects;
pub mod retention;
pub mod runs;
pub mod system;
pub mod webhooks;

/// The routes of every module, with the document that describes them.
pub fn all(state: &ApiState) -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(system::router(state))
        .merge(projects::router(state))
        .merge(runs::router(state))
        .merge(hitl::router(state))
        .merge(chat::router(state))
        .merge(webhooks::router(state))
        .merge(internal::router(state))
        .merge(dlq::router(state))
        .merge(retention::router(state))
}

/// Routes for strangers whose requests prove themselves (provider
/// webhooks, approval links, Telegram): refusals are rate-limited per
/// address ([`middleware::limit_refusals`]).
pub(crate) fn open(state: &ApiState, routes: OpenApiRouter<ApiState>) -> OpenApiRouter<ApiState> {
    let routes = routes.route_layer(from_fn_with_state(state.clone(), middleware::limit_refusals));
    openapi::documented(routes, None, &[openapi::REFUSALS_LIMITED])
}

/// Routes for the orchestrator: its internal credential only.
pub(crate) fn internal(state: &ApiState, routes: OpenApiRouter<ApiState>) -> OpenApiRouter<ApiState> {
    let routes = routes.route_layer(from_fn_with_state(state.clone(), middleware::require_internal));
    openapi::documented(
        routes,
        Some("internal"),
        &[
            (
                "401",
                "Missing, stale or wrong internal credential (operator keys are refused)",
            ),
            openapi::REFUSALS_LIMITED,
        ],
    )
}

/// Routes for operator keys whose role grants `permission`.
pub(crate) fn with_key(
    state: &ApiState,
    permission: Permission,
    routes: OpenApiRouter<ApiState>,
) -> OpenApiRouter<ApiState> {
    let routes = routes.route_layer(from_fn_with_state((state.clone(), permission), middleware::require));
    openapi::documented(routes, Some("api_key"), openapi::key_answers(permission))
}
